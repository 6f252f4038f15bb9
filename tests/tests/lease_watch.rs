//! Leases and watches on a 3-member cluster of real `sextant` processes: a lease granted at a
//! follower and kept alive at that follower over one keepalive stream (forwarded to the leader
//! through the member registry's client URLs), a key attached to it, a watcher at the other
//! follower replaying from revision 1 and following live writes, the lease's TTL and keys
//! asked at the follower, and revoking it deleting the key (seen by the watcher).

use std::time::Duration;

use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::kv_client::KvClient;
use sextant_net::grpc::pb::etcdserverpb::lease_client::LeaseClient;
use sextant_net::grpc::pb::etcdserverpb::watch_client::WatchClient;
use sextant_net::grpc::pb::etcdserverpb::watch_request::RequestUnion;
use sextant_tests::{client, eventually, ProcessCluster, Tuning};
use tokio::sync::mpsc;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(20);

async fn channel(url: &str) -> Channel {
    // `client` retries while the member starts; then a plain channel for the other services.
    client(url).await;
    Channel::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

fn stream_of<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
}

async fn next<T>(s: &mut tonic::Streaming<T>) -> T {
    tokio::time::timeout(WAIT, s.message())
        .await
        .expect("a response in time")
        .expect("stream ok")
        .expect("stream open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_watches_across_members() {
    let c = ProcessCluster::start(3, Tuning::default());
    let urls: Vec<String> = c.members.iter().map(|m| m.client_url()).collect();
    let leader_id = eventually(WAIT, || {
        let urls = urls.clone();
        async move {
            let mut ids = Vec::new();
            for u in &urls {
                ids.push(client(u).await.status().await.ok()?.leader);
            }
            (ids[0] != 0 && ids.iter().all(|l| *l == ids[0])).then_some(ids[0])
        }
    })
    .await
    .unwrap_or_else(|| panic!("no leader\n{}", c.logs()));
    let mut leader = None;
    for (k, u) in urls.iter().enumerate() {
        let st = client(u).await.status().await.expect("status");
        if st.header.unwrap().member_id == leader_id {
            leader = Some(k);
        }
    }
    let leader = leader.expect("leader is a member");
    let (f1, f2) = ((leader + 1) % 3, (leader + 2) % 3);
    let f1_ch = channel(&urls[f1]).await;
    let f2_ch = channel(&urls[f2]).await;

    // A watcher at a follower, from revision 1.
    let (wtx, wrx) = mpsc::channel(4);
    let mut watch = WatchClient::new(f2_ch.clone())
        .watch(stream_of(wrx))
        .await
        .expect("watch")
        .into_inner();
    wtx.send(pb::WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(pb::WatchCreateRequest {
            key: "e2e/".into(),
            range_end: "e2e0".into(),
            start_revision: 1,
            prev_kv: true,
            ..Default::default()
        })),
    })
    .await
    .expect("send create");
    let created = next(&mut watch).await;
    assert!(created.created && !created.canceled);
    assert_eq!(created.header.unwrap().member_id, {
        let st = client(&urls[f2]).await.status().await.unwrap();
        st.header.unwrap().member_id
    });

    let mut lease = LeaseClient::new(f1_ch.clone());
    let g = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 10, id: 0 })
        .await
        .expect("grant at a follower")
        .into_inner();
    let mut kv = KvClient::new(f1_ch.clone());
    let put = kv
        .put(pb::PutRequest {
            key: "e2e/session".into(),
            value: "held".into(),
            lease: g.id,
            ..Default::default()
        })
        .await
        .expect("put")
        .into_inner();
    let r = next(&mut watch).await;
    assert_eq!(r.events.len(), 1);
    let kv0 = r.events[0].kv.clone().unwrap();
    assert_eq!(
        (kv0.lease, kv0.mod_revision),
        (g.id, put.header.unwrap().revision)
    );

    // Keepalives at a follower, over one stream, for longer than the TTL.
    let (ktx, krx) = mpsc::channel(4);
    let mut follower_lease = LeaseClient::new(f1_ch.clone());
    let mut ka = follower_lease
        .lease_keep_alive(stream_of(krx))
        .await
        .expect("keepalive")
        .into_inner();
    for _ in 0..4 {
        ktx.send(pb::LeaseKeepAliveRequest { id: g.id })
            .await
            .unwrap();
        let r = next(&mut ka).await;
        assert_eq!((r.id, r.ttl), (g.id, 10));
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let t = follower_lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: g.id,
            keys: true,
        })
        .await
        .expect("ttl")
        .into_inner();
    assert!(t.ttl > 0 && t.ttl <= 10, "ttl {}", t.ttl);
    assert_eq!(t.keys, vec![b"e2e/session".to_vec()]);

    // Revoked at a follower: the key goes, and the watcher sees the delete with prev_kv.
    LeaseClient::new(f2_ch)
        .lease_revoke(pb::LeaseRevokeRequest { id: g.id })
        .await
        .expect("revoke");
    let r = next(&mut watch).await;
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].r#type, 1, "a delete");
    assert_eq!(r.events[0].prev_kv.as_ref().unwrap().value, b"held");
    ktx.send(pb::LeaseKeepAliveRequest { id: g.id })
        .await
        .unwrap();
    assert_eq!(
        next(&mut ka).await.ttl,
        0,
        "a revoked lease keeps alive with TTL 0"
    );
}
