//! `AutoCompactor`: etcd's `--auto-compaction-mode` / `--auto-compaction-retention` as a
//! sans-IO policy. The driver calls [`AutoCompactor::tick`] with its clock and the applied
//! revision; only the leader proposes what it returns (as [`super::Command::Compact`], through
//! the log), and reports back with [`AutoCompactor::compacted`] when that compaction applied
//! (successfully, or refused as already compacted).
//!
//! Semantics, as etcd 3.5's `v3compactor`:
//! - **revision** (`--auto-compaction-mode=revision --auto-compaction-retention=N`): every
//!   5 minutes, compact to `current - N` if that is positive and not the last revision
//!   compacted — the latest N revisions stay readable (`Revision.Run`);
//! - **periodic** (`--auto-compaction-mode=periodic --auto-compaction-retention=<duration>`):
//!   sample the revision every tenth of the retention (of an hour when the retention is
//!   longer), keep the samples of the last retention period, and compact to the oldest — the
//!   revision current about one retention ago. The first compaction waits one full retention
//!   after start; later ones come every retention (at most every hour) after the last success,
//!   retried every sampling interval (`Periodic.Run`).
//!
//! Followers call `pause` (etcd pauses the compactor on non-leaders); sampling continues so a
//! new leader has a window at once.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
/// etcd's `revInterval`.
const REVISION_CHECK_INTERVAL_MS: u64 = 5 * MINUTE_MS;
/// etcd's `retryDivisor`.
const SAMPLES_PER_INTERVAL: u64 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AutoCompactionMode {
    /// Keep the latest `retained_revisions` revisions.
    Revision { retained_revisions: i64 },
    /// Keep about `retention_ms` of history (must be at least 10 ms).
    Periodic { retention_ms: u64 },
}

#[derive(Clone, Debug)]
pub struct AutoCompactor {
    mode: AutoCompactionMode,
    paused: bool,
    /// When the next step (sample and maybe propose) is due.
    next_step_ms: u64,
    /// Periodic: the revisions sampled over the last retention, oldest first (bounded by
    /// `SAMPLES_PER_INTERVAL * retention / interval + 1`).
    samples: VecDeque<i64>,
    last_success_ms: u64,
    /// Periodic: time to wait after a success (the whole retention before the first one).
    wait_ms: u64,
    /// The last revision reported compacted.
    last_compacted: i64,
}

impl AutoCompactor {
    /// A compactor started at `now_ms`.
    pub fn new(mode: AutoCompactionMode, now_ms: u64) -> AutoCompactor {
        let mut c = AutoCompactor {
            mode,
            paused: false,
            next_step_ms: now_ms,
            samples: VecDeque::new(),
            last_success_ms: now_ms,
            wait_ms: 0,
            last_compacted: 0,
        };
        match mode {
            AutoCompactionMode::Revision { .. } => c.next_step_ms = now_ms + c.step_ms(),
            AutoCompactionMode::Periodic { retention_ms } => c.wait_ms = retention_ms,
        }
        c
    }

    fn step_ms(&self) -> u64 {
        match self.mode {
            AutoCompactionMode::Revision { .. } => REVISION_CHECK_INTERVAL_MS,
            AutoCompactionMode::Periodic { retention_ms } => {
                (retention_ms.min(HOUR_MS) / SAMPLES_PER_INTERVAL).max(1)
            }
        }
    }

    fn samples_max(&self) -> usize {
        match self.mode {
            AutoCompactionMode::Revision { .. } => 0,
            AutoCompactionMode::Periodic { retention_ms } => {
                (retention_ms / self.step_ms()) as usize + 1
            }
        }
    }

    /// When `tick` next has something to do.
    pub fn next_deadline_ms(&self) -> u64 {
        self.next_step_ms
    }

    /// Stops proposing (this member is not the leader).
    pub fn pause(&mut self) {
        self.paused = true;
    }

    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Advances to `now_ms` with the store at `current_revision`; returns a revision to
    /// compact to, if one is due.
    pub fn tick(&mut self, now_ms: u64, current_revision: i64) -> Option<i64> {
        if now_ms < self.next_step_ms {
            return None;
        }
        self.next_step_ms = now_ms + self.step_ms();
        match self.mode {
            AutoCompactionMode::Revision { retained_revisions } => {
                let rev = current_revision - retained_revisions;
                (!self.paused && rev > 0 && rev != self.last_compacted).then_some(rev)
            }
            AutoCompactionMode::Periodic { retention_ms } => {
                let due = !self.paused
                    && !self.samples.is_empty()
                    && now_ms - self.last_success_ms >= self.wait_ms;
                let mut proposal = None;
                if due {
                    self.wait_ms = retention_ms.min(HOUR_MS);
                    let rev = self.samples[0];
                    if rev > self.last_compacted {
                        proposal = Some(rev);
                    } else {
                        // Nothing new to drop: etcd's attempt would end "already compacted",
                        // which counts as a success.
                        self.last_success_ms = now_ms;
                    }
                }
                self.samples.push_back(current_revision);
                if self.samples.len() > self.samples_max() {
                    self.samples.pop_front();
                }
                proposal
            }
        }
    }

    /// A compaction to `revision` applied (or was refused because history was already
    /// compacted past it), at `now_ms`.
    pub fn compacted(&mut self, now_ms: u64, revision: i64) {
        self.last_success_ms = now_ms;
        self.last_compacted = self.last_compacted.max(revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_mode_keeps_the_latest_revisions() {
        let mut c = AutoCompactor::new(
            AutoCompactionMode::Revision {
                retained_revisions: 100,
            },
            0,
        );
        assert_eq!(c.tick(1, 500), None, "not before the first interval");
        let t = 5 * MINUTE_MS;
        assert_eq!(c.tick(t, 50), None, "nothing to compact yet");
        assert_eq!(c.tick(2 * t, 500), Some(400));
        c.compacted(2 * t, 400);
        assert_eq!(c.tick(3 * t, 500), None, "same revision as last time");
        c.pause();
        assert_eq!(c.tick(4 * t, 900), None);
        c.resume();
        assert_eq!(c.tick(5 * t, 900), Some(800));
    }

    #[test]
    fn periodic_mode_compacts_to_the_revision_one_retention_ago() {
        let hour = HOUR_MS;
        let mut c = AutoCompactor::new(AutoCompactionMode::Periodic { retention_ms: hour }, 0);
        // Sample every 6 minutes; revision = minutes elapsed.
        let step = hour / 10;
        let mut proposals = Vec::new();
        for i in 0..=30u64 {
            let now = i * step;
            if let Some(rev) = c.tick(now, (now / MINUTE_MS) as i64) {
                proposals.push((now / MINUTE_MS, rev));
                c.compacted(now, rev);
            }
        }
        // After one hour there is nothing before revision 0 to drop (a success, as etcd's
        // compaction to 0); then hourly, to the oldest sample of the last hour.
        assert_eq!(proposals, [(120, 54), (180, 114)]);
        assert!(c.samples.len() <= c.samples_max());
    }
}
