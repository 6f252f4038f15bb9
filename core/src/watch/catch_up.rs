//! Catching unsynced watchers up from history, in bounded steps (etcd's `syncWatchers`).

use std::ops::Bound;

use crate::kv::Event;

use super::error::CancelReason;
use super::history::{Compacted, HistoryPage, WatchHistory};
use super::hub::WatchHub;
use super::outbox::ReplayBudget;
use super::response::{events_response_size_bytes, events_size_bytes, WatchResponse};
use super::synced::WatcherKey;
use super::watcher::Watcher;

/// What is left after a [`WatchHub::catch_up`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchUpStatus {
    /// Every watcher is synced.
    Done,
    /// Some unsynced watchers can advance now: call again.
    MorePending,
    /// Unsynced watchers remain, but each waits: for its stream's queue to drain, or for the
    /// history to reach the hub's revision. Call again after draining or applying.
    Waiting,
}

/// What one step did for one watcher.
enum Step {
    Waiting,
    Advanced,
    Finished,
}

/// The batch one step delivers, and where it leaves the watcher.
struct Replay {
    events: Vec<Event>,
    next_revision: i64,
    end: ReplayEnd,
}

enum ReplayEnd {
    /// Read everything up to the hub's revision: the watcher is synced.
    CaughtUp,
    /// More history to read.
    More,
    /// The history is behind the hub's revision; wait for it.
    HistoryBehind,
    /// The next revision does not fit the queue now; wait for it to drain.
    NoRoom,
    /// The next revision can never fit the queue.
    TooLarge {
        revision: i64,
        events: usize,
        size_bytes: usize,
    },
}

impl WatchHub {
    /// Advances unsynced watchers: at most `catch_up_watchers_max` of them, each by at most
    /// one batch of `replay_batch_events_max` events (whole revisions), round-robin across
    /// calls. A watcher whose next revision is compacted gets its compaction answer; one that
    /// has read up to the current revision joins the synced group, so that no revision is
    /// lost or delivered twice across the switch. `history` must be the store the applied
    /// revisions came from.
    pub fn catch_up<H: WatchHistory + ?Sized>(&mut self, history: &H) -> CatchUpStatus {
        let candidates = self.unsynced.len();
        let (mut visited, mut worked, mut advanced) = (0, 0, false);
        while visited < candidates && worked < self.config.catch_up_watchers_max {
            let Some(key) = self.next_unsynced() else {
                break;
            };
            self.catch_up_cursor = Some(key);
            visited += 1;
            let step = self.catch_up_watcher(key, history);
            self.flush_deferred_progress(key.0);
            match step {
                Step::Waiting => {}
                Step::Advanced => {
                    worked += 1;
                    advanced = true;
                }
                Step::Finished => worked += 1,
            }
        }
        if self.unsynced.is_empty() {
            CatchUpStatus::Done
        } else if advanced || visited < candidates {
            CatchUpStatus::MorePending
        } else {
            CatchUpStatus::Waiting
        }
    }

    /// The unsynced watcher after the cursor, wrapping around.
    fn next_unsynced(&self) -> Option<WatcherKey> {
        let after = self.catch_up_cursor.and_then(|cursor| {
            let mut later = self
                .unsynced
                .range((Bound::Excluded(cursor), Bound::Unbounded));
            later.next().copied()
        });
        after.or_else(|| self.unsynced.first().copied())
    }

    fn catch_up_watcher<H: WatchHistory + ?Sized>(&mut self, key: WatcherKey, history: &H) -> Step {
        let current = self.current_revision;
        let Some(stream) = self.streams.get(&key.0) else {
            return Step::Finished;
        };
        let Some(watcher) = stream.watchers.get(&key.1) else {
            return Step::Finished;
        };
        if watcher.next_revision > current {
            // Nothing applied yet that it wants (a future start after a restore).
            self.mark_synced(key);
            return Step::Finished;
        }
        let Some(budget) = stream.outbox.replay_budget(&self.config) else {
            return Step::Waiting;
        };
        let range = &watcher.range;
        let page = history.events(
            range.key(),
            range.range_end(),
            watcher.next_revision,
            self.config.replay_batch_events_max,
        );
        let page = match page {
            Ok(page) => page,
            Err(Compacted { compact_revision }) => {
                self.cancel_compacted(key, compact_revision);
                return Step::Finished;
            }
        };
        let limits = PlanLimits {
            current_revision: current,
            budget,
            queue_empty: stream.outbox.is_empty(),
        };
        let replay = plan_replay(watcher, &page, limits);
        self.apply_replay(key, replay)
    }

    fn apply_replay(&mut self, key: WatcherKey, replay: Replay) -> Step {
        match replay.end {
            ReplayEnd::NoRoom => return Step::Waiting,
            ReplayEnd::TooLarge {
                revision,
                events,
                size_bytes,
            } => {
                let reason = CancelReason::RevisionTooLarge {
                    revision,
                    events,
                    size_bytes,
                };
                self.cancel_by_hub(key, reason);
                return Step::Finished;
            }
            ReplayEnd::CaughtUp | ReplayEnd::More | ReplayEnd::HistoryBehind => {}
        }
        let Some(stream) = self.streams.get_mut(&key.0) else {
            return Step::Finished;
        };
        let Some(watcher) = stream.watchers.get_mut(&key.1) else {
            return Step::Finished;
        };
        watcher.next_revision = replay.next_revision;
        if !replay.events.is_empty() {
            watcher.progress_due = false;
            // The watcher has now seen everything below its next revision.
            let header_revision = replay.next_revision - 1;
            let response = WatchResponse::events(key.1, header_revision, replay.events);
            stream.outbox.push(response);
        }
        match replay.end {
            ReplayEnd::CaughtUp => {
                self.mark_synced(key);
                Step::Finished
            }
            ReplayEnd::More => Step::Advanced,
            _ => Step::Waiting,
        }
    }
}

struct PlanLimits {
    current_revision: i64,
    budget: ReplayBudget,
    queue_empty: bool,
}

/// Chooses what one step delivers out of `page` (whole revisions from the watcher's next
/// revision): the longest run of revisions up to the hub's revision that fits the budget.
fn plan_replay(watcher: &Watcher, page: &HistoryPage, limits: PlanLimits) -> Replay {
    let mut events = Vec::new();
    let mut size_bytes = events_response_size_bytes(&[]);
    let mut next_revision = watcher.next_revision;
    for revision_events in page
        .events
        .chunk_by(|a, b| a.kv.mod_revision == b.kv.mod_revision)
    {
        let revision = revision_events[0].kv.mod_revision;
        if revision > limits.current_revision {
            // The history is ahead of the hub; `on_applied` delivers the rest once synced.
            return Replay {
                events,
                next_revision: limits.current_revision + 1,
                end: ReplayEnd::CaughtUp,
            };
        }
        let delivered = watcher.deliverable(revision_events);
        let delivered_bytes = events_size_bytes(&delivered);
        let fits = limits
            .budget
            .admits(events.len() + delivered.len(), size_bytes + delivered_bytes);
        if !delivered.is_empty() && !fits {
            let end = if !events.is_empty() {
                ReplayEnd::More
            } else if limits.queue_empty {
                ReplayEnd::TooLarge {
                    revision,
                    events: delivered.len(),
                    size_bytes: size_bytes + delivered_bytes,
                }
            } else {
                ReplayEnd::NoRoom
            };
            return Replay {
                events,
                next_revision,
                end,
            };
        }
        events.extend(delivered);
        size_bytes += delivered_bytes;
        next_revision = revision + 1;
    }
    // Every event of the page is taken, so the watcher has seen all revisions the page
    // covers.
    let end = if page.next_revision > limits.current_revision {
        next_revision = limits.current_revision + 1;
        ReplayEnd::CaughtUp
    } else if page.next_revision > next_revision {
        next_revision = page.next_revision;
        ReplayEnd::More
    } else if next_revision > watcher.next_revision {
        ReplayEnd::More
    } else {
        // No progress: the history has not reached the hub's revision yet.
        ReplayEnd::HistoryBehind
    };
    Replay {
        events,
        next_revision,
        end,
    }
}
