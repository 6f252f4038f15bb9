//! The storage worker writes a locally taken snapshot's file on the side: appends sent after
//! the snapshot are made durable before its file is done, the snapshot is recorded (and the
//! log compacted) only after the file, a snapshot install waits for it, and a clean stop
//! finishes it. Real `FileStorage` underneath; the test only decides when the file job runs.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sextant_net::core::{Config, Entry, HardState, Index, PersistId, Raft, Snapshot, SnapshotMeta};
use sextant_net::node::{
    spawn_storage_thread, DurableLog, SnapshotFileJob, StorageDone, StorageIo, StorageOp,
};
use sextant_net::storage::{FileStorage, StorageOptions, WriteError};

/// Writing a snapshot's file waits until the gate opens.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0 .0.lock().expect("gate") = true;
        self.0 .1.notify_all();
    }
    fn wait(&self) {
        let mut open = self.0 .0.lock().expect("gate");
        while !*open {
            open = self.0 .1.wait(open).expect("gate");
        }
    }
}

struct Gated {
    inner: FileStorage,
    gate: Gate,
}

impl DurableLog for Gated {
    type Error = WriteError;
    fn append(
        &mut self,
        hard_state: Option<HardState>,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<(), WriteError> {
        DurableLog::append(&mut self.inner, hard_state, snapshot, entries)
    }
    fn sync(&mut self) -> Result<(), WriteError> {
        DurableLog::sync(&mut self.inner)
    }
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), WriteError> {
        // Saving in line writes the file too: it waits at the same gate.
        self.gate.wait();
        DurableLog::save_snapshot(&mut self.inner, snapshot)
    }
    fn snapshot_file_job(&self, snapshot: &Snapshot) -> Option<SnapshotFileJob<WriteError>> {
        let job = DurableLog::snapshot_file_job(&self.inner, snapshot)?;
        let gate = self.gate.clone();
        Some(Box::new(move || {
            gate.wait();
            job()
        }))
    }
    fn record_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), WriteError> {
        DurableLog::record_snapshot(&mut self.inner, snapshot)
    }
    fn compact(&mut self, index: Index) -> Result<(), WriteError> {
        DurableLog::compact(&mut self.inner, index)
    }
    fn stored_snapshot(&mut self, meta: &SnapshotMeta) -> Option<Bytes> {
        DurableLog::stored_snapshot(&mut self.inner, meta)
    }
}

/// A single-member core that has campaigned: its `Ready`s are the writes (real receipts).
fn leader() -> Raft {
    let mut raft = Raft::bootstrap(Config::new(1), &[1]).expect("new core");
    raft.campaign().expect("campaign");
    raft
}

/// The persistent part of the core's next `Ready`, as the node loop hands it over.
fn next_write(raft: &mut Raft, proposal: Option<&'static [u8]>) -> (PersistId, StorageOp) {
    if let Some(p) = proposal {
        raft.propose(Bytes::from_static(p)).expect("propose");
    }
    let ready = raft.ready();
    let id = ready.persist_id.expect("something to persist");
    let op = StorageOp::Write {
        id,
        hard_state: ready.hard_state,
        snapshot: ready.snapshot,
        entries: ready.entries,
        must_sync: ready.must_sync,
    };
    (id, op)
}

fn recv(io: &mut StorageIo) -> StorageDone {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match io.done.try_recv() {
            Ok(d) => return d,
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                assert!(std::time::Instant::now() < deadline, "no report in 10 s");
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("storage worker gone: {e}"),
        }
    }
}

fn snapshot_at(index: Index, term: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            conf: sextant_net::core::ConfState::with_voters([1]),
        },
        data: Bytes::from(vec![7u8; 4096]),
    }
}

/// A storage worker on a fresh directory, its gate (closed) and a core to produce writes,
/// with the core's first two writes (its election, one entry) already durable.
fn start() -> (
    tempfile::TempDir,
    Gate,
    StorageIo,
    std::thread::JoinHandle<()>,
    Raft,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let gate = Gate::default();
    let (inner, _) = FileStorage::open(dir.path(), StorageOptions::default()).expect("open");
    let (io, thread) = spawn_storage_thread(Gated {
        inner,
        gate: gate.clone(),
    });
    let (mut io, mut raft) = (io, leader());
    write_durably(&mut io, &mut raft, None);
    write_durably(&mut io, &mut raft, Some(b"a"));
    (dir, gate, io, thread, raft)
}

/// Sends the core's next write and waits for the worker to report it durable.
fn write_durably(io: &mut StorageIo, raft: &mut Raft, proposal: Option<&'static [u8]>) {
    let (id, op) = next_write(raft, proposal);
    io.ops.send(op).expect("send");
    assert!(matches!(recv(io), StorageDone::Persisted(got) if got == id));
}

#[test]
fn appends_go_on_while_a_snapshot_file_is_written() {
    let (dir, gate, mut io, thread, mut raft) = start();
    let term = raft.term();
    let snap_index = raft.last_index();
    io.ops
        .send(StorageOp::SaveSnapshot {
            snapshot: snapshot_at(snap_index, term),
            compact_to: snap_index,
        })
        .expect("send");

    // The file job is stuck at the gate: later appends are still made durable.
    write_durably(&mut io, &mut raft, Some(b"b"));

    // A snapshot from the leader, and what follows it, wait for the saved one.
    let (install_id, _) = next_write(&mut raft, Some(b"c"));
    let install = snapshot_at(raft.last_index() + 5, term);
    io.ops
        .send(StorageOp::Write {
            id: install_id,
            hard_state: None,
            snapshot: Some(install.clone()),
            entries: vec![],
            must_sync: true,
        })
        .expect("send");
    let (after_id, _) = next_write(&mut raft, Some(b"d"));
    let after = Entry {
        term,
        index: install.meta.index + 1,
        payload: sextant_net::core::EntryPayload::Normal(Bytes::from_static(b"e")),
    };
    io.ops
        .send(StorageOp::Write {
            id: after_id,
            hard_state: None,
            snapshot: None,
            entries: vec![after],
            must_sync: true,
        })
        .expect("send");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        io.done.try_recv().is_err(),
        "held writes went ahead of the snapshot"
    );

    gate.open();
    let mut reports = Vec::new();
    loop {
        let d = recv(&mut io);
        let last = matches!(d, StorageDone::Persisted(id) if id == after_id);
        reports.push(match d {
            StorageDone::Persisted(id) => format!("persisted {}", id.get()),
            StorageDone::SnapshotSaved { index, compact_to } => {
                format!("saved {index} compact_to {compact_to}")
            }
            StorageDone::SnapshotStored { index, .. } => format!("stored {index}"),
            StorageDone::Failed(f) => panic!("storage failed: {f}"),
        });
        if last {
            break;
        }
    }
    assert_eq!(
        reports,
        [
            format!("stored {snap_index}"),
            format!("saved {snap_index} compact_to {snap_index}"),
            format!("stored {}", install.meta.index),
            format!("persisted {}", after_id.get()),
        ]
    );
    drop(io);
    thread.join().expect("storage thread");
    let (_, recovered) = FileStorage::open(dir.path(), StorageOptions::default()).expect("reopen");
    let s = recovered.state.snapshot.expect("a snapshot");
    assert_eq!(s.meta.index, install.meta.index);
    assert_eq!(
        recovered.state.entries.last().map(|e| e.index),
        Some(install.meta.index + 1)
    );
}

#[test]
fn a_clean_stop_finishes_the_snapshot_being_written() {
    let (dir, gate, io, thread, raft) = start();
    let index = raft.last_index();
    io.ops
        .send(StorageOp::SaveSnapshot {
            snapshot: snapshot_at(index, raft.term()),
            compact_to: index,
        })
        .expect("send");
    drop(io.ops);
    std::thread::sleep(Duration::from_millis(100));
    gate.open();
    thread.join().expect("storage thread");
    let (_, recovered) = FileStorage::open(dir.path(), StorageOptions::default()).expect("reopen");
    assert_eq!(
        recovered.state.snapshot.map(|s| s.meta.index),
        Some(index),
        "the snapshot written during the stop is recorded"
    );
}
