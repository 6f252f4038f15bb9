//! [`TcpTransport`]: its configuration, start, the non-blocking `send`, runtime membership
//! changes, counters and shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sextant_core::{Message, NodeId};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, trace};

use super::error::{SendError, SetPeerError, StartError};
use super::frame::DEFAULT_FRAME_BYTES_MAX;
use super::peer::PeerHandle;
use super::stats::{bump, Counters, PeerStats, TransportStats};
use super::tls::PeerTls;
use super::{listener, peer};

/// Where the transport listens.
#[derive(Debug)]
pub enum ListenOn {
    /// Bind this address (with `SO_REUSEADDR`, so a restarted node can take its port back
    /// at once). Port 0 picks an ephemeral port; see [`TcpTransport::local_addr`].
    Addr(SocketAddr),
    /// Use an already bound listener (tests bind `127.0.0.1:0` first to learn every
    /// node's address before starting any).
    Std(std::net::TcpListener),
    /// Use an already bound tokio listener.
    Tokio(TcpListener),
}

impl From<SocketAddr> for ListenOn {
    fn from(a: SocketAddr) -> Self {
        ListenOn::Addr(a)
    }
}

impl From<std::net::TcpListener> for ListenOn {
    fn from(l: std::net::TcpListener) -> Self {
        ListenOn::Std(l)
    }
}

impl From<TcpListener> for ListenOn {
    fn from(l: TcpListener) -> Self {
        ListenOn::Tokio(l)
    }
}

/// Configuration of a [`TcpTransport`]. [`TransportConfig::new`] fills in the defaults.
#[derive(Debug)]
pub struct TransportConfig {
    /// Connections from nodes of another cluster are rejected.
    pub cluster_id: u64,
    /// This node.
    pub node_id: NodeId,
    pub listen: ListenOn,
    /// The peers to dial at start (an entry for `node_id` itself is ignored).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Capacity of each peer's send queue, in messages (≥ 1). Default 1024.
    pub queue_msgs_max: usize,
    /// Largest frame payload sent or accepted, in bytes (≥ 1). Default 64 MiB.
    pub frame_bytes_max: u32,
    /// Limit on TCP connect plus handshake, on both sides. Default 5 s.
    pub connect_timeout: Duration,
    /// A write that makes no progress this long closes the connection. Default 5 s.
    pub write_timeout: Duration,
    /// How long an inbound reader waits for room in the inbound channel before dropping
    /// the message (zero: drop at once when full). Default 100 ms.
    pub inbound_wait: Duration,
    /// First reconnect delay (> 0). Default 50 ms.
    pub backoff_min: Duration,
    /// Cap on the reconnect delay. Default 2 s.
    pub backoff_max: Duration,
    /// TLS on every connection, both directions (etcd's `--peer-cert-file` and friends).
    /// Default none: plain TCP.
    pub tls: Option<PeerTls>,
}

impl TransportConfig {
    /// A configuration with no peers and the default limits.
    pub fn new(cluster_id: u64, node_id: NodeId, listen: impl Into<ListenOn>) -> Self {
        TransportConfig {
            cluster_id,
            node_id,
            listen: listen.into(),
            peers: BTreeMap::new(),
            queue_msgs_max: 1024,
            frame_bytes_max: DEFAULT_FRAME_BYTES_MAX,
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            inbound_wait: Duration::from_millis(100),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            tls: None,
        }
    }
}

/// What the transport's tasks share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) cluster_id: u64,
    pub(super) node_id: NodeId,
    pub(super) queue_msgs_max: usize,
    pub(super) frame_bytes_max: u32,
    pub(super) connect_timeout: Duration,
    pub(super) write_timeout: Duration,
    pub(super) inbound_wait: Duration,
    pub(super) backoff_min: Duration,
    pub(super) backoff_max: Duration,
    pub(super) tls: Option<PeerTls>,
    pub(super) inbound: mpsc::Sender<Message>,
    /// The runtime `start` was called in: tasks spawned later (`set_peer`) go there too,
    /// whichever thread calls.
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) counters: Counters,
    /// The established inbound connection of each sender: its id, and the sender whose
    /// drop tells its reader it has been superseded.
    pub(super) inbound_conns: Mutex<BTreeMap<NodeId, (u64, oneshot::Sender<()>)>>,
    pub(super) next_conn_id: AtomicU64,
    /// Per configured peer, what wakes its dialer out of a reconnect backoff: the peer has
    /// just connected to us, so it is up and reachable and waiting out the backoff would
    /// only delay our messages to it (after a restart, up to `backoff_max`).
    pub(super) redial: Mutex<BTreeMap<NodeId, Arc<Notify>>>,
}

impl Shared {
    pub(super) fn inbound_conns(
        &self,
    ) -> MutexGuard<'_, BTreeMap<NodeId, (u64, oneshot::Sender<()>)>> {
        self.inbound_conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn redial(&self) -> MutexGuard<'_, BTreeMap<NodeId, Arc<Notify>>> {
        self.redial.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `peer` completed a handshake with us: if our dialer to it is waiting out a backoff,
    /// it dials now with its backoff reset. (A dialer that is connected or connecting is
    /// not affected.)
    pub(super) fn peer_seen(&self, peer: NodeId) {
        if let Some(n) = self.redial().get(&peer) {
            n.notify_waiters();
        }
    }
}

/// A running TCP transport. See the [module docs](super) for the protocol and the rules.
///
/// Dropping it stops every task at once; [`shutdown`](Self::shutdown) also waits for them.
#[derive(Debug)]
pub struct TcpTransport {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    /// `None` once shut down.
    peers: Mutex<Option<BTreeMap<NodeId, PeerHandle>>>,
    listener: Mutex<Option<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
}

impl TcpTransport {
    /// Binds (or adopts) the listener and starts the accept loop and one sending task per
    /// peer. Must be called within a tokio runtime, where all of the transport's tasks
    /// run; the other methods may be called from any thread. Received messages go to
    /// `inbound`.
    pub fn start(cfg: TransportConfig, inbound: mpsc::Sender<Message>) -> Result<Self, StartError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(StartError::NoRuntime);
        };
        if cfg.queue_msgs_max == 0 {
            return Err(StartError::InvalidConfig(
                "queue_msgs_max must be at least 1",
            ));
        }
        if cfg.frame_bytes_max == 0 {
            return Err(StartError::InvalidConfig(
                "frame_bytes_max must be at least 1",
            ));
        }
        if cfg.backoff_min.is_zero() {
            return Err(StartError::InvalidConfig("backoff_min must be positive"));
        }
        if cfg.connect_timeout.is_zero() || cfg.write_timeout.is_zero() {
            return Err(StartError::InvalidConfig("timeouts must be positive"));
        }
        let listener = bind(cfg.listen)?;
        let local_addr = listener.local_addr().map_err(StartError::Listener)?;
        let shared = Arc::new(Shared {
            cluster_id: cfg.cluster_id,
            node_id: cfg.node_id,
            queue_msgs_max: cfg.queue_msgs_max,
            frame_bytes_max: cfg.frame_bytes_max,
            connect_timeout: cfg.connect_timeout,
            write_timeout: cfg.write_timeout,
            inbound_wait: cfg.inbound_wait,
            backoff_min: cfg.backoff_min,
            backoff_max: cfg.backoff_max,
            tls: cfg.tls,
            inbound,
            runtime: runtime.clone(),
            counters: Counters::default(),
            inbound_conns: Mutex::new(BTreeMap::new()),
            next_conn_id: AtomicU64::new(0),
            redial: Mutex::new(BTreeMap::new()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let listener = runtime.spawn(listener::run(shared.clone(), listener, stop_rx));
        let mut peers = BTreeMap::new();
        for (id, addr) in cfg.peers {
            if id == cfg.node_id {
                debug!(node = id, "not dialing this node itself");
                continue;
            }
            peers.insert(id, peer::PeerHandle::spawn(shared.clone(), id, addr));
        }
        info!(
            node = cfg.node_id,
            cluster = cfg.cluster_id,
            %local_addr,
            peers = peers.len(),
            "tcp transport started"
        );
        Ok(TcpTransport {
            shared,
            local_addr,
            peers: Mutex::new(Some(peers)),
            listener: Mutex::new(Some(listener)),
            stop,
        })
    }

    /// The address the transport listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.shared.node_id
    }

    /// Queues `msg` for `msg.to` without blocking or awaiting. A message that cannot be
    /// queued is dropped and the reason returned (callers may ignore it; drops to peers
    /// and to unknown nodes are also counted in [`stats`](Self::stats)).
    pub fn send(&self, msg: Message) -> Result<(), SendError> {
        let node = self.shared.node_id;
        if msg.from != node {
            debug!(
                from = msg.from,
                to = msg.to,
                "dropping message with a foreign sender"
            );
            return Err(SendError::WrongSender {
                from: msg.from,
                node,
            });
        }
        if msg.to == node {
            return Err(SendError::ToSelf(node));
        }
        let peers = self.peers();
        let Some(peers) = peers.as_ref() else {
            return Err(SendError::Shutdown);
        };
        let Some(p) = peers.get(&msg.to) else {
            bump(&self.shared.counters.unknown_peer_dropped);
            debug!(
                to = msg.to,
                kind = msg.body.kind(),
                "dropping message to unknown peer"
            );
            return Err(SendError::UnknownPeer(msg.to));
        };
        let to = msg.to;
        match p.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(msg)) => {
                p.counters.add_dropped(1);
                trace!(
                    to,
                    kind = msg.body.kind(),
                    "send queue full; message dropped"
                );
                Err(SendError::QueueFull(to))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                p.counters.add_dropped(1);
                Err(SendError::Shutdown)
            }
        }
    }

    /// Adds a peer, or changes its address (the current connection is closed and the new
    /// address dialed at once). Setting the same address again does nothing.
    pub fn set_peer(&self, id: NodeId, addr: SocketAddr) -> Result<(), SetPeerError> {
        if id == self.shared.node_id {
            return Err(SetPeerError::SelfPeer(id));
        }
        let mut peers = self.peers();
        let Some(peers) = peers.as_mut() else {
            return Err(SetPeerError::Shutdown);
        };
        match peers.get(&id) {
            Some(p) if p.addr() == addr => {}
            Some(p) => {
                info!(peer = id, old = %p.addr(), new = %addr, "peer address changed");
                p.set_addr(addr);
            }
            None => {
                info!(peer = id, %addr, "peer added");
                peers.insert(id, PeerHandle::spawn(self.shared.clone(), id, addr));
            }
        }
        Ok(())
    }

    /// Removes a peer: its sending task stops, its queue is dropped and its outbound
    /// connection closed. Messages it sends us are still accepted. Returns whether it was
    /// configured.
    pub fn remove_peer(&self, id: NodeId) -> bool {
        let removed = self.peers().as_mut().and_then(|p| p.remove(&id));
        match removed {
            Some(p) => {
                info!(peer = id, "peer removed");
                self.shared.redial().remove(&id);
                p.task.abort();
                true
            }
            None => false,
        }
    }

    /// The configured peers and their addresses.
    pub fn peer_addrs(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.peers()
            .as_ref()
            .map(|p| p.iter().map(|(id, h)| (*id, h.addr())).collect())
            .unwrap_or_default()
    }

    /// One peer's counters.
    pub fn peer_stats(&self, id: NodeId) -> Option<PeerStats> {
        self.peers()
            .as_ref()
            .and_then(|p| p.get(&id))
            .map(PeerHandle::stats)
    }

    /// All counters.
    pub fn stats(&self) -> TransportStats {
        let c = &self.shared.counters;
        TransportStats {
            received: c.received.load(Ordering::Relaxed),
            received_bytes: c.received_bytes_by_sender(),
            inbound_dropped: c.inbound_dropped.load(Ordering::Relaxed),
            unknown_peer_dropped: c.unknown_peer_dropped.load(Ordering::Relaxed),
            rejected_connections: c.rejected_connections.load(Ordering::Relaxed),
            protocol_errors: c.protocol_errors.load(Ordering::Relaxed),
            inbound_connections: self.shared.inbound_conns().len(),
            peers: self
                .peers()
                .as_ref()
                .map(|p| p.iter().map(|(id, h)| (*id, h.stats())).collect())
                .unwrap_or_default(),
        }
    }

    /// Stops accepting, closes every connection and waits for every task to end.
    /// Afterwards `send` and `set_peer` fail with `Shutdown`. Idempotent.
    pub async fn shutdown(&self) {
        let peers = self.peers().take().unwrap_or_default();
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let _ = self.stop.send(true);
        for p in peers.values() {
            p.task.abort();
        }
        for (_, p) in peers {
            let _ = p.task.await;
        }
        if let Some(l) = listener {
            let _ = l.await;
        }
        debug!(node = self.shared.node_id, "tcp transport shut down");
    }

    fn peers(&self) -> MutexGuard<'_, Option<BTreeMap<NodeId, PeerHandle>>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        if let Some(peers) = self.peers().take() {
            for p in peers.values() {
                p.task.abort();
            }
        }
        if let Some(l) = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            // Aborting the accept loop drops its set of reader tasks, which aborts them.
            l.abort();
        }
    }
}

fn bind(listen: ListenOn) -> Result<TcpListener, StartError> {
    match listen {
        ListenOn::Addr(addr) => {
            let bind = || {
                let socket = if addr.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.set_reuseaddr(true)?;
                socket.bind(addr)?;
                socket.listen(1024)
            };
            bind().map_err(|source| StartError::Bind { addr, source })
        }
        ListenOn::Std(l) => {
            l.set_nonblocking(true).map_err(StartError::Listener)?;
            TcpListener::from_std(l).map_err(StartError::Listener)
        }
        ListenOn::Tokio(l) => Ok(l),
    }
}
