//! A member whose disk fills up stops accepting writes with a clear error, and loses nothing it
//! acknowledged: the node loop over real file storage with an injected disk-full fault.

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use common::SingleNode;
use sextant_core::kv::{Command, PutRequest};
use sextant_core::EntryPayload;
use sextant_net::node::{ClientError, LogCommand, NodeConfig};
use sextant_net::storage::{FaultInjector, FileStorage, StorageOptions};

fn put(key: &str) -> Command {
    Command::Put(PutRequest {
        key: Bytes::from(key.to_string()),
        value: Bytes::from(vec![b'v'; 512]),
        ..Default::default()
    })
}

#[tokio::test]
async fn disk_full_stops_writes_and_keeps_acknowledged_data() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultInjector::new();
    let opts = StorageOptions {
        faults: Some(faults.clone()),
        ..StorageOptions::default()
    };
    let (storage, _) = FileStorage::open(dir.path(), opts).unwrap();
    let node = SingleNode::start(storage, NodeConfig::new(99, 1));
    let handle = &node.handle;

    let mut acked = BTreeSet::new();
    for i in 0..20 {
        let k = format!("before{i}");
        handle.write(put(&k)).await.unwrap();
        acked.insert(k);
    }
    // The disk fills up part-way through the next writes.
    faults.disk_full_after(4096);
    let mut failure = None;
    for i in 0..200 {
        let k = format!("after{i}");
        match handle.write(put(&k)).await {
            Ok(_) => {
                acked.insert(k);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("a write must fail once the disk is full");
    assert!(
        matches!(failure, ClientError::StorageFailed(_)),
        "{failure:?}"
    );
    assert!(
        failure.to_string().contains("accepts no writes"),
        "{failure}"
    );
    // Every later write is refused at once, with the same clear error.
    let again = handle.write(put("later")).await.unwrap_err();
    assert!(matches!(again, ClientError::StorageFailed(_)), "{again:?}");
    let status = handle.status().await.unwrap();
    assert!(
        status
            .storage_failed
            .as_deref()
            .unwrap_or("")
            .contains("space"),
        "{status:?}"
    );

    node.stop().await;

    // Reopen (the disk has room again): every acknowledged write is in the log.
    faults.heal();
    let (_, recovered) = FileStorage::open(dir.path(), StorageOptions::default()).unwrap();
    let logged: BTreeSet<String> = recovered
        .state
        .entries
        .iter()
        .filter_map(|e| match &e.payload {
            EntryPayload::Normal(d) => LogCommand::decode(d),
            _ => None,
        })
        .filter_map(|lc| match lc.cmd {
            Command::Put(p) => Some(String::from_utf8(p.key.to_vec()).unwrap()),
            _ => None,
        })
        .collect();
    let lost: Vec<_> = acked.difference(&logged).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(
        acked.len() > 20,
        "some writes after the fault was armed succeeded first"
    );
}
