//! Leases, watches and compaction served by a single-member node loop over real file storage
//! and real time: lease grant, attached keys, keepalive, time-to-live, revoke and expiry;
//! watches replaying history and then following live writes, compaction answers, slow
//! watchers cancelled by back-pressure; explicit and automatic compaction; request limits.
#![cfg(not(madsim))]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::SingleNode;
use sextant_core::kv::{AutoCompactionMode, Command, EventKind, KvError, PutRequest, RangeRequest};
use sextant_core::watch::{WatchConfig, WatchCreateRequest, WatchId, WatchResponse};
use sextant_net::node::{ClientError, NodeConfig, NodeHandle, WatchStream};
use sextant_net::storage::{FileStorage, StorageOptions};

struct Node {
    member: SingleNode,
    handle: NodeHandle,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn stop(self) {
        self.member.stop().await;
    }
}

async fn start(tune: impl FnOnce(&mut NodeConfig)) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (storage, _) = FileStorage::open(dir.path(), StorageOptions::default()).unwrap();
    let mut node_cfg = NodeConfig::new(99, 1);
    tune(&mut node_cfg);
    let member = SingleNode::start(storage, node_cfg);
    Node {
        handle: member.handle.clone(),
        member,
        _dir: dir,
    }
}

fn put_cmd(key: &str, value: &str, lease: i64) -> Command {
    Command::Put(PutRequest {
        key: Bytes::from(key.to_string()),
        value: Bytes::from(value.to_string()),
        lease,
        ..Default::default()
    })
}

async fn put(h: &NodeHandle, key: &str, value: &str) -> i64 {
    h.write(put_cmd(key, value, 0))
        .await
        .unwrap()
        .header
        .revision
}

async fn exists(h: &NodeHandle, key: &str) -> bool {
    let req = RangeRequest {
        key: Bytes::from(key.to_string()),
        ..Default::default()
    };
    !h.range(req, false).await.unwrap().range.kvs.is_empty()
}

async fn next(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a watch response within 5 s")
        .expect("stream open")
}

/// Events as (revision, key, value) until `count` are gathered.
async fn events(stream: &mut WatchStream, count: usize) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    while out.len() < count {
        let r = next(stream).await;
        assert!(!r.canceled, "unexpected cancel: {r:?}");
        for e in r.events {
            assert_eq!(e.kind, EventKind::Put);
            out.push((
                e.kv.mod_revision,
                String::from_utf8(e.kv.key.to_vec()).unwrap(),
                String::from_utf8(e.kv.value.to_vec()).unwrap(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn lease_grant_keepalive_revoke_and_expiry() {
    let node = start(|c| c.limits.lease_ttl_min_secs = 1).await;
    let h = node.handle.clone();

    // Grant, attach a key, keep alive, look at it, revoke: the key goes with the lease.
    let lease = h.lease_grant(0, 1).await.unwrap();
    assert!(lease.id > 0);
    assert_eq!(lease.ttl_secs, 1);
    h.write(put_cmd("held", "v", lease.id)).await.unwrap();
    let kept = h.lease_keepalive(lease.id).await.unwrap();
    assert_eq!((kept.id, kept.ttl_secs), (lease.id, 1));
    let ttl = h.lease_time_to_live(lease.id, true).await.unwrap();
    assert_eq!(ttl.granted_ttl_secs, 1);
    assert!(ttl.ttl_secs <= 1);
    assert_eq!(ttl.keys, [Bytes::from_static(b"held")]);
    assert_eq!(h.lease_leases().await.unwrap().ids, [lease.id]);
    assert_eq!(h.status().await.unwrap().leases, 1);
    h.lease_revoke(lease.id).await.unwrap();
    assert!(!exists(&h, "held").await);
    assert_eq!(
        h.lease_keepalive(lease.id).await.unwrap_err(),
        ClientError::Kv(KvError::LeaseNotFound)
    );
    assert_eq!(
        h.lease_time_to_live(lease.id, false).await.unwrap_err(),
        ClientError::Kv(KvError::LeaseNotFound)
    );
    // A put on a missing lease is refused by the state machine.
    assert_eq!(
        h.write(put_cmd("orphan", "v", lease.id)).await.unwrap_err(),
        ClientError::Kv(KvError::LeaseNotFound)
    );

    // Expiry: kept alive for a while, the key stays; left alone, it goes after the TTL.
    let lease = h.lease_grant(77, 1).await.unwrap();
    assert_eq!(lease.id, 77);
    h.write(put_cmd("expiring", "v", 77)).await.unwrap();
    let mut last = Instant::now();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        last = Instant::now();
        h.lease_keepalive(77).await.unwrap();
        assert!(exists(&h, "expiring").await, "kept alive");
        assert!(last.elapsed() < Duration::from_millis(900));
    }
    // `last`: when the last keepalive was sent. The lease lives at least its TTL from then.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(exists(&h, "expiring").await, "gone before its TTL");
    let mut gone = None;
    while last.elapsed() < Duration::from_secs(5) {
        if !exists(&h, "expiring").await {
            gone = Some(last.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone = gone.expect("the lease expires");
    assert!(gone >= Duration::from_secs(1), "expired after {gone:?}");
    assert_eq!(h.status().await.unwrap().leases, 0);

    // The member's minimum TTL applies, and etcd's maximum.
    let short = h.lease_grant(0, 0).await.unwrap();
    assert_eq!(short.ttl_secs, 1);
    assert_eq!(
        h.lease_grant(0, i64::MAX).await.unwrap_err(),
        ClientError::Kv(KvError::LeaseTtlTooLarge)
    );
    node.stop().await;
}

#[tokio::test]
async fn watch_replays_history_then_follows_live_writes() {
    let node = start(|_| {}).await;
    let h = node.handle.clone();
    let first = put(&h, "w/a", "1").await;
    put(&h, "other", "x").await;
    put(&h, "w/b", "2").await;

    let mut stream = h.watch_stream().await.unwrap();
    stream
        .create(WatchCreateRequest::prefix("w/").with_start_revision(first))
        .await
        .unwrap();
    let created = next(&mut stream).await;
    assert!(created.created && !created.canceled, "{created:?}");
    let id = created.watch_id;
    let replayed = events(&mut stream, 2).await;
    assert_eq!(
        replayed,
        [
            (first, "w/a".into(), "1".into()),
            (first + 2, "w/b".into(), "2".into())
        ]
    );
    assert_eq!(h.status().await.unwrap().watchers, 1);

    // Live: only matching keys, in order.
    let r1 = put(&h, "w/c", "3").await;
    put(&h, "zzz", "no").await;
    let r2 = put(&h, "w/a", "4").await;
    let live = events(&mut stream, 2).await;
    assert_eq!(
        live,
        [
            (r1, "w/c".into(), "3".into()),
            (r2, "w/a".into(), "4".into())
        ]
    );

    // Progress: every watcher synced, so at once, at the current revision.
    stream.progress().await.unwrap();
    let p = next(&mut stream).await;
    assert_eq!(p.watch_id, WatchId::INVALID);
    assert_eq!(p.header_revision, r2);

    // Cancel, then closing the stream removes everything.
    stream.cancel(id).await.unwrap();
    let c = next(&mut stream).await;
    assert!(c.canceled && c.watch_id == id, "{c:?}");
    stream.create(WatchCreateRequest::key("w/a")).await.unwrap();
    assert!(next(&mut stream).await.created);
    assert_eq!(h.status().await.unwrap().watchers, 1);
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(2);
    while h.status().await.unwrap().watchers != 0 {
        assert!(Instant::now() < deadline, "stream not closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.stop().await;
}

#[tokio::test]
async fn compaction_explicit_and_watch_answers() {
    let node = start(|_| {}).await;
    let h = node.handle.clone();
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(put(&h, "k", &i.to_string()).await);
    }
    h.compact(revs[3], false).await.unwrap();
    assert_eq!(h.status().await.unwrap().compact_revision, revs[3]);
    assert!(matches!(
        h.compact(revs[1], false).await.unwrap_err(),
        ClientError::Kv(KvError::Compacted { .. })
    ));
    assert_eq!(
        h.compact(revs[4] + 10, false).await.unwrap_err(),
        ClientError::Kv(KvError::FutureRevision)
    );

    let mut stream = h.watch_stream().await.unwrap();
    stream
        .create(WatchCreateRequest::key("k").with_start_revision(revs[1]))
        .await
        .unwrap();
    assert!(next(&mut stream).await.created);
    let r = next(&mut stream).await;
    assert!(r.canceled, "{r:?}");
    assert_eq!(r.compact_revision, revs[3]);
    // From the compaction point on, history is still there.
    stream
        .create(WatchCreateRequest::key("k").with_start_revision(revs[3]))
        .await
        .unwrap();
    assert!(next(&mut stream).await.created);
    let got = events(&mut stream, 2).await;
    assert_eq!(got[0].0, revs[3]);
    assert_eq!(got[1].0, revs[4]);
    node.stop().await;
}

#[tokio::test]
async fn auto_compaction_on_the_leader() {
    let node =
        start(|c| c.auto_compaction = Some(AutoCompactionMode::Periodic { retention_ms: 200 }))
            .await;
    let h = node.handle.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    loop {
        put(&h, "k", &i.to_string()).await;
        i += 1;
        if h.status().await.unwrap().compact_revision > 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no auto-compaction");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.stop().await;
}

#[tokio::test]
async fn a_slow_watcher_is_cancelled_and_can_resume() {
    let node = start(|c| {
        c.watch = WatchConfig {
            stream_queue_responses_max: 8,
            ..WatchConfig::default()
        };
        c.watch_channel_responses = 2;
    })
    .await;
    let h = node.handle.clone();
    let mut stream = h.watch_stream().await.unwrap();
    stream
        .create(WatchCreateRequest::prefix("s/"))
        .await
        .unwrap();
    assert!(next(&mut stream).await.created);
    // Write without reading: the channel (2) and the hub's queue (8) fill up.
    let mut written = Vec::new();
    for i in 0..40 {
        written.push(put(&h, &format!("s/{i}"), "v").await);
    }
    let mut seen = Vec::new();
    let resume = loop {
        let r = next(&mut stream).await;
        if r.canceled {
            assert!(r.cancel_reason.contains("too slow"), "{r:?}");
            let at = r
                .cancel_reason
                .rsplit(' ')
                .next()
                .unwrap()
                .parse::<i64>()
                .unwrap();
            break at;
        }
        seen.extend(r.events.iter().map(|e| e.kv.mod_revision));
    };
    assert!(seen.len() < written.len(), "nothing was dropped");
    assert_eq!(seen, written[..seen.len()]);
    assert_eq!(resume, written[seen.len()]);
    // Resuming from the named revision delivers the rest, exactly once.
    stream
        .create(WatchCreateRequest::prefix("s/").with_start_revision(resume))
        .await
        .unwrap();
    assert!(next(&mut stream).await.created);
    let rest = events(&mut stream, written.len() - seen.len()).await;
    let rest: Vec<i64> = rest.iter().map(|e| e.0).collect();
    assert_eq!(rest, written[seen.len()..]);
    node.stop().await;
}

#[tokio::test]
async fn writes_pass_the_member_limits_first() {
    let node = start(|c| c.limits.value_bytes_max = 16).await;
    let h = node.handle.clone();
    let err = h.write(put_cmd("k", &"x".repeat(17), 0)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Kv(KvError::ValueTooLarge { .. })),
        "{err:?}"
    );
    let err = h.write(put_cmd("", "v", 0)).await.unwrap_err();
    assert_eq!(err, ClientError::Kv(KvError::EmptyKey));
    put(&h, "k", "small").await;
    node.stop().await;
}
