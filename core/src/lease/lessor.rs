//! `Lessor`: the leader's lease expiry tracker (etcd's primary `lessor`). Sans-IO: every input
//! carries `now_ms` from the driver's clock; outputs are lease ids to propose revokes for and
//! checkpoints to propose. A follower's lessor tracks nothing: [`Lessor::promote`] loads the
//! leases from the state machine when the member becomes leader, and while it leads the driver
//! reports every applied lease command ([`Lessor::observe`]).

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use super::config::LessorConfig;
use super::spread::spread;
use crate::kv::{Applied, Command, CommandResult, LeaseCheckpoint, LeaseTtl};

/// Why a keepalive was refused.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum RenewError {
    /// This member is not the leader: forward the keepalive (etcd's `ErrNotPrimary`).
    #[error("not the primary lessor")]
    NotPrimary,
    #[error("lease not found")]
    NotFound,
    /// The lease expired and its revoke is pending: etcd waits for the revoke and then answers
    /// "lease not found" (or "not primary" if leadership is lost first).
    #[error("lease expired")]
    Expired,
}

/// A successful keepalive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewed {
    /// The lease's TTL, what the keepalive response reports.
    pub ttl_secs: i64,
    /// A checkpoint clearing the lease's recorded remaining TTL, to propose before answering
    /// (etcd proposes it only when one is recorded, as here).
    pub checkpoint: Option<LeaseCheckpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Tracked {
    ttl_secs: i64,
    /// The remaining TTL as last checkpointed (0: none recorded).
    remaining_ttl_secs: i64,
    expiry_ms: u64,
    /// Its key in `expiries`: the expiry, or after being reported, the time to report again.
    due_ms: u64,
    /// Its key in `checkpoints`, when one is scheduled.
    checkpoint_ms: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct Lessor {
    config: LessorConfig,
    primary: bool,
    leases: BTreeMap<i64, Tracked>,
    /// `(due_ms, id)` for every tracked lease.
    expiries: BTreeSet<(u64, i64)>,
    /// `(due_ms, id)` for scheduled checkpoints.
    checkpoints: BTreeSet<(u64, i64)>,
}

fn secs_to_ms(secs: i64) -> u64 {
    u64::try_from(secs).unwrap_or(0).saturating_mul(1000)
}

impl Lessor {
    pub fn new(config: LessorConfig) -> Lessor {
        Lessor {
            config,
            ..Lessor::default()
        }
    }

    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// The member became leader at `now_ms`: every lease restarts from its checkpointed
    /// remaining TTL (or its TTL) plus `extend_ms`, piled-up expiries are spread out, and
    /// checkpoints are scheduled (etcd's `Promote`).
    pub fn promote(
        &mut self,
        now_ms: u64,
        extend_ms: u64,
        leases: impl IntoIterator<Item = LeaseTtl>,
    ) {
        self.demote();
        self.primary = true;
        for l in leases {
            let remaining = if l.remaining_ttl_secs > 0 {
                l.remaining_ttl_secs
            } else {
                l.ttl_secs
            };
            self.track(
                l.id,
                l.ttl_secs,
                l.remaining_ttl_secs,
                now_ms + extend_ms + secs_to_ms(remaining),
                now_ms,
            );
        }
        let mut by_expiry: Vec<(i64, u64)> = self
            .leases
            .iter()
            .map(|(&id, t)| (id, t.expiry_ms - now_ms))
            .collect();
        by_expiry.sort_by_key(|&(id, remaining)| (remaining, id));
        for (id, delay) in spread(&by_expiry, self.config.revokes_per_sec_max) {
            let expiry = self.leases[&id].expiry_ms + delay;
            self.set_expiry(id, expiry);
        }
    }

    /// The member is no longer leader: forget all expiries (etcd's `Demote`).
    pub fn demote(&mut self) {
        self.primary = false;
        self.leases.clear();
        self.expiries.clear();
        self.checkpoints.clear();
    }

    fn track(
        &mut self,
        id: i64,
        ttl_secs: i64,
        remaining_ttl_secs: i64,
        expiry_ms: u64,
        now_ms: u64,
    ) {
        self.untrack(id);
        self.leases.insert(
            id,
            Tracked {
                ttl_secs,
                remaining_ttl_secs,
                expiry_ms,
                due_ms: expiry_ms,
                checkpoint_ms: None,
            },
        );
        self.expiries.insert((expiry_ms, id));
        self.schedule_checkpoint(id, now_ms);
    }

    fn untrack(&mut self, id: i64) {
        if let Some(t) = self.leases.remove(&id) {
            self.expiries.remove(&(t.due_ms, id));
            if let Some(at) = t.checkpoint_ms {
                self.checkpoints.remove(&(at, id));
            }
        }
    }

    fn set_expiry(&mut self, id: i64, expiry_ms: u64) {
        let t = self.leases.get_mut(&id).expect("tracked");
        self.expiries.remove(&(t.due_ms, id));
        t.expiry_ms = expiry_ms;
        t.due_ms = expiry_ms;
        self.expiries.insert((expiry_ms, id));
    }

    /// etcd's `scheduleCheckpointIfNeeded`: leases whose (remaining) TTL is longer than the
    /// interval get a checkpoint one interval from now.
    fn schedule_checkpoint(&mut self, id: i64, now_ms: u64) {
        let interval = self.config.checkpoint_interval_ms;
        let t = self.leases.get_mut(&id).expect("tracked");
        if let Some(at) = t.checkpoint_ms.take() {
            self.checkpoints.remove(&(at, id));
        }
        let remaining = if t.remaining_ttl_secs > 0 {
            t.remaining_ttl_secs
        } else {
            t.ttl_secs
        };
        if interval > 0 && secs_to_ms(remaining) > interval {
            let at = now_ms + interval;
            t.checkpoint_ms = Some(at);
            self.checkpoints.insert((at, id));
        }
    }

    /// A grant applied: a leader starts its clock now.
    pub fn granted(&mut self, id: i64, ttl_secs: i64, now_ms: u64) {
        if self.primary {
            self.track(id, ttl_secs, 0, now_ms + secs_to_ms(ttl_secs), now_ms);
        }
    }

    /// A revoke applied.
    pub fn revoked(&mut self, id: i64) {
        self.untrack(id);
    }

    /// A checkpoint applied: the recorded remaining TTL changes (the expiry does not, as in
    /// etcd; it matters at the next promotion), and the next checkpoint is scheduled.
    pub fn checkpointed(&mut self, id: i64, remaining_ttl_secs: i64, now_ms: u64) {
        if let Some(t) = self.leases.get_mut(&id) {
            t.remaining_ttl_secs = remaining_ttl_secs;
            self.schedule_checkpoint(id, now_ms);
        }
    }

    /// Feeds an applied command to the lessor (grants, revokes, checkpoints; other commands
    /// are ignored).
    pub fn observe(&mut self, cmd: &Command, applied: &Applied, now_ms: u64) {
        match (cmd, &applied.result) {
            (Command::LeaseGrant { .. }, CommandResult::LeaseGrant { id, ttl_secs }) => {
                self.granted(*id, *ttl_secs, now_ms)
            }
            (Command::LeaseRevoke { id }, _) => self.revoked(*id),
            (Command::LeaseCheckpoint { checkpoints }, _) => {
                for c in checkpoints {
                    self.checkpointed(c.id, c.remaining_ttl_secs, now_ms);
                }
            }
            _ => {}
        }
    }

    /// A keepalive at `now_ms`: the lease lives its full TTL from now (etcd's `Renew`). When a
    /// remaining TTL is recorded, the returned checkpoint clears it; answer the client only
    /// once it applied (see the module docs).
    pub fn renew(&mut self, id: i64, now_ms: u64) -> Result<Renewed, RenewError> {
        if !self.primary {
            return Err(RenewError::NotPrimary);
        }
        let t = self.leases.get_mut(&id).ok_or(RenewError::NotFound)?;
        if t.expiry_ms <= now_ms {
            return Err(RenewError::Expired);
        }
        let checkpoint = (t.remaining_ttl_secs > 0 && self.config.checkpoint_interval_ms > 0)
            .then_some(LeaseCheckpoint {
                id,
                remaining_ttl_secs: 0,
            });
        // The leader's view follows at once; the log catches up with the checkpoint.
        t.remaining_ttl_secs = 0;
        let ttl_secs = t.ttl_secs;
        self.set_expiry(id, now_ms + secs_to_ms(ttl_secs));
        self.schedule_checkpoint(id, now_ms);
        Ok(Renewed {
            ttl_secs,
            checkpoint,
        })
    }

    /// Milliseconds until the lease expires, on a leader (etcd's `LeaseTimeToLive` reports
    /// this in whole seconds, rounded down). `None` on a follower or for an unknown lease.
    pub fn remaining_ms(&self, id: i64, now_ms: u64) -> Option<u64> {
        self.leases
            .get(&id)
            .map(|t| t.expiry_ms.saturating_sub(now_ms))
    }

    /// Leases past their expiry, to propose revokes for, at most `revokes_per_call_max`. Each
    /// is reported again `expired_retry_ms` later while it is not revoked (etcd's
    /// `findExpiredLeases`).
    pub fn expired(&mut self, now_ms: u64) -> Vec<i64> {
        let mut out = Vec::new();
        if !self.primary {
            return out;
        }
        while out.len() < self.config.revokes_per_call_max {
            let Some(&(due, id)) = self.expiries.first() else {
                break;
            };
            if due > now_ms {
                break;
            }
            self.expiries.remove(&(due, id));
            let t = self.leases.get_mut(&id).expect("queued leases are tracked");
            t.due_ms = now_ms + self.config.expired_retry_ms;
            self.expiries.insert((t.due_ms, id));
            out.push(id);
        }
        out
    }

    /// Checkpoints that are due, at most `checkpoints_per_call_max`, to propose as one
    /// [`Command::LeaseCheckpoint`] (etcd's `findDueScheduledCheckpoints`): a lease's remaining
    /// TTL, rounded up to whole seconds, unless it expired or still has its full TTL.
    pub fn checkpoints_due(&mut self, now_ms: u64) -> Vec<LeaseCheckpoint> {
        let mut out = Vec::new();
        if !self.primary {
            return out;
        }
        while out.len() < self.config.checkpoints_per_call_max {
            let Some(&(at, id)) = self.checkpoints.first() else {
                break;
            };
            if at > now_ms {
                break;
            }
            self.checkpoints.remove(&(at, id));
            let t = self
                .leases
                .get_mut(&id)
                .expect("scheduled leases are tracked");
            t.checkpoint_ms = None;
            if t.expiry_ms <= now_ms {
                continue;
            }
            let remaining_ttl_secs = (t.expiry_ms - now_ms).div_ceil(1000) as i64;
            if remaining_ttl_secs >= t.ttl_secs {
                continue;
            }
            out.push(LeaseCheckpoint {
                id,
                remaining_ttl_secs,
            });
        }
        out
    }

    /// The earliest time `expired` or `checkpoints_due` has something to return.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        if !self.primary {
            return None;
        }
        let e = self.expiries.first().map(|&(at, _)| at);
        let c = self.checkpoints.first().map(|&(at, _)| at);
        match (e, c) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl(id: i64, ttl_secs: i64, remaining_ttl_secs: i64) -> LeaseTtl {
        LeaseTtl {
            id,
            ttl_secs,
            remaining_ttl_secs,
        }
    }

    #[test]
    fn only_a_leader_expires_leases() {
        let mut l = Lessor::new(LessorConfig::default());
        l.granted(1, 10, 0);
        assert_eq!(l.expired(1_000_000), Vec::<i64>::new());
        assert_eq!(l.renew(1, 0), Err(RenewError::NotPrimary));
        assert_eq!(l.next_deadline_ms(), None);
        l.promote(0, 1000, [ttl(1, 10, 0)]);
        assert_eq!(l.next_deadline_ms(), Some(11_000));
        assert!(l.expired(10_999).is_empty());
        assert_eq!(l.expired(11_000), [1]);
        // Reported again after the retry interval while not revoked.
        assert!(l.expired(13_999).is_empty());
        assert_eq!(l.expired(14_000), [1]);
        assert_eq!(l.renew(1, 14_000), Err(RenewError::Expired));
        l.revoked(1);
        assert!(l.expired(100_000).is_empty());
        l.demote();
        assert_eq!(l.renew(1, 0), Err(RenewError::NotPrimary));
    }

    #[test]
    fn promotion_uses_the_checkpointed_remaining_ttl() {
        let mut l = Lessor::new(LessorConfig::default());
        l.promote(5_000, 1_000, [ttl(7, 600, 30), ttl(8, 600, 0)]);
        assert_eq!(l.remaining_ms(7, 5_000), Some(31_000));
        assert_eq!(l.remaining_ms(8, 5_000), Some(601_000));
        // A keepalive restores the full TTL and clears the recorded remaining TTL.
        let r = l.renew(7, 6_000).unwrap();
        assert_eq!(r.ttl_secs, 600);
        assert_eq!(
            r.checkpoint,
            Some(LeaseCheckpoint {
                id: 7,
                remaining_ttl_secs: 0
            })
        );
        assert_eq!(l.remaining_ms(7, 6_000), Some(600_000));
        assert_eq!(l.renew(7, 7_000).unwrap().checkpoint, None);
        assert_eq!(l.renew(9, 7_000), Err(RenewError::NotFound));
    }

    #[test]
    fn long_leases_are_checkpointed_every_interval() {
        let mut l = Lessor::new(LessorConfig::default());
        l.promote(0, 0, []);
        l.granted(1, 3600, 0);
        l.granted(2, 60, 0);
        let interval = 300_000;
        assert!(l.checkpoints_due(interval - 1).is_empty());
        let due = l.checkpoints_due(interval + 500);
        assert_eq!(
            due,
            [LeaseCheckpoint {
                id: 1,
                remaining_ttl_secs: 3300
            }]
        );
        // Applying it schedules the next one.
        l.checkpointed(1, 3300, interval + 500);
        assert_eq!(l.next_deadline_ms(), Some(60_000));
        assert_eq!(l.expired(60_000), [2]);
        assert_eq!(l.checkpoints_due(2 * interval + 500).len(), 1);
    }
}
