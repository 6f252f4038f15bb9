//! `Mvcc`: the versioned keyspace. An ordered key index (key → [`KeyHistory`]) answers reads at
//! any retained revision; a revision-ordered log of `(revision, key)` answers "what changed
//! since revision r" for watches without scanning the keyspace. Compaction trims both.
//!
//! Invariant: the log holds exactly the retained versions at or after the compaction point,
//! in revision order (so it can be rebuilt from the index when a snapshot is restored).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::mem::size_of;
use std::ops::Bound;

use bytes::Bytes;

use super::key_history::{KeyHistory, Version};
use super::revision_log::{LogEntry, RevisionLog};
use super::snapshot;
use super::{KeyValue, KvError, Revision};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mvcc {
    keys: BTreeMap<Bytes, KeyHistory>,
    log: RevisionLog,
    /// The revision of the last write (etcd starts a fresh store at 1).
    revision: i64,
    /// Reads below this revision fail; -1 before the first compaction (etcd's
    /// `compactMainRev`).
    compact_revision: i64,
    /// Keys alive at `revision`.
    live_keys: usize,
    /// Key and value bytes of every retained version.
    stored_bytes: u64,
}

impl Default for Mvcc {
    fn default() -> Self {
        Mvcc {
            keys: BTreeMap::new(),
            log: RevisionLog::default(),
            revision: 1,
            compact_revision: -1,
            live_keys: 0,
            stored_bytes: 0,
        }
    }
}

/// What sharing values with a stored snapshot did (see [`super::ValueSharing`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedValues {
    /// Versions whose values now point into the stored snapshot.
    pub versions: usize,
    /// Their value bytes, no longer on the heap.
    pub bytes: u64,
    /// Whether the whole key index of the snapshot was read (false: not a snapshot this
    /// version encodes, or cut short; what was read before is shared all the same).
    pub complete: bool,
}

/// How full Rust's B-tree nodes run on average (sequential inserts leave split nodes about
/// 7/11 full), for the memory estimate.
const BTREE_FILL_PERCENT: usize = 65;
/// The header `Bytes` allocates when a buffer is first shared (index and log share each key;
/// responses and events share values).
const SHARED_BYTES_HEADER: usize = 24;

impl Mvcc {
    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// The error for a revision below the compaction point.
    pub fn compacted(&self) -> KvError {
        KvError::Compacted {
            compact_revision: self.compact_revision.max(0),
        }
    }

    pub fn live_keys(&self) -> usize {
        self.live_keys
    }

    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes
    }

    pub fn set_revision(&mut self, rev: i64) {
        debug_assert!(rev >= self.revision);
        self.revision = rev;
    }

    pub fn history(&self, key: &[u8]) -> Option<&KeyHistory> {
        self.keys.get(key)
    }

    pub fn keys(&self) -> &BTreeMap<Bytes, KeyHistory> {
        &self.keys
    }

    /// The key's state at `rev`, if alive then (the caller checks `rev` is readable).
    pub fn get_at(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        let (k, h) = self.keys.get_key_value(key)?;
        h.at(rev).map(|v| v.to_kv(k))
    }

    /// The histories of the keys in etcd's range `[key, range_end)`, ascending.
    pub fn scan<'a>(
        &'a self,
        key: &'a [u8],
        range_end: &'a [u8],
    ) -> Box<dyn Iterator<Item = (&'a Bytes, &'a KeyHistory)> + 'a> {
        if range_end.is_empty() {
            return Box::new(self.keys.get_key_value(key).into_iter());
        }
        let hi = if range_end == [0] {
            Bound::Unbounded
        } else if range_end <= key {
            return Box::new(std::iter::empty());
        } else {
            Bound::Excluded(range_end)
        };
        Box::new(self.keys.range::<[u8], _>((Bound::Included(key), hi)))
    }

    /// The keys alive at `rev` in the range, with their versions then.
    pub fn scan_at<'a>(
        &'a self,
        key: &'a [u8],
        range_end: &'a [u8],
        rev: i64,
    ) -> impl Iterator<Item = (&'a Bytes, &'a Version)> + 'a {
        self.scan(key, range_end)
            .filter_map(move |(k, h)| h.at(rev).map(|v| (k, v)))
    }

    /// Records `version` of `key`. Versions arrive in increasing revision order. One search
    /// of the index: the key is copied up front (so the index never pins a caller's larger
    /// buffer), which costs less than a second search when the key exists.
    pub fn write(&mut self, key: &Bytes, version: Version) {
        let rev = version.revision();
        let alive = !version.is_tombstone();
        self.stored_bytes += version.value.len() as u64;
        let (key, was_alive) = match self.keys.entry(Bytes::copy_from_slice(key)) {
            Entry::Occupied(mut e) => {
                let was_alive = e.get().last().is_some_and(|v| !v.is_tombstone());
                e.get_mut().push(version);
                (e.key().clone(), was_alive)
            }
            Entry::Vacant(e) => {
                let k = e.key().clone();
                self.stored_bytes += k.len() as u64;
                let mut h = KeyHistory::default();
                h.push(version);
                e.insert(h);
                (k, false)
            }
        };
        self.log.push_back(LogEntry { rev, key });
        match (was_alive, alive) {
            (false, true) => self.live_keys += 1,
            (true, false) => self.live_keys -= 1,
            _ => {}
        }
    }

    /// etcd's compaction at `at`: every key keeps its newest version at or before `at` (unless
    /// a tombstone) and everything after. Only keys changed since the previous compaction can
    /// hold droppable versions, so the work is proportional to the history dropped.
    pub fn compact(&mut self, at: i64) {
        debug_assert!(at > self.compact_revision && at <= self.revision);
        let touched: BTreeSet<Bytes> = self.log.up_to(at).map(|e| e.key.clone()).collect();
        for key in &touched {
            let h = self.keys.get_mut(key).expect("logged keys are indexed");
            self.stored_bytes -= h.compact(at) as u64;
            if h.is_empty() {
                self.keys.remove(key);
                self.stored_bytes -= key.len() as u64;
            }
        }
        // Keep the entries at `at` whose version survived (watches may start at `at`).
        let keys = &self.keys;
        self.log.compact(at, |e| {
            keys.get(&e.key).is_some_and(|h| h.find(e.rev).is_some())
        });
        self.compact_revision = at;
    }

    /// The log entries with revision `>= from`, in order.
    pub fn log_from(&self, from: Revision) -> impl Iterator<Item = &LogEntry> + '_ {
        self.log.from(from)
    }

    /// Approximate heap bytes held: the index, the versions, the log, keys and values (values
    /// shared from a stored snapshot included, though they are not on the heap). (Bytes
    /// requested from the allocator, estimated from the sizes of the structures; the
    /// `kv_memory` test checks it against a counting allocator.)
    pub fn memory_bytes(&self) -> usize {
        let slot = (size_of::<Bytes>() + size_of::<KeyHistory>()) * 100 / BTREE_FILL_PERCENT;
        let index: usize = self
            .keys
            .values()
            .map(|h| {
                slot + SHARED_BYTES_HEADER
                    + h.heap_bytes()
                    + h.versions().len() * SHARED_BYTES_HEADER
            })
            .sum();
        let log = self.log.heap_bytes();
        index + log + self.stored_bytes as usize
    }

    /// Replaces each value with the same bytes in `stored`, where the encoded snapshot
    /// `encoded` (of this store, at some earlier point) holds that version's value, for
    /// `keys` keys of its index from the one at `offset` on: `stored` is a copy of `encoded`
    /// (e.g. the snapshot file, memory-mapped), and slices of it need no heap. Versions
    /// written since, or whose bytes differ, keep their own values. Walks the snapshot and
    /// the index together in key order, without lookups. Returns where the next key starts
    /// in `encoded`; adds what it shared to `shared`.
    pub fn share_values_from(
        &mut self,
        encoded: &[u8],
        stored: &Bytes,
        offset: usize,
        keys: usize,
        shared: &mut SharedValues,
    ) -> Result<usize, postcard::Error> {
        if keys == 0 {
            return Ok(offset);
        }
        let first = snapshot::key_at(encoded, offset)?;
        let mut index = self
            .keys
            .range_mut::<[u8], _>((Bound::Included(first), Bound::Unbounded))
            .peekable();
        snapshot::value_spans_from(encoded, offset, keys, |key, rev, span| {
            while index.next_if(|(k, _)| k.as_ref() < key).is_some() {}
            let Some((k, h)) = index.peek_mut() else {
                return;
            };
            if k.as_ref() != key {
                return;
            }
            let Some(value) = h.value_mut(rev) else {
                return;
            };
            if value.as_ref() == &encoded[span.clone()] {
                shared.versions += 1;
                shared.bytes += span.len() as u64;
                *value = stored.slice(span);
            }
        })
    }

    /// Rebuilds the derived state (log, counters) from an index and revisions, checking the
    /// invariants a decoded snapshot must hold.
    pub fn from_parts(
        keys: BTreeMap<Bytes, KeyHistory>,
        revision: i64,
        compact_revision: i64,
    ) -> Result<Mvcc, String> {
        if revision < 1 || compact_revision < -1 || compact_revision > revision {
            return Err(format!(
                "revision {revision}, compact revision {compact_revision}"
            ));
        }
        let mut log = Vec::new();
        let mut live_keys = 0;
        let mut stored_bytes = 0u64;
        for (k, h) in &keys {
            h.check().map_err(|e| format!("key {k:?}: {e}"))?;
            if k.is_empty() {
                return Err("an empty key".into());
            }
            stored_bytes += k.len() as u64;
            for v in h.versions() {
                if v.main > revision {
                    return Err(format!("key {k:?} has a version after the revision"));
                }
                stored_bytes += v.value.len() as u64;
                if v.main >= compact_revision {
                    log.push(LogEntry {
                        rev: v.revision(),
                        key: k.clone(),
                    });
                }
            }
            if h.last().is_some_and(|v| !v.is_tombstone()) {
                live_keys += 1;
            }
        }
        // Revisions are unique.
        log.sort_unstable_by_key(|e| e.rev);
        Ok(Mvcc {
            keys,
            log: RevisionLog::from_sorted(log),
            revision,
            compact_revision,
            live_keys,
            stored_bytes,
        })
    }
}
