//! Errors of the storage: one enum for opening (recovery) and one for every write operation.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why [`FileStorage::open`](super::FileStorage::open) refused the data directory. Nothing is
/// repaired or deleted when open fails (apart from a torn tail, which is only cut once the
/// rest of the log has been read and checked).
#[derive(Debug, Error)]
pub enum OpenError {
    /// A file system call failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The directory exists but does not hold Sextant storage (no format file, or a format
    /// file of something else).
    #[error("{} is not a Sextant data directory: {reason}", path.display())]
    NotOurs { path: PathBuf, reason: String },
    /// The directory holds Sextant storage of a format this build does not read.
    #[error(
        "{} holds Sextant storage format {found:?}, but this build reads format {expected}",
        path.display()
    )]
    UnsupportedFormat {
        path: PathBuf,
        found: String,
        expected: u32,
    },
    /// A file or directory that the storage did not create.
    #[error("unexpected file {} in the data directory (storage files only, please)", path.display())]
    UnexpectedFile { path: PathBuf },
    /// A damaged record that is not a torn tail: a bad record followed by valid data, damage
    /// in a segment other than the last, or a record that does not fit the log before it.
    #[error("corrupt write-ahead log {} at byte offset {offset}: {reason}", file.display())]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The files are individually sound but do not form one log (a missing segment, a log
    /// that does not connect to its snapshot).
    #[error("inconsistent write-ahead log in {}: {reason}", dir.display())]
    Inconsistent { dir: PathBuf, reason: String },
    /// The snapshot the log starts after is missing or damaged.
    #[error("snapshot {}: {reason}", path.display())]
    Snapshot { path: PathBuf, reason: String },
}

/// Why a write operation (`append`, `sync`, `save_snapshot`, `compact`) failed.
///
/// [`WriteError::Io`] poisons the storage: every later operation fails with
/// [`WriteError::Poisoned`]. [`WriteError::Invalid`] and [`WriteError::TooLarge`] are refused
/// before anything is written and leave the storage usable.
#[derive(Debug, Error)]
pub enum WriteError {
    /// A write or sync failed (disk full, I/O error). What was appended since the last
    /// successful `sync` may or may not be on disk; the storage is now poisoned.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An earlier write or sync failed; the storage accepts nothing more. Reopen it (after
    /// fixing the disk) to recover the last synced state.
    #[error("storage failed earlier: {0}")]
    Poisoned(String),
    /// The request does not fit the stored log (a gap, a stale snapshot, compaction beyond
    /// the snapshot); nothing was written.
    #[error("invalid storage write: {0}")]
    Invalid(String),
    /// One batch encodes to more than the largest record the log format allows.
    #[error("a batch of {len} bytes exceeds the largest log record ({max} bytes)")]
    TooLarge { len: usize, max: usize },
}

impl WriteError {
    /// True when the storage is (now) poisoned by this error.
    pub fn is_poisoning(&self) -> bool {
        matches!(self, WriteError::Io { .. } | WriteError::Poisoned(_))
    }

    /// True when a write failed because the disk is full (`ENOSPC`).
    pub fn is_no_space(&self) -> bool {
        matches!(self, WriteError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
    }
}

/// A failed file system call, before it is turned into the error of the operation at hand.
#[derive(Debug)]
pub(crate) struct IoFail {
    pub action: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

impl IoFail {
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        IoFail {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `result.ctx("write", path)` attaches what was being done to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T, IoFail>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T, IoFail> {
        self.map_err(|e| IoFail::new(action, path, e))
    }
}

impl From<IoFail> for OpenError {
    fn from(f: IoFail) -> Self {
        OpenError::Io {
            action: f.action,
            path: f.path,
            source: f.source,
        }
    }
}

impl From<IoFail> for WriteError {
    fn from(f: IoFail) -> Self {
        WriteError::Io {
            action: f.action,
            path: f.path,
            source: f.source,
        }
    }
}
