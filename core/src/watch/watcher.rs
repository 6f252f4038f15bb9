//! One watcher's state: what it watches, from which revision, and how its events are
//! shaped.

use crate::kv::Event;

use super::range::KeyRange;
use super::request::WatchFilters;

pub(super) struct Watcher {
    pub range: KeyRange,
    /// The lowest revision not yet delivered (etcd's `minRev`): everything below it that
    /// matches has been queued, everything from it on has not.
    pub next_revision: i64,
    pub filters: WatchFilters,
    pub prev_kv: bool,
    pub progress_notify: bool,
    /// etcd's per-watcher `progress` flag: no events were queued since the last progress
    /// tick, so the next tick sends a notification.
    pub progress_due: bool,
    /// In the synced group (fed by applied revisions) rather than the unsynced one (catching
    /// up from history).
    pub synced: bool,
}

impl Watcher {
    /// The events this watcher receives out of `events` (all on keys in its range): those
    /// its filters let through, without `prev_kv` unless it asked for it.
    pub fn deliverable<'a>(&self, events: impl IntoIterator<Item = &'a Event>) -> Vec<Event> {
        events
            .into_iter()
            .filter(|event| self.filters.passes(event))
            .map(|event| {
                let mut event = event.clone();
                if !self.prev_kv {
                    event.prev_kv = None;
                }
                event
            })
            .collect()
    }
}
