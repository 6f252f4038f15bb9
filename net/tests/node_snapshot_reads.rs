//! Clients' `Snapshot` and `Hash` requests are answered from an encoding walked a slice of
//! keys per turn of the node loop, serving writes in between: one key per slice and a pause
//! between slices, so the walk spans many writes. Each answer is the state at the revision
//! its walk started at, after the request arrived; a request that arrives during a walk waits
//! for the next one. `HashKV` requests are walked the same way, one revision at a time.

mod common;

use std::path::Path;
use std::time::Duration;

use common::numbered::{apply_until, assert_same_keys, key, put};
use common::SingleNode;
use sextant_core::kv::{Command, KvError, KvHash, KvStore};
use sextant_net::node::{ClientError, Header, NodeConfig, NodeHandle, StateSnapshot};
use sextant_net::storage::{FileStorage, StorageOptions};
use tokio::task::JoinHandle;

const KEYS: usize = 60;

/// A single member over file storage in `dir` that never snapshots on its own, encoding a
/// key per slice with 10 ms pauses: two passes over 60 keys take 120 pauses without other
/// work.
fn start(dir: &Path) -> SingleNode {
    let (storage, _) = FileStorage::open(dir, StorageOptions::default()).unwrap();
    let mut cfg = NodeConfig::new(99, 1);
    cfg.snapshot_every_entries = 1_000_000;
    cfg.snapshot_slice_keys = 1;
    cfg.snapshot_slice_pause = Duration::from_millis(10);
    SingleNode::start(storage, cfg)
}

/// Asks for a snapshot from a task of its own (the request is sent when the caller yields).
fn spawn_snapshot(handle: &NodeHandle) -> JoinHandle<StateSnapshot> {
    let h = handle.clone();
    tokio::spawn(async move { h.state_snapshot().await.unwrap() })
}

/// Writes `put(i, round)` for every key, to the member and to `expected`.
async fn write_round(handle: &NodeHandle, expected: &mut KvStore, round: usize) {
    for i in 0..KEYS {
        handle.write(put(i, round)).await.unwrap();
        expected.apply(&put(i, round)).unwrap();
    }
}

/// Asks for a `HashKV` from a task of its own (the request is sent when the caller yields).
fn spawn_hash_kv(
    handle: &NodeHandle,
    revision: i64,
) -> JoinHandle<Result<(Header, KvHash), ClientError>> {
    let h = handle.clone();
    tokio::spawn(async move { h.hash_kv(revision).await })
}

#[tokio::test]
async fn snapshots_and_hashes_for_clients_are_encoded_in_slices_between_writes() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let handle = node.handle.clone();

    let mut expected = KvStore::new();
    write_round(&handle, &mut expected, 0).await;
    let first = spawn_snapshot(&handle);
    let first_hash = tokio::spawn({
        let h = handle.clone();
        async move { h.hash().await.unwrap() }
    });
    // Both requests reach the loop before the writes below.
    tokio::task::yield_now().await;

    // Overwrites are answered while the walk goes on.
    let mut answered_during_walk = 0;
    let mut second = None;
    let mut last_revision_before_second = 0;
    for i in 0..KEYS {
        let revision = handle.write(put(i, 1)).await.unwrap().header.revision;
        if !first.is_finished() {
            answered_during_walk += 1;
        }
        if i == 3 {
            // Arrives during the first walk: answered by the next one.
            last_revision_before_second = revision;
            second = Some(spawn_snapshot(&handle));
            tokio::task::yield_now().await;
        }
    }
    assert!(
        answered_during_walk >= 4,
        "only {answered_during_walk} writes answered before the snapshot"
    );

    // The first walk started when both requests arrived: the state after the first round,
    // none of the overwrites, though they were applied while it was encoded.
    let first = first.await.unwrap();
    let (hash_header, hash) = first_hash.await.unwrap();
    let at_first = KvStore::restore(&first.data).unwrap();
    assert_eq!(first.header.revision, expected.revision());
    assert_eq!(at_first.revision(), expected.revision());
    assert!(first.applied_index >= KEYS as u64, "{first:?}");
    assert_same_keys(&at_first, &expected, KEYS, "the first snapshot");
    // Both requests shared the walk.
    assert_eq!(hash_header.revision, expected.revision());
    assert_eq!(hash, KvStore::snapshot_hash(&first.data));

    // The second request's walk started after it arrived: at least the writes answered
    // before it, exactly as a store of our own holds them at that revision.
    let second = second.unwrap().await.unwrap();
    assert!(
        second.header.revision >= last_revision_before_second,
        "second snapshot at {}, requested after revision {last_revision_before_second}",
        second.header.revision
    );
    let at_second = KvStore::restore(&second.data).unwrap();
    assert_eq!(at_second.revision(), second.header.revision);
    apply_until(&mut expected, second.header.revision, 1, KEYS);
    assert_eq!(expected.revision(), second.header.revision);
    assert!(second.applied_index > first.applied_index);
    assert_same_keys(&at_second, &expected, KEYS, "the second snapshot");

    // With nothing written since, a hash is of the same state as a snapshot.
    let (_, hash_now) = handle.hash().await.unwrap();
    let now = handle.state_snapshot().await.unwrap();
    assert_eq!(hash_now, KvStore::snapshot_hash(&now.data));
    node.stop().await;
}

#[tokio::test]
async fn a_compaction_during_the_walk_answers_with_the_state_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let handle = node.handle.clone();
    for round in 0..2 {
        write_round(&handle, &mut KvStore::new(), round).await;
    }
    let applied_before = handle.status().await.unwrap().applied_index;
    let snapshot = spawn_snapshot(&handle);
    tokio::task::yield_now().await;
    // Drops the first round's versions the walk is reading (two passes over 60 keys, a key
    // per slice: far from done).
    let compacted_at = handle
        .write(Command::Compact {
            revision: KEYS as i64 + 1,
            physical: false,
        })
        .await
        .unwrap()
        .header
        .revision;
    let late = handle.write(put(0, 2)).await.unwrap().header.revision;

    // The answer is one state, whole, and its header and index say which: after the
    // compaction (which takes a log entry but no revision).
    let snapshot = snapshot.await.unwrap();
    let state = KvStore::restore(&snapshot.data).unwrap();
    assert_eq!(state.revision(), snapshot.header.revision);
    assert!(
        snapshot.applied_index > applied_before,
        "snapshot at index {}, the compaction after {applied_before}",
        snapshot.applied_index
    );
    assert!(
        (compacted_at..=late).contains(&snapshot.header.revision),
        "snapshot at {}, compacted at {compacted_at}",
        snapshot.header.revision
    );
    assert_eq!(state.compact_revision(), KEYS as i64 + 1);
    for i in 1..KEYS {
        let v = state.get(key(i).as_bytes()).unwrap().value;
        assert_eq!(v, "round 1");
    }
    node.stop().await;
}

#[tokio::test]
async fn hash_kv_is_walked_in_slices_between_writes() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let handle = node.handle.clone();
    let mut expected = KvStore::new();
    write_round(&handle, &mut expected, 0).await;
    let before = expected.revision();
    let now = spawn_hash_kv(&handle, 0);
    let earlier = spawn_hash_kv(&handle, KEYS as i64 / 2);
    let future = spawn_hash_kv(&handle, before + 1000);
    tokio::task::yield_now().await;

    // Overwrites are answered while the walk (a key per slice, 10 ms apart) goes on.
    let mut answered_during_walk = 0;
    for i in 0..KEYS {
        handle.write(put(i, 1)).await.unwrap();
        if !now.is_finished() {
            answered_during_walk += 1;
        }
    }
    assert!(
        answered_during_walk >= 4,
        "only {answered_during_walk} writes answered before the hash"
    );

    // Revision 0 is the one the walk started at: before the overwrites, though they were
    // applied while it went on. Each answer is the one-go hash of a store of our own.
    let (header, hash) = now.await.unwrap().unwrap();
    assert_eq!(hash, expected.hash_kv(before).unwrap());
    assert_eq!(hash.hash_revision, before);
    assert!(header.revision >= before);
    let (_, hash) = earlier.await.unwrap().unwrap();
    assert_eq!(hash, expected.hash_kv(KEYS as i64 / 2).unwrap());
    assert_eq!(
        future.await.unwrap(),
        Err(ClientError::Kv(KvError::FutureRevision))
    );

    apply_until(&mut expected, before + KEYS as i64, 1, KEYS);
    let (_, hash) = handle.hash_kv(0).await.unwrap();
    assert_eq!(hash, expected.hash_kv(0).unwrap());
    node.stop().await;
}

#[tokio::test]
async fn a_compaction_during_a_hash_kv_walk_answers_from_the_state_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let handle = node.handle.clone();
    let mut expected = KvStore::new();
    for round in 0..2 {
        write_round(&handle, &mut expected, round).await;
    }
    let current = expected.revision();
    let hash = spawn_hash_kv(&handle, 0);
    // Waits behind the first walk; by its turn its revision is compacted.
    let compacted = spawn_hash_kv(&handle, 10);
    tokio::task::yield_now().await;
    let compact = Command::Compact {
        revision: KEYS as i64 + 1,
        physical: false,
    };
    handle.write(compact.clone()).await.unwrap();
    expected.apply(&compact).unwrap();

    // The walk's revision, hashed as the store holds it after the compaction.
    let (_, hash) = hash.await.unwrap().unwrap();
    assert_eq!(hash.compact_revision, KEYS as i64 + 1);
    assert_eq!(hash, expected.hash_kv(current).unwrap());
    assert_eq!(
        compacted.await.unwrap(),
        Err(ClientError::Kv(KvError::Compacted {
            compact_revision: KEYS as i64 + 1
        }))
    );
    node.stop().await;
}
