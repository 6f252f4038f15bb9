//! Waiting for keys to go: the queue discipline shared by locks and elections (etcd's
//! `waitDeletes`): wait for the newest key created before ours to be deleted, then look again,
//! until none is left; meanwhile, our own key going means we lost our place.

use bytes::Bytes;
use sextant_core::kv::{EventKind, RangeRequest, SortOrder, SortTarget};
use sextant_core::watch::{KeyRange, WatchCreateRequest, WatchId};

use super::RecipeError;
use crate::node::{Header, NodeHandle};

const WATCH_PREDECESSOR: WatchId = WatchId(1);
const WATCH_OWN: WatchId = WatchId(2);

/// Returns once no key under `prefix` has a create revision at or below `max_create_rev`,
/// with the header of the read that saw it. Fails if `own_key` is deleted meanwhile.
pub(super) async fn wait_deletes(
    node: &NodeHandle,
    prefix: &Bytes,
    max_create_rev: i64,
    own_key: &Bytes,
) -> Result<Header, RecipeError> {
    loop {
        let req = RangeRequest {
            key: prefix.clone(),
            range_end: KeyRange::prefix_end(prefix),
            limit: 1,
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Create,
            max_create_revision: max_create_rev,
            ..Default::default()
        };
        let read = node.range(req, false).await?;
        let Some(last) = read.range.kvs.first() else {
            return Ok(read.header);
        };
        wait_delete(node, &last.key, read.header.revision, own_key).await?;
    }
}

/// Waits for `key` to be deleted at or after `from_rev`; fails if `own_key` goes first.
async fn wait_delete(
    node: &NodeHandle,
    key: &Bytes,
    from_rev: i64,
    own_key: &Bytes,
) -> Result<(), RecipeError> {
    let mut stream = node.watch_stream().await?;
    stream
        .create(
            WatchCreateRequest::key(key.clone())
                .with_start_revision(from_rev)
                .with_watch_id(WATCH_PREDECESSOR),
        )
        .await?;
    stream
        .create(
            WatchCreateRequest::key(own_key.clone())
                .with_start_revision(from_rev)
                .with_watch_id(WATCH_OWN),
        )
        .await?;
    while let Some(resp) = stream.next().await {
        if resp.canceled {
            return Err(RecipeError::WatchCancelled(if resp.compact_revision > 0 {
                format!("revision {from_rev} compacted at {}", resp.compact_revision)
            } else {
                resp.cancel_reason
            }));
        }
        for e in &resp.events {
            if e.kind != EventKind::Delete {
                continue;
            }
            if resp.watch_id == WATCH_OWN {
                return Err(RecipeError::SessionExpired {
                    key: String::from_utf8_lossy(own_key).into_owned(),
                });
            }
            return Ok(());
        }
    }
    Err(RecipeError::Client(crate::node::ClientError::Stopped))
}
