//! [`KeyWalk`]: the walk over the key index a slice at a time that the snapshot encoder and
//! the `HashKV` hasher both make, and what it relies on, checked at each slice: the state as
//! of the walk's start revision `R` can still be read after later writes, since a write only
//! appends versions above `R` (and may add keys whose versions are all above it). Only a
//! compaction removes versions and keys; and a store behind `R` is another store (the state
//! machine was replaced).

use std::ops::Bound;

use bytes::Bytes;
use thiserror::Error;

use super::key_history::KeyHistory;
use super::mvcc::Mvcc;

/// Why a walk cannot go on; the caller starts again (or does the work in one go).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum WalkInterrupted {
    #[error("the store was compacted at revision {compacted_at} while a walk of its state at revision {revision} was in progress")]
    Compacted { revision: i64, compacted_at: i64 },
    #[error(
        "the store is behind revision {revision} a walk of it started at (replaced by another)"
    )]
    Replaced { revision: i64 },
}

/// A walk over the key index in slices, reading the state as of `revision`.
#[derive(Debug)]
pub(crate) struct KeyWalk {
    revision: i64,
    compact_revision: i64,
    /// The last key visited in this pass; `None` before the first.
    cursor: Option<Bytes>,
}

impl KeyWalk {
    /// A walk of the state at `revision` of a store compacted at `compact_revision`.
    pub(crate) fn new(revision: i64, compact_revision: i64) -> KeyWalk {
        KeyWalk {
            revision,
            compact_revision,
            cursor: None,
        }
    }

    pub(crate) fn revision(&self) -> i64 {
        self.revision
    }

    pub(crate) fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// Hands `visit` up to `keys_max` (at least one) more keys of `mvcc`, in order, after the
    /// last one visited. True once the index is through (the next slice starts a new pass at
    /// the first key); false after a full slice, even one that ended on the last key (the
    /// next slice then finds none and is through).
    pub(crate) fn slice(
        &mut self,
        mvcc: &Mvcc,
        keys_max: usize,
        mut visit: impl FnMut(&Bytes, &KeyHistory),
    ) -> Result<bool, WalkInterrupted> {
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
            visit(key, history);
            visited += 1;
            last = Some(key);
        }
        self.cursor = last.filter(|_| visited == keys_max).cloned();
        Ok(self.cursor.is_none())
    }
}

/// Whether `mvcc` still holds the state of a walk started at `revision` with the compaction
/// point `compact_revision`.
fn check_walk(mvcc: &Mvcc, revision: i64, compact_revision: i64) -> Result<(), WalkInterrupted> {
    if mvcc.compact_revision() != compact_revision {
        return Err(WalkInterrupted::Compacted {
            revision,
            compacted_at: mvcc.compact_revision(),
        });
    }
    if mvcc.revision() < revision {
        return Err(WalkInterrupted::Replaced { revision });
    }
    Ok(())
}
