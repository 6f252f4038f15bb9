//! The `etcdserverpb.Cluster` service (etcd 3.5's `v3rpc/member.go`): MemberAdd,
//! MemberRemove, MemberUpdate, MemberList and MemberPromote, with etcd's checks, error texts
//! and response headers.
//!
//! Clients send these to any member (etcdctl does). Membership changes (add, remove, promote)
//! are decided by the leader: its applied registry and Raft configuration are the only view
//! the checks (duplicate peer URLs, learner in sync, enough started members) are sound
//! against, and the core allows one change in flight, which only the leader can track. So a
//! member that is not the leader **forwards the request to the leader over gRPC**, to the
//! client URLs the leader published in the member registry, and relays its answer (with its
//! own member id in the header). That keeps the core's conf-change rules leader-local (the
//! core forwards only ordinary proposals, whose outcome every member learns by applying them)
//! and gives the client the leader's exact refusal instead of a timeout. A forwarded request
//! carries [`FORWARDED_HEADER`] and is never forwarded again, so a leadership change in
//! between costs one `not leader` answer, which etcd clients retry.
//!
//! MemberUpdate is an ordinary state-machine command (any member proposes it; the core
//! forwards it). MemberList is served by the member asked: from its current view, or after a
//! ReadIndex when `linearizable`.

use std::time::Duration;

use sextant_core::NodeId;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

use super::convert;
use super::pb::etcdserverpb as pb;
use super::pb::etcdserverpb::cluster_client::ClusterClient;
use super::pb::etcdserverpb::cluster_server::Cluster;
use super::status::to_status;
use crate::node::{ClientError, Header, Member, MemberChange, MemberChanged, NodeHandle};
use crate::server::{member_id, parse_url_list};

/// gRPC metadata key marking a request one member forwarded to the leader.
pub const FORWARDED_HEADER: &str = "sextant-forwarded";

/// How long a forwarding member waits to connect to the leader.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ClusterService {
    node: NodeHandle,
    /// `--initial-cluster-token`: a new member's id is derived from its peer URLs and it.
    token: String,
}

impl ClusterService {
    pub fn server(
        node: NodeHandle,
        token: String,
    ) -> pb::cluster_server::ClusterServer<ClusterService> {
        pb::cluster_server::ClusterServer::new(ClusterService { node, token })
    }

    fn header(&self, mut h: Header) -> Option<pb::ResponseHeader> {
        h.member_id = self.node.member_id();
        convert::header(h)
    }

    /// The header of an answer relayed from the leader, as this member's answer.
    fn relayed_header(&self, h: Option<pb::ResponseHeader>) -> Option<pb::ResponseHeader> {
        h.map(|h| pb::ResponseHeader {
            member_id: self.node.member_id(),
            ..h
        })
    }

    /// Runs a membership change here if this member leads, else at the leader.
    async fn change<Req, Resp, Fwd, Fut>(
        &self,
        req: Request<Req>,
        change: MemberChange,
        forward: Fwd,
    ) -> Result<Result<MemberChanged, Resp>, Status>
    where
        Fwd: FnOnce(ClusterClient<tonic::transport::Channel>, Request<Req>) -> Fut,
        Fut: std::future::Future<Output = Result<Response<Resp>, Status>>,
    {
        let forwarded = req.metadata().contains_key(FORWARDED_HEADER);
        match self.node.change_member(change).await {
            Ok(done) => Ok(Ok(done)),
            Err(ClientError::NotLeader { leader: Some(l) }) if !forwarded => {
                let client = self.leader_client(l).await?;
                let mut fwd = Request::new(req.into_inner());
                fwd.metadata_mut().insert(
                    FORWARDED_HEADER,
                    tonic::metadata::MetadataValue::from_static("1"),
                );
                Ok(Err(forward(client, fwd).await?.into_inner()))
            }
            Err(ClientError::NotLeader { leader: None }) => Err(to_status(ClientError::NoLeader)),
            Err(e) => Err(to_status(e)),
        }
    }

    async fn leader_client(
        &self,
        leader: NodeId,
    ) -> Result<ClusterClient<tonic::transport::Channel>, Status> {
        let members = self.node.members();
        let url = members
            .iter()
            .find(|m| m.id == leader)
            .and_then(|m| m.client_urls.first())
            .ok_or_else(|| {
                Status::unavailable(format!(
                    "etcdserver: the leader ({leader:x}) has not published its client URLs yet"
                ))
            })?;
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| Status::internal(format!("sextant: leader client URL {url}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT);
        let channel = endpoint.connect().await.map_err(|e| {
            Status::unavailable(format!("etcdserver: cannot reach the leader at {url}: {e}"))
        })?;
        Ok(ClusterClient::new(channel))
    }
}

/// etcd's `types.NewURLs` check of a request's peer URLs.
fn check_peer_urls(urls: &[String]) -> Result<Vec<String>, Status> {
    let bad = || Status::invalid_argument("etcdserver: given member URLs are invalid");
    if urls.is_empty() {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(urls.len());
    for u in urls {
        if u.contains(',') || !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(bad());
        }
        out.extend(parse_url_list(u).map_err(|_| bad())?);
    }
    Ok(out)
}

pub(crate) fn member_pb(m: &Member) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

fn members_pb(ms: &[Member]) -> Vec<pb::Member> {
    ms.iter().map(member_pb).collect()
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let r = req.get_ref();
        let peer_urls = check_peer_urls(&r.peer_ur_ls)?;
        let change = MemberChange::Add {
            id: member_id(&peer_urls, &self.token),
            peer_urls,
            is_learner: r.is_learner,
        };
        let out = self
            .change(req, change, |mut c, r| async move { c.member_add(r).await })
            .await?;
        Ok(Response::new(match out {
            Ok(done) => pb::MemberAddResponse {
                header: self.header(done.header),
                member: Some(member_pb(&done.member)),
                members: members_pb(&done.members),
            },
            Err(mut relayed) => {
                relayed.header = self.relayed_header(relayed.header);
                relayed
            }
        }))
    }

    async fn member_remove(
        &self,
        req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let change = MemberChange::Remove {
            id: req.get_ref().id,
        };
        let out = self
            .change(
                req,
                change,
                |mut c, r| async move { c.member_remove(r).await },
            )
            .await?;
        Ok(Response::new(match out {
            Ok(done) => pb::MemberRemoveResponse {
                header: self.header(done.header),
                members: members_pb(&done.members),
            },
            Err(mut relayed) => {
                relayed.header = self.relayed_header(relayed.header);
                relayed
            }
        }))
    }

    async fn member_promote(
        &self,
        req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let change = MemberChange::Promote {
            id: req.get_ref().id,
        };
        let out = self
            .change(
                req,
                change,
                |mut c, r| async move { c.member_promote(r).await },
            )
            .await?;
        Ok(Response::new(match out {
            Ok(done) => pb::MemberPromoteResponse {
                header: self.header(done.header),
                members: members_pb(&done.members),
            },
            Err(mut relayed) => {
                relayed.header = self.relayed_header(relayed.header);
                relayed
            }
        }))
    }

    async fn member_update(
        &self,
        req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let r = req.into_inner();
        let peer_urls = check_peer_urls(&r.peer_ur_ls)?;
        let header = self
            .node
            .member_update(r.id, peer_urls)
            .await
            .map_err(to_status)?;
        let members = self.node.member_list(false).await.map_err(to_status)?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: self.header(header),
            members: members_pb(&members.members),
        }))
    }

    async fn member_list(
        &self,
        req: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let linearizable = req.get_ref().linearizable;
        let out = self
            .node
            .member_list(linearizable)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::MemberListResponse {
            header: self.header(out.header),
            members: members_pb(&out.members),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_checked_as_etcd_does() {
        let ok = check_peer_urls(&["http://127.0.0.1:2380".into()]).unwrap();
        assert_eq!(ok, vec!["http://127.0.0.1:2380".to_string()]);
        for bad in [
            vec![],
            vec!["127.0.0.1:2380".to_string()],
            vec!["http://a:1,http://b:2".to_string()],
        ] {
            let e = check_peer_urls(&bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
            assert_eq!(e.message(), "etcdserver: given member URLs are invalid");
        }
    }
}
