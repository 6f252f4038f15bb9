//! The `etcdserverpb.KV` service.

use bytes::Bytes;
use sextant_core::kv::{Command, CommandResult, DeleteRangeRequest, PutRequest};
use tonic::{Request, Response, Status};

use super::convert;
use super::pb::etcdserverpb as pb;
use super::pb::etcdserverpb::kv_server::Kv;
use super::status::to_status;
use crate::node::NodeHandle;

pub struct KvService {
    node: NodeHandle,
}

impl KvService {
    pub fn new(node: NodeHandle) -> KvService {
        KvService { node }
    }

    pub fn server(
        node: NodeHandle,
        max_request_bytes: usize,
    ) -> pb::kv_server::KvServer<KvService> {
        pb::kv_server::KvServer::new(KvService::new(node))
            .max_decoding_message_size(max_request_bytes)
            .max_encoding_message_size(usize::MAX)
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let r = req.into_inner();
        let out = self
            .node
            .range(convert::range_request(&r), r.serializable)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::range_response(
            out.header, out.range,
        )))
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let r = req.into_inner();
        let cmd = Command::Put(PutRequest {
            key: Bytes::from(r.key),
            value: Bytes::from(r.value),
            lease: r.lease,
            prev_kv: r.prev_kv,
            ignore_value: r.ignore_value,
            ignore_lease: r.ignore_lease,
        });
        let out = self.node.write(cmd).await.map_err(to_status)?;
        let CommandResult::Put { prev_kv, .. } = out.result else {
            return Err(Status::internal("put answered with another result"));
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
        let r = req.into_inner();
        let cmd = Command::DeleteRange(DeleteRangeRequest {
            key: Bytes::from(r.key),
            range_end: Bytes::from(r.range_end),
            prev_kv: r.prev_kv,
        });
        let out = self.node.write(cmd).await.map_err(to_status)?;
        let CommandResult::DeleteRange {
            deleted, prev_kvs, ..
        } = out.result
        else {
            return Err(Status::internal("delete answered with another result"));
        };
        Ok(Response::new(pb::DeleteRangeResponse {
            header: convert::header(out.header),
            deleted,
            prev_kvs: prev_kvs.into_iter().map(convert::kv).collect(),
        }))
    }

    async fn txn(
        &self,
        _req: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        Err(Status::unimplemented(
            "sextant: transactions are not supported by this version",
        ))
    }

    async fn compact(
        &self,
        _req: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        Err(Status::unimplemented(
            "sextant: compaction is not supported by this version",
        ))
    }
}
