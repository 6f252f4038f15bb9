//! The index of synced watchers by key, to find who an applied event concerns (etcd's
//! `watcherGroup`, with a linear list of ranges where etcd has an interval tree).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::kv::Event;

use super::range::KeyRange;
use super::request::{StreamId, WatchId};

/// A watcher, hub-wide.
pub(super) type WatcherKey = (StreamId, WatchId);

#[derive(Default)]
pub(super) struct SyncedIndex {
    by_key: BTreeMap<Bytes, BTreeSet<WatcherKey>>,
    ranges: BTreeMap<WatcherKey, KeyRange>,
}

impl SyncedIndex {
    pub fn insert(&mut self, watcher: WatcherKey, range: &KeyRange) {
        if range.is_single_key() {
            self.by_key
                .entry(range.key().clone())
                .or_default()
                .insert(watcher);
        } else {
            self.ranges.insert(watcher, range.clone());
        }
    }

    pub fn remove(&mut self, watcher: WatcherKey, range: &KeyRange) {
        if range.is_single_key() {
            if let Some(set) = self.by_key.get_mut(range.key()) {
                set.remove(&watcher);
                if set.is_empty() {
                    self.by_key.remove(range.key());
                }
            }
        } else {
            self.ranges.remove(&watcher);
        }
    }

    /// Every watcher in the index, in order, emptying it.
    pub fn take_all(&mut self) -> BTreeSet<WatcherKey> {
        let mut all: BTreeSet<WatcherKey> = std::mem::take(&mut self.ranges).into_keys().collect();
        for set in std::mem::take(&mut self.by_key).into_values() {
            all.extend(set);
        }
        all
    }

    /// For every watcher some of `events` concern, those events in their order (etcd's
    /// `newWatcherBatch`), watchers in order.
    pub fn batch<'a>(&self, events: &'a [Event]) -> BTreeMap<WatcherKey, Vec<&'a Event>> {
        let mut batch: BTreeMap<WatcherKey, Vec<&'a Event>> = BTreeMap::new();
        for event in events {
            let key = &event.kv.key[..];
            let single = self.by_key.get(key).into_iter().flatten();
            let ranged = self
                .ranges
                .iter()
                .filter(|(_, range)| range.contains(key))
                .map(|(watcher, _)| watcher);
            for watcher in single.chain(ranged) {
                batch.entry(*watcher).or_default().push(event);
            }
        }
        batch
    }
}
