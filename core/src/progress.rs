//! The leader's view of one follower's replication: how far its log matches, what to send
//! next, and the flow-control window (in-flight messages and bytes).

use std::collections::VecDeque;

use crate::types::Index;

/// How the leader is currently replicating to a follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Searching for the match point: one `Append` at a time, then wait.
    Probe,
    /// Steady state: optimistic pipelining bounded by the in-flight window.
    Replicate,
    /// Sending a snapshot at `index` in chunks.
    Snapshot(SnapshotSend),
}

/// Transfer state of one snapshot to one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSend {
    pub index: Index,
    pub total_bytes: u64,
    /// Bytes sent so far and bytes the follower acknowledged.
    pub offset_sent: u64,
    pub offset_acked: u64,
    /// Whether the follower acknowledged anything since the last heartbeat; if not, the
    /// transfer resumes from `offset_acked`.
    pub acked_since_heartbeat: bool,
    /// The chunk ending at `total_bytes` has been sent.
    pub sent_final: bool,
    /// The offset the transfer was last rewound to, until the follower acknowledges past it.
    /// Further rejections asking for it answer chunks sent before the rewind (or report the
    /// resent chunk lost, which the heartbeat recovers) and must not trigger another resend.
    pub resent_from: Option<u64>,
}

/// Bounded window of unacknowledged `Append` messages (or snapshot chunks).
#[derive(Clone, Debug, Default)]
pub struct Inflights {
    /// (last index or end offset carried, bytes) per message, in send order.
    queue: VecDeque<(u64, usize)>,
    bytes: usize,
}

impl Inflights {
    pub fn add(&mut self, last: u64, bytes: usize) {
        self.queue.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose last index (or offset) is `<= upto`.
    pub fn free_le(&mut self, upto: u64) {
        while let Some(&(last, bytes)) = self.queue.front() {
            if last > upto {
                break;
            }
            self.queue.pop_front();
            self.bytes -= bytes;
        }
    }

    /// Frees the oldest message (used when acknowledgements may have been lost).
    pub fn free_first(&mut self) {
        if let Some((_, bytes)) = self.queue.pop_front() {
            self.bytes -= bytes;
        }
    }

    pub fn reset(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }

    pub fn is_full(&self, msgs_max: usize, bytes_max: usize) -> bool {
        self.queue.len() >= msgs_max || self.bytes >= bytes_max
    }

    pub fn count(&self) -> usize {
        self.queue.len()
    }
}

#[derive(Clone, Debug)]
pub struct Progress {
    pub match_index: Index,
    pub next_index: Index,
    pub state: ProgressState,
    /// Probe: an `Append` is outstanding; wait for its answer or a heartbeat answer.
    pub probe_sent: bool,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// Replication session id, echoed by the follower.
    pub session: u64,
    pub inflights: Inflights,
    /// Highest heartbeat round acknowledged, and the leader tick at which it was sent.
    pub acked_round: u64,
    pub acked_round_tick: Option<u64>,
}

impl Progress {
    pub fn new(next_index: Index, session: u64) -> Self {
        Progress {
            match_index: 0,
            next_index: next_index.max(1),
            state: ProgressState::Probe,
            probe_sent: false,
            recent_active: true,
            session,
            inflights: Inflights::default(),
            acked_round: 0,
            acked_round_tick: None,
        }
    }

    pub fn become_probe(&mut self) {
        if let ProgressState::Snapshot(s) = &self.state {
            // After a snapshot the follower holds at least the snapshot index.
            self.next_index = (self.match_index + 1).max(s.index + 1);
        } else {
            self.next_index = self.match_index + 1;
        }
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.inflights.reset();
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflights.reset();
    }

    pub fn become_snapshot(&mut self, index: Index, total_bytes: u64) {
        self.state = ProgressState::Snapshot(SnapshotSend {
            index,
            total_bytes,
            offset_sent: 0,
            offset_acked: 0,
            acked_since_heartbeat: true,
            sent_final: false,
            resent_from: None,
        });
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// The follower acknowledged up to `n`. Returns whether `match_index` moved.
    pub fn maybe_update(&mut self, n: Index) -> bool {
        let updated = n > self.match_index;
        if updated {
            self.match_index = n;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(n + 1);
        updated
    }

    /// The follower rejected an append at `rejected`; `match_hint` is where its log may match.
    /// Returns false when the rejection is stale.
    pub fn maybe_decrease(&mut self, rejected: Index, match_hint: Index) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.match_index {
                return false;
            }
            self.next_index = self.match_index + 1;
            return true;
        }
        if self.next_index.saturating_sub(1) != rejected {
            return false;
        }
        self.next_index = rejected.min(match_hint + 1).max(self.match_index + 1);
        self.probe_sent = false;
        true
    }

    /// Whether sending more `Append`s must wait.
    pub fn is_paused(&self, msgs_max: usize, bytes_max: usize) -> bool {
        match &self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(msgs_max, bytes_max),
            ProgressState::Snapshot(_) => true,
        }
    }

    /// Records an `Append` carrying entries up to `last` (`bytes` of them) as sent.
    pub fn sent_entries(&mut self, last: Option<Index>, bytes: usize) {
        match self.state {
            ProgressState::Replicate => {
                if let Some(last) = last {
                    self.next_index = last + 1;
                    self.inflights.add(last, bytes);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflight_window_is_bounded_by_count_and_bytes() {
        let mut pr = Progress::new(1, 1);
        pr.become_replicate();
        for i in 1..=3 {
            pr.sent_entries(Some(i), 100);
        }
        assert!(pr.is_paused(3, 10_000));
        assert!(!pr.is_paused(4, 10_000));
        assert!(pr.is_paused(4, 300));
        pr.inflights.free_le(2);
        assert_eq!(pr.inflights.count(), 1);
        assert!(!pr.is_paused(3, 10_000));
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut pr = Progress::new(10, 1);
        pr.maybe_update(5);
        pr.become_replicate();
        pr.sent_entries(Some(9), 10);
        // Rejected at or below match: stale.
        assert!(!pr.maybe_decrease(4, 0));
        assert!(pr.maybe_decrease(7, 6));
        assert_eq!(pr.next_index, 6);
        pr.become_probe();
        assert_eq!(pr.next_index, 6);
        // Probe only accepts the rejection of the index it sent.
        assert!(!pr.maybe_decrease(9, 0));
        assert!(pr.maybe_decrease(5, 0));
        // Never below match + 1.
        assert_eq!(pr.next_index, 6);
    }
}
