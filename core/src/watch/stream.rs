//! One watch stream: its watchers, its watch id allocator, its queue and progress state.

use std::collections::BTreeMap;

use super::outbox::Outbox;
use super::request::WatchId;
use super::watcher::Watcher;

pub(super) struct Stream {
    pub watchers: BTreeMap<WatchId, Watcher>,
    /// The next id to try when allocating (etcd 3.4's per-stream `nextID`).
    next_watch_id: i64,
    pub outbox: Outbox,
    /// A progress request is waiting for every watcher of the stream to be synced (etcd's
    /// `deferredProgress`).
    pub progress_deferred: bool,
    /// When the stream's progress ticker fires next.
    pub progress_due_at_ms: u64,
}

impl Stream {
    pub fn new(progress_due_at_ms: u64) -> Self {
        Stream {
            watchers: BTreeMap::new(),
            next_watch_id: 0,
            outbox: Outbox::default(),
            progress_deferred: false,
            progress_due_at_ms,
        }
    }

    /// The lowest free id from the allocator's position on, as etcd allocates.
    pub fn allocate_watch_id(&mut self) -> WatchId {
        while self.watchers.contains_key(&WatchId(self.next_watch_id)) {
            self.next_watch_id += 1;
        }
        let id = WatchId(self.next_watch_id);
        self.next_watch_id += 1;
        id
    }

    pub fn all_synced(&self) -> bool {
        self.watchers.values().all(|watcher| watcher.synced)
    }

    pub fn has_progress_watchers(&self) -> bool {
        self.watchers
            .values()
            .any(|watcher| watcher.progress_notify)
    }
}
