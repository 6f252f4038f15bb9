//! Membership at the node level, on a single-member node loop over real file storage: the
//! registry seeded from the bootstrap entry, publish, and etcd's rules for member changes
//! (too many learners, not enough started members, learner not in sync, not a learner,
//! unknown members, peer URLs in use, removed ids never reused), each answered with its error.
#![cfg(not(madsim))]

use std::time::Duration;

use sextant_core::kv::KvError;
use sextant_core::{Config, MemberAttrs, MemberContext, Message, Raft};
use sextant_net::node::{
    spawn_storage_thread, ClientError, IntervalClock, MemberChange, MemberError, NodeConfig,
    NodeHandle, NodeLoop, PeerSender,
};
use sextant_net::storage::{FileStorage, StorageOptions};

struct NoPeers;

impl PeerSender for NoPeers {
    fn send(&self, _msg: Message) {}
}

const TICK: Duration = Duration::from_millis(10);

async fn start(dir: &std::path::Path) -> (NodeHandle, tokio::task::JoinHandle<()>) {
    let (storage, _) = FileStorage::open(dir, StorageOptions::default()).unwrap();
    let mut cfg = Config::new(1);
    cfg.rng_seed = 7;
    let context = MemberContext {
        members: vec![(
            1,
            MemberAttrs {
                name: "one".into(),
                peer_urls: vec!["http://127.0.0.1:1".into()],
                client_urls: Vec::new(),
            },
        )],
    }
    .encode();
    let raft = Raft::bootstrap_with_context(cfg, &[1], context).unwrap();
    let (_inbound_tx, inbound_rx) = tokio::sync::mpsc::channel(16);
    let (io, _storage_thread) = spawn_storage_thread(storage);
    let (node, handle) = NodeLoop::new(
        NodeConfig::new(99, 1),
        raft,
        Default::default(),
        0,
        NoPeers,
        IntervalClock::new(TICK),
        io,
        inbound_rx,
    );
    let task = tokio::spawn(node.run(std::future::pending()));
    (handle, task)
}

fn add(id: u64, url: &str, is_learner: bool) -> MemberChange {
    MemberChange::Add {
        id,
        peer_urls: vec![url.to_string()],
        is_learner,
    }
}

async fn refused(node: &NodeHandle, change: MemberChange) -> MemberError {
    match node.change_member(change.clone()).await {
        Err(ClientError::Member(e)) => e,
        other => panic!("{change:?} answered {other:?}"),
    }
}

#[tokio::test]
async fn member_changes_follow_etcd_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (node, task) = start(dir.path()).await;

    // Seeded from the bootstrap entry; publish adds the client URLs.
    node.member_publish("one".into(), vec!["http://127.0.0.1:2".into()])
        .await
        .unwrap();
    let me = node.member_list(true).await.unwrap();
    assert_eq!(me.members.len(), 1);
    assert_eq!(me.header.member_id, 1);
    assert_eq!(me.members[0].name, "one");
    assert_eq!(
        me.members[0].peer_urls,
        vec!["http://127.0.0.1:1".to_string()]
    );
    assert_eq!(
        me.members[0].client_urls,
        vec!["http://127.0.0.1:2".to_string()]
    );
    assert_eq!(node.members(), me.members);
    assert_eq!(node.leader_member().map(|m| m.id), Some(1));

    // A learner joins; a second one is one too many.
    let added = node
        .change_member(add(2, "http://127.0.0.2:1", true))
        .await
        .unwrap();
    assert_eq!(added.member.id, 2);
    assert!(added.member.is_learner);
    assert_eq!(
        added.member.peer_urls,
        vec!["http://127.0.0.2:1".to_string()]
    );
    assert_eq!(added.members.len(), 2);
    assert_eq!(
        refused(&node, add(3, "http://127.0.0.3:1", true)).await,
        MemberError::TooManyLearners
    );
    // A second voter could not reach a quorum of started members: the learner is not one.
    assert_eq!(
        refused(&node, add(4, "http://127.0.0.4:1", false)).await,
        MemberError::NotEnoughStarted
    );
    assert_eq!(
        refused(&node, add(5, "http://127.0.0.2:1", true)).await,
        MemberError::PeerUrlExists
    );
    assert_eq!(
        refused(&node, add(2, "http://127.0.0.9:1", true)).await,
        MemberError::IdExists
    );
    // The learner never received anything: not in sync.
    assert_eq!(
        refused(&node, MemberChange::Promote { id: 2 }).await,
        MemberError::LearnerNotReady
    );
    assert_eq!(
        refused(&node, MemberChange::Promote { id: 1 }).await,
        MemberError::NotLearner
    );
    assert_eq!(
        refused(&node, MemberChange::Promote { id: 8 }).await,
        MemberError::NotFound
    );
    assert_eq!(
        refused(&node, MemberChange::Remove { id: 8 }).await,
        MemberError::NotFound
    );

    // MemberUpdate goes through the state machine.
    node.member_update(2, vec!["http://127.0.0.2:7".into()])
        .await
        .unwrap();
    let two = node.members().into_iter().find(|m| m.id == 2).unwrap();
    assert_eq!(two.peer_urls, vec!["http://127.0.0.2:7".to_string()]);
    assert_eq!(
        node.member_update(2, vec!["http://127.0.0.1:1".into()])
            .await
            .unwrap_err(),
        ClientError::Kv(KvError::Member(sextant_core::MemberError::PeerUrlExists))
    );

    // Removed: gone from the list, and its id is never reused.
    let removed = node
        .change_member(MemberChange::Remove { id: 2 })
        .await
        .unwrap();
    assert_eq!(removed.members.len(), 1);
    assert_eq!(node.members().len(), 1);
    assert_eq!(
        refused(&node, add(2, "http://127.0.0.2:9", true)).await,
        MemberError::IdRemoved
    );
    assert_eq!(
        node.member_update(2, vec!["http://127.0.0.2:8".into()])
            .await
            .unwrap_err(),
        ClientError::Kv(KvError::Member(sextant_core::MemberError::NotFound))
    );
    assert!(!node.membership().borrow().removed);
    task.abort();
}
