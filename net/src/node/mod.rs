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
//! It is generic over how messages reach peers (`PeerSender`), how the disk is driven
//! (`StorageIo` channels, see `storage_io`) and time (`Clock`), and uses only `tokio` names, so
//! the simulator runs this same loop under madsim with simulated adapters.

mod client;
mod clock;
mod command;
mod event_loop;
mod storage_io;

pub use client::{ClientError, Header, NodeHandle, ReadOutcome, WriteOutcome};
pub use clock::{Clock, IntervalClock};
pub use command::{LogCommand, RequestId};
pub use event_loop::{NodeConfig, NodeLoop, NodeStatus, Observer, PeerSender};
#[cfg(not(madsim))]
pub use storage_io::spawn_storage_thread;
pub use storage_io::{run_batch, DurableLog, StorageDone, StorageIo, StorageOp};
