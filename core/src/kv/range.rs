//! Reads: etcd's `Range` with limit, count, keys-only, count-only, revision filters, sorting and
//! reads at past revisions, following etcd 3.5's `applierV3backend.Range` and
//! `storeTxnRead.rangeKeys`:
//! - `count` is the number of keys in the range at the read revision, before the min/max
//!   revision filters and regardless of `limit`;
//! - `more` is set when, after filtering and sorting, more than `limit` keys remain;
//! - `count_only` returns the count alone (`more` false);
//! - a sort target other than the key with no order sorts ascending; ties keep key order;
//! - the revision is checked first for the future, then for compaction (reading exactly at the
//!   compaction point works); the response revision is the store's current one.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::key_history::Version;
use super::mvcc::Mvcc;
use super::{KeyValue, KvError};

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
    /// At most this many keys (0 or negative = no limit).
    pub limit: i64,
    /// Read at this revision (0 or negative = latest).
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

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// More keys passed the filters than `limit` let through.
    pub more: bool,
    /// How many keys the range held at the read revision (before filters and limit).
    pub count: i64,
    /// The store's revision when the read was served (inside a txn: the txn's revision so far).
    pub revision: i64,
}

impl RangeRequest {
    fn has_filters(&self) -> bool {
        self.min_mod_revision != 0
            || self.max_mod_revision != 0
            || self.min_create_revision != 0
            || self.max_create_revision != 0
    }

    fn keeps(&self, v: &Version) -> bool {
        (self.max_mod_revision == 0 || v.main <= self.max_mod_revision)
            && (self.min_mod_revision == 0 || v.main >= self.min_mod_revision)
            && (self.max_create_revision == 0 || v.create_revision <= self.max_create_revision)
            && (self.min_create_revision == 0 || v.create_revision >= self.min_create_revision)
    }
}

/// The revision a read at `requested` is served at, given the reader's `current` revision.
pub(crate) fn read_revision(mvcc: &Mvcc, requested: i64, current: i64) -> Result<i64, KvError> {
    if requested > current {
        return Err(KvError::FutureRevision);
    }
    let rev = if requested <= 0 { current } else { requested };
    if rev < mvcc.compact_revision() {
        return Err(mvcc.compacted());
    }
    Ok(rev)
}

impl Mvcc {
    /// Serves `req` as of `current` (the store's revision, or inside a txn the txn's revision
    /// so far), returning at most `keys_max` keys.
    pub(crate) fn range(
        &self,
        req: &RangeRequest,
        current: i64,
        keys_max: usize,
    ) -> Result<RangeResponse, KvError> {
        if req.key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        let rev = read_revision(self, req.revision, current)?;
        let scan = self.scan_at(&req.key, &req.range_end, rev);
        if req.count_only {
            return Ok(RangeResponse {
                kvs: Vec::new(),
                more: false,
                count: scan.count() as i64,
                revision: current,
            });
        }
        // etcd fetches everything when it must sort or filter, else `limit + 1` (for `more`).
        let fetch_max = if req.sort_order != SortOrder::None || req.has_filters() || req.limit <= 0
        {
            usize::MAX
        } else {
            usize::try_from(req.limit)
                .unwrap_or(usize::MAX)
                .saturating_add(1)
        };
        let mut count = 0i64;
        let mut found: Vec<(&Bytes, &Version)> = Vec::new();
        for kv in scan {
            count += 1;
            if found.len() < fetch_max {
                found.push(kv);
            }
        }
        found.retain(|(_, v)| req.keeps(v));
        sort(&mut found, req);
        let mut more = false;
        if req.limit > 0 && found.len() as i64 > req.limit {
            found.truncate(req.limit as usize);
            more = true;
        }
        if found.len() > keys_max {
            return Err(KvError::RangeTooLarge {
                keys: found.len(),
                keys_max,
            });
        }
        let kvs = found
            .into_iter()
            .map(|(k, v)| {
                let mut kv = v.to_kv(k);
                if req.keys_only {
                    kv.value = Bytes::new();
                }
                kv
            })
            .collect();
        Ok(RangeResponse {
            kvs,
            more,
            count,
            revision: current,
        })
    }
}

/// etcd sorts only when asked, but a target other than the key with no order means ascending.
/// The input is in key order and the sort is stable, so ties stay in key order (etcd's
/// `sort.Sort` leaves them unspecified).
fn sort(found: &mut [(&Bytes, &Version)], req: &RangeRequest) {
    let order = match (req.sort_order, req.sort_target) {
        (SortOrder::None, SortTarget::Key) => return,
        (SortOrder::None, _) | (SortOrder::Ascend, _) => SortOrder::Ascend,
        (SortOrder::Descend, _) => SortOrder::Descend,
    };
    if order == SortOrder::Ascend && req.sort_target == SortTarget::Key {
        return;
    }
    found.sort_by(|(ka, a), (kb, b)| {
        let o = match req.sort_target {
            SortTarget::Key => ka.cmp(kb),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.main.cmp(&b.main),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        if order == SortOrder::Descend {
            o.reverse()
        } else {
            o
        }
    });
}
