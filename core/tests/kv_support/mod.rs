//! Builders shared by the key-value tests.
#![allow(dead_code)]

use bytes::Bytes;
use sextant_core::kv::{
    Applied, Command, CommandResult, Compare, CompareResult, CompareTarget, DeleteRangeRequest,
    KvError, KvStore, PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse,
};

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn put_req(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: b(k),
        value: b(v),
        ..Default::default()
    }
}

pub fn put(k: &str, v: &str) -> Command {
    Command::Put(put_req(k, v))
}

pub fn put_lease(k: &str, v: &str, lease: i64) -> Command {
    Command::Put(PutRequest {
        lease,
        ..put_req(k, v)
    })
}

pub fn del_req(k: &str, end: &str) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: b(k),
        range_end: b(end),
        prev_kv: true,
    }
}

pub fn del(k: &str, end: &str) -> Command {
    Command::DeleteRange(del_req(k, end))
}

pub fn range_req(k: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: b(k),
        range_end: b(end),
        ..Default::default()
    }
}

pub fn cmp(k: &str, target: CompareTarget, result: CompareResult) -> Compare {
    Compare {
        key: b(k),
        range_end: Bytes::new(),
        target,
        result,
    }
}

pub fn txn(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
    TxnRequest {
        compare,
        success,
        failure,
    }
}

pub fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp::Put(put_req(k, v))
}

pub fn op_del(k: &str, end: &str) -> RequestOp {
    RequestOp::DeleteRange(del_req(k, end))
}

pub fn op_range(k: &str, end: &str) -> RequestOp {
    RequestOp::Range(range_req(k, end))
}

/// Applies and unwraps.
pub fn apply(s: &mut KvStore, c: Command) -> Applied {
    s.apply(&c).unwrap_or_else(|e| panic!("{c:?} refused: {e}"))
}

pub fn apply_txn(s: &mut KvStore, t: TxnRequest) -> (Applied, TxnResponse) {
    let a = apply(s, Command::Txn(t));
    let CommandResult::Txn(r) = a.result.clone() else {
        panic!("not a txn result")
    };
    (a, r)
}

pub fn refused(s: &mut KvStore, c: Command) -> KvError {
    let before = s.clone();
    let e = s.apply(&c).expect_err("should be refused");
    assert_eq!(*s, before, "a refused command changed the store");
    e
}

/// A store with `keys` put in order, value `v-<key>`.
pub fn store_with(keys: &[&str]) -> KvStore {
    let mut s = KvStore::new();
    for k in keys {
        apply(&mut s, put(k, &format!("v-{k}")));
    }
    s
}

pub fn keys_of(kvs: &[sextant_core::kv::KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8(kv.key.to_vec()).unwrap())
        .collect()
}
