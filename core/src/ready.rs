//! The output the driver drains from the core, and the receipt it hands back once the
//! persistent part is durable.
//!
//! # Contract
//!
//! For each `Ready`, in this order:
//!
//! 1. Start writing `hard_state`, `snapshot` and `entries` to storage (entries replace anything
//!    stored at or after `entries[0].index`). Use `fsync` when `must_sync` is set.
//! 2. Send `messages`. Every message in a `Ready` is safe to send immediately: the core holds
//!    back any message that depends on state not yet durable (votes, append and snapshot
//!    acknowledgements) until the driver reports that state persisted, so the classic
//!    "persist before you send" mistake cannot be made by sending early.
//! 3. Apply `snapshot` (if any) and then `committed` to the state machine, and serve
//!    `read_states` once the state machine has applied up to their index.
//! 4. When the write from step 1 is durable, call `Raft::persisted(persist_id)`. Writes must
//!    complete in the order their `Ready`s were taken. The driver may take further `Ready`s
//!    before then (the leader's own disk write runs in parallel with replication, thesis
//!    §10.2.1); committed entries are only handed out once they are durable locally.

use serde::{Deserialize, Serialize};

use crate::error::ReadIndexError;
use crate::message::{Message, ReadId};
use crate::types::{Entry, HardState, Index, Snapshot};

/// Receipt for the persistent part of one `Ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PersistId(pub(crate) u64);

impl PersistId {
    pub fn get(self) -> u64 {
        self.0
    }
}

/// The answer to one `read_index` request: the index the state machine must have applied
/// before the read is served, or why it cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub id: ReadId,
    pub result: Result<Index, ReadIndexError>,
}

/// Everything the core wants done; see the module docs for the order.
#[derive(Debug, Default)]
pub struct Ready {
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    /// The write must be durable (fsync) before `persisted` is called: term, vote, entries or
    /// snapshot changed. When only the commit index changed a plain write suffices.
    pub must_sync: bool,
    /// Present when there is anything to persist.
    pub persist_id: Option<PersistId>,
    pub messages: Vec<Message>,
    pub committed: Vec<Entry>,
    pub read_states: Vec<ReadState>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.persist_id.is_none()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.read_states.is_empty()
    }
}
