mod common;

use bytes::Bytes;
use common::{default_config, Cluster};

#[test]
fn three_nodes_elect_and_replicate() {
    let mut c = Cluster::new(&[1, 2, 3], default_config);
    c.stabilize();
    let l = c.elect();
    c.raft_mut(l).propose(Bytes::from_static(b"x")).unwrap();
    c.stabilize();
    c.tick_all();
    c.stabilize();
    for n in c.nodes.values() {
        assert_eq!(
            n.sm.data.last().map(|(_, d)| d.clone()),
            Some(Bytes::from_static(b"x"))
        );
    }
}

#[test]
fn bootstrap_state_survives_a_crash() {
    let mut c = Cluster::new(&[1, 2, 3], default_config);
    assert_eq!(
        c.nodes[&1].durable.entries.len(),
        1,
        "bootstrap entry durable"
    );
    c.crash(1);
    c.restart(1, 1);
    assert_eq!(c.raft(1).last_index(), 1);
    assert_eq!(c.raft(1).conf_state().voters.len(), 3);
}
