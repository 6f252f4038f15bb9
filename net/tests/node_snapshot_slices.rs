//! The node loop encodes its state-machine snapshots a slice of keys per turn, serving
//! writes in between: the node loop over real file storage, with one key per slice and a
//! pause between slices so the encoding spans many writes. The stored snapshot is the state
//! at the index it was started at, and a restart from it plus the log recovers every write.

mod common;

use std::time::Duration;

use common::numbered::{apply_until, assert_same_keys, key, put};
use common::SingleNode;
use sextant_core::kv::KvStore;
use sextant_core::{Entry, EntryPayload};
use sextant_net::node::{LogCommand, NodeConfig, NodeHandle};
use sextant_net::storage::{FileStorage, StorageOptions};

const KEYS: usize = 120;

#[tokio::test]
async fn writes_are_served_while_a_snapshot_is_encoded_in_slices() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = FileStorage::open(dir.path(), StorageOptions::default()).unwrap();
    let mut cfg = NodeConfig::new(99, 1);
    cfg.snapshot_every_entries = KEYS as u64;
    cfg.snapshot_slice_keys = 1;
    // Two passes over 120 keys at one key per slice: without other work, 240 pauses.
    cfg.snapshot_slice_pause = Duration::from_millis(50);
    let node = SingleNode::start(storage, cfg);
    let handle = &node.handle;

    for i in 0..KEYS {
        handle.write(put(i, 0)).await.unwrap();
    }
    // Applied reached the snapshot point: an encoding of every key is under way.
    let start = handle.status().await.unwrap();
    let started_at = start.applied_index;
    assert!(started_at >= KEYS as u64, "{start:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        handle.status().await.unwrap().snapshot_index,
        0,
        "the snapshot is still being encoded"
    );
    // Writes are answered meanwhile, overwriting keys on both sides of the encoding's cursor.
    let mut last_revision = 0;
    for i in 0..KEYS / 2 {
        last_revision = handle.write(put(i * 2, 1)).await.unwrap().header.revision;
    }
    wait_for_snapshot(handle).await;

    node.stop().await;

    // The stored snapshot is the state at its index, which it was started at: before the
    // overwrites, though they were applied while it was being encoded.
    let (_, recovered) = FileStorage::open(dir.path(), StorageOptions::default()).unwrap();
    let snap = recovered
        .state
        .snapshot
        .clone()
        .expect("a snapshot was stored");
    let index = snap.meta.index;
    assert!(
        (KEYS as u64..=started_at).contains(&index),
        "snapshot at {index}, due at {KEYS}, all first-round writes applied at {started_at}"
    );
    // The same writes applied to a store of our own, up to the snapshot's revision: every
    // key reads the same (create and mod revisions, versions, values), and none of the
    // overwrites is in it.
    let at_snapshot = KvStore::restore(&snap.data).unwrap();
    let mut expected = KvStore::new();
    apply_until(&mut expected, at_snapshot.revision(), 0, KEYS);
    assert_eq!(expected.revision(), at_snapshot.revision());
    assert!(at_snapshot.len() + 3 >= KEYS, "{} keys", at_snapshot.len());
    assert_same_keys(
        &at_snapshot,
        &expected,
        KEYS,
        &format!("the snapshot at {index}"),
    );
    // A member restarted from it replays the log after it: every write is there.
    let mut kv = at_snapshot;
    apply_log(&mut kv, &recovered.state.entries, index, u64::MAX);
    assert_eq!(kv.revision(), last_revision);
    for i in 0..KEYS {
        let v = kv.get(key(i).as_bytes()).unwrap().value;
        let round = usize::from(i % 2 == 0);
        assert_eq!(v, format!("round {round}"), "k{i:03} after the restart");
    }
}

fn apply_log(kv: &mut KvStore, entries: &[Entry], after: u64, upto: u64) {
    for e in entries
        .iter()
        .filter(|e| e.index > after && e.index <= upto)
    {
        match &e.payload {
            EntryPayload::Normal(d) => {
                if let Some(lc) = LogCommand::decode(d) {
                    let _ = kv.apply(&lc.cmd);
                }
            }
            EntryPayload::ConfChange(cc) => kv.apply_conf_change(cc),
            _ => {}
        }
    }
}

/// Waits until the member stored its first snapshot.
async fn wait_for_snapshot(handle: &NodeHandle) {
    for _ in 0..1000 {
        let s = handle.status().await.unwrap();
        if s.snapshot_index > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no snapshot stored in 20 s");
}
