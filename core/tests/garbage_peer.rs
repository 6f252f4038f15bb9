//! A peer speaking garbage never crashes a node: random messages with nonsense contents
//! (huge or zero terms, indices far beyond the log, non-contiguous entries, snapshot chunks
//! past their size, answers nobody asked for, unknown senders) are either refused with a
//! `StepError` or handled without panicking, and the node's own debug invariants (checked
//! after every input) keep holding. Raft does not tolerate Byzantine peers, so cluster safety
//! is not asserted here; robustness is.

mod common;

use bytes::Bytes;
use common::{default_config, Cluster};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sextant_core::{
    ConfState, Entry, EntryPayload, Message, MessageBody, NodeId, ReadId, SnapshotMeta,
};

fn small(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..4) {
        0 => 0,
        1 => rng.random_range(0..8),
        2 => rng.random_range(0..200),
        _ => rng.random::<u64>() >> rng.random_range(0..64),
    }
}

fn garbage_entries(rng: &mut StdRng, prev: u64) -> Vec<Entry> {
    let n = rng.random_range(0..5);
    let contiguous = rng.random_bool(0.7);
    (0..n)
        .map(|k| Entry {
            term: small(rng),
            index: if contiguous {
                prev.wrapping_add(1 + k)
            } else {
                small(rng)
            },
            payload: match rng.random_range(0..3) {
                0 => EntryPayload::Empty,
                1 => EntryPayload::Normal(Bytes::from(vec![0xAB; rng.random_range(0..64)])),
                _ => EntryPayload::ConfChange(sextant_core::ConfChange::single(
                    sextant_core::ConfChangeKind::Remove,
                    small(rng),
                )),
            },
        })
        .collect()
}

fn garbage(rng: &mut StdRng, to: NodeId) -> Message {
    let from = match rng.random_range(0..3) {
        0 => rng.random_range(1..=3),
        1 => small(rng),
        _ => to,
    };
    let term = small(rng);
    let prev = small(rng);
    let body = match rng.random_range(0..14) {
        0 => MessageBody::PreVote {
            last_index: small(rng),
            last_term: small(rng),
        },
        1 => MessageBody::PreVoteResp {
            reject: rng.random(),
        },
        2 => MessageBody::Vote {
            last_index: small(rng),
            last_term: small(rng),
            transfer: rng.random(),
        },
        3 => MessageBody::VoteResp {
            reject: rng.random(),
        },
        4 => MessageBody::Append {
            session: small(rng),
            prev_index: prev,
            prev_term: small(rng),
            entries: garbage_entries(rng, prev),
            commit: small(rng),
        },
        5 => MessageBody::AppendResp {
            session: small(rng),
            reject: rng.random(),
            index: small(rng),
            hint_index: small(rng),
            hint_term: small(rng),
        },
        6 => MessageBody::Heartbeat {
            session: small(rng),
            commit: small(rng),
            round: small(rng),
        },
        7 => MessageBody::HeartbeatResp {
            session: small(rng),
            round: small(rng),
        },
        8 => {
            let total = small(rng) % 4096;
            MessageBody::InstallSnapshot {
                session: small(rng),
                meta: SnapshotMeta {
                    index: small(rng),
                    term: small(rng),
                    conf: ConfState::with_voters([1, 2, 3]),
                },
                total_bytes: total,
                offset: small(rng) % 8192,
                chunk: Bytes::from(vec![7; rng.random_range(0..100)]),
            }
        }
        9 => MessageBody::InstallSnapshotResp {
            session: small(rng),
            snapshot_index: small(rng),
            next_offset: small(rng),
            done: rng.random(),
            reject: rng.random(),
        },
        10 => MessageBody::TimeoutNow,
        11 => MessageBody::ReadIndex {
            id: ReadId {
                node: from,
                epoch: small(rng),
                seq: small(rng),
            },
        },
        12 => MessageBody::ReadIndexResp {
            id: ReadId {
                node: to,
                epoch: small(rng),
                seq: small(rng),
            },
            index: rng.random_bool(0.5).then(|| small(rng)),
        },
        _ => MessageBody::Propose {
            epoch: small(rng),
            seq: small(rng),
            payloads: vec![EntryPayload::Normal(Bytes::from_static(b"forwarded"))],
        },
    };
    Message {
        from,
        to,
        term,
        body,
    }
}

#[test]
fn garbage_messages_are_values_not_panics() {
    let mut refused = 0;
    let mut handled = 0;
    for seed in 0..200 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut c = Cluster::new(&[1, 2, 3], default_config);
        c.stabilize();
        c.elect();
        for _ in 0..200 {
            let to = rng.random_range(1..=3);
            let m = garbage(&mut rng, to);
            match c.raft_mut(to).step(m) {
                Ok(()) => handled += 1,
                Err(_) => refused += 1,
            }
            // Drive the node's outputs too: Ready must be producible after garbage.
            while c.nodes[&to].raft.has_ready() {
                let node = c.nodes.get_mut(&to).unwrap();
                let rd = node.raft.ready();
                if let Some(id) = rd.persist_id {
                    node.raft.persisted(id);
                }
            }
            if rng.random_bool(0.1) {
                c.raft_mut(to).tick();
            }
        }
    }
    // Both paths were exercised.
    assert!(refused > 1000, "refused {refused}");
    assert!(handled > 1000, "handled {handled}");
}
