//! The server's side of dynamic membership:
//! - the initial members' attributes, carried in the bootstrap entry so every initial member
//!   seeds the replicated registry identically from `--initial-cluster`;
//! - a joining member (`--initial-cluster-state existing`) learns the cluster id from a peer;
//! - after start, each member publishes its name and client URLs through the log (etcd's
//!   `publish`), retrying until it is applied;
//! - the peer transport follows the registry: members added get a peer, removed ones lose it,
//!   new peer URLs re-address it;
//! - removal: the node reports applying its own removal; a member removed while it could not
//!   hear about it (the leader stops replicating to a member as soon as it appends its
//!   removal) notices when it has had no leader for a while, by asking the other members for
//!   a linearizable member list that no longer names it. Either way the server is told to
//!   stop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sextant_core::kv::KvError;
use sextant_core::{MemberAttrs, MemberContext, NodeId};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Endpoint;

use super::{urls, wait_stop, ServerConfig, StartError};
use crate::grpc::pb::etcdserverpb as pb;
use crate::node::{ClientError, MembershipView, NodeHandle};
use crate::transport::{discover_cluster_id, TcpTransport};

/// How often the membership task looks for a lost leader, and retries a publish.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// Checks without a leader before this member asks whether it was removed.
const LEADERLESS_CHECKS: u32 = 4;
/// Bound on one connection attempt or request to another member.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a joining member tries to learn the cluster id.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// The bootstrap entry's context: every initial member's name and peer URLs.
pub(super) fn bootstrap_context(cfg: &ServerConfig, members: &BTreeMap<NodeId, String>) -> Bytes {
    MemberContext {
        members: members
            .iter()
            .map(|(id, name)| {
                let attrs = MemberAttrs {
                    name: name.clone(),
                    peer_urls: cfg.initial_cluster[name].clone(),
                    client_urls: Vec::new(),
                };
                (*id, attrs)
            })
            .collect(),
    }
    .encode()
}

/// Asks the other members of `--initial-cluster` for the cluster id, until one answers.
pub(super) async fn discover(
    cfg: &ServerConfig,
    members: &BTreeMap<NodeId, String>,
    me: NodeId,
) -> Result<u64, StartError> {
    let deadline = tokio::time::Instant::now() + DISCOVER_TIMEOUT;
    let mut last_error = String::from("no other member in --initial-cluster");
    loop {
        for (id, name) in members {
            if *id == me {
                continue;
            }
            let url = &cfg.initial_cluster[name][0];
            let addr = urls::resolve(url)?;
            match discover_cluster_id(addr, me, *id, PEER_TIMEOUT).await {
                Ok(cid) => {
                    tracing::info!(cluster = cid, peer = name, "joining an existing cluster");
                    return Ok(cid);
                }
                Err(e) => last_error = format!("{name} ({url}): {e}"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StartError::Config(format!(
                "cannot learn the cluster id from any member of --initial-cluster; last: \
                 {last_error}"
            )));
        }
        tokio::time::sleep(CHECK_INTERVAL).await;
    }
}

/// Publishes this member's name and client URLs through the log, retrying until applied.
pub(super) fn spawn_publish(
    node: NodeHandle,
    name: String,
    client_urls: Vec<String>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let publish = async {
            loop {
                match node.member_publish(name.clone(), client_urls.clone()).await {
                    Ok(_) => {
                        tracing::info!(%name, ?client_urls, "published this member's attributes");
                        return;
                    }
                    Err(ClientError::Kv(KvError::Member(e))) => {
                        // Removed from the cluster: there is nothing to publish to.
                        tracing::warn!(error = %e, "cannot publish this member's attributes");
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "publish not applied yet; retrying"),
                }
                tokio::time::sleep(CHECK_INTERVAL).await;
            }
        };
        tokio::select! {
            _ = publish => {}
            _ = wait_stop(stop) => {}
        }
    })
}

/// Completes once this member's name and client URLs are in its applied registry as
/// configured (its `publish` applied, at this start or an earlier one), or once it has been
/// removed. Like etcd, which serves clients only after `publish` (its `ReadyNotify`), the
/// client listeners wait for this: a client that reaches a member must find that member
/// listed with its client URLs. Connections made meanwhile wait in the listen backlog.
pub(super) async fn wait_published(
    mut view: watch::Receiver<MembershipView>,
    me: NodeId,
    name: String,
    client_urls: Vec<String>,
) {
    let published = |v: &MembershipView| {
        v.removed
            || v.member(me)
                .is_some_and(|m| m.name == name && m.client_urls == client_urls)
    };
    // An error means the node stopped: there is nothing to wait for.
    let _ = view.wait_for(published).await;
}

/// Makes the transport follow the membership and watches for this member's removal, which it
/// reports on `removed`.
pub(super) fn spawn_follow(
    node: NodeHandle,
    transport: Arc<TcpTransport>,
    cluster_id: u64,
    stop: watch::Receiver<bool>,
    removed: watch::Sender<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let me = node.member_id();
        let mut view_rx = node.membership();
        let mut interval = tokio::time::interval(CHECK_INTERVAL);
        let mut leaderless = 0u32;
        let stopped = wait_stop(stop);
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                changed = view_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let view = view_rx.borrow_and_update().clone();
                    follow(&transport, me, &view);
                    if view.removed {
                        let _ = removed.send(true);
                        return;
                    }
                }
                _ = interval.tick() => {
                    let view = view_rx.borrow().clone();
                    leaderless = if view.leader.is_none() { leaderless + 1 } else { 0 };
                    // Only a member that knows it was added can conclude it was removed.
                    if leaderless >= LEADERLESS_CHECKS
                        && view.member(me).is_some()
                        && removed_elsewhere(&view, me, cluster_id).await
                    {
                        tracing::error!(
                            member = format!("{me:x}"),
                            "the member has been permanently removed from the cluster"
                        );
                        let _ = removed.send(true);
                        return;
                    }
                }
            }
        }
    })
}

/// Adds, re-addresses and removes transport peers to match the view.
fn follow(transport: &TcpTransport, me: NodeId, view: &MembershipView) {
    if view.members.is_empty() {
        // Nothing applied yet: keep the peers from --initial-cluster.
        return;
    }
    let current = transport.peer_addrs();
    for m in &view.members {
        if m.id == me {
            continue;
        }
        let Some(url) = m.peer_urls.first() else {
            continue;
        };
        match urls::resolve(url) {
            Ok(addr) if current.get(&m.id) != Some(&addr) => {
                if let Err(e) = transport.set_peer(m.id, addr) {
                    tracing::warn!(peer = m.id, %url, error = %e, "cannot set peer");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(peer = m.id, %url, error = %e, "cannot resolve peer URL"),
        }
    }
    for id in current.keys() {
        if view.member(*id).is_none() {
            transport.remove_peer(*id);
        }
    }
}

/// Whether another member answers a linearizable member list, of this cluster, without `me`.
async fn removed_elsewhere(view: &MembershipView, me: NodeId, cluster_id: u64) -> bool {
    for m in &view.members {
        if m.id == me {
            continue;
        }
        let Some(url) = m.client_urls.first() else {
            continue;
        };
        let Ok(endpoint) = Endpoint::from_shared(url.clone()) else {
            continue;
        };
        let ask = async {
            let channel = endpoint
                .connect_timeout(PEER_TIMEOUT)
                .connect()
                .await
                .ok()?;
            let mut client = pb::cluster_client::ClusterClient::new(channel);
            let resp = client
                .member_list(pb::MemberListRequest { linearizable: true })
                .await
                .ok()?
                .into_inner();
            let header = resp.header?;
            (header.cluster_id == cluster_id).then_some(resp.members)
        };
        let Ok(Some(members)) = tokio::time::timeout(PEER_TIMEOUT * 2, ask).await else {
            continue;
        };
        return !members.iter().any(|m| m.id == me);
    }
    false
}
