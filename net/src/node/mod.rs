//! The node: one event loop that drives the Raft core and the key-value state machine.
//!
//! The loop owns the `Raft` core and the `KvStore`. It feeds the core peer messages, ticks and
//! client commands, and carries out each `Ready` in the order the core's contract asks: hand
//! the persistent part to the storage worker, send the messages (the core already held back
//! the ones that must wait for durability), apply committed entries, answer clients. Storage
//! writes complete asynchronously and are acknowledged back to the core, so many proposals
//! share one fsync (group commit) and the leader's disk write runs in parallel with
//! replication (Raft thesis §10.2.1).
//!
//! Around the state machine it runs etcd's coordination services, each in its own file with
//! small hooks in the loop: leases (`leases`: the leader's lessor proposing revokes and
//! checkpoints; keepalives answered only when the TTL is sure to hold as a lower bound),
//! watches (`watches`: the watch hub, fed every applied revision and snapshot install, with
//! bounded per-stream delivery; client side in `watch_stream`), auto-compaction
//! (`compaction`), membership (`members`: etcd's member changes at the leader, the member
//! list, noticing this member's removal) and maintenance (`maintenance`: state snapshots and
//! hashes for the `Maintenance` service, defragmentation, alarms a failed member raises about
//! itself). The state machine's own snapshots (`snapshots`) are encoded, and their values
//! shared with the stored copy, a slice of keys per turn of the loop, between everything else;
//! so are the snapshots and hashes clients ask for (`snapshot_reads`).
//! Every client write passes the member's `KvLimits` before it is proposed.
//! Time for all of them is `ticks * tick interval`, never the wall clock.
//!
//! It is generic over how messages reach peers (`PeerSender`), how the disk is driven
//! (`StorageIo` channels, see `storage_io`) and time (`Clock`), and uses only `tokio` names, so
//! the simulator runs this same loop under madsim with simulated adapters.

mod client;
mod clock;
mod command;
mod compaction;
mod event_loop;
mod hash_kv;
mod leases;
mod maintenance;
mod members;
mod raft_view;
mod snapshot_reads;
mod snapshots;
mod storage_io;
#[cfg(not(madsim))]
mod storage_worker;
mod stored_snapshot;
mod turn_timing;
mod watch_stream;
mod watches;

pub use client::{
    ClientError, Header, LeaseGranted, LeaseKeptAlive, LeaseList, LeaseTimeToLive, NodeHandle,
    ReadOutcome, TxnReadOutcome, WriteOutcome,
};
pub use clock::{missed_since, Clock, IntervalClock};
pub use command::{LogCommand, RequestId};
pub use event_loop::{NodeConfig, NodeLoop, NodeStatus, Observer, PeerSender};
pub use maintenance::StateSnapshot;
pub use members::{
    Member, MemberChange, MemberChanged, MemberError, MemberList, MembershipView, LEARNERS_MAX,
};
pub use storage_io::{
    run_batch, DurableLog, SnapshotFileJob, StorageDone, StorageFailure, StorageIo, StorageOp,
};
#[cfg(not(madsim))]
pub use storage_worker::spawn_storage_thread;
pub use stored_snapshot::adopt_stored_snapshot;
pub use turn_timing::{SlowTurns, SLOW_TURN_THRESHOLDS};
pub use watch_stream::{WatchReceiver, WatchSender, WatchStream};
