//! `KvStore`: the applied key-value state and the write path.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{
    in_range, Command, CommandResult, DeleteRangeRequest, KeyValue, KvError, PutRequest,
    SnapshotDecodeError,
};

/// The key-value state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStore {
    /// The revision of the last write (etcd starts a fresh store at 1).
    revision: i64,
    keys: BTreeMap<Bytes, KeyValue>,
}

impl Default for KvStore {
    fn default() -> Self {
        KvStore {
            revision: 1,
            keys: BTreeMap::new(),
        }
    }
}

impl KvStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The revision of the last write.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes of keys and values held (computed on demand).
    pub fn size_bytes(&self) -> u64 {
        self.keys
            .values()
            .map(|kv| (kv.key.len() + kv.value.len()) as u64)
            .sum()
    }

    pub fn get(&self, key: &[u8]) -> Option<&KeyValue> {
        self.keys.get(key)
    }

    /// Keys in etcd's range convention, ascending.
    pub(crate) fn scan<'a>(
        &'a self,
        key: &'a [u8],
        range_end: &'a [u8],
    ) -> impl Iterator<Item = &'a KeyValue> + 'a {
        let lo = Bound::Included(Bytes::copy_from_slice(key));
        self.keys
            .range((lo, Bound::Unbounded))
            .map(|(_, kv)| kv)
            .take_while(move |kv| in_range(&kv.key, key, range_end))
    }

    /// Applies one write. Refused writes change nothing (and bump no revision).
    pub fn apply(&mut self, cmd: &Command) -> Result<CommandResult, KvError> {
        match cmd {
            Command::Put(p) => self.put(p),
            Command::DeleteRange(d) => self.delete_range(d),
        }
    }

    fn put(&mut self, p: &PutRequest) -> Result<CommandResult, KvError> {
        if p.key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        let prev = self.keys.get(&p.key).cloned();
        if (p.ignore_value || p.ignore_lease) && prev.is_none() {
            return Err(KvError::KeyNotFound);
        }
        if p.lease != 0 && !p.ignore_lease {
            // No lease exists yet in this store.
            return Err(KvError::LeaseNotFound);
        }
        let rev = self.revision + 1;
        let value = match (&prev, p.ignore_value) {
            (Some(prev), true) => prev.value.clone(),
            _ => p.value.clone(),
        };
        let lease = match (&prev, p.ignore_lease) {
            (Some(prev), true) => prev.lease,
            _ => p.lease,
        };
        let kv = KeyValue {
            key: p.key.clone(),
            create_revision: prev.as_ref().map_or(rev, |k| k.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |k| k.version + 1),
            value,
            lease,
        };
        self.keys.insert(p.key.clone(), kv);
        self.revision = rev;
        Ok(CommandResult::Put {
            revision: rev,
            prev_kv: if p.prev_kv { prev } else { None },
        })
    }

    fn delete_range(&mut self, d: &DeleteRangeRequest) -> Result<CommandResult, KvError> {
        if d.key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        let doomed: Vec<Bytes> = self
            .scan(&d.key, &d.range_end)
            .map(|kv| kv.key.clone())
            .collect();
        if doomed.is_empty() {
            return Ok(CommandResult::DeleteRange {
                revision: self.revision,
                deleted: 0,
                prev_kvs: Vec::new(),
            });
        }
        let mut prev_kvs = Vec::new();
        for k in &doomed {
            let kv = self.keys.remove(k).expect("scanned");
            if d.prev_kv {
                prev_kvs.push(kv);
            }
        }
        self.revision += 1;
        Ok(CommandResult::DeleteRange {
            revision: self.revision,
            deleted: doomed.len() as i64,
            prev_kvs,
        })
    }

    /// The whole state, deterministically encoded.
    pub fn snapshot(&self) -> Bytes {
        Bytes::from(postcard::to_stdvec(self).expect("in-memory encoding cannot fail"))
    }

    pub fn restore(data: &[u8]) -> Result<KvStore, SnapshotDecodeError> {
        if data.is_empty() {
            return Ok(KvStore::default());
        }
        Ok(postcard::from_bytes(data)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(s: &mut KvStore, k: &str, v: &str) -> CommandResult {
        s.apply(&Command::Put(PutRequest {
            key: Bytes::from(k.to_owned()),
            value: Bytes::from(v.to_owned()),
            prev_kv: true,
            ..Default::default()
        }))
        .unwrap()
    }

    #[test]
    fn revisions_and_versions_follow_etcd() {
        let mut s = KvStore::new();
        assert_eq!(s.revision(), 1);
        put(&mut s, "a", "1");
        let r = put(&mut s, "a", "2");
        let CommandResult::Put { revision, prev_kv } = r else {
            panic!()
        };
        assert_eq!(revision, 3);
        assert_eq!(prev_kv.unwrap().value, Bytes::from("1"));
        let kv = s.get(b"a").unwrap();
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
        let del = s
            .apply(&Command::DeleteRange(DeleteRangeRequest {
                key: Bytes::from("a"),
                range_end: Bytes::new(),
                prev_kv: false,
            }))
            .unwrap();
        assert_eq!(
            del,
            CommandResult::DeleteRange {
                revision: 4,
                deleted: 1,
                prev_kvs: vec![]
            }
        );
        // Re-created keys start a new lifetime.
        put(&mut s, "a", "3");
        let kv = s.get(b"a").unwrap();
        assert_eq!((kv.create_revision, kv.version), (5, 1));
    }

    #[test]
    fn refused_writes_change_nothing() {
        let mut s = KvStore::new();
        let e = s.apply(&Command::Put(PutRequest {
            key: Bytes::new(),
            ..Default::default()
        }));
        assert_eq!(e, Err(KvError::EmptyKey));
        let e = s.apply(&Command::Put(PutRequest {
            key: Bytes::from("k"),
            ignore_value: true,
            ..Default::default()
        }));
        assert_eq!(e, Err(KvError::KeyNotFound));
        let e = s.apply(&Command::Put(PutRequest {
            key: Bytes::from("k"),
            lease: 7,
            ..Default::default()
        }));
        assert_eq!(e, Err(KvError::LeaseNotFound));
        assert_eq!(s.revision(), 1);
        // Deleting nothing does not bump the revision either (etcd).
        let r = s.apply(&Command::DeleteRange(DeleteRangeRequest {
            key: Bytes::from("zz"),
            range_end: Bytes::from_static(&[0]),
            prev_kv: false,
        }));
        assert_eq!(
            r,
            Ok(CommandResult::DeleteRange {
                revision: 1,
                deleted: 0,
                prev_kvs: vec![]
            })
        );
    }

    #[test]
    fn snapshot_round_trips_exactly() {
        let mut s = KvStore::new();
        for i in 0..50 {
            put(&mut s, &format!("k{i:03}"), &format!("v{i}"));
        }
        let snap = s.snapshot();
        let r = KvStore::restore(&snap).unwrap();
        assert_eq!(r, s);
        assert_eq!(r.snapshot(), snap);
        assert!(KvStore::restore(&[0xff, 0xff, 0xff]).is_err());
    }
}
