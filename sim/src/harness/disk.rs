//! The simulated disk: every write lands in an unsynced buffer and becomes durable only when
//! synced. A crash keeps a random prefix of the unsynced writes (disks write in order but may
//! stop anywhere) and loses the rest, including a torn last record, which checksums would
//! reject on read. madsim's own fs keeps unsynced data on kill, so this disk is ours.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sextant_core::{Entry, HardState, Index, RestoreState, Snapshot};
use sextant_net::node::{run_batch, DurableLog, StorageIo};
use thiserror::Error;

#[derive(Clone, Debug)]
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
    durable: Vec<Record>,
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
        self.durable.extend(kept);
        self.lost_writes += self.unsynced.len() as u64;
        self.unsynced.clear();
    }

    pub fn unsynced_len(&self) -> usize {
        self.unsynced.len()
    }

    /// Replays the durable writes into the state a restarted member is built from.
    pub fn recover(&self) -> RestoreState {
        let mut hard_state = HardState::default();
        let mut snapshot: Option<Snapshot> = None;
        let mut entries: Vec<Entry> = Vec::new();
        for r in &self.durable {
            match r {
                Record::Batch {
                    hard_state: hs,
                    snapshot: snap,
                    entries: ents,
                } => {
                    if let Some(s) = snap {
                        entries.clear();
                        snapshot = Some(s.clone());
                    }
                    if let Some(first) = ents.first() {
                        entries.retain(|e| e.index < first.index);
                        entries.extend(ents.iter().cloned());
                    }
                    if let Some(hs) = hs {
                        hard_state = *hs;
                    }
                }
                Record::SnapshotSaved(s) => {
                    if snapshot
                        .as_ref()
                        .is_none_or(|cur| s.meta.index > cur.meta.index)
                    {
                        entries.retain(|e| e.index > s.meta.index);
                        snapshot = Some(s.clone());
                    }
                }
            }
        }
        let applied = snapshot.as_ref().map_or(0, |s| s.meta.index);
        RestoreState {
            hard_state,
            snapshot,
            entries,
            applied,
        }
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
        d.durable.extend(pending);
        d.syncs += 1;
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), DiskError> {
        self.sync()?;
        let mut d = self.0.lock().expect("disk lock");
        d.durable.push(Record::SnapshotSaved(snapshot.clone()));
        Ok(())
    }

    fn compact(&mut self, _index: Index) -> Result<(), DiskError> {
        // Replay starts from the latest snapshot anyway; nothing to reclaim in memory.
        Ok(())
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
        let s = disk.lock().unwrap().recover();
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
        let s = disk.lock().unwrap().recover();
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
        let s = disk.lock().unwrap().recover();
        assert_eq!(s.applied, 1);
        assert_eq!(
            s.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![2]
        );
    }
}
