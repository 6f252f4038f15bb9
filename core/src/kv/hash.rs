//! Checksums of the state that equal replicas agree on (etcd's `Hash` and `HashKV`, both
//! CRC-32C as in etcd). `hash_kv` covers every retained version of every key up to a
//! revision, so members at different current revisions still agree on the hash of a
//! revision both have applied (as long as their compaction points are the same, which the
//! answer reports so that a checker compares only like with like).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::key_history::KeyHistory;
use super::KvError;

/// etcd's `HashKVResponse`: the hash, the revision it covers and the compaction point in
/// effect when it was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    pub hash_revision: i64,
    pub compact_revision: i64,
}

/// The hash of every retained version at or below `revision` (0: the current revision), in
/// key then revision order. A compacted revision is refused, as is a future one.
pub(crate) fn hash_kv(
    keys: &BTreeMap<Bytes, KeyHistory>,
    current: i64,
    compact_revision: i64,
    revision: i64,
) -> Result<KvHash, KvError> {
    let rev = if revision <= 0 { current } else { revision };
    if rev < compact_revision {
        return Err(KvError::Compacted { compact_revision });
    }
    if rev > current {
        return Err(KvError::FutureRevision);
    }
    let mut crc = 0u32;
    for (key, history) in keys {
        for v in history.versions().iter().take_while(|v| v.main <= rev) {
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
    }
    Ok(KvHash {
        hash: crc,
        hash_revision: rev,
        compact_revision: compact_revision.max(0),
    })
}
