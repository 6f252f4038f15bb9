//! The follower's side of replication: AppendEntries consistency check and fast backtracking
//! hints (§5.3), commit from heartbeats, and reassembling and installing chunked snapshots
//! (§7).

use bytes::Bytes;

use super::{Raft, SnapshotRecv};
use crate::message::{Message, MessageBody};
use crate::types::{Entry, Index, NodeId, Snapshot, SnapshotMeta, Term};

impl Raft {
    /// Messages at our term while follower.
    pub(super) fn step_follower(&mut self, m: Message) {
        let from = m.from;
        match m.body {
            MessageBody::Append {
                session,
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                self.heard_from_leader(from);
                self.handle_append(from, session, prev_index, prev_term, &entries, commit);
            }
            MessageBody::Heartbeat {
                session,
                commit,
                round,
            } => {
                self.heard_from_leader(from);
                let commit = commit.min(self.log.last_index());
                self.log.commit_to(commit);
                self.send(from, MessageBody::HeartbeatResp { session, round });
            }
            MessageBody::InstallSnapshot {
                session,
                meta,
                total_bytes,
                offset,
                chunk,
            } => {
                self.heard_from_leader(from);
                self.handle_snapshot_chunk(from, session, meta, total_bytes, offset, chunk);
            }
            MessageBody::TimeoutNow => {
                // Thesis §3.10: the leader asks us to take over; skip pre-vote.
                self.hup(true);
            }
            MessageBody::ReadIndexResp { id, index } => self.handle_read_index_resp(id, index),
            MessageBody::ReadIndex { id } => {
                self.send(from, MessageBody::ReadIndexResp { id, index: None });
            }
            _ => {}
        }
    }

    fn heard_from_leader(&mut self, from: NodeId) {
        self.election_elapsed = 0;
        if self.leader != Some(from) {
            self.abort_forwarded_reads();
            self.leader = Some(from);
        }
    }

    fn handle_append(
        &mut self,
        from: NodeId,
        session: u64,
        prev_index: Index,
        prev_term: Term,
        entries: &[Entry],
        commit: Index,
    ) {
        if prev_index < self.log.committed {
            // Everything up to our commit index already matches; tell the leader so.
            let index = self.log.committed;
            self.send_after_persist(
                from,
                MessageBody::AppendResp {
                    session,
                    reject: false,
                    index,
                    hint_index: 0,
                    hint_term: 0,
                },
            );
            return;
        }
        match self.log.maybe_append(prev_index, prev_term, entries) {
            Some(last_new) => {
                if let Some(first) = entries.first() {
                    // Membership changes take effect when appended (thesis §4.1), and a
                    // replaced suffix may have undone some.
                    self.sync_conf_from(first.index.max(self.log.first_index()));
                }
                self.log.commit_to(commit.min(last_new));
                self.send_after_persist(
                    from,
                    MessageBody::AppendResp {
                        session,
                        reject: false,
                        index: last_new,
                        hint_index: 0,
                        hint_term: 0,
                    },
                );
            }
            None => {
                // Fast backtracking: point the leader at the last index whose term is not
                // beyond the rejected prev_term.
                let probe = prev_index.min(self.log.last_index());
                let (hint_index, hint_term) = self.log.find_conflict_by_term(probe, prev_term);
                self.send_after_persist(
                    from,
                    MessageBody::AppendResp {
                        session,
                        reject: true,
                        index: prev_index,
                        hint_index,
                        hint_term,
                    },
                );
            }
        }
    }

    fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        session: u64,
        meta: SnapshotMeta,
        total_bytes: u64,
        offset: u64,
        chunk: Bytes,
    ) {
        let snapshot_index = meta.index;
        let answer = |next_offset, done, reject| MessageBody::InstallSnapshotResp {
            session,
            snapshot_index,
            next_offset,
            done,
            reject,
        };
        if meta.index <= self.log.committed {
            // We already have everything the snapshot covers.
            self.snapshot_recv = None;
            self.send_after_persist(from, answer(total_bytes, true, false));
            return;
        }
        if total_bytes > self.cfg.snapshot_bytes_max {
            self.send(from, answer(0, false, true));
            return;
        }
        let same = self.snapshot_recv.as_ref().is_some_and(|r| {
            r.from == from && r.term == self.term && r.meta == meta && r.total_bytes == total_bytes
        });
        if !same {
            if offset != 0 {
                // Resume is only possible within one transfer; ask for a restart.
                self.send(from, answer(0, false, true));
                return;
            }
            self.snapshot_recv = Some(SnapshotRecv {
                from,
                term: self.term,
                meta: meta.clone(),
                total_bytes,
                buf: Vec::new(),
            });
        }
        let recv = self.snapshot_recv.as_mut().expect("set above");
        let have = recv.buf.len() as u64;
        if offset != have {
            // A duplicate (ack where we are) or a gap (ask to resume from where we are).
            let gap = offset > have;
            self.send(from, answer(have, false, gap));
            return;
        }
        recv.buf.extend_from_slice(&chunk);
        let have = recv.buf.len() as u64;
        if have < total_bytes {
            self.send(from, answer(have, false, false));
            return;
        }
        let recv = self.snapshot_recv.take().expect("set above");
        let snap = Snapshot {
            meta: recv.meta,
            data: Bytes::from(recv.buf),
        };
        self.restore_snapshot(snap);
        self.send_after_persist(from, answer(total_bytes, true, false));
    }

    /// §7: replace the log with a snapshot, unless the log already contains its last entry.
    fn restore_snapshot(&mut self, snap: Snapshot) {
        let SnapshotMeta { index, term, .. } = snap.meta;
        if index <= self.log.committed {
            return;
        }
        if self.log.match_term(index, term) {
            // Our log has the snapshot's last entry: keep the log, just commit up to it.
            self.log.commit_to(index);
            return;
        }
        self.log.restore(index, term);
        self.conf = snap.meta.conf.clone();
        self.conf_history = vec![(index, self.conf.clone())];
        self.snapshot = Some(snap.clone());
        self.snapshot_install = Some(snap);
    }
}
