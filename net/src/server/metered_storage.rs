//! [`MeteredStorage`]: the member's file storage with its fsyncs timed into
//! `etcd_disk_wal_fsync_duration_seconds`.

use std::time::Instant;

use prometheus::Histogram;
use sextant_core::{Entry, HardState, Index, Snapshot};

use crate::node::DurableLog;
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

    fn compact(&mut self, index: Index) -> Result<(), WriteError> {
        DurableLog::compact(&mut self.inner, index)
    }
}
