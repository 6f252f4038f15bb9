//! The replicated key-value state machine, with etcd v3 (3.5) MVCC semantics. Commands arrive
//! through the Raft log and are applied identically on every replica; reads are served from the
//! applied state. Deterministic: ordered maps only, no clock, no randomness, no I/O.
//!
//! What it owns:
//! - **history** ([`KvStore`]): a global revision (a fresh store is at 1) that every write bumps
//!   once; per key its create revision, mod revision and version; every version kept until
//!   compacted, so reads at past revisions work ([`RangeRequest::revision`]);
//! - **writes** ([`Command`]): put, delete-range, transactions (compares, nested txns, all at one
//!   revision), compaction, and the replicated half of leases (grant, revoke, checkpoint);
//! - **events** ([`Event`]): every applied command returns the events it produced, and
//!   [`KvStore::history`] replays them from a past revision for watches (the store is the
//!   watch hub's [`crate::watch::WatchHistory`]);
//! - **alarms** ([`AlarmRequest`]): cluster alarms, replicated, and the writes they refuse;
//! - **hashes** ([`KvStore::hash`], [`KvStore::hash_kv`]): checksums of the state that equal
//!   replicas agree on, for corruption checks;
//! - **limits** ([`KvLimits`]): the member-configured bounds a proposal must pass;
//! - **auto-compaction** ([`AutoCompactor`]): etcd's `--auto-compaction-mode` as a sans-IO policy.
//!
//! The leader-side lease expiry tracker lives in [`crate::lease`].
//!
//! Where this deliberately differs from etcd 3.5:
//! - a lease grant with id 0 is given the next free id by the state machine (etcd's proposer
//!   picks a random-looking one); explicit ids work as in etcd;
//! - a txn whose `ignore_value`/`ignore_lease` put follows a delete of the same key (possible
//!   through etcd's from-key duplicate-check quirk) is refused with "key not found"; etcd
//!   panics applying it;
//! - sort ties keep key order (etcd's are unspecified);
//! - [`KvLimits::range_keys_max`] and [`TXN_DEPTH_MAX`] have no etcd counterpart;
//! - `Compact { physical }` changes nothing: compaction is complete once applied.

mod alarm;
mod auto_compaction;
mod command;
mod error;
mod hash;
mod history;
mod key_history;
mod lease_table;
mod limits;
mod mvcc;
mod range;
mod revision;
mod revision_log;
mod snapshot;
mod snapshot_encoder;
mod store;
mod txn;
mod validate;
mod value_sharing;
mod walk;
mod watch_history;
mod write;

pub(crate) use revision::Revision;

pub use alarm::{AlarmAction, AlarmKind, AlarmMember, AlarmRequest};
pub use auto_compaction::{AutoCompactionMode, AutoCompactor};
pub use command::{
    Applied, Command, CommandResult, DeleteRangeRequest, DeleteRangeResponse, LeaseCheckpoint,
    PutRequest, PutResponse,
};
pub use error::{KvError, SnapshotDecodeError};
pub use hash::{KvHash, KvHasher};
pub use history::{HistoryBatch, HistoryRequest};
pub use lease_table::{LeaseInfo, LeaseTtl, LEASE_TTL_MAX_SECS};
pub use limits::KvLimits;
pub use mvcc::SharedValues;
pub use range::{RangeRequest, RangeResponse, SortOrder, SortTarget};
pub use snapshot_encoder::{SnapshotEncoder, SnapshotInterrupted};
pub use store::KvStore;
pub use txn::{
    Compare, CompareResult, CompareTarget, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};
pub use validate::TXN_DEPTH_MAX;
pub use value_sharing::ValueSharing;
pub use walk::WalkInterrupted;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A key's current state, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: Bytes,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub value: Bytes,
    pub lease: i64,
}

/// What a write did to one key, as etcd's `mvccpb.Event`: the unit watches deliver. All
/// events of one revision come from one command (a put, a delete or a whole txn).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// The key after the write. For a delete: only `key` and `mod_revision` (the deleting
    /// revision) are meaningful, as in etcd.
    pub kv: KeyValue,
    /// The key before the write, when it existed (watchers ask for it with `prev_kv`).
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// etcd's key-range convention: an empty `range_end` means the single `key`; `"\0"` means
/// every key `>= key`; otherwise the half-open range `[key, range_end)`.
pub(crate) fn in_range(k: &[u8], key: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        return k == key;
    }
    if range_end == [0] {
        return k >= key;
    }
    k >= key && k < range_end
}
