//! Producing `Ready` and taking back persistence receipts. Messages that depend on state not
//! yet durable wait here until the driver reports it persisted (see `crate::ready`).

use super::{PersistTicket, Raft, Role};
use crate::ready::{PersistId, Ready};
use crate::types::EntryPayload;

impl Raft {
    fn persist_work_pending(&self) -> bool {
        self.snapshot_install.is_some()
            || self.log.has_unstable()
            || self.hard_state() != self.handed_hard_state
    }

    fn gated_message_releasable(&self) -> bool {
        self.msgs_after_persist.front().is_some_and(|(req, _)| {
            *req <= self.persist_acked
                || (*req == self.persist_seq_next
                    && !self.persist_work_pending()
                    && req - 1 <= self.persist_acked)
        })
    }

    /// Whether `ready()` has anything to hand out.
    pub fn has_ready(&self) -> bool {
        let leader_work = match &self.role {
            Role::Leader(l) => l.append_pending || l.commit_pending || l.read_broadcast_pending,
            _ => false,
        };
        !self.msgs.is_empty()
            || !self.read_states.is_empty()
            || self.persist_work_pending()
            || (self.snapshot_install.is_none() && self.log.has_next_committed())
            || leader_work
            || self.auto_leave_due()
            || self.gated_message_releasable()
    }

    /// Takes everything the driver must do now. See `crate::ready` for the contract.
    pub fn ready(&mut self) -> Ready {
        let mut committed = Vec::new();
        if self.snapshot_install.is_none() {
            committed = self.log.next_committed(self.cfg.apply_bytes_max);
            for e in &committed {
                self.log.applied = e.index;
            }
            if committed
                .iter()
                .any(|e| matches!(e.payload, EntryPayload::ConfChange(_)))
            {
                self.on_conf_entry_applied();
            }
        }
        self.maybe_auto_leave();
        if let Role::Leader(l) = &mut self.role {
            let (append, commit, reads) =
                (l.append_pending, l.commit_pending, l.read_broadcast_pending);
            l.append_pending = false;
            l.commit_pending = false;
            if append || commit {
                self.broadcast_append(commit);
            }
            if reads {
                self.broadcast_heartbeat();
            }
        }

        let hs = self.hard_state();
        let hard_state = (hs != self.handed_hard_state).then_some(hs);
        let snapshot = self.snapshot_install.take();
        let entries = self.log.take_unstable();
        let must_sync = !entries.is_empty()
            || snapshot.is_some()
            || hs.term != self.handed_hard_state.term
            || hs.vote != self.handed_hard_state.vote;
        let persist_id = if hard_state.is_some() || snapshot.is_some() || !entries.is_empty() {
            let seq = self.persist_seq_next;
            self.persist_seq_next += 1;
            self.persist_tickets.push_back(PersistTicket {
                seq,
                last_entry: entries
                    .last()
                    .map(|e| (e.index, e.term))
                    .or(snapshot.as_ref().map(|s| (s.meta.index, s.meta.term))),
            });
            self.handed_hard_state = hs;
            if crate::mutation::active(crate::mutation::Mutation::AckBeforeFsync) {
                // Planted bug: behave as if the write were already durable.
                self.persisted(PersistId(seq));
            }
            Some(PersistId(seq))
        } else {
            // Nothing new to persist: messages waiting on "the next write" only depend on
            // writes already handed out.
            let next = self.persist_seq_next;
            for (req, _) in self.msgs_after_persist.iter_mut() {
                if *req == next {
                    *req = next - 1;
                }
            }
            None
        };
        while self
            .msgs_after_persist
            .front()
            .is_some_and(|(req, _)| *req <= self.persist_acked)
        {
            let (_, m) = self.msgs_after_persist.pop_front().expect("checked");
            // A held message from an earlier term is stale: its claim (an acknowledged entry, a
            // vote) may no longer hold, since a newer leader can have overwritten the entry in
            // the same write. Dropping it is always safe; Raft tolerates loss.
            if m.term == self.term {
                self.msgs.push(m);
            }
        }
        let ready = Ready {
            hard_state,
            snapshot,
            entries,
            must_sync,
            persist_id,
            messages: std::mem::take(&mut self.msgs),
            committed,
            read_states: std::mem::take(&mut self.read_states),
        };
        self.check_invariants();
        ready
    }

    /// The driver made the persistent part of the `Ready` with this id durable (and every
    /// earlier one).
    pub fn persisted(&mut self, id: PersistId) {
        while let Some(t) = self.persist_tickets.front() {
            if t.seq > id.0 {
                break;
            }
            let t = self.persist_tickets.pop_front().expect("checked");
            if let Some((index, term)) = t.last_entry {
                self.log.stable_to(index, term);
            }
        }
        self.persist_acked = self.persist_acked.max(id.0);
        let persisted = self.log.persisted;
        let me = self.cfg.id;
        if let Role::Leader(l) = &mut self.role {
            if let Some(p) = l.progress.get_mut(&me) {
                if persisted > p.match_index {
                    p.match_index = persisted;
                    p.next_index = persisted + 1;
                }
            }
            self.maybe_commit();
        }
        self.check_invariants();
    }
}
