//! What the in-process gRPC tests share: a member's `ServerConfig` with fast timings.
// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use sextant_net::server::{ClusterState, Server, ServerConfig};
use tonic::transport::Channel;

/// Member `name` of a new cluster `initial_cluster` (name → peer URLs), serving clients on an
/// ephemeral port of 127.0.0.1 and peers on `listen_peer`; 10 ms ticks, etcd's defaults else.
pub fn test_config(
    name: &str,
    data_dir: PathBuf,
    listen_peer: SocketAddr,
    initial_cluster: BTreeMap<String, Vec<String>>,
    token: &str,
) -> ServerConfig {
    ServerConfig {
        name: name.to_string(),
        data_dir,
        listen_client: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        advertise_client_urls: vec![],
        listen_peer,
        initial_advertise_peer_urls: initial_cluster[name].clone(),
        initial_cluster,
        initial_cluster_state: ClusterState::New,
        initial_cluster_token: token.to_string(),
        heartbeat_interval: Duration::from_millis(10),
        election_timeout: Duration::from_millis(100),
        snapshot_count: 10_000,
        max_request_bytes: 1536 * 1024,
        request_timeout: Duration::from_secs(5),
        lease_reads: false,
        listen_metrics: vec![],
        client_tls: None,
        peer_tls: None,
        auto_compaction: None,
        max_txn_ops: 128,
    }
}

/// A single-member cluster named "t" (peer URL advertised, never dialled).
pub fn single_member_config(data_dir: PathBuf, token: &str) -> ServerConfig {
    let initial = BTreeMap::from([("t".to_string(), vec!["http://127.0.0.1:2380".to_string()])]);
    test_config(
        "t",
        data_dir,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        initial,
        token,
    )
}

/// A free port on 127.0.0.1 for a server started later in the test. Taken below the kernel's
/// ephemeral range (32768–60999): a port from `bind(:0)` is released before the server binds
/// it, and meanwhile any outgoing connection may be given it as its local port. Spread by
/// process id and a counter, and checked bindable.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 32_000 - 12_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(2_654_435_761) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = u16::try_from(LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN)
            .expect("ports fit in u16");
        if TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {LOW}..{}", LOW + SPAN)
}

/// A free address on 127.0.0.1 (see [`free_port`]).
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// `--initial-cluster` for members named `m0`, `m1`, … with these peer addresses.
pub fn initial_cluster(peers: &[SocketAddr]) -> BTreeMap<String, Vec<String>> {
    peers
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("m{i}"), vec![format!("http://{a}")]))
        .collect()
}

/// A gRPC channel to `server`'s first client URL.
pub async fn client_channel(server: &Server) -> Channel {
    Channel::from_shared(format!("http://{}", server.client_addrs[0]))
        .unwrap()
        .connect()
        .await
        .expect("client connects")
}

/// Peers that are never there: a single-member loop has none.
pub struct NoPeers;

impl sextant_net::node::PeerSender for NoPeers {
    fn send(&self, _msg: sextant_core::Message) {}
}

/// A single-member node loop (member 1, bootstrapped alone) over `storage` on a storage thread
/// of its own, with 10 ms ticks and no peers: the node-level tests' member.
pub struct SingleNode {
    pub handle: sextant_net::node::NodeHandle,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    storage_thread: std::thread::JoinHandle<()>,
}

impl SingleNode {
    /// Starts the loop (call from within a tokio runtime).
    pub fn start(
        storage: sextant_net::storage::FileStorage,
        cfg: sextant_net::node::NodeConfig,
    ) -> SingleNode {
        let mut raft_cfg = sextant_core::Config::new(1);
        raft_cfg.rng_seed = 7;
        let raft = sextant_core::Raft::bootstrap(raft_cfg, &[1]).unwrap();
        let (inbound_tx, inbound_rx) = tokio::sync::mpsc::channel(16);
        let (io, storage_thread) = sextant_net::node::spawn_storage_thread(storage);
        let (node, handle) = sextant_net::node::NodeLoop::new(
            cfg,
            raft,
            Default::default(),
            0,
            NoPeers,
            sextant_net::node::IntervalClock::new(Duration::from_millis(10)),
            io,
            inbound_rx,
        );
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(node.run(async move {
            let _ = stop_rx.await;
            drop(inbound_tx);
        }));
        SingleNode {
            handle,
            stop,
            task,
            storage_thread,
        }
    }

    /// Stops the loop and waits for it and its storage thread to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
        let storage_thread = self.storage_thread;
        tokio::task::spawn_blocking(move || storage_thread.join().unwrap())
            .await
            .unwrap();
    }
}

/// Numbered keys `k000`, `k001`, … whose values say which round of writes they are from.
pub mod numbered {
    use bytes::Bytes;
    use sextant_core::kv::{Command, KvStore, PutRequest};

    pub fn key(i: usize) -> String {
        format!("k{i:03}")
    }

    /// Puts key `i` with the value `round {round}`.
    pub fn put(i: usize, round: usize) -> Command {
        Command::Put(PutRequest {
            key: Bytes::from(key(i)),
            value: Bytes::from(format!("round {round}")),
            ..Default::default()
        })
    }

    /// Applies `put(i, round)` for `i` = 0, 1, … to `store` until it reaches `revision` (or
    /// `keys` keys are written).
    pub fn apply_until(store: &mut KvStore, revision: i64, round: usize, keys: usize) {
        for i in 0..keys {
            if store.revision() == revision {
                break;
            }
            store.apply(&put(i, round)).unwrap();
        }
    }

    /// Keys `0..keys` read the same in both stores (create and mod revisions, versions,
    /// values); `context` names `found` in a failure.
    pub fn assert_same_keys(found: &KvStore, expected: &KvStore, keys: usize, context: &str) {
        for i in 0..keys {
            let key = key(i);
            assert_eq!(
                found.get(key.as_bytes()),
                expected.get(key.as_bytes()),
                "{key} in {context}"
            );
        }
    }
}
