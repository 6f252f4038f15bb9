//! Forwarding the lease requests only the leader can answer (`LeaseKeepAlive`,
//! `LeaseTimeToLive`: the remaining time lives in the leader's lessor) from a member that does
//! not lead to the one that does, over the leader's etcd client API — as etcd forwards them to
//! its leader, so a client may send them to any member.
//!
//! - The leader's client URLs come from a [`MemberDirectory`]. One tonic [`Channel`] is kept,
//!   for the leader it was resolved for; when the node names another leader, the URLs are
//!   resolved again and a new channel replaces it.
//! - A client's keepalive stream is relayed over one stream to the leader
//!   ([`KeepAliveRelay`]), opened on the first keepalive that needs it and opened again when
//!   the leader changes or the relay breaks.
//! - Forwarded requests carry the [`FORWARDED_HEADER`] metadata: a member receiving one does
//!   not forward it again (it answers "not leader" instead), so two members that disagree
//!   about the leader never bounce a request between them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sextant_core::NodeId;
use thiserror::Error;
use tokio::sync::mpsc;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status, Streaming};

use super::cluster::FORWARDED_HEADER;
use super::pb::etcdserverpb as pb;
use super::pb::etcdserverpb::lease_client::LeaseClient;

/// Where members serve etcd clients. Implemented over the member registry by the server; must
/// answer quickly (it is asked on every leader change).
pub trait MemberDirectory: Send + Sync {
    /// The client URLs (`http://host:port`) member `id` advertises; empty when unknown.
    fn client_urls(&self, id: NodeId) -> Vec<String>;
}

/// Keepalives waiting to be relayed on one relay stream (one is in flight at a time).
const RELAY_QUEUE: usize = 4;

/// Why a request could not be forwarded to the leader.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ForwardError {
    #[error("no client URL is known for leader {leader:x}")]
    NoClientUrl { leader: NodeId },
    #[error("client URL {url:?} of leader {leader:x} is invalid: {reason}")]
    BadUrl {
        leader: NodeId,
        url: String,
        reason: String,
    },
    #[error("leader {leader:x} closed the keepalive relay")]
    RelayClosed { leader: NodeId },
}

impl From<ForwardError> for Status {
    /// Unavailable: the client should retry, possibly at another member.
    fn from(e: ForwardError) -> Status {
        Status::unavailable(format!("sextant: cannot forward to the leader: {e}"))
    }
}

/// Whether `req` was forwarded by another member.
pub fn is_forwarded<T>(req: &Request<T>) -> bool {
    req.metadata().contains_key(FORWARDED_HEADER)
}

/// Channels to the leader, shared by every request of one server.
pub struct Forwarder {
    directory: Arc<dyn MemberDirectory>,
    /// The channel to the leader it was resolved for.
    cached: Mutex<Option<(NodeId, Channel)>>,
    /// Bounds connecting and each forwarded call (the node's request timeout).
    timeout: Duration,
}

impl Forwarder {
    pub fn new(directory: Arc<dyn MemberDirectory>, timeout: Duration) -> Forwarder {
        Forwarder {
            directory,
            cached: Mutex::new(None),
            timeout,
        }
    }

    /// The channel to `leader`, resolved again if the cached one is for another member.
    /// Connects lazily: the first call through it connects (and reconnects after failures).
    pub fn channel(&self, leader: NodeId) -> Result<Channel, ForwardError> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((id, ch)) = cached.as_ref() {
            if *id == leader {
                return Ok(ch.clone());
            }
        }
        let urls = self.directory.client_urls(leader);
        let url = urls
            .first()
            .ok_or(ForwardError::NoClientUrl { leader })?
            .clone();
        let endpoint = Endpoint::from_shared(url.clone()).map_err(|e| ForwardError::BadUrl {
            leader,
            url,
            reason: e.to_string(),
        })?;
        let ch = endpoint
            .connect_timeout(self.timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        *cached = Some((leader, ch.clone()));
        Ok(ch)
    }

    /// Whether `leader`'s client URLs are known (a member publishes them once started, so a
    /// leader that just started may not have them in the registry yet).
    pub fn resolvable(&self, leader: NodeId) -> bool {
        let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        cached.as_ref().is_some_and(|(id, _)| *id == leader)
            || !self.directory.client_urls(leader).is_empty()
    }

    /// Forgets the channel to `leader` (after it failed), so the next use resolves again.
    fn forget(&self, leader: NodeId) {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if cached.as_ref().is_some_and(|(id, _)| *id == leader) {
            *cached = None;
        }
    }

    /// `LeaseTimeToLive` at `leader`; its answer (or error status) is passed on unchanged.
    pub async fn time_to_live(
        &self,
        leader: NodeId,
        req: pb::LeaseTimeToLiveRequest,
    ) -> Result<pb::LeaseTimeToLiveResponse, Status> {
        let mut client = LeaseClient::new(self.channel(leader)?);
        let call = client.lease_time_to_live(forwarded(req));
        let answer = tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| Err(Status::unavailable("etcdserver: request timed out")));
        match answer {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => {
                if is_transport_failure(&s) {
                    self.forget(leader);
                }
                Err(s)
            }
        }
    }
}

fn forwarded<T>(msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert(FORWARDED_HEADER, MetadataValue::from_static("1"));
    req
}

/// Failures of the connection rather than answers of the leader.
fn is_transport_failure(s: &Status) -> bool {
    matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
}

/// One stream to the leader.
struct Relay {
    leader: NodeId,
    requests: mpsc::Sender<pb::LeaseKeepAliveRequest>,
    responses: Streaming<pb::LeaseKeepAliveResponse>,
}

/// Relays the keepalives of one client stream to the leader over one stream of its own.
pub struct KeepAliveRelay {
    forwarder: Arc<Forwarder>,
    open: Option<Relay>,
}

impl KeepAliveRelay {
    pub fn new(forwarder: Arc<Forwarder>) -> KeepAliveRelay {
        KeepAliveRelay {
            forwarder,
            open: None,
        }
    }

    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// One keepalive for lease `id` at `leader`, answered by it. The relay is (re)opened when
    /// it is not open to `leader`; after a failure it is dropped, and the next keepalive opens
    /// it again.
    pub async fn keep_alive(
        &mut self,
        leader: NodeId,
        id: i64,
    ) -> Result<pb::LeaseKeepAliveResponse, Status> {
        if self.open.as_ref().is_some_and(|r| r.leader != leader) {
            self.open = None;
        }
        let relay = match &mut self.open {
            Some(r) => r,
            None => self.open.insert(self.open_relay(leader).await?),
        };
        let exchange = async {
            if relay
                .requests
                .send(pb::LeaseKeepAliveRequest { id })
                .await
                .is_err()
            {
                return Ok(None);
            }
            relay.responses.message().await
        };
        // The leader answers within its own request timeout; allow for the hop.
        let limit = self.forwarder.timeout * 2;
        let answer = tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or_else(|_| Err(Status::unavailable("etcdserver: request timed out")));
        match answer {
            Ok(Some(r)) => Ok(r),
            Ok(None) => {
                self.open = None;
                Err(ForwardError::RelayClosed { leader }.into())
            }
            Err(s) => {
                self.open = None;
                if is_transport_failure(&s) {
                    self.forwarder.forget(leader);
                }
                Err(s)
            }
        }
    }

    async fn open_relay(&self, leader: NodeId) -> Result<Relay, Status> {
        let mut client = LeaseClient::new(self.forwarder.channel(leader)?);
        let (tx, rx) = mpsc::channel(RELAY_QUEUE);
        let requests =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        let responses = match client.lease_keep_alive(forwarded(requests)).await {
            Ok(r) => r.into_inner(),
            Err(s) => {
                if is_transport_failure(&s) {
                    self.forwarder.forget(leader);
                }
                return Err(s);
            }
        };
        Ok(Relay {
            leader,
            requests: tx,
            responses,
        })
    }
}
