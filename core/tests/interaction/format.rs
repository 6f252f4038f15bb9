//! How the golden output spells the core's data: entries, membership, messages, `Ready`s and
//! node state. Every format is compact, one line per item, and stable (no addresses, no map
//! iteration order, no raw random numbers).
//!
//! Notation: `4@2` is the entry (or position) at index 4 of term 2; entries show their payload as
//! `"data"`, `noop`, or `cc(v4 l5 r2 joint)` (add voter 4, add learner 5, remove 2); read ids are
//! `node.seq`, with one `'` per restart of the node (`2'.1` is node 2's first read after its
//! first restart), since the core draws a fresh epoch for every incarnation.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use sextant_core::{
    ConfChange, ConfChangeKind, ConfState, ConfTransition, Entry, EntryPayload, Message,
    MessageBody, NodeId, ReadId, ReadState, Ready, RoleKind,
};

/// Short names for read ids: the epoch of each incarnation of a node maps to its boot number.
#[derive(Default)]
pub struct ReadNames {
    boots: BTreeMap<(NodeId, u64), usize>,
}

impl ReadNames {
    /// Records the epoch of the `boot`-th incarnation of `node` (0 for the first).
    pub fn register(&mut self, node: NodeId, epoch: u64, boot: usize) {
        self.boots.entry((node, epoch)).or_insert(boot);
    }

    pub fn name(&self, id: &ReadId) -> String {
        let primes = match self.boots.get(&(id.node, id.epoch)) {
            Some(&b) => "'".repeat(b),
            None => "?".to_string(),
        };
        format!("{}{primes}.{}", id.node, id.seq)
    }
}

pub fn data(b: &Bytes) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => format!(
            "0x{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

pub fn conf_change(cc: &ConfChange) -> String {
    if cc.is_leave_joint() {
        return "cc(leave-joint)".into();
    }
    let mut parts: Vec<String> = cc
        .changes
        .iter()
        .map(|c| {
            let k = match c.kind {
                ConfChangeKind::AddVoter => 'v',
                ConfChangeKind::AddLearner => 'l',
                ConfChangeKind::Remove => 'r',
            };
            format!("{k}{}", c.node)
        })
        .collect();
    match cc.transition {
        ConfTransition::Auto => {}
        ConfTransition::JointAuto => parts.push("joint".into()),
        ConfTransition::JointExplicit => parts.push("joint-explicit".into()),
    }
    format!("cc({})", parts.join(" "))
}

pub fn payload(p: &EntryPayload) -> String {
    match p {
        EntryPayload::Empty => "noop".into(),
        EntryPayload::Normal(d) => data(d),
        EntryPayload::ConfChange(cc) => conf_change(cc),
    }
}

pub fn entry(e: &Entry) -> String {
    format!("{}@{} {}", e.index, e.term, payload(&e.payload))
}

pub fn entries(es: &[Entry]) -> String {
    let v: Vec<String> = es.iter().map(entry).collect();
    format!("[{}]", v.join(", "))
}

pub fn ids(s: &BTreeSet<NodeId>) -> String {
    let v: Vec<String> = s.iter().map(|i| i.to_string()).collect();
    format!("({})", v.join(" "))
}

pub fn conf(c: &ConfState) -> String {
    let mut s = format!("voters={}", ids(&c.voters));
    if c.is_joint() {
        s += &format!(" outgoing={}", ids(&c.voters_outgoing));
    }
    if !c.learners.is_empty() {
        s += &format!(" learners={}", ids(&c.learners));
    }
    if !c.learners_next.is_empty() {
        s += &format!(" learners-next={}", ids(&c.learners_next));
    }
    if c.is_joint() {
        s += if c.auto_leave {
            " auto-leave"
        } else {
            " explicit-leave"
        };
    }
    s
}

pub fn role(r: RoleKind) -> &'static str {
    match r {
        RoleKind::Follower => "Follower",
        RoleKind::PreCandidate => "PreCandidate",
        RoleKind::Candidate => "Candidate",
        RoleKind::Leader => "Leader",
    }
}

pub fn opt_id(id: Option<NodeId>) -> String {
    id.map_or_else(|| "none".into(), |i| i.to_string())
}

pub fn message(m: &Message, names: &ReadNames) -> String {
    let head = format!("{}->{} {} term={}", m.from, m.to, m.body.kind(), m.term);
    let verdict = |reject: bool| if reject { "rejected" } else { "granted" };
    let tail = match &m.body {
        MessageBody::PreVote {
            last_index,
            last_term,
        } => format!("last={last_index}@{last_term}"),
        MessageBody::PreVoteResp { reject } | MessageBody::VoteResp { reject } => {
            verdict(*reject).to_string()
        }
        MessageBody::Vote {
            last_index,
            last_term,
            transfer,
        } => {
            let t = if *transfer { " transfer" } else { "" };
            format!("last={last_index}@{last_term}{t}")
        }
        MessageBody::Append {
            session,
            prev_index,
            prev_term,
            entries: es,
            commit,
        } => format!(
            "s={session} prev={prev_index}@{prev_term} commit={commit} {}",
            entries(es)
        ),
        MessageBody::AppendResp {
            session,
            reject,
            index,
            hint_index,
            hint_term,
        } => {
            if *reject {
                format!("s={session} reject index={index} hint={hint_index}@{hint_term}")
            } else {
                format!("s={session} ok index={index}")
            }
        }
        MessageBody::Heartbeat {
            session,
            commit,
            round,
        } => format!("s={session} commit={commit} round={round}"),
        MessageBody::HeartbeatResp { session, round } => format!("s={session} round={round}"),
        MessageBody::InstallSnapshot {
            session,
            meta,
            total_bytes,
            offset,
            chunk,
        } => format!(
            "s={session} snap={}@{} bytes={offset}..{} of {total_bytes}",
            meta.index,
            meta.term,
            offset + chunk.len() as u64
        ),
        MessageBody::InstallSnapshotResp {
            session,
            snapshot_index,
            next_offset,
            done,
            reject,
        } => {
            let what = if *done {
                "done".to_string()
            } else if *reject {
                format!("reject next={next_offset}")
            } else {
                format!("next={next_offset}")
            };
            format!("s={session} snap={snapshot_index} {what}")
        }
        MessageBody::TimeoutNow => String::new(),
        MessageBody::ReadIndex { id } => format!("id={}", names.name(id)),
        MessageBody::ReadIndexResp { id, index } => {
            format!("id={} index={}", names.name(id), opt_id(*index))
        }
        MessageBody::Propose { payloads, .. } => {
            let v: Vec<String> = payloads.iter().map(payload).collect();
            format!("[{}]", v.join(", "))
        }
    };
    if tail.is_empty() {
        head
    } else {
        format!("{head} {tail}")
    }
}

pub fn read_state(rs: &ReadState, names: &ReadNames) -> String {
    match rs.result {
        Ok(index) => format!("read {} ok index={index}", names.name(&rs.id)),
        Err(e) => format!("read {} failed: {e:?}", names.name(&rs.id)),
    }
}

/// The lines describing one `Ready` (without the node header).
pub fn ready(rd: &Ready, names: &ReadNames) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(pid) = rd.persist_id {
        let mut parts = Vec::new();
        if let Some(hs) = rd.hard_state {
            parts.push(format!(
                "hs term={} vote={} commit={}",
                hs.term,
                opt_id(hs.vote),
                hs.commit
            ));
        }
        if let Some(s) = &rd.snapshot {
            parts.push(format!(
                "snapshot {}@{} {} ({} bytes)",
                s.meta.index,
                s.meta.term,
                conf(&s.meta.conf),
                s.data.len()
            ));
        }
        if !rd.entries.is_empty() {
            parts.push(format!("entries {}", entries(&rd.entries)));
        }
        let sync = if rd.must_sync { "sync" } else { "nosync" };
        out.push(format!(
            "persist #{} {sync}: {}",
            pid.get(),
            parts.join("; ")
        ));
    }
    for m in &rd.messages {
        out.push(message(m, names));
    }
    if !rd.committed.is_empty() {
        out.push(format!("apply {}", entries(&rd.committed)));
    }
    for rs in &rd.read_states {
        out.push(read_state(rs, names));
    }
    out
}
