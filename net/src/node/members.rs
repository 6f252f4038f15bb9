//! The node's side of cluster membership (etcd's `Cluster` service semantics): membership
//! changes decided at the leader and answered once applied, the member list clients and the
//! server read, and noticing that this member was removed.
//!
//! - **Changes** ([`MemberChange`]: add, remove, promote) are checked by the leader against its
//!   applied member registry and Raft configuration with etcd's rules and error texts
//!   ([`MemberError`]), proposed as a Raft membership change (the new member's peer URLs in its
//!   [`sextant_core::MemberContext`]), and answered when the entry is applied here. A member
//!   that is not the leader answers `NotLeader`; forwarding is the gRPC layer's job.
//!   Peer-URL updates and a member's own `publish` are ordinary state-machine commands
//!   ([`sextant_core::kv::Command::MemberUpdate`], [`sextant_core::kv::Command::MemberPublish`]).
//! - **The list** ([`MembershipView`]) is published on a `watch` channel whenever the registry,
//!   the Raft configuration or the leader changes, so [`super::NodeHandle::members`] needs no
//!   round trip and the server can make the peer transport follow it. Attributes come from the
//!   applied registry; learner flags from the Raft configuration, the authority.
//! - **Removal**: applying the removal of this member marks the view `removed`; the server
//!   then stops the process.

use std::collections::BTreeMap;
use std::time::Duration;

use sextant_core::{
    ConfChange, ConfChangeError, ConfChangeKind, ConfState, Index, MemberAttrs, MemberContext,
    NodeId, Proposed, Term,
};
use thiserror::Error;
use tokio::sync::{oneshot, watch};

use super::client::{ClientError, Header};
use super::clock::Clock;
use super::event_loop::{NodeLoop, PeerSender};

/// One member, as etcd's `etcdserverpb.Member`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    /// Empty until the member has started and published it.
    pub name: String,
    pub peer_urls: Vec<String>,
    /// Empty until the member has started and published them.
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// The membership as this member sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipView {
    /// Every member, by id.
    pub members: Vec<Member>,
    /// The leader this member knows of.
    pub leader: Option<NodeId>,
    /// This member applied its own removal: it must stop serving.
    pub removed: bool,
}

impl MembershipView {
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }
}

/// A membership change, decided by the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// etcd's `MemberAdd`: `id` must be what the new member derives from its own flags.
    Add {
        id: NodeId,
        peer_urls: Vec<String>,
        is_learner: bool,
    },
    /// etcd's `MemberRemove`.
    Remove { id: NodeId },
    /// etcd's `MemberPromote`: a learner that is in sync with the leader becomes a voter.
    Promote { id: NodeId },
}

/// A membership change applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberChanged {
    pub header: Header,
    /// The member added or promoted (as it is now), or removed (as it was).
    pub member: Member,
    /// Every member after the change.
    pub members: Vec<Member>,
}

/// The member list at a point in time (etcd's `MemberListResponse`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberList {
    pub header: Header,
    pub members: Vec<Member>,
}

/// Why a membership change was refused. Texts are etcd's (without the `etcdserver: ` prefix).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum MemberError {
    #[error("member ID already exist")]
    IdExists,
    /// The id belonged to a removed member; ids are never reused (etcd answers "member not
    /// found" for its `ErrIDRemoved`).
    #[error("member ID removed")]
    IdRemoved,
    #[error("Peer URLs already exists")]
    PeerUrlExists,
    #[error("member not found")]
    NotFound,
    #[error("can only promote a learner member")]
    NotLearner,
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("too many learner members in cluster")]
    TooManyLearners,
    #[error("re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    /// Another membership change is still being applied.
    #[error("a membership change is already in progress")]
    ChangeInProgress,
    /// The change was appended but a new leader replaced it: it was not applied.
    #[error("leader changed")]
    LeaderChanged,
}

/// etcd's default `--experimental-max-learners`.
pub const LEARNERS_MAX: usize = 1;

/// A learner is in sync when it has this share of the leader's committed entries (etcd's
/// `readyPercent`).
const LEARNER_READY_PERCENT: u64 = 90;

pub(super) struct PendingChange {
    term: Term,
    member: NodeId,
    deadline_tick: u64,
    reply: oneshot::Sender<Result<MemberChanged, ClientError>>,
}

/// The loop's membership state.
pub(super) struct Membership {
    view_tx: watch::Sender<MembershipView>,
    /// Changes this leader proposed, by log index.
    pending: BTreeMap<Index, PendingChange>,
    /// What the published view was built from.
    built_conf: Option<ConfState>,
    built_leader: Option<NodeId>,
    /// The registry changed since the view was built.
    registry_dirty: bool,
    removed: bool,
}

impl Membership {
    pub(super) fn new() -> (Membership, watch::Receiver<MembershipView>) {
        let (view_tx, view_rx) = watch::channel(MembershipView::default());
        (
            Membership {
                view_tx,
                pending: BTreeMap::new(),
                built_conf: None,
                built_leader: None,
                registry_dirty: true,
                removed: false,
            },
            view_rx,
        )
    }

    /// The registry changed (an applied entry or an installed snapshot).
    pub(super) fn registry_changed(&mut self) {
        self.registry_dirty = true;
    }
}

impl<P: PeerSender, C: Clock> NodeLoop<P, C> {
    /// The member list from the applied registry and the current Raft configuration.
    pub(super) fn member_list(&self) -> Vec<Member> {
        let conf = self.raft.conf_state();
        let registry = self.kv.members().members();
        let mut ids: Vec<NodeId> = registry.keys().copied().collect();
        ids.extend(conf.members());
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|id| {
                let attrs = registry.get(&id).cloned().unwrap_or_default();
                member(id, attrs, conf.is_learner(id))
            })
            .collect()
    }

    /// Republishes the view if what it is built from changed. Called after every batch of work.
    pub(super) fn publish_membership(&mut self) {
        let m = &self.membership;
        let conf = self.raft.conf_state();
        let leader = self.raft.leader();
        if !m.registry_dirty && m.built_conf.as_ref() == Some(conf) && m.built_leader == leader {
            return;
        }
        let view = MembershipView {
            members: self.member_list(),
            leader,
            removed: m.removed,
        };
        let conf = conf.clone();
        let m = &mut self.membership;
        m.built_conf = Some(conf);
        m.built_leader = leader;
        m.registry_dirty = false;
        m.view_tx.send_if_modified(|v| {
            let changed = *v != view;
            *v = view;
            changed
        });
    }

    /// Checks a change against etcd's rules and proposes it; the answer comes when it applies.
    pub(super) fn on_member_change(
        &mut self,
        change: MemberChange,
        timeout: Duration,
        reply: oneshot::Sender<Result<MemberChanged, ClientError>>,
    ) {
        if let Some(f) = &self.failed {
            let _ = reply.send(Err(ClientError::StorageFailed(f.clone())));
            return;
        }
        if !self.raft.is_leader() {
            let _ = reply.send(Err(ClientError::NotLeader {
                leader: self.raft.leader(),
            }));
            return;
        }
        let (cc, member) = match self.check_member_change(&change) {
            Ok(v) => v,
            Err(e) => {
                let _ = reply.send(Err(ClientError::Member(e)));
                return;
            }
        };
        let r = match self.raft.propose_conf_change(cc) {
            Ok(Proposed::Appended { index, term }) => Ok((index, term)),
            Ok(Proposed::Forwarded { leader }) => Err(ClientError::NotLeader {
                leader: Some(leader),
            }),
            Err(ConfChangeError::NotLeader { leader_hint }) => Err(ClientError::NotLeader {
                leader: leader_hint,
            }),
            Err(ConfChangeError::Pending { .. }) => {
                Err(ClientError::Member(MemberError::ChangeInProgress))
            }
            Err(e) => Err(ClientError::Refused(e.to_string())),
        };
        match r {
            Ok((index, term)) => {
                let deadline_tick = self.ticks + self.ticks_for(timeout);
                self.membership.pending.insert(
                    index,
                    PendingChange {
                        term,
                        member,
                        deadline_tick,
                        reply,
                    },
                );
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// etcd's `ValidateConfigurationChange` plus its strict reconfiguration checks.
    fn check_member_change(
        &self,
        change: &MemberChange,
    ) -> Result<(ConfChange, NodeId), MemberError> {
        let conf = self.raft.conf_state();
        let registry = self.kv.members();
        let known = |id: NodeId| registry.member(id).is_some() || conf.contains(id);
        match change {
            MemberChange::Add {
                id,
                peer_urls,
                is_learner,
            } => {
                // Ids derive from peer URLs, so URLs in use are reported as such (as etcd,
                // whose ids are random, reports them).
                if registry.peer_url_owner(peer_urls, 0).is_some() {
                    return Err(MemberError::PeerUrlExists);
                }
                if registry.is_removed(*id) {
                    return Err(MemberError::IdRemoved);
                }
                if known(*id) {
                    return Err(MemberError::IdExists);
                }
                let kind = if *is_learner {
                    if conf.learners.len() >= LEARNERS_MAX {
                        return Err(MemberError::TooManyLearners);
                    }
                    ConfChangeKind::AddLearner
                } else {
                    self.check_quorum_after(conf.voters.len() + 1, None)?;
                    ConfChangeKind::AddVoter
                };
                let mut cc = ConfChange::single(kind, *id);
                cc.context = MemberContext {
                    members: vec![(
                        *id,
                        MemberAttrs {
                            name: String::new(),
                            peer_urls: peer_urls.clone(),
                            client_urls: Vec::new(),
                        },
                    )],
                }
                .encode();
                Ok((cc, *id))
            }
            MemberChange::Remove { id } => {
                if !known(*id) {
                    return Err(MemberError::NotFound);
                }
                if conf.is_voter(*id) {
                    self.check_quorum_after(conf.voters.len() - 1, Some(*id))?;
                }
                Ok((ConfChange::single(ConfChangeKind::Remove, *id), *id))
            }
            MemberChange::Promote { id } => {
                if !known(*id) {
                    return Err(MemberError::NotFound);
                }
                if !conf.is_learner(*id) {
                    return Err(MemberError::NotLearner);
                }
                let commit = self.raft.commit_index();
                let matched = self.raft.progress(*id).map_or(0, |p| p.match_index);
                if matched * 100 < commit * LEARNER_READY_PERCENT {
                    return Err(MemberError::LearnerNotReady);
                }
                Ok((ConfChange::single(ConfChangeKind::AddVoter, *id), *id))
            }
        }
    }

    /// Whether the voters that are active now (the leader, and those it heard from recently),
    /// without `leaving`, still form a quorum of a configuration of `voters_after` voters.
    fn check_quorum_after(
        &self,
        voters_after: usize,
        leaving: Option<NodeId>,
    ) -> Result<(), MemberError> {
        let me = self.raft.id();
        let active = self
            .raft
            .conf_state()
            .voters
            .iter()
            .filter(|&&id| Some(id) != leaving)
            .filter(|&&id| id == me || self.raft.progress(id).is_some_and(|p| p.recent_active))
            .count();
        if active < voters_after / 2 + 1 {
            return Err(MemberError::NotEnoughStarted);
        }
        Ok(())
    }

    /// A membership change entry was applied (to the Raft core and the registry).
    pub(super) fn member_change_applied(&mut self, index: Index, term: Term, cc: &ConfChange) {
        self.membership.registry_changed();
        let me = self.raft.id();
        let removes_me = cc
            .changes
            .iter()
            .any(|c| c.kind == ConfChangeKind::Remove && c.node == me);
        if removes_me && !self.membership.removed {
            tracing::error!(
                member = format!("{me:x}"),
                "the member has been permanently removed from the cluster"
            );
            self.membership.removed = true;
        }
        let Some(p) = self.membership.pending.remove(&index) else {
            return;
        };
        if p.term != term {
            let _ = p
                .reply
                .send(Err(ClientError::Member(MemberError::LeaderChanged)));
            return;
        }
        let members = self.member_list();
        let member = members
            .iter()
            .find(|m| m.id == p.member)
            .cloned()
            .unwrap_or_else(|| Member {
                id: p.member,
                ..Member::default()
            });
        let _ = p.reply.send(Ok(MemberChanged {
            header: self.header(self.kv.revision()),
            member,
            members,
        }));
    }

    /// Answers changes whose entry was overwritten by another leader's (applied past without
    /// being seen) or whose deadline passed.
    pub(super) fn expire_member_changes(&mut self) {
        let applied = self.kv_applied;
        let now = self.ticks;
        let done: Vec<Index> = self
            .membership
            .pending
            .iter()
            .filter(|(i, p)| **i <= applied || p.deadline_tick <= now)
            .map(|(i, _)| *i)
            .collect();
        for i in done {
            let p = self.membership.pending.remove(&i).expect("listed");
            let err = if i <= applied {
                ClientError::Member(MemberError::LeaderChanged)
            } else {
                ClientError::Timeout
            };
            let _ = p.reply.send(Err(err));
        }
    }
}

fn member(id: NodeId, attrs: MemberAttrs, is_learner: bool) -> Member {
    Member {
        id,
        name: attrs.name,
        peer_urls: attrs.peer_urls,
        client_urls: attrs.client_urls,
        is_learner,
    }
}
