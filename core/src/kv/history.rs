//! The event history for watch replay: the events of a key range from a start revision, read
//! from the revision log, in bounded batches of whole revisions. Matches etcd's unsynced
//! watchers: a start below the compaction point fails with the compaction revision; a start at
//! it works and sees what compaction kept there (puts that were the newest at that revision —
//! deletes at it are gone, as in etcd); `prev_kv` is the key's state at `revision - 1` when
//! that is still readable.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::mvcc::Mvcc;
use super::{in_range, Event, EventKind, KeyValue, KvError, Revision};

/// Log entries one call looks at before returning (at a revision boundary), so a watcher of a
/// rare key cannot make one call walk the whole history.
const HISTORY_SCAN_MAX: usize = 64 * 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    /// The key range, in etcd's convention.
    pub key: Bytes,
    pub range_end: Bytes,
    /// The first revision wanted.
    pub start_revision: i64,
    /// Stop at the first revision boundary once this many events are gathered. Revisions are
    /// never split, so a batch exceeds this by at most one revision's events; it always holds
    /// at least one revision's events when any remain.
    pub events_max: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryBatch {
    /// Matching events, in revision order.
    pub events: Vec<Event>,
    /// Where to continue: every revision below it was covered. Past the store's revision when
    /// the history is exhausted.
    pub next_revision: i64,
}

impl Mvcc {
    pub(crate) fn events(&self, req: &HistoryRequest) -> Result<HistoryBatch, KvError> {
        let compact = self.compact_revision();
        if req.start_revision < compact {
            return Err(self.compacted());
        }
        let mut events = Vec::new();
        let mut last_main = None;
        for (scanned, entry) in self
            .log_from(Revision::new(req.start_revision, 0))
            .enumerate()
        {
            if last_main != Some(entry.rev.main) {
                let full = !events.is_empty() && events.len() >= req.events_max;
                if full || scanned >= HISTORY_SCAN_MAX {
                    return Ok(HistoryBatch {
                        events,
                        next_revision: entry.rev.main,
                    });
                }
                last_main = Some(entry.rev.main);
            }
            if in_range(&entry.key, &req.key, &req.range_end) {
                if let Some(e) = self.event(&entry.key, entry.rev) {
                    events.push(e);
                }
            }
        }
        Ok(HistoryBatch {
            events,
            next_revision: (self.revision() + 1).max(req.start_revision),
        })
    }

    /// The event for the change of `key` at `rev`, if still retained.
    pub(crate) fn event(&self, key: &Bytes, rev: Revision) -> Option<Event> {
        let h = self.history(key)?;
        let v = h.find(rev)?;
        let prev_kv = if rev.main > self.compact_revision() {
            h.at(rev.main - 1).map(|p| p.to_kv(key))
        } else {
            None
        };
        Some(if v.is_tombstone() {
            Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: key.clone(),
                    mod_revision: rev.main,
                    ..KeyValue::default()
                },
                prev_kv,
            }
        } else {
            Event {
                kind: EventKind::Put,
                kv: v.to_kv(key),
                prev_kv,
            }
        })
    }
}
