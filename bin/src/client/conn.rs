//! Connecting to the cluster: the endpoint list with fail-over to the next endpoint when one
//! cannot be reached, the dial and per-request timeouts, client TLS (rustls) and the typed
//! gRPC clients over the chosen channel.

use std::future::Future;
use std::time::Duration;

use sextant_net::grpc::pb::etcdserverpb::{
    cluster_client::ClusterClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use sextant_net::grpc::pb::v3electionpb::election_client::ElectionClient;
use sextant_net::grpc::pb::v3lockpb::lock_client::LockClient;
use tokio::sync::OnceCell;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::{GlobalArgs, WriteOut};

/// Why no connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid endpoint {url:?}: {why}")]
    BadEndpoint { url: String, why: String },
    #[error("--cert and --key must be given together")]
    HalfIdentity,
    #[error("reading {path}: {why}")]
    ReadPem { path: String, why: std::io::Error },
    #[error("TLS configuration for {url}: {why}")]
    Tls { url: String, why: String },
    #[error("no endpoint given")]
    NoEndpoints,
    #[error("cannot connect to any endpoint ({0})")]
    Unreachable(String),
}

/// The request deadline passed (etcdctl's wording).
#[derive(Debug, thiserror::Error)]
#[error("context deadline exceeded")]
pub struct DeadlineExceeded;

/// The user's endpoints and options, and (once a command needs it) a channel to the first
/// endpoint that answered.
pub struct Connection {
    endpoints: Vec<String>,
    dial_timeout: Duration,
    command_timeout: Duration,
    pub write_out: WriteOut,
    tls: Option<ClientTlsConfig>,
    channel: OnceCell<Channel>,
}

impl Connection {
    pub fn new(global: &GlobalArgs) -> Result<Connection, ConnectError> {
        let tls_flags =
            global.cacert.is_some() || global.cert_file.is_some() || global.key_file.is_some();
        let endpoints: Vec<String> = global
            .endpoints
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(|e| with_scheme(e, tls_flags))
            .collect();
        if endpoints.is_empty() {
            return Err(ConnectError::NoEndpoints);
        }
        let any_https = endpoints.iter().any(|e| e.starts_with("https://"));
        let tls = if tls_flags || any_https {
            Some(tls_config(global)?)
        } else {
            None
        };
        Ok(Connection {
            endpoints,
            dial_timeout: global.dial_timeout,
            command_timeout: global.command_timeout,
            write_out: global.write_out,
            tls,
            channel: OnceCell::new(),
        })
    }

    pub fn json(&self) -> bool {
        self.write_out == WriteOut::Json
    }

    pub fn table(&self) -> bool {
        self.write_out == WriteOut::Table
    }

    /// The endpoints as given (with a scheme added where missing).
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// A channel to the first endpoint (in the given order) that accepts a connection.
    pub async fn channel(&self) -> Result<Channel, ConnectError> {
        self.channel
            .get_or_try_init(|| async {
                let mut failures = Vec::new();
                for url in &self.endpoints {
                    match self.connect(url).await {
                        Ok(ch) => return Ok(ch),
                        Err(ConnectError::Unreachable(why)) => failures.push(why),
                        Err(e) => return Err(e),
                    }
                }
                Err(ConnectError::Unreachable(failures.join("; ")))
            })
            .await
            .cloned()
    }

    /// A channel to exactly `url` (for per-endpoint commands such as `endpoint status`).
    pub async fn connect(&self, url: &str) -> Result<Channel, ConnectError> {
        let bad = |why: String| ConnectError::BadEndpoint {
            url: url.to_string(),
            why,
        };
        let mut ep = Endpoint::from_shared(url.to_string())
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(self.dial_timeout)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            ep = ep.tls_config(tls.clone()).map_err(|e| ConnectError::Tls {
                url: url.to_string(),
                why: e.to_string(),
            })?;
        }
        match tokio::time::timeout(self.dial_timeout, ep.connect()).await {
            Ok(Ok(ch)) => Ok(ch),
            Ok(Err(e)) => Err(ConnectError::Unreachable(format!(
                "{url}: {}",
                error_chain(&e)
            ))),
            Err(_) => Err(ConnectError::Unreachable(format!(
                "{url}: dial timeout after {:?}",
                self.dial_timeout
            ))),
        }
    }

    /// Runs one unary request under `--command-timeout`.
    pub async fn call<T, F>(&self, request: F) -> anyhow::Result<T>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(self.command_timeout, request).await {
            Ok(r) => Ok(r?.into_inner()),
            Err(_) => Err(DeadlineExceeded.into()),
        }
    }

    pub async fn kv(&self) -> Result<KvClient<Channel>, ConnectError> {
        Ok(KvClient::new(self.channel().await?))
    }
    pub async fn watch(&self) -> Result<WatchClient<Channel>, ConnectError> {
        Ok(WatchClient::new(self.channel().await?))
    }
    pub async fn lease(&self) -> Result<LeaseClient<Channel>, ConnectError> {
        Ok(LeaseClient::new(self.channel().await?))
    }
    pub async fn cluster(&self) -> Result<ClusterClient<Channel>, ConnectError> {
        Ok(ClusterClient::new(self.channel().await?))
    }
    pub async fn maintenance(&self) -> Result<MaintenanceClient<Channel>, ConnectError> {
        Ok(MaintenanceClient::new(self.channel().await?))
    }
    pub async fn lock(&self) -> Result<LockClient<Channel>, ConnectError> {
        Ok(LockClient::new(self.channel().await?))
    }
    pub async fn election(&self) -> Result<ElectionClient<Channel>, ConnectError> {
        Ok(ElectionClient::new(self.channel().await?))
    }
}

/// etcdctl accepts `host:port`; the scheme follows whether TLS flags were given.
fn with_scheme(endpoint: &str, tls: bool) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else if tls {
        format!("https://{endpoint}")
    } else {
        format!("http://{endpoint}")
    }
}

fn tls_config(global: &GlobalArgs) -> Result<ClientTlsConfig, ConnectError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|why| ConnectError::ReadPem {
            path: p.display().to_string(),
            why,
        })
    };
    let mut tls = ClientTlsConfig::new();
    tls = match &global.cacert {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca)?)),
        None => tls.with_native_roots(),
    };
    match (&global.cert_file, &global.key_file) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => return Err(ConnectError::HalfIdentity),
    }
    Ok(tls)
}

/// An error and its sources on one line (tonic's transport errors hide the cause otherwise).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}
