//! Distributed locks with fencing tokens (etcd v3lock `Lock` / `Unlock`).

use bytes::Bytes;
use sextant_core::kv::{
    Command, CommandResult, Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest,
    RangeRequest, RequestOp, ResponseOp, TxnRequest,
};

use super::wait::wait_deletes;
use super::{contender_key, prefix, RecipeError};
use crate::node::{Header, NodeHandle};

/// A held lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locked {
    pub header: Header,
    /// The key that represents ownership; pass it to [`unlock`]. It disappears when the lease
    /// does, which releases the lock.
    pub key: Bytes,
    /// The key's create revision: the fencing token, larger for every later holder.
    pub fencing_token: i64,
}

/// Deletes a contender's key when its waiting is abandoned (the future dropped).
struct Abandon {
    node: NodeHandle,
    key: Option<Bytes>,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let node = self.node.clone();
            tokio::spawn(async move {
                let _ = unlock(&node, key).await;
            });
        }
    }
}

/// Creates our key under `name` (or finds it, if this lease already contends), returning the
/// key's create revision and the header.
pub(super) async fn enqueue(
    node: &NodeHandle,
    name: &[u8],
    lease: i64,
    value: Bytes,
) -> Result<(Bytes, i64, Option<Bytes>, Header), RecipeError> {
    let key = contender_key(name, lease);
    let txn = TxnRequest {
        compare: vec![Compare {
            key: key.clone(),
            range_end: Bytes::new(),
            target: CompareTarget::Create(0),
            result: CompareResult::Equal,
        }],
        success: vec![RequestOp::Put(PutRequest {
            key: key.clone(),
            value,
            lease,
            ..Default::default()
        })],
        failure: vec![RequestOp::Range(RangeRequest {
            key: key.clone(),
            ..Default::default()
        })],
    };
    let out = node.write(Command::Txn(txn)).await?;
    let CommandResult::Txn(t) = out.result else {
        unreachable!("a txn answered {:?}", out.result)
    };
    if t.succeeded {
        return Ok((key, out.header.revision, None, out.header));
    }
    match t.responses.first() {
        Some(ResponseOp::Range(r)) if !r.kvs.is_empty() => Ok((
            key,
            r.kvs[0].create_revision,
            Some(r.kvs[0].value.clone()),
            out.header,
        )),
        // Created and deleted between the compare and now cannot happen inside one txn; an
        // empty answer would be a state machine bug.
        other => unreachable!("txn failure branch answered {other:?}"),
    }
}

/// Acquires the lock `name` for `lease`, waiting behind earlier contenders. The lease must
/// exist; the lock is released by [`unlock`] or when the lease ends.
pub async fn lock(node: &NodeHandle, name: &[u8], lease: i64) -> Result<Locked, RecipeError> {
    let (key, my_rev, _, _) = enqueue(node, name, lease, Bytes::new()).await?;
    let mut abandon = Abandon {
        node: node.clone(),
        key: Some(key.clone()),
    };
    let header = match wait_deletes(node, &prefix(name), my_rev - 1, &key).await {
        Ok(h) => h,
        Err(RecipeError::SessionExpired { key }) => {
            abandon.key = None;
            return Err(RecipeError::SessionExpired { key });
        }
        Err(e) => return Err(e),
    };
    abandon.key = None;
    Ok(Locked {
        header,
        key,
        fencing_token: my_rev,
    })
}

/// Releases a lock by deleting its key (etcd's `Unlock`; deleting a key that is already gone
/// succeeds).
pub async fn unlock(node: &NodeHandle, key: Bytes) -> Result<Header, RecipeError> {
    let out = node
        .write(Command::DeleteRange(DeleteRangeRequest {
            key,
            range_end: Bytes::new(),
            prev_kv: false,
        }))
        .await?;
    Ok(out.header)
}
