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
