//! etcd's `Maintenance` service over real gRPC against an in-process three-member cluster
//! (real storage, TCP peers on 127.0.0.1): HashKV agrees across members at one revision, the
//! Snapshot stream ends with a SHA-256 that verifies and restores, alarms are replicated and
//! refuse writes as etcd's, MoveLeader answers only on the leader and moves leadership, and
//! Defragment snapshots and answers.

#![cfg(not(madsim))]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::kv_client::KvClient;
use sextant_net::grpc::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use sextant_net::server::snapshot_file;
use sextant_net::server::Server;
use tonic::transport::Channel;
use tonic::Code;

struct Cluster {
    servers: Vec<Server>,
    channels: Vec<Channel>,
    _dir: tempfile::TempDir,
}

async fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let peers: Vec<SocketAddr> = (0..3).map(|_| common::free_addr()).collect();
    let initial = common::initial_cluster(&peers);
    let mut servers = Vec::new();
    for (i, peer) in peers.iter().enumerate() {
        let cfg = common::test_config(
            &format!("m{i}"),
            dir.path().join(format!("m{i}")),
            *peer,
            initial.clone(),
            "grpc-maintenance-test",
        );
        servers.push(Server::start(cfg).await.expect("member starts"));
    }
    let mut channels = Vec::new();
    for s in &servers {
        channels.push(common::client_channel(s).await);
    }
    let c = Cluster {
        servers,
        channels,
        _dir: dir,
    };
    c.leader().await;
    c
}

impl Cluster {
    /// The index of the member that leads, once all agree on one.
    async fn leader(&self) -> usize {
        for _ in 0..200 {
            let mut leaders = Vec::new();
            for s in &self.servers {
                leaders.push(s.node.status().await.unwrap().leader);
            }
            if let Some(Some(l)) = leaders.first().copied() {
                if leaders.iter().all(|x| *x == Some(l)) {
                    return self.servers.iter().position(|s| s.member_id == l).unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no leader agreed on");
    }

    fn kv(&self, i: usize) -> KvClient<Channel> {
        KvClient::new(self.channels[i].clone())
    }

    fn maintenance(&self, i: usize) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channels[i].clone()).max_decoding_message_size(usize::MAX)
    }

    async fn put(&self, i: usize, k: &str, v: &str) -> Result<i64, tonic::Status> {
        let r = self
            .kv(i)
            .put(pb::PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            })
            .await?;
        Ok(r.into_inner().header.unwrap().revision)
    }

    /// Waits until every member applied `revision`.
    async fn applied(&self, revision: i64) {
        for s in &self.servers {
            for _ in 0..200 {
                if s.node.status().await.unwrap().revision >= revision {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

#[tokio::test]
async fn hash_kv_agrees_across_members_and_snapshot_verifies() {
    let c = start_cluster().await;
    let mut rev = 0;
    for i in 0..30 {
        rev = c
            .put(i % 3, &format!("k{}", i % 7), &format!("v{i}"))
            .await
            .unwrap();
    }
    c.applied(rev).await;
    let mut hashes = Vec::new();
    for i in 0..3 {
        let h = c
            .maintenance(i)
            .hash_kv(pb::HashKvRequest { revision: rev })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(h.hash_revision, rev);
        hashes.push((h.hash, h.compact_revision));
    }
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    // An earlier revision differs, and agrees too.
    let early: Vec<u32> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(
                c.maintenance(i)
                    .hash_kv(pb::HashKvRequest { revision: rev - 5 })
                    .await
                    .unwrap()
                    .into_inner()
                    .hash,
            );
        }
        v
    };
    assert!(early.iter().all(|h| *h == early[0]));
    assert_ne!(early[0], hashes[0].0);
    let err = c
        .maintenance(0)
        .hash_kv(pb::HashKvRequest {
            revision: rev + 100,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    let hash = c
        .maintenance(1)
        .hash(pb::HashRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hash.header.unwrap().member_id, c.servers[1].member_id);

    let mut stream = c
        .maintenance(2)
        .snapshot(pb::SnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut file = Vec::new();
    let mut last_remaining = u64::MAX;
    while let Some(m) = stream.message().await.unwrap() {
        assert!(m.remaining_bytes <= last_remaining);
        last_remaining = m.remaining_bytes;
        file.extend_from_slice(&m.blob);
    }
    assert_eq!(last_remaining, 0);
    assert_eq!(
        file.len() % 512,
        32,
        "etcd clients look for the checksum this way"
    );
    let (header, state) = snapshot_file::decode(&file).expect("checksum verifies");
    assert_eq!(header.revision, rev);
    let kv = sextant_net::core::kv::KvStore::restore(&state).unwrap();
    assert_eq!(kv.revision(), rev);
    assert_eq!(kv.len(), 7);
    let last = file.len() - 1;
    file[last / 2] ^= 0xff;
    assert!(snapshot_file::decode(&file).is_err());

    // Defragment snapshots now and answers.
    let before = c.servers[0].node.status().await.unwrap().snapshot_index;
    c.maintenance(0)
        .defragment(pb::DefragmentRequest {})
        .await
        .unwrap();
    let after = c.servers[0].node.status().await.unwrap().snapshot_index;
    assert!(after > before, "{before} -> {after}");
}

#[tokio::test]
async fn alarms_are_replicated_and_nospace_refuses_puts() {
    let c = start_cluster().await;
    c.put(0, "a", "1").await.unwrap();
    let target = c.servers[1].member_id;
    let activated = c
        .maintenance(0)
        .alarm(pb::AlarmRequest {
            action: pb::alarm_request::AlarmAction::Activate as i32,
            member_id: target,
            alarm: pb::AlarmType::Nospace as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(activated.alarms.len(), 1);
    for i in 0..3 {
        let got = c
            .maintenance(i)
            .alarm(pb::AlarmRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            got.alarms,
            vec![pb::AlarmMember {
                member_id: target,
                alarm: pb::AlarmType::Nospace as i32
            }],
            "member {i}"
        );
    }
    let err = c.put(2, "b", "2").await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded"
        )
    );
    // Deletes still apply.
    c.kv(1)
        .delete_range(pb::DeleteRangeRequest {
            key: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let cleared = c
        .maintenance(2)
        .alarm(pb::AlarmRequest {
            action: pb::alarm_request::AlarmAction::Deactivate as i32,
            member_id: target,
            alarm: pb::AlarmType::Nospace as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.alarms.len(), 1);
    c.put(2, "b", "2").await.unwrap();
    let none = c
        .maintenance(1)
        .alarm(pb::AlarmRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(none.alarms.is_empty());
}

#[tokio::test]
async fn move_leader_only_on_the_leader_and_moves_it() {
    let c = start_cluster().await;
    let leader = c.leader().await;
    let follower = (leader + 1) % 3;
    let target = c.servers[follower].member_id;
    let err = c
        .maintenance(follower)
        .move_leader(pb::MoveLeaderRequest { target_id: target })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::FailedPrecondition, "etcdserver: not leader")
    );
    let err = c
        .maintenance(leader)
        .move_leader(pb::MoveLeaderRequest { target_id: 12345 })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: bad leader transferee");
    c.maintenance(leader)
        .move_leader(pb::MoveLeaderRequest { target_id: target })
        .await
        .unwrap();
    assert_eq!(c.leader().await, follower);
}
