//! Plain data shared by every part of the core: log entries, hard state, membership
//! (`ConfState`) and snapshots. Everything here is serializable so the driver can persist it and
//! ship it to peers unchanged.

use std::collections::BTreeSet;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::conf::ConfChange;

/// A member's identity. `0` is never a valid id.
pub type NodeId = u64;
/// A Raft term (§5.1).
pub type Term = u64;
/// A log index; the first real entry has index 1, index 0 is the empty prefix.
pub type Index = u64;

/// Fixed per-entry overhead used when accounting bytes (index, term, tag).
pub const ENTRY_OVERHEAD_BYTES: usize = 24;

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    pub payload: EntryPayload,
}

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// The no-op a new leader appends to commit entries of earlier terms (§5.4.2, §8).
    Empty,
    /// Application data, opaque to Raft.
    Normal(Bytes),
    /// A membership change; it takes effect when the entry is applied.
    ConfChange(ConfChange),
}

impl EntryPayload {
    /// Bytes this payload counts for in flow control and limits.
    pub fn size_bytes(&self) -> usize {
        match self {
            EntryPayload::Empty => 0,
            EntryPayload::Normal(data) => data.len(),
            EntryPayload::ConfChange(cc) => cc.size_bytes(),
        }
    }
}

impl Entry {
    /// Bytes this entry counts for in flow control and limits.
    pub fn size_bytes(&self) -> usize {
        ENTRY_OVERHEAD_BYTES + self.payload.size_bytes()
    }
}

/// State that must be durable before the node answers any message that depends on it (§5.1,
/// Figure 2 "persistent state"). `commit` is persisted too, so a restarted node can re-apply
/// without waiting for a leader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
    pub commit: Index,
}

/// The membership in effect. Outside a joint configuration `voters_outgoing` and
/// `learners_next` are empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfState {
    /// Voters of the incoming (or only) configuration.
    pub voters: BTreeSet<NodeId>,
    /// Voters of the outgoing configuration while joint; empty otherwise.
    pub voters_outgoing: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    /// Nodes that become learners when the joint configuration is left (they are still
    /// outgoing voters until then).
    pub learners_next: BTreeSet<NodeId>,
    /// Leave the joint configuration automatically once it is applied.
    pub auto_leave: bool,
}

impl ConfState {
    /// A configuration of the given voters and no learners.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        ConfState {
            voters: voters.into_iter().collect(),
            ..ConfState::default()
        }
    }

    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Voters of either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    pub fn is_learner(&self, id: NodeId) -> bool {
        (self.learners.contains(&id) || self.learners_next.contains(&id)) && !self.is_voter(id)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.learners.contains(&id) || self.learners_next.contains(&id)
    }

    /// Every member (voter or learner), ascending.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(&self.voters_outgoing);
        all.extend(&self.learners);
        all.extend(&self.learners_next);
        all
    }

    /// True when `id` alone forms a quorum of every half.
    pub fn is_singleton(&self, id: NodeId) -> bool {
        self.voters.len() == 1
            && self.voters.contains(&id)
            && (self.voters_outgoing.is_empty()
                || (self.voters_outgoing.len() == 1 && self.voters_outgoing.contains(&id)))
    }
}

/// Where a snapshot sits in the log and the membership at that point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: Index,
    pub term: Term,
    pub conf: ConfState,
}

/// A state machine snapshot: opaque data plus its position.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Bytes,
}
