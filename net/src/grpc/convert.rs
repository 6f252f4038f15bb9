//! Conversions between the generated etcd messages and the node's types.
//!
//! Responses follow etcd 3.5's applier: the outermost response carries the full header
//! (cluster, member, revision, term); responses nested in a txn carry a header with only the
//! revision their op reported (a range: the txn's revision so far; a put or delete: the revision
//! it wrote at; a nested txn: 0), as etcd's `newTxnResp` / `applyTxn` build them.

use bytes::Bytes;
use sextant_core::kv::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, KeyValue,
    KvError, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp,
    SortOrder, SortTarget, TxnRequest, TxnResponse,
};

use super::pb::etcdserverpb as pb;
use super::pb::mvccpb;
use crate::node::Header;

pub fn header(h: Header) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        cluster_id: h.cluster_id,
        member_id: h.member_id,
        revision: h.revision,
        raft_term: h.raft_term,
    })
}

/// The header of a response nested in a txn: only the revision is set (etcd fills the rest
/// only in the outermost header).
fn nested_header(revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        revision,
        ..Default::default()
    })
}

pub fn kv(k: KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: k.key.to_vec(),
        create_revision: k.create_revision,
        mod_revision: k.mod_revision,
        version: k.version,
        value: k.value.to_vec(),
        lease: k.lease,
    }
}

pub fn range_request(r: pb::RangeRequest) -> RangeRequest {
    RangeRequest {
        sort_order: match r.sort_order() {
            pb::range_request::SortOrder::None => SortOrder::None,
            pb::range_request::SortOrder::Ascend => SortOrder::Ascend,
            pb::range_request::SortOrder::Descend => SortOrder::Descend,
        },
        sort_target: match r.sort_target() {
            pb::range_request::SortTarget::Key => SortTarget::Key,
            pb::range_request::SortTarget::Version => SortTarget::Version,
            pb::range_request::SortTarget::Create => SortTarget::Create,
            pb::range_request::SortTarget::Mod => SortTarget::Mod,
            pb::range_request::SortTarget::Value => SortTarget::Value,
        },
        key: Bytes::from(r.key),
        range_end: Bytes::from(r.range_end),
        limit: r.limit,
        revision: r.revision,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

pub fn put_request(r: pb::PutRequest) -> PutRequest {
    PutRequest {
        key: Bytes::from(r.key),
        value: Bytes::from(r.value),
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

pub fn delete_request(r: pb::DeleteRangeRequest) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: Bytes::from(r.key),
        range_end: Bytes::from(r.range_end),
        prev_kv: r.prev_kv,
    }
}

/// etcd's `compareKV`: `target` picks the field compared; the value is taken from
/// `target_union` only when it holds that field's variant, otherwise it is 0 (or the empty
/// value), so e.g. `target = MOD` with no value compares `mod_revision` with 0.
///
/// An enum value this version does not know decodes as the proto default (`EQUAL`,
/// `VERSION`); etcd would treat an unknown result as "holds" and an unknown target as 0 == 0.
pub fn compare(c: pb::Compare) -> Compare {
    use pb::compare::CompareResult as R;
    use pb::compare::CompareTarget as T;
    use pb::compare::TargetUnion as U;
    let result = match c.result() {
        R::Equal => CompareResult::Equal,
        R::Greater => CompareResult::Greater,
        R::Less => CompareResult::Less,
        R::NotEqual => CompareResult::NotEqual,
    };
    let target = match (c.target(), c.target_union) {
        (T::Version, Some(U::Version(v))) => CompareTarget::Version(v),
        (T::Version, _) => CompareTarget::Version(0),
        (T::Create, Some(U::CreateRevision(v))) => CompareTarget::Create(v),
        (T::Create, _) => CompareTarget::Create(0),
        (T::Mod, Some(U::ModRevision(v))) => CompareTarget::Mod(v),
        (T::Mod, _) => CompareTarget::Mod(0),
        (T::Value, Some(U::Value(v))) => CompareTarget::Value(Bytes::from(v)),
        (T::Value, _) => CompareTarget::Value(Bytes::new()),
        (T::Lease, Some(U::Lease(v))) => CompareTarget::Lease(v),
        (T::Lease, _) => CompareTarget::Lease(0),
    };
    Compare {
        key: Bytes::from(c.key),
        range_end: Bytes::from(c.range_end),
        target,
        result,
    }
}

/// The txn, at every depth. A `RequestOp` with no request is refused as etcd's
/// `checkRequestOp` refuses it ("key not found"); [`super::kv::check_txn_request`] finds it
/// first, in etcd's order.
pub fn txn_request(r: pb::TxnRequest) -> Result<TxnRequest, KvError> {
    let ops = |ops: Vec<pb::RequestOp>| -> Result<Vec<RequestOp>, KvError> {
        ops.into_iter().map(request_op).collect()
    };
    Ok(TxnRequest {
        compare: r.compare.into_iter().map(compare).collect(),
        success: ops(r.success)?,
        failure: ops(r.failure)?,
    })
}

fn request_op(op: pb::RequestOp) -> Result<RequestOp, KvError> {
    use pb::request_op::Request;
    Ok(match op.request.ok_or(KvError::KeyNotFound)? {
        Request::RequestRange(r) => RequestOp::Range(range_request(r)),
        Request::RequestPut(p) => RequestOp::Put(put_request(p)),
        Request::RequestDeleteRange(d) => RequestOp::DeleteRange(delete_request(d)),
        Request::RequestTxn(t) => RequestOp::Txn(txn_request(t)?),
    })
}

pub fn range_response(h: Header, r: RangeResponse) -> pb::RangeResponse {
    pb::RangeResponse {
        header: header(h),
        kvs: r.kvs.into_iter().map(kv).collect(),
        more: r.more,
        count: r.count,
    }
}

/// The outermost txn response: `h` is the header of the whole request.
pub fn txn_response(h: Header, t: TxnResponse) -> pb::TxnResponse {
    pb::TxnResponse {
        header: header(h),
        succeeded: t.succeeded,
        responses: t.responses.into_iter().map(response_op).collect(),
    }
}

fn response_op(r: ResponseOp) -> pb::ResponseOp {
    use pb::response_op::Response;
    let response = match r {
        ResponseOp::Range(r) => Response::ResponseRange(pb::RangeResponse {
            header: nested_header(r.revision),
            kvs: r.kvs.into_iter().map(kv).collect(),
            more: r.more,
            count: r.count,
        }),
        ResponseOp::Put(PutResponse { revision, prev_kv }) => {
            Response::ResponsePut(pb::PutResponse {
                header: nested_header(revision),
                prev_kv: prev_kv.map(kv),
            })
        }
        ResponseOp::DeleteRange(DeleteRangeResponse {
            revision,
            deleted,
            prev_kvs,
        }) => Response::ResponseDeleteRange(pb::DeleteRangeResponse {
            header: nested_header(revision),
            deleted,
            prev_kvs: prev_kvs.into_iter().map(kv).collect(),
        }),
        ResponseOp::Txn(t) => Response::ResponseTxn(pb::TxnResponse {
            header: nested_header(t.revision),
            succeeded: t.succeeded,
            responses: t.responses.into_iter().map(response_op).collect(),
        }),
    };
    pb::ResponseOp {
        response: Some(response),
    }
}
