//! The replicated key-value state machine, with etcd v3 semantics: a global revision that every
//! write bumps, and per key its create revision, mod revision and version. Commands arrive
//! through the Raft log and are applied identically on every replica; reads are served from
//! the applied state. Deterministic: ordered maps only, no clock, no randomness.
//!
//! This first version keeps the latest value of every key; history (reads at past revisions,
//! watches, compaction), transactions and leases build on it.

mod range;
mod store;

pub use range::{RangeRequest, RangeResponse, SortOrder, SortTarget};
pub use store::KvStore;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

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

/// A write, as it travels through the Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    pub key: Bytes,
    pub value: Bytes,
    pub lease: i64,
    pub prev_kv: bool,
    pub ignore_value: bool,
    pub ignore_lease: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    pub key: Bytes,
    pub range_end: Bytes,
    pub prev_kv: bool,
}

/// What an applied write returns. `revision` is the store's revision after the write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    Put {
        revision: i64,
        prev_kv: Option<KeyValue>,
    },
    DeleteRange {
        revision: i64,
        deleted: i64,
        prev_kvs: Vec<KeyValue>,
    },
}

/// Why a command or read was refused (the same on every replica).
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvError {
    #[error("key is not provided")]
    EmptyKey,
    #[error("key not found")]
    KeyNotFound,
    #[error("requested lease not found")]
    LeaseNotFound,
    #[error("required revision is a future revision")]
    FutureRevision,
    #[error("reads at a past revision are not supported by this version")]
    HistoricalRead,
}

/// Why a snapshot could not be restored.
#[derive(Debug, Error)]
#[error("corrupt key-value snapshot: {0}")]
pub struct SnapshotDecodeError(#[from] postcard::Error);

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
