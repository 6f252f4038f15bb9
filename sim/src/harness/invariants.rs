//! Cluster-wide safety checks, fed by every member's node loop after each batch of work:
//! at most one leader per term (§5.2), entries with the same index and term are identical
//! (log matching, §5.3), committed entries never change (§5.4), applied <= committed, and all
//! state machines agree at every applied index (§5.4.3). Violations are collected, not
//! panicked, so a run reports them with its seed.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use sextant_core::kv::KvStore;
use sextant_core::{Entry, Index, NodeId, Raft, Term};

fn entry_hash(e: &Entry) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    e.hash_payload(&mut h);
    h.finish()
}

trait HashPayload {
    fn hash_payload<H: Hasher>(&self, h: &mut H);
}

impl HashPayload for Entry {
    fn hash_payload<H: Hasher>(&self, h: &mut H) {
        // Entries are plain data; their postcard encoding is a stable identity.
        postcard::to_stdvec(self).expect("encode entry").hash(h);
    }
}

#[derive(Default)]
pub struct Invariants {
    leaders: BTreeMap<Term, NodeId>,
    /// (index, term) -> content hash of every entry seen in any log.
    entries: BTreeMap<(Index, Term), u64>,
    /// index -> (term, hash) of every entry seen committed.
    committed: BTreeMap<Index, (Term, u64)>,
    /// applied index -> hash of the state machine after applying it.
    states: BTreeMap<Index, u64>,
    /// Per member: highest index already checked for the log and commit checks.
    checked: BTreeMap<NodeId, (Index, Index)>,
    pub observations: u64,
    pub violations: Vec<String>,
    /// Terms in which some member became leader.
    pub elections: u64,
    /// Every committed entry, described (index, term, what), for failure reports.
    pub committed_log: Vec<(Index, Term, String)>,
    /// Members that found their disk corrupt at boot and refused to start (expected only when
    /// the nemesis corrupts disks).
    pub corruptions_detected: Vec<String>,
    /// Per member, as last observed: its term, its log's first index and the term of every
    /// entry from there on.
    logs: BTreeMap<NodeId, (Term, Index, Vec<Term>)>,
    /// When (µs into the run) each term's leader took office.
    elected_at: BTreeMap<Term, u64>,
    /// When the run started (elections are timed from here).
    pub epoch: Option<tokio::time::Instant>,
}

fn describe(e: &Entry) -> String {
    match &e.payload {
        sextant_core::EntryPayload::Normal(d) => match sextant_net::node::LogCommand::decode(d) {
            Some(lc) => format!("{:?} {:?}", lc.id, lc.cmd),
            None => "undecodable".to_string(),
        },
        other => format!("{other:?}"),
    }
}

impl Invariants {
    /// Invariants whose timeline starts at the current simulated instant.
    pub fn starting_now() -> Invariants {
        Invariants {
            epoch: Some(tokio::time::Instant::now()),
            ..Default::default()
        }
    }

    /// The leader of the highest term anyone has led, and when (µs into the run) it took
    /// office.
    pub fn newest_leader(&self) -> Option<(Term, NodeId, u64)> {
        self.leaders
            .last_key_value()
            .map(|(&t, &id)| (t, id, self.elected_at.get(&t).copied().unwrap_or(0)))
    }

    fn now_micros(&self) -> u64 {
        self.epoch.map_or(0, |e| e.elapsed().as_micros() as u64)
    }

    fn record_log(&mut self, id: NodeId, raft: &Raft) {
        let first = raft.first_index();
        let terms: Vec<Term> = (first..=raft.last_index())
            .map(|i| raft.entry(i).map_or(0, |e| e.term))
            .collect();
        self.logs.insert(id, (raft.term(), first, terms));
    }

    /// A leader's match index for a follower is a prefix the follower really holds (§5.3):
    /// a follower acknowledges entries of the leader's term only after storing them, and in
    /// that term nobody else can change them. So whenever the follower is (still) in the
    /// leader's term, its log must hold the leader's entry at the match index. An answer
    /// from an earlier term counted as current breaks exactly this.
    /// Nor can a match index lie beyond the leader's own log (a leader's log only grows in
    /// its term, and a follower acknowledges no more than the leader sent it), nor be set at
    /// all for a member that has not yet been in the leader's term (it acknowledges only
    /// after taking on the term, durably).
    fn check_match_indexes(&mut self, id: NodeId, raft: &Raft) {
        let term = raft.term();
        let mut broken = Vec::new();
        for (&peer, (peer_term, _, _)) in &self.logs {
            let m = raft.progress(peer).map_or(0, |p| p.match_index);
            if peer == id || m == 0 {
                continue;
            }
            if m > raft.last_index() {
                broken.push(format!(
                    "leader {id} of term {term} counts member {peer} as holding {m}, beyond its own log's end {}",
                    raft.last_index()
                ));
            } else if *peer_term < term {
                broken.push(format!(
                    "leader {id} of term {term} counts member {peer} as holding {m}, but that member has only reached term {peer_term}"
                ));
            }
        }
        for (&peer, (peer_term, peer_first, peer_terms)) in &self.logs {
            if peer == id || *peer_term != term {
                continue;
            }
            let Some(p) = raft.progress(peer) else {
                continue;
            };
            let m = p.match_index;
            if m == 0 || m < *peer_first || m < raft.first_index() {
                continue;
            }
            let Some(mine) = raft.entry(m).map(|e| e.term) else {
                continue;
            };
            let theirs = peer_terms.get((m - peer_first) as usize).copied();
            if theirs != Some(mine) {
                broken.push(format!(
                    "leader {id} of term {term} counts member {peer} as holding {m}@{mine}, but its log has {}",
                    theirs.map_or("nothing there".to_string(), |t| format!("{m}@{t}"))
                ));
            }
        }
        for b in broken {
            self.violation(b);
        }
    }

    /// Leader Completeness (§5.4, Figure 3): a new leader's log holds every entry committed
    /// so far (those it has not compacted into its snapshot). Checked at the moment it takes
    /// office, so a lost commit is caught even if the leader falls before overwriting it.
    fn check_leader_completeness(&mut self, id: NodeId, raft: &Raft) {
        let first = raft.first_index();
        let mut missing = None;
        for (&i, &(term, h)) in self.committed.range(first..) {
            let held = raft.entry(i).map(|e| (e.term, entry_hash(e)));
            if held != Some((term, h)) {
                missing = Some((i, term, held.map(|(t, _)| t)));
                break;
            }
        }
        if let Some((i, term, held)) = missing {
            self.violation(format!(
                "leader completeness: member {id} leads term {} without committed entry {i}@{term} (its log has {})",
                raft.term(),
                held.map_or("nothing".to_string(), |t| format!("{i}@{t}"))
            ));
        }
    }

    fn violation(&mut self, what: String) {
        if self.violations.len() < 100 {
            self.violations.push(what);
        }
    }

    /// Checks one member's state.
    pub fn observe(&mut self, id: NodeId, raft: &Raft, kv: &KvStore, applied: Index) {
        self.observations += 1;
        if raft.is_leader() {
            match self.leaders.get(&raft.term()) {
                Some(&other) if other != id => self.violation(format!(
                    "two leaders in term {}: {other} and {id}",
                    raft.term()
                )),
                Some(_) => {}
                None => {
                    self.leaders.insert(raft.term(), id);
                    self.elected_at.insert(raft.term(), self.now_micros());
                    self.elections += 1;
                    self.check_leader_completeness(id, raft);
                }
            }
        }
        self.record_log(id, raft);
        if raft.is_leader() {
            self.check_match_indexes(id, raft);
        }
        if applied > raft.commit_index() {
            self.violation(format!(
                "member {id} applied {applied} beyond its commit {}",
                raft.commit_index()
            ));
        }
        // A restarted member may be behind what we checked; recheck from its log's start.
        let (mut log_from, mut commit_from) = self.checked.get(&id).copied().unwrap_or((0, 0));
        if raft.last_index() < log_from {
            log_from = 0;
        }
        if raft.commit_index() < commit_from {
            commit_from = 0;
        }
        let first = raft.first_index();
        // Log matching: the uncommitted tail may change, so check from the commit point.
        let lo = first.max(log_from.min(raft.commit_index()) + 1).max(1);
        for i in lo..=raft.last_index() {
            let Some(e) = raft.entry(i) else { continue };
            let h = entry_hash(e);
            match self.entries.get(&(i, e.term)) {
                Some(&prev) if prev != h => self.violation(format!(
                    "member {id}: entry {i}@{} differs from another log's",
                    e.term
                )),
                Some(_) => {}
                None => {
                    self.entries.insert((i, e.term), h);
                }
            }
        }
        for i in first.max(commit_from + 1)..=raft.commit_index() {
            let Some(e) = raft.entry(i) else { continue };
            let h = (e.term, entry_hash(e));
            match self.committed.get(&i) {
                Some(&prev) if prev != h => self.violation(format!(
                    "member {id}: committed entry {i} changed ({prev:?} -> {h:?})"
                )),
                Some(_) => {}
                None => {
                    self.committed.insert(i, h);
                    self.committed_log.push((i, e.term, describe(e)));
                }
            }
        }
        self.checked
            .insert(id, (raft.last_index(), raft.commit_index()));
        if applied > 0 {
            let mut hs = std::collections::hash_map::DefaultHasher::new();
            kv.snapshot().hash(&mut hs);
            let h = hs.finish();
            match self.states.get(&applied) {
                Some(&prev) if prev != h => self.violation(format!(
                    "member {id}: state machine differs from another's at index {applied}"
                )),
                Some(_) => {}
                None => {
                    self.states.insert(applied, h);
                }
            }
        }
    }
}
