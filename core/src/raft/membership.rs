//! Membership changes (thesis §4.1-§4.3). As in the thesis, a server uses the latest
//! configuration in its log, committed or not: a change takes effect when its entry is
//! appended, and is undone if that entry is truncated. The leader proposes one change at a
//! time (the next waits until the previous is applied), leaves a joint configuration
//! automatically once it is committed, and, when the committed configuration no longer counts
//! it as a voter, hands leadership to the most up-to-date voter (thesis §4.2.2).
//!
//! Taking effect on append (rather than on apply, as etcd does) closes a liveness trap: a
//! voter that has the entry removing a former leader can win an election in the new
//! configuration, instead of waiting for a vote the removed node refuses it.

use super::{Proposed, Raft, Role};
use crate::conf::{apply_conf_change, ConfChange};
use crate::error::{ConfChangeError, DropReason, ProposeError};
use crate::progress::Progress;
use crate::types::{ConfState, EntryPayload, Index};

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
        Ok(Proposed::Appended {
            index,
            term: self.term,
        })
    }

    /// A membership change entry was appended at `index`: it takes effect now. An invalid
    /// change (which a correct leader never appends) is ignored identically everywhere.
    pub(super) fn on_conf_entry_appended(&mut self, index: Index, cc: &ConfChange) {
        if let Role::Leader(l) = &mut self.role {
            l.pending_conf_index = l.pending_conf_index.max(index);
        }
        if let Ok(next) = apply_conf_change(&self.conf, cc) {
            self.set_conf(index, next);
        }
    }

    /// Recomputes the configuration from index `from` on, after the log changed there
    /// (entries appended, or a conflicting suffix replaced).
    pub(super) fn sync_conf_from(&mut self, from: Index) {
        let stale = self
            .conf_history
            .iter()
            .any(|(i, _)| *i >= from && *i > self.log.snapshot_index());
        let has_conf_entries = (from..=self.log.last_index()).any(|i| {
            matches!(
                self.log.entry(i).map(|e| &e.payload),
                Some(EntryPayload::ConfChange(_))
            )
        });
        if !stale && !has_conf_entries {
            return;
        }
        let base = self.log.snapshot_index();
        self.conf_history.retain(|(i, _)| *i < from || *i <= base);
        let conf = self
            .conf_history
            .last()
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        if conf != self.conf {
            self.set_conf_silently(conf);
        }
        for i in from..=self.log.last_index() {
            let Some(EntryPayload::ConfChange(cc)) = self.log.entry(i).map(|e| e.payload.clone())
            else {
                continue;
            };
            self.on_conf_entry_appended(i, &cc);
        }
    }

    /// Reverts to an earlier configuration without recording it in the history.
    fn set_conf_silently(&mut self, conf: ConfState) {
        self.conf = conf;
        self.sync_leader_progress();
    }

    fn set_conf(&mut self, index: Index, next: ConfState) {
        self.conf = next;
        self.conf_history.push((index, self.conf.clone()));
        self.sync_leader_progress();
    }

    /// Keeps the leader's per-peer progress in step with the configuration.
    fn sync_leader_progress(&mut self) {
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
        self.maybe_commit();
        self.advance_reads();
    }

    /// A membership change entry was applied (it is committed).
    pub(super) fn on_conf_entry_applied(&mut self) {
        self.maybe_hand_off_leadership();
    }

    /// A leader that the committed configuration no longer counts as a voter (removed or
    /// demoted) keeps leading, uncounted in quorums, and hands leadership to the most
    /// up-to-date voter, retrying after each transfer timeout.
    pub(super) fn maybe_hand_off_leadership(&mut self) {
        let me = self.cfg.id;
        let applied = self.log.applied;
        let Role::Leader(l) = &self.role else { return };
        if self.conf.is_voter(me) || l.transfer.is_some() || l.pending_conf_index > applied {
            return;
        }
        let best = self
            .conf
            .voters
            .iter()
            .filter_map(|id| {
                l.progress
                    .get(id)
                    .map(|p| (p.match_index, std::cmp::Reverse(*id)))
            })
            .max()
            .map(|(_, std::cmp::Reverse(id))| id);
        if let Some(to) = best {
            let _ = self.transfer_leader_inner(to);
        }
    }

    /// The leader leaves an auto-leave joint configuration once the entry that entered it is
    /// applied (committed).
    pub(super) fn maybe_auto_leave(&mut self) {
        if self.auto_leave_due() {
            self.append_entry(EntryPayload::ConfChange(ConfChange::leave_joint()));
        }
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
}
