//! The node loop's side of durable storage: operations go to a storage worker over a channel
//! and completions come back on another, so the loop never blocks on the disk. The worker
//! drains every queued write, writes them all and syncs once (group commit).

use bytes::Bytes;
use sextant_core::{Entry, HardState, Index, PersistId, Snapshot, SnapshotMeta};
use tokio::sync::mpsc;

/// Work for the storage worker.
#[derive(Debug)]
pub enum StorageOp {
    /// The persistent part of one `Ready`.
    Write {
        id: PersistId,
        hard_state: Option<HardState>,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
        must_sync: bool,
    },
    /// Save a snapshot the state machine took (durably), then drop log records up to
    /// `compact_to`.
    SaveSnapshot {
        snapshot: Snapshot,
        compact_to: Index,
    },
    /// Sent by the storage worker to itself when the file of the snapshot it is saving has
    /// been written on the side (`DurableLog::snapshot_file_job`); never by the node loop.
    /// `run_batch` ignores it.
    SnapshotFileWritten,
}

/// What the storage worker reports back.
#[derive(Debug)]
pub enum StorageDone {
    /// Every write up to and including `id` is durable.
    Persisted(PersistId),
    SnapshotSaved {
        index: Index,
        compact_to: Index,
    },
    /// The snapshot at `index` (saved, or received from the leader and written) read back
    /// from storage: the core keeps this instead of its heap copy.
    SnapshotStored {
        index: Index,
        data: Bytes,
    },
    /// The disk failed; nothing after the last `Persisted` is durable, and the worker takes
    /// no more writes.
    Failed(StorageFailure),
}

/// Why the storage worker stopped taking writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageFailure {
    pub message: String,
    /// The disk is full (the member raises a NOSPACE alarm).
    pub no_space: bool,
}

impl StorageFailure {
    pub(super) fn of<L: DurableLog>(what: &str, e: &L::Error) -> StorageFailure {
        StorageFailure {
            message: format!("{what}: {e}"),
            no_space: L::is_no_space(e),
        }
    }
}

impl std::fmt::Display for StorageFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The channel pair the node loop uses to talk to a storage worker.
pub struct StorageIo {
    pub ops: mpsc::UnboundedSender<StorageOp>,
    pub done: mpsc::UnboundedReceiver<StorageDone>,
}

/// Writes a snapshot's file durably, away from the log's thread (`DurableLog::snapshot_file_job`).
pub type SnapshotFileJob<E> = Box<dyn FnOnce() -> Result<(), E> + Send>;

/// Synchronous durable storage, driven by a worker (e.g. `FileStorage`).
pub trait DurableLog: Send + 'static {
    type Error: std::fmt::Display;
    fn append(
        &mut self,
        hard_state: Option<HardState>,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<(), Self::Error>;
    fn sync(&mut self) -> Result<(), Self::Error>;
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Self::Error>;
    /// `save_snapshot` in two steps, so appends go on while a large snapshot's file is
    /// written (seconds with a million keys): a job that writes the file durably and touches
    /// nothing the log uses, which the worker runs on its own thread, and `record_snapshot`,
    /// which the worker calls once the job succeeded. `None` (the default): `save_snapshot`
    /// does everything in line with the appends.
    fn snapshot_file_job(&self, _snapshot: &Snapshot) -> Option<SnapshotFileJob<Self::Error>> {
        None
    }
    /// Records a snapshot whose file a `snapshot_file_job` wrote (see there).
    fn record_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Self::Error> {
        self.save_snapshot(snapshot)
    }
    fn compact(&mut self, index: Index) -> Result<(), Self::Error>;
    /// Called by the worker whenever no operation is waiting: housekeeping that would
    /// otherwise delay a write (e.g. preallocating log space). An error is a storage failure.
    fn idle(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
    /// The data of a snapshot this log wrote (saved, or appended with a `Ready`) as the
    /// storage holds it, e.g. memory-mapped from its file, so neither the core (its copy of
    /// the snapshot) nor the state machine (the values the snapshot holds, see
    /// `KvStore::share_values`) keeps them on the heap. `None` (the default) keeps the copies.
    fn stored_snapshot(&mut self, _meta: &SnapshotMeta) -> Option<Bytes> {
        None
    }
    /// Whether `e` means the disk is full.
    fn is_no_space(_e: &Self::Error) -> bool {
        false
    }
}

/// Carries out one group of operations: writes in order, one sync for all of them, then the
/// acknowledgements. Snapshots are saved in order with the writes around them.
pub fn run_batch<L: DurableLog>(
    log: &mut L,
    batch: Vec<StorageOp>,
    done: &mpsc::UnboundedSender<StorageDone>,
) -> Result<(), StorageFailure> {
    let mut last_id: Option<PersistId> = None;
    let mut need_sync = false;
    let flush = |log: &mut L, last_id: &mut Option<PersistId>, need_sync: &mut bool| {
        if let Some(id) = last_id.take() {
            if std::mem::take(need_sync) {
                log.sync()
                    .map_err(|e| StorageFailure::of::<L>("fsync failed", &e))?;
            }
            let _ = done.send(StorageDone::Persisted(id));
        }
        Ok::<(), StorageFailure>(())
    };
    for op in batch {
        match op {
            StorageOp::Write {
                id,
                hard_state,
                snapshot,
                entries,
                must_sync,
            } => {
                log.append(hard_state, snapshot.as_ref(), &entries)
                    .map_err(|e| StorageFailure::of::<L>("write failed", &e))?;
                need_sync |= must_sync;
                last_id = Some(id);
                if let Some(s) = &snapshot {
                    report_stored(log, &s.meta, done);
                }
            }
            StorageOp::SaveSnapshot {
                snapshot,
                compact_to,
            } => {
                flush(log, &mut last_id, &mut need_sync)?;
                log.save_snapshot(&snapshot)
                    .map_err(|e| StorageFailure::of::<L>(SAVING_SNAPSHOT_FAILED, &e))?;
                snapshot_saved(log, &snapshot.meta, compact_to, done)?;
            }
            StorageOp::SnapshotFileWritten => {}
        }
    }
    flush(log, &mut last_id, &mut need_sync)
}

pub(super) const SAVING_SNAPSHOT_FAILED: &str = "saving snapshot failed";

/// After a snapshot is saved: drops the log up to `compact_to`, hands the stored copy back
/// and reports the save.
pub(super) fn snapshot_saved<L: DurableLog>(
    log: &mut L,
    meta: &SnapshotMeta,
    compact_to: Index,
    done: &mpsc::UnboundedSender<StorageDone>,
) -> Result<(), StorageFailure> {
    log.compact(compact_to)
        .map_err(|e| StorageFailure::of::<L>("compacting the log failed", &e))?;
    report_stored(log, meta, done);
    let _ = done.send(StorageDone::SnapshotSaved {
        index: meta.index,
        compact_to,
    });
    Ok(())
}

fn report_stored<L: DurableLog>(
    log: &mut L,
    meta: &SnapshotMeta,
    done: &mpsc::UnboundedSender<StorageDone>,
) {
    if let Some(data) = log.stored_snapshot(meta) {
        let _ = done.send(StorageDone::SnapshotStored {
            index: meta.index,
            data,
        });
    }
}
