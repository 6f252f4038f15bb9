//! Disaster recovery end to end with real processes: write keys to a running member, take a
//! `Snapshot` over gRPC into a file, `sextant snapshot restore` it into a new data dir, start
//! a new member on that dir, and find the keys, their history and the revision there. Restore
//! refuses a damaged file and a data dir that is not empty.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::kv_client::KvClient;
use sextant_net::grpc::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use sextant_tests::{client, eventually, free_port, sextant_bin, ProcessCluster, Tuning};
use tonic::transport::{Channel, Endpoint};

/// Kills the process when the test ends, also on failure.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap()
}

fn restore(file: &std::path::Path, dir: &std::path::Path, peer: &str) -> std::process::Output {
    Command::new(sextant_bin())
        .args(["snapshot", "restore"])
        .arg(file)
        .arg("--data-dir")
        .arg(dir)
        .args(["--name", "r1"])
        .args(["--initial-cluster", &format!("r1={peer}")])
        .args(["--initial-cluster-token", "restored"])
        .args(["--initial-advertise-peer-urls", peer])
        .output()
        .expect("run sextant snapshot restore")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_restore_into_a_new_cluster() {
    let c = ProcessCluster::start(1, Tuning::default());
    let url = c.members[0].client_url();
    let mut cl = eventually(Duration::from_secs(20), || {
        let url = url.clone();
        async move {
            let mut cl = client(&url).await;
            cl.put("probe", "x").await.ok()?;
            Some(cl)
        }
    })
    .await
    .unwrap_or_else(|| panic!("member never served a write\n{}", c.logs()));
    for i in 0..20 {
        cl.put(&format!("key{}", i % 5), &format!("value{i}"))
            .await
            .unwrap();
    }
    let revision = cl.status().await.unwrap().header.unwrap().revision;

    let ch = channel(&url).await;
    let mut stream = MaintenanceClient::new(ch)
        .max_decoding_message_size(usize::MAX)
        .snapshot(pb::SnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        bytes.extend_from_slice(&m.blob);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    std::fs::write(&file, &bytes).unwrap();

    let ip = Ipv4Addr::new(127, 0, 0, 1);
    let peer = format!("http://{ip}:{}", free_port(ip));
    let client_url = format!("http://{ip}:{}", free_port(ip));

    // A damaged copy is refused.
    let damaged = dir.path().join("damaged.db");
    let mut bad = bytes.clone();
    bad[bytes.len() / 2] ^= 0x55;
    std::fs::write(&damaged, &bad).unwrap();
    let out = restore(&damaged, &dir.path().join("never"), &peer);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("never").exists());

    let data = dir.path().join("restored");
    let out = restore(&file, &data, &peer);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Restoring again into the now non-empty dir is refused.
    let again = restore(&file, &data, &peer);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    let log = std::fs::File::create(dir.path().join("restored.log")).unwrap();
    let _server = Killed(
        Command::new(sextant_bin())
            .arg("server")
            .args(["--name", "r1"])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("r1={peer}")])
            .args(["--initial-cluster-token", "restored"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let restored_log = || std::fs::read_to_string(dir.path().join("restored.log")).unwrap();
    let mut rc = eventually(Duration::from_secs(20), || {
        let u = client_url.clone();
        async move {
            let mut rc = client(&u).await;
            rc.status().await.ok().filter(|s| s.leader != 0)?;
            Some(rc)
        }
    })
    .await
    .unwrap_or_else(|| panic!("restored member never led\n{}", restored_log()));
    let st = rc.status().await.unwrap();
    assert_eq!(st.header.unwrap().revision, revision);
    for i in 15..20 {
        assert_eq!(
            rc.get(&format!("key{}", i % 5), false).await.unwrap(),
            Some(format!("value{i}"))
        );
    }
    // History came along: an older revision still reads (put i wrote at revision
    // `revision - 19 + i`, so at `revision - 10` key0 holds put 5's value).
    let mut kv = KvClient::new(channel(&client_url).await);
    let old = kv
        .range(pb::RangeRequest {
            key: "key0".into(),
            revision: revision - 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.kvs[0].value, b"value5");
    // And the new cluster takes writes on top, at the next revision.
    let put = rc.put("after", "restore").await.unwrap();
    assert_eq!(put.header.unwrap().revision, revision + 1);
}
