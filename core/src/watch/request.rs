//! Identifiers and the watch creation request.

use std::fmt;

use bytes::Bytes;

use crate::kv::{Event, EventKind};

use super::range::KeyRange;

/// A client watch stream (one gRPC `Watch` call), allocated by the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u64);

/// A watcher's id, unique within its stream (etcd's `WatchID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchId(pub i64);

impl WatchId {
    /// etcd's `InvalidWatchID`: stream-wide progress notifications and refused creations
    /// carry it.
    pub const INVALID: WatchId = WatchId(-1);
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for WatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// etcd's `WatchCreateRequest` filters: which event kinds the watcher does not want.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchFilters {
    /// `NOPUT`: drop put events.
    pub no_put: bool,
    /// `NODELETE`: drop delete events.
    pub no_delete: bool,
}

impl WatchFilters {
    pub fn passes(&self, event: &Event) -> bool {
        match event.kind {
            EventKind::Put => !self.no_put,
            EventKind::Delete => !self.no_delete,
        }
    }
}

/// etcd's `WatchCreateRequest` (without `fragment`, which the transport handles).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchCreateRequest {
    pub key: Bytes,
    /// etcd's convention: empty for the single `key`, `"\0"` for every key `>= key`, else
    /// the exclusive end of the range.
    pub range_end: Bytes,
    /// First revision to deliver; 0 means the next revision (current + 1). Negative is
    /// refused, as etcd refuses it.
    pub start_revision: i64,
    /// The id to use, or `None` to allocate one. (On the wire etcd's `AutoWatchID` is 0:
    /// the driver maps a requested id 0 to `None`.)
    pub watch_id: Option<WatchId>,
    pub prev_kv: bool,
    pub progress_notify: bool,
    pub filters: WatchFilters,
}

impl WatchCreateRequest {
    /// A watch on one key, from the next revision.
    pub fn key(key: impl Into<Bytes>) -> Self {
        Self::range(key, Bytes::new())
    }

    /// A watch on `[key, range_end)` in etcd's convention, from the next revision.
    pub fn range(key: impl Into<Bytes>, range_end: impl Into<Bytes>) -> Self {
        WatchCreateRequest {
            key: key.into(),
            range_end: range_end.into(),
            start_revision: 0,
            watch_id: None,
            prev_kv: false,
            progress_notify: false,
            filters: WatchFilters::default(),
        }
    }

    /// A watch on every key starting with `prefix`, from the next revision.
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let prefix = prefix.into();
        let end = KeyRange::prefix_end(&prefix);
        Self::range(prefix, end)
    }

    pub fn with_start_revision(mut self, start_revision: i64) -> Self {
        self.start_revision = start_revision;
        self
    }

    pub fn with_watch_id(mut self, watch_id: WatchId) -> Self {
        self.watch_id = Some(watch_id);
        self
    }

    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    pub fn with_progress_notify(mut self) -> Self {
        self.progress_notify = true;
        self
    }

    pub fn with_filters(mut self, filters: WatchFilters) -> Self {
        self.filters = filters;
        self
    }
}
