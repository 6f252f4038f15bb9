//! Tests named for the section of the Raft paper ("In Search of an Understandable Consensus
//! Algorithm", extended version: `raft_<section>_…`) or of Ongaro's thesis ("Consensus:
//! Bridging Theory and Practice": `thesis_<section>_…`) whose rule they check. Each test
//! drives the core through the shared in-memory harness (or a single node by hand) and asserts
//! on concrete state: terms, roles, commit indices, the message kinds a `Ready` carries, and
//! the data the state machines applied. The cluster-wide Figure 3 checker runs on every
//! `stabilize`.

mod common;

use bytes::Bytes;
use common::{default_config, Cluster, Durable, PersistMode};
use sextant_core::{
    ConfChange, ConfChangeError, ConfChangeKind, ConfChangeSingle, ConfState, ConfTransition,
    Config, DropReason, Entry, EntryPayload, HardState, Index, Message, MessageBody, NodeId,
    ProgressKind, ProposeError, Proposed, Raft, ReadIndexError, ReadMode, ReadState, Ready,
    RestoreError, RestoreState, RoleKind, SnapshotMeta, StepError, Term, TransferError,
};

// ----- helpers -----

/// A cluster of `ids` with a config tweak, its bootstrap applied.
fn cluster_with(ids: &[NodeId], tweak: fn(&mut Config)) -> Cluster {
    let mut c = Cluster::new(ids, move |id, seed| {
        let mut cfg = default_config(id, seed);
        tweak(&mut cfg);
        cfg
    });
    c.stabilize();
    c
}

fn cluster(ids: &[NodeId]) -> Cluster {
    cluster_with(ids, |_| {})
}

/// The algorithm exactly as in the paper: no pre-vote, no check-quorum.
fn classic(cfg: &mut Config) {
    cfg.pre_vote = false;
    cfg.check_quorum = false;
}

fn elect_node(c: &mut Cluster, id: NodeId) {
    c.raft_mut(id).campaign().expect("campaign");
    c.stabilize();
    assert!(c.raft(id).is_leader(), "node {id} did not win its election");
}

/// Drains every `Ready` of `id` (carrying each out) and returns them.
fn drain(c: &mut Cluster, id: NodeId) -> Vec<Ready> {
    let mut out = Vec::new();
    while let Some(rd) = c.handle_ready(id) {
        out.push(rd);
    }
    out
}

/// Delivers every in-flight message matching `pred` (in order); the rest stay in flight.
fn deliver(c: &mut Cluster, pred: impl Fn(&Message) -> bool) -> usize {
    let mut k = 0;
    let mut n = 0;
    while k < c.network.len() {
        if pred(&c.network[k]) {
            c.deliver_at(k);
            n += 1;
        } else {
            k += 1;
        }
    }
    n
}

/// Removes and returns every in-flight message matching `pred`.
fn take(c: &mut Cluster, pred: impl Fn(&Message) -> bool) -> Vec<Message> {
    let (taken, kept): (Vec<Message>, Vec<Message>) =
        std::mem::take(&mut c.network).into_iter().partition(pred);
    c.network = kept;
    taken
}

/// Like `Cluster::stabilize`, but every message passes through `filter` first, which may
/// rewrite it or return false to drop it.
fn stabilize_filtered(c: &mut Cluster, mut filter: impl FnMut(&mut Message) -> bool) {
    for _ in 0..10_000 {
        let mut progressed = false;
        let ids: Vec<NodeId> = c.nodes.keys().copied().collect();
        for id in ids {
            while c.handle_ready(id).is_some() {
                progressed = true;
            }
        }
        for mut m in std::mem::take(&mut c.network) {
            progressed = true;
            if !filter(&mut m) || !c.nodes.contains_key(&m.to) || c.cut.contains(&(m.from, m.to)) {
                continue;
            }
            let to = m.to;
            c.raft_mut(to).step(m).expect("well-formed message");
        }
        c.check();
        if !progressed {
            return;
        }
    }
    panic!("cluster did not stabilize");
}

fn is_append_with_entries(m: &Message) -> bool {
    matches!(&m.body, MessageBody::Append { entries, .. } if !entries.is_empty())
}

fn propose(c: &mut Cluster, id: NodeId, data: &str) -> Index {
    match c
        .raft_mut(id)
        .propose(Bytes::copy_from_slice(data.as_bytes()))
        .expect("propose")
    {
        Proposed::Appended { index, .. } => index,
        other => panic!("expected the proposal appended, got {other:?}"),
    }
}

/// The application data `id`'s state machine applied, in order.
fn values(c: &Cluster, id: NodeId) -> Vec<String> {
    c.nodes[&id]
        .sm
        .data
        .iter()
        .map(|(_, d)| String::from_utf8(d.to_vec()).expect("utf8"))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn tick_stabilize(c: &mut Cluster, n: usize) {
    for _ in 0..n {
        c.tick_all();
        c.stabilize();
    }
}

fn tick_nodes(c: &mut Cluster, ids: &[NodeId], n: usize) {
    for _ in 0..n {
        for &id in ids {
            c.raft_mut(id).tick();
        }
        c.stabilize();
    }
}

fn kinds(msgs: &[Message]) -> Vec<&'static str> {
    msgs.iter().map(|m| m.body.kind()).collect()
}

fn read_states(c: &Cluster, id: NodeId) -> Vec<ReadState> {
    c.nodes[&id].read_states.clone()
}

fn bootstrap_entry(voters: &[NodeId]) -> Entry {
    Entry {
        term: 1,
        index: 1,
        payload: EntryPayload::ConfChange(ConfChange {
            changes: voters
                .iter()
                .map(|&node| ConfChangeSingle {
                    kind: ConfChangeKind::AddVoter,
                    node,
                })
                .collect(),
            transition: ConfTransition::Auto,
            context: Bytes::new(),
        }),
    }
}

/// A log: the bootstrap entry at index 1, then one entry per term in `terms`.
fn log_of(voters: &[NodeId], terms: &[Term]) -> Vec<Entry> {
    let mut log = vec![bootstrap_entry(voters)];
    for (k, &term) in terms.iter().enumerate() {
        log.push(Entry {
            term,
            index: 2 + k as u64,
            payload: EntryPayload::Normal(Bytes::from(format!("t{term}i{}", 2 + k))),
        });
    }
    log
}

/// Replaces cluster node `id` with one restarted from storage holding `log_of(voters, terms)`
/// at `term` (only the bootstrap entry committed).
fn restore_in_cluster(c: &mut Cluster, id: NodeId, voters: &[NodeId], term: Term, terms: &[Term]) {
    c.nodes.remove(&id);
    c.add_node_from_storage(
        id,
        Durable {
            hard_state: HardState {
                term,
                vote: None,
                commit: 1,
            },
            snapshot: None,
            entries: log_of(voters, terms),
        },
    );
    drain(c, id);
}

/// Runs a lone node's readies, acknowledging persistence at once; returns the messages.
fn settle(r: &mut Raft) -> Vec<Message> {
    let mut msgs = Vec::new();
    while r.has_ready() {
        let rd = r.ready();
        msgs.extend(rd.messages);
        if let Some(id) = rd.persist_id {
            r.persisted(id);
        }
    }
    msgs
}

/// A single node (driven by hand) of a cluster of `voters`, bootstrapped and settled.
fn lone(id: NodeId, voters: &[NodeId], tweak: fn(&mut Config)) -> Raft {
    let mut cfg = default_config(id, id * 1000);
    tweak(&mut cfg);
    let mut r = Raft::bootstrap(cfg, voters).expect("bootstrap");
    settle(&mut r);
    r
}

/// A single node restored with `log_of(voters, terms)` at `term`, bootstrap entry applied.
fn restored(id: NodeId, voters: &[NodeId], term: Term, terms: &[Term]) -> Raft {
    let mut cfg = default_config(id, id * 1000);
    classic(&mut cfg);
    Raft::new(
        cfg,
        RestoreState {
            hard_state: HardState {
                term,
                vote: None,
                commit: 1,
            },
            snapshot: None,
            entries: log_of(voters, terms),
            applied: 1,
        },
    )
    .expect("restore")
}

fn msg(from: NodeId, to: NodeId, term: Term, body: MessageBody) -> Message {
    Message {
        from,
        to,
        term,
        body,
    }
}

fn vote_req(from: NodeId, to: NodeId, term: Term, last_index: Index, last_term: Term) -> Message {
    msg(
        from,
        to,
        term,
        MessageBody::Vote {
            last_index,
            last_term,
            transfer: false,
        },
    )
}

fn vote_resp_rejects(msgs: &[Message], to: NodeId) -> Vec<bool> {
    msgs.iter()
        .filter(|m| m.to == to)
        .filter_map(|m| match m.body {
            MessageBody::VoteResp { reject } => Some(reject),
            _ => None,
        })
        .collect()
}

fn single(kind: ConfChangeKind, node: NodeId) -> ConfChange {
    ConfChange::single(kind, node)
}

fn conf_change(changes: &[(ConfChangeKind, NodeId)], transition: ConfTransition) -> ConfChange {
    ConfChange {
        changes: changes
            .iter()
            .map(|&(kind, node)| ConfChangeSingle { kind, node })
            .collect(),
        transition,
        context: Bytes::new(),
    }
}

fn set(ids: &[NodeId]) -> std::collections::BTreeSet<NodeId> {
    ids.iter().copied().collect()
}

// ----- §5.1 basics -----

/// §5.1: "If a candidate or leader discovers that its term is out of date, it immediately
/// reverts to follower state." A leader that sees a higher term steps down and adopts it.
#[test]
fn raft_5_1_leader_steps_down_on_higher_term() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    let t = c.raft(1).term();
    let resp = MessageBody::AppendResp {
        session: 0,
        reject: false,
        index: 0,
        hint_index: 0,
        hint_term: 0,
    };
    c.raft_mut(1).step(msg(2, 1, t + 1, resp)).unwrap();
    let r = c.raft(1);
    assert_eq!(r.role(), RoleKind::Follower);
    assert_eq!(r.term(), t + 1);
    assert_eq!(r.vote(), None);
    assert_eq!(r.leader(), None);
}

/// §5.1: "If a server receives a request with a stale term number, it rejects the request."
/// The stale append changes nothing, and the answer carries the current term so that the stale
/// leader learns it (and, with check-quorum/pre-vote, steps down).
#[test]
fn raft_5_1_stale_term_request_rejected() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    let t = c.raft(3).term();
    let last = c.raft(3).last_index();
    assert_eq!(t, 2);
    let stale = MessageBody::Append {
        session: 1,
        prev_index: 1,
        prev_term: 1,
        entries: vec![Entry {
            term: 1,
            index: 2,
            payload: EntryPayload::Normal(Bytes::from_static(b"stale")),
        }],
        commit: 2,
    };
    c.raft_mut(3).step(msg(2, 3, 1, stale)).unwrap();
    assert_eq!(c.raft(3).term(), t);
    assert_eq!(c.raft(3).last_index(), last);
    assert_eq!(c.raft(3).term_at(2), Some(2));
    let rds = drain(&mut c, 3);
    let out: Vec<&Message> = rds.iter().flat_map(|rd| &rd.messages).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, 2);
    assert_eq!(out[0].term, t);
    assert_eq!(out[0].body.kind(), "AppendResp");
}

/// §5.1 (Figure 2, receiver rules): garbage is refused with an error value and changes
/// nothing: non-contiguous or out-of-term entries, a snapshot chunk beyond the snapshot's size,
/// a message for another node, a message claiming to come from ourselves.
#[test]
fn raft_5_1_malformed_messages_refused_state_unchanged() {
    let mut r = lone(3, &[1, 2, 3], classic);
    let before = (r.hard_state(), r.last_index(), r.commit_index(), r.role());
    assert!(!r.has_ready());
    let e = |index, term| Entry {
        term,
        index,
        payload: EntryPayload::Empty,
    };
    let append = |entries| MessageBody::Append {
        session: 1,
        prev_index: 1,
        prev_term: 1,
        entries,
        commit: 3,
    };
    let cases = vec![
        // Non-contiguous entries.
        msg(1, 3, 5, append(vec![e(2, 5), e(4, 5)])),
        // An entry from a term beyond the sender's.
        msg(1, 3, 5, append(vec![e(2, 6)])),
        // Terms decreasing.
        msg(1, 3, 5, append(vec![e(2, 5), e(3, 4)])),
        // A snapshot chunk that ends beyond the snapshot.
        msg(
            1,
            3,
            5,
            MessageBody::InstallSnapshot {
                session: 1,
                meta: SnapshotMeta {
                    index: 10,
                    term: 5,
                    conf: ConfState::with_voters([1, 2, 3]),
                },
                total_bytes: 12,
                offset: 10,
                chunk: Bytes::from_static(b"12345"),
            },
        ),
    ];
    for m in cases {
        let what = format!("{:?}", m.body);
        match r.step(m) {
            Err(StepError::Malformed { from: 1, .. }) => {}
            other => panic!("expected Malformed for {what}, got {other:?}"),
        }
    }
    assert_eq!(
        r.step(msg(1, 7, 5, append(vec![e(2, 5)]))),
        Err(StepError::WrongRecipient { to: 7, me: 3 })
    );
    assert_eq!(
        r.step(msg(3, 3, 5, append(vec![e(2, 5)]))),
        Err(StepError::InvalidSender(3))
    );
    assert_eq!(
        (r.hard_state(), r.last_index(), r.commit_index(), r.role()),
        before
    );
    assert!(!r.has_ready(), "a refused message must produce no output");
}

// ----- §5.2 leader election -----

/// §5.2: "A candidate wins an election if it receives votes from a majority of the servers in
/// the full cluster for the same term." With five servers, two votes besides its own win; one
/// does not.
#[test]
fn raft_5_2_candidate_wins_with_majority() {
    let mut c = cluster_with(&[1, 2, 3, 4, 5], classic);
    c.raft_mut(1).campaign().unwrap();
    assert_eq!(c.raft(1).role(), RoleKind::Candidate);
    assert_eq!(c.raft(1).term(), 2);
    assert_eq!(c.raft(1).vote(), Some(1));
    drain(&mut c, 1);
    assert_eq!(
        c.network.iter().filter(|m| m.body.kind() == "Vote").count(),
        4
    );
    for (voter, leader_after) in [(2, false), (3, true)] {
        deliver(&mut c, |m| m.to == voter);
        drain(&mut c, voter);
        deliver(&mut c, |m| m.from == voter && m.to == 1);
        assert_eq!(c.raft(1).is_leader(), leader_after, "after vote of {voter}");
    }
    assert_eq!(c.raft(1).term(), 2);
    c.stabilize();
    assert_eq!(c.raft(4).leader(), Some(1));
}

/// §5.2: "Each server will vote for at most one candidate in a given term, on a
/// first-come-first-served basis", and the vote survives a restart (Figure 2: votedFor is
/// persistent state).
#[test]
fn raft_5_2_one_vote_per_term_survives_restart() {
    let mut c = cluster_with(&[1, 2, 3], classic);
    c.raft_mut(3)
        .step(vote_req(1, 3, 2, 1, 1))
        .expect("vote request");
    let out: Vec<Message> = drain(&mut c, 3)
        .into_iter()
        .flat_map(|rd| rd.messages)
        .collect();
    assert_eq!(vote_resp_rejects(&out, 1), vec![false]);
    assert_eq!(c.raft(3).vote(), Some(1));
    c.network.clear();

    c.crash(3);
    c.restart(3, 1);
    assert_eq!(c.raft(3).hard_state().vote, Some(1));
    c.raft_mut(3).step(vote_req(2, 3, 2, 1, 1)).unwrap();
    let out: Vec<Message> = drain(&mut c, 3)
        .into_iter()
        .flat_map(|rd| rd.messages)
        .collect();
    assert_eq!(vote_resp_rejects(&out, 2), vec![true]);
    // The same candidate asking again (a retransmission) is granted again.
    c.raft_mut(3).step(vote_req(1, 3, 2, 1, 1)).unwrap();
    let out: Vec<Message> = drain(&mut c, 3)
        .into_iter()
        .flat_map(|rd| rd.messages)
        .collect();
    assert_eq!(vote_resp_rejects(&out, 1), vec![false]);
    assert_eq!(c.raft(3).term(), 2);
}

/// §5.2: a split vote leaves a term without a leader; candidates time out and a later term
/// elects exactly one.
#[test]
fn raft_5_2_split_vote_resolved_in_later_term() {
    let mut c = cluster_with(&[1, 2, 3, 4], classic);
    c.raft_mut(1).campaign().unwrap();
    c.raft_mut(2).campaign().unwrap();
    drain(&mut c, 1);
    drain(&mut c, 2);
    deliver(&mut c, |m| {
        (m.from, m.to) == (1, 3) || (m.from, m.to) == (2, 4)
    });
    c.stabilize();
    for id in 1..=4 {
        assert_eq!(c.raft(id).term(), 2);
        assert!(!c.raft(id).is_leader(), "node {id} won a split vote");
    }
    assert_eq!(c.raft(3).vote(), Some(1));
    assert_eq!(c.raft(4).vote(), Some(2));
    let l = c.elect();
    assert!(c.raft(l).term() > 2);
    let leaders = c.nodes.values().filter(|n| n.raft.is_leader()).count();
    assert_eq!(leaders, 1);
}

/// §5.2: "Raft uses randomized election timeouts … chosen randomly from a fixed interval".
/// Timeouts fall in `[election_ticks_min, election_ticks_max)` and differ between servers.
#[test]
fn raft_5_2_election_timeouts_randomized_in_range() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..40u64 {
        let mut cfg = default_config(1, seed);
        cfg.election_ticks_min = 10;
        cfg.election_ticks_max = 20;
        let mut r = Raft::bootstrap(cfg, &[1, 2, 3]).unwrap();
        settle(&mut r);
        let d = r.next_deadline();
        assert_eq!(d.timer, sextant_core::Timer::Election);
        assert!(
            (10..20).contains(&d.ticks),
            "timeout {} out of range",
            d.ticks
        );
        // The node campaigns exactly when the deadline says.
        for _ in 0..d.ticks - 1 {
            r.tick();
        }
        assert_eq!(r.role(), RoleKind::Follower);
        r.tick();
        assert_eq!(r.role(), RoleKind::PreCandidate);
        seen.insert(d.ticks);
    }
    assert!(seen.len() >= 5, "timeouts barely vary: {seen:?}");
}

// ----- §5.3 log replication -----

/// §5.3: "A log entry is committed once the leader that created the entry has replicated it
/// on a majority of the servers"; the lagging server catches up once reachable.
#[test]
fn raft_5_3_commit_on_majority_and_lagging_follower_catches_up() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.isolate(3, &[1, 2, 3]);
    let i = propose(&mut c, 1, "a");
    c.stabilize();
    assert_eq!(c.raft(1).commit_index(), i);
    assert_eq!(values(&c, 1), strings(&["a"]));
    assert_eq!(values(&c, 2), strings(&["a"]));
    assert!(c.raft(3).last_index() < i);
    assert!(values(&c, 3).is_empty());
    c.heal();
    tick_stabilize(&mut c, 2);
    assert_eq!(values(&c, 3), strings(&["a"]));
    assert_eq!(c.raft(3).commit_index(), i);
}

/// §5.3 (AppendEntries consistency check): a follower refuses entries whose predecessor it
/// lacks, and hints where its log ends so the leader need not back up one index at a time.
#[test]
fn raft_5_3_consistency_check_rejects_and_hints() {
    let mut r = restored(3, &[1, 2, 3], 2, &[2, 2]);
    let append = MessageBody::Append {
        session: 4,
        prev_index: 9,
        prev_term: 2,
        entries: vec![],
        commit: 9,
    };
    r.step(msg(1, 3, 2, append)).unwrap();
    let out = settle(&mut r);
    assert_eq!(out.len(), 1);
    match out[0].body {
        MessageBody::AppendResp {
            session,
            reject,
            index,
            hint_index,
            hint_term,
        } => {
            assert_eq!((session, reject, index), (4, true, 9));
            assert_eq!((hint_index, hint_term), (3, 2));
        }
        ref b => panic!("expected AppendResp, got {b:?}"),
    }
    assert_eq!(r.last_index(), 3);
    assert_eq!(r.commit_index(), 1);
}

/// §5.3: "If an existing entry conflicts with a new one (same index but different terms),
/// delete the existing entry and all that follow it." A deposed leader's uncommitted entries
/// are replaced by the new leader's, and fast backtracking needs one rejection, not one per
/// entry.
#[test]
fn raft_5_3_conflicting_suffix_replaced_with_one_rejection() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    propose(&mut c, 1, "committed");
    c.stabilize();
    c.isolate(1, &[1, 2, 3]);
    let first_lost = propose(&mut c, 1, "lost-0");
    for k in 1..20 {
        propose(&mut c, 1, &format!("lost-{k}"));
    }
    c.stabilize();
    let mut new_leader = None;
    for _ in 0..100 {
        tick_nodes(&mut c, &[2, 3], 1);
        new_leader = [2, 3].into_iter().find(|&id| c.raft(id).is_leader());
        if new_leader.is_some() {
            break;
        }
    }
    let l = new_leader.expect("2 or 3 elected");
    let kept = propose(&mut c, l, "kept");
    c.stabilize();
    assert_eq!(c.raft(1).term_at(first_lost), Some(2));
    c.heal();
    let mut rejections = 0;
    for _ in 0..3 {
        tick_nodes(&mut c, &[l], 1);
        stabilize_filtered(&mut c, |m| {
            if m.from == 1 && matches!(m.body, MessageBody::AppendResp { reject: true, .. }) {
                rejections += 1;
            }
            true
        });
    }
    let lt = c.raft(l).term();
    assert_eq!(c.raft(1).term_at(first_lost), Some(lt));
    assert_eq!(c.raft(1).last_index(), kept);
    assert_eq!(values(&c, 1), strings(&["committed", "kept"]));
    assert!(
        rejections <= 1,
        "{rejections} rejections to back up 20 entries"
    );
}

/// §5.3 / §5.5: "Raft RPCs are idempotent": a duplicated AppendEntries changes nothing and is
/// acknowledged at the same index.
#[test]
fn raft_5_5_duplicate_append_is_idempotent() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    let i = propose(&mut c, 1, "x");
    drain(&mut c, 1);
    let app = take(&mut c, |m| m.to == 2 && is_append_with_entries(m));
    assert_eq!(app.len(), 1);
    c.raft_mut(2).step(app[0].clone()).unwrap();
    c.raft_mut(2).step(app[0].clone()).unwrap();
    assert_eq!(c.raft(2).last_index(), i);
    let acks: Vec<(bool, Index)> = drain(&mut c, 2)
        .into_iter()
        .flat_map(|rd| rd.messages)
        .filter_map(|m| match m.body {
            MessageBody::AppendResp { reject, index, .. } => Some((reject, index)),
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![(false, i), (false, i)]);
    c.stabilize();
    assert_eq!(values(&c, 2), strings(&["x"]));
}

// ----- §5.4 safety -----

/// §5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the
/// candidate." A candidate missing a committed entry cannot win.
#[test]
fn raft_5_4_1_vote_denied_to_stale_log() {
    let mut c = cluster_with(&[1, 2, 3], classic);
    elect_node(&mut c, 1);
    c.isolate(3, &[1, 2, 3]);
    let i = propose(&mut c, 1, "a");
    c.stabilize();
    assert_eq!(c.raft(1).commit_index(), i);
    c.heal();
    c.raft_mut(3).campaign().unwrap();
    let t = c.raft(3).term();
    let mut rejects = Vec::new();
    stabilize_filtered(&mut c, |m| {
        if let MessageBody::VoteResp { reject } = m.body {
            rejects.push((m.from, reject));
        }
        true
    });
    rejects.sort();
    assert_eq!(rejects, vec![(1, true), (2, true)]);
    assert!(!c.raft(3).is_leader());
    assert_eq!(c.raft(3).role(), RoleKind::Follower);
    assert_eq!(c.raft(1).term(), t);
    // An up-to-date server wins the next election and keeps the committed entry.
    let l = c.elect();
    assert_ne!(l, 3);
    tick_stabilize(&mut c, 2);
    assert_eq!(values(&c, 3), strings(&["a"]));
}

/// §5.4.1: up-to-date is decided by the last term first, then by length: a shorter log whose
/// last term is higher is more up-to-date.
#[test]
fn raft_5_4_1_up_to_date_compares_last_term_then_length() {
    // Voter log: [1, 2:2, 3:2, 4:2].
    let mut r = restored(3, &[1, 2, 3], 3, &[2, 2, 2]);
    r.step(vote_req(1, 3, 4, 3, 3)).unwrap();
    assert_eq!(vote_resp_rejects(&settle(&mut r), 1), vec![false]);

    let mut r = restored(3, &[1, 2, 3], 3, &[2, 2, 2]);
    r.step(vote_req(1, 3, 4, 10, 1)).unwrap();
    assert_eq!(vote_resp_rejects(&settle(&mut r), 1), vec![true]);

    let mut r = restored(3, &[1, 2, 3], 3, &[2, 2, 2]);
    r.step(vote_req(1, 3, 4, 3, 2)).unwrap();
    assert_eq!(vote_resp_rejects(&settle(&mut r), 1), vec![true]);

    let mut r = restored(3, &[1, 2, 3], 3, &[2, 2, 2]);
    r.step(vote_req(1, 3, 4, 4, 2)).unwrap();
    assert_eq!(vote_resp_rejects(&settle(&mut r), 1), vec![false]);
    assert_eq!(r.vote(), Some(1));
    assert_eq!(r.term(), 4);
}

/// Five servers in the state of Figure 8 (c) right before S1, leader of term 4, replicates:
/// S1 and S2 hold index 2 from term 2, S5 holds index 2 from term 3.
fn figure_8_cluster() -> Cluster {
    let ids = [1, 2, 3, 4, 5];
    let mut c = cluster_with(&ids, |cfg| {
        classic(cfg);
        // One entry per append, so replication can be observed entry by entry.
        cfg.append_bytes_max = 1;
    });
    restore_in_cluster(&mut c, 1, &ids, 3, &[2]);
    restore_in_cluster(&mut c, 2, &ids, 3, &[2]);
    restore_in_cluster(&mut c, 3, &ids, 3, &[]);
    restore_in_cluster(&mut c, 4, &ids, 3, &[]);
    restore_in_cluster(&mut c, 5, &ids, 3, &[3]);
    c
}

/// §5.4.2 / Figure 8: "Raft never commits log entries from previous terms by counting
/// replicas." The term-2 entry reaches a majority while S1 leads term 4, yet is not
/// committed; that is what lets S5 (whose log ends in term 3) overwrite it after S1 fails.
#[test]
fn raft_5_4_2_figure_8_old_term_entry_not_committed_by_count() {
    let mut c = figure_8_cluster();
    c.raft_mut(1).campaign().unwrap();
    // S1's no-op of term 4 never leaves it; S4 and S5 hear nothing from it.
    stabilize_filtered(&mut c, |m| {
        if m.from == 1 && (m.to == 4 || m.to == 5) && m.body.kind() != "Vote" {
            return false;
        }
        if let MessageBody::Append { entries, .. } = &mut m.body {
            entries.retain(|e| e.term < 4);
        }
        true
    });
    assert!(c.raft(1).is_leader());
    assert_eq!(c.raft(1).term(), 4);
    for id in [1, 2, 3] {
        assert_eq!(c.raft(id).term_at(2), Some(2), "node {id}");
    }
    assert_eq!(c.raft(1).progress(2).unwrap().match_index, 2);
    assert_eq!(c.raft(1).progress(3).unwrap().match_index, 2);
    assert_eq!(
        c.raft(1).commit_index(),
        1,
        "entry of term 2 committed by counting replicas"
    );
    // S1 crashes; S5 is elected with votes from S2, S3, S4 and overwrites index 2. Had S1
    // committed it, the checker would flag the committed entry changing.
    c.crash(1);
    c.raft_mut(5).campaign().unwrap();
    c.stabilize();
    assert!(c.raft(5).is_leader());
    for id in [2, 3, 4, 5] {
        assert_eq!(c.raft(id).term_at(2), Some(3), "node {id}");
    }
    assert!(c.raft(5).commit_index() >= 3);
}

/// §5.4.2 / Figure 8 (e): once an entry of the leader's own term is stored on a majority,
/// it commits, and with it every earlier entry (Log Matching).
#[test]
fn raft_5_4_2_current_term_entry_commits_earlier_entries() {
    let mut c = figure_8_cluster();
    c.raft_mut(1).campaign().unwrap();
    stabilize_filtered(&mut c, |m| !(m.from == 1 && (m.to == 4 || m.to == 5)));
    assert!(c.raft(1).is_leader());
    assert_eq!(c.raft(1).term_at(3), Some(4));
    assert_eq!(c.raft(1).commit_index(), 3);
    let applied: Vec<(Index, Term)> = c.nodes[&1]
        .applied_log
        .iter()
        .map(|e| (e.index, e.term))
        .collect();
    assert_eq!(applied, vec![(1, 1), (2, 2), (3, 4)]);
    // S5 can no longer win: a majority holds a log more up-to-date than its own.
    c.crash(1);
    c.raft_mut(5).campaign().unwrap();
    c.stabilize();
    assert!(!c.raft(5).is_leader());
}

/// §5.4.3 (Leader Completeness): a newly elected leader holds every committed entry, and
/// the committed entries survive a change of leader on every state machine.
#[test]
fn raft_5_4_3_new_leader_holds_all_committed_entries() {
    let mut c = cluster(&[1, 2, 3, 4, 5]);
    elect_node(&mut c, 1);
    c.cut.insert((1, 4));
    c.cut.insert((1, 5));
    let i = propose(&mut c, 1, "a");
    c.stabilize();
    assert_eq!(c.raft(1).commit_index(), i);
    c.crash(1);
    c.heal();
    let l = c.elect();
    assert!([2, 3].contains(&l), "leader {l} lacks a committed entry");
    assert_eq!(c.raft(l).term_at(i), Some(2));
    propose(&mut c, l, "b");
    c.stabilize();
    for id in 2..=5 {
        assert_eq!(values(&c, id), strings(&["a", "b"]), "node {id}");
    }
}

// ----- persistence (Figure 2: "updated on stable storage before responding to RPCs") -----

/// Figure 2 / §5.2: a vote is durable before anyone sees it: the candidate's vote requests
/// and the voter's grant never appear in a `Ready` before the `Ready` that persists the vote
/// has been acknowledged.
#[test]
fn raft_5_2_vote_messages_wait_for_persisted_vote() {
    let mut c = cluster_with(&[1, 2, 3], classic);
    c.persist_mode = PersistMode::Async;
    c.raft_mut(1).campaign().unwrap();
    let rds = drain(&mut c, 1);
    assert_eq!(rds.len(), 1);
    assert_eq!(
        rds[0].hard_state.map(|h| (h.term, h.vote)),
        Some((2, Some(1)))
    );
    assert!(rds[0].must_sync);
    assert!(
        rds[0].messages.is_empty(),
        "vote requests before own vote persisted"
    );
    c.flush(1, 1);
    let rds = drain(&mut c, 1);
    let sent: Vec<&'static str> = rds.iter().flat_map(|rd| kinds(&rd.messages)).collect();
    assert_eq!(sent, vec!["Vote", "Vote"]);

    deliver(&mut c, |m| m.to == 2);
    let rds = drain(&mut c, 2);
    assert_eq!(
        rds[0].hard_state.map(|h| (h.term, h.vote)),
        Some((2, Some(1)))
    );
    assert!(rds.iter().all(|rd| rd.messages.is_empty()));
    assert!(c.network.iter().all(|m| m.from != 2));
    c.flush(2, 1);
    let rds = drain(&mut c, 2);
    let resp: Vec<Message> = rds.into_iter().flat_map(|rd| rd.messages).collect();
    assert_eq!(vote_resp_rejects(&resp, 1), vec![false]);
}

/// Figure 2 / §5.3: a follower acknowledges entries only once they are durable, so the
/// leader never counts an entry a crash could still erase.
#[test]
fn raft_5_3_append_ack_waits_for_persisted_entries() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.persist_mode = PersistMode::Async;
    let i = propose(&mut c, 1, "x");
    drain(&mut c, 1);
    deliver(&mut c, |m| m.to == 2 && is_append_with_entries(m));
    let rds = drain(&mut c, 2);
    assert_eq!(rds.len(), 1);
    assert_eq!(rds[0].entries.last().map(|e| e.index), Some(i));
    assert!(
        rds[0].messages.is_empty(),
        "AppendResp before the entries are durable"
    );
    assert!(!c.raft(2).has_ready());
    c.flush(2, 1);
    let rds = drain(&mut c, 2);
    let acks: Vec<(bool, Index)> = rds
        .into_iter()
        .flat_map(|rd| rd.messages)
        .filter_map(|m| match m.body {
            MessageBody::AppendResp { reject, index, .. } => Some((reject, index)),
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![(false, i)]);
}

/// Figure 2 / §5.4: a crash that loses a server's unflushed writes does not lose an entry
/// that was committed: the leader crashes before its own write of the entry is durable, yet
/// the entry (durable on the followers that acknowledged it) is kept and applied everywhere.
#[test]
fn raft_5_4_crash_losing_unpersisted_writes_keeps_committed_entry() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.persist_mode = PersistMode::Async;
    let i = propose(&mut c, 1, "acked");
    drain(&mut c, 1);
    deliver(&mut c, |m| m.to != 1);
    for f in [2, 3] {
        drain(&mut c, f);
        c.flush(f, usize::MAX);
        drain(&mut c, f);
    }
    deliver(&mut c, |m| m.to == 1);
    assert_eq!(c.raft(1).commit_index(), i, "quorum of durable followers");
    assert!(c.raft(1).persisted_index() < i);
    assert!(!c.nodes[&1].durable.entries.iter().any(|e| e.index == i));
    c.crash(1);
    c.restart(1, 1);
    assert!(c.raft(1).last_index() < i, "the unflushed write was lost");
    c.persist_mode = PersistMode::Sync;
    for id in [2, 3] {
        c.flush(id, usize::MAX);
    }
    c.stabilize();
    let l = c.elect();
    assert_ne!(l, 1);
    tick_stabilize(&mut c, 2);
    for id in 1..=3 {
        assert_eq!(values(&c, id), strings(&["acked"]), "node {id}");
        assert_eq!(c.raft(id).term_at(i), Some(2));
    }
}

/// Thesis §10.2.1: the leader writes to its disk in parallel with replication: followers get
/// the entries before the leader's write is durable, and the leader counts itself towards a
/// commit only once it is.
#[test]
fn thesis_10_2_1_leader_appends_before_own_fsync() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.persist_mode = PersistMode::Async;
    c.isolate(3, &[1, 2, 3]);
    let i = propose(&mut c, 1, "x");
    let rds = drain(&mut c, 1);
    assert_eq!(rds[0].entries.last().map(|e| e.index), Some(i));
    assert!(
        c.network
            .iter()
            .any(|m| m.to == 2 && is_append_with_entries(m)),
        "append held back until the leader's own write is durable"
    );
    assert_eq!(c.raft(1).persisted_index(), i - 1);
    deliver(&mut c, |m| m.to == 2);
    drain(&mut c, 2);
    c.flush(2, usize::MAX);
    drain(&mut c, 2);
    deliver(&mut c, |m| m.to == 1);
    assert_eq!(c.raft(1).progress(2).unwrap().match_index, i);
    assert!(
        c.raft(1).commit_index() < i,
        "leader counted its own unpersisted entry"
    );
    c.flush(1, usize::MAX);
    assert_eq!(c.raft(1).commit_index(), i);
    drain(&mut c, 1);
    assert_eq!(values(&c, 1), strings(&["x"]));
}

/// Thesis §10.2.1: an entry may commit on a majority of followers before the leader's own
/// write completes, but the leader hands it to its state machine only once it is durable
/// locally (see `Ready`).
#[test]
fn thesis_10_2_1_leader_applies_only_after_own_fsync() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.persist_mode = PersistMode::Async;
    let i = propose(&mut c, 1, "x");
    drain(&mut c, 1);
    for f in [2, 3] {
        deliver(&mut c, |m| m.to == f);
        drain(&mut c, f);
        c.flush(f, usize::MAX);
        drain(&mut c, f);
    }
    deliver(&mut c, |m| m.to == 1);
    assert_eq!(c.raft(1).commit_index(), i);
    let rds = drain(&mut c, 1);
    assert!(rds
        .iter()
        .all(|rd| rd.committed.iter().all(|e| e.index < i)));
    assert!(values(&c, 1).is_empty());
    c.flush(1, usize::MAX);
    drain(&mut c, 1);
    assert_eq!(values(&c, 1), strings(&["x"]));
}

// ----- thesis §6.2: routing to the leader, check-quorum -----

/// Thesis §6.2: "a leader steps down if an election timeout elapses without a successful
/// round of heartbeats to a majority of its cluster"; without check-quorum it would stay.
#[test]
fn thesis_6_2_check_quorum_leader_steps_down() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    tick_stabilize(&mut c, 3);
    c.isolate(1, &[1, 2, 3]);
    let min = c.raft(1).config().election_ticks_min as usize;
    tick_nodes(&mut c, &[1], 2 * min);
    assert_eq!(c.raft(1).role(), RoleKind::Follower);
    assert_eq!(c.raft(1).leader(), None);

    let mut c = cluster_with(&[1, 2, 3], |cfg| cfg.check_quorum = false);
    elect_node(&mut c, 1);
    c.isolate(1, &[1, 2, 3]);
    tick_nodes(&mut c, &[1], 10 * min);
    assert!(c.raft(1).is_leader());
}

/// Thesis §6.2: the same holds for a leader cut off right after its election: winning votes
/// is not a heartbeat round, so it steps down after one election timeout, not two.
#[test]
fn thesis_6_2_check_quorum_new_leader_isolated_steps_down_after_one_timeout() {
    let mut c = cluster(&[1, 2, 3]);
    c.raft_mut(1).campaign().unwrap();
    // Elect 1, but no append or heartbeat of its term is ever answered.
    stabilize_filtered(&mut c, |m| {
        !matches!(
            m.body,
            MessageBody::Append { .. } | MessageBody::Heartbeat { .. }
        )
    });
    assert!(c.raft(1).is_leader());
    c.isolate(1, &[1, 2, 3]);
    let min = c.raft(1).config().election_ticks_min as usize;
    tick_nodes(&mut c, &[1], min);
    assert_eq!(c.raft(1).role(), RoleKind::Follower);
}

/// Thesis §6.2: a follower that does not forward proposals answers `NotLeader` with the
/// leader it knows, so the client can retry there; with no leader known the hint is empty.
#[test]
fn thesis_6_2_proposal_at_follower_not_leader_with_hint() {
    let mut c = cluster_with(&[1, 2, 3], |cfg| cfg.forward_proposals = false);
    assert_eq!(
        c.raft_mut(2).propose(Bytes::from_static(b"x")),
        Err(ProposeError::NotLeader { leader_hint: None })
    );
    elect_node(&mut c, 1);
    assert_eq!(
        c.raft_mut(2).propose(Bytes::from_static(b"x")),
        Err(ProposeError::NotLeader {
            leader_hint: Some(1)
        })
    );
    assert!(!c.raft(2).has_ready(), "a refused proposal sent something");
    assert_eq!(
        c.raft_mut(2)
            .propose_conf_change(single(ConfChangeKind::AddLearner, 4)),
        Err(ConfChangeError::NotLeader {
            leader_hint: Some(1)
        })
    );
}

/// Thesis §6.2 with a duplicating network: a forwarded proposal delivered twice (even much
/// later, in the same term) is appended once, so a client's write takes effect once. Found by
/// the simulator (mixed-chaos seed 113): the second copy overwrote later writes.
#[test]
fn thesis_6_2_duplicated_forwarded_proposal_applied_once() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.raft_mut(2).propose(Bytes::from_static(b"once")).unwrap();
    while c.handle_ready(2).is_some() {}
    let fwd: Vec<Message> = c
        .network
        .iter()
        .filter(|m| matches!(m.body, MessageBody::Propose { .. }))
        .cloned()
        .collect();
    assert_eq!(fwd.len(), 1);
    c.stabilize();
    // The duplicate arrives after another write to the same key space.
    propose(&mut c, 1, "later");
    c.stabilize();
    c.network.push(fwd[0].clone());
    c.stabilize();
    for id in [1, 2, 3] {
        let applied: Vec<&Bytes> = c.nodes[&id].sm.data.iter().map(|(_, d)| d).collect();
        let once = applied.iter().filter(|d| d.as_ref() == b"once").count();
        assert_eq!(once, 1, "node {id} applied {applied:?}");
        assert_eq!(applied.last().map(|d| d.as_ref()), Some(&b"later"[..]));
    }
}

/// Thesis §6.2: with forwarding on, a follower relays the proposal to the leader, which
/// appends it; it is applied everywhere.
#[test]
fn thesis_6_2_proposal_forwarded_to_leader() {
    let mut c = cluster(&[1, 2, 3]);
    assert_eq!(
        c.raft_mut(3).propose(Bytes::from_static(b"early")),
        Err(ProposeError::NotLeader { leader_hint: None })
    );
    elect_node(&mut c, 1);
    assert_eq!(
        c.raft_mut(3).propose(Bytes::from_static(b"fwd")),
        Ok(Proposed::Forwarded { leader: 1 })
    );
    let rds = drain(&mut c, 3);
    let sent: Vec<&'static str> = rds.iter().flat_map(|rd| kinds(&rd.messages)).collect();
    assert_eq!(sent, vec!["Propose"]);
    c.stabilize();
    for id in 1..=3 {
        assert_eq!(values(&c, id), strings(&["fwd"]), "node {id}");
    }
}

// ----- thesis §4.2.3 / §9.6: disruptive servers, pre-vote -----

/// Thesis §4.2.3: "if a server receives a RequestVote request within the minimum election
/// timeout of hearing from a current leader, it does not update its term or grant its vote"
/// (unless the request comes from a leadership transfer, §3.10).
#[test]
fn thesis_4_2_3_vote_ignored_within_minimum_election_timeout() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    let t = c.raft(2).term();
    let last = c.raft(2).last_index();
    let last_term = c.raft(2).last_term();
    c.raft_mut(2)
        .step(vote_req(3, 2, t + 5, last, last_term))
        .unwrap();
    assert_eq!(c.raft(2).term(), t);
    assert_eq!(c.raft(2).leader(), Some(1));
    assert!(drain(&mut c, 2).iter().all(|rd| rd.messages.is_empty()));

    let forced = MessageBody::Vote {
        last_index: last,
        last_term,
        transfer: true,
    };
    c.raft_mut(2).step(msg(3, 2, t + 5, forced)).unwrap();
    assert_eq!(c.raft(2).term(), t + 5);
    assert_eq!(c.raft(2).vote(), Some(3));
}

/// Thesis §9.6: with pre-vote, a partitioned server cannot inflate its term, so when it
/// rejoins it does not depose the leader.
#[test]
fn thesis_9_6_prevote_partitioned_node_does_not_disrupt() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    let t = c.raft(1).term();
    c.isolate(3, &[1, 2, 3]);
    tick_stabilize(&mut c, 100);
    assert_eq!(
        c.raft(3).term(),
        t,
        "pre-vote let an isolated node bump its term"
    );
    assert!(c.raft(1).is_leader());
    c.heal();
    tick_stabilize(&mut c, 5);
    assert!(c.raft(1).is_leader());
    assert_eq!(c.raft(1).term(), t);
    assert_eq!(c.raft(3).leader(), Some(1));

    // Without pre-vote the same partition deposes the leader on healing.
    let mut c = cluster_with(&[1, 2, 3], |cfg| cfg.pre_vote = false);
    elect_node(&mut c, 1);
    c.isolate(3, &[1, 2, 3]);
    tick_stabilize(&mut c, 100);
    assert!(c.raft(3).term() > t);
    c.heal();
    tick_stabilize(&mut c, 1);
    assert!(c.raft(1).term() > t);
}

/// Thesis §9.6: a pre-vote changes no one's term or vote; a granted pre-vote answers in
/// the term the candidate would campaign in, and a real campaign follows only with a
/// majority of grants.
#[test]
fn thesis_9_6_prevote_changes_no_terms() {
    let mut c = cluster(&[1, 2, 3]);
    c.raft_mut(1).campaign().unwrap();
    assert_eq!(c.raft(1).role(), RoleKind::PreCandidate);
    assert_eq!(c.raft(1).term(), 1);
    assert_eq!(c.raft(1).vote(), None);
    let rds = drain(&mut c, 1);
    let pre: Vec<&Message> = rds.iter().flat_map(|rd| &rd.messages).collect();
    assert_eq!(pre.len(), 2);
    assert!(pre
        .iter()
        .all(|m| m.body.kind() == "PreVote" && m.term == 2));
    assert!(rds.iter().all(|rd| rd.hard_state.is_none()));
    deliver(&mut c, |m| m.to == 2);
    assert_eq!(c.raft(2).term(), 1);
    assert_eq!(c.raft(2).vote(), None);
    let out: Vec<Message> = drain(&mut c, 2)
        .into_iter()
        .flat_map(|rd| rd.messages)
        .collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].term, 2);
    assert_eq!(out[0].body, MessageBody::PreVoteResp { reject: false });
    deliver(&mut c, |m| m.to == 1);
    assert_eq!(c.raft(1).role(), RoleKind::Candidate);
    assert_eq!(c.raft(1).term(), 2);
}

/// Thesis §9.6 (and etcd #8501): a leader that was partitioned away and missed an election
/// learns the new term from the answer to its first heartbeat and steps down, even when
/// check-quorum did not depose it.
#[test]
fn thesis_9_6_stale_leader_learns_term_from_rejection() {
    let mut c = cluster_with(&[1, 2, 3], |cfg| cfg.check_quorum = false);
    elect_node(&mut c, 1);
    c.isolate(1, &[1, 2, 3]);
    let mut l = None;
    for _ in 0..100 {
        tick_nodes(&mut c, &[2, 3], 1);
        l = [2, 3].into_iter().find(|&id| c.raft(id).is_leader());
        if l.is_some() {
            break;
        }
    }
    let l = l.expect("new leader");
    assert!(c.raft(1).is_leader());
    c.heal();
    // Only node 1 ticks: its heartbeat is answered with the new term.
    tick_nodes(&mut c, &[1], 1);
    assert_eq!(c.raft(1).role(), RoleKind::Follower);
    assert_eq!(c.raft(1).term(), c.raft(l).term());
}

// ----- thesis §6.4: read-only queries -----

/// Thesis §6.4 step 1: a new leader serves no read until an entry of its own term is
/// committed; the read then uses that commit index.
#[test]
fn thesis_6_4_read_index_waits_for_term_commit() {
    let mut c = cluster_with(&[1, 2, 3], classic);
    c.raft_mut(1).campaign().unwrap();
    let no_appends = |m: &mut Message| m.body.kind() != "Append";
    stabilize_filtered(&mut c, no_appends);
    assert!(c.raft(1).is_leader());
    let noop = c.raft(1).last_index();
    assert!(c.raft(1).commit_index() < noop);
    let id = c.raft_mut(1).read_index().unwrap();
    stabilize_filtered(&mut c, no_appends);
    assert!(
        read_states(&c, 1).is_empty(),
        "read served before term commit"
    );
    // A heartbeat round gets the no-op out; once it commits the read is confirmed and served.
    tick_nodes(&mut c, &[1], 1);
    assert_eq!(c.raft(1).commit_index(), noop);
    assert_eq!(
        read_states(&c, 1),
        vec![ReadState {
            id,
            result: Ok(noop)
        }]
    );
}

/// Thesis §6.4 steps 2–3: the leader confirms it is still leader with a heartbeat round
/// acknowledged by a majority before serving a read; an isolated leader cannot.
#[test]
fn thesis_6_4_read_index_confirmed_by_heartbeat_quorum() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    propose(&mut c, 1, "a");
    c.stabilize();
    let commit = c.raft(1).commit_index();
    c.isolate(1, &[1, 2, 3]);
    let id = c.raft_mut(1).read_index().unwrap();
    let rds = drain(&mut c, 1);
    let sent: Vec<&'static str> = rds.iter().flat_map(|rd| kinds(&rd.messages)).collect();
    assert_eq!(sent, vec!["Heartbeat", "Heartbeat"]);
    c.stabilize();
    assert!(read_states(&c, 1).is_empty());
    // One follower's acknowledgement completes the majority.
    c.heal();
    c.cut.insert((1, 3));
    tick_nodes(&mut c, &[1], 1);
    assert_eq!(
        read_states(&c, 1),
        vec![ReadState {
            id,
            result: Ok(commit)
        }]
    );
}

/// Thesis §6.4: a leader deposed while a read waits for confirmation never serves it (a
/// newer leader may have committed writes it does not know); the read fails as `Aborted`.
#[test]
fn thesis_6_4_deposed_leader_aborts_pending_read() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.isolate(1, &[1, 2, 3]);
    let id = c.raft_mut(1).read_index().unwrap();
    c.stabilize();
    let mut l = None;
    for _ in 0..100 {
        tick_nodes(&mut c, &[2, 3], 1);
        l = [2, 3].into_iter().find(|&id| c.raft(id).is_leader());
        if l.is_some() {
            break;
        }
    }
    let l = l.expect("new leader");
    propose(&mut c, l, "newer");
    c.stabilize();
    assert!(read_states(&c, 1).is_empty());
    c.heal();
    tick_nodes(&mut c, &[l], 1);
    assert!(!c.raft(1).is_leader());
    assert_eq!(
        read_states(&c, 1),
        vec![ReadState {
            id,
            result: Err(ReadIndexError::Aborted)
        }]
    );
}

/// Thesis §6.4: a follower serves a linearizable read by asking the leader for its read
/// index (the leader confirms its leadership first) and waiting to apply up to it.
#[test]
fn thesis_6_4_follower_read_via_leader() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    let i = propose(&mut c, 1, "a");
    c.stabilize();
    let id = c.raft_mut(2).read_index().unwrap();
    assert_eq!(id.node, 2);
    let rds = drain(&mut c, 2);
    let sent: Vec<&'static str> = rds.iter().flat_map(|rd| kinds(&rd.messages)).collect();
    assert_eq!(sent, vec!["ReadIndex"]);
    c.stabilize();
    assert_eq!(read_states(&c, 2), vec![ReadState { id, result: Ok(i) }]);
    assert!(c.nodes[&2].sm.applied_index >= i);
}

/// Thesis §6.4 (etcd #20418): read ids are unique across restarts, so a late answer to a read
/// a follower forwarded before it restarted cannot be taken for the answer to a new read.
#[test]
fn thesis_6_4_read_ids_unique_across_restart() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    let old = c.raft_mut(2).read_index().unwrap();
    let mut held = Vec::new();
    stabilize_filtered(&mut c, |m| {
        if m.body.kind() == "ReadIndexResp" {
            held.push(m.clone());
            return false;
        }
        true
    });
    assert_eq!(held.len(), 1);
    c.crash(2);
    c.restart(2, 1);
    tick_stabilize(&mut c, 1);
    assert_eq!(c.raft(2).leader(), Some(1));
    // New writes make the old answer's index stale for the new read.
    propose(&mut c, 1, "after");
    c.stabilize();
    let new = c.raft_mut(2).read_index().unwrap();
    assert_ne!(new, old);
    drain(&mut c, 2);
    let fresh = take(&mut c, |m| m.from == 2 && m.body.kind() == "ReadIndex");
    assert_eq!(fresh.len(), 1);
    c.raft_mut(2).step(held[0].clone()).unwrap();
    drain(&mut c, 2);
    assert!(
        read_states(&c, 2).is_empty(),
        "late answer for a previous incarnation's read was accepted: {:?}",
        read_states(&c, 2)
    );
    c.network.extend(fresh);
    c.stabilize();
    let commit = c.raft(1).commit_index();
    assert_eq!(
        read_states(&c, 2),
        vec![ReadState {
            id: new,
            result: Ok(commit)
        }]
    );
}

fn lease_reads(cfg: &mut Config) {
    cfg.read_mode = ReadMode::Lease { drift_ticks_max: 2 };
}

/// Asks `id` for a read index and checks that no answer came at once (no lease served it).
fn assert_read_not_served_at_once(c: &mut Cluster, id: NodeId) {
    let read = c.raft_mut(id).read_index().unwrap();
    drain(c, id);
    assert!(!read_states(c, id).iter().any(|r| r.id == read));
}

/// Thesis §6.4.1: lease reads are only sound when followers refuse votes while they hear
/// from a leader (check-quorum); the configuration is refused without it. With it, a leader
/// holding a lease serves reads at once, with no heartbeat round, until the lease (shortened
/// by the clock-drift bound) runs out.
#[test]
fn thesis_6_4_1_lease_read_only_with_check_quorum() {
    let mut cfg = Config::new(1);
    lease_reads(&mut cfg);
    cfg.check_quorum = false;
    assert!(cfg.validate().is_err());
    assert!(matches!(
        Raft::bootstrap(cfg, &[1, 2, 3]),
        Err(RestoreError::Config(_))
    ));

    let mut c = cluster_with(&[1, 2, 3], lease_reads);
    elect_node(&mut c, 1);
    assert!(!c.raft(1).lease_valid(), "lease before any heartbeat round");
    tick_stabilize(&mut c, 1);
    assert!(c.raft(1).lease_valid());
    let commit = c.raft(1).commit_index();
    let id = c.raft_mut(1).read_index().unwrap();
    let rds = drain(&mut c, 1);
    assert_eq!(
        rds[0].read_states,
        vec![ReadState {
            id,
            result: Ok(commit)
        }]
    );
    assert!(rds.iter().all(|rd| rd.messages.is_empty()));

    c.isolate(1, &[1, 2, 3]);
    let lease = (c.raft(1).config().election_ticks_min - 2) as usize;
    tick_nodes(&mut c, &[1], lease - 1);
    assert!(c.raft(1).lease_valid());
    tick_nodes(&mut c, &[1], 1);
    assert!(c.raft(1).is_leader());
    assert!(!c.raft(1).lease_valid(), "lease outlived its bound");
    assert_read_not_served_at_once(&mut c, 1);
}

/// Thesis §6.4.1: the lease is measured in real time. A leader whose process was paused
/// (its clock delivered one tick for the whole stall, and the driver reports the rest as
/// missed) holds no lease afterwards, even though few ticks were delivered.
#[test]
fn thesis_6_4_1_lease_ends_after_missed_ticks() {
    let mut c = cluster_with(&[1, 2, 3], lease_reads);
    elect_node(&mut c, 1);
    tick_stabilize(&mut c, 1);
    assert!(c.raft(1).lease_valid());
    let lease = u64::from(c.raft(1).config().election_ticks_min - 2);
    c.raft_mut(1).ticks_missed(lease - 1);
    assert!(c.raft(1).lease_valid(), "the lease has a tick left");
    c.raft_mut(1).ticks_missed(1);
    assert!(c.raft(1).is_leader(), "missed ticks fire no timers");
    assert!(!c.raft(1).lease_valid(), "the lease outlived the pause");
    assert_read_not_served_at_once(&mut c, 1);
}

/// Thesis §6.4.1 with §3.10: a leadership transfer lets the transferee bypass the followers'
/// lease check, so the old leader's lease ends once it sends `TimeoutNow`.
#[test]
fn thesis_6_4_1_lease_revoked_by_leader_transfer() {
    let mut c = cluster_with(&[1, 2, 3], lease_reads);
    elect_node(&mut c, 1);
    tick_stabilize(&mut c, 1);
    assert!(c.raft(1).lease_valid());
    c.raft_mut(1).transfer_leader(2).unwrap();
    assert!(!c.raft(1).lease_valid());
    let rds = drain(&mut c, 1);
    let sent: Vec<&'static str> = rds.iter().flat_map(|rd| kinds(&rd.messages)).collect();
    assert!(sent.contains(&"TimeoutNow"));
    let id = c.raft_mut(1).read_index().unwrap();
    let rds = drain(&mut c, 1);
    assert!(rds
        .iter()
        .all(|rd| rd.read_states.iter().all(|r| r.id != id)));
}

// ----- thesis §3.10: leadership transfer -----

/// Thesis §3.10: the leader brings the transferee up to date and sends it `TimeoutNow`; the
/// transferee wins the next term at once (bypassing pre-vote and the followers' lease), and
/// proposals are refused while the transfer is under way.
#[test]
fn thesis_3_10_leader_transfer() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    propose(&mut c, 1, "a");
    c.stabilize();
    let t = c.raft(1).term();
    c.raft_mut(1).transfer_leader(2).unwrap();
    assert_eq!(c.raft(1).transferee(), Some(2));
    assert_eq!(
        c.raft_mut(1).propose(Bytes::from_static(b"during")),
        Err(ProposeError::Dropped(DropReason::LeaderTransfer))
    );
    c.stabilize();
    assert!(c.raft(2).is_leader());
    assert_eq!(c.raft(2).term(), t + 1);
    assert_eq!(c.raft(1).role(), RoleKind::Follower);
    assert_eq!(c.raft(1).leader(), Some(2));
    propose(&mut c, 2, "b");
    c.stabilize();
    for id in 1..=3 {
        assert_eq!(values(&c, id), strings(&["a", "b"]));
    }
}

/// Thesis §3.10 step 1: a lagging transferee is first caught up; `TimeoutNow` goes out only
/// once its log matches the leader's, and the transferee then wins.
#[test]
fn thesis_3_10_transfer_catches_up_lagging_transferee_first() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.isolate(3, &[1, 2, 3]);
    propose(&mut c, 1, "a");
    propose(&mut c, 1, "b");
    c.stabilize();
    c.heal();
    let last = c.raft(1).last_index();
    assert!(c.raft(3).last_index() < last);
    c.raft_mut(1).transfer_leader(3).unwrap();
    let rds = drain(&mut c, 1);
    assert!(
        rds.iter().all(|rd| rd
            .messages
            .iter()
            .all(|m| m.body != MessageBody::TimeoutNow)),
        "TimeoutNow sent to a lagging transferee"
    );
    let mut held = Vec::new();
    for _ in 0..3 {
        stabilize_filtered(&mut c, |m| {
            if m.body == MessageBody::TimeoutNow {
                held.push(m.clone());
                return false;
            }
            true
        });
        if !held.is_empty() {
            break;
        }
        c.raft_mut(1).tick();
    }
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].to, 3);
    assert_eq!(c.raft(3).last_index(), last);
    assert_eq!(c.raft(1).progress(3).unwrap().match_index, last);
    c.network.extend(held);
    c.stabilize();
    assert!(c.raft(3).is_leader());
    assert_eq!(values(&c, 3), strings(&["a", "b"]));
}

/// Thesis §3.10: "the prior leader aborts the transfer" if it does not complete within an
/// election timeout, and then accepts proposals again.
#[test]
fn thesis_3_10_transfer_aborted_after_election_timeout() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.cut.insert((1, 2));
    c.cut.insert((2, 1));
    propose(&mut c, 1, "a");
    c.stabilize();
    c.raft_mut(1).transfer_leader(2).unwrap();
    assert_eq!(
        c.raft_mut(1).propose(Bytes::from_static(b"x")),
        Err(ProposeError::Dropped(DropReason::LeaderTransfer))
    );
    let min = c.raft(1).config().election_ticks_min as usize;
    tick_nodes(&mut c, &[1, 3], min);
    assert!(c.raft(1).is_leader());
    assert_eq!(c.raft(1).transferee(), None);
    propose(&mut c, 1, "b");
    c.stabilize();
    assert_eq!(values(&c, 3), strings(&["a", "b"]));
}

/// Thesis §3.10: transfer requests that cannot be carried out are refused with a reason.
#[test]
fn thesis_3_10_transfer_refusals() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    assert_eq!(
        c.raft_mut(2).transfer_leader(3),
        Err(TransferError::NotLeader {
            leader_hint: Some(1)
        })
    );
    assert_eq!(
        c.raft_mut(1).transfer_leader(1),
        Err(TransferError::AlreadyLeader(1))
    );
    assert_eq!(
        c.raft_mut(1).transfer_leader(9),
        Err(TransferError::NotVoter(9))
    );
    c.add_empty_node(4);
    c.raft_mut(1)
        .propose_conf_change(single(ConfChangeKind::AddLearner, 4))
        .unwrap();
    c.stabilize();
    assert!(c.raft(1).conf_state().is_learner(4));
    assert_eq!(
        c.raft_mut(1).transfer_leader(4),
        Err(TransferError::NotVoter(4))
    );
    assert_eq!(c.raft(1).transferee(), None);
}

// ----- thesis chapter 4: membership changes -----

/// Thesis §4.1: only one membership change may be pending: the next one is refused
/// (`ConfChangeError::Pending`) until the previous one is applied.
#[test]
fn thesis_4_1_one_membership_change_at_a_time() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    let first = match c
        .raft_mut(1)
        .propose_conf_change(single(ConfChangeKind::AddLearner, 4))
    {
        Ok(Proposed::Appended { index, .. }) => index,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        c.raft_mut(1)
            .propose_conf_change(single(ConfChangeKind::AddLearner, 5)),
        Err(ConfChangeError::Pending { index: first })
    );
    c.stabilize();
    assert!(c.raft(1).conf_state().learners.contains(&4));
    c.raft_mut(1)
        .propose_conf_change(single(ConfChangeKind::AddLearner, 5))
        .unwrap();
    c.stabilize();
    assert_eq!(c.raft(2).conf_state().learners, set(&[4, 5]));
}

/// Thesis §4.2.1: a new server joins as a non-voting learner: it receives the log and applies
/// it, but neither counts towards commitment nor campaigns.
#[test]
fn thesis_4_2_learner_replicates_but_neither_counts_nor_campaigns() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    propose(&mut c, 1, "a");
    c.add_empty_node(4);
    c.raft_mut(1)
        .propose_conf_change(single(ConfChangeKind::AddLearner, 4))
        .unwrap();
    c.stabilize();
    tick_stabilize(&mut c, 1);
    assert_eq!(values(&c, 4), strings(&["a"]));
    assert!(c.raft(4).conf_state().is_learner(4));
    assert!(!c.raft(4).is_promotable());

    // With both voters cut off, the learner's acknowledgement does not commit anything.
    c.cut.extend([(1, 2), (2, 1), (1, 3), (3, 1)]);
    let i = propose(&mut c, 1, "b");
    c.stabilize();
    assert_eq!(c.raft(4).last_index(), i);
    assert_eq!(c.raft(1).progress(4).unwrap().match_index, i);
    assert!(c.raft(1).commit_index() < i);

    // The learner never campaigns, however long it goes without a leader.
    c.isolate(4, &[1, 2, 3, 4]);
    let t = c.raft(4).term();
    tick_nodes(&mut c, &[4], 100);
    assert_eq!(c.raft(4).term(), t);
    assert_eq!(c.raft(4).role(), RoleKind::Follower);
    assert_eq!(
        c.raft_mut(4).campaign(),
        Err(sextant_core::CampaignError::NotPromotable)
    );
}

/// Thesis §4.2.1: once caught up, a learner is promoted to voter and counts from then on.
#[test]
fn thesis_4_2_learner_promoted_to_voter_counts() {
    let mut c = cluster(&[1, 2]);
    elect_node(&mut c, 1);
    c.add_empty_node(3);
    c.raft_mut(1)
        .propose_conf_change(single(ConfChangeKind::AddLearner, 3))
        .unwrap();
    c.stabilize();
    c.cut.extend([(1, 2), (2, 1)]);
    let i = propose(&mut c, 1, "a");
    c.stabilize();
    assert!(c.raft(1).commit_index() < i, "learner counted");
    c.heal();
    tick_stabilize(&mut c, 1);
    c.raft_mut(1)
        .propose_conf_change(single(ConfChangeKind::AddVoter, 3))
        .unwrap();
    c.stabilize();
    assert_eq!(c.raft(1).conf_state().voters, set(&[1, 2, 3]));
    c.cut.extend([(1, 2), (2, 1)]);
    let j = propose(&mut c, 1, "b");
    c.stabilize();
    assert_eq!(c.raft(1).commit_index(), j, "promoted voter not counted");
    assert_eq!(values(&c, 3), strings(&["a", "b"]));
}

/// Thesis §4.3: in the joint configuration C_old,new every decision needs a majority of both
/// C_old and C_new: an entry stored by all of C_old but only the leader of C_new is not
/// committed, and vice versa.
#[test]
fn thesis_4_3_joint_consensus_commit_needs_both_majorities() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.add_empty_node(4);
    c.add_empty_node(5);
    use ConfChangeKind::*;
    let cc = conf_change(
        &[(AddVoter, 4), (AddVoter, 5), (Remove, 2), (Remove, 3)],
        ConfTransition::JointExplicit,
    );
    c.raft_mut(1).propose_conf_change(cc).unwrap();
    c.stabilize();
    tick_stabilize(&mut c, 1);
    let conf = c.raft(1).conf_state().clone();
    assert!(conf.is_joint());
    assert_eq!(conf.voters, set(&[1, 4, 5]));
    assert_eq!(conf.voters_outgoing, set(&[1, 2, 3]));

    // C_new cut off: C_old's majority alone does not commit.
    c.cut.extend([(1, 4), (4, 1), (1, 5), (5, 1)]);
    let i = propose(&mut c, 1, "x");
    c.stabilize();
    assert_eq!(c.raft(2).last_index(), i);
    assert!(c.raft(1).commit_index() < i);
    c.heal();
    tick_nodes(&mut c, &[1], 1);
    assert_eq!(c.raft(1).commit_index(), i);

    // C_old cut off: C_new's majority alone does not commit.
    c.cut.extend([(1, 2), (2, 1), (1, 3), (3, 1)]);
    let j = propose(&mut c, 1, "y");
    c.stabilize();
    assert_eq!(c.raft(4).last_index(), j);
    assert!(c.raft(1).commit_index() < j);
    c.heal();
    tick_nodes(&mut c, &[1], 1);
    assert_eq!(c.raft(1).commit_index(), j);

    // Leaving the joint configuration: C_new alone decides from then on.
    c.raft_mut(1)
        .propose_conf_change(ConfChange::leave_joint())
        .unwrap();
    c.stabilize();
    tick_stabilize(&mut c, 1);
    let conf = c.raft(4).conf_state().clone();
    assert!(!conf.is_joint());
    assert_eq!(conf.voters, set(&[1, 4, 5]));
    c.cut.extend([(1, 2), (2, 1), (1, 3), (3, 1)]);
    let k = propose(&mut c, 1, "z");
    c.stabilize();
    assert_eq!(c.raft(1).commit_index(), k);
    assert_eq!(values(&c, 5), strings(&["x", "y", "z"]));
}

/// Thesis §4.3: elections in the joint configuration need a majority of both halves: the
/// outgoing voters alone cannot elect a leader.
#[test]
fn thesis_4_3_joint_consensus_election_needs_both_majorities() {
    let mut c = cluster_with(&[1, 2, 3], classic);
    elect_node(&mut c, 1);
    c.add_empty_node(4);
    c.add_empty_node(5);
    use ConfChangeKind::*;
    let cc = conf_change(
        &[(AddVoter, 4), (AddVoter, 5), (Remove, 3)],
        ConfTransition::JointExplicit,
    );
    c.raft_mut(1).propose_conf_change(cc).unwrap();
    c.stabilize();
    tick_stabilize(&mut c, 1);
    for id in 1..=5 {
        assert!(c.raft(id).conf_state().is_joint(), "node {id}");
    }
    c.crash(1);
    // 2 and 3 form a majority of C_old = {1,2,3}, but reach no one else of C_new = {1,2,4,5}.
    c.cut.extend([
        (2, 4),
        (4, 2),
        (2, 5),
        (5, 2),
        (3, 4),
        (4, 3),
        (3, 5),
        (5, 3),
    ]);
    c.raft_mut(2).campaign().unwrap();
    c.stabilize();
    assert!(!c.raft(2).is_leader());
    assert_eq!(c.raft(3).vote(), Some(2));
    c.heal();
    c.raft_mut(2).campaign().unwrap();
    c.stabilize();
    assert!(c.raft(2).is_leader());
}

/// Thesis §4.3: a change of more than one voter goes through the joint configuration, which
/// the leader leaves on its own once it is committed; every member ends in C_new.
#[test]
fn thesis_4_3_joint_consensus_auto_leave() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.add_empty_node(4);
    c.add_empty_node(5);
    use ConfChangeKind::*;
    let cc = conf_change(&[(AddVoter, 4), (AddVoter, 5)], ConfTransition::Auto);
    let enter = match c.raft_mut(1).propose_conf_change(cc).unwrap() {
        Proposed::Appended { index, .. } => index,
        p => panic!("{p:?}"),
    };
    c.stabilize();
    tick_stabilize(&mut c, 2);
    let leave = c.nodes[&1]
        .applied_log
        .iter()
        .find(|e| matches!(&e.payload, EntryPayload::ConfChange(cc) if cc.is_leave_joint()))
        .map(|e| e.index)
        .expect("the leader proposed leaving the joint configuration");
    assert!(leave > enter);
    for id in 1..=5 {
        let conf = c.raft(id).conf_state();
        assert!(!conf.is_joint(), "node {id} still joint");
        assert_eq!(conf.voters, set(&[1, 2, 3, 4, 5]), "node {id}");
    }
}

/// Thesis §4.2.2: a leader removed from the configuration stops leading once the removal is
/// committed; the remaining servers carry on with a leader among themselves and the removed
/// server does not disrupt them (§4.2.3).
#[test]
fn thesis_4_2_2_removed_leader_hands_over() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    propose(&mut c, 1, "a");
    c.raft_mut(1)
        .propose_conf_change(single(ConfChangeKind::Remove, 1))
        .unwrap();
    c.stabilize();
    let mut l = None;
    for _ in 0..100 {
        tick_stabilize(&mut c, 1);
        l = [2, 3].into_iter().find(|&id| c.raft(id).is_leader());
        if l.is_some() {
            break;
        }
    }
    let l = l.expect("a remaining server leads");
    assert!(!c.raft(1).is_leader());
    for id in [2, 3] {
        assert_eq!(c.raft(id).conf_state().voters, set(&[2, 3]));
    }
    let t = c.raft(l).term();
    propose(&mut c, l, "b");
    c.stabilize();
    tick_stabilize(&mut c, 50);
    assert_eq!(c.raft(l).term(), t, "removed server disrupted the cluster");
    assert!(c.raft(l).is_leader());
    assert_eq!(values(&c, 2), strings(&["a", "b"]));
    assert_eq!(values(&c, 3), strings(&["a", "b"]));
}

/// Thesis chapter 4 (raft-rs #571 class): a peer that is removed and re-added gets a new
/// replication session; a delayed acknowledgement from its earlier incarnation carries the old
/// session and must not make the leader believe the new, empty peer holds entries.
#[test]
fn thesis_4_readded_peer_ignores_stale_session_responses() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.add_empty_node(4);
    c.raft_mut(1)
        .propose_conf_change(single(ConfChangeKind::AddVoter, 4))
        .unwrap();
    c.stabilize();
    let i = propose(&mut c, 1, "a");
    let mut stale = Vec::new();
    stabilize_filtered(&mut c, |m| {
        if m.from == 4 && matches!(m.body, MessageBody::AppendResp { index, .. } if index == i) {
            stale.push(m.clone());
            return false;
        }
        true
    });
    assert!(!stale.is_empty());
    c.raft_mut(1)
        .propose_conf_change(single(ConfChangeKind::Remove, 4))
        .unwrap();
    c.stabilize();
    assert!(c.raft(1).progress(4).is_none());
    // Node 4 is wiped and re-added as a new voter; it is unreachable for now.
    c.nodes.remove(&4);
    c.add_empty_node(4);
    c.isolate(4, &[1, 2, 3, 4]);
    c.raft_mut(1)
        .propose_conf_change(single(ConfChangeKind::AddVoter, 4))
        .unwrap();
    c.stabilize();
    assert_eq!(c.raft(1).progress(4).unwrap().match_index, 0);
    c.raft_mut(1).step(stale[0].clone()).unwrap();
    assert_eq!(
        c.raft(1).progress(4).unwrap().match_index,
        0,
        "stale acknowledgement from the removed incarnation accepted"
    );
    // With 2 cut off too, {1, 4-stale} must not form a majority of {1,2,3,4} with 3.
    c.cut.extend([(1, 2), (2, 1)]);
    let j = propose(&mut c, 1, "b");
    c.stabilize();
    c.raft_mut(1).step(stale[0].clone()).unwrap();
    assert!(c.raft(1).commit_index() < j);
}

/// Thesis §4.1 / §4.3: membership-change errors are values: a change invalid for the current
/// configuration is refused by rule, and changes are refused during a transfer.
#[test]
fn thesis_4_3_conf_change_refusals() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    let joint = conf_change(
        &[(ConfChangeKind::AddLearner, 4)],
        ConfTransition::JointExplicit,
    );
    c.raft_mut(1).propose_conf_change(joint).unwrap();
    c.stabilize();
    assert!(c.raft(1).conf_state().is_joint());
    assert!(matches!(
        c.raft_mut(1)
            .propose_conf_change(single(ConfChangeKind::AddLearner, 5)),
        Err(ConfChangeError::Rule(_))
    ));
    c.raft_mut(1)
        .propose_conf_change(ConfChange::leave_joint())
        .unwrap();
    c.stabilize();
    assert!(matches!(
        c.raft_mut(1).propose_conf_change(ConfChange::leave_joint()),
        Err(ConfChangeError::Rule(_))
    ));
    c.cut.extend([(1, 2), (2, 1)]);
    c.raft_mut(1).transfer_leader(2).unwrap();
    assert_eq!(
        c.raft_mut(1)
            .propose_conf_change(single(ConfChangeKind::AddLearner, 5)),
        Err(ConfChangeError::Propose(ProposeError::Dropped(
            DropReason::LeaderTransfer
        )))
    );
}

// ----- §7: log compaction and InstallSnapshot -----

/// §7: a follower that falls behind the leader's compacted log is sent a snapshot and then
/// the entries after it, ending with the same state as everyone else.
#[test]
fn raft_7_snapshot_far_behind_follower_catches_up() {
    let mut c = cluster(&[1, 2, 3]);
    c.compact_every = 5;
    elect_node(&mut c, 1);
    c.crash(3);
    for k in 0..30 {
        propose(&mut c, 1, &format!("v{k}"));
        c.stabilize();
    }
    assert!(c.raft(1).first_index() > 10, "leader did not compact");
    c.restart(3, 1);
    let mut snapshots = 0;
    for _ in 0..3 {
        c.raft_mut(1).tick();
        stabilize_filtered(&mut c, |m| {
            if m.body.kind() == "InstallSnapshot" {
                snapshots += 1;
            }
            true
        });
    }
    assert!(snapshots >= 1, "caught up without a snapshot");
    propose(&mut c, 1, "after");
    c.stabilize();
    assert_eq!(c.nodes[&3].sm.data, c.nodes[&1].sm.data);
    assert_eq!(values(&c, 3).len(), 31);
    assert_eq!(c.raft(3).commit_index(), c.raft(1).commit_index());
}

fn chunked(cfg: &mut Config) {
    cfg.snapshot_chunk_bytes = 16;
}

/// Sets up a 3-node cluster whose node 3 needs a snapshot of at least `k` chunks once
/// restarted; returns it with 3 restarted.
fn snapshot_scenario() -> Cluster {
    let mut c = cluster_with(&[1, 2, 3], chunked);
    c.compact_every = 5;
    elect_node(&mut c, 1);
    c.crash(3);
    for k in 0..20 {
        propose(&mut c, 1, &format!("value-{k:02}"));
        c.stabilize();
    }
    c.restart(3, 1);
    c
}

/// §7 (Figure 13): the snapshot is sent in chunks at increasing offsets, reassembled by the
/// follower and installed once the last chunk arrives.
#[test]
fn raft_7_snapshot_sent_in_chunks() {
    let mut c = snapshot_scenario();
    let mut offsets = Vec::new();
    let mut total = 0;
    for _ in 0..3 {
        c.raft_mut(1).tick();
        stabilize_filtered(&mut c, |m| {
            if let MessageBody::InstallSnapshot {
                offset,
                total_bytes,
                chunk,
                ..
            } = &m.body
            {
                assert!(chunk.len() <= 16);
                offsets.push(*offset);
                total = *total_bytes;
            }
            true
        });
    }
    assert!(
        offsets.len() >= 4,
        "expected several chunks, got {offsets:?}"
    );
    let expected: Vec<u64> = (0..offsets.len() as u64).map(|k| k * 16).collect();
    assert_eq!(offsets, expected);
    assert!(total > 16 * (offsets.len() as u64 - 1) && total <= 16 * offsets.len() as u64);
    assert_eq!(c.nodes[&3].sm.data, c.nodes[&1].sm.data);
    assert!(c.raft(3).latest_snapshot().is_some());
}

/// §7 (Figure 13, with resumable transfer): a lost chunk makes the transfer resume from the
/// follower's last received offset, not restart from zero.
#[test]
fn raft_7_snapshot_resumes_after_lost_chunk() {
    let mut c = snapshot_scenario();
    let mut offsets = Vec::new();
    let mut dropped = false;
    for _ in 0..5 {
        c.raft_mut(1).tick();
        stabilize_filtered(&mut c, |m| {
            if let MessageBody::InstallSnapshot { offset, .. } = &m.body {
                offsets.push(*offset);
                if *offset == 32 && !dropped {
                    dropped = true;
                    return false;
                }
            }
            true
        });
    }
    assert!(dropped);
    let first_zero = offsets.iter().filter(|&&o| o == 0).count();
    assert_eq!(
        first_zero, 1,
        "transfer restarted from scratch: {offsets:?}"
    );
    assert_eq!(offsets.iter().filter(|&&o| o == 32).count(), 2);
    // Every chunk after the lost one is resent once, not once per chunk that revealed the gap.
    let chunks = offsets.iter().max().unwrap() / 16 + 1;
    assert_eq!(offsets.len() as u64, chunks + (chunks - 2), "{offsets:?}");
    assert_eq!(c.nodes[&3].sm.data, c.nodes[&1].sm.data);
}

/// §7: a lost final chunk (no later chunk reveals the gap) is detected by the heartbeat and
/// resent from the last acknowledged offset.
#[test]
fn raft_7_snapshot_lost_last_chunk_resent_after_heartbeat() {
    let mut c = snapshot_scenario();
    let mut offsets = Vec::new();
    let mut dropped = None;
    for _ in 0..5 {
        c.raft_mut(1).tick();
        stabilize_filtered(&mut c, |m| {
            if let MessageBody::InstallSnapshot {
                offset,
                total_bytes,
                chunk,
                ..
            } = &m.body
            {
                offsets.push(*offset);
                if offset + chunk.len() as u64 == *total_bytes && dropped.is_none() {
                    dropped = Some(*offset);
                    return false;
                }
            }
            true
        });
    }
    let last = dropped.expect("final chunk seen");
    assert_eq!(
        offsets.iter().filter(|&&o| o == 0).count(),
        1,
        "{offsets:?}"
    );
    assert_eq!(offsets.iter().filter(|&&o| o == last).count(), 2);
    assert_eq!(c.nodes[&3].sm.data, c.nodes[&1].sm.data);
}

/// §7: a follower that refuses a snapshot (larger than its `snapshot_bytes_max`) is retried
/// at heartbeat pace, not in a tight loop that every rejection multiplies; the rest of the
/// cluster carries on.
#[test]
fn raft_7_snapshot_refused_by_follower_not_resent_in_a_loop() {
    let mut c = cluster_with(&[1, 2, 3], |cfg| {
        cfg.snapshot_chunk_bytes = 16;
        if cfg.id == 3 {
            cfg.snapshot_bytes_max = 64;
        }
    });
    c.compact_every = 5;
    elect_node(&mut c, 1);
    c.crash(3);
    for k in 0..20 {
        propose(&mut c, 1, &format!("value-{k:02}"));
        c.stabilize();
    }
    c.restart(3, 1);
    let (mut sent, mut total) = (0u64, 0u64);
    for _ in 0..4 {
        c.raft_mut(1).tick();
        stabilize_filtered(&mut c, |m| {
            if let MessageBody::InstallSnapshot { total_bytes, .. } = m.body {
                sent += 1;
                total = total_bytes;
                assert!(sent < 10_000, "snapshot resent in a loop");
            }
            true
        });
    }
    let chunks = total.div_ceil(16);
    assert!(total > 64);
    assert!(
        sent <= 2 * 4 * chunks,
        "{sent} chunks of a {chunks}-chunk snapshot in 4 heartbeats"
    );
    assert!(c.raft(3).latest_snapshot().is_none());
    assert!(matches!(
        c.raft(1).progress(3).unwrap().state,
        ProgressKind::Snapshot { .. }
    ));
    let i = propose(&mut c, 1, "still-live");
    c.stabilize();
    assert_eq!(c.raft(2).commit_index(), i);
}

/// §7: "If instead the follower receives a snapshot that describes a prefix of its log,
/// log entries covered by the snapshot are deleted but entries following the snapshot are
/// still valid and must be retained."
#[test]
fn raft_7_snapshot_of_log_prefix_keeps_following_entries() {
    let mut r = restored(3, &[1, 2, 3], 2, &[2, 2, 2, 2]);
    assert_eq!(r.last_index(), 5);
    let snap = MessageBody::InstallSnapshot {
        session: 1,
        meta: SnapshotMeta {
            index: 3,
            term: 2,
            conf: ConfState::with_voters([1, 2, 3]),
        },
        total_bytes: 4,
        offset: 0,
        chunk: Bytes::from_static(b"data"),
    };
    r.step(msg(1, 3, 2, snap)).unwrap();
    assert_eq!(r.last_index(), 5);
    assert_eq!(r.term_at(5), Some(2));
    assert_eq!(r.commit_index(), 3);
    let out = settle(&mut r);
    assert!(out.iter().any(|m| matches!(
        m.body,
        MessageBody::InstallSnapshotResp {
            done: true,
            snapshot_index: 3,
            ..
        }
    )));
}

// ----- thesis §10.2.2: batching, pipelining and flow control; proposal limits -----

fn window_of_two(cfg: &mut Config) {
    cfg.inflight_msgs_max = 2;
}

/// Thesis §10.2.2: pipelined appends are bounded: with `inflight_msgs_max = 2` and no
/// acknowledgements coming back, at most two appends with entries are outstanding.
#[test]
fn thesis_10_2_2_inflight_msgs_bound_unacked_appends() {
    let mut c = cluster_with(&[1, 2, 3], window_of_two);
    elect_node(&mut c, 1);
    propose(&mut c, 1, "warm");
    c.stabilize();
    assert_eq!(
        c.raft(1).progress(2).unwrap().state,
        ProgressKind::Replicate
    );
    c.cut.insert((2, 1));
    let mut sent_to_2 = 0;
    for k in 0..6 {
        propose(&mut c, 1, &format!("p{k}"));
        stabilize_filtered(&mut c, |m| {
            if m.to == 2 && is_append_with_entries(m) {
                sent_to_2 += 1;
            }
            true
        });
    }
    assert_eq!(sent_to_2, 2);
    assert_eq!(c.raft(1).progress(2).unwrap().inflight_msgs, 2);
    assert_eq!(
        values(&c, 3).len(),
        7,
        "the other follower is not held back"
    );
    c.heal();
    tick_stabilize(&mut c, 2);
    assert_eq!(values(&c, 2).len(), 7);
}

/// Thesis §10.2.2: the in-flight window is also bounded in bytes.
#[test]
fn thesis_10_2_2_inflight_bytes_bound_unacked_appends() {
    let mut c = cluster_with(&[1, 2, 3], |cfg| cfg.inflight_bytes_max = 250);
    elect_node(&mut c, 1);
    propose(&mut c, 1, "warm");
    c.stabilize();
    c.cut.insert((2, 1));
    let mut bytes_to_2 = Vec::new();
    let payload = "x".repeat(100);
    for _ in 0..6 {
        propose(&mut c, 1, &payload);
        stabilize_filtered(&mut c, |m| {
            if m.to == 2 && is_append_with_entries(m) {
                bytes_to_2.push(m.body.size_bytes());
            }
            true
        });
    }
    // One message may take the window over the limit; none is sent once it is full.
    assert_eq!(bytes_to_2.len(), 2, "{bytes_to_2:?}");
    assert_eq!(c.raft(1).progress(2).unwrap().inflight_msgs, 2);
}

/// Thesis §10.2.2: when every append in the window is lost, the heartbeat answer frees a
/// slot, so replication resumes instead of stalling forever.
#[test]
fn thesis_10_2_2_heartbeat_response_frees_slot_after_loss() {
    let mut c = cluster_with(&[1, 2, 3], window_of_two);
    elect_node(&mut c, 1);
    propose(&mut c, 1, "warm");
    c.stabilize();
    for k in 0..3 {
        propose(&mut c, 1, &format!("p{k}"));
        // Every append to 2 is lost (also the empty ones that carry the commit index and
        // would reveal the gap); heartbeats still get through.
        stabilize_filtered(&mut c, |m| !(m.to == 2 && m.body.kind() == "Append"));
    }
    assert_eq!(c.raft(1).progress(2).unwrap().inflight_msgs, 2);
    assert_eq!(values(&c, 2), strings(&["warm"]));
    tick_nodes(&mut c, &[1], 1);
    assert_eq!(values(&c, 2), strings(&["warm", "p0", "p1", "p2"]));
}

/// Thesis §10.2.2: a lost append in steady state (no later append reveals the gap) is
/// retransmitted once a heartbeat answer shows the follower is behind.
#[test]
fn thesis_10_2_2_lost_append_retransmitted_after_heartbeat() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    propose(&mut c, 1, "warm");
    c.stabilize();
    let i = propose(&mut c, 1, "lost");
    // The append and the empty one carrying the new commit index are both lost.
    stabilize_filtered(&mut c, |m| !(m.to == 2 && m.body.kind() == "Append"));
    assert_eq!(c.raft(1).commit_index(), i);
    assert!(c.raft(2).last_index() < i);
    tick_nodes(&mut c, &[1], 2);
    assert_eq!(c.raft(2).last_index(), i);
    assert_eq!(values(&c, 2), strings(&["warm", "lost"]));
}

/// Thesis §10.2.2 (bounded proposals): a proposal larger than `entry_bytes_max` is refused
/// as `TooLarge`, at the leader and at a forwarding follower alike.
#[test]
fn thesis_10_2_2_oversized_proposal_refused() {
    let mut c = cluster_with(&[1, 2, 3], |cfg| cfg.entry_bytes_max = 100);
    elect_node(&mut c, 1);
    let big = Bytes::from(vec![7u8; 200]);
    for id in [1, 2] {
        assert_eq!(
            c.raft_mut(id).propose(big.clone()),
            Err(ProposeError::TooLarge {
                size_bytes: 224,
                max_bytes: 100
            })
        );
    }
    let last = c.raft(1).last_index();
    c.stabilize();
    assert_eq!(c.raft(1).last_index(), last);
}

/// Thesis §10.2.2 (bounded proposals): once `uncommitted_bytes_max` bytes are appended but
/// not committed, further proposals are dropped until commitment catches up.
#[test]
fn thesis_10_2_2_uncommitted_limit_drops_proposals() {
    let mut c = cluster_with(&[1, 2, 3], |cfg| cfg.uncommitted_bytes_max = 200);
    elect_node(&mut c, 1);
    c.isolate(1, &[1, 2, 3]);
    let payload = Bytes::from(vec![1u8; 100]);
    assert!(c.raft_mut(1).propose(payload.clone()).is_ok());
    assert_eq!(
        c.raft_mut(1).propose(payload.clone()),
        Err(ProposeError::Dropped(DropReason::UncommittedLimit))
    );
    c.heal();
    tick_nodes(&mut c, &[1], 1);
    assert!(c.raft_mut(1).propose(payload.clone()).is_ok());
    assert_eq!(
        c.raft_mut(1).propose(payload),
        Err(ProposeError::Dropped(DropReason::UncommittedLimit))
    );
}

/// §7 with Figure 2's persistence rule: a follower acknowledges an installed snapshot only
/// once the snapshot is durable (a crash before that must not leave the leader believing the
/// follower holds it).
#[test]
fn raft_7_snapshot_ack_waits_for_persisted_snapshot() {
    let mut c = snapshot_scenario();
    c.persist_mode = PersistMode::Async;
    c.raft_mut(1).tick();
    for _ in 0..20 {
        drain(&mut c, 1);
        c.flush(1, usize::MAX);
        drain(&mut c, 2);
        c.flush(2, usize::MAX);
        drain(&mut c, 3);
        if c.nodes[&3].pending.iter().any(|w| w.snapshot.is_some()) {
            break;
        }
        let msgs = std::mem::take(&mut c.network);
        for m in msgs {
            let to = m.to;
            c.raft_mut(to).step(m).unwrap();
        }
    }
    let pending_snapshot = c.nodes[&3].pending.iter().any(|w| w.snapshot.is_some());
    assert!(pending_snapshot, "snapshot never handed to storage");
    let done_acks = c
        .network
        .iter()
        .filter(|m| matches!(m.body, MessageBody::InstallSnapshotResp { done: true, .. }))
        .count();
    assert_eq!(done_acks, 0, "snapshot acknowledged before it is durable");
    assert!(!matches!(
        c.raft(1).progress(3).unwrap().state,
        ProgressKind::Replicate
    ));
    c.flush(3, usize::MAX);
    drain(&mut c, 3);
    assert!(c
        .network
        .iter()
        .any(|m| matches!(m.body, MessageBody::InstallSnapshotResp { done: true, .. })));
}

/// §5.2: "If the AppendEntries RPC is from another server claiming to be leader with a term at
/// least as large as the candidate's current term, the candidate recognizes the leader as
/// legitimate and returns to follower state."
#[test]
fn raft_5_2_candidate_steps_down_for_leader_of_same_term() {
    let mut r = lone(3, &[1, 2, 3], classic);
    r.campaign().unwrap();
    assert_eq!(r.role(), RoleKind::Candidate);
    let t = r.term();
    let hb = MessageBody::Heartbeat {
        session: 3,
        commit: 1,
        round: 1,
    };
    r.step(msg(1, 3, t, hb)).unwrap();
    assert_eq!(r.role(), RoleKind::Follower);
    assert_eq!(r.term(), t);
    assert_eq!(r.leader(), Some(1));
    assert_eq!(r.vote(), Some(3), "the vote of this term is kept");
}

/// §5.3 with §5.4: a follower learns the commit index only for entries it shares with the
/// leader. A heartbeat carries at most what the leader knows the follower matches, so a
/// deposed leader's divergent suffix is never marked committed.
#[test]
fn raft_5_3_heartbeat_never_commits_unmatched_entries() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.isolate(1, &[1, 2, 3]);
    let divergent = propose(&mut c, 1, "divergent");
    c.stabilize();
    let mut l = None;
    for _ in 0..100 {
        tick_nodes(&mut c, &[2, 3], 1);
        l = [2, 3].into_iter().find(|&id| c.raft(id).is_leader());
        if l.is_some() {
            break;
        }
    }
    let l = l.expect("new leader");
    for k in 0..3 {
        propose(&mut c, l, &format!("new-{k}"));
    }
    c.stabilize();
    assert!(c.raft(l).commit_index() > divergent);
    c.heal();
    // Only heartbeats reach the old leader; its log still ends in the divergent entry.
    for _ in 0..3 {
        c.raft_mut(l).tick();
        stabilize_filtered(&mut c, |m| !(m.to == 1 && m.body.kind() == "Append"));
    }
    assert_eq!(c.raft(1).leader(), Some(l));
    assert_eq!(c.raft(1).term_at(divergent), Some(2));
    assert!(
        c.raft(1).commit_index() < divergent,
        "divergent entry marked committed"
    );
    assert!(values(&c, 1).is_empty());
    tick_stabilize(&mut c, 2);
    assert_eq!(values(&c, 1), strings(&["new-0", "new-1", "new-2"]));
}

/// Thesis §6.4: a read a follower forwarded is failed (not left hanging) when the request or
/// its answer is lost, once `election_ticks_max` ticks pass.
#[test]
fn thesis_6_4_forwarded_read_lost_fails_after_timeout() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    let id = c.raft_mut(2).read_index().unwrap();
    drain(&mut c, 2);
    assert_eq!(take(&mut c, |m| m.body.kind() == "ReadIndex").len(), 1);
    let max = c.raft(2).config().election_ticks_max as usize;
    tick_stabilize(&mut c, max - 1);
    assert!(read_states(&c, 2).is_empty());
    tick_stabilize(&mut c, 1);
    assert_eq!(
        read_states(&c, 2),
        vec![ReadState {
            id,
            result: Err(ReadIndexError::Aborted)
        }]
    );
    assert!(c.raft(1).is_leader());
}

/// Thesis §6.4.1: the lease rests on followers refusing votes for an election timeout after
/// hearing from the leader. A follower that acknowledged the lease and then restarted has
/// forgotten the leader; it must still not help elect a new leader within that window, or the
/// old leader would serve a stale read from its lease while the new one commits writes.
#[test]
fn thesis_6_4_1_lease_survives_follower_restart() {
    let mut c = cluster_with(&[1, 2, 3, 4, 5], lease_reads);
    elect_node(&mut c, 1);
    tick_stabilize(&mut c, 1);
    // 4 and 5 lose the leader and time out; 2 and 3 keep acknowledging it.
    c.cut.extend([(1, 4), (4, 1), (1, 5), (5, 1)]);
    let min = c.raft(1).config().election_ticks_min as usize;
    tick_stabilize(&mut c, 2 * min);
    assert!(c.raft(1).is_leader());
    assert!(c.raft(1).lease_valid());
    let old_commit = c.raft(1).commit_index();
    // The leader is cut off right after a heartbeat round; 2 restarts.
    c.isolate(1, &[1, 2, 3, 4, 5]);
    c.crash(2);
    c.restart(2, 1);
    c.stabilize();
    // 4's election timer fires.
    let _ = c.raft_mut(4).campaign();
    c.stabilize();
    let _ = c.raft_mut(5).campaign();
    c.stabilize();
    let t = c.raft(1).term();
    for id in [2, 3, 4, 5] {
        assert!(
            !c.raft(id).is_leader() && c.raft(id).term() == t,
            "node {id} elected (or campaigning) while the old leader's lease holds"
        );
    }
    assert!(c.raft(1).lease_valid());
    assert_eq!(c.raft(1).commit_index(), old_commit);
    // Once the lease has run out everywhere, the majority elects a leader as usual.
    tick_stabilize(&mut c, min);
    assert!(!c.raft(1).lease_valid());
    let mut l = None;
    for _ in 0..200 {
        tick_stabilize(&mut c, 1);
        l = [2, 3, 4, 5].into_iter().find(|&id| c.raft(id).is_leader());
        if l.is_some() {
            break;
        }
    }
    let l = l.expect("the majority elects a leader after the lease");
    propose(&mut c, l, "newer");
    c.stabilize();
    assert!(c.raft(l).commit_index() > old_commit);
}

/// Figure 2 (persistent state): a node refuses to start from storage that cannot have come
/// from a correct run (commit beyond the log, a term behind the log, non-contiguous entries,
/// applied outside `[snapshot, commit]`), with an error value rather than a panic.
#[test]
fn raft_5_1_restore_rejects_inconsistent_storage() {
    let voters = [1, 2, 3];
    let state = |term, commit, entries, applied| RestoreState {
        hard_state: HardState {
            term,
            vote: None,
            commit,
        },
        snapshot: None,
        entries,
        applied,
    };
    let bad = [
        state(2, 5, log_of(&voters, &[2]), 0),
        state(1, 1, log_of(&voters, &[2]), 0),
        state(
            2,
            1,
            {
                let mut l = log_of(&voters, &[2, 2]);
                l.remove(1);
                l
            },
            0,
        ),
        state(2, 1, log_of(&voters, &[2]), 2),
        state(3, 1, log_of(&voters, &[3, 2]), 0),
    ];
    for s in bad {
        let what = format!("{:?}", s.hard_state);
        assert!(
            matches!(
                Raft::new(default_config(1, 1), s),
                Err(RestoreError::Inconsistent(_))
            ),
            "accepted {what}"
        );
    }
    let ok = Raft::new(default_config(1, 1), state(2, 2, log_of(&voters, &[2]), 2)).unwrap();
    assert_eq!(ok.applied_index(), 2);
    assert_eq!(ok.conf_state().voters, set(&voters));
    // Entries the durable state machine already applied are not handed out again.
    let mut ok = ok;
    assert!(settle_committed(&mut ok).is_empty());
}

fn settle_committed(r: &mut Raft) -> Vec<Index> {
    let mut out = Vec::new();
    while r.has_ready() {
        let rd = r.ready();
        out.extend(rd.committed.iter().map(|e| e.index));
        if let Some(id) = rd.persist_id {
            r.persisted(id);
        }
    }
    out
}

/// §7: the state machine snapshots only what it applied, snapshots only move forward, and
/// the log is compacted only up to a snapshot and only where it is durable.
#[test]
fn raft_7_snapshot_and_compaction_refusals() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.persist_mode = PersistMode::Async;
    for k in 0..3 {
        propose(&mut c, 1, &format!("v{k}"));
    }
    drain(&mut c, 1);
    let applied = c.raft(1).applied_index();
    let last = c.raft(1).last_index();
    assert!(applied < last);
    let r = c.raft_mut(1);
    assert_eq!(
        r.snapshot_taken(last, Bytes::new()),
        Err(sextant_core::SnapshotError::NotApplied {
            index: last,
            applied
        })
    );
    assert_eq!(
        r.compact(applied),
        Err(sextant_core::CompactError::BeyondSnapshot {
            index: applied,
            snapshot: 0
        })
    );
    r.snapshot_taken(applied, Bytes::from_static(b"s")).unwrap();
    // The driver may swap in the stored copy of the same data, and only that.
    assert!(!r.snapshot_stored(applied - 1, Bytes::from_static(b"t")));
    assert!(!r.snapshot_stored(applied, Bytes::from_static(b"longer")));
    let stored = Bytes::from(b"s".to_vec());
    assert!(r.snapshot_stored(applied, stored.clone()));
    assert_eq!(r.latest_snapshot().unwrap().data.as_ptr(), stored.as_ptr());
    assert!(matches!(
        r.snapshot_taken(applied, Bytes::new()),
        Err(sextant_core::SnapshotError::Stale { .. })
    ));
    r.compact(applied).unwrap();
    assert_eq!(r.first_index(), applied + 1);
    // Flush and apply the rest, then snapshot past the persisted log: refused to compact.
    c.flush(1, usize::MAX);
    c.persist_mode = PersistMode::Sync;
    c.stabilize();
    let r = c.raft_mut(1);
    assert!(r.applied_index() >= last);
    r.snapshot_taken(r.applied_index(), Bytes::from_static(b"s2"))
        .unwrap();
    assert!(r.compact(r.applied_index()).is_ok());
}

/// Thesis §6.4: pending reads are bounded (`pending_reads_max`) at the leader and at a
/// forwarding follower; the excess is refused as `TooManyPending`, not queued without limit.
#[test]
fn thesis_6_4_pending_reads_bounded() {
    let mut c = cluster_with(&[1, 2, 3], |cfg| cfg.pending_reads_max = 2);
    elect_node(&mut c, 1);
    c.isolate(1, &[1, 2, 3]);
    for id in [1, 2] {
        c.raft_mut(id).read_index().unwrap();
        c.raft_mut(id).read_index().unwrap();
        assert_eq!(
            c.raft_mut(id).read_index(),
            Err(ReadIndexError::TooManyPending),
            "node {id}"
        );
    }
}

/// Thesis §4.3: leaving an automatic joint configuration does not depend on the leader that
/// entered it: a leader elected while the configuration is joint leaves it.
#[test]
fn thesis_4_3_joint_consensus_left_by_next_leader() {
    let mut c = cluster(&[1, 2, 3]);
    elect_node(&mut c, 1);
    c.add_empty_node(4);
    c.add_empty_node(5);
    use ConfChangeKind::*;
    let cc = conf_change(&[(AddVoter, 4), (AddVoter, 5)], ConfTransition::JointAuto);
    let enter = match c.raft_mut(1).propose_conf_change(cc).unwrap() {
        Proposed::Appended { index, .. } => index,
        p => panic!("{p:?}"),
    };
    // The entering entry commits, but the leader crashes before proposing to leave.
    stabilize_filtered(&mut c, |m| {
        if let MessageBody::Append { entries, .. } = &mut m.body {
            entries.retain(
                |e| !matches!(&e.payload, EntryPayload::ConfChange(cc) if cc.is_leave_joint()),
            );
        }
        true
    });
    assert!(c.raft(2).commit_index() >= enter);
    assert!(c.raft(2).conf_state().is_joint());
    c.crash(1);
    let mut l = None;
    for _ in 0..200 {
        tick_stabilize(&mut c, 1);
        l = [2, 3, 4, 5].into_iter().find(|&id| c.raft(id).is_leader());
        if l.is_some() {
            break;
        }
    }
    l.expect("a new leader in the joint configuration");
    tick_stabilize(&mut c, 2);
    for id in 2..=5 {
        let conf = c.raft(id).conf_state();
        assert!(!conf.is_joint(), "node {id} still joint");
        assert_eq!(conf.voters, set(&[1, 2, 3, 4, 5]));
    }
}

/// §7 with thesis §4.2.1: a server added after the log was compacted starts from the leader's
/// snapshot (including its configuration) and then the entries after it.
#[test]
fn raft_7_new_member_starts_from_snapshot() {
    let mut c = cluster(&[1, 2, 3]);
    c.compact_every = 5;
    elect_node(&mut c, 1);
    for k in 0..12 {
        propose(&mut c, 1, &format!("v{k}"));
        c.stabilize();
    }
    assert!(c.raft(1).first_index() > 2);
    c.add_empty_node(4);
    c.raft_mut(1)
        .propose_conf_change(single(ConfChangeKind::AddLearner, 4))
        .unwrap();
    let mut snapshots = 0;
    for _ in 0..3 {
        c.raft_mut(1).tick();
        stabilize_filtered(&mut c, |m| {
            if m.to == 4 && m.body.kind() == "InstallSnapshot" {
                snapshots += 1;
            }
            true
        });
    }
    assert!(snapshots >= 1);
    assert!(c.raft(4).latest_snapshot().is_some());
    assert_eq!(c.nodes[&4].sm.data, c.nodes[&1].sm.data);
    assert!(c.raft(4).conf_state().is_learner(4));
    assert_eq!(c.raft(4).conf_state().voters, set(&[1, 2, 3]));
}
