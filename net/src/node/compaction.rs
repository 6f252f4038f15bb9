//! Auto-compaction in the node loop: etcd's `--auto-compaction-mode` driven by the
//! [`AutoCompactor`] policy. Every member samples its applied revision; only the leader
//! proposes `Compact` (through the log, like a client's compaction), and every member tells
//! the policy when a compaction applied. Explicit compactions are ordinary client writes
//! ([`super::NodeHandle::compact`]).

use sextant_core::kv::{Applied, AutoCompactionMode, AutoCompactor, Command, KvError};
use sextant_core::RoleKind;

use super::clock::Clock;
use super::event_loop::{NodeLoop, PeerSender};

pub(super) struct Compaction {
    auto: Option<AutoCompactor>,
}

impl Compaction {
    pub fn new(mode: Option<AutoCompactionMode>, now_ms: u64) -> Compaction {
        Compaction {
            auto: mode.map(|m| AutoCompactor::new(m, now_ms)),
        }
    }
}

impl<P: PeerSender, C: Clock> NodeLoop<P, C> {
    /// Per tick: sample, and propose a compaction when one is due and this member leads.
    pub(super) fn compaction_tick(&mut self) {
        let now = self.now_ms();
        let leader = self.raft.role() == RoleKind::Leader && self.failed.is_none();
        let revision = self.kv.revision();
        let Some(auto) = self.compaction.auto.as_mut() else {
            return;
        };
        if now < auto.next_deadline_ms() {
            return;
        }
        if leader {
            auto.resume();
        } else {
            auto.pause();
        }
        if let Some(revision) = auto.tick(now, revision) {
            tracing::info!(revision, "auto-compaction");
            self.propose_internal(Command::Compact {
                revision,
                physical: false,
            });
        }
    }

    /// A compaction applied (or was refused as already compacted): the policy's success.
    pub(super) fn compaction_applied(&mut self, cmd: &Command, result: &Result<Applied, KvError>) {
        let Command::Compact { revision, .. } = cmd else {
            return;
        };
        let now = self.now_ms();
        let Some(auto) = self.compaction.auto.as_mut() else {
            return;
        };
        if matches!(result, Ok(_) | Err(KvError::Compacted { .. })) {
            auto.compacted(now, *revision);
        }
    }
}
