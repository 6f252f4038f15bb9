//! One error type per operation of the core's API.

use thiserror::Error;

use crate::conf::ConfChangeRuleError;
use crate::types::{Index, NodeId};

/// Why a proposal was not appended.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ProposeError {
    /// This node is not the leader and cannot forward (forwarding off or no leader known).
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<NodeId> },
    /// The proposal is larger than `entry_bytes_max`.
    #[error("proposal of {size_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    TooLarge { size_bytes: usize, max_bytes: usize },
    /// The leader refused it for now; retrying later may succeed.
    #[error("proposal dropped: {0}")]
    Dropped(DropReason),
}

#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum DropReason {
    #[error("leadership transfer in progress")]
    LeaderTransfer,
    #[error("too many uncommitted bytes")]
    UncommittedLimit,
}

/// Why a membership change was not proposed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfChangeError {
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// Conf changes are only proposed at the leader (never forwarded).
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<NodeId> },
    /// An earlier change at `index` is not applied yet.
    #[error("a membership change at index {index} is still pending")]
    Pending { index: Index },
    #[error(transparent)]
    Rule(#[from] ConfChangeRuleError),
}

/// Why a linearizable read could not be served.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum ReadIndexError {
    #[error("no leader known")]
    NoLeader,
    #[error("too many reads pending")]
    TooManyPending,
    /// The leader changed or the request timed out before the read was confirmed; retry.
    #[error("read aborted (leader changed or request lost); retry")]
    Aborted,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TransferError {
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<NodeId> },
    #[error("node {0} is not a voter")]
    NotVoter(NodeId),
    #[error("node {0} is already the leader")]
    AlreadyLeader(NodeId),
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CampaignError {
    #[error("this node is not a voter and cannot campaign")]
    NotPromotable,
    #[error("already the leader")]
    AlreadyLeader,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("snapshot index {index} is not applied yet (applied {applied})")]
    NotApplied { index: Index, applied: Index },
    #[error("snapshot index {index} is not newer than the current snapshot at {current}")]
    Stale { index: Index, current: Index },
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CompactError {
    #[error("compaction index {index} is beyond the snapshot at {snapshot}")]
    BeyondSnapshot { index: Index, snapshot: Index },
    #[error("compaction index {index} is beyond the persisted log ({persisted})")]
    NotPersisted { index: Index, persisted: Index },
}

/// A message the core refused; the sender is misbehaving or the driver misrouted it.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum StepError {
    #[error("message addressed to {to}, this node is {me}")]
    WrongRecipient { to: NodeId, me: NodeId },
    #[error("message from node {0}: invalid sender")]
    InvalidSender(NodeId),
    #[error("malformed message from {from}: {what}")]
    Malformed { from: NodeId, what: &'static str },
}

/// Why the core could not be constructed from the given state.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RestoreError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("restored state is inconsistent: {0}")]
    Inconsistent(&'static str),
}
