//! Request validation that needs no state, as etcd's gRPC layer (`v3rpc/key.go`) does it:
//! empty keys, `ignore_value` with a value, `ignore_lease` with a lease, ops per txn (when a
//! limit is given), and keys written twice in one txn (`checkIntervals`). The state machine
//! runs it (without the ops limit, which is member configuration) on every command it applies,
//! so a command that passes here either applies wholly or is refused by a state check.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::txn::{RequestOp, TxnRequest};
use super::{Command, DeleteRangeRequest, KvError, PutRequest, RangeRequest};

/// How deep txns may nest. Not an etcd rule (its gRPC decoder refuses messages nested past
/// about 50 txn levels); it keeps recursion bounded for commands that did not come through
/// gRPC.
pub const TXN_DEPTH_MAX: usize = 64;

/// Checks `cmd`; with `ops_max`, also etcd's `--max-txn-ops` rule: a txn level may hold at most
/// `ops_max` compares and at most that many ops per branch, and a nested txn gets what its
/// parent's largest list left (`ops_max - parent's count`).
pub(crate) fn validate(cmd: &Command, ops_max: Option<usize>) -> Result<(), KvError> {
    match cmd {
        Command::Put(p) => check_put(p),
        Command::DeleteRange(d) => check_delete(d),
        Command::Txn(t) => validate_txn(t, ops_max),
        Command::Compact { .. }
        | Command::LeaseGrant { .. }
        | Command::LeaseRevoke { .. }
        | Command::LeaseCheckpoint { .. }
        | Command::MemberPublish { .. }
        | Command::MemberUpdate { .. }
        | Command::Alarm(_) => Ok(()),
    }
}

/// [`validate`] for a txn.
pub(crate) fn validate_txn(t: &TxnRequest, ops_max: Option<usize>) -> Result<(), KvError> {
    check_txn(t, ops_max, 1)?;
    check_intervals(&t.success)?;
    check_intervals(&t.failure)?;
    Ok(())
}

fn check_range(r: &RangeRequest) -> Result<(), KvError> {
    if r.key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    Ok(())
}

fn check_put(p: &PutRequest) -> Result<(), KvError> {
    if p.key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(KvError::ValueProvided);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(KvError::LeaseProvided);
    }
    Ok(())
}

fn check_delete(d: &DeleteRangeRequest) -> Result<(), KvError> {
    if d.key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    Ok(())
}

/// etcd's `checkTxnRequest`.
fn check_txn(t: &TxnRequest, ops_max: Option<usize>, depth: usize) -> Result<(), KvError> {
    if depth > TXN_DEPTH_MAX {
        return Err(KvError::TxnTooDeep {
            depth_max: TXN_DEPTH_MAX,
        });
    }
    let ops = t.compare.len().max(t.success.len()).max(t.failure.len());
    if let Some(max) = ops_max {
        if ops > max {
            return Err(KvError::TooManyOps { ops, ops_max: max });
        }
    }
    if t.compare.iter().any(|c| c.key.is_empty()) {
        return Err(KvError::EmptyKey);
    }
    let nested_max = ops_max.map(|m| m - ops);
    for op in t.success.iter().chain(&t.failure) {
        match op {
            RequestOp::Range(r) => check_range(r)?,
            RequestOp::Put(p) => check_put(p)?,
            RequestOp::DeleteRange(d) => check_delete(d)?,
            RequestOp::Txn(n) => check_txn(n, nested_max, depth + 1)?,
        }
    }
    Ok(())
}

/// A deleted interval as etcd's `checkIntervals` builds it: a point when `range_end` is empty,
/// else `[key, range_end)` with byte order — so `range_end = "\0"` (from `key` on) is an empty
/// interval there and never conflicts with a put, an etcd quirk kept for compatibility.
struct Deleted {
    key: Bytes,
    range_end: Bytes,
}

impl Deleted {
    fn covers(&self, k: &[u8]) -> bool {
        if self.range_end.is_empty() {
            return k == self.key.as_ref();
        }
        self.key.as_ref() <= k && k < self.range_end.as_ref()
    }
}

fn covered(dels: &[Deleted], k: &[u8]) -> bool {
    dels.iter().any(|d| d.covers(k))
}

/// etcd's `checkIntervals`: within one list of ops (and the txns nested in it), no key may be
/// put twice or put and deleted — except that the success and failure branches of one nested
/// txn may put the same key, since only one of them runs. Overlapping deletes are allowed.
/// Returns the keys put and the ranges deleted, for the level above.
fn check_intervals(ops: &[RequestOp]) -> Result<(BTreeSet<Bytes>, Vec<Deleted>), KvError> {
    let mut dels: Vec<Deleted> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some(Deleted {
                key: d.key.clone(),
                range_end: d.range_end.clone(),
            }),
            _ => None,
        })
        .collect();
    let mut puts: BTreeSet<Bytes> = BTreeSet::new();
    for op in ops {
        let RequestOp::Txn(t) = op else { continue };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || covered(&dels, k) {
                return Err(KvError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || covered(&dels, k) {
                return Err(KvError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let RequestOp::Put(p) = op else { continue };
        if puts.contains(&p.key) || covered(&dels, &p.key) {
            return Err(KvError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}
