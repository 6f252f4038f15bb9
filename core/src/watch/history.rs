//! What the hub needs from the store to replay history to unsynced watchers.

use bytes::Bytes;
use thiserror::Error;

use crate::kv::Event;

/// Read access to the store's event history, implemented by the MVCC store.
pub trait WatchHistory {
    /// The events on keys in `[key, range_end)` (etcd's range convention: an empty
    /// `range_end` is the single `key`, `"\0"` every key `>= key`) with
    /// `mod_revision >= from_revision`, in revision order and, within a revision, in the
    /// order the command produced them, each with its `prev_kv` when that is known.
    ///
    /// Never splits a revision. Stops at the first revision boundary once `events_max`
    /// events are gathered, and may stop earlier (to bound the work of one call); the
    /// page's `next_revision` says how far it got. Fails when `from_revision` is below the
    /// compact revision.
    fn events(
        &self,
        key: &Bytes,
        range_end: &Bytes,
        from_revision: i64,
        events_max: usize,
    ) -> Result<HistoryPage, Compacted>;
}

/// One call's worth of history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryPage {
    pub events: Vec<Event>,
    /// Every revision from the request's `from_revision` up to, not including, this one is
    /// covered by `events`; past the store's revision when the history is exhausted.
    pub next_revision: i64,
}

/// The requested revision has been compacted away.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("required revision has been compacted (compact revision {compact_revision})")]
pub struct Compacted {
    pub compact_revision: i64,
}
