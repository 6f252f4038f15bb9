//! `KeyHistory`: every retained version of one key, oldest first — the per-key half of the
//! MVCC index (etcd keeps revision lists in `keyIndex` and the values in its backend; here the
//! versions carry their values, so one map lookup answers a read at any revision).
//!
//! A delete appends a tombstone; a put after a tombstone starts a new lifetime (etcd's
//! "generation") with a fresh create revision and version 1.

use bytes::Bytes;
use serde::Serialize;

use super::{KeyValue, Revision};

/// The state a key had from `(main, sub)` on. A tombstone has `version == 0` (etcd stores a
/// deletion as a `KeyValue` with only the key set). Serialized for snapshots (`snapshot.rs` reads them back by hand, borrowing the values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Version {
    pub main: i64,
    pub create_revision: i64,
    pub version: i64,
    pub lease: i64,
    pub value: Bytes,
    pub sub: u32,
}

impl Version {
    pub fn tombstone(rev: Revision) -> Version {
        Version {
            main: rev.main,
            create_revision: 0,
            version: 0,
            lease: 0,
            value: Bytes::new(),
            sub: rev.sub,
        }
    }

    pub fn is_tombstone(&self) -> bool {
        self.version == 0
    }

    pub fn revision(&self) -> Revision {
        Revision::new(self.main, self.sub)
    }

    pub fn to_kv(&self, key: &Bytes) -> KeyValue {
        KeyValue {
            key: key.clone(),
            create_revision: self.create_revision,
            mod_revision: self.main,
            version: self.version,
            value: self.value.clone(),
            lease: self.lease,
        }
    }
}

/// A key's versions in increasing revision order; never empty while in the index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct KeyHistory {
    versions: Vec<Version>,
}

impl KeyHistory {
    /// A history of `versions` as decoded (checked by [`KeyHistory::check`], not here).
    pub fn from_versions(versions: Vec<Version>) -> KeyHistory {
        KeyHistory { versions }
    }

    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// The newest version (a tombstone when the key is deleted).
    pub fn last(&self) -> Option<&Version> {
        self.versions.last()
    }

    /// The live version at `rev` (the last change with `main <= rev`, unless a tombstone).
    pub fn at(&self, rev: i64) -> Option<&Version> {
        let v = match self.versions.last() {
            Some(last) if last.main <= rev => last,
            _ => {
                let n = self.versions.partition_point(|v| v.main <= rev);
                self.versions.get(n.checked_sub(1)?)?
            }
        };
        (!v.is_tombstone()).then_some(v)
    }

    /// The version written at exactly `rev`, if still retained.
    pub fn find(&self, rev: Revision) -> Option<&Version> {
        self.position(rev).map(|i| &self.versions[i])
    }

    /// The value of the version written at exactly `rev`, to be replaced by equal bytes held
    /// elsewhere (see `ValueSharing`).
    pub fn value_mut(&mut self, rev: Revision) -> Option<&mut Bytes> {
        let i = self.position(rev)?;
        Some(&mut self.versions[i].value)
    }

    fn position(&self, rev: Revision) -> Option<usize> {
        self.versions
            .binary_search_by(|v| v.revision().cmp(&rev))
            .ok()
    }

    /// Appends a newer version. Small histories grow one slot at a time: most keys keep one or
    /// two versions, and the default growth would reserve four.
    pub fn push(&mut self, v: Version) {
        debug_assert!(self
            .versions
            .last()
            .is_none_or(|l| l.revision() < v.revision()));
        if self.versions.len() == self.versions.capacity() && self.versions.len() < 4 {
            self.versions.reserve_exact(1);
        }
        self.versions.push(v);
    }

    /// etcd's `keyIndex.compact`: drops every version older than the newest one at or before
    /// `at`, and that one too when it is a tombstone. Reads at `at` or later are unchanged.
    /// Returns the bytes of values dropped.
    pub fn compact(&mut self, at: i64) -> usize {
        let n = self.versions.partition_point(|v| v.main <= at);
        let Some(keep) = n.checked_sub(1) else {
            return 0;
        };
        let drop = if self.versions[keep].is_tombstone() {
            n
        } else {
            keep
        };
        if drop == 0 {
            return 0;
        }
        let freed = self.versions[..drop].iter().map(|v| v.value.len()).sum();
        self.versions.drain(..drop);
        let (len, cap) = (self.versions.len(), self.versions.capacity());
        if cap > len && (len < 4 || cap > 2 * len) {
            self.versions.shrink_to_fit();
        }
        freed
    }

    /// Heap bytes of the version list (values counted separately).
    pub fn heap_bytes(&self) -> usize {
        self.versions.capacity() * std::mem::size_of::<Version>()
    }

    /// Checks the invariants a decoded snapshot must hold.
    pub fn check(&self) -> Result<(), String> {
        if self.versions.is_empty() {
            return Err("a key without versions".into());
        }
        for w in self.versions.windows(2) {
            if w[0].revision() >= w[1].revision() {
                return Err(format!("versions out of order at {:?}", w[1].revision()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(main: i64, version: i64) -> Version {
        Version {
            main,
            create_revision: main - version + 1,
            version,
            lease: 0,
            value: Bytes::from(format!("v{main}")),
            sub: 0,
        }
    }

    fn history(vs: Vec<Version>) -> KeyHistory {
        let mut h = KeyHistory::default();
        for v in vs {
            h.push(v);
        }
        h
    }

    fn mains(h: &KeyHistory) -> Vec<i64> {
        h.versions().iter().map(|v| v.main).collect()
    }

    #[test]
    fn reads_at_revisions() {
        let h = history(vec![
            put(2, 1),
            put(4, 2),
            Version::tombstone(Revision::new(6, 0)),
            put(8, 1),
        ]);
        assert!(h.at(1).is_none());
        assert_eq!(h.at(3).unwrap().main, 2);
        assert_eq!(h.at(5).unwrap().main, 4);
        assert!(h.at(6).is_none());
        assert!(h.at(7).is_none());
        assert_eq!(h.at(100).unwrap().main, 8);
    }

    // etcd key_index.go: put(1.0);put(2.0);tombstone(3.0);put(4.0);tombstone(5.0), then
    // compact(2) keeps {2.0, 3.0(t)} and {4.0, 5.0(t)}; compact(4) keeps {4.0, 5.0(t)};
    // compact(5) removes the key.
    #[test]
    fn compaction_follows_etcd_key_index() {
        let base = history(vec![
            put(1, 1),
            put(2, 2),
            Version::tombstone(Revision::new(3, 0)),
            put(4, 1),
            Version::tombstone(Revision::new(5, 0)),
        ]);
        let mut h = base.clone();
        h.compact(2);
        assert_eq!(mains(&h), [2, 3, 4, 5]);
        let mut h = base.clone();
        h.compact(4);
        assert_eq!(mains(&h), [4, 5]);
        let mut h = base.clone();
        h.compact(5);
        assert!(h.is_empty());
        let mut h = base;
        h.compact(6);
        assert!(h.is_empty());
    }
}
