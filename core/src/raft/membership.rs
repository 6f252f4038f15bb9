//! Membership changes (thesis §4.3): proposing one change at a time, applying committed
//! changes (simple or joint), keeping the leader's per-peer progress in step with the
//! configuration, and leaving a joint configuration automatically.

use super::{Proposed, Raft, Role};
use crate::conf::{apply_conf_change, ConfChange};
use crate::error::{ConfChangeError, DropReason, ProposeError};
use crate::progress::Progress;
use crate::types::{ConfState, EntryPayload, Index, NodeId};

impl Raft {
    pub(super) fn propose_conf_change_inner(
        &mut self,
        cc: ConfChange,
    ) -> Result<Proposed, ConfChangeError> {
        let leader_hint = self.leader;
        let Role::Leader(l) = &self.role else {
            return Err(ConfChangeError::NotLeader { leader_hint });
        };
        if l.pending_conf_index > self.log.applied {
            // Only one change may be in flight: the next one is validated against the
            // configuration the previous one produces.
            return Err(ConfChangeError::Pending {
                index: l.pending_conf_index,
            });
        }
        if l.transfer.is_some() {
            return Err(ProposeError::Dropped(DropReason::LeaderTransfer).into());
        }
        apply_conf_change(&self.conf, &cc)?;
        let payload = EntryPayload::ConfChange(cc);
        let size = payload.size_bytes() + crate::types::ENTRY_OVERHEAD_BYTES;
        if size > self.cfg.entry_bytes_max {
            return Err(ProposeError::TooLarge {
                size_bytes: size,
                max_bytes: self.cfg.entry_bytes_max,
            }
            .into());
        }
        let index = self.append_entry(payload);
        self.leader_state_mut().pending_conf_index = index;
        Ok(Proposed::Appended {
            index,
            term: self.term,
        })
    }

    /// A committed membership change at `index` is being applied. An invalid change (which a
    /// correct leader never commits) is ignored identically on every replica.
    pub(super) fn apply_conf_change_entry(&mut self, index: Index, cc: &ConfChange) {
        if let Ok(next) = apply_conf_change(&self.conf, cc) {
            self.set_conf(index, next);
        }
    }

    fn set_conf(&mut self, index: Index, next: ConfState) {
        self.conf = next;
        self.conf_history.push((index, self.conf.clone()));
        let me = self.cfg.id;
        let last = self.log.last_index();
        let members = self.conf.members();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        l.progress.retain(|id, _| members.contains(id));
        for id in &members {
            if !l.progress.contains_key(id) {
                let session = l.session_next;
                l.session_next += 1;
                l.progress.insert(*id, Progress::new(last + 1, session));
            }
        }
        if let Some(t) = &l.transfer {
            if !self.conf.voters.contains(&t.to) {
                l.transfer = None;
            }
        }
        l.append_pending = true;
        if !self.conf.is_voter(me) {
            // Removed (or demoted): stop leading; the remaining voters elect a leader.
            let term = self.term;
            self.become_follower(term, None);
            return;
        }
        self.maybe_commit();
        self.advance_reads();
    }

    /// The leader leaves an auto-leave joint configuration once the entry that entered it
    /// (and every earlier change) is applied.
    pub(super) fn maybe_auto_leave(&mut self) {
        let applied = self.log.applied;
        let Role::Leader(l) = &self.role else { return };
        if !(self.conf.is_joint() && self.conf.auto_leave) || l.pending_conf_index > applied {
            return;
        }
        if l.transfer.is_some() {
            return;
        }
        let index = self.append_entry(EntryPayload::ConfChange(ConfChange::leave_joint()));
        self.leader_state_mut().pending_conf_index = index;
    }

    /// Whether an auto-leave is due (for `has_ready`).
    pub(super) fn auto_leave_due(&self) -> bool {
        match &self.role {
            Role::Leader(l) => {
                self.conf.is_joint()
                    && self.conf.auto_leave
                    && l.pending_conf_index <= self.log.applied
                    && l.transfer.is_none()
            }
            _ => false,
        }
    }

    #[allow(dead_code)]
    fn is_member(&self, id: NodeId) -> bool {
        self.conf.contains(id)
    }
}
