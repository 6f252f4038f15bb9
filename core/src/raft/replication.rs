//! The leader's side of replication (§5.3): per-peer progress (probe / replicate / snapshot),
//! optimistic pipelining bounded by in-flight messages and bytes, fast backtracking on
//! rejection, commitment by counting current-term replicas only (§5.4.2, Figure 8),
//! heartbeats, and chunked snapshot sending (§7).

use super::{LeaderState, Raft, Role};
use crate::message::{Message, MessageBody};
use crate::progress::ProgressState;
use crate::quorum::joint_value;
use crate::types::{EntryPayload, Index, NodeId, ENTRY_OVERHEAD_BYTES};

/// How many heartbeat rounds' send ticks a leader remembers for the lease.
const ROUND_TICKS_MAX: usize = 4096;

impl Raft {
    pub(super) fn leader_state_mut(&mut self) -> &mut LeaderState {
        match &mut self.role {
            Role::Leader(l) => l,
            _ => panic!("leader state requested while not leader"),
        }
    }

    /// Messages at our term while leader.
    pub(super) fn step_leader(&mut self, m: Message) {
        let from = m.from;
        match m.body {
            MessageBody::AppendResp {
                session,
                reject,
                index,
                hint_index,
                hint_term,
            } => {
                self.handle_append_resp(from, session, reject, index, hint_index, hint_term);
            }
            MessageBody::HeartbeatResp { session, round } => {
                self.handle_heartbeat_resp(from, session, round);
            }
            MessageBody::InstallSnapshotResp {
                session,
                snapshot_index,
                next_offset,
                done,
                reject,
            } => {
                self.handle_snapshot_resp(from, session, snapshot_index, next_offset, done, reject);
            }
            MessageBody::ReadIndex { id } => self.leader_read(id, from),
            MessageBody::Propose {
                epoch,
                seq,
                payloads,
            } => {
                if !self.leader_state_mut().forwarded.accept(from, epoch, seq) {
                    return;
                }
                for p in payloads {
                    // Membership changes are never forwarded; oversized or refused proposals
                    // are dropped (the proposer times out and retries).
                    if matches!(p, EntryPayload::ConfChange(_)) {
                        continue;
                    }
                    let _ = self.propose_payload(p);
                }
            }
            _ => {}
        }
    }

    /// The progress for `from` if `session` is its current session.
    fn progress_for(
        &mut self,
        from: NodeId,
        session: u64,
    ) -> Option<&mut crate::progress::Progress> {
        let Role::Leader(l) = &mut self.role else {
            return None;
        };
        let p = l.progress.get_mut(&from)?;
        if p.session != session {
            // An answer to an earlier incarnation of this peer (removed and re-added):
            // ignoring it keeps it from corrupting the new progress (raft-rs #571 class).
            return None;
        }
        p.recent_active = true;
        Some(p)
    }

    fn handle_append_resp(
        &mut self,
        from: NodeId,
        session: u64,
        reject: bool,
        index: Index,
        hint_index: Index,
        hint_term: u64,
    ) {
        if reject {
            let next_probe = if hint_term > 0 {
                self.log.find_conflict_by_term(hint_index, hint_term).0
            } else {
                hint_index
            };
            let Some(p) = self.progress_for(from, session) else {
                return;
            };
            if p.maybe_decrease(index, next_probe) {
                if p.state == ProgressState::Replicate {
                    p.become_probe();
                }
                self.maybe_send_append(from, false);
            }
            return;
        }
        let first_index = self.log.first_index();
        let Some(p) = self.progress_for(from, session) else {
            return;
        };
        let old_paused_probe = p.state == ProgressState::Probe && p.match_index == index;
        if !p.maybe_update(index) && !old_paused_probe {
            return;
        }
        match &p.state {
            ProgressState::Probe => p.become_replicate(),
            ProgressState::Snapshot(_) if p.match_index + 1 >= first_index => {
                p.become_probe();
                p.become_replicate();
            }
            ProgressState::Replicate => p.inflights.free_le(index),
            ProgressState::Snapshot(_) => {}
        }
        if self.maybe_commit() {
            self.leader_state_mut().append_pending = true;
        }
        while self.maybe_send_append(from, false) {}
        self.maybe_send_timeout_now(from);
    }

    fn handle_heartbeat_resp(&mut self, from: NodeId, session: u64, round: u64) {
        let Role::Leader(l) = &self.role else { return };
        let sent_tick = l
            .round_ticks
            .binary_search_by_key(&round, |&(r, _)| r)
            .ok()
            .map(|k| l.round_ticks[k].1);
        let last_index = self.log.last_index();
        let (msgs_max, bytes_max) = (self.cfg.inflight_msgs_max, self.cfg.inflight_bytes_max);
        let Some(p) = self.progress_for(from, session) else {
            return;
        };
        if round > p.acked_round {
            p.acked_round = round;
            p.acked_round_tick = sent_tick;
        }
        p.probe_sent = false;
        let mut resend_snapshot = false;
        match &mut p.state {
            ProgressState::Snapshot(s) => {
                if !s.acked_since_heartbeat {
                    // Nothing acknowledged for a whole heartbeat: chunks were lost; resume
                    // from the last acknowledged offset.
                    s.offset_sent = s.offset_acked;
                    s.sent_final = false;
                    s.resent_from = Some(s.offset_acked);
                    p.inflights.reset();
                }
                s.acked_since_heartbeat = false;
                resend_snapshot = true;
            }
            ProgressState::Replicate => {
                if p.inflights.is_full(msgs_max, bytes_max) {
                    // Appends may have been lost; free one slot so the next append goes
                    // out and a gap is detected by rejection.
                    p.inflights.free_first();
                }
            }
            ProgressState::Probe => {}
        }
        // A probing follower gets an append even when caught up, so it can move to
        // Replicate (etcd sends one on every heartbeat answer in Probe).
        let behind = p.match_index < last_index || p.state == ProgressState::Probe;
        if resend_snapshot {
            self.send_snapshot_chunks(from);
        } else if behind {
            // Send even when nothing new is due (`next_index` past our log in Replicate):
            // the appends in flight may all have been lost, and an empty append at
            // `next_index - 1` makes the follower reject and reveal the gap (etcd
            // `sendAppend` on MsgHeartbeatResp).
            self.maybe_send_append(from, true);
        }
        self.advance_reads();
    }

    fn handle_snapshot_resp(
        &mut self,
        from: NodeId,
        session: u64,
        snapshot_index: Index,
        next_offset: u64,
        done: bool,
        reject: bool,
    ) {
        let Some(p) = self.progress_for(from, session) else {
            return;
        };
        let ProgressState::Snapshot(s) = &mut p.state else {
            if done {
                p.maybe_update(snapshot_index);
            }
            return;
        };
        if s.index != snapshot_index {
            return;
        }
        if done {
            p.maybe_update(snapshot_index);
            p.become_probe();
            self.maybe_send_append(from, false);
            return;
        }
        if reject {
            let from_offset = next_offset.min(s.total_bytes);
            if s.resent_from == Some(from_offset) {
                // Already resending from there: every chunk that was in flight behind a lost
                // one (or sent to a follower that refuses the snapshot) is rejected alike, and
                // resending the window for each would multiply the traffic without bound.
                return;
            }
            s.offset_sent = from_offset;
            s.offset_acked = from_offset;
            s.sent_final = false;
            s.acked_since_heartbeat = true;
            s.resent_from = Some(from_offset);
            p.inflights.reset();
        } else if next_offset > s.offset_acked {
            s.offset_acked = next_offset;
            s.acked_since_heartbeat = true;
            s.resent_from = None;
            p.inflights.free_le(next_offset);
        }
        self.send_snapshot_chunks(from);
    }

    /// Sends an `Append` (or snapshot chunks) to `to` if flow control allows. With
    /// `send_if_empty` an entry-less append carries the commit index. Returns whether anything
    /// was sent.
    pub(super) fn maybe_send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        if to == self.cfg.id {
            return false;
        }
        let (msgs_max, bytes_max) = (self.cfg.inflight_msgs_max, self.cfg.inflight_bytes_max);
        let Role::Leader(l) = &mut self.role else {
            return false;
        };
        let Some(p) = l.progress.get_mut(&to) else {
            return false;
        };
        if p.is_paused(msgs_max, bytes_max) {
            return false;
        }
        let prev_index = p.next_index - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            return self.start_snapshot(to);
        };
        let entries = self.log.slice(
            p.next_index,
            self.log.last_index() + 1,
            self.cfg.append_bytes_max,
        );
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let last = entries.last().map(|e| e.index);
        let bytes = entries.iter().map(|e| e.size_bytes()).sum::<usize>() + ENTRY_OVERHEAD_BYTES;
        p.sent_entries(last, bytes);
        let session = p.session;
        let commit = self.log.committed;
        self.send(
            to,
            MessageBody::Append {
                session,
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
        true
    }

    /// Switches `to` to snapshot replication and starts sending.
    fn start_snapshot(&mut self, to: NodeId) -> bool {
        let Some(snap) = &self.snapshot else {
            // No snapshot covers the compacted prefix; nothing can be sent (a driver bug:
            // compaction requires a snapshot).
            return false;
        };
        let (index, total) = (snap.meta.index, snap.data.len() as u64);
        let Role::Leader(l) = &mut self.role else {
            return false;
        };
        let Some(p) = l.progress.get_mut(&to) else {
            return false;
        };
        p.become_snapshot(index, total);
        self.send_snapshot_chunks(to);
        true
    }

    /// Sends snapshot chunks to `to` while its window has room.
    pub(super) fn send_snapshot_chunks(&mut self, to: NodeId) {
        let (msgs_max, bytes_max, chunk_max) = (
            self.cfg.inflight_msgs_max,
            self.cfg.inflight_bytes_max,
            self.cfg.snapshot_chunk_bytes,
        );
        let Some(snap) = self.snapshot.clone() else {
            return;
        };
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let Some(p) = l.progress.get_mut(&to) else {
            return;
        };
        let total = snap.data.len() as u64;
        let restart = matches!(&p.state, ProgressState::Snapshot(s) if s.index != snap.meta.index);
        if restart {
            // A newer snapshot was taken meanwhile; send that one instead.
            p.become_snapshot(snap.meta.index, total);
        }
        let session = p.session;
        let mut out = Vec::new();
        while let ProgressState::Snapshot(s) = &mut p.state {
            if s.sent_final || p.inflights.is_full(msgs_max, bytes_max) {
                break;
            }
            let start = s.offset_sent;
            let end = (start + chunk_max as u64).min(total);
            let chunk = snap.data.slice(start as usize..end as usize);
            s.offset_sent = end;
            s.sent_final = end == total;
            p.inflights.add(end, (end - start) as usize + 1);
            out.push(MessageBody::InstallSnapshot {
                session,
                meta: snap.meta.clone(),
                total_bytes: total,
                offset: start,
                chunk,
            });
        }
        for body in out {
            self.send(to, body);
        }
    }

    /// Advances the commit index to what a quorum has stored, if that entry is from the
    /// current term (§5.4.2). Returns whether it moved.
    pub(super) fn maybe_commit(&mut self) -> bool {
        let Role::Leader(l) = &self.role else {
            return false;
        };
        let me = self.cfg.id;
        let persisted = self.log.persisted;
        let quorum_index = joint_value(&self.conf, |id| {
            if id == me {
                persisted
            } else {
                l.progress.get(&id).map_or(0, |p| p.match_index)
            }
        });
        let old = self.log.committed;
        if quorum_index == u64::MAX {
            return false;
        }
        let mutated = crate::mutation::active(crate::mutation::Mutation::Figure8Commit)
            && quorum_index > old
            && quorum_index <= self.log.last_index();
        if mutated {
            self.log.commit_to(quorum_index);
        } else if !self.log.maybe_commit(quorum_index, self.term) {
            return false;
        }
        let new = self.log.committed;
        // Entries after this term's no-op were counted when appended (the no-op was not).
        let from = old.max(l.term_start_index) + 1;
        let freed: usize = (from..=new)
            .filter_map(|i| self.log.entry(i))
            .map(|e| e.size_bytes())
            .sum();
        let l = self.leader_state_mut();
        l.uncommitted_bytes = l.uncommitted_bytes.saturating_sub(freed);
        self.on_commit_advanced();
        true
    }

    /// Sends every peer what it is missing (batched proposals and commit updates).
    pub(super) fn broadcast_append(&mut self, send_if_empty: bool) {
        let ids: Vec<NodeId> = match &self.role {
            Role::Leader(l) => l.progress.keys().copied().collect(),
            _ => return,
        };
        for id in ids {
            if self.maybe_send_append(id, send_if_empty) {
                while self.maybe_send_append(id, false) {}
            }
        }
    }

    /// Starts a new heartbeat round to every peer.
    pub(super) fn broadcast_heartbeat(&mut self) {
        let me = self.cfg.id;
        let committed = self.log.committed;
        let now = self.tick_count;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        l.round += 1;
        l.read_broadcast_pending = false;
        let round = l.round;
        l.round_ticks.push_back((round, now));
        if l.round_ticks.len() > ROUND_TICKS_MAX {
            l.round_ticks.pop_front();
        }
        let out: Vec<(NodeId, MessageBody)> = l
            .progress
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, p)| {
                let commit = p.match_index.min(committed);
                (
                    *id,
                    MessageBody::Heartbeat {
                        session: p.session,
                        commit,
                        round,
                    },
                )
            })
            .collect();
        for (to, body) in out {
            self.send(to, body);
        }
        // The leader acknowledges its own round at once; when it alone is a quorum (the
        // configuration shrank to it while reads waited for a round) no answer will come to
        // confirm them, so check here.
        self.advance_reads();
    }
}
