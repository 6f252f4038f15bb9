//! etcd v3 `Lease` and `Watch` over real gRPC connections to real in-process servers (file
//! storage in temp dirs, 127.0.0.1, ephemeral client ports), answered as etcd 3.5 answers:
//! lease grant / keepalive / time-to-live / leases / revoke and their errors, expiry deleting
//! attached keys (seen by a watcher), keepalives and TTL queries sent to a follower of a
//! three-member cluster forwarded to the leader (also after the leader changes), and watches:
//! replay from a past revision, `prev_kv`, filters, client-chosen ids, cancel, progress,
//! compacted start revisions, slow clients and closing the stream.

#![cfg(not(madsim))]

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sextant_core::NodeId;
use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::kv_client::KvClient;
use sextant_net::grpc::pb::etcdserverpb::lease_client::LeaseClient;
use sextant_net::grpc::pb::etcdserverpb::watch_client::WatchClient;
use sextant_net::grpc::pb::etcdserverpb::watch_create_request::FilterType;
use sextant_net::grpc::pb::etcdserverpb::watch_request::RequestUnion;
use sextant_net::grpc::pb::mvccpb;
use sextant_net::grpc::MemberDirectory;
use sextant_net::server::Server;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

const WAIT: Duration = Duration::from_secs(20);

/// Client URLs of the in-process servers, filled once they listen.
#[derive(Default)]
struct FixedDirectory(RwLock<BTreeMap<NodeId, Vec<String>>>);

impl MemberDirectory for FixedDirectory {
    fn client_urls(&self, id: NodeId) -> Vec<String> {
        self.0.read().unwrap().get(&id).cloned().unwrap_or_default()
    }
}

struct Cluster {
    servers: Vec<Server>,
    _dirs: Vec<tempfile::TempDir>,
}

/// `n` members on 127.0.0.1, every one resolving the others' client URLs through one
/// [`FixedDirectory`].
async fn cluster(n: usize, token: &str) -> Cluster {
    let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let peers: Vec<u16> = (0..n).map(|_| common::free_port()).collect();
    let initial: BTreeMap<String, Vec<String>> = names
        .iter()
        .zip(&peers)
        .map(|(name, p)| (name.clone(), vec![format!("http://127.0.0.1:{p}")]))
        .collect();
    let directory = Arc::new(FixedDirectory::default());
    let mut servers = Vec::new();
    let mut dirs = Vec::new();
    for (name, port) in names.iter().zip(&peers) {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = common::test_config(
            name,
            dir.path().join("data"),
            SocketAddr::from(([127, 0, 0, 1], *port)),
            initial.clone(),
            token,
        );
        let server = Server::start_with_directory(cfg, directory.clone())
            .await
            .expect("server starts");
        servers.push(server);
        dirs.push(dir);
    }
    for s in &servers {
        let urls = s
            .client_addrs
            .iter()
            .map(|a| format!("http://{a}"))
            .collect();
        directory.0.write().unwrap().insert(s.member_id, urls);
    }
    let c = Cluster {
        servers,
        _dirs: dirs,
    };
    c.leader().await;
    c
}

impl Cluster {
    /// The index of the leader every member agrees on.
    async fn leader(&self) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut leaders = Vec::new();
            for s in &self.servers {
                leaders.push(s.node.status().await.expect("status").leader);
            }
            if let Some(Some(l)) = leaders.first() {
                if leaders.iter().all(|x| *x == Some(*l)) {
                    return self
                        .servers
                        .iter()
                        .position(|s| s.member_id == *l)
                        .expect("leader is a member");
                }
            }
            assert!(Instant::now() < deadline, "no leader: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn channel(&self, i: usize) -> Channel {
        common::client_channel(&self.servers[i]).await
    }

    async fn stop(self) {
        for s in self.servers {
            s.shutdown().await;
        }
    }
}

async fn put(kv: &mut KvClient<Channel>, key: &str, value: &str, lease: i64) -> i64 {
    let r = kv
        .put(pb::PutRequest {
            key: key.into(),
            value: value.into(),
            lease,
            ..Default::default()
        })
        .await
        .expect("put")
        .into_inner();
    r.header.unwrap().revision
}

async fn count(kv: &mut KvClient<Channel>, key: &str) -> i64 {
    kv.range(pb::RangeRequest {
        key: key.into(),
        ..Default::default()
    })
    .await
    .expect("range")
    .into_inner()
    .count
}

/// A client's bidirectional stream: requests in, responses out.
struct Bidi<Req, Resp> {
    tx: mpsc::Sender<Req>,
    rx: Streaming<Resp>,
}

impl<Req, Resp> Bidi<Req, Resp> {
    async fn send(&self, r: Req) {
        assert!(self.tx.send(r).await.is_ok(), "request stream open");
    }

    async fn next(&mut self) -> Resp {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("a response in time")
            .expect("stream ok")
            .expect("stream not ended")
    }
}

fn request_stream<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
}

async fn keepalive_stream(
    lease: &mut LeaseClient<Channel>,
) -> Bidi<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse> {
    let (tx, rx) = mpsc::channel(16);
    let rx = lease
        .lease_keep_alive(request_stream(rx))
        .await
        .expect("keepalive stream opens")
        .into_inner();
    Bidi { tx, rx }
}

type WatchBidi = Bidi<pb::WatchRequest, pb::WatchResponse>;

async fn watch_stream(watch: &mut WatchClient<Channel>) -> WatchBidi {
    let (tx, rx) = mpsc::channel(16);
    let rx = watch
        .watch(request_stream(rx))
        .await
        .expect("watch stream opens")
        .into_inner();
    Bidi { tx, rx }
}

fn create(c: pb::WatchCreateRequest) -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(c)),
    }
}

fn cancel(watch_id: i64) -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(RequestUnion::CancelRequest(pb::WatchCancelRequest {
            watch_id,
        })),
    }
}

fn progress() -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(pb::WatchProgressRequest {})),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A watch response with the header's cluster and member ids checked and left out (they
/// vary), the term shown only as "set".
fn render_watch(r: &pb::WatchResponse, server: &Server) -> String {
    let h = r.header.unwrap_or_default();
    assert_eq!(
        (h.cluster_id, h.member_id),
        (server.cluster_id, server.member_id)
    );
    assert!(h.raft_term > 0, "raft_term set");
    let mut out = format!(
        "watch_id={} revision={} created={} canceled={} compact_revision={} fragment={}",
        r.watch_id, h.revision, r.created, r.canceled, r.compact_revision, r.fragment
    );
    if !r.cancel_reason.is_empty() {
        write!(out, " reason={:?}", r.cancel_reason).unwrap();
    }
    for e in &r.events {
        let kind = if e.r#type == 0 { "PUT" } else { "DELETE" };
        write!(out, "\n  {kind} {}", render_kv(e.kv.as_ref().unwrap())).unwrap();
        if let Some(p) = &e.prev_kv {
            write!(out, "\n    prev {}", render_kv(p)).unwrap();
        }
    }
    out
}

fn render_kv(kv: &mvccpb::KeyValue) -> String {
    format!(
        "{}={:?} create={} mod={} version={} lease={}",
        text(&kv.key),
        text(&kv.value),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        if kv.lease == 0 { "0" } else { "<lease>" }
    )
}

/// Lease responses with the lease id, cluster and member ids left out.
fn render_header(h: &Option<pb::ResponseHeader>, server: &Server) -> String {
    let h = h.unwrap_or_default();
    assert_eq!(
        (h.cluster_id, h.member_id),
        (server.cluster_id, server.member_id)
    );
    assert!(h.raft_term > 0, "raft_term set");
    format!("revision={}", h.revision)
}

#[tokio::test]
async fn lease_grant_keepalive_ttl_leases_and_revoke() {
    let c = cluster(1, "lease-basic").await;
    let s = &c.servers[0];
    let ch = c.channel(0).await;
    let mut lease = LeaseClient::new(ch.clone());
    let mut kv = KvClient::new(ch);
    let mut log = String::new();

    let g = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 30, id: 0 })
        .await
        .expect("grant")
        .into_inner();
    assert!(g.id > 0);
    writeln!(
        log,
        "grant: {} ttl={} error={:?}",
        render_header(&g.header, s),
        g.ttl,
        g.error
    )
    .unwrap();
    put(&mut kv, "lk/a", "1", g.id).await;
    put(&mut kv, "lk/b", "2", g.id).await;
    put(&mut kv, "other", "3", 0).await;

    // A requested id that is taken, a TTL over etcd's maximum.
    let e = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 30, id: g.id })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::FailedPrecondition, "etcdserver: lease already exists")
    );
    let e = lease
        .lease_grant(pb::LeaseGrantRequest {
            ttl: 9_000_000_001,
            id: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::OutOfRange, "etcdserver: too large lease TTL")
    );

    // Keepalives are answered in order; an unknown lease is TTL 0 and the stream stays open.
    let mut ka = keepalive_stream(&mut lease).await;
    for id in [g.id, 424242, g.id] {
        ka.send(pb::LeaseKeepAliveRequest { id }).await;
    }
    for want in [(g.id, 30), (424242, 0), (g.id, 30)] {
        let r = ka.next().await;
        assert_eq!((r.id, r.ttl), want);
        writeln!(
            log,
            "keepalive: {} ttl={}",
            render_header(&r.header, s),
            r.ttl
        )
        .unwrap();
    }

    let t = lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: g.id,
            keys: true,
        })
        .await
        .expect("ttl")
        .into_inner();
    assert_eq!(t.id, g.id);
    assert!((28..=30).contains(&t.ttl), "ttl {}", t.ttl);
    let keys: Vec<String> = t.keys.iter().map(|k| text(k)).collect();
    writeln!(
        log,
        "timetolive: {} granted={} keys={keys:?}",
        render_header(&t.header, s),
        t.granted_ttl
    )
    .unwrap();
    let t = lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: 424242,
            keys: true,
        })
        .await
        .expect("ttl of an unknown lease is not an error")
        .into_inner();
    writeln!(
        log,
        "timetolive unknown: {} id={} ttl={} granted={} keys={}",
        render_header(&t.header, s),
        t.id,
        t.ttl,
        t.granted_ttl,
        t.keys.len()
    )
    .unwrap();

    let l = lease
        .lease_leases(pb::LeaseLeasesRequest {})
        .await
        .expect("leases")
        .into_inner();
    assert_eq!(l.leases, vec![pb::LeaseStatus { id: g.id }]);

    // Revoking deletes the attached keys, at one revision.
    let r = lease
        .lease_revoke(pb::LeaseRevokeRequest { id: g.id })
        .await
        .expect("revoke")
        .into_inner();
    writeln!(log, "revoke: {}", render_header(&r.header, s)).unwrap();
    assert_eq!(
        count(&mut kv, "lk/a").await + count(&mut kv, "lk/b").await,
        0
    );
    assert_eq!(count(&mut kv, "other").await, 1);
    let e = lease
        .lease_revoke(pb::LeaseRevokeRequest { id: g.id })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
    ka.send(pb::LeaseKeepAliveRequest { id: g.id }).await;
    assert_eq!(
        ka.next().await.ttl,
        0,
        "a revoked lease is kept alive with TTL 0"
    );

    insta::assert_snapshot!(log);
    drop(ka);
    c.stop().await;
}

#[tokio::test]
async fn lease_expiry_deletes_keys_and_a_watcher_sees_it() {
    let c = cluster(1, "lease-expiry").await;
    let ch = c.channel(0).await;
    let mut lease = LeaseClient::new(ch.clone());
    let mut kv = KvClient::new(ch.clone());
    let mut watch = WatchClient::new(ch);
    let g = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 2, id: 0 })
        .await
        .expect("grant")
        .into_inner();
    let mut w = watch_stream(&mut watch).await;
    w.send(create(pb::WatchCreateRequest {
        key: "session/".into(),
        range_end: "session0".into(),
        prev_kv: true,
        ..Default::default()
    }))
    .await;
    assert!(w.next().await.created);
    let granted_at = Instant::now();
    let rev = put(&mut kv, "session/x", "alive", g.id).await;
    let r = w.next().await;
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].kv.as_ref().unwrap().lease, g.id);
    let r = w.next().await;
    let e = &r.events[0];
    assert_eq!(e.r#type, mvccpb::event::EventType::Delete as i32);
    assert_eq!(text(&e.kv.as_ref().unwrap().key), "session/x");
    assert_eq!(e.prev_kv.as_ref().unwrap().mod_revision, rev);
    assert!(
        granted_at.elapsed() >= Duration::from_millis(1900),
        "expired early"
    );
    assert_eq!(count(&mut kv, "session/x").await, 0);
    let t = lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: g.id,
            keys: false,
        })
        .await
        .expect("ttl")
        .into_inner();
    assert_eq!(t.ttl, -1);
    drop(w);
    c.stop().await;
}

#[tokio::test]
async fn keepalive_and_ttl_at_a_follower_are_forwarded_to_the_leader() {
    let c = cluster(3, "lease-forward").await;
    let leader = c.leader().await;
    let follower = (leader + 1) % 3;
    let third = (leader + 2) % 3;
    let fs = &c.servers[follower];
    let ch = c.channel(follower).await;
    let mut lease = LeaseClient::new(ch.clone());
    let mut kv = KvClient::new(ch);

    let g = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 20, id: 0 })
        .await
        .expect("grant at a follower")
        .into_inner();
    put(&mut kv, "fwd/k", "v", g.id).await;

    let mut ka = keepalive_stream(&mut lease).await;
    ka.send(pb::LeaseKeepAliveRequest { id: g.id }).await;
    let r = ka.next().await;
    assert_eq!((r.id, r.ttl), (g.id, 20));
    render_header(&r.header, fs);
    ka.send(pb::LeaseKeepAliveRequest { id: 777 }).await;
    assert_eq!(ka.next().await.ttl, 0);

    let t = lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: g.id,
            keys: true,
        })
        .await
        .expect("ttl at a follower")
        .into_inner();
    assert!((18..=20).contains(&t.ttl), "ttl {}", t.ttl);
    assert_eq!(
        (t.granted_ttl, t.keys.clone()),
        (20, vec![b"fwd/k".to_vec()])
    );
    render_header(&t.header, fs);
    let t = lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: 777,
            keys: false,
        })
        .await
        .expect("ttl of an unknown lease at a follower")
        .into_inner();
    assert_eq!(t.ttl, -1);

    // The leader moves to the third member: the same keepalive stream follows it.
    c.servers[leader]
        .node
        .transfer_leader(c.servers[third].member_id)
        .await
        .expect("transfer");
    let deadline = Instant::now() + WAIT;
    while c.leader().await != third {
        assert!(Instant::now() < deadline, "leadership did not move");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ka.send(pb::LeaseKeepAliveRequest { id: g.id }).await;
    let r = ka.next().await;
    assert_eq!((r.id, r.ttl), (g.id, 20));
    let t = lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: g.id,
            keys: false,
        })
        .await
        .expect("ttl at a follower of the new leader")
        .into_inner();
    assert!(t.ttl > 0);
    drop(ka);
    c.stop().await;
}

#[tokio::test]
async fn watch_replays_filters_cancels_and_reports_progress() {
    let c = cluster(1, "watch-basic").await;
    let s = &c.servers[0];
    let ch = c.channel(0).await;
    let mut kv = KvClient::new(ch.clone());
    let mut watch = WatchClient::new(ch);
    let mut log = String::new();

    let first = put(&mut kv, "w/a", "1", 0).await;
    put(&mut kv, "w/b", "1", 0).await;
    put(&mut kv, "w/a", "2", 0).await;
    kv.delete_range(pb::DeleteRangeRequest {
        key: "w/a".into(),
        ..Default::default()
    })
    .await
    .expect("delete");

    let mut w = watch_stream(&mut watch).await;
    // From a past revision, with prev_kv: every revision in order.
    w.send(create(pb::WatchCreateRequest {
        key: "w/".into(),
        range_end: "w0".into(),
        start_revision: first,
        prev_kv: true,
        watch_id: 7,
        ..Default::default()
    }))
    .await;
    // The same client-chosen id again is refused.
    w.send(create(pb::WatchCreateRequest {
        key: "w/x".into(),
        watch_id: 7,
        ..Default::default()
    }))
    .await;
    // Deletes only.
    w.send(create(pb::WatchCreateRequest {
        key: "w/a".into(),
        start_revision: first,
        filters: vec![FilterType::Noput as i32],
        ..Default::default()
    }))
    .await;
    let mut seen = Vec::new();
    // created(7), refusal, created(auto); then the 4 revisions for 7 and the delete for the
    // filtered one, in some interleaving between the two watchers.
    let mut events = 0;
    while seen.len() < 3 || events < 5 {
        let r = w.next().await;
        events += r.events.len();
        seen.push(r);
    }
    let (mine, others): (Vec<_>, Vec<_>) = seen.iter().partition(|r| r.watch_id == 7);
    for r in &mine {
        writeln!(log, "{}", render_watch(r, s)).unwrap();
    }
    for r in &others {
        writeln!(log, "{}", render_watch(r, s)).unwrap();
    }
    let filtered_id = others
        .iter()
        .find(|r| r.created && !r.canceled)
        .unwrap()
        .watch_id;

    // Cancel: answered, and nothing more for it.
    w.send(cancel(7)).await;
    let r = w.next().await;
    assert_eq!((r.watch_id, r.canceled), (7, true));
    writeln!(log, "{}", render_watch(&r, s)).unwrap();
    put(&mut kv, "w/a", "3", 0).await;
    kv.delete_range(pb::DeleteRangeRequest {
        key: "w/a".into(),
        ..Default::default()
    })
    .await
    .expect("delete");
    let r = w.next().await;
    assert_eq!(
        r.watch_id, filtered_id,
        "the cancelled watcher sends nothing"
    );
    writeln!(log, "{}", render_watch(&r, s)).unwrap();

    // Progress: watch id -1 at the current revision.
    w.send(progress()).await;
    let r = w.next().await;
    writeln!(log, "progress: {}", render_watch(&r, s)).unwrap();
    assert_eq!(r.watch_id, -1);

    insta::assert_snapshot!(log);
    drop(w);
    c.stop().await;
}

#[tokio::test]
async fn watch_at_a_compacted_revision_is_created_then_cancelled() {
    let c = cluster(1, "watch-compacted").await;
    let s = &c.servers[0];
    let ch = c.channel(0).await;
    let mut kv = KvClient::new(ch.clone());
    let mut watch = WatchClient::new(ch);
    for v in ["1", "2", "3", "4"] {
        put(&mut kv, "c/k", v, 0).await;
    }
    kv.compact(pb::CompactionRequest {
        revision: 4,
        physical: true,
    })
    .await
    .expect("compact");
    let mut w = watch_stream(&mut watch).await;
    w.send(create(pb::WatchCreateRequest {
        key: "c/k".into(),
        start_revision: 2,
        ..Default::default()
    }))
    .await;
    let created = w.next().await;
    let canceled = w.next().await;
    insta::assert_snapshot!(format!(
        "{}\n{}",
        render_watch(&created, s),
        render_watch(&canceled, s)
    ));
    // A start at the compact revision itself still replays.
    w.send(create(pb::WatchCreateRequest {
        key: "c/k".into(),
        start_revision: 4,
        ..Default::default()
    }))
    .await;
    assert!(w.next().await.created);
    let r = w.next().await;
    let revisions: Vec<i64> = r
        .events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect();
    assert_eq!(revisions, vec![4, 5]);
    drop(w);
    c.stop().await;
}

#[tokio::test]
async fn closing_a_watch_stream_frees_its_watchers() {
    let c = cluster(1, "watch-close").await;
    let ch = c.channel(0).await;
    let mut watch = WatchClient::new(ch);
    let mut w = watch_stream(&mut watch).await;
    for key in ["x", "y"] {
        w.send(create(pb::WatchCreateRequest {
            key: key.into(),
            ..Default::default()
        }))
        .await;
        assert!(w.next().await.created);
    }
    let node = &c.servers[0].node;
    assert_eq!(node.status().await.unwrap().watchers, 2);
    drop(w);
    let deadline = Instant::now() + WAIT;
    while node.status().await.unwrap().watchers != 0 {
        assert!(Instant::now() < deadline, "watchers not freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.stop().await;
}

/// A client that stops reading gets its watcher cancelled with a reason (the node's queue
/// limits), rather than the server buffering without bound; reading on, it learns where to
/// resume.
#[tokio::test]
async fn a_client_that_stops_reading_is_cancelled_with_a_reason() {
    let c = cluster(1, "watch-slow").await;
    let ch = c.channel(0).await;
    let kv = KvClient::new(ch.clone());
    let mut watch = WatchClient::new(ch);
    let mut w = watch_stream(&mut watch).await;
    w.send(create(pb::WatchCreateRequest {
        key: "slow".into(),
        ..Default::default()
    }))
    .await;
    assert!(w.next().await.created);
    // More single-event revisions than the node queues for a stream (1024 responses), plus
    // what the relay and HTTP/2 buffer (about 1.5 MiB), written by concurrent clients while
    // this one reads nothing.
    const WRITERS: usize = 48;
    const PUTS: usize = 40;
    let value = "x".repeat(20 * 1024);
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let mut kv = kv.clone();
            let value = value.clone();
            tokio::spawn(async move {
                for i in 0..PUTS {
                    put(&mut kv, "slow", &format!("{t}-{i}-{value}"), 0).await;
                }
            })
        })
        .collect();
    for t in writers {
        t.await.unwrap();
    }
    let mut events = 0;
    let cancelled = loop {
        let r = w.next().await;
        events += r.events.len();
        if r.canceled {
            break r;
        }
    };
    assert!(events < WRITERS * PUTS, "cancelled after {events} events");
    assert!(
        cancelled.cancel_reason.contains("too slow")
            && cancelled
                .cancel_reason
                .contains("watch again from revision"),
        "{}",
        cancelled.cancel_reason
    );
    drop(w);
    c.stop().await;
}

/// A replay larger than the request size limit (1.5 MiB here) reaches a watcher that asked for
/// `fragment` in parts below the limit, all but the last of each response marked `fragment`;
/// a watcher that did not ask gets whole responses.
#[tokio::test]
async fn large_replays_are_fragmented_when_asked() {
    use prost::Message as _;
    let c = cluster(1, "watch-fragment").await;
    let ch = c.channel(0).await;
    let mut kv = KvClient::new(ch.clone());
    let mut watch = WatchClient::new(ch).max_decoding_message_size(usize::MAX);
    let value = "v".repeat(100 * 1024);
    for i in 0..30 {
        put(&mut kv, &format!("f/{i:02}"), &value, 0).await;
    }
    for fragment in [true, false] {
        let mut w = watch_stream(&mut watch).await;
        w.send(create(pb::WatchCreateRequest {
            key: "f/".into(),
            range_end: "f0".into(),
            start_revision: 1,
            fragment,
            ..Default::default()
        }))
        .await;
        assert!(w.next().await.created);
        let mut keys = Vec::new();
        let mut parts = Vec::new();
        while keys.len() < 30 {
            let r = w.next().await;
            keys.extend(r.events.iter().map(|e| text(&e.kv.as_ref().unwrap().key)));
            parts.push((r.fragment, r.encoded_len()));
        }
        let want: Vec<String> = (0..30).map(|i| format!("f/{i:02}")).collect();
        assert_eq!(keys, want);
        assert!(!parts.last().unwrap().0, "the last part ends the response");
        if fragment {
            assert!(parts.iter().any(|p| p.0), "{parts:?}");
            assert!(parts.iter().all(|p| p.1 < 1536 * 1024), "{parts:?}");
        } else {
            assert!(parts.iter().all(|p| !p.0), "{parts:?}");
            assert!(parts.iter().any(|p| p.1 >= 1536 * 1024), "{parts:?}");
        }
    }
    c.stop().await;
}
