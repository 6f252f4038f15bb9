//! `KvStore`: the state machine — the versioned keyspace, the lease table and the member's read
//! limits — and the command dispatch. Commands are validated, checked against the state, and
//! only then applied, so a refused command changes nothing.

use bytes::Bytes;

use super::alarm::{AlarmKind, AlarmMember, Alarms};
use super::hash::{KvHash, KvHasher};
use super::history::{HistoryBatch, HistoryRequest};
use super::lease_table::{LeaseInfo, LeaseTable, LeaseTtl};
use super::mvcc::{Mvcc, SharedValues};
use super::range::{RangeRequest, RangeResponse};
use super::snapshot_encoder::SnapshotEncoder;
use super::txn::{self, TxnRequest, TxnResponse};
use super::validate::{validate, validate_txn};
use super::value_sharing::ValueSharing;
use super::write::WriteTxn;
use super::{
    snapshot, Applied, Command, CommandResult, KeyValue, KvError, KvLimits, SnapshotDecodeError,
};
use crate::conf::ConfChange;
use crate::members::MemberRegistry;

/// The key-value state machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    mvcc: Mvcc,
    leases: LeaseTable,
    members: MemberRegistry,
    alarms: Alarms,
    /// Member configuration, not replicated state: not in snapshots.
    limits: KvLimits,
}

impl KvStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limits(limits: KvLimits) -> Self {
        KvStore {
            limits,
            ..Self::default()
        }
    }

    pub fn limits(&self) -> &KvLimits {
        &self.limits
    }

    pub fn set_limits(&mut self, limits: KvLimits) {
        self.limits = limits;
    }

    /// The revision of the last write (1 for a fresh store).
    pub fn revision(&self) -> i64 {
        self.mvcc.revision()
    }

    /// Reads, and watches, below this revision fail with [`KvError::Compacted`]; 0 before any
    /// compaction.
    pub fn compact_revision(&self) -> i64 {
        self.mvcc.compact_revision().max(0)
    }

    /// Keys alive at the current revision.
    pub fn len(&self) -> usize {
        self.mvcc.live_keys()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of keys and values held, history included.
    pub fn size_bytes(&self) -> u64 {
        self.mvcc.stored_bytes()
    }

    /// Approximate heap bytes the state occupies (index, history, log, leases).
    pub fn memory_bytes(&self) -> usize {
        self.mvcc.memory_bytes() + self.leases.memory_bytes()
    }

    /// A key's current state.
    pub fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.mvcc.get_at(key, self.mvcc.revision())
    }

    /// etcd's `Range`, at the current or a past revision.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, KvError> {
        self.mvcc
            .range(req, self.mvcc.revision(), self.limits.range_keys_max)
    }

    /// Serves a txn that only reads ([`TxnRequest::is_read_only`]) without the log, as etcd
    /// does; answers exactly what applying it would.
    pub fn txn_read(&self, req: &TxnRequest) -> Result<TxnResponse, KvError> {
        validate_txn(req, None)?;
        if !req.is_read_only() {
            return Err(KvError::TxnNotReadOnly);
        }
        let rev = self.mvcc.revision();
        let path = self.mvcc.decide(req, rev);
        self.mvcc.check_ranges(req, &path, rev)?;
        let mut resp = self
            .mvcc
            .read_txn(req, &path, rev, self.limits.range_keys_max)?;
        resp.revision = rev;
        Ok(resp)
    }

    /// The events of a key range from a revision on, for watch replay.
    pub fn history(&self, req: &HistoryRequest) -> Result<HistoryBatch, KvError> {
        self.mvcc.events(req)
    }

    pub fn lease(&self, id: i64) -> Option<LeaseInfo> {
        self.leases.info(id)
    }

    /// How many leases exist.
    pub fn lease_count(&self) -> usize {
        self.leases.len()
    }

    /// Every lease, by id (etcd's `LeaseLeases`; also what a new leader's lessor starts from).
    pub fn leases(&self) -> Vec<LeaseTtl> {
        self.leases.records().collect()
    }

    /// The id a lease granted with id 0 gets next.
    pub(crate) fn next_lease_id(&self) -> i64 {
        self.leases.next_id()
    }

    pub(crate) fn mvcc(&self) -> &Mvcc {
        &self.mvcc
    }

    /// The member registry (etcd's membership store), replicated with the keyspace.
    pub fn members(&self) -> &MemberRegistry {
        &self.members
    }

    /// Applies a membership change entry from the log to the member registry.
    pub fn apply_conf_change(&mut self, cc: &ConfChange) {
        self.members.apply_conf_change(cc);
    }

    /// The active alarms, by member then kind.
    pub fn alarms(&self) -> Vec<AlarmMember> {
        self.alarms.list().iter().copied().collect()
    }

    /// etcd's `HashKV`: a hash of every retained version up to `revision` (0: the current
    /// one), equal on every replica that applied the same log (see [`KvHash`]).
    pub fn hash_kv(&self, revision: i64) -> Result<KvHash, KvError> {
        let mut hasher = KvHasher::new(self, revision)?;
        let hash = hasher
            .step(self, usize::MAX)
            .expect("the store is the one the hasher started on, unchanged");
        Ok(hash.expect("every key in one step"))
    }

    /// etcd's `Hash`: a CRC-32C of the whole replicated state (its snapshot encoding, a pure
    /// function of the state).
    pub fn hash(&self) -> u32 {
        KvStore::snapshot_hash(&self.snapshot())
    }

    /// [`KvStore::hash`] of the state `snapshot` encodes (e.g. one a [`super::SnapshotEncoder`]
    /// finished).
    pub fn snapshot_hash(snapshot: &[u8]) -> u32 {
        crc32c::crc32c(snapshot)
    }

    /// Applies one command from the log. Refused commands change nothing (and bump no
    /// revision); the answer is the same on every replica.
    pub fn apply(&mut self, cmd: &Command) -> Result<Applied, KvError> {
        validate(cmd, None)?;
        self.check_alarms(cmd)?;
        let current = self.mvcc.revision();
        match cmd {
            Command::Put(p) => {
                // etcd's put outside a txn checks the lease before the key.
                if p.lease != 0 && !self.leases.contains(p.lease) {
                    return Err(KvError::LeaseNotFound);
                }
                if (p.ignore_value || p.ignore_lease) && self.mvcc.get_at(&p.key, current).is_none()
                {
                    return Err(KvError::KeyNotFound);
                }
                let mut w = WriteTxn::new(&mut self.mvcc, &mut self.leases);
                let r = w.put(p);
                Ok(finish(w, r.into()))
            }
            Command::DeleteRange(d) => {
                let mut w = WriteTxn::new(&mut self.mvcc, &mut self.leases);
                let r = w.delete_range(d);
                Ok(finish(w, r.into()))
            }
            Command::Txn(t) => self.apply_txn(t),
            Command::Compact { revision, .. } => {
                // etcd's `updateCompactRev`: compacted first, then future.
                if *revision <= self.mvcc.compact_revision() {
                    return Err(self.mvcc.compacted());
                }
                if *revision > current {
                    return Err(KvError::FutureRevision);
                }
                self.mvcc.compact(*revision);
                Ok(unchanged(current, CommandResult::Compact))
            }
            Command::LeaseGrant { id, ttl_secs } => {
                let (id, ttl_secs) = self.leases.grant(*id, *ttl_secs)?;
                Ok(unchanged(
                    current,
                    CommandResult::LeaseGrant { id, ttl_secs },
                ))
            }
            Command::LeaseRevoke { id } => {
                let mut w = WriteTxn::new(&mut self.mvcc, &mut self.leases);
                w.revoke(*id)?;
                Ok(finish(w, CommandResult::LeaseRevoke))
            }
            Command::LeaseCheckpoint { checkpoints } => {
                for c in checkpoints {
                    self.leases.checkpoint(c.id, c.remaining_ttl_secs);
                }
                Ok(unchanged(current, CommandResult::LeaseCheckpoint))
            }
            Command::MemberPublish {
                id,
                name,
                client_urls,
            } => {
                self.members.publish(*id, name, client_urls)?;
                Ok(unchanged(current, CommandResult::MemberPublish))
            }
            Command::MemberUpdate { id, peer_urls } => {
                self.members.update_peer_urls(*id, peer_urls)?;
                Ok(unchanged(current, CommandResult::MemberUpdate))
            }
            Command::Alarm(req) => {
                let alarms = self.alarms.apply(req);
                Ok(unchanged(current, CommandResult::Alarm { alarms }))
            }
        }
    }

    /// The writes active alarms refuse (etcd's corrupt and capped appliers).
    fn check_alarms(&self, cmd: &Command) -> Result<(), KvError> {
        if self.alarms.is_empty() {
            return Ok(());
        }
        if self.alarms.any(AlarmKind::Corrupt)
            && !matches!(cmd, Command::Alarm(_) | Command::LeaseCheckpoint { .. })
        {
            return Err(KvError::Corrupt);
        }
        let grows = match cmd {
            Command::Put(_) | Command::LeaseGrant { .. } => true,
            Command::Txn(t) => !t.is_read_only(),
            _ => false,
        };
        if grows && self.alarms.any(AlarmKind::NoSpace) {
            return Err(KvError::NoSpace);
        }
        Ok(())
    }

    fn apply_txn(&mut self, t: &TxnRequest) -> Result<Applied, KvError> {
        let begin = self.mvcc.revision();
        let path = self.mvcc.decide(t, begin);
        let leases = &self.leases;
        txn::check_puts(&self.mvcc, &|id| leases.contains(id), t, &path, begin)?;
        self.mvcc.check_ranges(t, &path, begin)?;
        let mut w = WriteTxn::new(&mut self.mvcc, &mut self.leases);
        let resp = txn::run(&mut w, t, &path);
        let (revision, events) = w.finish();
        Ok(Applied {
            revision,
            result: CommandResult::Txn(TxnResponse { revision, ..resp }),
            events,
        })
    }

    /// The whole state (history since the compaction point, leases, member registry, alarms),
    /// deterministically encoded.
    /// [`SnapshotEncoder`] encodes it in slices, while the store goes on taking writes.
    pub fn snapshot(&self) -> Bytes {
        SnapshotEncoder::encode_now(self)
    }

    /// Points the values of versions that `encoded` (a [`KvStore::snapshot`] of this store,
    /// taken at any earlier point) holds into `stored`, a copy of `encoded` as the driver
    /// stored it (e.g. the snapshot file, memory-mapped), so the store stops holding them on
    /// the heap: [`ValueSharing`] in one go.
    pub fn share_values(&mut self, encoded: &Bytes, stored: &Bytes) -> SharedValues {
        ValueSharing::new(encoded.clone(), stored.clone()).run(self)
    }

    pub(crate) fn mvcc_mut(&mut self) -> &mut Mvcc {
        &mut self.mvcc
    }

    /// The store a [`KvStore::snapshot`] was taken of (empty data: a fresh store), with the
    /// default limits. Copies `data`: [`KvStore::restore_bytes`] does not.
    pub fn restore(data: &[u8]) -> Result<KvStore, SnapshotDecodeError> {
        KvStore::restore_bytes(&Bytes::copy_from_slice(data))
    }

    /// [`KvStore::restore`], with the values as slices of `data` instead of copies: `data`
    /// stays allocated while any of them is retained, so a driver that has the snapshot
    /// stored elsewhere (e.g. in a file it maps) moves them there with
    /// [`KvStore::share_values`] and lets `data` go.
    pub fn restore_bytes(data: &Bytes) -> Result<KvStore, SnapshotDecodeError> {
        if data.is_empty() {
            return Ok(KvStore::default());
        }
        let d = snapshot::decode(data)?;
        Ok(KvStore {
            mvcc: d.mvcc,
            leases: d.leases,
            members: d.members,
            alarms: d.alarms,
            limits: KvLimits::default(),
        })
    }
}

fn finish(w: WriteTxn<'_>, result: CommandResult) -> Applied {
    let (revision, events) = w.finish();
    Applied {
        revision,
        result,
        events,
    }
}

fn unchanged(revision: i64, result: CommandResult) -> Applied {
    Applied {
        revision,
        result,
        events: Vec::new(),
    }
}
