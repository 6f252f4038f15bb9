//! Coordination recipes the server runs on behalf of clients, with etcd's v3lock and
//! v3election semantics (`server/etcdserver/api/v3lock`, `v3election`, built on
//! `client/v3/concurrency`): everything is made of ordinary transactions, ranges and watches
//! on the node, so the recipes' state is plain keys in the replicated store (it snapshots,
//! restores and replicates with everything else).
//!
//! - A lock `name` is the set of keys `name/<lease id in hex>`; each contender creates its key
//!   with its lease, and the contender whose key has the smallest create revision holds the
//!   lock. That create revision is the **fencing token**: it grows with every acquisition of
//!   the lock (revisions only grow), so a resource guarded by the lock can refuse a request
//!   carrying a smaller token than one it has seen. A waiter waits for the deletion of the key
//!   created just before its own (no herd); a waiter whose lease expires loses its key and
//!   leaves the queue with [`RecipeError::SessionExpired`].
//! - An election `name` works the same way; the holder's key value is the leader's
//!   proclamation, which `proclaim` updates and `observe` streams.
//! - Sequential keys `prefix/<20 digits>` number creations in order (ZooKeeper's sequential
//!   znodes); with a lease they are also ephemeral.
//!
//! Calls that wait (lock, campaign) wait until they succeed or their future is dropped; a
//! dropped waiter deletes its key, as etcd's server does when the client goes away.

mod election;
mod lock;
mod sequential;
mod wait;

pub use election::{campaign, leader, observe, proclaim, resign, LeaderKey};
pub use lock::{lock, unlock, Locked};
pub use sequential::create_sequential;

use sextant_core::kv::KvError;
use thiserror::Error;

use crate::node::ClientError;

/// Why a recipe call failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RecipeError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The key of this contender disappeared while it waited (its lease expired or was
    /// revoked, or someone deleted it).
    #[error("session expired: key {key:?} was deleted while waiting")]
    SessionExpired { key: String },
    /// etcd's `ErrElectionNotLeader`.
    #[error("election: not leader")]
    NotLeader,
    /// etcd's `ErrElectionNoLeader`.
    #[error("election: no leader")]
    NoLeader,
    /// Too many concurrent creations kept invalidating ours.
    #[error("gave up after {attempts} attempts under contention")]
    Contended { attempts: usize },
    /// The watch the recipe relied on was cancelled by the server (e.g. compaction).
    #[error("watch cancelled: {0}")]
    WatchCancelled(String),
}

impl From<KvError> for RecipeError {
    fn from(e: KvError) -> Self {
        RecipeError::Client(ClientError::Kv(e))
    }
}

/// `name/<lease hex>`, the key a contender with `lease` holds under `name`.
fn contender_key(name: &[u8], lease: i64) -> bytes::Bytes {
    let mut k = prefix(name).to_vec();
    k.extend_from_slice(format!("{lease:x}").as_bytes());
    bytes::Bytes::from(k)
}

/// `name/`: every contender's key starts with it.
fn prefix(name: &[u8]) -> bytes::Bytes {
    let mut k = name.to_vec();
    k.push(b'/');
    bytes::Bytes::from(k)
}
