//! The simulated disk: every write lands in an unsynced buffer and becomes durable only when
//! synced. A crash keeps a random prefix of the unsynced writes (disks write in order but may
//! stop anywhere) and loses the rest, including a torn last record, which checksums would
//! reject on read. madsim's own fs keeps unsynced data on kill, so this disk is ours.
//!
//! Durable records are stored encoded, each with a CRC-32C, and can rot: `corrupt` flips a
//! bit of one of them. Recovery verifies every checksum and refuses a corrupt disk with the
//! record it failed on, rather than rebuilding a member from damaged state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sextant_core::{Entry, HardState, Index, RestoreState, Snapshot, SnapshotMeta};
use sextant_net::node::{run_batch, DurableLog, StorageIo};
use thiserror::Error;

/// A durable record as it lies on the platter: its encoding and that encoding's checksum.
#[derive(Clone, Debug)]
struct Sealed {
    bytes: Vec<u8>,
    crc: u32,
}

impl Sealed {
    fn seal(r: &Record) -> Sealed {
        let bytes = postcard::to_stdvec(r).expect("in-memory encoding cannot fail");
        let crc = crc32c::crc32c(&bytes);
        Sealed { bytes, crc }
    }

    fn open(&self) -> Option<Record> {
        if crc32c::crc32c(&self.bytes) != self.crc {
            return None;
        }
        postcard::from_bytes(&self.bytes).ok()
    }
}

/// Recovery found a record whose checksum does not match.
#[derive(Debug, Error)]
#[error("disk corruption: durable record {record} of {records} fails its checksum")]
pub struct CorruptDisk {
    pub record: usize,
    pub records: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Record {
    Batch {
        hard_state: Option<HardState>,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
    },
    SnapshotSaved(Snapshot),
}

/// What one member's disk holds. It lives outside the member's madsim node, so it survives
/// crashes of the node.
#[derive(Debug, Default)]
pub struct DiskState {
    durable: Vec<Sealed>,
    unsynced: Vec<Record>,
    /// Writes lost in crashes (for reports).
    pub lost_writes: u64,
    pub syncs: u64,
}

pub type SharedDisk = Arc<Mutex<DiskState>>;

#[derive(Debug, Error)]
#[error("simulated disk failure")]
pub struct DiskError;

impl DiskState {
    /// True when nothing was ever made durable (a brand-new member).
    pub fn is_blank(&self) -> bool {
        self.durable.is_empty()
    }

    /// A crash: a random prefix (`keep` of them) of the unsynced writes reached the platter;
    /// the rest are lost.
    pub fn crash(&mut self, keep: usize) {
        let keep = keep.min(self.unsynced.len());
        let kept: Vec<Record> = self.unsynced.drain(..keep).collect();
        self.durable.extend(kept.iter().map(Sealed::seal));
        self.lost_writes += self.unsynced.len() as u64;
        self.unsynced.clear();
    }

    pub fn unsynced_len(&self) -> usize {
        self.unsynced.len()
    }

    /// Silent corruption: flips one bit of the durable record `pick` selects (modulo the
    /// number of records). Returns false when nothing is durable yet.
    pub fn corrupt(&mut self, pick: usize, bit: usize) -> bool {
        if self.durable.is_empty() {
            return false;
        }
        let n = self.durable.len();
        let rec = &mut self.durable[pick % n];
        if rec.bytes.is_empty() {
            rec.crc ^= 1;
        } else {
            let bit = bit % (rec.bytes.len() * 8);
            rec.bytes[bit / 8] ^= 1 << (bit % 8);
        }
        true
    }

    /// The data of the snapshot `meta` as this disk holds it: a copy of its own, as a real
    /// disk's file is (the node shares the state machine's values with it). The newest
    /// record holding it wins; a record failing its checksum is skipped.
    pub fn stored_snapshot(&self, meta: &SnapshotMeta) -> Option<Bytes> {
        let held = |r: &Record| match r {
            Record::Batch {
                snapshot: Some(s), ..
            }
            | Record::SnapshotSaved(s)
                if s.meta == *meta =>
            {
                Some(Bytes::copy_from_slice(&s.data))
            }
            _ => None,
        };
        self.unsynced
            .iter()
            .rev()
            .find_map(held)
            .or_else(|| self.durable.iter().rev().find_map(|r| held(&r.open()?)))
    }

    /// Replays the durable writes into the state a restarted member is built from, verifying
    /// every record's checksum.
    pub fn recover(&self) -> Result<RestoreState, CorruptDisk> {
        let mut hard_state = HardState::default();
        let mut snapshot: Option<Snapshot> = None;
        let mut entries: Vec<Entry> = Vec::new();
        for (i, sealed) in self.durable.iter().enumerate() {
            let r = sealed.open().ok_or(CorruptDisk {
                record: i,
                records: self.durable.len(),
            })?;
            match r {
                Record::Batch {
                    hard_state: hs,
                    snapshot: snap,
                    entries: ents,
                } => {
                    if let Some(s) = snap {
                        entries.clear();
                        snapshot = Some(s);
                    }
                    if let Some(first) = ents.first() {
                        let first = first.index;
                        entries.retain(|e| e.index < first);
                        entries.extend(ents);
                    }
                    if let Some(hs) = hs {
                        hard_state = hs;
                    }
                }
                Record::SnapshotSaved(s) => {
                    if snapshot
                        .as_ref()
                        .is_none_or(|cur| s.meta.index > cur.meta.index)
                    {
                        entries.retain(|e| e.index > s.meta.index);
                        snapshot = Some(s);
                    }
                }
            }
        }
        let applied = snapshot.as_ref().map_or(0, |s| s.meta.index);
        Ok(RestoreState {
            hard_state,
            snapshot,
            entries,
            applied,
        })
    }
}

struct SimDisk(SharedDisk);

impl DurableLog for SimDisk {
    type Error = DiskError;

    fn append(
        &mut self,
        hard_state: Option<HardState>,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<(), DiskError> {
        let mut d = self.0.lock().expect("disk lock");
        d.unsynced.push(Record::Batch {
            hard_state,
            snapshot: snapshot.cloned(),
            entries: entries.to_vec(),
        });
        Ok(())
    }

    fn sync(&mut self) -> Result<(), DiskError> {
        let mut d = self.0.lock().expect("disk lock");
        let pending: Vec<Record> = d.unsynced.drain(..).collect();
        d.durable.extend(pending.iter().map(Sealed::seal));
        d.syncs += 1;
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), DiskError> {
        self.sync()?;
        let mut d = self.0.lock().expect("disk lock");
        d.durable
            .push(Sealed::seal(&Record::SnapshotSaved(snapshot.clone())));
        Ok(())
    }

    fn compact(&mut self, _index: Index) -> Result<(), DiskError> {
        // Replay starts from the latest snapshot anyway; nothing to reclaim in memory.
        Ok(())
    }

    fn stored_snapshot(&mut self, meta: &SnapshotMeta) -> Option<Bytes> {
        self.0.lock().expect("disk lock").stored_snapshot(meta)
    }
}

/// Starts the storage worker of one member as a task on the current madsim node: it groups
/// queued writes, waits a simulated fsync latency, and writes them through `run_batch` (the
/// same group-commit code the real storage thread runs).
pub fn spawn_storage_task(disk: SharedDisk, fsync_micros: (u64, u64)) -> StorageIo {
    use madsim::rand::Rng;
    let (ops_tx, mut ops_rx) = tokio::sync::mpsc::unbounded_channel();
    let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut log = SimDisk(disk);
        while let Some(first) = ops_rx.recv().await {
            let micros = madsim::rand::thread_rng().gen_range(fsync_micros.0..=fsync_micros.1);
            tokio::time::sleep(Duration::from_micros(micros)).await;
            let mut batch = vec![first];
            while let Ok(op) = ops_rx.try_recv() {
                batch.push(op);
            }
            if let Err(e) = run_batch(&mut log, batch, &done_tx) {
                let _ = done_tx.send(sextant_net::node::StorageDone::Failed(e));
                return;
            }
        }
    });
    StorageIo {
        ops: ops_tx,
        done: done_rx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_core::EntryPayload;

    fn ent(index: Index, term: u64) -> Entry {
        Entry {
            index,
            term,
            payload: EntryPayload::Empty,
        }
    }

    #[test]
    fn crash_loses_unsynced_suffix_only() {
        let disk: SharedDisk = Default::default();
        let mut log = SimDisk(disk.clone());
        log.append(
            Some(HardState {
                term: 1,
                vote: Some(1),
                commit: 0,
            }),
            None,
            &[ent(1, 1)],
        )
        .unwrap();
        log.sync().unwrap();
        log.append(None, None, &[ent(2, 1)]).unwrap();
        log.append(None, None, &[ent(3, 1)]).unwrap();
        disk.lock().unwrap().crash(1);
        let s = disk.lock().unwrap().recover().unwrap();
        assert_eq!(
            s.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(s.hard_state.term, 1);
        assert_eq!(disk.lock().unwrap().lost_writes, 1);
    }

    #[test]
    fn replay_honours_suffix_replacement_and_snapshots() {
        let disk: SharedDisk = Default::default();
        let mut log = SimDisk(disk.clone());
        log.append(None, None, &[ent(1, 1), ent(2, 1), ent(3, 1)])
            .unwrap();
        log.append(None, None, &[ent(2, 2)]).unwrap();
        log.sync().unwrap();
        let s = disk.lock().unwrap().recover().unwrap();
        assert_eq!(
            s.entries
                .iter()
                .map(|e| (e.index, e.term))
                .collect::<Vec<_>>(),
            vec![(1, 1), (2, 2)]
        );
        let mut snap = Snapshot::default();
        snap.meta.index = 1;
        snap.meta.term = 1;
        log.save_snapshot(&snap).unwrap();
        let s = disk.lock().unwrap().recover().unwrap();
        assert_eq!(s.applied, 1);
        assert_eq!(
            s.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![2]
        );
    }
}

#[cfg(test)]
mod corruption_tests {
    use super::*;
    use sextant_core::EntryPayload;

    #[test]
    fn a_flipped_bit_is_refused_with_its_record() {
        let disk: SharedDisk = Default::default();
        let mut log = SimDisk(disk.clone());
        for i in 1..=3 {
            let e = Entry {
                index: i,
                term: 1,
                payload: EntryPayload::Empty,
            };
            log.append(None, None, &[e]).unwrap();
            log.sync().unwrap();
        }
        assert!(disk.lock().unwrap().recover().is_ok());
        for bit in [0, 7, 13] {
            let d2: SharedDisk = Default::default();
            d2.lock().unwrap().durable = disk.lock().unwrap().durable.clone();
            assert!(d2.lock().unwrap().corrupt(1, bit));
            let err = d2.lock().unwrap().recover().unwrap_err();
            assert_eq!((err.record, err.records), (1, 3));
        }
    }
}
