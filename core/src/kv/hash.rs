//! Checksums of the state that equal replicas agree on (etcd's `Hash` and `HashKV`, both
//! CRC-32C as in etcd). `HashKV` covers every retained version of every key up to a
//! revision, so members at different current revisions still agree on the hash of a
//! revision both have applied (as long as their compaction points are the same, which the
//! answer reports so that a checker compares only like with like).
//!
//! [`KvHasher`] walks the keys a slice at a time, so that a driver can go on applying
//! commands between slices (with a million keys the whole walk takes ~150 ms). Later writes
//! do not change what it reads; a compaction, or a store replaced by another, interrupts the
//! walk (see `walk`).

use std::ops::Bound;

use bytes::Bytes;

use super::key_history::KeyHistory;
use super::store::KvStore;
use super::walk::{check_walk, WalkInterrupted};
use super::KvError;

/// etcd's `HashKVResponse`: the hash, the revision it covers and the compaction point in
/// effect when it was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    pub hash_revision: i64,
    pub compact_revision: i64,
}

/// A `HashKV` in progress; see the module docs. Feed it the same store each step.
#[derive(Debug)]
pub struct KvHasher {
    revision: i64,
    compact_revision: i64,
    crc: u32,
    /// The last key hashed; `None` before the first.
    cursor: Option<Bytes>,
}

impl KvHasher {
    /// Starts hashing every retained version at or below `revision` (0: the current one) of
    /// `store`, in key then revision order. A compacted revision is refused, as is a future
    /// one.
    pub fn new(store: &KvStore, revision: i64) -> Result<KvHasher, KvError> {
        let mvcc = store.mvcc();
        let current = mvcc.revision();
        let compact_revision = mvcc.compact_revision();
        let revision = if revision <= 0 { current } else { revision };
        if revision < compact_revision {
            return Err(KvError::Compacted { compact_revision });
        }
        if revision > current {
            return Err(KvError::FutureRevision);
        }
        Ok(KvHasher {
            revision,
            compact_revision,
            crc: 0,
            cursor: None,
        })
    }

    /// The revision being hashed.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Hashes up to `keys_max` more keys of `store` (at least one). Returns the hash once the
    /// keys are through, `None` while some remain.
    pub fn step(
        &mut self,
        store: &KvStore,
        keys_max: usize,
    ) -> Result<Option<KvHash>, WalkInterrupted> {
        let mvcc = store.mvcc();
        check_walk(mvcc, self.revision, self.compact_revision)?;
        let keys_max = keys_max.max(1);
        let lower = match &self.cursor {
            Some(k) => Bound::Excluded(&k[..]),
            None => Bound::Unbounded,
        };
        let mut visited = 0;
        let mut last = None;
        for (key, history) in mvcc
            .keys()
            .range::<[u8], _>((lower, Bound::Unbounded))
            .take(keys_max)
        {
            self.crc = hash_key(self.crc, key, history, self.revision);
            visited += 1;
            last = Some(key);
        }
        if let Some(key) = last.filter(|_| visited == keys_max) {
            // Possibly the last key: the next step then finds none and answers.
            self.cursor = Some(key.clone());
            return Ok(None);
        }
        Ok(Some(KvHash {
            hash: self.crc,
            hash_revision: self.revision,
            compact_revision: self.compact_revision.max(0),
        }))
    }
}

/// `crc` extended with `key`'s versions at or below `revision`.
fn hash_key(mut crc: u32, key: &[u8], history: &KeyHistory, revision: i64) -> u32 {
    for v in history.versions().iter().take_while(|v| v.main <= revision) {
        crc = crc32c::crc32c_append(crc, &(key.len() as u64).to_le_bytes());
        crc = crc32c::crc32c_append(crc, key);
        for n in [
            v.main,
            i64::from(v.sub),
            v.create_revision,
            v.version,
            v.lease,
        ] {
            crc = crc32c::crc32c_append(crc, &n.to_le_bytes());
        }
        crc = crc32c::crc32c_append(crc, &(v.value.len() as u64).to_le_bytes());
        crc = crc32c::crc32c_append(crc, &v.value);
    }
    crc
}
