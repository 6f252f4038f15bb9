//! The messages Raft peers exchange. The driver moves them between nodes without looking inside;
//! every field a peer sends is validated on receipt (`Raft::step` returns `StepError` for
//! malformed input rather than panicking).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::types::{Entry, EntryPayload, Index, NodeId, SnapshotMeta, Term};

/// A unique id for one linearizable read request. `epoch` is drawn from the node's seeded RNG
/// when the core is constructed, so ids never repeat across restarts of the same node and a
/// late answer to an earlier request can never be taken for the answer to a new one
/// (etcd #20418).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReadId {
    pub node: NodeId,
    pub epoch: u64,
    pub seq: u64,
}

/// A message from one node to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    /// The sender's term; for `PreVote` the term the sender would campaign in.
    pub term: Term,
    pub body: MessageBody,
}

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Pre-vote request (thesis §9.6); does not change anyone's term.
    PreVote {
        last_index: Index,
        last_term: Term,
    },
    PreVoteResp {
        reject: bool,
    },
    /// RequestVote (§5.2). `transfer` marks a campaign started by leader transfer, which
    /// bypasses the leader-lease check.
    Vote {
        last_index: Index,
        last_term: Term,
        transfer: bool,
    },
    VoteResp {
        reject: bool,
    },
    /// AppendEntries (§5.3). `session` identifies the leader's replication session with this
    /// follower and is echoed back, so answers from an earlier incarnation of the peer are
    /// ignored.
    Append {
        session: u64,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    },
    /// Answer to `Append`. On success `index` is the last index now matching the leader; on
    /// rejection `index` is the rejected `prev_index` and `hint_index`/`hint_term` say where
    /// the follower's log may match (fast backtracking).
    AppendResp {
        session: u64,
        reject: bool,
        index: Index,
        hint_index: Index,
        hint_term: Term,
    },
    /// Leader heartbeat. `round` numbers the leader's broadcasts; acknowledging a round
    /// confirms leadership for ReadIndex (thesis §6.4) and extends the lease.
    Heartbeat {
        session: u64,
        commit: Index,
        round: u64,
    },
    HeartbeatResp {
        session: u64,
        round: u64,
    },
    /// One chunk of a snapshot (§7). Chunks are sent in order; `offset` is the byte offset of
    /// `chunk` in the snapshot data of `total_bytes` bytes.
    InstallSnapshot {
        session: u64,
        meta: SnapshotMeta,
        total_bytes: u64,
        offset: u64,
        chunk: Bytes,
    },
    /// Answer to a snapshot chunk: the next offset the follower expects, or `done` with the
    /// index the follower now matches. `reject` asks the leader to restart the transfer.
    InstallSnapshotResp {
        session: u64,
        snapshot_index: Index,
        next_offset: u64,
        done: bool,
        reject: bool,
    },
    /// Leader transfer: campaign now (thesis §3.10).
    TimeoutNow,
    /// A follower asks the leader for a read index on behalf of one of its clients.
    ReadIndex {
        id: ReadId,
    },
    /// The leader's answer: `None` when it cannot serve the read (no longer leader).
    ReadIndexResp {
        id: ReadId,
        index: Option<Index>,
    },
    /// Proposals forwarded from a follower to the leader, numbered per sender boot
    /// (`epoch`, `seq`) so the leader applies each at most once (see `raft/forwarded.rs`).
    Propose {
        epoch: u64,
        seq: u64,
        payloads: Vec<EntryPayload>,
    },
}

impl MessageBody {
    /// Short name for logs and test output.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::PreVote { .. } => "PreVote",
            MessageBody::PreVoteResp { .. } => "PreVoteResp",
            MessageBody::Vote { .. } => "Vote",
            MessageBody::VoteResp { .. } => "VoteResp",
            MessageBody::Append { .. } => "Append",
            MessageBody::AppendResp { .. } => "AppendResp",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResp { .. } => "HeartbeatResp",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
            MessageBody::InstallSnapshotResp { .. } => "InstallSnapshotResp",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::ReadIndex { .. } => "ReadIndex",
            MessageBody::ReadIndexResp { .. } => "ReadIndexResp",
            MessageBody::Propose { .. } => "Propose",
        }
    }

    /// Bytes this message counts for (approximate; used for flow control only).
    pub fn size_bytes(&self) -> usize {
        match self {
            MessageBody::Append { entries, .. } => {
                64 + entries.iter().map(Entry::size_bytes).sum::<usize>()
            }
            MessageBody::InstallSnapshot { chunk, .. } => 128 + chunk.len(),
            MessageBody::Propose { payloads, .. } => {
                64 + payloads.iter().map(EntryPayload::size_bytes).sum::<usize>()
            }
            _ => 64,
        }
    }
}
