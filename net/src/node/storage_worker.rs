//! The storage worker of a real member: an OS thread that takes the node loop's
//! `StorageOp`s and carries them out in group commits (`run_batch`), except that a locally
//! taken snapshot's file is written on a thread of its own (`DurableLog::snapshot_file_job`)
//! while appends go on. With a million keys that file is ~300 MB; written in line, every
//! client write waited seconds for it.
//!
//! Order is kept where it matters: the snapshot is recorded in the log (and the log compacted)
//! only after its file is durable, and any other operation involving a snapshot (an install
//! from the leader, a further save) waits, with everything sent after it, until that is done.
//! Plain appends overtaking the recording are safe: the snapshot covers applied, hence
//! committed, entries, which no append can change.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use super::storage_io::{snapshot_saved, SAVING_SNAPSHOT_FAILED};
use super::{run_batch, DurableLog, StorageDone, StorageFailure, StorageIo, StorageOp};
use sextant_core::{Index, Snapshot};

/// Runs `log` on a dedicated OS thread (blocking file I/O must not stall the runtime). The
/// thread ends once the node loop drops its `StorageIo`, after finishing what was queued
/// (including a snapshot whose file is being written).
pub fn spawn_storage_thread<L: DurableLog>(log: L) -> (StorageIo, std::thread::JoinHandle<()>)
where
    L::Error: Send,
{
    let (ops_tx, mut ops_rx) = mpsc::unbounded_channel::<StorageOp>();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let mut worker = Worker {
        log,
        done: done_tx,
        wake: ops_tx.downgrade(),
        writing: None,
        held: VecDeque::new(),
    };
    let thread = std::thread::Builder::new()
        .name("sextant-storage".into())
        .spawn(move || {
            let mut failed = false;
            while let Some(first) = ops_rx.blocking_recv() {
                let mut queue = VecDeque::from([first]);
                while let Ok(op) = ops_rx.try_recv() {
                    queue.push_back(op);
                }
                if failed {
                    continue;
                }
                if let Err(e) = worker.run(queue) {
                    failed = true;
                    let _ = worker.done.send(StorageDone::Failed(e));
                } else if ops_rx.is_empty() {
                    if let Err(e) = worker.log.idle() {
                        failed = true;
                        let f = StorageFailure::of::<L>("storage housekeeping failed", &e);
                        let _ = worker.done.send(StorageDone::Failed(f));
                    }
                }
            }
            // The loop is gone: finish a snapshot still being written, so a clean stop keeps it.
            if !failed && worker.writing.is_some() {
                let _ = worker.run(VecDeque::from([StorageOp::SnapshotFileWritten]));
            }
        })
        .expect("spawn the storage thread");
    (
        StorageIo {
            ops: ops_tx,
            done: done_rx,
        },
        thread,
    )
}

/// Whether `op` appends, saves or records a snapshot.
fn involves_snapshot(op: &StorageOp) -> bool {
    match op {
        StorageOp::Write { snapshot, .. } => snapshot.is_some(),
        StorageOp::SaveSnapshot { .. } => true,
        StorageOp::SnapshotFileWritten => false,
    }
}

/// A snapshot whose file is being written on the side.
struct Writing<E> {
    snapshot: Snapshot,
    compact_to: Index,
    job: std::thread::JoinHandle<Result<(), E>>,
}

struct Worker<L: DurableLog> {
    log: L,
    done: mpsc::UnboundedSender<StorageDone>,
    /// Our own queue, for the file job to say it is finished (weak: the worker still stops
    /// when the node loop drops its sender).
    wake: mpsc::WeakUnboundedSender<StorageOp>,
    writing: Option<Writing<L::Error>>,
    /// Operations waiting for `writing` to be recorded, in arrival order.
    held: VecDeque<StorageOp>,
}

impl<L: DurableLog> Worker<L>
where
    L::Error: Send,
{
    /// Carries out `queue` in order, grouping appends into group commits.
    fn run(&mut self, mut queue: VecDeque<StorageOp>) -> Result<(), StorageFailure> {
        let mut group = Vec::new();
        while let Some(op) = queue.pop_front() {
            match op {
                StorageOp::SnapshotFileWritten => {
                    run_batch(&mut self.log, std::mem::take(&mut group), &self.done)?;
                    self.record_written()?;
                    // What waited for the snapshot goes next, before anything that came later.
                    while let Some(op) = self.held.pop_back() {
                        queue.push_front(op);
                    }
                }
                op if !self.held.is_empty()
                    || (self.writing.is_some() && involves_snapshot(&op)) =>
                {
                    self.held.push_back(op)
                }
                StorageOp::SaveSnapshot {
                    snapshot,
                    compact_to,
                } => {
                    if let Some(op) = self.start_writing(snapshot, compact_to) {
                        group.push(op);
                    }
                }
                op => group.push(op),
            }
        }
        run_batch(&mut self.log, group, &self.done)
    }

    /// Starts writing the snapshot's file on its own thread; gives the operation back to be
    /// done in line when the log cannot split it or no thread can be started.
    fn start_writing(&mut self, snapshot: Snapshot, compact_to: Index) -> Option<StorageOp> {
        let Some(job) = self.log.snapshot_file_job(&snapshot) else {
            return Some(StorageOp::SaveSnapshot {
                snapshot,
                compact_to,
            });
        };
        let wake = self.wake.clone();
        let spawned = std::thread::Builder::new()
            .name("sextant-snapshot".into())
            .spawn(move || {
                in_background();
                let written = job();
                if let Some(ops) = wake.upgrade() {
                    let _ = ops.send(StorageOp::SnapshotFileWritten);
                }
                written
            });
        match spawned {
            Ok(job) => {
                self.writing = Some(Writing {
                    snapshot,
                    compact_to,
                    job,
                });
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a snapshot writer thread; saving in line");
                Some(StorageOp::SaveSnapshot {
                    snapshot,
                    compact_to,
                })
            }
        }
    }

    /// The file is written: record the snapshot, compact, report.
    fn record_written(&mut self) -> Result<(), StorageFailure> {
        let Some(w) = self.writing.take() else {
            return Ok(());
        };
        let failed = |e: &L::Error| StorageFailure::of::<L>(SAVING_SNAPSHOT_FAILED, e);
        match w.job.join() {
            Ok(written) => written.map_err(|e| failed(&e))?,
            Err(_) => {
                return Err(StorageFailure {
                    message: format!("{SAVING_SNAPSHOT_FAILED}: the writer thread panicked"),
                    no_space: false,
                })
            }
        }
        self.log
            .record_snapshot(&w.snapshot)
            .map_err(|e| failed(&e))?;
        snapshot_saved(&mut self.log, &w.snapshot.meta, w.compact_to, &self.done)
    }
}

/// Lowers the calling thread's CPU priority (nice 10): a snapshot's file is background work,
/// and writing hundreds of megabytes (mostly the kernel copying them into the page cache)
/// should give way to the threads clients wait on. Linux keeps a niceness per thread.
fn in_background() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: both calls only read the thread id and set its scheduling priority; a
        // failure (e.g. a sandbox refusing it) leaves the priority as it was.
        let refused = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) != 0
        };
        if refused {
            tracing::debug!("the snapshot writer keeps its priority (setpriority refused)");
        }
    }
}
