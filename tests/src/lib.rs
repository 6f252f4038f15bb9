//! Harness for end-to-end tests of real `sextant` processes on 127.0.0.x: builds the binary,
//! starts members with etcd-style flags, kills (`SIGKILL`) and restarts them, and talks to
//! them over the etcd v3 gRPC API (a tonic client generated from the same etcd protos, so
//! requests cross a real HTTP/2 connection), or plain HTTP/1.1 for `/metrics` and `/health`.
//! Members may serve clients and peers over TLS with certificates the harness makes
//! ([`TestCerts`]). Every process is killed when the harness is dropped, also when a test
//! fails; every wait is bounded.

mod certs;
mod http;

pub use certs::TestCerts;
pub use http::http_get;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod chaos;
pub mod cli;

use sextant_net::grpc::pb::etcdserverpb as pb;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// The `sextant` binary of this workspace, built (once per test process) if needed.
pub fn sextant_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("SEXTANT_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test> -> target/<profile>/sextant
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "sextant", "--bin", "sextant"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("run cargo build for the sextant binary");
        assert!(status.success(), "building the sextant binary failed");
        let bin = profile_dir.join("sextant");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// A free TCP port on `ip` for a member to listen on (the tests run on loopback only).
///
/// Taken below the kernel's ephemeral range (32768–60999 on Linux): a port the kernel hands
/// out for `bind(:0)` is released before the member binds it, and in that window any
/// outgoing connection (a client, a peer dialing) may be given it as its local port, so the
/// member fails with "address in use". Ports here are spread by process id and a counter so
/// that test threads and processes do not pick the same one, and each is checked bindable.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
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
        if TcpListener::bind(SocketAddr::from((ip, port))).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip} in {LOW}..{}", LOW + SPAN)
}

/// One member: its addresses, data dir and (while running) its process.
pub struct Member {
    pub name: String,
    pub ip: Ipv4Addr,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// The port of `--listen-metrics-urls`, when the cluster has them.
    pub metrics_port: Option<u16>,
    client_https: bool,
    peer_https: bool,
    /// Starts with `--initial-cluster-state existing` (a member added to a running cluster).
    pub joins_existing: bool,
    boots: u32,
    child: Option<Child>,
}

impl Member {
    pub fn client_url(&self) -> String {
        let scheme = if self.client_https { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.ip, self.client_port)
    }

    pub fn peer_url(&self) -> String {
        let scheme = if self.peer_https { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.ip, self.peer_port)
    }

    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.client_port))
    }

    /// Where `--listen-metrics-urls` is served (panics if the cluster has none).
    pub fn metrics_addr(&self) -> SocketAddr {
        let port = self.metrics_port.expect("started with metrics URLs");
        SocketAddr::from((self.ip, port))
    }

    /// The process id, while a boot of this member is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Everything this member logged (all boots).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits (bounded) for the process to exit by itself; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.child.as_mut()?;
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `SIGTERM` and wait for a clean exit (bounded).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        c.wait().ok()
    }
}

/// Timing and snapshot settings shared by every member.
#[derive(Clone, Debug)]
pub struct Tuning {
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub snapshot_count: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            heartbeat_ms: 50,
            election_ms: 500,
            snapshot_count: 10_000,
        }
    }
}

/// How members listen, beyond the defaults: TLS, metrics URLs, more flags.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// https client URLs (pass the certificate flags in `extra_args`).
    pub client_https: bool,
    /// https peer URLs (pass the `--peer-*` certificate flags in `extra_args`).
    pub peer_https: bool,
    /// Give every member a `--listen-metrics-urls` of its own.
    pub metrics_urls: bool,
    /// Flags added to every member's command line.
    pub extra_args: Vec<String>,
}

/// A cluster of real processes.
pub struct ProcessCluster {
    pub members: Vec<Member>,
    pub tuning: Tuning,
    pub options: ClusterOptions,
    _dir: tempfile::TempDir,
}

impl ProcessCluster {
    /// Starts `n` members on 127.0.0.1 ..= 127.0.0.n.
    pub fn start(n: u8, tuning: Tuning) -> ProcessCluster {
        ProcessCluster::start_with(n, tuning, ClusterOptions::default())
    }

    /// Starts `n` members on 127.0.0.1 ..= 127.0.0.n, listening as `options` says.
    pub fn start_with(n: u8, tuning: Tuning, options: ClusterOptions) -> ProcessCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let members = (1..=n)
            .map(|i| new_member(dir.path(), i, false, &options))
            .collect();
        let mut c = ProcessCluster {
            members,
            tuning,
            options,
            _dir: dir,
        };
        for k in 0..c.members.len() {
            c.launch(k);
        }
        c
    }

    /// Adds (without starting) a member on the next 127.0.0.x that joins the running cluster
    /// (`--initial-cluster-state existing`): add it with `MemberAdd` first, then
    /// [`ProcessCluster::launch`] it. Returns its index.
    pub fn add_member(&mut self) -> usize {
        let i = u8::try_from(self.members.len() + 1).expect("at most 254 members");
        let m = new_member(self._dir.path(), i, true, &self.options);
        self.members.push(m);
        self.members.len() - 1
    }

    /// `--initial-cluster` as every launch passes it: all members the harness knows.
    pub fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts (or restarts) member `k` with the cluster's flags.
    pub fn launch(&mut self, k: usize) {
        let initial = self.initial_cluster();
        let t = self.tuning.clone();
        let extra = self.options.extra_args.clone();
        let m = &mut self.members[k];
        assert!(m.child.is_none(), "{} is already running", m.name);
        m.boots += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log_path)
            .expect("open member log");
        let mut cmd = Command::new(sextant_bin());
        cmd.arg("server").args(&extra);
        if let Some(port) = m.metrics_port {
            cmd.args(["--listen-metrics-urls", &format!("http://{}:{port}", m.ip)]);
        }
        let child = cmd
            .args(member_flags(&MemberFlags {
                name: &m.name,
                data_dir: &m.data_dir,
                client_url: &m.client_url(),
                peer_url: &m.peer_url(),
                initial_cluster: &initial,
                joins_existing: m.joins_existing,
                token: "e2e",
                heartbeat_ms: t.heartbeat_ms,
                election_ms: t.election_ms,
            }))
            .args(["--snapshot-count", &t.snapshot_count.to_string()])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn sextant");
        m.child = Some(child);
    }

    /// All members' logs, for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("===== {} =====\n{}", m.name, m.log()))
            .collect()
    }
}

/// What a member's `sextant server` command line says about it and its cluster.
pub struct MemberFlags<'a> {
    pub name: &'a str,
    pub data_dir: &'a Path,
    pub client_url: &'a str,
    pub peer_url: &'a str,
    pub initial_cluster: &'a str,
    /// `--initial-cluster-state existing` (a member added to a running cluster).
    pub joins_existing: bool,
    pub token: &'a str,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
}

/// The etcd-style flags every test member starts with (after `server`), logging at info.
pub fn member_flags(f: &MemberFlags<'_>) -> Vec<std::ffi::OsString> {
    let state = if f.joins_existing { "existing" } else { "new" };
    [
        ("--name", f.name.into()),
        ("--data-dir", f.data_dir.as_os_str().to_owned()),
        ("--listen-client-urls", f.client_url.into()),
        ("--listen-peer-urls", f.peer_url.into()),
        ("--initial-advertise-peer-urls", f.peer_url.into()),
        ("--initial-cluster", f.initial_cluster.into()),
        ("--initial-cluster-state", state.into()),
        ("--initial-cluster-token", f.token.into()),
        ("--heartbeat-interval", f.heartbeat_ms.to_string().into()),
        ("--election-timeout", f.election_ms.to_string().into()),
        ("--log-level", "info".into()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.into(), value])
    .collect()
}

fn new_member(dir: &Path, i: u8, joins_existing: bool, options: &ClusterOptions) -> Member {
    let ip = Ipv4Addr::new(127, 0, 0, i);
    Member {
        name: format!("n{i}"),
        ip,
        client_port: free_port(ip),
        peer_port: free_port(ip),
        data_dir: dir.join(format!("n{i}")),
        log_path: dir.join(format!("n{i}.log")),
        metrics_port: options.metrics_urls.then(|| free_port(ip)),
        client_https: options.client_https,
        peer_https: options.peer_https,
        joins_existing,
        boots: 0,
        child: None,
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill9();
        }
    }
}

/// An etcd v3 client connected to exactly one member (no balancing: tests know who answers).
#[derive(Clone)]
pub struct EtcdClient {
    kv: pb::kv_client::KvClient<Channel>,
    maintenance: pb::maintenance_client::MaintenanceClient<Channel>,
    cluster: pb::cluster_client::ClusterClient<Channel>,
}

impl EtcdClient {
    pub async fn put(&mut self, key: &str, value: &str) -> Result<pb::PutResponse, tonic::Status> {
        let req = pb::PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        Ok(self.kv.put(req).await?.into_inner())
    }

    /// The value of `key`, linearizable unless `serializable`.
    pub async fn get(
        &mut self,
        key: &str,
        serializable: bool,
    ) -> Result<Option<String>, tonic::Status> {
        let req = pb::RangeRequest {
            key: key.into(),
            serializable,
            ..Default::default()
        };
        let r = self.kv.range(req).await?.into_inner();
        Ok(r.kvs
            .first()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
    }

    /// How many keys start with `prefix`.
    pub async fn count_prefix(
        &mut self,
        prefix: &str,
        serializable: bool,
    ) -> Result<i64, tonic::Status> {
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().expect("non-empty prefix") += 1;
        let req = pb::RangeRequest {
            key: prefix.into(),
            range_end: end,
            count_only: true,
            serializable,
            ..Default::default()
        };
        Ok(self.kv.range(req).await?.into_inner().count)
    }

    /// The member's `Cluster` service client.
    pub fn cluster(&self) -> pb::cluster_client::ClusterClient<Channel> {
        self.cluster.clone()
    }

    /// `MemberList`, linearizable or from the member's current view.
    pub async fn member_list(
        &mut self,
        linearizable: bool,
    ) -> Result<pb::MemberListResponse, tonic::Status> {
        Ok(self
            .cluster
            .member_list(pb::MemberListRequest { linearizable })
            .await?
            .into_inner())
    }

    pub async fn status(&mut self) -> Result<pb::StatusResponse, tonic::Status> {
        Ok(self
            .maintenance
            .status(pb::StatusRequest {})
            .await?
            .into_inner())
    }
}

/// Connects to one member, retrying while it starts (bounded).
pub async fn client(url: &str) -> EtcdClient {
    client_with(url, None).await
}

/// Connects to one member, over TLS when `tls` is given, retrying while it starts
/// (bounded).
pub async fn client_with(url: &str, tls: Option<ClientTlsConfig>) -> EtcdClient {
    match connect(url, tls, Duration::from_secs(20), false).await {
        Ok(c) => c,
        Err(e) => panic!("cannot connect to {url}: {e}"),
    }
}

/// Connects to one member (over TLS when `tls` is given) and checks it answers a `Status`,
/// retrying for at most `limit`; the last error otherwise.
pub async fn try_client(
    url: &str,
    tls: Option<ClientTlsConfig>,
    limit: Duration,
) -> Result<EtcdClient, String> {
    connect(url, tls, limit, true).await
}

/// Connects (and with `check_status` asks for a `Status`), retrying for at most `limit`.
async fn connect(
    url: &str,
    tls: Option<ClientTlsConfig>,
    limit: Duration,
    check_status: bool,
) -> Result<EtcdClient, String> {
    let deadline = Instant::now() + limit;
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .expect("valid url")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    loop {
        let attempt = async {
            let ch = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
            let mut c = EtcdClient {
                kv: pb::kv_client::KvClient::new(ch.clone()),
                maintenance: pb::maintenance_client::MaintenanceClient::new(ch.clone()),
                cluster: pb::cluster_client::ClusterClient::new(ch),
            };
            if check_status {
                c.status().await.map_err(|e| format!("{e:?}"))?;
            }
            Ok::<_, String>(c)
        };
        match attempt.await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Polls `f` until it returns `Some` or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
