//! Cluster-wide safety checks run after every step (Raft paper Figure 3): election safety,
//! log matching, leader completeness, state machine safety, plus "committed entries never
//! change" and "applied <= committed".

use std::collections::BTreeMap;

use sextant_core::{Entry, Index, NodeId, Term};

use super::Cluster;

#[derive(Default)]
pub struct Checker {
    /// term -> the node that led it.
    leaders: BTreeMap<Term, NodeId>,
    /// Every entry ever known committed somewhere: index -> (entry, term in which it was
    /// first seen committed). That term is at least the term it was committed in (the node
    /// that reported it learned the commit in its current term or earlier), so checking
    /// leaders of later terms only is sound.
    committed: BTreeMap<Index, (Entry, Term)>,
    /// Every entry ever applied somewhere: index -> entry.
    applied: BTreeMap<Index, Entry>,
    pub checks: u64,
}

impl Checker {
    pub fn check(&mut self, c: &Cluster) {
        self.checks += 1;
        for (&id, node) in &c.nodes {
            let r = &node.raft;
            // Election safety (§5.2): at most one leader per term.
            if r.is_leader() {
                let prev = *self.leaders.entry(r.term()).or_insert(id);
                assert_eq!(
                    prev,
                    id,
                    "two leaders in term {}: {prev} and {id}",
                    r.term()
                );
                // Leader completeness (§5.4): a leader holds every entry committed in an
                // earlier term.
                for (i, (e, _)) in self
                    .committed
                    .range(r.first_index()..)
                    .filter(|(_, (_, t))| *t < r.term())
                {
                    assert_eq!(
                        r.term_at(*i),
                        Some(e.term),
                        "leader {id} (term {}) lacks committed entry {i}",
                        r.term()
                    );
                }
            }
            assert!(
                r.applied_index() <= r.commit_index(),
                "node {id}: applied > committed"
            );
            // Committed entries never change (§5.4, Figure 3).
            let lo = r.first_index();
            for i in lo..=r.commit_index() {
                let Some(e) = r.entry(i) else { continue };
                match self.committed.get(&i) {
                    Some((prev, _)) => {
                        assert_eq!(prev, e, "committed entry {i} changed at node {id}")
                    }
                    None => {
                        self.committed.insert(i, (e.clone(), r.term()));
                    }
                }
            }
            // State machine safety (§5.4.3): no two nodes apply different entries at an index.
            for e in &node.applied_log {
                match self.applied.get(&e.index) {
                    Some(prev) => assert_eq!(
                        prev, e,
                        "node {id} applied a different entry at {}",
                        e.index
                    ),
                    None => {
                        self.applied.insert(e.index, e.clone());
                    }
                }
            }
        }
        // Log matching (§5.3): if two logs hold an entry with the same index and term, the
        // logs are identical up to it.
        let ids: Vec<NodeId> = c.nodes.keys().copied().collect();
        for (k, &a) in ids.iter().enumerate() {
            for &b in &ids[k + 1..] {
                let (ra, rb) = (&c.nodes[&a].raft, &c.nodes[&b].raft);
                let lo = ra.first_index().max(rb.first_index());
                let hi = ra.last_index().min(rb.last_index());
                let mut i = hi;
                while i >= lo && i > 0 {
                    if ra.term_at(i) == rb.term_at(i) {
                        for j in lo..=i {
                            assert_eq!(
                                ra.entry(j),
                                rb.entry(j),
                                "logs of {a} and {b} differ at {j} below matching {i}"
                            );
                        }
                        break;
                    }
                    i -= 1;
                }
            }
        }
    }

    /// How many terms had a leader.
    pub fn leaders_seen(&self) -> usize {
        self.leaders.len()
    }

    /// The highest index ever seen committed anywhere.
    pub fn max_committed(&self) -> Index {
        self.committed.keys().next_back().copied().unwrap_or(0)
    }

    /// How many distinct indices were applied somewhere.
    pub fn entries_applied(&self) -> usize {
        self.applied.len()
    }
}
