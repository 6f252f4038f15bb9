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

use super::key_history::KeyHistory;
use super::store::KvStore;
use super::walk::{KeyWalk, WalkInterrupted};
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
    walk: KeyWalk,
    crc: u32,
}

impl KvHasher {
    /// Starts hashing every retained version at or below `revision` (0: the current one) of
    /// `store`, in key then revision order. A compacted revision is refused, as is a future
    /// one.
    pub fn new(store: &KvStore, revision: i64) -> Result<KvHasher, KvError> {
        let mvcc = store.mvcc();
        let compact_revision = mvcc.compact_revision();
        let revision = KvHasher::revision_for(store, revision);
        if revision < compact_revision {
            return Err(KvError::Compacted { compact_revision });
        }
        if revision > mvcc.revision() {
            return Err(KvError::FutureRevision);
        }
        Ok(KvHasher {
            walk: KeyWalk::new(revision, compact_revision),
            crc: 0,
        })
    }

    /// The revision a request for `revision` hashes in `store` now (0: the current one).
    pub fn revision_for(store: &KvStore, revision: i64) -> i64 {
        if revision <= 0 {
            store.revision()
        } else {
            revision
        }
    }

    /// The revision being hashed.
    pub fn revision(&self) -> i64 {
        self.walk.revision()
    }

    /// Hashes up to `keys_max` more keys of `store` (at least one). Returns the hash once the
    /// keys are through, `None` while some remain.
    pub fn step(
        &mut self,
        store: &KvStore,
        keys_max: usize,
    ) -> Result<Option<KvHash>, WalkInterrupted> {
        let revision = self.walk.revision();
        let crc = &mut self.crc;
        let through = self.walk.slice(store.mvcc(), keys_max, |key, history| {
            *crc = hash_key(*crc, key, history, revision);
        })?;
        Ok(through.then(|| KvHash {
            hash: self.crc,
            hash_revision: revision,
            compact_revision: self.walk.compact_revision().max(0),
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
