//! A real member (file storage, gRPC) reads the values its latest snapshot holds from the
//! snapshot file, memory-mapped, instead of keeping heap copies: once a snapshot is stored the
//! member reports the shared bytes, and every read (latest, past revision, hash) answers the
//! same before, after a restart (which shares from the file it restores from) and after later
//! snapshots move the values onto newer files.

#![cfg(not(madsim))]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::kv_client::KvClient;
use sextant_net::grpc::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use sextant_net::server::Server;
use tonic::transport::Channel;

const KEYS: usize = 300;

async fn start(dir: &Path) -> (Server, Channel) {
    let mut cfg = common::single_member_config(dir.to_path_buf(), "shared-values-test");
    cfg.snapshot_count = 100;
    let server = Server::start(cfg).await.expect("member starts");
    let ch = common::client_channel(&server).await;
    (server, ch)
}

fn value(i: usize, round: usize) -> Vec<u8> {
    format!("value {i} of round {round} ")
        .repeat(4)
        .into_bytes()
}

async fn put_all(ch: &Channel, round: usize, expected: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> i64 {
    let mut kv = KvClient::new(ch.clone());
    let mut revision = 0;
    for i in 0..KEYS {
        let key = format!("key/{i:04}").into_bytes();
        let r = kv
            .put(pb::PutRequest {
                key: key.clone(),
                value: value(i, round),
                ..Default::default()
            })
            .await
            .unwrap();
        revision = r.into_inner().header.unwrap().revision;
        expected.insert(key, value(i, round));
    }
    revision
}

/// Every key and value at `revision` (0: latest).
async fn read_all(ch: &Channel, revision: i64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let r = KvClient::new(ch.clone())
        .range(pb::RangeRequest {
            key: b"key/".to_vec(),
            range_end: b"key0".to_vec(),
            revision,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

async fn hash_at(ch: &Channel, revision: i64) -> u32 {
    MaintenanceClient::new(ch.clone())
        .hash_kv(pb::HashKvRequest { revision })
        .await
        .unwrap()
        .into_inner()
        .hash
}

/// Waits until the member has stored a snapshot at `index_min` or later and shared values with it.
async fn shared_after(server: &Server, index_min: u64) -> u64 {
    for _ in 0..500 {
        let s = server.node.status().await.unwrap();
        if s.snapshot_index >= index_min && s.shared_value_bytes > 0 {
            return s.shared_value_bytes;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no values shared with a snapshot at or after {index_min}");
}

#[tokio::test]
async fn values_are_read_from_the_stored_snapshot_and_answer_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ch) = start(dir.path()).await;
    let mut first = BTreeMap::new();
    let rev_first = put_all(&ch, 1, &mut first).await;
    let mut latest = first.clone();
    let rev_second = put_all(&ch, 2, &mut latest).await;

    let index = server.node.status().await.unwrap().applied_index;
    let shared = shared_after(&server, index - 100).await;
    // Both rounds' values are retained (no compaction); at least the 100-entry snapshot's
    // worth of them must have moved to the file.
    assert!(shared >= 100 * value(0, 1).len() as u64, "shared {shared}");
    assert_eq!(read_all(&ch, 0).await, latest);
    assert_eq!(read_all(&ch, rev_first).await, first);
    let hash = hash_at(&ch, rev_second).await;

    // A restart restores from the file and shares from it at once.
    server.shutdown().await;
    let (server, ch) = start(dir.path()).await;
    assert_eq!(read_all(&ch, 0).await, latest);
    assert_eq!(read_all(&ch, rev_first).await, first);
    assert_eq!(hash_at(&ch, rev_second).await, hash);

    // Later snapshots move the values onto their own files (older ones are removed).
    let rev_third = put_all(&ch, 3, &mut latest).await;
    let index = server.node.status().await.unwrap().applied_index;
    shared_after(&server, index - 100).await;
    assert_eq!(read_all(&ch, 0).await, latest);
    assert_eq!(read_all(&ch, rev_first).await, first);
    assert_eq!(hash_at(&ch, rev_second).await, hash);
    assert_ne!(hash_at(&ch, rev_third).await, hash);
    server.shutdown().await;
}
