//! The watch hub: etcd v3 watch bookkeeping for the state machine, sans-IO.
//!
//! This module owns everything between "a revision was applied" and "this response goes to
//! that client stream": the watch streams and their watchers, the watch ids of each stream,
//! the split between *synced* watchers (fed by [`WatchHub::on_applied`] as revisions are
//! applied) and *unsynced* ones (catching up from the store's history in bounded batches
//! through [`WatchHub::catch_up`]), compaction answers, progress notifications and the
//! bounded outbound queue of every stream. It owns no keys or values: the history it replays
//! comes from a [`WatchHistory`] the store implements.
//!
//! Like the rest of the core it is deterministic: ordered maps only, no clock (time arrives
//! as `now_ms` arguments), no randomness, no I/O.
//!
//! # Driver contract
//!
//! - Call [`WatchHub::on_applied`] once per applied revision, with all events of that
//!   revision in order, *after* the store has applied it (so the history and the hub agree).
//! - Call [`WatchHub::catch_up`] with the store while it returns
//!   [`CatchUpStatus::MorePending`] (each call does a bounded amount of work), and again after
//!   draining a stream or applying revisions when it returned [`CatchUpStatus::Waiting`].
//! - Drain each stream's responses with [`WatchHub::poll_stream`] (or all of them with
//!   [`WatchHub::drain_ready`]) and send them in that order.
//! - Call [`WatchHub::tick_progress`] with the current time by
//!   [`WatchHub::next_progress_deadline_ms`].
//! - Stop reading requests from a stream whose backlog is full
//!   ([`WatchHub::stream_backlog`]); creating watchers on it is refused until it drains.
//!
//! # Semantics (etcd v3, `server/storage/mvcc/watchable_store.go`, `watcher_group.go`,
//! `watcher.go` and `server/etcdserver/api/v3rpc/watch.go`)
//!
//! - A watcher with start revision 0 or above the current revision is synced at once and
//!   sees revisions from `max(current + 1, start)`; any other is unsynced and replays history
//!   from its start revision. A start revision below the compact revision is answered with a
//!   single response carrying `compact_revision` and `canceled`, and the watcher is removed.
//! - Every watcher's `created` response comes before any other response for it.
//! - A synced watcher gets one response per applied revision holding exactly its matching
//!   events of that revision (filters applied, `prev_kv` stripped unless asked for); a
//!   revision whose events are all filtered out sends nothing. Replay responses hold whole
//!   revisions only.
//! - A progress request for a stream is answered (watch id -1, header revision = current
//!   revision) once every watcher of the stream is synced; requests made meanwhile are
//!   deferred and collapse into one (etcd #15237, #17557). A stream without watchers gets no
//!   answer, as in etcd.
//! - Watchers created with `progress_notify` get a progress response every
//!   `progress_interval_ms` in which they were synced and received no events.
//!
//! # Deviations from etcd, on purpose
//!
//! - etcd parks a watcher whose channel is full as a "victim" and retries; here a synced
//!   watcher whose events do not fit its stream's backlog is cancelled with a
//!   `cancel_reason` naming the revision to resume from, its queued events are freed, and
//!   memory stays bounded. Unsynced watchers are never cancelled for being slow: they read
//!   from history only when their stream has room.
//! - Response header revisions are never 0: a compaction answer carries the current
//!   revision (etcd leaves it 0), and a replay response carries the revision up to which the
//!   watcher has now seen everything (etcd uses the current revision even for partial
//!   batches).
//! - Watch ids are allocated per stream, from 0, skipping ids in use (etcd up to 3.4).
//! - After [`WatchHub::on_restored`], a synced watcher replays from just after the revision
//!   it was synced to, not from the older revision of its last matching event.

mod apply;
mod catch_up;
mod config;
mod error;
mod history;
mod hub;
mod lifecycle;
mod outbox;
mod progress;
mod range;
mod request;
mod response;
mod stream;
mod synced;
mod watcher;

pub use catch_up::CatchUpStatus;
pub use config::{WatchConfig, WatchConfigError};
pub use error::{AppliedError, CancelReason, CancelWatchError, CreateWatchError, StreamNotFound};
pub use history::{Compacted, HistoryPage, WatchHistory};
pub use hub::WatchHub;
pub use outbox::Backlog;
pub use range::KeyRange;
pub use request::{StreamId, WatchCreateRequest, WatchFilters, WatchId};
pub use response::WatchResponse;
