//! The `etcdserverpb.Maintenance` service.

use tonic::{Request, Response, Status};

use super::convert;
use super::pb::etcdserverpb as pb;
use super::pb::etcdserverpb::maintenance_server::Maintenance;
use super::status::to_status;
use crate::node::{Header, NodeHandle};

/// The etcd API version this server speaks; clients use it to pick features.
pub const ETCD_API_VERSION: &str = "3.5.0";

pub struct MaintenanceService {
    node: NodeHandle,
}

impl MaintenanceService {
    pub fn server(
        node: NodeHandle,
    ) -> pb::maintenance_server::MaintenanceServer<MaintenanceService> {
        pb::maintenance_server::MaintenanceServer::new(MaintenanceService { node })
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = futures::stream::BoxStream<'static, Result<pb::SnapshotResponse, Status>>;

    async fn alarm(
        &self,
        _req: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        Err(Status::unimplemented("Alarm"))
    }

    async fn defragment(
        &self,
        _req: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        Err(Status::unimplemented("Defragment"))
    }

    async fn hash(
        &self,
        _req: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        Err(Status::unimplemented("Hash"))
    }

    async fn hash_kv(
        &self,
        _req: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        Err(Status::unimplemented("HashKV"))
    }

    async fn snapshot(
        &self,
        _req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(Status::unimplemented("Snapshot"))
    }

    async fn move_leader(
        &self,
        _req: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        Err(Status::unimplemented("MoveLeader"))
    }

    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let s = self.node.status().await.map_err(to_status)?;
        let mut errors = Vec::new();
        if let Some(f) = &s.storage_failed {
            errors.push(format!("storage failed: {f}"));
        }
        if s.leader.is_none() {
            errors.push("etcdserver: no leader".to_string());
        }
        Ok(Response::new(pb::StatusResponse {
            header: convert::header(Header {
                cluster_id: s.cluster_id,
                member_id: s.id,
                revision: s.revision,
                raft_term: s.term,
            }),
            version: ETCD_API_VERSION.to_string(),
            db_size: s.kv_bytes as i64,
            leader: s.leader.unwrap_or(0),
            raft_index: s.commit_index,
            raft_term: s.term,
            raft_applied_index: s.applied_index,
            errors,
            db_size_in_use: s.kv_bytes as i64,
            is_learner: s.is_learner,
        }))
    }
}
