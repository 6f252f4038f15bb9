//! What a walk over the keys in slices (a [`super::SnapshotEncoder`], a [`super::KvHasher`])
//! relies on, checked at each slice: the state as of the walk's start revision `R` can still
//! be read after later writes, since a write only appends versions above `R` (and may add
//! keys whose versions are all above it). Only a compaction removes versions and keys; and a
//! store behind `R` is another store (the state machine was replaced).

use thiserror::Error;

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

/// Whether `mvcc` still holds the state of a walk started at `revision` with the compaction
/// point `compact_revision`.
pub(crate) fn check_walk(
    mvcc: &Mvcc,
    revision: i64,
    compact_revision: i64,
) -> Result<(), WalkInterrupted> {
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
