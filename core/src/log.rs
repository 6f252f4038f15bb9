//! The in-memory Raft log: the entries after the last compaction point, with the indices that
//! track how far each one has got (handed to storage, persisted, committed, applied).
//!
//! The core keeps every entry since the last snapshot in memory; the driver's storage holds the
//! durable copy and compacts in step with `Raft::compact`.

use crate::types::{Entry, Index, Term};

#[derive(Clone, Debug)]
pub(crate) struct RaftLog {
    /// Index and term of the last entry covered by the snapshot (the compaction point).
    snap_index: Index,
    snap_term: Term,
    /// `entries[i]` has index `snap_index + 1 + i`.
    entries: Vec<Entry>,
    pub committed: Index,
    /// Highest index handed out for applying.
    pub applied: Index,
    /// Highest index known durable in storage with the term it has in this log.
    pub persisted: Index,
    /// First index not yet handed to the driver for persisting.
    unstable_from: Index,
}

impl RaftLog {
    pub fn new(snap_index: Index, snap_term: Term, entries: Vec<Entry>) -> Self {
        let last = snap_index + entries.len() as u64;
        RaftLog {
            snap_index,
            snap_term,
            entries,
            committed: snap_index,
            applied: snap_index,
            persisted: last,
            unstable_from: last + 1,
        }
    }

    pub fn snapshot_index(&self) -> Index {
        self.snap_index
    }

    pub fn first_index(&self) -> Index {
        self.snap_index + 1
    }

    pub fn last_index(&self) -> Index {
        self.snap_index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snap_term, |e| e.term)
    }

    /// The term of entry `i`, or `None` when it is compacted away or beyond the log.
    pub fn term(&self, i: Index) -> Option<Term> {
        if i == self.snap_index {
            return Some(self.snap_term);
        }
        self.entry(i).map(|e| e.term)
    }

    pub fn entry(&self, i: Index) -> Option<&Entry> {
        if i <= self.snap_index {
            return None;
        }
        self.entries.get((i - self.snap_index - 1) as usize)
    }

    pub fn match_term(&self, i: Index, t: Term) -> bool {
        self.term(i) == Some(t)
    }

    /// §5.4.1: is a log ending at (`last_index`, `last_term`) at least as up-to-date as ours?
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries in `[lo, hi)` totalling at most `bytes_max` bytes, but at least one entry.
    pub fn slice(&self, lo: Index, hi: Index, bytes_max: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut i = lo.max(self.first_index());
        while i < hi {
            let Some(e) = self.entry(i) else { break };
            bytes += e.size_bytes();
            if !out.is_empty() && bytes > bytes_max {
                break;
            }
            out.push(e.clone());
            i += 1;
        }
        out
    }

    /// The first of `ents` that is not already in the log with the same term.
    fn find_conflict(&self, ents: &[Entry]) -> Option<Index> {
        ents.iter()
            .find(|e| !self.match_term(e.index, e.term))
            .map(|e| e.index)
    }

    /// Fast backtracking: the largest index `<= index` whose term is `<= term`, with its term.
    pub fn find_conflict_by_term(&self, index: Index, term: Term) -> (Index, Term) {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Some(t) if t > term => i -= 1,
                Some(t) => return (i, t),
                None => return (i, 0),
            }
        }
    }

    /// Appends `ents` (which follow `prev_index`) if the log matches at `prev_index`,
    /// truncating any conflicting suffix (§5.3). Returns the last index now known to match the
    /// leader, or `None` if the log does not contain (`prev_index`, `prev_term`).
    pub fn maybe_append(
        &mut self,
        prev_index: Index,
        prev_term: Term,
        ents: &[Entry],
    ) -> Option<Index> {
        if prev_index < self.snap_index {
            // Everything up to the snapshot is committed and matches the leader; skip it.
            let skip = (self.snap_index - prev_index) as usize;
            if skip > ents.len() {
                return Some(self.snap_index);
            }
            let rest = &ents[skip..];
            let prev_term = if skip == 0 {
                prev_term
            } else {
                ents[skip - 1].term
            };
            if skip > 0 && prev_term != self.snap_term {
                // A committed entry cannot differ; the message is bogus or from a stale leader.
                return None;
            }
            return self.maybe_append(self.snap_index, self.snap_term, rest);
        }
        if !self.match_term(prev_index, prev_term) {
            return None;
        }
        let last_new = prev_index + ents.len() as u64;
        if let Some(conflict) = self.find_conflict(ents) {
            if conflict <= self.committed {
                // Never rewrite the committed prefix; a correct leader never asks for it.
                return None;
            }
            let start = (conflict - prev_index - 1) as usize;
            self.truncate_and_append(&ents[start..]);
        }
        Some(last_new)
    }

    /// Appends entries starting at `ents[0].index`, dropping anything at or after it.
    pub fn truncate_and_append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else { return };
        let at = first.index;
        debug_assert!(at > self.snap_index && at <= self.last_index() + 1);
        debug_assert!(at > self.committed, "truncating committed entries");
        self.entries.truncate((at - self.snap_index - 1) as usize);
        self.entries.extend_from_slice(ents);
        self.unstable_from = self.unstable_from.min(at);
        self.persisted = self.persisted.min(at - 1);
    }

    pub fn append_one(&mut self, e: Entry) {
        debug_assert_eq!(e.index, self.last_index() + 1);
        self.entries.push(e);
    }

    pub fn commit_to(&mut self, i: Index) {
        if i > self.committed {
            debug_assert!(i <= self.last_index());
            self.committed = i;
        }
    }

    /// Commits up to `i` if entry `i` is from `term` (§5.4.2: only current-term entries are
    /// committed by counting replicas).
    pub fn maybe_commit(&mut self, i: Index, term: Term) -> bool {
        if i > self.committed && self.term(i) == Some(term) {
            self.committed = i;
            true
        } else {
            false
        }
    }

    pub fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// Entries not yet handed to storage; marks them handed.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        let lo = self.unstable_from;
        let hi = self.last_index();
        self.unstable_from = hi + 1;
        if lo > hi {
            return Vec::new();
        }
        self.entries[(lo - self.snap_index - 1) as usize..].to_vec()
    }

    /// Storage reports entries up to (`index`, `term`) durable.
    pub fn stable_to(&mut self, index: Index, term: Term) {
        if index > self.persisted && index < self.unstable_from && self.match_term(index, term) {
            self.persisted = index;
        }
    }

    /// Highest index that may be applied now: committed and durable here.
    pub fn applicable(&self) -> Index {
        self.committed.min(self.persisted)
    }

    pub fn has_next_committed(&self) -> bool {
        self.applied < self.applicable()
    }

    /// Committed entries to apply next, at most `bytes_max` bytes (at least one).
    pub fn next_committed(&self, bytes_max: usize) -> Vec<Entry> {
        let hi = self.applicable();
        if self.applied >= hi {
            return Vec::new();
        }
        self.slice(self.applied + 1, hi + 1, bytes_max)
    }

    /// Replaces the whole log with a snapshot's position.
    pub fn restore(&mut self, index: Index, term: Term) {
        self.snap_index = index;
        self.snap_term = term;
        self.entries.clear();
        // Only the committed prefix of the old log is known to agree with the snapshot; the
        // snapshot itself is durable once its write is acknowledged.
        self.persisted = self.persisted.min(self.committed);
        self.committed = index;
        self.applied = index;
        self.unstable_from = index + 1;
    }

    /// Drops entries up to and including `i` (which must be persisted and applied).
    pub fn compact(&mut self, i: Index) {
        if i <= self.snap_index {
            return;
        }
        debug_assert!(i <= self.applied && i <= self.persisted);
        let term = self.term(i).expect("compact index within the log");
        self.entries.drain(..(i - self.snap_index) as usize);
        self.snap_index = i;
        self.snap_term = term;
    }

    /// Debug check of the log's own invariants.
    pub fn check(&self) {
        debug_assert!(self.applied <= self.committed, "applied > committed");
        debug_assert!(self.committed <= self.last_index(), "committed beyond log");
        debug_assert!(self.applied <= self.persisted || self.applied <= self.snap_index);
        let mut prev = self.snap_term;
        for (k, e) in self.entries.iter().enumerate() {
            debug_assert_eq!(e.index, self.snap_index + 1 + k as u64, "index gap");
            debug_assert!(e.term >= prev, "terms decrease in the log");
            prev = e.term;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryPayload;

    fn ents(terms: &[(Index, Term)]) -> Vec<Entry> {
        terms
            .iter()
            .map(|&(index, term)| Entry {
                index,
                term,
                payload: EntryPayload::Empty,
            })
            .collect()
    }

    /// §5.3: a follower deletes a conflicting suffix and appends the leader's entries.
    #[test]
    fn raft_5_3_conflicting_suffix_replaced() {
        let mut log = RaftLog::new(0, 0, ents(&[(1, 1), (2, 1), (3, 2)]));
        assert_eq!(log.maybe_append(1, 1, &ents(&[(2, 3), (3, 3)])), Some(3));
        assert_eq!(log.term(2), Some(3));
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.persisted, 1);
        // Mismatch at prev: rejected.
        assert_eq!(log.maybe_append(3, 1, &ents(&[(4, 3)])), None);
        // Already-present entries don't truncate anything (stale, reordered append).
        log.take_unstable();
        assert_eq!(log.maybe_append(0, 0, &ents(&[(1, 1)])), Some(1));
        assert_eq!(log.last_index(), 3);
    }

    /// §5.4.1: the up-to-date comparison is by last term, then length.
    #[test]
    fn raft_5_4_1_up_to_date() {
        let log = RaftLog::new(0, 0, ents(&[(1, 1), (2, 2)]));
        assert!(log.is_up_to_date(1, 3));
        assert!(log.is_up_to_date(2, 2));
        assert!(!log.is_up_to_date(1, 2));
        assert!(!log.is_up_to_date(5, 1));
    }

    #[test]
    fn find_conflict_by_term_skips_whole_terms() {
        let log = RaftLog::new(0, 0, ents(&[(1, 1), (2, 1), (3, 4), (4, 4), (5, 5)]));
        assert_eq!(log.find_conflict_by_term(5, 3), (2, 1));
        assert_eq!(log.find_conflict_by_term(9, 4), (4, 4));
        assert_eq!(log.find_conflict_by_term(5, 0), (0, 0));
    }

    #[test]
    fn apply_waits_for_persistence() {
        let mut log = RaftLog::new(0, 0, Vec::new());
        log.truncate_and_append(&ents(&[(1, 1), (2, 1)]));
        log.commit_to(2);
        assert!(log.next_committed(usize::MAX).is_empty());
        let handed = log.take_unstable();
        assert_eq!(handed.len(), 2);
        log.stable_to(2, 1);
        assert_eq!(log.next_committed(usize::MAX).len(), 2);
    }
}
