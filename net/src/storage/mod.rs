//! Durable file storage of one Sextant node: the Raft log, hard state and state-machine
//! snapshots in one data directory.
//!
//! # Use
//!
//! The node loop owns one [`FileStorage`] on a dedicated thread. [`FileStorage::open`] rebuilds
//! the [`RestoreState`] the core is created from. For each batch of `Ready`s it calls
//! [`FileStorage::append`] once per `Ready` (hard state, snapshot, entries), then
//! [`FileStorage::sync`] once (group commit: one fdatasync for the whole batch), and only then
//! reports the batch persisted to the core. Locally taken snapshots go to
//! [`FileStorage::save_snapshot`], followed by [`FileStorage::compact`].
//!
//! # On disk
//!
//! ```text
//! <dir>/FORMAT                              "sextant-storage format 1\n"
//! <dir>/wal/0000000000000001.wal            log segments, numbered without gaps
//! <dir>/snap/<index:016x>-<term:016x>.snap  snapshot files (meta + data, checksummed)
//! ```
//!
//! Everything the log needs lives in the write-ahead log (`wal.rs`): entries, the hard state
//! (term, vote and commit: the whole [`HardState`] of a `Ready` travels in the same record as
//! its entries) and snapshot markers. One `append` is one checksummed record, so the
//! persistent part of a `Ready` is on disk entirely or not at all, and a single fdatasync
//! makes a whole group commit durable in order; a separate hard-state file would need its own
//! fsyncs (file and directory) on every term change and could disagree with the log after a
//! crash. Each segment starts with a header record holding the complete log state, so
//! compaction deletes whole old segments and replay starts from the oldest one left.
//!
//! Snapshot files are written atomically (temp, fsync, rename, fsync dir, `atomic.rs`) and
//! only count once the log records them: a snapshot received from the leader is written to
//! its file during `append` and recorded in that append's log record, becoming durable with
//! the batch at `sync`; on replay it replaces every entry before it. A file the log never
//! recorded (a crash in between) is removed on open. The latest
//! [`StorageOptions::keep_snapshots`] snapshot files are kept.
//!
//! # Failures
//!
//! On open, a torn record at the end of the last segment (short header, short payload, or a
//! checksum mismatch with nothing valid after it) is cut off and reported in
//! [`Recovered::repaired_tail`]. Damage anywhere else (a bad record followed by valid data,
//! any damage in an older segment, a missing segment) refuses the open with
//! [`OpenError::Corrupt`] or [`OpenError::Inconsistent`], naming the file and byte offset.
//!
//! A failed write or sync (disk full, I/O error) returns [`WriteError::Io`] and poisons the
//! storage: every later call fails with [`WriteError::Poisoned`] ("storage failed earlier:
//! …"). Nothing is reported durable that was not synced; reopening recovers at least
//! everything synced before the failure.
//!
//! # Limitations
//!
//! - Segments are not preallocated; an fdatasync after appending also writes the file size.
//! - Torn-tail detection assumes unsynced data reaches the disk as a prefix. If a crash
//!   persists a later page of unsynced data but not an earlier one, open refuses the log as
//!   corrupt (never loses data silently); an operator must then cut the tail by hand.
//! - After a failed fsync the page cache may still hold data the disk lost (Linux drops the
//!   dirty state); a reopen in the same boot can read it back. Restart the machine or accept
//!   that such unsynced data may come back (it was never reported durable either way).

mod atomic;
mod error;
mod io;
mod layout;
mod record;
mod snap;
mod wal;

use std::fmt;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sextant_core::{Entry, HardState, Index, RestoreState, Snapshot, SnapshotMeta};

pub use error::{OpenError, WriteError};
pub use io::FaultInjector;
pub use layout::FORMAT_VERSION;

use error::{IoContext, IoFail};
use io::Io;
use layout::{SNAP_DIR, WAL_DIR};
use wal::{LogState, SnapRef, TornSegment, Wal, WalRecordRef};

/// Tuning of a [`FileStorage`].
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// A new log segment is started once the active one has this many bytes (default 64 MiB).
    pub segment_bytes: u64,
    /// Log space preallocated (zero-filled and synced, when idle) ahead of the records, so
    /// a record's fdatasync need not commit a new file size (default 1 MiB; 0 disables).
    pub preallocate_bytes: u64,
    /// Snapshot files kept, the current one included (default 3, at least 1).
    pub keep_snapshots: usize,
    /// Test hook: inject disk-full and fsync failures. `None` in production.
    pub faults: Option<FaultInjector>,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            segment_bytes: 64 * 1024 * 1024,
            preallocate_bytes: 1024 * 1024,
            keep_snapshots: 3,
            faults: None,
        }
    }
}

/// What [`FileStorage::open`] read back.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// The state to build the core from; `applied` is the snapshot index (the state machine
    /// is rebuilt from the snapshot and the committed entries after it).
    pub state: RestoreState,
    /// A torn write at the end of the log that was cut off; the caller should log it.
    pub repaired_tail: Option<TornTail>,
}

/// A torn record (or segment) at the end of the log, removed on open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub file: PathBuf,
    /// Where the valid content ends (the file was cut to this length); 0 when the whole file
    /// was removed.
    pub offset: u64,
    /// Bytes dropped.
    pub dropped_bytes: u64,
    /// True when the file was removed (it held no complete segment header).
    pub removed_file: bool,
    /// What was wrong with the first dropped byte.
    pub reason: String,
}

impl fmt::Display for TornTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.removed_file {
            write!(
                f,
                "removed torn log segment {} ({} bytes): {}",
                self.file.display(),
                self.dropped_bytes,
                self.reason
            )
        } else {
            write!(
                f,
                "cut torn tail of {} at byte offset {} ({} bytes dropped): {}",
                self.file.display(),
                self.offset,
                self.dropped_bytes,
                self.reason
            )
        }
    }
}

/// The durable storage of one node. See the module docs.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    snap_dir: PathBuf,
    io: Io,
    keep_snapshots: usize,
    wal: Wal,
    /// The log as appended (durable or not).
    state: LogState,
    /// Something was appended since the last successful sync.
    dirty: bool,
    /// The snapshot the durable log starts after.
    durable_snapshot: Option<SnapRef>,
    /// Set by the first failed write or sync.
    failure: Option<String>,
}

impl FileStorage {
    /// Opens (creating or initialising when missing or empty) the store in `dir` and reads
    /// back its state, cutting a torn tail. See [`OpenError`] for what is refused.
    pub fn open(dir: &Path, opts: StorageOptions) -> Result<(FileStorage, Recovered), OpenError> {
        let io = Io::new(opts.faults.clone());
        layout::prepare(&io, dir)?;
        let wal_dir = dir.join(WAL_DIR);
        let snap_dir = dir.join(SNAP_DIR);
        let seqs = wal::list_segments(&wal_dir)?;
        snap::list(&snap_dir)?;
        let mut rec = wal::recover(&wal_dir, &seqs, |p| Ok(fs::read(p).ctx("read", p)?))?;
        let repaired_tail = match rec.torn.take() {
            Some(t) => Some(repair(&io, &wal_dir, &t)?),
            None => None,
        };
        let snapshot = match rec.state.snapshot {
            Some(s) => Some(snap::load(&snap_dir, s)?),
            None => None,
        };
        for removed in snap::gc(&snap_dir, rec.state.snapshot, opts.keep_snapshots)? {
            tracing::info!(file = %removed.display(), "removed snapshot file the log does not need");
        }
        let wal = Wal::open(
            io.clone(),
            &wal_dir,
            opts.segment_bytes.max(1),
            opts.preallocate_bytes,
            &rec.segments,
        )?;
        let applied = rec.state.snapshot_index();
        let storage = FileStorage {
            dir: dir.to_path_buf(),
            snap_dir,
            io,
            keep_snapshots: opts.keep_snapshots.max(1),
            wal,
            durable_snapshot: rec.state.snapshot,
            state: rec.state.clone(),
            dirty: false,
            failure: None,
        };
        let recovered = Recovered {
            state: RestoreState {
                hard_state: rec.state.hard_state,
                snapshot,
                entries: rec.entries,
                applied,
            },
            repaired_tail,
        };
        Ok((storage, recovered))
    }

    /// Writes the persistent part of one `Ready` (not yet durable: see [`FileStorage::sync`]).
    /// A `snapshot` (received from the leader) replaces the log: `entries` then continue
    /// right after it. Otherwise `entries` replace everything stored at or after
    /// `entries[0].index`. Empty calls write nothing.
    pub fn append(
        &mut self,
        hard_state: Option<HardState>,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<(), WriteError> {
        self.usable()?;
        if hard_state.is_none() && snapshot.is_none() && entries.is_empty() {
            return Ok(());
        }
        let snap_ref = snapshot.map(|s| SnapRef::of(&s.meta));
        self.state
            .check_batch(snap_ref, entries)
            .map_err(WriteError::Invalid)?;
        self.wal.encode(&WalRecordRef::Batch {
            hard_state,
            snapshot: snap_ref,
            entries,
        })?;
        if let Some(s) = snapshot {
            if let Err(f) = snap::write_snapshot(&self.io, &self.snap_dir, s) {
                return Err(self.fail(f));
            }
        }
        let max_index = entries.last().map(|e| e.index);
        if let Err(f) = self.wal.write_encoded(&self.state, max_index) {
            return Err(self.fail(f));
        }
        self.state.apply_batch(hard_state, snap_ref, entries);
        self.dirty = true;
        Ok(())
    }

    /// Makes everything appended so far durable (one fdatasync). Only after this returns `Ok`
    /// may the appended `Ready`s be reported persisted.
    pub fn sync(&mut self) -> Result<(), WriteError> {
        self.usable()?;
        if !self.dirty {
            return Ok(());
        }
        if let Err(f) = self.wal.sync() {
            return Err(self.fail(f));
        }
        self.dirty = false;
        self.after_durable();
        Ok(())
    }

    /// Preallocates log space ahead of the records if it runs short (see the WAL's module
    /// docs); call when idle. Returns the bytes added. A full disk is not an error here (the
    /// records still have whatever space is left): it is logged and preallocation paused
    /// until the next segment. A failed sync poisons the storage like any failed sync.
    pub fn preallocate(&mut self) -> Result<u64, WriteError> {
        self.usable()?;
        match self.wal.preallocate() {
            Ok(Ok(added)) => Ok(added),
            Ok(Err(f)) => {
                tracing::warn!(error = %WriteError::from(f), "cannot preallocate log space; writing without");
                Ok(0)
            }
            Err(f) => Err(self.fail(f)),
        }
    }

    /// Saves a snapshot the state machine took (the log is kept; compact separately). Durable
    /// on return, together with everything appended before.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), WriteError> {
        let s = self.savable(snapshot)?;
        if let Err(f) = snap::write_snapshot(&self.io, &self.snap_dir, snapshot) {
            return Err(self.fail(f));
        }
        self.append_snapshot_saved(s)
    }

    /// `save_snapshot` in two steps, so that the log keeps taking appends while a large
    /// snapshot's file is written: the returned job writes the file durably and touches
    /// nothing else (run it on any thread); once it succeeded, [`FileStorage::record_snapshot`]
    /// records the snapshot in the log. A file whose recording never happens (a crash, a
    /// failed job) is removed on the next open. No other snapshot may be appended, saved or
    /// recorded between the two steps (the older-file cleanup would take the new file for
    /// one the log does not need).
    pub fn snapshot_file_job(
        &self,
        snapshot: &Snapshot,
    ) -> impl FnOnce() -> Result<(), WriteError> + Send + 'static {
        let (io, dir, snapshot) = (self.io.clone(), self.snap_dir.clone(), snapshot.clone());
        move || snap::write_snapshot(&io, &dir, &snapshot).map_err(WriteError::from)
    }

    /// Records a snapshot whose file is written (see [`FileStorage::snapshot_file_job`]) and
    /// syncs: from here on the log starts after it.
    pub fn record_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), WriteError> {
        let s = self.savable(snapshot)?;
        self.append_snapshot_saved(s)
    }

    /// The snapshot, if the log can take it as saved now.
    fn savable(&self, snapshot: &Snapshot) -> Result<SnapRef, WriteError> {
        self.usable()?;
        let s = SnapRef::of(&snapshot.meta);
        self.state
            .check_snapshot_saved(s)
            .map_err(WriteError::Invalid)?;
        Ok(s)
    }

    /// Records a checked snapshot whose file is durable, and syncs.
    fn append_snapshot_saved(&mut self, s: SnapRef) -> Result<(), WriteError> {
        self.wal.encode(&WalRecordRef::SnapshotSaved(s))?;
        if let Err(f) = self.wal.write_encoded(&self.state, None) {
            return Err(self.fail(f));
        }
        self.state.apply_snapshot_saved(s);
        self.dirty = true;
        self.sync()
    }

    /// The data of the snapshot at `meta` (saved or appended earlier), memory-mapped from its
    /// file, for the Raft core to keep instead of a heap copy (see `snap::map_data`). An
    /// error is only a reason to keep the copy: nothing was written.
    pub fn mapped_snapshot(&self, meta: &SnapshotMeta) -> Result<Bytes, String> {
        snap::map_data(&self.snap_dir, SnapRef::of(meta))
    }

    /// Deletes the log segments whose entries are all at or below `index`, which the durable
    /// snapshot must cover (pending appends are synced first). The active segment is kept.
    pub fn compact(&mut self, index: Index) -> Result<(), WriteError> {
        self.sync()?;
        let covered = self.durable_snapshot.map_or(0, |s| s.index);
        if index > covered {
            return Err(WriteError::Invalid(format!(
                "cannot compact to {index}: the snapshot covers only up to {covered}"
            )));
        }
        match self.wal.compact(index) {
            Ok(_) => Ok(()),
            Err(f) => Err(self.fail(f)),
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Index of the last entry appended (or of the snapshot when the log after it is empty).
    pub fn last_index(&self) -> Index {
        self.state.last_index
    }

    /// Index of the snapshot the appended log starts after (0 for none).
    pub fn snapshot_index(&self) -> Index {
        self.state.snapshot_index()
    }

    /// The last hard state appended.
    pub fn hard_state(&self) -> HardState {
        self.state.hard_state
    }

    /// Why the storage is poisoned, if it is.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    fn usable(&self) -> Result<(), WriteError> {
        match &self.failure {
            Some(why) => Err(WriteError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Poisons the storage with `f` and returns it as the operation's error.
    fn fail(&mut self, f: IoFail) -> WriteError {
        let err = WriteError::from(f);
        self.failure = Some(err.to_string());
        err
    }

    /// Everything appended is durable: older snapshot files may go.
    fn after_durable(&mut self) {
        if self.durable_snapshot == self.state.snapshot {
            return;
        }
        self.durable_snapshot = self.state.snapshot;
        // Failing to delete an old snapshot loses nothing: warn and try again next time.
        if let Err(f) = snap::gc(&self.snap_dir, self.durable_snapshot, self.keep_snapshots) {
            tracing::warn!(error = %WriteError::from(f), "cannot remove an old snapshot file");
        }
    }
}

/// Cuts (or removes) a torn last segment durably and describes what was dropped.
fn repair(io: &Io, wal_dir: &Path, t: &TornSegment) -> Result<TornTail, OpenError> {
    let file = wal_dir.join(wal::segment_name(t.seq));
    if t.remove_file {
        fs::remove_file(&file).ctx("remove torn log segment", &file)?;
        io.sync_dir(wal_dir).ctx("fsync directory", wal_dir)?;
    } else {
        let f = OpenOptions::new()
            .write(true)
            .open(&file)
            .ctx("open torn log segment", &file)?;
        f.set_len(t.offset)
            .ctx("truncate torn log segment", &file)?;
        io.sync_all(&f).ctx("fsync", &file)?;
    }
    Ok(TornTail {
        dropped_bytes: t.file_len - t.offset,
        file,
        offset: t.offset,
        removed_file: t.remove_file,
        reason: t.reason.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_can_move_to_its_own_thread() {
        fn is_send<T: Send>() {}
        is_send::<FileStorage>();
        is_send::<Recovered>();
        is_send::<OpenError>();
        is_send::<WriteError>();
    }

    #[test]
    fn torn_tail_display_names_file_and_offset() {
        let t = TornTail {
            file: PathBuf::from("/data/wal/0000000000000003.wal"),
            offset: 4096,
            dropped_bytes: 17,
            removed_file: false,
            reason: "record payload cut short".into(),
        };
        let s = t.to_string();
        assert!(s.contains("0000000000000003.wal") && s.contains("4096") && s.contains("17"));
    }
}
