//! The replicated member registry (etcd's `membership.RaftCluster` store): for every member
//! its name, peer URLs and client URLs, plus the ids removed from the cluster (never to be
//! reused). It is part of the state machine: changed only by applied log entries, identically
//! on every replica, and carried in state-machine snapshots (see [`crate::kv::KvStore`]).
//!
//! Three kinds of entries change it:
//! - membership changes ([`ConfChange`]): an add records the member with the attributes its
//!   `context` carries ([`MemberContext`], postcard; the bootstrap entry carries every initial
//!   member, so all of them are seeded identically from `--initial-cluster`), a remove deletes
//!   it and remembers its id as removed;
//! - [`crate::kv::Command::MemberPublish`]: a member announces its name and client URLs after it
//!   starts (etcd's `publish`);
//! - [`crate::kv::Command::MemberUpdate`]: new peer URLs (etcd's `MemberUpdate`).
//!
//! Whether a member is a learner is not kept here: the Raft configuration is the authority.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::conf::{ConfChange, ConfChangeKind};
use crate::types::NodeId;

/// What the registry knows about one member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAttrs {
    /// Empty until the member publishes it (etcd shows such a member as "unstarted").
    pub name: String,
    pub peer_urls: Vec<String>,
    /// Empty until the member publishes them.
    pub client_urls: Vec<String>,
}

/// The application data of a membership change: the attributes of the members it adds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberContext {
    pub members: Vec<(NodeId, MemberAttrs)>,
}

impl MemberContext {
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_stdvec(self).expect("in-memory encoding cannot fail"))
    }

    /// `None` for a context that is not ours (empty, or written by other code).
    pub fn decode(data: &[u8]) -> Option<MemberContext> {
        if data.is_empty() {
            return None;
        }
        postcard::from_bytes(data).ok()
    }
}

/// Why a registry command was refused (the same answer on every replica).
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberError {
    /// etcd `ErrGRPCMemberNotFound`.
    #[error("member not found")]
    NotFound,
    /// etcd `ErrGRPCPeerURLExist`.
    #[error("Peer URLs already exists")]
    PeerUrlExists,
}

/// The registry. Ordered maps only, so equal registries encode to equal bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRegistry {
    members: BTreeMap<NodeId, MemberAttrs>,
    removed: BTreeSet<NodeId>,
}

impl MemberRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every member, by id.
    pub fn members(&self) -> &BTreeMap<NodeId, MemberAttrs> {
        &self.members
    }

    pub fn member(&self, id: NodeId) -> Option<&MemberAttrs> {
        self.members.get(&id)
    }

    /// Whether `id` was removed from the cluster (and so may never come back).
    pub fn is_removed(&self, id: NodeId) -> bool {
        self.removed.contains(&id)
    }

    /// The member other than `except` that uses one of `peer_urls`, if any.
    pub fn peer_url_owner(&self, peer_urls: &[String], except: NodeId) -> Option<NodeId> {
        self.members
            .iter()
            .find(|(id, m)| **id != except && m.peer_urls.iter().any(|u| peer_urls.contains(u)))
            .map(|(id, _)| *id)
    }

    /// Applies a membership change entry: adds record their members (with the attributes in
    /// the context, when it names them), removes delete them. An add of a member already
    /// present (a learner's promotion) keeps its attributes unless the context gives new ones.
    pub fn apply_conf_change(&mut self, cc: &ConfChange) {
        let mut context: BTreeMap<NodeId, MemberAttrs> = MemberContext::decode(&cc.context)
            .map(|c| c.members.into_iter().collect())
            .unwrap_or_default();
        for c in &cc.changes {
            match c.kind {
                ConfChangeKind::AddVoter | ConfChangeKind::AddLearner => {
                    let attrs = context.remove(&c.node);
                    let entry = self.members.entry(c.node).or_default();
                    if let Some(attrs) = attrs {
                        *entry = attrs;
                    }
                }
                ConfChangeKind::Remove => {
                    self.members.remove(&c.node);
                    self.removed.insert(c.node);
                }
            }
        }
    }

    /// etcd's `publish`: a member's name and client URLs. A member missing from the registry
    /// (one of a cluster bootstrapped before the registry existed) is recorded; a removed one
    /// is refused.
    pub fn publish(
        &mut self,
        id: NodeId,
        name: &str,
        client_urls: &[String],
    ) -> Result<(), MemberError> {
        if self.removed.contains(&id) {
            return Err(MemberError::NotFound);
        }
        let m = self.members.entry(id).or_default();
        m.name = name.to_owned();
        m.client_urls = client_urls.to_vec();
        Ok(())
    }

    /// etcd's `MemberUpdate`: new peer URLs, which no other member may use.
    pub fn update_peer_urls(
        &mut self,
        id: NodeId,
        peer_urls: &[String],
    ) -> Result<(), MemberError> {
        if !self.members.contains_key(&id) {
            return Err(MemberError::NotFound);
        }
        if self.peer_url_owner(peer_urls, id).is_some() {
            return Err(MemberError::PeerUrlExists);
        }
        let m = self.members.get_mut(&id).expect("checked");
        m.peer_urls = peer_urls.to_vec();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(name: &str, peer: &str) -> MemberAttrs {
        MemberAttrs {
            name: name.into(),
            peer_urls: vec![peer.into()],
            client_urls: Vec::new(),
        }
    }

    fn add(kind: ConfChangeKind, id: NodeId, a: Option<MemberAttrs>) -> ConfChange {
        let mut cc = ConfChange::single(kind, id);
        if let Some(a) = a {
            cc.context = MemberContext {
                members: vec![(id, a)],
            }
            .encode();
        }
        cc
    }

    #[test]
    fn bootstrap_context_seeds_every_member() {
        let ctx = MemberContext {
            members: vec![(1, attrs("a", "http://a:1")), (2, attrs("b", "http://b:1"))],
        };
        let cc = ConfChange::add_voters(&[1, 2], ctx.encode());
        let mut r = MemberRegistry::new();
        r.apply_conf_change(&cc);
        assert_eq!(r.member(1), Some(&attrs("a", "http://a:1")));
        assert_eq!(r.member(2), Some(&attrs("b", "http://b:1")));
    }

    #[test]
    fn add_publish_promote_update_remove() {
        let mut r = MemberRegistry::new();
        r.apply_conf_change(&add(
            ConfChangeKind::AddVoter,
            1,
            Some(attrs("a", "http://a:1")),
        ));
        r.apply_conf_change(&add(
            ConfChangeKind::AddLearner,
            2,
            Some(attrs("", "http://b:1")),
        ));
        r.publish(2, "b", &["http://b:2".into()]).unwrap();
        // The promotion carries no context: the attributes stay.
        r.apply_conf_change(&add(ConfChangeKind::AddVoter, 2, None));
        let b = r.member(2).unwrap();
        assert_eq!(b.name, "b");
        assert_eq!(b.client_urls, vec!["http://b:2".to_string()]);
        assert_eq!(
            r.update_peer_urls(2, &["http://a:1".into()]),
            Err(MemberError::PeerUrlExists)
        );
        r.update_peer_urls(2, &["http://b:9".into()]).unwrap();
        assert_eq!(
            r.member(2).unwrap().peer_urls,
            vec!["http://b:9".to_string()]
        );
        assert_eq!(r.peer_url_owner(&["http://b:9".into()], 1), Some(2));
        r.apply_conf_change(&ConfChange::single(ConfChangeKind::Remove, 2));
        assert!(r.member(2).is_none());
        assert!(r.is_removed(2));
        assert_eq!(
            r.publish(2, "b", &[]),
            Err(MemberError::NotFound),
            "a removed member cannot publish"
        );
        assert_eq!(r.update_peer_urls(7, &[]), Err(MemberError::NotFound));
        r.publish(7, "g", &[]).unwrap();
        assert_eq!(r.member(7).unwrap().name, "g");
    }

    /// The registry travels in state-machine snapshots, so a restarted or snapshot-installed
    /// member has it; and it is applied through the log like any command.
    #[test]
    fn registry_survives_a_snapshot_round_trip() {
        use crate::kv::{Command, KvError, KvStore};
        let mut kv = KvStore::new();
        kv.apply_conf_change(&add(
            ConfChangeKind::AddVoter,
            1,
            Some(attrs("a", "http://a:1")),
        ));
        kv.apply_conf_change(&add(
            ConfChangeKind::AddVoter,
            2,
            Some(attrs("b", "http://b:1")),
        ));
        kv.apply_conf_change(&ConfChange::single(ConfChangeKind::Remove, 2));
        let rev = kv.revision();
        kv.apply(&Command::MemberPublish {
            id: 1,
            name: "a".into(),
            client_urls: vec!["http://a:2".into()],
        })
        .unwrap();
        assert_eq!(kv.revision(), rev, "registry commands bump no revision");
        assert_eq!(
            kv.apply(&Command::MemberUpdate {
                id: 2,
                peer_urls: vec![]
            }),
            Err(KvError::Member(MemberError::NotFound))
        );
        let restored = KvStore::restore(&kv.snapshot()).unwrap();
        assert_eq!(restored.members(), kv.members());
        assert!(restored.members().is_removed(2));
        assert_eq!(
            restored.members().member(1).unwrap().client_urls,
            vec!["http://a:2".to_string()]
        );
        assert_eq!(restored.snapshot(), kv.snapshot());
    }

    #[test]
    fn foreign_context_is_ignored() {
        let mut cc = ConfChange::single(ConfChangeKind::AddVoter, 3);
        cc.context = Bytes::from_static(b"\xff\xff\xff");
        let mut r = MemberRegistry::new();
        r.apply_conf_change(&cc);
        assert_eq!(r.member(3), Some(&MemberAttrs::default()));
    }
}
