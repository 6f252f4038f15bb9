//! The `v3electionpb.Election` service (etcd's `v3election`): `Campaign`, `Proclaim`,
//! `Leader`, `Observe` and `Resign` over [`crate::recipes`]' elections. A `Campaign` waits
//! behind earlier candidates; when the client goes away tonic drops the handler's future and
//! the recipe deletes the candidate's key, so it leaves the queue. `Observe` streams the
//! leader's key-value (the current one, then every proclamation and change of leader) until
//! the client goes away.

use bytes::Bytes;
use futures::StreamExt;
use tonic::{Code, Request, Response, Status};

use super::convert;
use super::pb::v3electionpb as pb;
use super::pb::v3electionpb::election_server::Election;
use super::recipe_status::recipe_status;
use crate::node::{Header, NodeHandle};
use crate::recipes::{self, LeaderKey};

/// Leader changes buffered for one `Observe` stream before the recipe waits for the client.
const OBSERVE_QUEUE_MAX: usize = 16;

pub struct ElectionService {
    node: NodeHandle,
}

impl ElectionService {
    pub fn server(node: NodeHandle) -> pb::election_server::ElectionServer<ElectionService> {
        pb::election_server::ElectionServer::new(ElectionService { node })
    }
}

/// etcd's `ErrMissingLeaderKey`.
fn missing_leader() -> Status {
    Status::new(Code::Unknown, "\"leader\" field must be provided")
}

fn leader_key(k: Option<pb::LeaderKey>) -> Result<LeaderKey, Status> {
    let k = k.ok_or_else(missing_leader)?;
    Ok(LeaderKey {
        name: Bytes::from(k.name),
        key: Bytes::from(k.key),
        rev: k.rev,
        lease: k.lease,
    })
}

#[tonic::async_trait]
impl Election for ElectionService {
    type ObserveStream = futures::stream::BoxStream<'static, Result<pb::LeaderResponse, Status>>;

    async fn campaign(
        &self,
        req: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        let r = req.into_inner();
        let (header, leader) =
            recipes::campaign(&self.node, &r.name, r.lease, Bytes::from(r.value))
                .await
                .map_err(recipe_status)?;
        Ok(Response::new(pb::CampaignResponse {
            header: convert::header(header),
            leader: Some(pb::LeaderKey {
                name: leader.name.to_vec(),
                key: leader.key.to_vec(),
                rev: leader.rev,
                lease: leader.lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<pb::ProclaimRequest>,
    ) -> Result<Response<pb::ProclaimResponse>, Status> {
        let r = req.into_inner();
        let leader = leader_key(r.leader)?;
        let header = recipes::proclaim(&self.node, &leader, Bytes::from(r.value))
            .await
            .map_err(recipe_status)?;
        Ok(Response::new(pb::ProclaimResponse {
            header: convert::header(header),
        }))
    }

    async fn leader(
        &self,
        req: Request<pb::LeaderRequest>,
    ) -> Result<Response<pb::LeaderResponse>, Status> {
        let r = req.into_inner();
        let (header, kv) = recipes::leader(&self.node, &r.name)
            .await
            .map_err(recipe_status)?;
        Ok(Response::new(pb::LeaderResponse {
            header: convert::header(header),
            kv: Some(convert::kv(kv)),
        }))
    }

    async fn observe(
        &self,
        req: Request<pb::LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let r = req.into_inner();
        let (cluster_id, member_id) = (self.node.cluster_id(), self.node.member_id());
        let rx = recipes::observe(self.node.clone(), Bytes::from(r.name), OBSERVE_QUEUE_MAX);
        // Dropping the stream (the client went away) drops the receiver, which ends the
        // recipe's task at its next send.
        let stream = tokio_stream_from(rx).map(move |item| {
            let kv = item.map_err(recipe_status)?;
            Ok(pb::LeaderResponse {
                header: convert::header(Header {
                    cluster_id,
                    member_id,
                    revision: kv.mod_revision,
                    raft_term: 0,
                }),
                kv: Some(convert::kv(kv)),
            })
        });
        Ok(Response::new(stream.boxed()))
    }

    async fn resign(
        &self,
        req: Request<pb::ResignRequest>,
    ) -> Result<Response<pb::ResignResponse>, Status> {
        let r = req.into_inner();
        let leader = leader_key(r.leader)?;
        let header = recipes::resign(&self.node, &leader)
            .await
            .map_err(recipe_status)?;
        Ok(Response::new(pb::ResignResponse {
            header: convert::header(header),
        }))
    }
}

/// The receiver as a stream of its items, ending when the sender is gone.
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
}
