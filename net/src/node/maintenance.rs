//! Maintenance in the node loop (etcd's `Maintenance` service, member side):
//! - point-in-time views of this member's applied state: the whole state-machine snapshot
//!   (for `Snapshot`) and `Hash`, encoded in slices (`snapshot_reads`), and `HashKV`;
//! - `Defragment`: take a state-machine snapshot now and compact the log behind it (what this
//!   storage can reclaim), answering once both are durable;
//! - raising an alarm when this member's own storage fails: NOSPACE when the disk filled,
//!   CORRUPT when data it must apply is damaged. A failed member takes no part in Raft any
//!   more, so it cannot propose through its core; instead it watches which peer leads (from
//!   the leader's messages, which it no longer steps) and forwards the alarm to that leader
//!   as a proposal of its own numbering, a few times, one election timeout apart. Raising an
//!   active alarm again changes nothing, so repeats are harmless. Until the alarm is
//!   replicated back (never, on this member), the member reports it itself.

use bytes::Bytes;
use sextant_core::kv::{AlarmAction, AlarmKind, AlarmMember, AlarmRequest, Command, KvHash};
use sextant_core::{EntryPayload, Index, Message, MessageBody, NodeId, Term};
use tokio::sync::oneshot;

use super::client::{ClientError, Header};
use super::clock::Clock;
use super::command::LogCommand;
use super::event_loop::{NodeLoop, PeerSender};

/// This member's applied state machine, encoded ([`sextant_core::kv::KvStore::snapshot`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSnapshot {
    pub header: Header,
    /// The Raft index and term of the last entry applied to it.
    pub applied_index: Index,
    pub applied_term: Term,
    pub data: Bytes,
}

pub(crate) enum MaintenanceRequest {
    Snapshot {
        reply: oneshot::Sender<StateSnapshot>,
    },
    HashKv {
        revision: i64,
        reply: oneshot::Sender<Result<(Header, KvHash), ClientError>>,
    },
    Defragment {
        reply: oneshot::Sender<Result<Header, ClientError>>,
    },
    /// Alarms this member raised about itself that cannot be replicated (its storage failed).
    LocalAlarms {
        reply: oneshot::Sender<Vec<AlarmMember>>,
    },
}

/// How many times a failed member forwards its alarm.
const ALARM_SENDS_MAX: u32 = 5;
/// Distinguishes the numbering of forwarded alarms from the core's forwarded proposals.
const ALARM_EPOCH_SALT: u64 = 0x5345_5854_414c_524d;

#[derive(Default)]
pub(super) struct Maintenance {
    /// Defragment requests waiting for the next snapshot to start.
    defrag_waiting: Vec<oneshot::Sender<Result<Header, ClientError>>>,
    /// Defragment requests answered when the snapshot in progress is saved.
    defrag_saving: Vec<oneshot::Sender<Result<Header, ClientError>>>,
    raiser: Option<AlarmRaiser>,
}

/// A failed member's alarm about itself, on its way to the leader.
struct AlarmRaiser {
    kind: AlarmKind,
    /// The leader and its term, as last seen from its messages.
    leader: Option<(NodeId, Term)>,
    sends_left: u32,
    next_send_tick: u64,
    seq: u64,
}

impl Maintenance {
    /// Whether a snapshot should be taken now for a defragmentation.
    pub fn wants_snapshot(&self) -> bool {
        !self.defrag_waiting.is_empty()
    }
}

impl<P: PeerSender, C: Clock> NodeLoop<P, C> {
    pub(super) fn on_maintenance(&mut self, req: MaintenanceRequest) {
        match req {
            MaintenanceRequest::Snapshot { reply } => self.snapshotting.reads.push(reply),
            MaintenanceRequest::HashKv { revision, reply } => {
                self.snapshotting.hash_kv.push(revision, reply)
            }
            MaintenanceRequest::Defragment { reply } => {
                if let Some(f) = &self.failed {
                    let _ = reply.send(Err(ClientError::StorageFailed(f.clone())));
                } else if !self.snapshot_in_progress && self.kv_applied == self.last_snapshot_index
                {
                    // Nothing applied since the last snapshot: the log behind it is already
                    // compacted.
                    let _ = reply.send(Ok(self.header(self.kv.revision())));
                } else {
                    self.maintenance.defrag_waiting.push(reply);
                }
            }
            MaintenanceRequest::LocalAlarms { reply } => {
                let me = self.raft.id();
                let local = self.maintenance.raiser.as_ref().map(|r| AlarmMember {
                    member_id: me,
                    kind: r.kind,
                });
                let _ = reply.send(local.into_iter().collect());
            }
        }
    }

    /// A snapshot is starting: the defragmentations waiting for one are answered when it is
    /// saved.
    pub(super) fn defrag_snapshot_started(&mut self) {
        let waiting = std::mem::take(&mut self.maintenance.defrag_waiting);
        self.maintenance.defrag_saving.extend(waiting);
    }

    /// The snapshot in progress is durable and the log behind it compacted.
    pub(super) fn defrag_snapshot_saved(&mut self) {
        let header = self.header(self.kv.revision());
        for reply in std::mem::take(&mut self.maintenance.defrag_saving) {
            let _ = reply.send(Ok(header));
        }
    }

    /// Storage failed: answer waiting defragmentations, and raise `alarm` if the failure
    /// calls for one.
    pub(super) fn maintenance_failed(&mut self, why: &str, alarm: Option<AlarmKind>) {
        let waiting = std::mem::take(&mut self.maintenance.defrag_waiting);
        for reply in waiting
            .into_iter()
            .chain(std::mem::take(&mut self.maintenance.defrag_saving))
        {
            let _ = reply.send(Err(ClientError::StorageFailed(why.to_string())));
        }
        let Some(kind) = alarm else { return };
        if self.maintenance.raiser.is_some() {
            return;
        }
        let leader = self
            .raft
            .leader()
            .filter(|l| *l != self.raft.id())
            .map(|l| (l, self.raft.term()));
        tracing::warn!(?kind, "raising an alarm about this member");
        self.maintenance.raiser = Some(AlarmRaiser {
            kind,
            leader,
            sends_left: ALARM_SENDS_MAX,
            next_send_tick: self.ticks,
            seq: 0,
        });
        self.alarm_tick();
    }

    /// A peer message reached this failed member: remember who leads.
    pub(super) fn alarm_saw_message(&mut self, m: &Message) {
        let Some(r) = &mut self.maintenance.raiser else {
            return;
        };
        let from_leader = matches!(
            m.body,
            MessageBody::Heartbeat { .. }
                | MessageBody::Append { .. }
                | MessageBody::InstallSnapshot { .. }
        );
        if from_leader && r.leader.is_none_or(|(_, term)| m.term >= term) {
            if r.leader.is_some_and(|(l, t)| (l, t) != (m.from, m.term)) {
                // A new leader may not have our alarm: send it again.
                r.sends_left = r.sends_left.max(1);
            }
            r.leader = Some((m.from, m.term));
        }
    }

    /// Per tick on a failed member: forward the alarm to the leader, if one is known and
    /// sends are left.
    pub(super) fn alarm_tick(&mut self) {
        let election_ticks = u64::from(self.raft.config().election_ticks_min);
        let now = self.ticks;
        let Some(r) = &mut self.maintenance.raiser else {
            return;
        };
        let Some((leader, term)) = r.leader else {
            return;
        };
        if r.sends_left == 0 || now < r.next_send_tick {
            return;
        }
        r.sends_left -= 1;
        r.next_send_tick = now + election_ticks;
        r.seq += 1;
        let (seq, kind) = (r.seq, r.kind);
        let me = self.raft.id();
        let cmd = Command::Alarm(AlarmRequest {
            action: AlarmAction::Activate,
            member_id: me,
            kind: Some(kind),
        });
        let id = self.next_alarm_request_id();
        let data = LogCommand { id, cmd }.encode();
        let epoch = self.request_epoch().rotate_left(32) ^ ALARM_EPOCH_SALT;
        self.send_peer(Message {
            from: me,
            to: leader,
            term,
            body: MessageBody::Propose {
                epoch,
                seq,
                payloads: vec![EntryPayload::Normal(data)],
            },
        });
    }
}
