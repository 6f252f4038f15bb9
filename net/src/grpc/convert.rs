//! Conversions between the generated etcd messages and the node's types.

use bytes::Bytes;
use sextant_core::kv::{KeyValue, RangeRequest, RangeResponse, SortOrder, SortTarget};

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

pub fn range_request(r: &pb::RangeRequest) -> RangeRequest {
    RangeRequest {
        key: Bytes::copy_from_slice(&r.key),
        range_end: Bytes::copy_from_slice(&r.range_end),
        limit: r.limit,
        revision: r.revision,
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
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

pub fn range_response(h: Header, r: RangeResponse) -> pb::RangeResponse {
    pb::RangeResponse {
        header: header(h),
        kvs: r.kvs.into_iter().map(kv).collect(),
        more: r.more,
        count: r.count,
    }
}
