//! Leader election (etcd v3election `Campaign`, `Proclaim`, `Leader`, `Observe`, `Resign`).

use bytes::Bytes;
use sextant_core::kv::{
    Command, CommandResult, Compare, CompareResult, CompareTarget, DeleteRangeRequest, EventKind,
    KeyValue, PutRequest, RangeRequest, RequestOp, SortOrder, SortTarget, TxnRequest,
};
use sextant_core::watch::{KeyRange, WatchCreateRequest};
use tokio::sync::mpsc;

use super::lock::enqueue;
use super::wait::wait_deletes;
use super::{prefix, RecipeError};
use crate::node::{Header, NodeHandle};

/// Proof of leadership (etcd's `LeaderKey`): the election, our key, its create revision and
/// the lease it lives on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderKey {
    pub name: Bytes,
    pub key: Bytes,
    pub rev: i64,
    pub lease: i64,
}

/// Campaigns in election `name` with `value`, waiting until elected. A contender already in
/// the queue with this lease keeps its place (and proclaims `value` if it differs).
pub async fn campaign(
    node: &NodeHandle,
    name: &[u8],
    lease: i64,
    value: Bytes,
) -> Result<(Header, LeaderKey), RecipeError> {
    let (key, rev, existing, _) = enqueue(node, name, lease, value.clone()).await?;
    let me = LeaderKey {
        name: Bytes::copy_from_slice(name),
        key: key.clone(),
        rev,
        lease,
    };
    let give_up = |node: NodeHandle, me: LeaderKey| {
        tokio::spawn(async move {
            let _ = resign(&node, &me).await;
        });
    };
    if existing.is_some_and(|v| v != value) {
        if let Err(e) = proclaim(node, &me, value).await {
            give_up(node.clone(), me);
            return Err(e);
        }
    }
    struct Abandon(Option<(NodeHandle, LeaderKey)>);
    impl Drop for Abandon {
        fn drop(&mut self) {
            if let Some((node, me)) = self.0.take() {
                tokio::spawn(async move {
                    let _ = resign(&node, &me).await;
                });
            }
        }
    }
    let mut abandon = Abandon(Some((node.clone(), me.clone())));
    let result = wait_deletes(node, &prefix(name), rev - 1, &key).await;
    if matches!(result, Err(RecipeError::SessionExpired { .. })) {
        abandon.0 = None;
    }
    let header = result?;
    abandon.0 = None;
    Ok((header, me))
}

/// Replaces the leader's value without giving up leadership; `NotLeader` if `leader` no longer
/// holds its key.
pub async fn proclaim(
    node: &NodeHandle,
    leader: &LeaderKey,
    value: Bytes,
) -> Result<Header, RecipeError> {
    let txn = TxnRequest {
        compare: vec![still_mine(leader)],
        success: vec![RequestOp::Put(PutRequest {
            key: leader.key.clone(),
            value,
            lease: leader.lease,
            ..Default::default()
        })],
        failure: vec![],
    };
    let out = node.write(Command::Txn(txn)).await?;
    match out.result {
        CommandResult::Txn(t) if t.succeeded => Ok(out.header),
        CommandResult::Txn(_) => Err(RecipeError::NotLeader),
        other => unreachable!("a txn answered {other:?}"),
    }
}

/// Gives up leadership (or a place in the queue). Resigning a key that is already gone
/// succeeds, as in etcd.
pub async fn resign(node: &NodeHandle, leader: &LeaderKey) -> Result<Header, RecipeError> {
    let txn = TxnRequest {
        compare: vec![still_mine(leader)],
        success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
            key: leader.key.clone(),
            range_end: Bytes::new(),
            prev_kv: false,
        })],
        failure: vec![],
    };
    Ok(node.write(Command::Txn(txn)).await?.header)
}

/// The current leader's key-value, read linearizably; `NoLeader` if nobody campaigns.
pub async fn leader(node: &NodeHandle, name: &[u8]) -> Result<(Header, KeyValue), RecipeError> {
    let read = node.range(first_created(name), false).await?;
    match read.range.kvs.into_iter().next() {
        Some(kv) => Ok((read.header, kv)),
        None => Err(RecipeError::NoLeader),
    }
}

/// Streams the leader of `name`: the current one first, then every change of leader or of
/// its value, until the receiver is dropped. Ends with an error item if the node fails.
pub fn observe(
    node: NodeHandle,
    name: Bytes,
    queue_max: usize,
) -> mpsc::Receiver<Result<KeyValue, RecipeError>> {
    let (tx, rx) = mpsc::channel(queue_max.max(1));
    tokio::spawn(async move {
        if let Err(e) = observe_into(&node, &name, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}

async fn observe_into(
    node: &NodeHandle,
    name: &[u8],
    tx: &mpsc::Sender<Result<KeyValue, RecipeError>>,
) -> Result<(), RecipeError> {
    let pfx = prefix(name);
    let stopped = || RecipeError::Client(crate::node::ClientError::Stopped);
    loop {
        let read = node.range(first_created(name), false).await?;
        let mut stream = node.watch_stream().await?;
        let Some(leader) = read.range.kvs.into_iter().next() else {
            // Nobody campaigns: wait for the first put under the prefix, then read again
            // (the first-created key settles who leads).
            stream
                .create(
                    WatchCreateRequest::prefix(pfx.clone())
                        .with_start_revision(read.header.revision + 1),
                )
                .await?;
            loop {
                let resp = stream.next().await.ok_or_else(stopped)?;
                if resp.canceled {
                    return Err(RecipeError::WatchCancelled(resp.cancel_reason));
                }
                if resp.events.iter().any(|e| e.kind == EventKind::Put) {
                    break;
                }
            }
            continue;
        };
        let key = leader.key.clone();
        if tx.send(Ok(leader)).await.is_err() {
            return Ok(());
        }
        stream
            .create(WatchCreateRequest::key(key).with_start_revision(read.header.revision + 1))
            .await?;
        'follow: loop {
            let resp = stream.next().await.ok_or_else(stopped)?;
            if resp.canceled {
                return Err(RecipeError::WatchCancelled(resp.cancel_reason));
            }
            for e in resp.events {
                match e.kind {
                    EventKind::Put => {
                        if tx.send(Ok(e.kv)).await.is_err() {
                            return Ok(());
                        }
                    }
                    // The leader resigned or its lease ended: find the next one.
                    EventKind::Delete => break 'follow,
                }
            }
        }
    }
}

fn still_mine(leader: &LeaderKey) -> Compare {
    Compare {
        key: leader.key.clone(),
        range_end: Bytes::new(),
        target: CompareTarget::Create(leader.rev),
        result: CompareResult::Equal,
    }
}

/// The first-created key under `name/`.
fn first_created(name: &[u8]) -> RangeRequest {
    let pfx = prefix(name);
    RangeRequest {
        range_end: KeyRange::prefix_end(&pfx),
        key: pfx,
        limit: 1,
        sort_order: SortOrder::Ascend,
        sort_target: SortTarget::Create,
        ..Default::default()
    }
}
