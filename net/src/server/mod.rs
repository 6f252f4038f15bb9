//! Assembling a production node: open the data dir, restore or bootstrap the Raft core,
//! start the TCP peer transport, the storage thread, the node loop and the etcd gRPC
//! listeners (which also serve `/metrics` and `/health`, as etcd's do, and TLS when
//! configured), the metrics listeners; and take it all down again cleanly. The `sextant` binary turns flags and a
//! config file into a [`ServerConfig`] and calls [`Server::start`].

mod directory;
mod endpoints;
mod grpc_metrics;
mod identity;
mod membership;
mod metered_storage;
mod metrics;
mod restore;
pub mod snapshot_file;
mod tls;
mod urls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sextant_core::kv::{AutoCompactionMode, KvLimits, KvStore};
use sextant_core::{Config as RaftConfig, Message, NodeId, Raft, ReadMode, RestoreState};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use directory::RegistryDirectory;
pub use endpoints::Endpoints;
pub use grpc_metrics::GrpcMetricsLayer;
pub use identity::{cluster_id, member_id, Identity};
pub use metered_storage::MeteredStorage;
pub use metrics::{Metrics, MetricsError};
pub use restore::{restore_snapshot, RestoreError, RestoreOptions, Restored};
pub use tls::{client_tls, peer_tls, TlsError, TlsFiles, TlsSide};
pub use urls::{is_https, parse_url_list, resolve_listen, UrlError};

use crate::grpc::{
    ClusterService, ElectionService, Forwarder, KvService, LeaseService, LockService,
    MaintenanceService, MemberDirectory, WatchService,
};
use crate::node::{
    adopt_stored_snapshot, spawn_storage_thread, DurableLog, IntervalClock, NodeConfig, NodeHandle,
    NodeLoop, PeerSender,
};
use crate::storage::{FileStorage, StorageOptions, WriteError};
use crate::transport::{TcpTransport, TransportConfig};

/// Whether this member starts a new cluster or joins an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

/// Everything a node needs to start, already validated by the caller.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client: Vec<SocketAddr>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer: SocketAddr,
    pub initial_advertise_peer_urls: Vec<String>,
    /// name -> peer URLs of every initial member.
    pub initial_cluster: BTreeMap<String, Vec<String>>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_count: u64,
    pub max_request_bytes: usize,
    pub request_timeout: Duration,
    pub lease_reads: bool,
    /// Plain-HTTP listeners serving only `/metrics` and `/health` (etcd's
    /// `--listen-metrics-urls`).
    pub listen_metrics: Vec<SocketAddr>,
    /// TLS on the client listeners (etcd's `--cert-file` and friends); none: plain.
    pub client_tls: Option<TlsFiles>,
    /// TLS between peers (etcd's `--peer-cert-file` and friends); none: plain.
    pub peer_tls: Option<TlsFiles>,
    /// etcd's `--auto-compaction-mode` / `--auto-compaction-retention`; none: off.
    pub auto_compaction: Option<AutoCompactionMode>,
    /// Compares, and ops per branch, in one txn (etcd's `--max-txn-ops`).
    pub max_txn_ops: usize,
}

#[derive(Debug, Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("data dir {dir}: {source}")]
    Storage {
        dir: PathBuf,
        #[source]
        source: crate::storage::OpenError,
    },
    #[error("data dir {0}")]
    Identity(#[from] identity::IdentityError),
    #[error("restoring raft state: {0}")]
    Restore(#[from] sextant_core::RestoreError),
    #[error("state machine snapshot in the data dir is unreadable: {0}")]
    Snapshot(#[from] sextant_core::kv::SnapshotDecodeError),
    #[error("peer transport: {0}")]
    Transport(#[from] crate::transport::StartError),
    #[error("cannot listen for clients on {addr}: {source}")]
    ClientListen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resolve peer URL: {0}")]
    Url(#[from] UrlError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("cannot listen for metrics on {addr}: {source}")]
    MetricsListen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("client TLS: {0}")]
    ClientTls(#[source] tonic::transport::Error),
}

impl DurableLog for FileStorage {
    type Error = WriteError;
    fn append(
        &mut self,
        hard_state: Option<sextant_core::HardState>,
        snapshot: Option<&sextant_core::Snapshot>,
        entries: &[sextant_core::Entry],
    ) -> Result<(), WriteError> {
        FileStorage::append(self, hard_state, snapshot, entries)
    }
    fn sync(&mut self) -> Result<(), WriteError> {
        FileStorage::sync(self)
    }
    fn save_snapshot(&mut self, snapshot: &sextant_core::Snapshot) -> Result<(), WriteError> {
        FileStorage::save_snapshot(self, snapshot)
    }
    fn snapshot_file_job(
        &self,
        snapshot: &sextant_core::Snapshot,
    ) -> Option<crate::node::SnapshotFileJob<WriteError>> {
        Some(Box::new(FileStorage::snapshot_file_job(self, snapshot)))
    }
    fn record_snapshot(&mut self, snapshot: &sextant_core::Snapshot) -> Result<(), WriteError> {
        FileStorage::record_snapshot(self, snapshot)
    }
    fn compact(&mut self, index: sextant_core::Index) -> Result<(), WriteError> {
        FileStorage::compact(self, index)
    }
    fn idle(&mut self) -> Result<(), WriteError> {
        FileStorage::preallocate(self).map(drop)
    }
    fn stored_snapshot(&mut self, meta: &sextant_core::SnapshotMeta) -> Option<bytes::Bytes> {
        match self.mapped_snapshot(meta) {
            Ok(data) => Some(data),
            Err(e) => {
                tracing::warn!(index = meta.index, error = %e, "cannot map the snapshot file; keeping it in memory");
                None
            }
        }
    }
    fn is_no_space(e: &WriteError) -> bool {
        e.is_no_space()
    }
}

struct TransportSender(Arc<TcpTransport>);

impl PeerSender for TransportSender {
    fn send(&self, msg: Message) {
        // Drops (full queue, unknown peer) are counted by the transport; Raft retransmits.
        let _ = self.0.send(msg);
    }
}

/// A running node.
pub struct Server {
    pub member_id: NodeId,
    pub cluster_id: u64,
    pub node: NodeHandle,
    pub client_addrs: Vec<SocketAddr>,
    /// Where `--listen-metrics-urls` are served.
    pub metrics_addrs: Vec<SocketAddr>,
    pub peer_addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// Turns true when this member was removed from the cluster.
    removed: watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
    node_task: JoinHandle<()>,
    storage_thread: std::thread::JoinHandle<()>,
    transport: Arc<TcpTransport>,
}

impl Server {
    /// Opens the data dir and starts everything. Leader-only lease requests are forwarded to
    /// the client URLs in the member registry ([`RegistryDirectory`]). Must run inside a
    /// tokio runtime.
    pub async fn start(cfg: ServerConfig) -> Result<Server, StartError> {
        Server::start_inner(cfg, None).await
    }

    /// [`Server::start`], with `directory` telling where other members serve clients instead
    /// of the member registry.
    pub async fn start_with_directory(
        cfg: ServerConfig,
        directory: Arc<dyn MemberDirectory>,
    ) -> Result<Server, StartError> {
        Server::start_inner(cfg, Some(directory)).await
    }

    async fn start_inner(
        cfg: ServerConfig,
        directory: Option<Arc<dyn MemberDirectory>>,
    ) -> Result<Server, StartError> {
        // Bad certificate files are reported before anything else starts.
        let client_tls = cfg.client_tls.as_ref().map(client_tls).transpose()?;
        let peer_tls = cfg.peer_tls.as_ref().map(peer_tls).transpose()?;
        let members = member_ids(&cfg)?;
        let Some(&me) = members
            .iter()
            .find(|(_, name)| **name == cfg.name)
            .map(|(id, _)| id)
        else {
            return Err(StartError::Config(format!(
                "--initial-cluster does not name this member ({})",
                cfg.name
            )));
        };
        // A member that joined an existing cluster keeps the id it learned then; a new
        // member of one asks a peer (the id derives from the initial members).
        let cid = match identity::read(&cfg.data_dir)? {
            Some(found) => found.cluster_id,
            None if cfg.initial_cluster_state == ClusterState::Existing => {
                membership::discover(&cfg, &members, me).await?
            }
            None => cluster_id(&cfg.initial_cluster_token, members.keys().copied()),
        };
        identity::check_or_write(
            &cfg.data_dir,
            &Identity {
                name: cfg.name.clone(),
                member_id: me,
                cluster_id: cid,
            },
        )?;

        let opening = std::time::Instant::now();
        let (mut storage, recovered) =
            FileStorage::open(&cfg.data_dir.join("member"), StorageOptions::default()).map_err(
                |source| StartError::Storage {
                    dir: cfg.data_dir.clone(),
                    source,
                },
            )?;
        let open_ms = opening.elapsed().as_millis() as u64;
        if let Some(torn) = &recovered.repaired_tail {
            tracing::warn!(%torn, "repaired a torn write at the end of the log");
        }
        let metrics = Arc::new(Metrics::new(me)?);
        let raft_cfg = raft_config(&cfg, me)?;
        let fresh = is_empty(&recovered.state);
        let (raft, kv, applied) = if fresh && cfg.initial_cluster_state == ClusterState::New {
            let voters: Vec<NodeId> = members.keys().copied().collect();
            tracing::info!(member = me, ?voters, "bootstrapping a new cluster");
            let context = membership::bootstrap_context(&cfg, &members);
            let raft = Raft::bootstrap_with_context(raft_cfg, &voters, context)?;
            (raft, KvStore::new(), 0)
        } else {
            let state = recovered.state;
            let restoring = std::time::Instant::now();
            let (mut kv, applied, mapped) = match &state.snapshot {
                Some(s) => (
                    KvStore::restore_bytes(&s.data)?,
                    s.meta.index,
                    DurableLog::stored_snapshot(&mut storage, &s.meta),
                ),
                None => (KvStore::new(), 0, None),
            };
            let last = state.entries.last().map(|e| e.index);
            let mut raft = Raft::new(raft_cfg, state)?;
            // The store's values are slices of the snapshot as read; they, and the copy the
            // core keeps for lagging followers, move to the file mapped into memory, and the
            // buffer read is freed: no heap copies.
            let shared_bytes = mapped
                .and_then(|m| adopt_stored_snapshot(&mut raft, applied, m))
                .map_or(0, |walk| walk.run(&mut kv).bytes);
            tracing::info!(
                member = me,
                applied,
                last,
                open_ms = open_ms,
                restore_ms = restoring.elapsed().as_millis() as u64,
                shared_bytes,
                "restarting from the data dir"
            );
            (raft, kv, applied)
        };

        let (inbound_tx, inbound_rx) = mpsc::channel(4096);
        let mut tcfg = TransportConfig::new(cid, me, cfg.listen_peer);
        for (id, name) in &members {
            if *id != me {
                let url = cfg.initial_cluster[name]
                    .first()
                    .expect("validated non-empty");
                tcfg.peers.insert(*id, urls::resolve(url)?);
            }
        }
        tcfg.frame_bytes_max = (cfg.max_request_bytes as u32)
            .saturating_mul(4)
            .max(64 * 1024 * 1024);
        tcfg.tls = peer_tls;
        let transport = Arc::new(TcpTransport::start(tcfg, inbound_tx)?);
        let peer_addr = transport.local_addr();

        let storage = MeteredStorage::new(storage, metrics.wal_fsync.clone());
        let (storage_io, storage_thread) = spawn_storage_thread(storage);
        let mut node_cfg = NodeConfig::new(cid, rand::random());
        node_cfg.request_timeout = cfg.request_timeout;
        node_cfg.snapshot_every_entries = cfg.snapshot_count.max(1);
        node_cfg.catch_up_entries = (cfg.snapshot_count / 2).min(5_000);
        node_cfg.limits = kv_limits(&cfg);
        node_cfg.auto_compaction = cfg.auto_compaction;
        let clock = IntervalClock::new(cfg.heartbeat_interval);
        let (node_loop, handle) = NodeLoop::new(
            node_cfg,
            raft,
            kv,
            applied,
            TransportSender(transport.clone()),
            clock,
            storage_io,
            inbound_rx,
        );
        let (stop, stop_rx) = watch::channel(false);
        let node_task = tokio::spawn(node_loop.run(wait_stop(stop_rx.clone())));

        let directory = directory.unwrap_or_else(|| Arc::new(RegistryDirectory(handle.clone())));
        let forwarder = Arc::new(Forwarder::new(directory, cfg.request_timeout));
        let endpoints = Arc::new(Endpoints {
            node: handle.clone(),
            transport: transport.clone(),
            metrics: metrics.clone(),
            health_read_timeout: cfg.request_timeout,
        });
        let grpc_metrics = GrpcMetricsLayer::new(&metrics);
        let mut tasks = Vec::new();
        let mut metrics_addrs = Vec::new();
        for addr in &cfg.listen_metrics {
            let listen_err = |source| StartError::MetricsListen {
                addr: *addr,
                source,
            };
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(listen_err)?;
            let local = listener.local_addr().map_err(listen_err)?;
            metrics_addrs.push(local);
            let routes = tonic::service::Routes::from(endpoints.router());
            let stop_rx = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let r = tonic::transport::Server::builder()
                    .accept_http1(true)
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(accept_stream(listener), wait_stop(stop_rx))
                    .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "metrics server stopped");
                }
            }));
            tracing::info!(%local, "serving /metrics and /health");
        }
        let mut client_addrs = Vec::new();
        for addr in &cfg.listen_client {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::ClientListen {
                    addr: *addr,
                    source,
                })?;
            let local = listener
                .local_addr()
                .map_err(|source| StartError::ClientListen {
                    addr: *addr,
                    source,
                })?;
            client_addrs.push(local);
            let incoming = accept_stream(listener);
            let svc = KvService::server(handle.clone(), kv_limits(&cfg));
            let maintenance = MaintenanceService::server(handle.clone());
            let lease = LeaseService::server(handle.clone(), forwarder.clone());
            let watch = WatchService::server(handle.clone(), cfg.max_request_bytes);
            let cluster = ClusterService::server(handle.clone(), cfg.initial_cluster_token.clone());
            let lock = LockService::server(handle.clone());
            let election = ElectionService::server(handle.clone());
            let stop_rx = stop_rx.clone();
            // HTTP/1.1 too, for `/metrics` and `/health` beside the gRPC services.
            let mut builder = tonic::transport::Server::builder().accept_http1(true);
            if let Some(tls) = &client_tls {
                builder = builder
                    .tls_config(tls.clone())
                    .map_err(StartError::ClientTls)?;
            }
            let routes = client_routes(&endpoints);
            let mut builder = builder.layer(grpc_metrics.clone());
            let published = membership::wait_published(
                handle.membership(),
                me,
                cfg.name.clone(),
                cfg.advertise_client_urls.clone(),
            );
            tasks.push(tokio::spawn(async move {
                tokio::select! {
                    _ = published => {}
                    _ = wait_stop(stop_rx.clone()) => return,
                }
                tracing::info!(%local, "this member is published: serving etcd v3 clients");
                let r = builder
                    .add_routes(routes)
                    .add_service(svc)
                    .add_service(maintenance)
                    .add_service(lease)
                    .add_service(watch)
                    .add_service(cluster)
                    .add_service(lock)
                    .add_service(election)
                    .serve_with_incoming_shutdown(incoming, wait_stop(stop_rx))
                    .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "client gRPC server stopped");
                }
            }));
            let scheme = if client_tls.is_some() {
                "https"
            } else {
                "http"
            };
            tracing::info!(%local, scheme, "listening for etcd v3 clients (served once published)");
        }
        let (removed_tx, removed) = watch::channel(false);
        tasks.push(membership::spawn_publish(
            handle.clone(),
            cfg.name.clone(),
            cfg.advertise_client_urls.clone(),
            stop_rx.clone(),
        ));
        tasks.push(membership::spawn_follow(
            handle.clone(),
            transport.clone(),
            cid,
            stop_rx.clone(),
            removed_tx,
        ));
        tracing::info!(member = me, cluster = cid, %peer_addr, "member started");
        Ok(Server {
            member_id: me,
            cluster_id: cid,
            node: handle,
            client_addrs,
            metrics_addrs,
            peer_addr,
            stop,
            removed,
            tasks,
            node_task,
            storage_thread,
            transport,
        })
    }

    /// Completes when this member has been removed from the cluster (it applied its removal,
    /// or the other members no longer list it): the caller should [`Server::shutdown`] it.
    pub async fn removed(&self) {
        let mut rx = self.removed.clone();
        if rx.wait_for(|removed| *removed).await.is_err() {
            // The membership task ended without a removal (the server is stopping).
            std::future::pending::<()>().await;
        }
    }

    /// Stops serving clients, stops the node loop, lets the storage thread finish its last
    /// writes, and closes peer connections.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = self.node_task.await;
        self.transport.shutdown().await;
        // The loop dropped its storage sender; the thread drains what is queued and exits.
        let _ = tokio::task::spawn_blocking(move || self.storage_thread.join()).await;
        tracing::info!("member stopped");
    }
}

async fn wait_stop(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Accepted client connections, with Nagle off (small request/response RPCs).
fn accept_stream(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        });
        Some((r, l))
    })
}

/// A client listener's routes: `/metrics` and `/health`, with gRPC's "unimplemented" for
/// any other path (the services are added next to these).
fn client_routes(endpoints: &Arc<Endpoints>) -> tonic::service::Routes {
    let grpc = tonic::service::Routes::default().into_axum_router();
    tonic::service::Routes::from(grpc.merge(endpoints.router()))
}

/// What the gRPC layer admits: etcd's `--max-request-bytes` bounds every proposal (and so every
/// value); the other limits are etcd's defaults.
fn kv_limits(cfg: &ServerConfig) -> KvLimits {
    KvLimits {
        request_bytes_max: cfg.max_request_bytes,
        value_bytes_max: cfg.max_request_bytes,
        txn_ops_max: cfg.max_txn_ops,
        ..KvLimits::default()
    }
}

fn is_empty(s: &RestoreState) -> bool {
    s.snapshot.is_none() && s.entries.is_empty() && s.hard_state == Default::default()
}

/// Member ids of the initial cluster, derived from names' peer URLs and the cluster token
/// (stable across restarts, like etcd's).
fn member_ids(cfg: &ServerConfig) -> Result<BTreeMap<NodeId, String>, StartError> {
    let mut ids = BTreeMap::new();
    for (name, urls) in &cfg.initial_cluster {
        if urls.is_empty() {
            return Err(StartError::Config(format!("member {name} has no peer URL")));
        }
        let id = member_id(urls, &cfg.initial_cluster_token);
        if let Some(other) = ids.insert(id, name.clone()) {
            return Err(StartError::Config(format!(
                "members {other} and {name} have the same peer URLs"
            )));
        }
    }
    Ok(ids)
}

fn raft_config(cfg: &ServerConfig, me: NodeId) -> Result<RaftConfig, StartError> {
    let hb = cfg.heartbeat_interval.as_millis().max(1);
    let election_ticks = (cfg.election_timeout.as_millis() / hb) as u32;
    if election_ticks < 5 {
        return Err(StartError::Config(
            "--election-timeout must be at least 5x --heartbeat-interval".into(),
        ));
    }
    let mut c = RaftConfig::new(me);
    c.election_ticks_min = election_ticks;
    c.election_ticks_max = election_ticks * 2;
    c.heartbeat_ticks = 1;
    c.entry_bytes_max = cfg.max_request_bytes + 1024;
    c.rng_seed = rand::random();
    if cfg.lease_reads {
        c.read_mode = ReadMode::Lease {
            drift_ticks_max: (election_ticks / 5).max(1),
        };
    }
    c.validate()
        .map_err(|e| StartError::Config(e.to_string()))?;
    Ok(c)
}
