//! History file formats: Porcupine's Jepsen etcd logs and kv logs, and Sextant's JSON lines.

mod jepsen;
mod jsonl;
mod porcupine_kv;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;

pub use jepsen::parse_jepsen_etcd;
pub use jsonl::{
    parse_jsonl, write_jsonl, HistoryRecorder, OpId, RecordError, SharedHistoryRecorder,
};
pub use porcupine_kv::parse_porcupine_kv;

/// Why a history file could not be read. Every variant names the file and the (1-based) line.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The line is not an event of the format.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file (or source name).
        file: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The line is not valid JSON, or not a valid event object.
    #[error("{file}:{line}: invalid event: {source}")]
    Json {
        /// The file (or source name).
        file: String,
        /// The line, from 1.
        line: usize,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A return (or failure) for a client or operation that has no pending call.
    #[error("{file}:{line}: {what} has no pending call")]
    Unmatched {
        /// The file (or source name).
        file: String,
        /// The line, from 1.
        line: usize,
        /// The client or operation.
        what: String,
    },
    /// A call from a client that already has an operation pending, or a reused operation id.
    #[error("{file}:{line}: {what} already has a call pending since line {since}")]
    AlreadyPending {
        /// The file (or source name).
        file: String,
        /// The line, from 1.
        line: usize,
        /// The client or operation.
        what: String,
        /// The line of the pending call.
        since: usize,
    },
    /// A return that does not fit its call (another operation kind, or a different client).
    #[error("{file}:{line}: does not match the call on line {call_line}: {message}")]
    Mismatch {
        /// The file (or source name).
        file: String,
        /// The line, from 1.
        line: usize,
        /// The line of the call.
        call_line: usize,
        /// What differs.
        message: String,
    },
    /// Time went backwards.
    #[error("{file}:{line}: time {t} is before the previous event's time {previous}")]
    TimeWentBack {
        /// The file (or source name).
        file: String,
        /// The line, from 1.
        line: usize,
        /// This event's time.
        t: u64,
        /// The previous event's time.
        previous: u64,
    },
}

/// The history file formats the checker reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HistoryFormat {
    /// Porcupine's `jepsen/etcd_NNN.log`: a single compare-and-set register.
    JepsenEtcd,
    /// Porcupine's `kv/cNN-*.txt`: get/put/append on string keys.
    PorcupineKv,
    /// Sextant's JSON lines (see the module documentation of `checker`).
    Jsonl,
}

impl HistoryFormat {
    /// Guesses the format from the first non-blank line, or from the extension if the file is
    /// blank (`.log` → Jepsen, `.txt` → Porcupine kv, anything else → JSON lines). `None` if
    /// the first line looks like none of them.
    pub fn detect(path: &Path, content: &str) -> Option<HistoryFormat> {
        match content.lines().map(str::trim).find(|l| !l.is_empty()) {
            Some(l) if l.starts_with("INFO") && l.contains("jepsen") => {
                Some(HistoryFormat::JepsenEtcd)
            }
            Some(l) if l.starts_with("{:") => Some(HistoryFormat::PorcupineKv),
            Some(l) if l.starts_with('{') => Some(HistoryFormat::Jsonl),
            Some(_) => None,
            None => Some(match path.extension().and_then(|e| e.to_str()) {
                Some("log") => HistoryFormat::JepsenEtcd,
                Some("txt") => HistoryFormat::PorcupineKv,
                _ => HistoryFormat::Jsonl,
            }),
        }
    }
}

/// Calls awaiting their completion, one per process (the Jepsen / Porcupine log rule), with
/// the parse errors for a second call while one is open and a completion without a call.
pub(crate) struct PendingCalls<P> {
    open: BTreeMap<P, (usize, usize)>,
}

impl<P: Ord + Copy + Display> PendingCalls<P> {
    pub(crate) fn new() -> Self {
        PendingCalls {
            open: BTreeMap::new(),
        }
    }

    /// Records that `process` called at `line`; its operation is `slot` in the history.
    pub(crate) fn open(
        &mut self,
        file: &str,
        line: usize,
        process: P,
        slot: usize,
    ) -> Result<(), ParseError> {
        if let Some(&(_, since)) = self.open.get(&process) {
            return Err(ParseError::AlreadyPending {
                file: file.to_string(),
                line,
                what: format!("process {process}"),
                since,
            });
        }
        self.open.insert(process, (slot, line));
        Ok(())
    }

    /// The (slot, call line) of `process`'s open call, now completed at `line`.
    pub(crate) fn close(
        &mut self,
        file: &str,
        line: usize,
        process: P,
    ) -> Result<(usize, usize), ParseError> {
        self.open
            .remove(&process)
            .ok_or_else(|| ParseError::Unmatched {
                file: file.to_string(),
                line,
                what: format!("process {process}"),
            })
    }
}
