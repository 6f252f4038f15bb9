//! The TCP peer transport on 127.0.0.1: delivery and order between three nodes, reconnects,
//! garbage and hostile peers, back-pressure, membership changes. Every test runs under a
//! tokio timeout so nothing can hang CI.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sextant_net::core::{Entry, EntryPayload, Message, MessageBody, NodeId};
use sextant_net::transport::frame::encode_frame;
use sextant_net::transport::handshake::{Ack, AckStatus, Hello, ACK_BYTES, MAGIC};
use sextant_net::transport::{
    SendError, SetPeerError, TcpTransport, TransportConfig, DEFAULT_FRAME_BYTES_MAX,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

const CLUSTER: u64 = 0x5e47_a417;
/// Bound on each whole test.
const TEST_LIMIT: Duration = Duration::from_secs(12);
/// Bound on one expected event.
const EVENT_LIMIT: Duration = Duration::from_secs(5);

/// Runs a test body under [`TEST_LIMIT`].
async fn bounded<F: std::future::Future<Output = ()>>(body: F) {
    timeout(TEST_LIMIT, body)
        .await
        .expect("test exceeded its time limit");
}

fn std_listener() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

/// A free port now (possibly taken by the time it is used; fine on a test machine).
fn free_addr() -> SocketAddr {
    std_listener().local_addr().unwrap()
}

/// A config with short backoff so reconnect tests are quick.
fn config(
    node: NodeId,
    listen: impl Into<sextant_net::transport::ListenOn>,
    peers: &[(NodeId, SocketAddr)],
) -> TransportConfig {
    let mut cfg = TransportConfig::new(CLUSTER, node, listen);
    cfg.peers = peers.iter().copied().collect();
    cfg.backoff_min = Duration::from_millis(10);
    cfg.backoff_max = Duration::from_millis(200);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg
}

struct Node {
    t: TcpTransport,
    rx: mpsc::Receiver<Message>,
}

fn start(cfg: TransportConfig, inbound_cap: usize) -> Node {
    let (tx, rx) = mpsc::channel(inbound_cap);
    let t = TcpTransport::start(cfg, tx).expect("transport starts");
    Node { t, rx }
}

fn heartbeat(from: NodeId, to: NodeId, round: u64) -> Message {
    Message {
        from,
        to,
        term: 1,
        body: MessageBody::Heartbeat {
            session: 1,
            commit: 0,
            round,
        },
    }
}

/// An append carrying `seq` and a payload whose size varies with it.
fn append(from: NodeId, to: NodeId, seq: u64) -> Message {
    Message {
        from,
        to,
        term: 2,
        body: MessageBody::Append {
            session: 9,
            prev_index: seq,
            prev_term: 2,
            entries: vec![Entry {
                term: 2,
                index: seq + 1,
                payload: EntryPayload::Normal(Bytes::from(vec![
                    seq as u8;
                    (seq % 13 * 97) as usize
                ])),
            }],
            commit: seq,
        },
    }
}

async fn recv(rx: &mut mpsc::Receiver<Message>) -> Message {
    timeout(EVENT_LIMIT, rx.recv())
        .await
        .expect("no message in time")
        .expect("inbound open")
}

/// Sends heartbeats from `from` every 20 ms until `rx` gets one from `from`.
async fn send_until_received(
    t: &TcpTransport,
    rx: &mut mpsc::Receiver<Message>,
    to: NodeId,
) -> Message {
    let from = t.node_id();
    let deadline = Instant::now() + EVENT_LIMIT;
    let mut round = 0;
    loop {
        assert!(Instant::now() < deadline, "{from} never reached {to}");
        round += 1;
        let _ = t.send(heartbeat(from, to, round));
        if let Ok(Some(m)) = timeout(Duration::from_millis(20), rx.recv()).await {
            if m.from == from {
                return m;
            }
        }
    }
}

/// Waits until `cond` holds, polling every 10 ms.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + EVENT_LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads until the other side closes the connection (EOF or reset); returns what was read.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = timeout(EVENT_LIMIT, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the transport did not close the connection");
    got
}

fn frame(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(msg, DEFAULT_FRAME_BYTES_MAX, &mut out).unwrap();
    out
}

/// Opens a raw connection to `addr` and completes a valid handshake as node `from`.
async fn raw_peer(addr: SocketAddr, from: NodeId, to: NodeId) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&Hello::new(CLUSTER, from, to).encode())
        .await
        .unwrap();
    let mut ack = [0u8; ACK_BYTES];
    s.read_exact(&mut ack).await.unwrap();
    assert_eq!(Ack::decode(&ack).unwrap().status, AckStatus::Ok);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_exchange_messages_in_order() {
    bounded(async {
        const N: u64 = 400;
        let listeners: Vec<_> = (0..3).map(|_| std_listener()).collect();
        let addrs: BTreeMap<NodeId, SocketAddr> = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| (i as NodeId + 1, l.local_addr().unwrap()))
            .collect();
        let mut nodes: Vec<Node> = listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let id = i as NodeId + 1;
                let peers: Vec<_> = addrs
                    .iter()
                    .filter(|(p, _)| **p != id)
                    .map(|(p, a)| (*p, *a))
                    .collect();
                start(config(id, l, &peers), 4096)
            })
            .collect();

        // Every node sends N messages to each other node, interleaved.
        for seq in 0..N {
            for node in &nodes {
                let from = node.t.node_id();
                for to in 1..=3 {
                    if to != from {
                        node.t.send(append(from, to, seq)).expect("queued");
                    }
                }
            }
        }

        for node in &mut nodes {
            let me = node.t.node_id();
            let mut next: BTreeMap<NodeId, u64> = BTreeMap::new();
            for _ in 0..2 * N {
                let m = recv(&mut node.rx).await;
                assert_eq!(m.to, me);
                let expected = next.entry(m.from).or_insert(0);
                assert_eq!(
                    m,
                    append(m.from, me, *expected),
                    "out of order from {}",
                    m.from
                );
                *expected += 1;
            }
            assert_eq!(next.values().copied().collect::<Vec<_>>(), vec![N, N]);
        }
        for node in &nodes {
            // Counters are bumped just after the hand-over they count: wait for them to settle.
            eventually("counters settle", || {
                let s = node.t.stats();
                s.received == 2 * N && s.peers.values().all(|p| p.sent == N)
            })
            .await;
            let s = node.t.stats();
            assert_eq!(s.inbound_dropped, 0);
            assert_eq!(s.inbound_connections, 2);
            assert_eq!(s.peers.len(), 2);
            for p in s.peers.values() {
                assert_eq!(
                    (p.sent, p.dropped, p.connects, p.queued),
                    (N, 0, 1, 0),
                    "{p:?}"
                );
                assert!(p.connected);
            }
        }
        for node in &nodes {
            node.t.shutdown().await;
        }
        assert_eq!(nodes[0].t.send(append(1, 2, 0)), Err(SendError::Shutdown));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_to_a_peer_that_starts_late_and_restarts() {
    bounded(async {
        let a_listener = std_listener();
        let a_addr = a_listener.local_addr().unwrap();
        let b_addr = free_addr();
        let mut a = start(config(1, a_listener, &[(2, b_addr)]), 64);

        // B is down: A's attempts fail.
        eventually("A fails to reach B", || {
            a.t.peer_stats(2).unwrap().connect_failures >= 2
        })
        .await;
        assert!(matches!(
            a.t.send(heartbeat(1, 2, 0)),
            Ok(()) | Err(SendError::QueueFull(2))
        ));

        // B starts on its address: A gets through, and B reaches A.
        let mut b = start(config(2, b_addr, &[(1, a_addr)]), 64);
        send_until_received(&a.t, &mut b.rx, 2).await;
        send_until_received(&b.t, &mut a.rx, 1).await;
        let st = a.t.peer_stats(2).unwrap();
        assert_eq!((st.connects, st.reconnects), (1, 0));
        assert!(st.connected);

        // B restarts on the same port.
        b.t.shutdown().await;
        drop(b);
        eventually("A notices B is gone", || {
            !a.t.peer_stats(2).unwrap().connected
        })
        .await;
        let mut b = start(config(2, b_addr, &[(1, a_addr)]), 64);
        send_until_received(&a.t, &mut b.rx, 2).await;
        // A accepts B's new connection in place of the old one.
        send_until_received(&b.t, &mut a.rx, 1).await;
        let st = a.t.peer_stats(2).unwrap();
        assert!(st.reconnects >= 1, "{st:?}");
        assert!(st.connected);
        eventually("one inbound connection per peer", || {
            a.t.stats().inbound_connections == 1
        })
        .await;

        a.t.shutdown().await;
        b.t.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_hostile_connections_are_closed_and_good_peers_keep_working() {
    bounded(async {
        let (la, lb) = (std_listener(), std_listener());
        let (a_addr, b_addr) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
        let mut a_cfg = config(1, la, &[(2, b_addr)]);
        a_cfg.connect_timeout = Duration::from_millis(300);
        let mut a = start(a_cfg, 64);
        let mut b = start(config(2, lb, &[(1, a_addr)]), 64);
        send_until_received(&b.t, &mut a.rx, 1).await;

        // Random bytes: closed without an answer.
        let mut rng = StdRng::seed_from_u64(7);
        let mut junk = vec![0u8; 4096];
        rng.fill_bytes(&mut junk);
        let mut s = TcpStream::connect(a_addr).await.unwrap();
        let _ = s.write_all(&junk).await;
        assert!(read_until_closed(&mut s).await.is_empty());

        // The right magic, then junk as version and ids.
        let mut s = TcpStream::connect(a_addr).await.unwrap();
        let mut hello = MAGIC.to_vec();
        hello.extend_from_slice(&junk[..26]);
        let _ = s.write_all(&hello).await;
        read_until_closed(&mut s).await;

        // Well-formed hellos that are refused, each answered with its reason.
        let refused = [
            (Hello::new(CLUSTER + 1, 3, 1), AckStatus::ClusterMismatch),
            (Hello::new(CLUSTER, 3, 9), AckStatus::WrongReceiver),
            (Hello::new(CLUSTER, 1, 1), AckStatus::SelfSender),
            (
                Hello {
                    version: 99,
                    ..Hello::new(CLUSTER, 3, 1)
                },
                AckStatus::VersionMismatch,
            ),
        ];
        for (hello, status) in refused {
            let mut s = TcpStream::connect(a_addr).await.unwrap();
            s.write_all(&hello.encode()).await.unwrap();
            let answer = read_until_closed(&mut s).await;
            let ack = Ack::decode(answer[..ACK_BYTES].try_into().unwrap()).unwrap();
            assert_eq!(
                (ack.status, ack.cluster_id, ack.node_id),
                (status, CLUSTER, 1)
            );
        }

        // A peer that never finishes its hello is cut off after connect_timeout.
        let mut s = TcpStream::connect(a_addr).await.unwrap();
        s.write_all(&MAGIC).await.unwrap();
        read_until_closed(&mut s).await;

        // After a valid handshake: an oversized length, undecodable postcard, a zero length,
        // a message whose `from` is not the handshake's sender, one not addressed to A.
        let bad_frames: Vec<Vec<u8>> = vec![
            (DEFAULT_FRAME_BYTES_MAX + 1).to_be_bytes().to_vec(),
            u32::MAX.to_be_bytes().to_vec(),
            vec![0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff],
            vec![0, 0, 0, 0],
            frame(&heartbeat(4, 1, 1)),
            frame(&heartbeat(3, 5, 1)),
        ];
        for bad in &bad_frames {
            let mut s = raw_peer(a_addr, 3, 1).await;
            // A valid frame first: it is delivered (node 3 is no configured peer of A, but of
            // the same cluster).
            s.write_all(&frame(&heartbeat(3, 1, 42))).await.unwrap();
            let _ = s.write_all(bad).await;
            assert!(read_until_closed(&mut s).await.is_empty());
            let m = recv(&mut a.rx).await;
            assert_eq!((m.from, m.body.clone()), (3, heartbeat(3, 1, 42).body));
        }

        let st = a.t.stats();
        assert_eq!(st.rejected_connections, 7, "{st:?}");
        assert_eq!(st.protocol_errors, bad_frames.len() as u64, "{st:?}");

        // The good peers were never disturbed.
        send_until_received(&b.t, &mut a.rx, 1).await;
        send_until_received(&a.t, &mut b.rx, 2).await;
        assert_eq!(a.t.peer_stats(2).unwrap().connects, 1);
        assert_eq!(b.t.peer_stats(1).unwrap().connects, 1);

        a.t.shutdown().await;
        b.t.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_costs_drops_not_blocking() {
    bounded(async {
        // The stalled peer: completes the handshake as node 2, then never reads.
        let stall = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stall_addr = stall.local_addr().unwrap();
        let stall_task = tokio::spawn(async move {
            let (mut s, _) = stall.accept().await.unwrap();
            let mut hello = [0u8; 30];
            s.read_exact(&mut hello).await.unwrap();
            s.write_all(&Ack::new(AckStatus::Ok, CLUSTER, 2).encode())
                .await
                .unwrap();
            tokio::time::sleep(TEST_LIMIT).await;
            drop(s);
        });

        const QUEUE: usize = 16;
        let mut cfg = config(1, std_listener(), &[(2, stall_addr)]);
        cfg.queue_msgs_max = QUEUE;
        cfg.write_timeout = TEST_LIMIT; // keep the stalled connection open for the whole test
        let a = start(cfg, 64);
        eventually("A connects to the stalled peer", || {
            a.t.peer_stats(2).unwrap().connected
        })
        .await;

        let chunk = Bytes::from(vec![7u8; 64 << 10]);
        let big = |i: u64| Message {
            from: 1,
            to: 2,
            term: 1,
            body: MessageBody::InstallSnapshot {
                session: 1,
                meta: Default::default(),
                total_bytes: 1 << 40,
                offset: i,
                chunk: chunk.clone(),
            },
        };
        // Keep sending, a batch every millisecond, until the socket buffers are full (nothing
        // more is written for 200 ms) and the queue overflows.
        let mut slowest = Duration::ZERO;
        let (mut queued, mut full) = (0u64, 0u64);
        let mut i = 0u64;
        let mut last_sent = (u64::MAX, Instant::now());
        let deadline = Instant::now() + EVENT_LIMIT;
        loop {
            assert!(Instant::now() < deadline, "the writer never stalled");
            for _ in 0..8 {
                let t0 = Instant::now();
                let r = a.t.send(big(i));
                slowest = slowest.max(t0.elapsed());
                match r {
                    Ok(()) => queued += 1,
                    Err(SendError::QueueFull(2)) => full += 1,
                    Err(e) => panic!("unexpected {e}"),
                }
                i += 1;
            }
            let sent = a.t.peer_stats(2).unwrap().sent;
            if sent != last_sent.0 {
                last_sent = (sent, Instant::now());
            } else if last_sent.1.elapsed() > Duration::from_millis(200) && full > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let st = a.t.peer_stats(2).unwrap();
        eprintln!(
            "stalled peer: {queued} queued, {full} dropped, slowest send {slowest:?}, {st:?}"
        );
        assert!(
            slowest < Duration::from_millis(50),
            "a send took {slowest:?}"
        );
        assert!(st.connected, "the stalled connection stays open: {st:?}");
        assert_eq!(st.dropped, full);
        assert_eq!(st.queued, QUEUE, "{st:?}");
        assert!(st.sent + st.queued as u64 <= queued, "{st:?}");

        // While the peer stalls, every further send is dropped at once and counted.
        for _ in 0..1000 {
            let t0 = Instant::now();
            assert_eq!(a.t.send(big(i)), Err(SendError::QueueFull(2)));
            assert!(t0.elapsed() < Duration::from_millis(50));
            i += 1;
        }
        let after = a.t.peer_stats(2).unwrap();
        assert_eq!(after.dropped, full + 1000);
        assert_eq!(after.sent, st.sent, "nothing more got through");
        a.t.shutdown().await;
        stall_task.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_write_times_out_and_the_connection_is_dropped() {
    bounded(async {
        let stall = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stall_addr = stall.local_addr().unwrap();
        let stall_task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (mut s, _) = stall.accept().await.unwrap();
                let mut hello = [0u8; 30];
                s.read_exact(&mut hello).await.unwrap();
                s.write_all(&Ack::new(AckStatus::Ok, CLUSTER, 2).encode())
                    .await
                    .unwrap();
                held.push(s);
            }
        });
        let mut cfg = config(1, std_listener(), &[(2, stall_addr)]);
        cfg.write_timeout = Duration::from_millis(200);
        let a = start(cfg, 64);
        let chunk = Bytes::from(vec![7u8; 256 << 10]);
        let big = Message {
            from: 1,
            to: 2,
            term: 1,
            body: MessageBody::Propose {
                epoch: 1,
                seq: 1,
                payloads: vec![EntryPayload::Normal(chunk)],
            },
        };
        let deadline = Instant::now() + EVENT_LIMIT;
        while a.t.peer_stats(2).unwrap().connects < 2 {
            assert!(
                Instant::now() < deadline,
                "stalled connection never abandoned"
            );
            let _ = a.t.send(big.clone());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        a.t.shutdown().await;
        stall_task.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_are_added_readdressed_and_removed_at_runtime() {
    bounded(async {
        let a = start(config(1, std_listener(), &[]), 64);
        let tokio_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut b = start(config(2, tokio_listener, &[]), 64);
        let mut c = start(config(3, std_listener(), &[]), 64);

        assert_eq!(a.t.send(heartbeat(1, 2, 1)), Err(SendError::UnknownPeer(2)));
        assert_eq!(a.t.send(heartbeat(1, 1, 1)), Err(SendError::ToSelf(1)));
        assert_eq!(
            a.t.send(heartbeat(5, 2, 1)),
            Err(SendError::WrongSender { from: 5, node: 1 })
        );
        assert_eq!(
            a.t.set_peer(1, b.t.local_addr()),
            Err(SetPeerError::SelfPeer(1))
        );
        assert_eq!(a.t.stats().unknown_peer_dropped, 1);

        // From a thread outside the runtime, as a synchronous caller might.
        std::thread::scope(|s| {
            s.spawn(|| a.t.set_peer(2, b.t.local_addr()))
                .join()
                .unwrap()
        })
        .unwrap();
        send_until_received(&a.t, &mut b.rx, 2).await;

        // Node 2 "moves" to another address (a new transport claiming id 2).
        let mut b2 = start(config(2, std_listener(), &[]), 64);
        a.t.set_peer(2, b2.t.local_addr()).unwrap();
        assert_eq!(a.t.peer_addrs()[&2], b2.t.local_addr());
        send_until_received(&a.t, &mut b2.rx, 2).await;

        // An address served by another node: the dialer refuses it (wrong receiver).
        a.t.set_peer(2, c.t.local_addr()).unwrap();
        let failures = a.t.peer_stats(2).unwrap().connect_failures;
        eventually("A's dial to the wrong node fails", || {
            a.t.peer_stats(2).unwrap().connect_failures >= failures + 2
        })
        .await;
        let _ = a.t.send(heartbeat(1, 2, 7));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            c.rx.try_recv().is_err(),
            "node 3 must not get node 2's messages"
        );
        eventually("node 3 counts the rejections", || {
            c.t.stats().rejected_connections >= 2
        })
        .await;

        assert!(a.t.remove_peer(2));
        assert!(!a.t.remove_peer(2));
        assert_eq!(a.t.send(heartbeat(1, 2, 8)), Err(SendError::UnknownPeer(2)));
        assert!(a.t.peer_stats(2).is_none());

        for n in [&a, &b, &b2, &c] {
            n.t.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inbound_channel_drops_and_counts() {
    bounded(async {
        let lb = std_listener();
        let b_addr = lb.local_addr().unwrap();
        let mut b_cfg = config(2, lb, &[]);
        b_cfg.inbound_wait = Duration::ZERO;
        // The node loop of B never reads its one-slot inbound channel.
        let b = start(b_cfg, 1);
        let a = start(config(1, std_listener(), &[(2, b_addr)]), 64);
        for i in 0..50 {
            a.t.send(heartbeat(1, 2, i)).unwrap();
        }
        eventually("all 50 arrive or are dropped", || {
            let s = b.t.stats();
            s.received + s.inbound_dropped == 50
        })
        .await;
        let s = b.t.stats();
        assert_eq!((s.received, s.inbound_dropped), (1, 49));
        assert_eq!(s.protocol_errors, 0);
        a.t.shutdown().await;
        b.t.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn start_reports_errors() {
    let (tx, _rx) = mpsc::channel(1);
    let taken = std_listener();
    let err = TcpTransport::start(
        TransportConfig::new(CLUSTER, 1, taken.local_addr().unwrap()),
        tx.clone(),
    )
    .expect_err("port in use");
    assert!(err.to_string().contains("cannot listen"), "{err}");
    let mut cfg = TransportConfig::new(CLUSTER, 1, std_listener());
    cfg.queue_msgs_max = 0;
    assert!(TcpTransport::start(cfg, tx).is_err());

    let outside = std::thread::spawn(|| {
        let (tx, _rx) = mpsc::channel(1);
        TcpTransport::start(TransportConfig::new(CLUSTER, 1, std_listener()), tx)
            .err()
            .map(|e| e.to_string())
    })
    .join()
    .unwrap();
    assert!(outside.unwrap().contains("tokio runtime"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_connects_to_us_ends_our_reconnect_backoff() {
    bounded(async {
        let a_listener = std_listener();
        let a_addr = a_listener.local_addr().unwrap();
        let b_addr = free_addr();
        // A's reconnect delay after its first failure is at least 30 s, far beyond the
        // test's limit: only the wake-up can get A through to B in time.
        let mut cfg = config(1, a_listener, &[(2, b_addr)]);
        cfg.backoff_min = Duration::from_secs(60);
        cfg.backoff_max = Duration::from_secs(60);
        let a = start(cfg, 64);
        eventually("A fails to reach B", || {
            a.t.peer_stats(2).unwrap().connect_failures >= 1
        })
        .await;

        // B starts and dials A: A's dialer wakes and reaches B.
        let mut b = start(config(2, b_addr, &[(1, a_addr)]), 64);
        send_until_received(&a.t, &mut b.rx, 2).await;
        let st = a.t.peer_stats(2).unwrap();
        assert_eq!((st.connect_failures, st.connects), (1, 1), "{st:?}");

        a.t.shutdown().await;
        b.t.shutdown().await;
    })
    .await;
}
