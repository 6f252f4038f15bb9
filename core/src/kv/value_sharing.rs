//! `ValueSharing`: points a store's values into a stored copy of its snapshot (e.g. the
//! snapshot file, memory-mapped), a slice of keys at a time, so the heap stops holding them
//! without the driver stopping for the whole walk (hundreds of milliseconds with a million
//! keys). Only values with equal bytes are replaced, so writes applied between slices are
//! never undone, and nothing but where the bytes live changes.

use bytes::Bytes;

use super::mvcc::SharedValues;
use super::snapshot;
use super::store::KvStore;

/// A walk in progress; see the module docs.
#[derive(Debug)]
pub struct ValueSharing {
    /// The snapshot as encoded (compared against, so `stored` is not read).
    encoded: Bytes,
    stored: Bytes,
    /// Where the next key starts in `encoded`.
    offset: usize,
    keys_left: usize,
    shared: SharedValues,
}

impl ValueSharing {
    /// Shares the values `encoded` (a [`KvStore::snapshot`] of the store it is used on,
    /// taken at any earlier point) holds with `stored`, the same bytes as the driver stored
    /// them. Different lengths, or bytes that are not a snapshot: shares nothing.
    pub fn new(encoded: Bytes, stored: Bytes) -> ValueSharing {
        let index = (encoded.len() == stored.len())
            .then(|| snapshot::key_index_at(&encoded).ok())
            .flatten();
        let (offset, keys_left) = index.unwrap_or((0, 0));
        ValueSharing {
            shared: SharedValues {
                // A snapshot without keys is walked already.
                complete: index.is_some_and(|(_, keys)| keys == 0),
                ..SharedValues::default()
            },
            encoded,
            stored,
            offset,
            keys_left,
        }
    }

    /// Shares the values of up to `keys_max` more keys (at least one). Returns what was
    /// shared once the walk is over (cut short: not `complete`), `None` while keys remain.
    pub fn step(&mut self, store: &mut KvStore, keys_max: usize) -> Option<SharedValues> {
        if self.keys_left == 0 {
            return Some(self.shared);
        }
        let keys = self.keys_left.min(keys_max.max(1));
        let walked = store.mvcc_mut().share_values_from(
            &self.encoded,
            &self.stored,
            self.offset,
            keys,
            &mut self.shared,
        );
        match walked {
            Ok(next) => {
                self.offset = next;
                self.keys_left -= keys;
                self.shared.complete = self.keys_left == 0;
            }
            Err(_) => self.keys_left = 0,
        }
        (self.keys_left == 0).then_some(self.shared)
    }

    /// The whole walk in one go.
    pub fn run(mut self, store: &mut KvStore) -> SharedValues {
        loop {
            if let Some(shared) = self.step(store, usize::MAX) {
                return shared;
            }
        }
    }
}
