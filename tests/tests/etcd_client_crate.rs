//! A third-party etcd client library, the `etcd-client` crate (its own generated protos, its
//! own balancing channel), against a 3-member Sextant cluster of real processes: KV and txn,
//! watch streams, lease grant / keep-alive stream / time-to-live / revoke, and the Lock and
//! Election services — what a Rust application using etcd does, unchanged.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, LockOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use sextant_tests::{ProcessCluster, Tuning};

/// A client balanced over every member, once each member serves a read on its own (the
/// client sends each request to any of them; one still starting refuses the connection).
async fn connect(c: &ProcessCluster) -> Client {
    let eps: Vec<String> = c.members.iter().map(|m| m.client_url()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for ep in &eps {
        while !serves(std::slice::from_ref(ep)).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{ep} not serving\n{}",
                c.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Client::connect(&eps, None)
        .await
        .expect("connect to every member")
}

async fn serves(eps: &[String]) -> bool {
    match Client::connect(eps, None).await {
        Ok(mut cl) => cl.get("probe", None).await.is_ok(),
        Err(_) => false,
    }
}

/// Awaits `f` for at most `secs` seconds.
async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_txn_and_watch_stream() {
    let c = ProcessCluster::start(3, Tuning::default());
    let mut cl = connect(&c).await;

    let (mut watcher, mut stream) = {
        let ws = cl
            .watch(
                "app/",
                Some(WatchOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .expect("watch");
        ws.split()
    };
    let created = within(10, stream.message())
        .await
        .expect("watch stream")
        .expect("created response");
    assert!(created.created());
    let watch_id = created.watch_id();

    let put = cl.put("app/a", "1", None).await.expect("put");
    let rev_a = put.header().expect("header").revision();
    cl.put("app/a", "2", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("put");
    cl.put("app/b", "x", None).await.expect("put");
    let got = cl
        .get("app/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    let kvs: Vec<(String, String)> = got
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().expect("utf-8").to_string(),
                kv.value_str().expect("utf-8").to_string(),
            )
        })
        .collect();
    assert_eq!(
        kvs,
        [
            ("app/a".to_string(), "2".to_string()),
            ("app/b".to_string(), "x".to_string())
        ]
    );
    let old = cl
        .get("app/a", Some(GetOptions::new().with_revision(rev_a)))
        .await
        .expect("get at revision");
    assert_eq!(old.kvs()[0].value_str().expect("utf-8"), "1");

    // Compare-and-set through a txn.
    let txn = Txn::new()
        .when([Compare::value("app/a", CompareOp::Equal, "2")])
        .and_then([TxnOp::put("app/a", "3", None)])
        .or_else([TxnOp::get("app/a", None)]);
    assert!(cl.txn(txn.clone()).await.expect("txn").succeeded());
    assert!(!cl.txn(txn).await.expect("txn").succeeded());
    cl.delete("app/b", None).await.expect("delete");

    // The watcher saw every change, in order, with previous values.
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let resp = within(10, stream.message())
            .await
            .expect("watch stream")
            .expect("watch response");
        assert_eq!(resp.watch_id(), watch_id);
        for e in resp.events() {
            let kv = e.kv().expect("kv");
            seen.push((
                e.event_type(),
                kv.key_str().expect("utf-8").to_string(),
                kv.value_str().expect("utf-8").to_string(),
                e.prev_kv()
                    .map(|p| p.value_str().expect("utf-8").to_string()),
            ));
        }
    }
    assert_eq!(
        seen,
        [
            (EventType::Put, "app/a".into(), "1".into(), None),
            (EventType::Put, "app/a".into(), "2".into(), Some("1".into())),
            (EventType::Put, "app/b".into(), "x".into(), None),
            (EventType::Put, "app/a".into(), "3".into(), Some("2".into())),
            (
                EventType::Delete,
                "app/b".into(),
                "".into(),
                Some("x".into())
            ),
        ]
    );
    watcher.cancel(watch_id).await.expect("cancel");
    let canceled = within(10, stream.message())
        .await
        .expect("watch stream")
        .expect("cancel response");
    assert!(canceled.canceled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_keepalive_stream_ttl_and_revoke() {
    let c = ProcessCluster::start(3, Tuning::default());
    let mut cl = connect(&c).await;

    let lease = cl.lease_grant(3, None).await.expect("grant");
    let id = lease.id();
    assert_eq!(lease.ttl(), 3);
    cl.put(
        "svc/web-1",
        "10.0.0.1:80",
        Some(PutOptions::new().with_lease(id)),
    )
    .await
    .expect("put with lease");

    // Keep it alive over a stream for longer than its TTL.
    let (mut keeper, mut responses) = cl.lease_keep_alive(id).await.expect("keep-alive");
    for _ in 0..6 {
        keeper.keep_alive().await.expect("send keep-alive");
        let r = within(10, responses.message())
            .await
            .expect("keep-alive stream")
            .expect("keep-alive response");
        assert_eq!(r.id(), id);
        assert_eq!(r.ttl(), 3);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let ttl = cl
        .lease_time_to_live(
            id,
            Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()),
        )
        .await
        .expect("ttl");
    assert!(ttl.ttl() > 0 && ttl.ttl() <= 3, "ttl {}", ttl.ttl());
    assert_eq!(ttl.keys(), [b"svc/web-1".to_vec()]);
    let leases = cl.leases().await.expect("leases");
    assert!(leases.leases().iter().any(|l| l.id() == id));

    cl.lease_revoke(id).await.expect("revoke");
    let got = cl.get("svc/web-1", None).await.expect("get");
    assert!(got.kvs().is_empty(), "the revoked lease's key remains");
    // A keep-alive for the revoked lease answers TTL 0, as etcd does.
    keeper.keep_alive().await.expect("send keep-alive");
    let r = within(10, responses.message())
        .await
        .expect("keep-alive stream")
        .expect("keep-alive response");
    assert_eq!(r.ttl(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_election_services() {
    let c = ProcessCluster::start(3, Tuning::default());
    let mut cl = connect(&c).await;

    let lease = cl.lease_grant(30, None).await.expect("grant").id();
    let first = cl
        .lock("jobs", Some(LockOptions::new().with_lease(lease)))
        .await
        .expect("lock");
    let token_1 = first.header().expect("header").revision();
    // A second contender waits until the first unlocks.
    let lease_2 = cl.lease_grant(30, None).await.expect("grant").id();
    let mut cl2 = cl.clone();
    let waiter = tokio::spawn(async move {
        cl2.lock("jobs", Some(LockOptions::new().with_lease(lease_2)))
            .await
            .expect("second lock")
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "the lock was granted twice");
    cl.unlock(first.key()).await.expect("unlock");
    let second = within(10, waiter).await.expect("join");
    let token_2 = second.header().expect("header").revision();
    assert!(token_2 > token_1, "fencing tokens must grow");
    cl.unlock(second.key()).await.expect("unlock");

    // Election: campaign, observe the proclamation, proclaim a new value, resign.
    let campaign = cl
        .campaign("primary", "node-a", lease)
        .await
        .expect("campaign");
    let leader_key = campaign.leader().expect("leader key").clone();
    let leader = cl.leader("primary").await.expect("leader");
    assert_eq!(
        leader.kv().expect("kv").value_str().expect("utf-8"),
        "node-a"
    );
    let mut observe = cl.observe("primary").await.expect("observe");
    let first_seen = within(10, observe.message())
        .await
        .expect("observe stream")
        .expect("observation");
    assert_eq!(
        first_seen.kv().expect("kv").value_str().expect("utf-8"),
        "node-a"
    );
    cl.proclaim(
        "node-a-v2",
        Some(etcd_client::ProclaimOptions::new().with_leader(leader_key.clone())),
    )
    .await
    .expect("proclaim");
    let next = within(10, observe.message())
        .await
        .expect("observe stream")
        .expect("observation");
    assert_eq!(
        next.kv().expect("kv").value_str().expect("utf-8"),
        "node-a-v2"
    );
    cl.resign(Some(
        etcd_client::ResignOptions::new().with_leader(leader_key),
    ))
    .await
    .expect("resign");
    let err = cl
        .leader("primary")
        .await
        .expect_err("no leader after resign");
    assert!(err.to_string().contains("election: no leader"), "{err}");
}
