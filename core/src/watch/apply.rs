//! Applied revisions: delivering them to synced watchers (etcd's `notify`), and restoring
//! from a snapshot.

use crate::kv::Event;

use super::error::{AppliedError, CancelReason};
use super::hub::WatchHub;
use super::response::{events_response_size_bytes, WatchResponse};
use super::synced::WatcherKey;

impl WatchHub {
    /// Reports an applied revision with all its events, in order (a revision that wrote
    /// nothing may be reported with none). Synced watchers get their matching events.
    pub fn on_applied(&mut self, revision: i64, events: &[Event]) -> Result<(), AppliedError> {
        self.check_increasing(revision, false)?;
        self.current_revision = revision;
        for (key, matching) in self.synced.batch(events) {
            let Some(watcher) = self.watcher_mut(key) else {
                continue;
            };
            if watcher.next_revision > revision {
                continue; // created with a future start revision
            }
            watcher.next_revision = revision + 1;
            let delivered = watcher.deliverable(matching);
            if !delivered.is_empty() {
                self.deliver_synced(key, revision, delivered);
            }
        }
        // Only now that every watcher has this revision's events queued: a cancellation
        // above may have left a stream fully synced with a progress request waiting.
        self.flush_all_deferred_progress();
        Ok(())
    }

    /// Reports that the store was replaced by a snapshot at `revision` (a follower
    /// installing the leader's snapshot). As etcd's `watchableStore.Restore`, every synced
    /// watcher becomes unsynced and catches up from the new history, from just after the
    /// revision it was synced to (etcd keeps a quiet watcher's older `minRev`, which can make
    /// it replay needlessly or be cancelled as compacted).
    pub fn on_restored(&mut self, revision: i64) -> Result<(), AppliedError> {
        self.check_increasing(revision, true)?;
        let seen_up_to = self.current_revision;
        self.current_revision = revision;
        for key in self.synced.take_all() {
            if let Some(watcher) = self.watcher_mut(key) {
                watcher.synced = false;
                watcher.next_revision = watcher.next_revision.max(seen_up_to + 1);
                self.unsynced.insert(key);
            }
        }
        Ok(())
    }

    fn check_increasing(&self, revision: i64, allow_equal: bool) -> Result<(), AppliedError> {
        let ok =
            revision > self.current_revision || (allow_equal && revision == self.current_revision);
        if ok {
            Ok(())
        } else {
            Err(AppliedError::RevisionNotIncreasing {
                revision,
                current_revision: self.current_revision,
            })
        }
    }

    /// Queues a synced watcher's events of one revision, or cancels the watcher when its
    /// stream cannot take them.
    fn deliver_synced(&mut self, key: WatcherKey, revision: i64, events: Vec<Event>) {
        let config = &self.config;
        let Some(stream) = self.streams.get_mut(&key.0) else {
            return;
        };
        let size_bytes = events_response_size_bytes(&events);
        if stream.outbox.fits(config, events.len(), size_bytes) {
            stream
                .outbox
                .push(WatchResponse::events(key.1, revision, events));
            if let Some(watcher) = stream.watchers.get_mut(&key.1) {
                watcher.progress_due = false;
            }
            return;
        }
        let reason = if stream.outbox.is_empty() {
            CancelReason::RevisionTooLarge {
                revision,
                events: events.len(),
                size_bytes,
            }
        } else {
            let backlog = stream.outbox.backlog();
            let first_dropped = stream.outbox.drop_events_of(key.1);
            CancelReason::Slow {
                backlog,
                resume_revision: first_dropped.unwrap_or(revision),
            }
        };
        self.cancel_by_hub(key, reason);
    }
}
