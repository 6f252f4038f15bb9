//! Writes as they travel through the Raft log ([`Command`]) and what applying one returns
//! ([`Applied`]). The encoding is postcard: variants are only ever appended, so entries written
//! by an older version still decode.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::alarm::{AlarmMember, AlarmRequest};
use super::txn::{TxnRequest, TxnResponse};
use super::{Event, KeyValue};

/// A write, as it travels through the Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    /// Compares, then the success or failure ops, all at one revision.
    Txn(TxnRequest),
    /// Drops history before `revision` (etcd `CompactionRequest`). `physical` asks etcd to
    /// answer only once the backend deleted the data; here compaction is complete when applied,
    /// so it changes nothing.
    Compact {
        revision: i64,
        physical: bool,
    },
    /// Creates a lease; `id` 0 asks the state machine to allocate one (the same on every
    /// replica). The TTL should already be raised to the member's minimum ([`super::KvLimits`]).
    LeaseGrant {
        id: i64,
        ttl_secs: i64,
    },
    /// Deletes a lease and every key attached to it, all at one revision.
    LeaseRevoke {
        id: i64,
    },
    /// Records leases' remaining TTLs so that a new leader does not restart them from their
    /// full TTL (etcd `LeaseCheckpointRequest`). Proposed by the leader's [`crate::lease::Lessor`].
    LeaseCheckpoint {
        checkpoints: Vec<LeaseCheckpoint>,
    },
    /// A member announces its name and client URLs (etcd's `publish`); changes the member
    /// registry ([`crate::members`]), not the keyspace (no revision).
    MemberPublish {
        id: u64,
        name: String,
        client_urls: Vec<String>,
    },
    /// A member's new peer URLs (etcd's `MemberUpdate`); no revision.
    MemberUpdate {
        id: u64,
        peer_urls: Vec<String>,
    },
    /// Lists, raises or clears a cluster alarm (etcd's `AlarmRequest`, which etcd also sends
    /// through the log, GET included, so the answer is linearizable).
    Alarm(AlarmRequest),
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

/// One lease's remaining TTL, as etcd's `LeaseCheckpoint`. 0 clears a recorded one (the full
/// TTL applies again, as after a keepalive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseCheckpoint {
    pub id: i64,
    pub remaining_ttl_secs: i64,
}

/// A put's answer. `revision` is the revision the put wrote at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResponse {
    pub revision: i64,
    pub prev_kv: Option<KeyValue>,
}

/// A delete's answer. `revision` is the revision the delete wrote at, or (nothing deleted and
/// nothing written before it in the same txn) the unchanged revision, as etcd.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeResponse {
    pub revision: i64,
    pub deleted: i64,
    pub prev_kvs: Vec<KeyValue>,
}

/// What an applied write returns (the response body; the header revision is
/// [`Applied::revision`]).
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
    Txn(TxnResponse),
    Compact,
    /// The lease granted: its id (allocated when the command asked for 0) and TTL.
    LeaseGrant {
        id: i64,
        ttl_secs: i64,
    },
    LeaseRevoke,
    LeaseCheckpoint,
    MemberPublish,
    MemberUpdate,
    /// etcd's `AlarmResponse.alarms` (see [`super::alarm`] for what each action answers).
    Alarm {
        alarms: Vec<AlarmMember>,
    },
}

/// The outcome of applying one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The store's revision after the command (etcd's response header revision).
    pub revision: i64,
    pub result: CommandResult,
    /// What the command changed, in revision order (all at `revision`); empty when it changed
    /// no key.
    pub events: Vec<Event>,
}

impl From<PutResponse> for CommandResult {
    fn from(r: PutResponse) -> CommandResult {
        CommandResult::Put {
            revision: r.revision,
            prev_kv: r.prev_kv,
        }
    }
}

impl From<DeleteRangeResponse> for CommandResult {
    fn from(r: DeleteRangeResponse) -> CommandResult {
        CommandResult::DeleteRange {
            revision: r.revision,
            deleted: r.deleted,
            prev_kvs: r.prev_kvs,
        }
    }
}
