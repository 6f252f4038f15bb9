//! Membership changes: the request type (`ConfChange`) and the rules for turning one
//! configuration into the next, by a simple one-voter change or by joint consensus (Raft thesis
//! §4.3; the etcd "enter joint / leave joint" form). The functions here are pure: they validate
//! a change against a `ConfState` and return the new one.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::types::{ConfState, NodeId};

/// One member change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChangeKind {
    AddVoter,
    AddLearner,
    Remove,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfChangeSingle {
    pub kind: ConfChangeKind,
    pub node: NodeId,
}

/// How a change is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfTransition {
    /// A simple change when at most one voter changes, otherwise joint consensus that the
    /// leader leaves automatically.
    Auto,
    /// Always enter a joint configuration and leave it automatically.
    JointAuto,
    /// Always enter a joint configuration; the application proposes the leave itself.
    JointExplicit,
}

/// A membership change request. An empty `changes` list means "leave the joint configuration".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfChange {
    pub changes: Vec<ConfChangeSingle>,
    pub transition: ConfTransition,
    /// Opaque application data (e.g. the new member's addresses).
    pub context: Bytes,
}

impl ConfChange {
    /// A change of one member, carried out as a simple change.
    pub fn single(kind: ConfChangeKind, node: NodeId) -> Self {
        ConfChange {
            changes: vec![ConfChangeSingle { kind, node }],
            transition: ConfTransition::Auto,
            context: Bytes::new(),
        }
    }

    /// Adds every one of `voters` at once (how a configuration is bootstrapped), carrying
    /// `context`.
    pub fn add_voters(voters: &[NodeId], context: Bytes) -> Self {
        ConfChange {
            changes: voters
                .iter()
                .map(|&node| ConfChangeSingle {
                    kind: ConfChangeKind::AddVoter,
                    node,
                })
                .collect(),
            transition: ConfTransition::Auto,
            context,
        }
    }

    /// The request that leaves a joint configuration.
    pub fn leave_joint() -> Self {
        ConfChange {
            changes: Vec::new(),
            transition: ConfTransition::Auto,
            context: Bytes::new(),
        }
    }

    pub fn is_leave_joint(&self) -> bool {
        self.changes.is_empty()
    }

    /// Bytes this change counts for.
    pub fn size_bytes(&self) -> usize {
        self.changes.len() * 16 + self.context.len()
    }

    fn uses_joint(&self, current: &ConfState) -> bool {
        match self.transition {
            ConfTransition::JointAuto | ConfTransition::JointExplicit => true,
            ConfTransition::Auto => {
                // Bootstrapping an empty configuration may add any number of voters at once.
                if is_bootstrap(current) {
                    return false;
                }
                let mut after = current.voters.clone();
                apply_to_sets(&mut after, &mut Default::default(), &self.changes);
                after.symmetric_difference(&current.voters).count() > 1
            }
        }
    }
}

/// Why a membership change cannot be applied to the current configuration.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfChangeRuleError {
    #[error("already in a joint configuration; leave it first")]
    AlreadyJoint,
    #[error("not in a joint configuration, nothing to leave")]
    NotJoint,
    #[error("the change would leave no voters")]
    NoVoters,
    #[error("node id 0 is not a valid member id")]
    ZeroId,
    #[error("node {0} is named more than once in one change")]
    Duplicate(NodeId),
    #[error("a simple change may change at most one voter; use joint consensus")]
    TooManyVoterChanges,
}

/// The empty configuration a new cluster starts from.
fn is_bootstrap(conf: &ConfState) -> bool {
    conf.voters.is_empty() && !conf.is_joint()
}

fn apply_to_sets(
    voters: &mut std::collections::BTreeSet<NodeId>,
    learners: &mut std::collections::BTreeSet<NodeId>,
    changes: &[ConfChangeSingle],
) {
    for c in changes {
        match c.kind {
            ConfChangeKind::AddVoter => {
                learners.remove(&c.node);
                voters.insert(c.node);
            }
            ConfChangeKind::AddLearner => {
                voters.remove(&c.node);
                learners.insert(c.node);
            }
            ConfChangeKind::Remove => {
                voters.remove(&c.node);
                learners.remove(&c.node);
            }
        }
    }
}

/// Computes the configuration that results from applying `cc` to `current`.
pub fn apply_conf_change(
    current: &ConfState,
    cc: &ConfChange,
) -> Result<ConfState, ConfChangeRuleError> {
    if cc.is_leave_joint() {
        if !current.is_joint() {
            return Err(ConfChangeRuleError::NotJoint);
        }
        let mut next = current.clone();
        let moved: Vec<NodeId> = next.learners_next.iter().copied().collect();
        next.learners.extend(moved);
        next.learners_next.clear();
        next.voters_outgoing.clear();
        next.auto_leave = false;
        return Ok(next);
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &cc.changes {
        if c.node == 0 {
            return Err(ConfChangeRuleError::ZeroId);
        }
        if !seen.insert(c.node) {
            return Err(ConfChangeRuleError::Duplicate(c.node));
        }
    }
    if current.is_joint() {
        return Err(ConfChangeRuleError::AlreadyJoint);
    }
    let joint = cc.uses_joint(current);
    let mut next = current.clone();
    if joint {
        next.voters_outgoing = current.voters.clone();
        next.auto_leave = cc.transition != ConfTransition::JointExplicit;
    }
    for c in &cc.changes {
        match c.kind {
            ConfChangeKind::AddVoter => {
                next.learners.remove(&c.node);
                next.learners_next.remove(&c.node);
                next.voters.insert(c.node);
            }
            ConfChangeKind::AddLearner => {
                next.voters.remove(&c.node);
                next.learners.remove(&c.node);
                next.learners_next.remove(&c.node);
                // A node cannot be a learner and an (outgoing) voter at once: it becomes a
                // learner when the joint configuration is left.
                if next.voters_outgoing.contains(&c.node) {
                    next.learners_next.insert(c.node);
                } else {
                    next.learners.insert(c.node);
                }
            }
            ConfChangeKind::Remove => {
                next.voters.remove(&c.node);
                next.learners.remove(&c.node);
                next.learners_next.remove(&c.node);
            }
        }
    }
    if next.voters.is_empty() {
        return Err(ConfChangeRuleError::NoVoters);
    }
    if !joint && !is_bootstrap(current) {
        let changed = next.voters.symmetric_difference(&current.voters).count();
        if changed > 1 {
            return Err(ConfChangeRuleError::TooManyVoterChanges);
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(voters: &[NodeId]) -> ConfState {
        ConfState::with_voters(voters.iter().copied())
    }

    /// Thesis §4.3: changing more than one voter needs joint consensus.
    #[test]
    fn thesis_4_3_simple_change_limits_one_voter() {
        let cc = ConfChange {
            changes: vec![
                ConfChangeSingle {
                    kind: ConfChangeKind::AddVoter,
                    node: 4,
                },
                ConfChangeSingle {
                    kind: ConfChangeKind::AddVoter,
                    node: 5,
                },
            ],
            transition: ConfTransition::Auto,
            context: Bytes::new(),
        };
        // Auto picks joint consensus for two voter changes.
        let next = apply_conf_change(&cs(&[1, 2, 3]), &cc).unwrap();
        assert!(next.is_joint());
        assert_eq!(next.voters_outgoing, cs(&[1, 2, 3]).voters);
        assert_eq!(next.voters, cs(&[1, 2, 3, 4, 5]).voters);
        assert!(next.auto_leave);
        let left = apply_conf_change(&next, &ConfChange::leave_joint()).unwrap();
        assert!(!left.is_joint());
        assert_eq!(left.voters, cs(&[1, 2, 3, 4, 5]).voters);
    }

    #[test]
    fn demoting_a_voter_in_joint_goes_through_learners_next() {
        let cc = ConfChange {
            changes: vec![ConfChangeSingle {
                kind: ConfChangeKind::AddLearner,
                node: 3,
            }],
            transition: ConfTransition::JointExplicit,
            context: Bytes::new(),
        };
        let next = apply_conf_change(&cs(&[1, 2, 3]), &cc).unwrap();
        assert!(next.learners_next.contains(&3));
        assert!(next.is_voter(3));
        assert!(!next.auto_leave);
        let left = apply_conf_change(&next, &ConfChange::leave_joint()).unwrap();
        assert!(left.learners.contains(&3));
        assert!(!left.is_voter(3));
    }

    #[test]
    fn rejects_bad_changes() {
        let rm = |n| ConfChange::single(ConfChangeKind::Remove, n);
        assert_eq!(
            apply_conf_change(&cs(&[1]), &rm(1)),
            Err(ConfChangeRuleError::NoVoters)
        );
        assert_eq!(
            apply_conf_change(&cs(&[1]), &ConfChange::leave_joint()),
            Err(ConfChangeRuleError::NotJoint)
        );
        assert_eq!(
            apply_conf_change(&cs(&[1]), &ConfChange::single(ConfChangeKind::AddVoter, 0)),
            Err(ConfChangeRuleError::ZeroId)
        );
        let forced = ConfChange {
            transition: ConfTransition::JointAuto,
            ..rm(2)
        };
        let joint = apply_conf_change(&cs(&[1, 2]), &forced).unwrap();
        assert_eq!(
            apply_conf_change(&joint, &rm(1)),
            Err(ConfChangeRuleError::AlreadyJoint)
        );
    }

    #[test]
    fn bootstrap_adds_many_voters_at_once() {
        let cc = ConfChange {
            changes: (1..=3)
                .map(|n| ConfChangeSingle {
                    kind: ConfChangeKind::AddVoter,
                    node: n,
                })
                .collect(),
            transition: ConfTransition::Auto,
            context: Bytes::new(),
        };
        let next = apply_conf_change(&ConfState::default(), &cc).unwrap();
        assert!(!next.is_joint());
        assert_eq!(next.voters.len(), 3);
    }
}
