//! [`MeteredStorage`]: the member's file storage with its fsyncs timed into
//! `etcd_disk_wal_fsync_duration_seconds`.

use std::time::Instant;

use bytes::Bytes;
use prometheus::Histogram;
use sextant_core::{Entry, HardState, Index, Snapshot, SnapshotMeta};

use crate::node::{DurableLog, SnapshotFileJob};
use crate::storage::{FileStorage, WriteError};

/// File storage whose every sync is observed in a histogram (one atomic add per group
/// commit, on the storage thread).
pub struct MeteredStorage {
    inner: FileStorage,
    fsync_secs: Histogram,
}

impl MeteredStorage {
    pub fn new(inner: FileStorage, fsync_secs: Histogram) -> MeteredStorage {
        MeteredStorage { inner, fsync_secs }
    }
}

impl DurableLog for MeteredStorage {
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
        let start = Instant::now();
        let r = DurableLog::sync(&mut self.inner);
        self.fsync_secs.observe(start.elapsed().as_secs_f64());
        r
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), WriteError> {
        DurableLog::save_snapshot(&mut self.inner, snapshot)
    }

    fn snapshot_file_job(&self, snapshot: &Snapshot) -> Option<SnapshotFileJob<WriteError>> {
        DurableLog::snapshot_file_job(&self.inner, snapshot)
    }

    fn record_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), WriteError> {
        DurableLog::record_snapshot(&mut self.inner, snapshot)
    }

    fn compact(&mut self, index: Index) -> Result<(), WriteError> {
        DurableLog::compact(&mut self.inner, index)
    }

    fn idle(&mut self) -> Result<(), WriteError> {
        DurableLog::idle(&mut self.inner)
    }

    fn stored_snapshot(&mut self, meta: &SnapshotMeta) -> Option<Bytes> {
        DurableLog::stored_snapshot(&mut self.inner, meta)
    }

    fn is_no_space(e: &WriteError) -> bool {
        e.is_no_space()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The member raises NOSPACE only if the storage it runs on tells a full disk apart.
    #[test]
    fn a_full_disk_is_reported_as_such_through_the_meter() {
        let full = WriteError::Io {
            action: "write",
            path: "wal/0000000000000001.wal".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        assert!(<MeteredStorage as DurableLog>::is_no_space(&full));
        let other = WriteError::Io {
            action: "fsync",
            path: "wal/0000000000000001.wal".into(),
            source: std::io::Error::other("input/output error"),
        };
        assert!(!<MeteredStorage as DurableLog>::is_no_space(&other));
    }

    /// The member's core keeps snapshots mapped from their files only if the meter passes
    /// the storage's mapping through (the trait's default keeps the heap copy).
    #[test]
    fn stored_snapshots_come_through_the_meter() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut storage, _) =
            FileStorage::open(dir.path(), crate::storage::StorageOptions::default())
                .expect("open storage");
        let snap = Snapshot {
            meta: sextant_core::SnapshotMeta {
                index: 7,
                term: 2,
                conf: sextant_core::ConfState::with_voters([1]),
            },
            data: Bytes::from_static(b"state machine"),
        };
        storage.append(None, Some(&snap), &[]).expect("append");
        storage.sync().expect("sync");
        let histogram =
            Histogram::with_opts(prometheus::HistogramOpts::new("t", "t")).expect("histogram");
        let mut metered = MeteredStorage::new(storage, histogram);
        let data = DurableLog::stored_snapshot(&mut metered, &snap.meta).expect("mapped");
        assert_eq!(data, snap.data);
        // Snapshot files are written on the side only if the meter passes the split through.
        assert!(DurableLog::snapshot_file_job(&metered, &snap).is_some());
    }
}
