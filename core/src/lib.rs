//! # sextant-core
//!
//! The deterministic heart of Sextant: a sans-IO Raft implementation and the coordination
//! state machine it replicates ([`kv`]: etcd's MVCC key-value store; [`lease`]: the leader's
//! lease expiry tracker). Nothing in this crate reads a clock, touches a file or socket, or
//! draws OS randomness; time arrives as `tick` calls (or `now_ms` inputs), randomness from a
//! seeded RNG in the [`Config`], and all effects leave through one [`Ready`] struct that the
//! driver drains.
//!
//! The API of [`Raft`] comes in four families:
//! - **getters**: `term`, `leader`, `role`, `commit_index`, `conf_state`, `progress`, …
//! - **inputs**: [`Raft::step`] (a peer's message), [`Raft::tick`] (logical time),
//!   [`Raft::persisted`] (a storage receipt);
//! - **commands**: [`Raft::propose`], [`Raft::propose_conf_change`], [`Raft::read_index`],
//!   [`Raft::transfer_leader`], [`Raft::campaign`], [`Raft::snapshot_taken`],
//!   [`Raft::snapshot_stored`], [`Raft::compact`];
//! - **outputs**: [`Raft::has_ready`] / [`Raft::ready`], and [`Raft::next_deadline`].
//!
//! See [`ready`] for the driver contract (persist, send, apply, acknowledge).

pub mod conf;
pub mod config;
pub mod error;
pub mod kv;
pub mod lease;
mod log;
pub mod members;
pub mod message;
pub mod mutation;
mod progress;
mod quorum;
mod raft;
pub mod ready;
pub mod types;
pub mod watch;

pub use conf::{ConfChange, ConfChangeKind, ConfChangeSingle, ConfTransition};
pub use config::{Config, ConfigError, ReadMode};
pub use error::{
    CampaignError, CompactError, ConfChangeError, DropReason, ProposeError, ReadIndexError,
    RestoreError, SnapshotError, StepError, TransferError,
};
pub use members::{MemberAttrs, MemberContext, MemberError, MemberRegistry};
pub use message::{Message, MessageBody, ReadId};
pub use raft::{
    Deadline, ProgressKind, ProgressView, Proposed, Raft, RestoreState, RoleKind, Timer,
};
pub use ready::{PersistId, ReadState, Ready};
pub use types::{
    ConfState, Entry, EntryPayload, HardState, Index, NodeId, Snapshot, SnapshotMeta, Term,
};
