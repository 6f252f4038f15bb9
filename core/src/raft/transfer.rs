//! Leadership transfer (thesis §3.10): the leader stops taking proposals, brings the
//! transferee up to date, then tells it to campaign at once with `TimeoutNow`. The transfer is
//! abandoned after an election timeout.

use super::{Raft, Role, Transfer};
use crate::error::TransferError;
use crate::message::MessageBody;
use crate::types::NodeId;

impl Raft {
    pub(super) fn transfer_leader_inner(&mut self, to: NodeId) -> Result<(), TransferError> {
        let leader_hint = self.leader;
        let Role::Leader(l) = &mut self.role else {
            return Err(TransferError::NotLeader { leader_hint });
        };
        if to == self.cfg.id {
            return Err(TransferError::AlreadyLeader(to));
        }
        if !self.conf.voters.contains(&to) {
            return Err(TransferError::NotVoter(to));
        }
        if l.transfer.as_ref().is_some_and(|t| t.to == to) {
            return Ok(());
        }
        l.transfer = Some(Transfer {
            to,
            elapsed_ticks: 0,
            timeout_now_sent: false,
        });
        self.maybe_send_timeout_now(to);
        if self.transferee() == Some(to) {
            self.maybe_send_append(to, true);
        }
        Ok(())
    }

    /// Sends `TimeoutNow` to the transferee once its log matches ours.
    pub(super) fn maybe_send_timeout_now(&mut self, to: NodeId) {
        let last = self.log.last_index();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let Some(t) = &mut l.transfer else { return };
        if t.to != to || t.timeout_now_sent {
            return;
        }
        if l.progress.get(&to).is_none_or(|p| p.match_index != last) {
            return;
        }
        t.timeout_now_sent = true;
        // The transferee's election bypasses followers' lease check, so our lease no longer
        // protects reads.
        l.lease_revoked = true;
        self.send(to, MessageBody::TimeoutNow);
    }
}
