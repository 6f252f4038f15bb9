//! Why a command or read was refused. Messages are etcd's (without the `etcdserver: ` prefix
//! the gRPC layer adds), so the gRPC layer maps each variant to etcd's code and text.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A refusal. The same on every replica for a command applied from the log: a refused command
/// changes nothing and bumps no revision.
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvError {
    /// etcd `ErrGRPCEmptyKey` (InvalidArgument).
    #[error("key is not provided")]
    EmptyKey,
    /// `ignore_value` / `ignore_lease` on a key that does not exist; etcd `ErrGRPCKeyNotFound`
    /// (InvalidArgument).
    #[error("key not found")]
    KeyNotFound,
    /// `ignore_value` with a value; etcd `ErrGRPCValueProvided` (InvalidArgument).
    #[error("value is provided")]
    ValueProvided,
    /// `ignore_lease` with a lease; etcd `ErrGRPCLeaseProvided` (InvalidArgument).
    #[error("lease is provided")]
    LeaseProvided,
    /// etcd `ErrGRPCLeaseNotFound` (NotFound, "requested lease not found").
    #[error("requested lease not found")]
    LeaseNotFound,
    /// etcd `ErrGRPCLeaseExist` (FailedPrecondition).
    #[error("lease already exists")]
    LeaseExists,
    /// TTL above [`super::LEASE_TTL_MAX_SECS`]; etcd `ErrGRPCLeaseTTLTooLarge` (OutOfRange).
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    /// A read or compaction at a revision already compacted away; etcd `ErrGRPCCompacted`
    /// (OutOfRange). `compact_revision` is the store's compaction point (watches report it).
    #[error("mvcc: required revision has been compacted")]
    Compacted { compact_revision: i64 },
    /// etcd `ErrGRPCFutureRev` (OutOfRange).
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    /// More compares or ops in one txn (level) than allowed; etcd `ErrGRPCTooManyOps`
    /// (InvalidArgument).
    #[error("too many operations in txn request")]
    TooManyOps { ops: usize, ops_max: usize },
    /// A txn writes one key twice (or puts a key it also deletes); etcd `ErrGRPCDuplicateKey`
    /// (InvalidArgument).
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    /// Txns nested deeper than [`super::TXN_DEPTH_MAX`] (not in etcd, whose gRPC decoder stops
    /// at about 50 levels anyway).
    #[error("txn nesting is too deep (at most {depth_max} levels)")]
    TxnTooDeep { depth_max: usize },
    /// The encoded command exceeds the request limit; etcd `ErrGRPCRequestTooLarge`
    /// (InvalidArgument, "request is too large").
    #[error("request is too large")]
    RequestTooLarge { size_bytes: usize, bytes_max: usize },
    /// One value exceeds the value limit (etcd has only the request limit; the gRPC layer
    /// reports this as "request is too large" too).
    #[error("request is too large")]
    ValueTooLarge { size_bytes: usize, bytes_max: usize },
    /// A range would return more keys than the member allows in one response (not in etcd):
    /// the client should page with `limit`.
    #[error("range response too large ({keys} keys, at most {keys_max}); use a limit")]
    RangeTooLarge { keys: usize, keys_max: usize },
    /// [`super::KvStore::txn_read`] was given a txn that writes.
    #[error("txn writes; it must be applied through the log")]
    TxnNotReadOnly,
    /// A member registry command was refused ([`crate::members::MemberError`]).
    #[error(transparent)]
    Member(#[from] crate::members::MemberError),
    /// A write that grows the store while a NOSPACE alarm is active; etcd `ErrGRPCNoSpace`
    /// (ResourceExhausted).
    #[error("mvcc: database space exceeded")]
    NoSpace,
    /// A write while a CORRUPT alarm is active; etcd `ErrGRPCCorrupt` (DataLoss).
    #[error("corrupt cluster")]
    Corrupt,
}

/// Why a snapshot could not be restored.
#[derive(Debug, Error)]
pub enum SnapshotDecodeError {
    #[error("corrupt key-value snapshot: {0}")]
    Decode(#[from] postcard::Error),
    #[error("inconsistent key-value snapshot: {0}")]
    Inconsistent(String),
}
