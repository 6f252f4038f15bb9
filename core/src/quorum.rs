//! Quorum arithmetic for majority and joint configurations: the index a quorum has reached and
//! the outcome of a vote. An empty half of a joint configuration never constrains anything.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::{ConfState, NodeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    Won,
    Lost,
    Pending,
}

/// The largest value that a majority of `voters` has reached (`u64::MAX` for no voters).
pub fn majority_value(voters: &BTreeSet<NodeId>, value: impl Fn(NodeId) -> u64) -> u64 {
    if voters.is_empty() {
        return u64::MAX;
    }
    let mut vals: Vec<u64> = voters.iter().map(|&id| value(id)).collect();
    vals.sort_unstable_by(|a, b| b.cmp(a));
    vals[voters.len() / 2]
}

/// The largest value reached by a quorum of every half of `conf`.
pub fn joint_value(conf: &ConfState, value: impl Fn(NodeId) -> u64) -> u64 {
    let a = majority_value(&conf.voters, &value);
    let b = majority_value(&conf.voters_outgoing, &value);
    a.min(b)
}

fn majority_vote(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let (mut yes, mut missing) = (0, 0);
    for id in voters {
        match votes.get(id) {
            Some(true) => yes += 1,
            Some(false) => {}
            None => missing += 1,
        }
    }
    let q = voters.len() / 2 + 1;
    if yes >= q {
        VoteResult::Won
    } else if yes + missing >= q {
        VoteResult::Pending
    } else {
        VoteResult::Lost
    }
}

/// The outcome of an election under `conf`: both halves must be won.
pub fn joint_vote(conf: &ConfState, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let a = majority_vote(&conf.voters, votes);
    let b = majority_vote(&conf.voters_outgoing, votes);
    match (a, b) {
        (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
        (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
        _ => VoteResult::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    /// §5.3/§5.4: an entry is committed once a majority stores it.
    #[test]
    fn raft_5_3_majority_index() {
        let m = [0u64, 5, 3, 9, 7, 1];
        assert_eq!(majority_value(&set(&[1, 2, 3]), |id| m[id as usize]), 5);
        assert_eq!(majority_value(&set(&[1, 2, 3, 4]), |id| m[id as usize]), 5);
        assert_eq!(
            majority_value(&set(&[1, 2, 3, 4, 5]), |id| m[id as usize]),
            5
        );
        assert_eq!(majority_value(&set(&[2]), |id| m[id as usize]), 3);
    }

    /// Thesis §4.3: in a joint configuration decisions need both majorities.
    #[test]
    fn thesis_4_3_joint_needs_both_halves() {
        let conf = ConfState {
            voters: set(&[1, 2, 3]),
            voters_outgoing: set(&[3, 4, 5]),
            ..ConfState::default()
        };
        let m = [0u64, 9, 9, 1, 1, 1];
        assert_eq!(joint_value(&conf, |id| m[id as usize]), 1);
        let mut votes = BTreeMap::new();
        votes.insert(1, true);
        votes.insert(2, true);
        assert_eq!(joint_vote(&conf, &votes), VoteResult::Pending);
        votes.insert(4, false);
        votes.insert(5, false);
        assert_eq!(joint_vote(&conf, &votes), VoteResult::Lost);
        votes.insert(4, true);
        votes.insert(3, true);
        assert_eq!(joint_vote(&conf, &votes), VoteResult::Won);
    }
}
