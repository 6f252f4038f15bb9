//! The `etcdserverpb.Maintenance` service, as etcd 3.5's `v3rpc/maintenance.go`:
//! - `Alarm`: GET, ACTIVATE and DEACTIVATE go through the log (alarms are replicated state, see
//!   `sextant_core::kv` alarms); a member whose storage failed also reports the alarm it
//!   raised about itself;
//! - `Hash` / `HashKV`: this member's applied state (CRC-32C);
//! - `Defragment`: snapshot now and compact the log behind it;
//! - `MoveLeader`: only the leader answers (others: "etcdserver: not leader"), and only once
//!   the target leads, like etcd;
//! - `Snapshot`: this member's whole state machine in the snapshot file format
//!   ([`crate::server::snapshot_file`]), 32 KiB chunks with `remaining_bytes`, then the
//!   payload's SHA-256 as the last message, as etcd streams its backend.

use std::time::Duration;

use futures::StreamExt;
use sextant_core::kv::{AlarmAction, AlarmKind, AlarmMember, AlarmRequest, Command, CommandResult};
use sextant_core::RoleKind;
use tonic::{Code, Request, Response, Status};

use super::convert;
use super::pb::etcdserverpb as pb;
use super::pb::etcdserverpb::maintenance_server::Maintenance;
use super::status::to_status;
use crate::node::{ClientError, Header, NodeHandle};
use crate::server::snapshot_file::{FileChunks, SnapshotHeader};

/// The etcd API version this server speaks; clients use it to pick features.
pub const ETCD_API_VERSION: &str = "3.5.0";

/// Bytes per `Snapshot` message (etcd's `snapshotSendBufferSize`).
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;
/// How often `MoveLeader` looks whether the target leads yet.
const MOVE_LEADER_POLL: Duration = Duration::from_millis(20);

pub struct MaintenanceService {
    node: NodeHandle,
}

impl MaintenanceService {
    pub fn server(
        node: NodeHandle,
    ) -> pb::maintenance_server::MaintenanceServer<MaintenanceService> {
        pb::maintenance_server::MaintenanceServer::new(MaintenanceService { node })
            .max_encoding_message_size(usize::MAX)
    }
}

fn alarm_kind(t: pb::AlarmType) -> Option<AlarmKind> {
    match t {
        pb::AlarmType::None => None,
        pb::AlarmType::Nospace => Some(AlarmKind::NoSpace),
        pb::AlarmType::Corrupt => Some(AlarmKind::Corrupt),
    }
}

fn alarm_member(a: AlarmMember) -> pb::AlarmMember {
    pb::AlarmMember {
        member_id: a.member_id,
        alarm: match a.kind {
            AlarmKind::NoSpace => pb::AlarmType::Nospace,
            AlarmKind::Corrupt => pb::AlarmType::Corrupt,
        } as i32,
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = futures::stream::BoxStream<'static, Result<pb::SnapshotResponse, Status>>;

    async fn alarm(
        &self,
        req: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let r = req.into_inner();
        let action = match r.action() {
            pb::alarm_request::AlarmAction::Get => AlarmAction::Get,
            pb::alarm_request::AlarmAction::Activate => AlarmAction::Activate,
            pb::alarm_request::AlarmAction::Deactivate => AlarmAction::Deactivate,
        };
        let kind = alarm_kind(r.alarm());
        let local = self.node.local_alarms().await.map_err(to_status)?;
        let cmd = Command::Alarm(AlarmRequest {
            action,
            member_id: r.member_id,
            kind,
        });
        let (header, mut alarms) = match self.node.write(cmd).await {
            Ok(out) => match out.result {
                CommandResult::Alarm { alarms } => (out.header, alarms),
                other => {
                    return Err(Status::internal(format!(
                        "sextant: an alarm request answered {other:?}"
                    )))
                }
            },
            // A member whose storage failed still lists the alarm it raised about itself.
            Err(ClientError::StorageFailed(_)) if action == AlarmAction::Get => {
                let s = self.node.status().await.map_err(to_status)?;
                let header = Header {
                    cluster_id: s.cluster_id,
                    member_id: s.id,
                    revision: s.revision,
                    raft_term: s.term,
                };
                (header, Vec::new())
            }
            Err(e) => return Err(to_status(e)),
        };
        if action == AlarmAction::Get {
            for a in local {
                if kind.is_none_or(|k| k == a.kind) && !alarms.contains(&a) {
                    alarms.push(a);
                }
            }
            alarms.sort();
        }
        Ok(Response::new(pb::AlarmResponse {
            header: convert::header(header),
            alarms: alarms.into_iter().map(alarm_member).collect(),
        }))
    }

    async fn defragment(
        &self,
        _req: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        let header = self.node.defragment().await.map_err(to_status)?;
        Ok(Response::new(pb::DefragmentResponse {
            header: convert::header(header),
        }))
    }

    async fn hash(
        &self,
        _req: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        let (header, hash) = self.node.hash().await.map_err(to_status)?;
        Ok(Response::new(pb::HashResponse {
            header: convert::header(header),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let revision = req.into_inner().revision;
        let (header, h) = self.node.hash_kv(revision).await.map_err(to_status)?;
        Ok(Response::new(pb::HashKvResponse {
            header: convert::header(header),
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: h.hash_revision,
        }))
    }

    async fn snapshot(
        &self,
        _req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let snap = self.node.state_snapshot().await.map_err(to_status)?;
        let chunks = FileChunks::new(
            &SnapshotHeader {
                cluster_id: snap.header.cluster_id,
                member_id: snap.header.member_id,
                applied_index: snap.applied_index,
                applied_term: snap.applied_term,
                revision: snap.header.revision,
            },
            snap.data,
            SNAPSHOT_CHUNK_BYTES,
        );
        let header = convert::header(snap.header);
        // Produced as the client takes them (HTTP/2 flow control), a chunk at a time.
        let messages = chunks.map(move |c| {
            Ok(pb::SnapshotResponse {
                header,
                remaining_bytes: c.payload_remaining as u64,
                blob: c.bytes,
                version: String::new(),
            })
        });
        Ok(Response::new(futures::stream::iter(messages).boxed()))
    }

    async fn move_leader(
        &self,
        req: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        let target = req.into_inner().target_id;
        let s = self.node.status().await.map_err(to_status)?;
        if s.role != RoleKind::Leader {
            return Err(Status::new(
                Code::FailedPrecondition,
                "etcdserver: not leader",
            ));
        }
        if !s.voters.contains(&target) {
            return Err(Status::new(
                Code::FailedPrecondition,
                "etcdserver: bad leader transferee",
            ));
        }
        if target != s.id {
            match self.node.transfer_leader(target).await {
                Ok(()) => {}
                Err(ClientError::Refused(_)) => {
                    return Err(Status::new(
                        Code::FailedPrecondition,
                        "etcdserver: bad leader transferee",
                    ))
                }
                Err(e) => return Err(to_status(e)),
            }
        }
        let deadline = tokio::time::Instant::now() + self.node.request_timeout();
        loop {
            let now = self.node.status().await.map_err(to_status)?;
            if now.leader == Some(target) {
                return Ok(Response::new(pb::MoveLeaderResponse {
                    header: convert::header(Header {
                        cluster_id: now.cluster_id,
                        member_id: now.id,
                        revision: now.revision,
                        raft_term: now.term,
                    }),
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Status::new(
                    Code::Unavailable,
                    "etcdserver: request timed out, leader transfer took too long",
                ));
            }
            tokio::time::sleep(MOVE_LEADER_POLL).await;
        }
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
