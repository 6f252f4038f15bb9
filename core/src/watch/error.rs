//! Errors of the hub's operations, and the reasons the hub cancels a watcher by itself.

use thiserror::Error;

use super::outbox::Backlog;
use super::request::{StreamId, WatchId};

/// The stream is not open (never opened, or closed).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("watch stream {0} not found")]
pub struct StreamNotFound(pub StreamId);

/// Why a watcher was not created. Except for `StreamNotFound` and `Backlogged`, the stream
/// also gets etcd's answer: a response with `created` and `canceled`, watch id -1 and this
/// error's text as `cancel_reason`. The texts are etcd's.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CreateWatchError {
    #[error(transparent)]
    StreamNotFound(#[from] StreamNotFound),
    /// The stream's queue is full: the driver should stop reading its requests until it
    /// drains. Nothing is queued.
    #[error("watch stream {stream} is backlogged ({backlog})")]
    Backlogged { stream: StreamId, backlog: Backlog },
    /// etcd answers a negative start revision as compacted.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    NegativeStartRevision,
    #[error("mvcc: watcher range is empty")]
    EmptyRange,
    #[error("mvcc: duplicate watch ID provided on the WatchStream")]
    DuplicateWatchId,
    #[error("too many watchers on the stream (limit {watchers_max})")]
    TooManyWatchers { watchers_max: usize },
}

/// Why a cancel request failed.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum CancelWatchError {
    #[error(transparent)]
    StreamNotFound(#[from] StreamNotFound),
    #[error("mvcc: watcher does not exist")]
    WatchNotFound(WatchId),
}

/// A driver contract violation: revisions must be reported in increasing order.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum AppliedError {
    #[error("revision {revision} reported after revision {current_revision}")]
    RevisionNotIncreasing {
        revision: i64,
        current_revision: i64,
    },
}

/// Why the hub cancelled a watcher on its own; the text is the response's
/// `cancel_reason`.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CancelReason {
    /// The stream's queue could not take the watcher's events: the client reads too slowly.
    /// Its queued events were dropped (except those before a queued progress notification
    /// covering it); having read up to this cancellation, the client has seen everything
    /// below `resume_revision` and should watch again from there.
    #[error(
        "watcher is too slow: the stream's queue is full ({backlog}); \
         watch again from revision {resume_revision}"
    )]
    Slow {
        backlog: Backlog,
        resume_revision: i64,
    },
    /// One revision's events alone exceed the stream's queue limits, so they can never be
    /// delivered; the watcher has seen everything below `revision`.
    #[error(
        "revision {revision} holds {events} matching events ({size_bytes} bytes), more than \
         the stream's queue can hold"
    )]
    RevisionTooLarge {
        revision: i64,
        events: usize,
        size_bytes: usize,
    },
}
