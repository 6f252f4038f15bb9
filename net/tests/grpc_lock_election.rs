//! etcd's `v3lock.Lock` and `v3election.Election` over real gRPC connections to a real
//! single-member server: locks serialize contenders with growing fencing tokens, waiters
//! whose lease goes or whose client goes away leave the queue, and elections campaign,
//! proclaim, observe and resign with etcd's answers.

#![cfg(not(madsim))]

mod common;

use std::time::Duration;

use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::kv_client::KvClient;
use sextant_net::grpc::pb::v3electionpb as epb;
use sextant_net::grpc::pb::v3electionpb::election_client::ElectionClient;
use sextant_net::grpc::pb::v3lockpb as lpb;
use sextant_net::grpc::pb::v3lockpb::lock_client::LockClient;
use sextant_net::server::Server;
use tonic::transport::Channel;
use tonic::Code;

struct Node {
    server: Server,
    channel: Channel,
    _dir: tempfile::TempDir,
}

async fn start() -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = common::single_member_config(dir.path().join("data"), "grpc-lock-test");
    let server = Server::start(cfg).await.expect("server starts");
    let channel = common::client_channel(&server).await;
    Node {
        server,
        channel,
        _dir: dir,
    }
}

impl Node {
    fn lock(&self) -> LockClient<Channel> {
        LockClient::new(self.channel.clone())
    }

    fn election(&self) -> ElectionClient<Channel> {
        ElectionClient::new(self.channel.clone())
    }

    async fn lease(&self) -> i64 {
        self.server.node.lease_grant(0, 60).await.unwrap().id
    }

    /// The keys under `prefix` with their create revisions.
    async fn keys(&self, prefix: &str) -> Vec<(String, i64)> {
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().unwrap() += 1;
        let r = KvClient::new(self.channel.clone())
            .range(pb::RangeRequest {
                key: prefix.into(),
                range_end: end,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        r.kvs
            .into_iter()
            .map(|kv| (String::from_utf8(kv.key).unwrap(), kv.create_revision))
            .collect()
    }
}

async fn lock(
    c: &mut LockClient<Channel>,
    name: &str,
    lease: i64,
) -> Result<Vec<u8>, tonic::Status> {
    c.lock(lpb::LockRequest {
        name: name.into(),
        lease,
    })
    .await
    .map(|r| r.into_inner().key)
}

#[tokio::test]
async fn contenders_serialize_and_fencing_tokens_grow() {
    let n = start().await;
    let (l1, l2) = (n.lease().await, n.lease().await);
    let mut c = n.lock();
    let k1 = lock(&mut c, "res", l1).await.unwrap();
    assert_eq!(k1, format!("res/{l1:x}").into_bytes());
    let mut c2 = n.lock();
    let waiter = tokio::spawn(async move { lock(&mut c2, "res", l2).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the second contender must wait");
    let first_token = n.keys("res/").await[0].1;
    c.unlock(lpb::UnlockRequest { key: k1.clone() })
        .await
        .unwrap();
    let k2 = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter gets the lock once it is released")
        .unwrap()
        .unwrap();
    let held = n.keys("res/").await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].0.as_bytes(), &k2[..]);
    assert!(
        held[0].1 > first_token,
        "fencing tokens grow: {held:?} vs {first_token}"
    );
    // The lock again, after the second holder: a larger token still.
    c.unlock(lpb::UnlockRequest { key: k2 }).await.unwrap();
    lock(&mut c, "res", l1).await.unwrap();
    assert!(n.keys("res/").await[0].1 > held[0].1);
}

#[tokio::test]
async fn waiter_whose_lease_is_revoked_leaves_with_an_error() {
    let n = start().await;
    let (l1, l2) = (n.lease().await, n.lease().await);
    let mut c = n.lock();
    lock(&mut c, "m", l1).await.unwrap();
    let mut c2 = n.lock();
    let waiter = tokio::spawn(async move { lock(&mut c2, "m", l2).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    n.server.node.lease_revoke(l2).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unknown, "mutex: session is expired")
    );
    assert_eq!(n.keys("m/").await.len(), 1);
    // A lease that does not exist: etcd's lease-not-found.
    let err = lock(&mut c, "m", 0x7777).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
}

#[tokio::test]
async fn a_waiter_whose_client_goes_away_leaves_the_queue() {
    let n = start().await;
    let (l1, l2) = (n.lease().await, n.lease().await);
    let mut c = n.lock();
    lock(&mut c, "gone", l1).await.unwrap();
    let mut c2 = n.lock();
    let waiter = tokio::spawn(async move { lock(&mut c2, "gone", l2).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(n.keys("gone/").await.len(), 2, "the waiter is queued");
    waiter.abort();
    let mut left = false;
    for _ in 0..100 {
        if n.keys("gone/").await.len() == 1 {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left, "the abandoned waiter's key must be deleted");
}

#[tokio::test]
async fn campaign_proclaim_observe_resign() {
    let n = start().await;
    let (l1, l2) = (n.lease().await, n.lease().await);
    let mut e = n.election();
    let err = e
        .leader(epb::LeaderRequest { name: "e".into() })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unknown, "election: no leader")
    );

    let a = e
        .campaign(epb::CampaignRequest {
            name: "e".into(),
            lease: l1,
            value: "a1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .leader
        .unwrap();
    let mut observe = e
        .observe(epb::LeaderRequest { name: "e".into() })
        .await
        .unwrap()
        .into_inner();
    for v in ["a2", "a3"] {
        e.proclaim(epb::ProclaimRequest {
            leader: Some(a.clone()),
            value: v.into(),
        })
        .await
        .unwrap();
    }
    let mut e2 = n.election();
    let b = tokio::spawn(async move {
        e2.campaign(epb::CampaignRequest {
            name: "e".into(),
            lease: l2,
            value: "b1".into(),
        })
        .await
        .map(|r| r.into_inner().leader.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!b.is_finished(), "the second candidate waits");
    e.resign(epb::ResignRequest {
        leader: Some(a.clone()),
    })
    .await
    .unwrap();
    let b = tokio::time::timeout(Duration::from_secs(5), b)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(b.rev > a.rev);
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let r = tokio::time::timeout(Duration::from_secs(5), observe.message())
            .await
            .expect("observe delivers")
            .unwrap()
            .unwrap();
        seen.push(String::from_utf8(r.kv.unwrap().value).unwrap());
    }
    assert_eq!(seen, ["a1", "a2", "a3", "b1"]);
    let leader = e
        .leader(epb::LeaderRequest { name: "e".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(leader.kv.unwrap().value, b"b1");
    // The old leader key no longer proclaims.
    let err = e
        .proclaim(epb::ProclaimRequest {
            leader: Some(a),
            value: "late".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unknown, "election: not leader")
    );
    let err = e
        .proclaim(epb::ProclaimRequest {
            leader: None,
            value: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "\"leader\" field must be provided");
}
