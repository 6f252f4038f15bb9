//! At-most-once for forwarded proposals. Every other Raft message is idempotent, but a
//! `Propose` delivered twice (a duplicating network, a retransmitting transport) would append
//! the same command twice, and a client's single write would take effect twice — possibly the
//! second time after later writes, which breaks linearizability. Followers number their
//! forwarded proposals per boot (`epoch`, `seq`); the leader keeps, for its term, a bounded
//! window of the numbers it has seen from each sender and drops repeats and anything older
//! than the window (dropping is safe: Raft tolerates loss and the proposer times out). A copy
//! arriving in a later term carries the old term and is dropped by the term check.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::NodeId;

/// How many sequence numbers behind the highest seen a sender's proposal may still be.
const WINDOW: u64 = 4096;
/// Senders (member, boot) remembered per term; the oldest boot is forgotten first.
const SENDERS_MAX: usize = 256;

#[derive(Default)]
pub(crate) struct ForwardedSeen {
    senders: BTreeMap<(NodeId, u64), Window>,
}

#[derive(Default)]
struct Window {
    max: u64,
    seen: BTreeSet<u64>,
}

impl ForwardedSeen {
    /// Whether a proposal numbered (`epoch`, `seq`) from `from` is new; records it if so.
    pub fn accept(&mut self, from: NodeId, epoch: u64, seq: u64) -> bool {
        if !self.senders.contains_key(&(from, epoch)) && self.senders.len() >= SENDERS_MAX {
            // Forget the sender heard from least recently in sequence terms (deterministic).
            if let Some(k) = self
                .senders
                .iter()
                .min_by_key(|(k, w)| (w.max, **k))
                .map(|(k, _)| *k)
            {
                self.senders.remove(&k);
            }
        }
        let w = self.senders.entry((from, epoch)).or_default();
        if seq + WINDOW <= w.max || !w.seen.insert(seq) {
            return false;
        }
        if seq > w.max {
            w.max = seq;
            let floor = w.max.saturating_sub(WINDOW);
            w.seen = w.seen.split_off(&floor);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_and_stale_numbers_are_refused() {
        let mut f = ForwardedSeen::default();
        assert!(f.accept(2, 7, 1));
        assert!(!f.accept(2, 7, 1));
        assert!(f.accept(2, 7, 3));
        assert!(f.accept(2, 7, 2), "out of order but new");
        assert!(!f.accept(2, 7, 2));
        // Another boot of the same member numbers afresh.
        assert!(f.accept(2, 8, 1));
        assert!(f.accept(2, 7, 10_000));
        assert!(!f.accept(2, 7, 4), "older than the window");
    }
}
