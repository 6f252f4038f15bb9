//! `RevisionLog`: which key changed at each revision, in revision order (the MVCC store's
//! log, read by watches catching up and by compaction). Held in segments of a fixed number
//! of entries, so that it grows without ever copying itself: one `VecDeque` of a million
//! entries doubled its capacity in one go, copying ~50 MB into a fresh ~100 MB on every
//! member at the same revision (a cluster-wide pause, 130–260 ms per member measured at 2^20
//! revisions under load, and longer at each later doubling).

use std::collections::VecDeque;

use super::Revision;
use bytes::Bytes;

/// One entry of the revision log: `key` changed at `rev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LogEntry {
    pub rev: Revision,
    pub key: Bytes,
}

/// Entries per segment (the last one fills up to this; the first may hold fewer).
const SEGMENT_ENTRIES: usize = 4096;

/// The log; see the module docs. Entries are in strictly increasing revision order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RevisionLog {
    /// None empty.
    segments: VecDeque<Vec<LogEntry>>,
}

impl RevisionLog {
    /// A log of `entries`, sorted by revision.
    pub fn from_sorted(entries: Vec<LogEntry>) -> RevisionLog {
        debug_assert!(entries.windows(2).all(|w| w[0].rev < w[1].rev));
        let mut log = RevisionLog::default();
        for chunk in entries.chunks(SEGMENT_ENTRIES) {
            log.segments.push_back(chunk.to_vec());
        }
        log
    }

    pub fn push_back(&mut self, entry: LogEntry) {
        debug_assert!(self.last_rev().is_none_or(|last| last < entry.rev));
        match self.segments.back_mut() {
            Some(last) if last.len() < SEGMENT_ENTRIES => last.push(entry),
            _ => {
                let mut segment = Vec::with_capacity(SEGMENT_ENTRIES);
                segment.push(entry);
                self.segments.push_back(segment);
            }
        }
    }

    fn last_rev(&self) -> Option<Revision> {
        Some(self.segments.back()?.last()?.rev)
    }

    /// Entries from the first with a revision `>= from` on, in order.
    pub fn from(&self, from: Revision) -> impl Iterator<Item = &LogEntry> + '_ {
        // The first segment whose last entry is at or after `from`.
        let seg = self
            .segments
            .partition_point(|s| s.last().is_some_and(|e| e.rev < from));
        let offset = self
            .segments
            .get(seg)
            .map_or(0, |s| s.partition_point(|e| e.rev < from));
        self.segments
            .range(seg..)
            .enumerate()
            .flat_map(move |(i, s)| &s[if i == 0 { offset } else { 0 }..])
    }

    /// Entries in order while their main revision is at most `at`.
    pub fn up_to(&self, at: i64) -> impl Iterator<Item = &LogEntry> + '_ {
        self.segments
            .iter()
            .flatten()
            .take_while(move |e| e.rev.main <= at)
    }

    /// Drops the entries with a main revision below `at`, and of those at `at` keeps only
    /// the ones `keep` accepts.
    pub fn compact(&mut self, at: i64, mut keep: impl FnMut(&LogEntry) -> bool) {
        while self
            .segments
            .front()
            .is_some_and(|s| s.last().is_some_and(|e| e.rev.main < at))
        {
            self.segments.pop_front();
        }
        if let Some(first) = self.segments.front_mut() {
            let below = first.partition_point(|e| e.rev.main < at);
            first.drain(..below);
        }
        // The entries at `at` now lead, in one segment or (a large transaction) several.
        let mut seg = 0;
        while let Some(s) = self.segments.get_mut(seg) {
            let at_end = s.partition_point(|e| e.rev.main <= at);
            let whole = at_end == s.len();
            let mut i = 0;
            s.retain(|e| {
                let kept = i >= at_end || keep(e);
                i += 1;
                kept
            });
            if s.is_empty() {
                self.segments.remove(seg);
            } else {
                seg += 1;
            }
            if !whole {
                break;
            }
        }
    }

    /// Heap bytes the entries' storage takes (not the keys they share with the index).
    pub fn heap_bytes(&self) -> usize {
        self.segments.capacity() * size_of::<Vec<LogEntry>>()
            + self
                .segments
                .iter()
                .map(|s| s.capacity() * size_of::<LogEntry>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn entry(main: i64, sub: u32) -> LogEntry {
        LogEntry {
            rev: Revision::new(main, sub),
            key: Bytes::from(format!("k{}", (main * 7 + i64::from(sub)) % 13)),
        }
    }

    fn all(log: &RevisionLog) -> Vec<LogEntry> {
        log.from(Revision::new(i64::MIN, 0)).cloned().collect()
    }

    /// Against a plain vector: pushes (some revisions with many sub-revisions, as a large
    /// transaction writes, across segment boundaries), reads from any revision, compactions
    /// at any point with any verdict on the entries at the compaction revision.
    #[test]
    fn behaves_as_one_sorted_vector() {
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..5 {
            let mut log = RevisionLog::default();
            let mut model: Vec<LogEntry> = Vec::new();
            let mut main = 1;
            for _ in 0..60 {
                // Writes: a run of revisions, some with up to 2.5 segments of sub-revisions.
                for _ in 0..rng.random_range(1..300) {
                    main += 1;
                    let subs = if rng.random_ratio(1, 50) {
                        rng.random_range(1..SEGMENT_ENTRIES * 5 / 2)
                    } else {
                        1
                    };
                    for sub in 0..subs as u32 {
                        log.push_back(entry(main, sub));
                        model.push(entry(main, sub));
                    }
                }
                let first = model.first().map_or(main, |e| e.rev.main);
                if rng.random_ratio(1, 3) {
                    let at = rng.random_range(first..=main);
                    let drop_odd = |e: &LogEntry| e.rev.sub % 2 == 0;
                    log.compact(at, drop_odd);
                    model.retain(|e| e.rev.main > at || (e.rev.main == at && drop_odd(e)));
                }
                assert_eq!(all(&log), model, "round {round}");
                let from = Revision::new(
                    rng.random_range(first - 1..=main + 1),
                    rng.random_range(0..3),
                );
                let want: Vec<&LogEntry> = model.iter().filter(|e| e.rev >= from).collect();
                assert_eq!(log.from(from).collect::<Vec<_>>(), want);
                let at = rng.random_range(first - 1..=main + 1);
                let want: Vec<&LogEntry> = model.iter().take_while(|e| e.rev.main <= at).collect();
                assert_eq!(log.up_to(at).collect::<Vec<_>>(), want);
                assert!(log.segments.iter().all(|s| !s.is_empty()));
            }
            assert_eq!(
                RevisionLog::from_sorted(model.clone())
                    .from(Revision::new(0, 0))
                    .cloned()
                    .collect::<Vec<_>>(),
                model
            );
        }
    }

    /// Growing never moves entries already written (the point of the segments).
    #[test]
    fn growing_keeps_entries_in_place() {
        let mut log = RevisionLog::default();
        log.push_back(entry(1, 0));
        let first: *const LogEntry = log.segments[0].as_ptr();
        for main in 2..(SEGMENT_ENTRIES as i64 * 3) {
            log.push_back(entry(main, 0));
        }
        assert_eq!(log.segments[0].as_ptr(), first);
        assert_eq!(log.segments.len(), 3);
    }
}
