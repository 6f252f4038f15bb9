//! Sequential keys (ZooKeeper's sequential znodes, etcd's `recipes.newSequentialKV`): a new key
//! `prefix/<20-digit number>` whose number is larger than every key created under the prefix
//! before it, optionally ephemeral (attached to a lease, gone with it). Service registries and
//! queues use them: the order of the numbers is the order of creation.

use bytes::Bytes;
use sextant_core::kv::{
    Command, CommandResult, Compare, CompareResult, CompareTarget, PutRequest, RangeRequest,
    RequestOp, SortOrder, SortTarget, TxnRequest,
};
use sextant_core::watch::KeyRange;

use super::RecipeError;
use crate::node::{Header, NodeHandle};

/// Attempts before giving up under contention (each failed attempt means another sequential
/// key was created under the prefix meanwhile, so progress is made globally).
const ATTEMPTS_MAX: usize = 64;

/// Creates `prefix/<n>` with `value` (on `lease` if non-zero), `n` one above the largest
/// number under `prefix`. Returns the key and the write's header.
pub async fn create_sequential(
    node: &NodeHandle,
    prefix: &[u8],
    value: Bytes,
    lease: i64,
) -> Result<(Bytes, Header), RecipeError> {
    let mut dir = prefix.to_vec();
    dir.push(b'/');
    let dir = Bytes::from(dir);
    // Every creation also touches this marker, so the compare below fails if anyone created
    // a sequential key under `prefix` after our read.
    let mut marker = b"__".to_vec();
    marker.extend_from_slice(prefix);
    let marker = Bytes::from(marker);
    for _ in 0..ATTEMPTS_MAX {
        let last = node
            .range(
                RangeRequest {
                    key: dir.clone(),
                    range_end: KeyRange::prefix_end(&dir),
                    limit: 1,
                    sort_order: SortOrder::Descend,
                    sort_target: SortTarget::Key,
                    ..Default::default()
                },
                false,
            )
            .await?;
        let next = last
            .range
            .kvs
            .first()
            .and_then(|kv| {
                std::str::from_utf8(&kv.key[dir.len()..])
                    .ok()?
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |n| n + 1);
        let mut key = dir.to_vec();
        key.extend_from_slice(format!("{next:020}").as_bytes());
        let key = Bytes::from(key);
        let txn = TxnRequest {
            compare: vec![Compare {
                key: marker.clone(),
                range_end: Bytes::new(),
                target: CompareTarget::Mod(last.header.revision + 1),
                result: CompareResult::Less,
            }],
            success: vec![
                RequestOp::Put(PutRequest {
                    key: marker.clone(),
                    ..Default::default()
                }),
                RequestOp::Put(PutRequest {
                    key: key.clone(),
                    value: value.clone(),
                    lease,
                    ..Default::default()
                }),
            ],
            failure: vec![],
        };
        let out = node.write(Command::Txn(txn)).await?;
        match out.result {
            CommandResult::Txn(t) if t.succeeded => return Ok((key, out.header)),
            CommandResult::Txn(_) => continue,
            other => unreachable!("a txn answered {other:?}"),
        }
    }
    Err(RecipeError::Contended {
        attempts: ATTEMPTS_MAX,
    })
}
