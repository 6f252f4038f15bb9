//! Transactions, as etcd 3.5's `applierV3backend.Txn`:
//! 1. every compare — of the txn and of the nested txns in the branches taken — is evaluated
//!    against the state before the txn (etcd's `compareToPath` on one read view), which fixes
//!    the branch each level takes;
//! 2. the ops on that path are checked against the same state: puts first (`ignore_*` needs
//!    the key, a lease must exist), then ranges (future / compacted revision, where a negative
//!    revision counts as compacted) — any failure refuses the whole txn, changing nothing;
//! 3. the ops apply in order at one revision, each seeing the earlier ones (a range after a put
//!    sees it); the revision moves once, and only if something changed.
//!
//! A compare with a `range_end` holds when every key in the range satisfies it; over no keys it
//! compares a zero key-value, except that a value compare then fails. Only the outermost
//! response carries a revision; nested txn responses report 0, as etcd's.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::mvcc::Mvcc;
use super::range::{RangeRequest, RangeResponse};
use super::write::WriteTxn;
use super::{
    in_range, DeleteRangeRequest, DeleteRangeResponse, KeyValue, KvError, PutRequest, PutResponse,
};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

/// One condition of a txn, as etcd's `Compare`: the key (range) `target` field against a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: Bytes,
    pub range_end: Bytes,
    pub target: CompareTarget,
    pub result: CompareResult,
}

/// The field compared and the value it is compared with. (etcd's wire format carries the target
/// and the value separately; a missing value compares as 0 or empty, which the gRPC layer
/// expresses by building the matching variant with that zero.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    Version(i64),
    Create(i64),
    Mod(i64),
    Value(Bytes),
    Lease(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    /// The store's revision after the txn (0 in nested txn responses, as etcd).
    pub revision: i64,
    pub succeeded: bool,
    /// One per op of the branch taken.
    pub responses: Vec<ResponseOp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseOp {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
}

impl TxnRequest {
    /// No put or delete in any branch at any depth (etcd's `isTxnReadonly`): such a txn can be
    /// served locally with [`super::KvStore::txn_read`].
    pub fn is_read_only(&self) -> bool {
        self.success.iter().chain(&self.failure).all(|op| match op {
            RequestOp::Range(_) => true,
            RequestOp::Put(_) | RequestOp::DeleteRange(_) => false,
            RequestOp::Txn(t) => t.is_read_only(),
        })
    }

    fn ops(&self, succeeded: bool) -> &[RequestOp] {
        if succeeded {
            &self.success
        } else {
            &self.failure
        }
    }
}

/// The branch each txn on the path takes: `nested` has one entry per txn op of that branch.
pub(crate) struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

impl Compare {
    fn holds(&self, kv: &KeyValue) -> bool {
        let ord = match &self.target {
            CompareTarget::Version(v) => kv.version.cmp(v),
            CompareTarget::Create(v) => kv.create_revision.cmp(v),
            CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
            CompareTarget::Value(v) => kv.value.as_ref().cmp(v.as_ref()),
            CompareTarget::Lease(v) => kv.lease.cmp(v),
        };
        match self.result {
            CompareResult::Equal => ord.is_eq(),
            CompareResult::NotEqual => ord.is_ne(),
            CompareResult::Greater => ord.is_gt(),
            CompareResult::Less => ord.is_lt(),
        }
    }
}

impl Mvcc {
    fn compare(&self, c: &Compare, rev: i64) -> bool {
        let mut any = false;
        for (k, v) in self.scan_at(&c.key, &c.range_end, rev) {
            any = true;
            if !c.holds(&v.to_kv(k)) {
                return false;
            }
        }
        if any {
            return true;
        }
        // No key: a value compare fails; others compare a zero key-value.
        !matches!(c.target, CompareTarget::Value(_)) && c.holds(&KeyValue::default())
    }

    /// etcd's `compareToPath`: all compares see the state at `rev`.
    pub(crate) fn decide(&self, req: &TxnRequest, rev: i64) -> Path {
        let succeeded = req.compare.iter().all(|c| self.compare(c, rev));
        let nested = req
            .ops(succeeded)
            .iter()
            .filter_map(|op| match op {
                RequestOp::Txn(t) => Some(self.decide(t, rev)),
                _ => None,
            })
            .collect();
        Path { succeeded, nested }
    }

    /// etcd's `checkRequestRange` over the path, against the state at `rev`.
    pub(crate) fn check_ranges(
        &self,
        req: &TxnRequest,
        path: &Path,
        rev: i64,
    ) -> Result<(), KvError> {
        let mut nested = path.nested.iter();
        for op in req.ops(path.succeeded) {
            match op {
                RequestOp::Range(r) if r.revision != 0 => {
                    if r.revision > rev {
                        return Err(KvError::FutureRevision);
                    }
                    if r.revision < self.compact_revision() {
                        return Err(self.compacted());
                    }
                }
                RequestOp::Txn(t) => self.check_ranges(t, nested.next().expect("path"), rev)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Serves a read-only txn at `rev`.
    pub(crate) fn read_txn(
        &self,
        req: &TxnRequest,
        path: &Path,
        rev: i64,
        keys_max: usize,
    ) -> Result<TxnResponse, KvError> {
        let mut nested = path.nested.iter();
        let mut responses = Vec::new();
        for op in req.ops(path.succeeded) {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range(r, rev, keys_max)?),
                RequestOp::Txn(t) => ResponseOp::Txn(self.read_txn(
                    t,
                    nested.next().expect("path"),
                    rev,
                    keys_max,
                )?),
                RequestOp::Put(_) | RequestOp::DeleteRange(_) => {
                    return Err(KvError::TxnNotReadOnly)
                }
            });
        }
        Ok(TxnResponse {
            revision: 0,
            succeeded: path.succeeded,
            responses,
        })
    }
}

/// etcd's `checkRequestPut` over the path: `ignore_*` needs the key at `rev`, and a lease must
/// exist. Also refused: `ignore_*` on a key an earlier op of the path deletes (possible through
/// the from-key quirk of the duplicate check) — etcd 3.5 passes its check and then panics
/// applying the txn ("unexpected error during txn"); here the txn is refused with "key not
/// found", changing nothing.
pub(crate) fn check_puts(
    mvcc: &Mvcc,
    lease_exists: &dyn Fn(i64) -> bool,
    req: &TxnRequest,
    path: &Path,
    rev: i64,
) -> Result<(), KvError> {
    check_puts_after(mvcc, lease_exists, req, path, rev, &mut Vec::new())
}

fn check_puts_after<'a>(
    mvcc: &Mvcc,
    lease_exists: &dyn Fn(i64) -> bool,
    req: &'a TxnRequest,
    path: &Path,
    rev: i64,
    deleted: &mut Vec<&'a DeleteRangeRequest>,
) -> Result<(), KvError> {
    let mut nested = path.nested.iter();
    for op in req.ops(path.succeeded) {
        match op {
            RequestOp::Put(p) => {
                if (p.ignore_value || p.ignore_lease)
                    && (mvcc.get_at(&p.key, rev).is_none()
                        || deleted
                            .iter()
                            .any(|d| in_range(&p.key, &d.key, &d.range_end)))
                {
                    return Err(KvError::KeyNotFound);
                }
                if p.lease != 0 && !lease_exists(p.lease) {
                    return Err(KvError::LeaseNotFound);
                }
            }
            RequestOp::DeleteRange(d) => deleted.push(d),
            RequestOp::Txn(t) => check_puts_after(
                mvcc,
                lease_exists,
                t,
                nested.next().expect("path"),
                rev,
                deleted,
            )?,
            RequestOp::Range(_) => {}
        }
    }
    Ok(())
}

/// etcd's `applyTxn`: the ops of the path, in order, inside one write.
pub(crate) fn run(w: &mut WriteTxn<'_>, req: &TxnRequest, path: &Path) -> TxnResponse {
    let mut nested = path.nested.iter();
    let responses = req
        .ops(path.succeeded)
        .iter()
        .map(|op| match op {
            RequestOp::Range(r) => ResponseOp::Range(w.range(r)),
            RequestOp::Put(p) => ResponseOp::Put(w.put(p)),
            RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(w.delete_range(d)),
            RequestOp::Txn(t) => ResponseOp::Txn(run(w, t, nested.next().expect("path"))),
        })
        .collect();
    TxnResponse {
        revision: 0,
        succeeded: path.succeeded,
        responses,
    }
}
