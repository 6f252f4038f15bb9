//! The `etcdserverpb.Lease` service, as etcd 3.5's `v3rpc/lease.go`:
//! - `LeaseGrant` and `LeaseRevoke` are writes through the log (any member proposes them);
//! - `LeaseKeepAlive` answers every request of the client's stream in order; an unknown or
//!   expired lease is answered TTL 0 and the stream stays open, any other error ends the
//!   stream with etcd's status;
//! - `LeaseTimeToLive` answers an unknown lease TTL -1 (not an error);
//! - keepalives and TTL queries are answered by the leader only: on another member they are
//!   forwarded to it ([`super::forward`]); while no leader is known, or its client URLs are
//!   not, they wait, up to the request timeout, then fail "etcdserver: no leader" (or say
//!   why the leader cannot be reached);
//! - `LeaseLeases` lists the leases of this member's applied state.

use std::sync::Arc;
use std::time::Duration;

use sextant_core::kv::KvError;
use sextant_core::NodeId;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use super::forward::{is_forwarded, Forwarder, KeepAliveRelay};
use super::pb::etcdserverpb as pb;
use super::pb::etcdserverpb::lease_server::Lease;
use super::status::{self, to_status};
use crate::node::{ClientError, Header, NodeHandle};

/// How often a request waiting for a leader looks again.
const LEADER_POLL: Duration = Duration::from_millis(20);

/// Keepalive answers buffered towards one client stream.
const KEEPALIVE_RESPONSES: usize = 16;

pub struct LeaseService {
    node: NodeHandle,
    forwarder: Arc<Forwarder>,
}

impl LeaseService {
    pub fn new(node: NodeHandle, forwarder: Arc<Forwarder>) -> LeaseService {
        LeaseService { node, forwarder }
    }

    pub fn server(
        node: NodeHandle,
        forwarder: Arc<Forwarder>,
    ) -> pb::lease_server::LeaseServer<LeaseService> {
        pb::lease_server::LeaseServer::new(LeaseService::new(node, forwarder))
    }
}

/// Where a leader-only request goes.
enum Route {
    /// To the leader, over the forwarder.
    Forward(NodeId),
    /// Look again shortly (no leader known yet, or this member is between roles).
    Wait,
}

/// What to do with `NotLeader { leader }` at a member; `forwarded` requests are never
/// forwarded again. A leader whose client URLs are not known yet is waited for like a leader
/// not known yet; once `waited_out`, it is forwarded to anyway (and fails saying why).
fn route(
    forwarder: &Forwarder,
    leader: Option<NodeId>,
    forwarded: bool,
    waited_out: bool,
) -> Result<Route, Status> {
    match leader {
        Some(_) if forwarded => Err(status::leader_changed()),
        Some(l) if waited_out || forwarder.resolvable(l) => Ok(Route::Forward(l)),
        Some(_) | None => Ok(Route::Wait),
    }
}

/// A header filled as etcd's `hdr.fill` fills it, at this member.
async fn local_header(node: &NodeHandle) -> Result<Option<pb::ResponseHeader>, Status> {
    let s = node.status().await.map_err(to_status)?;
    Ok(convert::header(Header {
        cluster_id: s.cluster_id,
        member_id: s.id,
        revision: s.revision,
        raft_term: s.term,
    }))
}

/// A header from another member, restated as this member's (etcd fills forwarded answers'
/// headers locally; the revision stays the leader's, which this member is about to reach).
fn restate_header(
    node: &NodeHandle,
    header: Option<pb::ResponseHeader>,
) -> Option<pb::ResponseHeader> {
    let mut h = header.unwrap_or_default();
    h.cluster_id = node.cluster_id();
    h.member_id = node.member_id();
    h.raft_term = node.raft_term();
    Some(h)
}

/// One keepalive, answered here or by the leader. `Ok` includes etcd's TTL 0 for an unknown
/// lease.
async fn keep_alive(
    node: &NodeHandle,
    relay: &mut KeepAliveRelay,
    id: i64,
    forwarded: bool,
) -> Result<pb::LeaseKeepAliveResponse, Status> {
    let deadline = Instant::now() + node.request_timeout();
    loop {
        match node.lease_keepalive(id).await {
            Ok(k) => {
                return Ok(pb::LeaseKeepAliveResponse {
                    header: convert::header(k.header),
                    id: k.id,
                    ttl: k.ttl_secs,
                })
            }
            Err(ClientError::Kv(KvError::LeaseNotFound)) => {
                return Ok(pb::LeaseKeepAliveResponse {
                    header: local_header(node).await?,
                    id,
                    ttl: 0,
                })
            }
            Err(ClientError::NotLeader { leader }) => match route(
                relay.forwarder(),
                leader,
                forwarded,
                Instant::now() >= deadline,
            )? {
                Route::Forward(l) => {
                    let r = relay.keep_alive(l, id).await?;
                    return Ok(pb::LeaseKeepAliveResponse {
                        header: restate_header(node, r.header),
                        ..r
                    });
                }
                Route::Wait if Instant::now() < deadline => tokio::time::sleep(LEADER_POLL).await,
                Route::Wait => return Err(to_status(ClientError::NoLeader)),
            },
            Err(e) => return Err(to_status(e)),
        }
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    type LeaseKeepAliveStream =
        futures::stream::BoxStream<'static, Result<pb::LeaseKeepAliveResponse, Status>>;

    async fn lease_grant(
        &self,
        req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let r = req.into_inner();
        let g = self
            .node
            .lease_grant(r.id, r.ttl)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::LeaseGrantResponse {
            header: convert::header(g.header),
            id: g.id,
            ttl: g.ttl_secs,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let h = self
            .node
            .lease_revoke(req.into_inner().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: convert::header(h),
        }))
    }

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let forwarded = is_forwarded(&req);
        let mut requests = req.into_inner();
        let node = self.node.clone();
        let mut relay = KeepAliveRelay::new(self.forwarder.clone());
        let (tx, rx) = mpsc::channel(KEEPALIVE_RESPONSES);
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = requests.message() => next,
                    // The client went away, or the node stopped: end the stream (dropping
                    // the relay to the leader).
                    _ = tx.closed() => return,
                    _ = node.stopped() => {
                        let _ = tx.send(Err(to_status(ClientError::Stopped))).await;
                        return;
                    }
                };
                let id = match next {
                    Ok(Some(r)) => r.id,
                    Ok(None) | Err(_) => return,
                };
                let answer = keep_alive(&node, &mut relay, id, forwarded).await;
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        let responses =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        Ok(Response::new(Box::pin(responses)))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let forwarded = is_forwarded(&req);
        let r = req.into_inner();
        let deadline = Instant::now() + self.node.request_timeout();
        loop {
            match self.node.lease_time_to_live(r.id, r.keys).await {
                Ok(t) => {
                    return Ok(Response::new(pb::LeaseTimeToLiveResponse {
                        header: convert::header(t.header),
                        id: t.id,
                        ttl: t.ttl_secs,
                        granted_ttl: t.granted_ttl_secs,
                        keys: t.keys.into_iter().map(|k| k.to_vec()).collect(),
                    }))
                }
                Err(ClientError::Kv(KvError::LeaseNotFound)) => {
                    return Ok(Response::new(pb::LeaseTimeToLiveResponse {
                        header: local_header(&self.node).await?,
                        id: r.id,
                        ttl: -1,
                        granted_ttl: 0,
                        keys: Vec::new(),
                    }))
                }
                Err(ClientError::NotLeader { leader }) => match route(
                    &self.forwarder,
                    leader,
                    forwarded,
                    Instant::now() >= deadline,
                )? {
                    Route::Forward(l) => {
                        let t = self.forwarder.time_to_live(l, r).await?;
                        return Ok(Response::new(pb::LeaseTimeToLiveResponse {
                            header: restate_header(&self.node, t.header),
                            ..t
                        }));
                    }
                    Route::Wait if Instant::now() < deadline => {
                        tokio::time::sleep(LEADER_POLL).await
                    }
                    Route::Wait => return Err(to_status(ClientError::NoLeader)),
                },
                Err(e) => return Err(to_status(e)),
            }
        }
    }

    async fn lease_leases(
        &self,
        _req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let l = self.node.lease_leases().await.map_err(to_status)?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: convert::header(l.header),
            leases: l.ids.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
        }))
    }
}
