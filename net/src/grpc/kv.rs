//! The `etcdserverpb.KV` service, as etcd 3.5's `v3rpc/key.go` and `v3_server.go`:
//! - every request is checked as etcd checks it: `checkRangeRequest` and `checkTxnRequest`
//!   (with `--max-txn-ops`) here, before any read or proposal; `checkPutRequest`,
//!   `checkDeleteRequest`, `checkIntervals` and the request size limit ([`KvLimits::admit`])
//!   by the node for every write it is asked to propose, and here for read-only txns, which
//!   the node serves without proposing;
//! - a txn that only reads (no put or delete at any depth) is served like a range, without the
//!   log: linearizable through ReadIndex, or at once when every op of the txn is a serializable
//!   range (etcd's `isTxnSerializable`). etcd sends a read-only txn with a nested txn through
//!   the log; here it is served as a read too, with the same answer;
//! - everything else is replicated with [`NodeHandle::write`].

use sextant_core::kv::{Command, CommandResult, KvError, KvLimits};
use tonic::{Request, Response, Status};

use super::convert;
use super::pb::etcdserverpb as pb;
use super::pb::etcdserverpb::kv_server::Kv;
use super::status::to_status;
use crate::node::{ClientError, NodeHandle};

/// What etcd's gRPC server accepts beyond `--max-request-bytes` (`grpcOverheadBytes`), so that
/// a request somewhat over the limit is answered "request is too large" by the server rather
/// than refused by the gRPC decoder.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

pub struct KvService {
    node: NodeHandle,
    limits: KvLimits,
}

impl KvService {
    pub fn new(node: NodeHandle, limits: KvLimits) -> KvService {
        KvService { node, limits }
    }

    pub fn server(node: NodeHandle, limits: KvLimits) -> pb::kv_server::KvServer<KvService> {
        let decode_max = limits.request_bytes_max.saturating_add(GRPC_OVERHEAD_BYTES);
        pb::kv_server::KvServer::new(KvService::new(node, limits))
            .max_decoding_message_size(decode_max)
            .max_encoding_message_size(usize::MAX)
    }

    /// Proposes `cmd`; the node admits it first (checks and size limit, with the same
    /// limits: the server configures both from one place).
    async fn write(&self, cmd: Command) -> Result<crate::node::WriteOutcome, Status> {
        self.node.write(cmd).await.map_err(to_status)
    }
}

fn kv_status(e: KvError) -> Status {
    to_status(ClientError::Kv(e))
}

fn unexpected(what: &str) -> Status {
    Status::internal(format!("sextant: {what} answered with another result"))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let r = req.into_inner();
        // etcd's `checkRangeRequest`, before any ReadIndex.
        if r.key.is_empty() {
            return Err(kv_status(KvError::EmptyKey));
        }
        let serializable = r.serializable;
        let out = self
            .node
            .range(convert::range_request(r), serializable)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::range_response(
            out.header, out.range,
        )))
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let cmd = Command::Put(convert::put_request(req.into_inner()));
        let out = self.write(cmd).await?;
        let CommandResult::Put { prev_kv, .. } = out.result else {
            return Err(unexpected("put"));
        };
        Ok(Response::new(pb::PutResponse {
            header: convert::header(out.header),
            prev_kv: prev_kv.map(convert::kv),
        }))
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let cmd = Command::DeleteRange(convert::delete_request(req.into_inner()));
        let out = self.write(cmd).await?;
        let CommandResult::DeleteRange {
            deleted, prev_kvs, ..
        } = out.result
        else {
            return Err(unexpected("delete"));
        };
        Ok(Response::new(pb::DeleteRangeResponse {
            header: convert::header(out.header),
            deleted,
            prev_kvs: prev_kvs.into_iter().map(convert::kv).collect(),
        }))
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let r = req.into_inner();
        check_txn_request(&r, self.limits.txn_ops_max).map_err(kv_status)?;
        let serializable = is_txn_serializable(&r);
        let txn = convert::txn_request(r).map_err(kv_status)?;
        if !txn.is_read_only() {
            // Proposed: the node admits it.
            let out = self.write(Command::Txn(txn)).await?;
            let CommandResult::Txn(t) = out.result else {
                return Err(unexpected("txn"));
            };
            return Ok(Response::new(convert::txn_response(out.header, t)));
        }
        // Read-only: never proposed, so the node does not admit it. `checkIntervals` still
        // applies; the size limit does not (etcd measures only proposals against
        // `--max-request-bytes`).
        let mut cmd = Command::Txn(txn);
        match self.limits.admit(&mut cmd) {
            Ok(()) | Err(KvError::RequestTooLarge { .. }) => {}
            Err(e) => return Err(kv_status(e)),
        }
        let Command::Txn(txn) = cmd else {
            unreachable!("built above")
        };
        let out = self
            .node
            .txn_read(txn, serializable)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::txn_response(out.header, out.txn)))
    }

    async fn compact(
        &self,
        req: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let r = req.into_inner();
        let out = self
            .write(Command::Compact {
                revision: r.revision,
                physical: r.physical,
            })
            .await?;
        let CommandResult::Compact = out.result else {
            return Err(unexpected("compaction"));
        };
        Ok(Response::new(pb::CompactionResponse {
            header: convert::header(out.header),
        }))
    }
}

/// etcd's `checkTxnRequest`, on the wire message and in etcd's order, so the first problem
/// reported is etcd's: at each level the number of compares and of ops per branch (at most
/// `ops_max`; a nested txn gets what its level left), then the compares' keys, then each op of
/// `success` and of `failure` in turn (an op with no request is "key not found").
pub(crate) fn check_txn_request(r: &pb::TxnRequest, ops_max: usize) -> Result<(), KvError> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > ops_max {
        return Err(KvError::TooManyOps { ops, ops_max });
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(KvError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        check_request_op(op, ops_max - ops)?;
    }
    Ok(())
}

/// etcd's `checkRequestOp`.
fn check_request_op(op: &pb::RequestOp, ops_max: usize) -> Result<(), KvError> {
    use pb::request_op::Request;
    match &op.request {
        Some(Request::RequestRange(r)) if r.key.is_empty() => Err(KvError::EmptyKey),
        Some(Request::RequestRange(_)) => Ok(()),
        Some(Request::RequestPut(p)) => {
            if p.key.is_empty() {
                Err(KvError::EmptyKey)
            } else if p.ignore_value && !p.value.is_empty() {
                Err(KvError::ValueProvided)
            } else if p.ignore_lease && p.lease != 0 {
                Err(KvError::LeaseProvided)
            } else {
                Ok(())
            }
        }
        Some(Request::RequestDeleteRange(d)) if d.key.is_empty() => Err(KvError::EmptyKey),
        Some(Request::RequestDeleteRange(_)) => Ok(()),
        Some(Request::RequestTxn(t)) => check_txn_request(t, ops_max),
        None => Err(KvError::KeyNotFound),
    }
}

/// etcd's `isTxnSerializable`: every op of both branches is a range asking for a serializable
/// read. Unlike etcd, a txn with no ops at all (compares only) is not: its answer still
/// depends on the compares, so it is read linearizably.
fn is_txn_serializable(r: &pb::TxnRequest) -> bool {
    use pb::request_op::Request;
    let ops = || r.success.iter().chain(&r.failure);
    ops().next().is_some()
        && ops().all(|op| matches!(&op.request, Some(Request::RequestRange(r)) if r.serializable))
}
