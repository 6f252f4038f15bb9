//! Reads: etcd's `Range` with limit, count, keys-only, count-only, revision filters and
//! sorting, served from the applied state.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{KeyValue, KvError, KvStore};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortOrder {
    #[default]
    None,
    Ascend,
    Descend,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortTarget {
    #[default]
    Key,
    Version,
    Create,
    Mod,
    Value,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    pub key: Bytes,
    pub range_end: Bytes,
    /// At most this many keys (0 = no limit).
    pub limit: i64,
    /// Read at this revision (0 = latest).
    pub revision: i64,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
    pub keys_only: bool,
    pub count_only: bool,
    pub min_mod_revision: i64,
    pub max_mod_revision: i64,
    pub min_create_revision: i64,
    pub max_create_revision: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// More keys matched than were returned.
    pub more: bool,
    /// How many keys matched.
    pub count: i64,
    /// The store's revision when the read was served.
    pub revision: i64,
}

impl KvStore {
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, KvError> {
        if req.key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        if req.revision > self.revision() {
            return Err(KvError::FutureRevision);
        }
        if req.revision > 0 && req.revision < self.revision() {
            return Err(KvError::HistoricalRead);
        }
        let keep = |kv: &&KeyValue| {
            (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
        };
        let mut kvs: Vec<KeyValue> = self
            .scan(&req.key, &req.range_end)
            .filter(keep)
            .cloned()
            .collect();
        let count = kvs.len() as i64;
        if req.count_only {
            return Ok(RangeResponse {
                kvs: Vec::new(),
                more: false,
                count,
                revision: self.revision(),
            });
        }
        // etcd: no explicit order but a target other than key means ascending by that target.
        let order = match (req.sort_order, req.sort_target) {
            (SortOrder::None, SortTarget::Key) => SortOrder::None,
            (SortOrder::None, _) => SortOrder::Ascend,
            (o, _) => o,
        };
        if order != SortOrder::None {
            kvs.sort_by(|a, b| {
                let o = match req.sort_target {
                    SortTarget::Key => a.key.cmp(&b.key),
                    SortTarget::Version => a.version.cmp(&b.version),
                    SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                    SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                    SortTarget::Value => a.value.cmp(&b.value),
                };
                // Ties keep key order, so results are deterministic.
                let o = o.then_with(|| a.key.cmp(&b.key));
                if order == SortOrder::Descend {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let mut more = false;
        if req.limit > 0 && kvs.len() as i64 > req.limit {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value = Bytes::new();
            }
        }
        Ok(RangeResponse {
            kvs,
            more,
            count,
            revision: self.revision(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Command, PutRequest};

    fn store(keys: &[&str]) -> KvStore {
        let mut s = KvStore::new();
        for k in keys {
            s.apply(&Command::Put(PutRequest {
                key: Bytes::from(k.to_string()),
                value: Bytes::from(format!("v-{k}")),
                ..Default::default()
            }))
            .unwrap();
        }
        s
    }

    fn keys(r: &RangeResponse) -> Vec<String> {
        r.kvs
            .iter()
            .map(|kv| String::from_utf8(kv.key.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn prefix_limit_count_and_more() {
        let s = store(&["a", "b/1", "b/2", "b/3", "c"]);
        let r = s
            .range(&RangeRequest {
                key: Bytes::from("b/"),
                range_end: Bytes::from("b0"),
                limit: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(keys(&r), ["b/1", "b/2"]);
        assert!(r.more);
        assert_eq!(r.count, 3);
        let all = s
            .range(&RangeRequest {
                key: Bytes::from_static(&[0]),
                range_end: Bytes::from_static(&[0]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.count, 5);
        let from_b = s
            .range(&RangeRequest {
                key: Bytes::from("b/2"),
                range_end: Bytes::from_static(&[0]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(keys(&from_b), ["b/2", "b/3", "c"]);
    }

    #[test]
    fn sorting_filters_and_projections() {
        let s = store(&["x", "a", "m"]);
        let r = s
            .range(&RangeRequest {
                key: Bytes::from("a"),
                range_end: Bytes::from("z"),
                sort_order: SortOrder::Descend,
                sort_target: SortTarget::Create,
                keys_only: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(keys(&r), ["m", "a", "x"]);
        assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
        let r = s
            .range(&RangeRequest {
                key: Bytes::from("a"),
                range_end: Bytes::from("z"),
                min_mod_revision: 3,
                count_only: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!((r.count, r.kvs.len()), (2, 0));
        assert_eq!(
            s.range(&RangeRequest {
                key: Bytes::from("a"),
                revision: 99,
                ..Default::default()
            }),
            Err(KvError::FutureRevision)
        );
    }
}
