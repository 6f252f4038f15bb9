//! The hub itself: its state, streams, the output queues, and the helpers that move
//! watchers between groups or remove them.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{WatchConfig, WatchConfigError};
use super::error::{CancelReason, StreamNotFound};
use super::outbox::Backlog;
use super::request::StreamId;
use super::response::WatchResponse;
use super::stream::Stream;
use super::synced::{SyncedIndex, WatcherKey};
use super::watcher::Watcher;

/// All watch streams of one state machine. See the [module docs](super) for the driver
/// contract and the etcd semantics it follows.
pub struct WatchHub {
    pub(super) config: WatchConfig,
    /// The last revision reported applied.
    pub(super) current_revision: i64,
    pub(super) streams: BTreeMap<StreamId, Stream>,
    next_stream_id: u64,
    pub(super) synced: SyncedIndex,
    pub(super) unsynced: BTreeSet<WatcherKey>,
    /// The unsynced watcher the last catch-up step served; the next one starts after it.
    pub(super) catch_up_cursor: Option<WatcherKey>,
}

impl WatchHub {
    /// A hub over a store whose revision is `current_revision`.
    pub fn new(config: WatchConfig, current_revision: i64) -> Result<Self, WatchConfigError> {
        config.validate()?;
        Ok(WatchHub {
            config,
            current_revision,
            streams: BTreeMap::new(),
            next_stream_id: 1,
            synced: SyncedIndex::default(),
            unsynced: BTreeSet::new(),
            catch_up_cursor: None,
        })
    }

    pub fn config(&self) -> &WatchConfig {
        &self.config
    }

    /// The last revision reported through [`on_applied`](Self::on_applied) or
    /// [`on_restored`](Self::on_restored).
    pub fn current_revision(&self) -> i64 {
        self.current_revision
    }

    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    pub fn watcher_count(&self) -> usize {
        self.streams.values().map(|s| s.watchers.len()).sum()
    }

    pub fn unsynced_watcher_count(&self) -> usize {
        self.unsynced.len()
    }

    /// Opens a stream. Its progress ticker starts now and fires every
    /// `progress_interval_ms`.
    pub fn open_stream(&mut self, now_ms: u64) -> StreamId {
        let id = StreamId(self.next_stream_id);
        self.next_stream_id += 1;
        let due_at_ms = now_ms.saturating_add(self.config.progress_interval_ms);
        self.streams.insert(id, Stream::new(due_at_ms));
        id
    }

    /// Closes a stream: its watchers and queued responses are dropped.
    pub fn close_stream(&mut self, stream_id: StreamId) -> Result<(), StreamNotFound> {
        let stream = self
            .streams
            .remove(&stream_id)
            .ok_or(StreamNotFound(stream_id))?;
        for (watch_id, watcher) in stream.watchers {
            self.unindex((stream_id, watch_id), &watcher);
        }
        Ok(())
    }

    /// The next response queued for a stream, in the order it must be sent.
    pub fn poll_stream(&mut self, stream_id: StreamId) -> Option<WatchResponse> {
        let response = self.streams.get_mut(&stream_id)?.outbox.pop()?;
        self.flush_deferred_progress(stream_id);
        Some(response)
    }

    /// Every queued response of every stream, streams in order.
    pub fn drain_ready(&mut self) -> Vec<(StreamId, WatchResponse)> {
        let mut drained = Vec::new();
        let ready: Vec<StreamId> = self.ready_streams().collect();
        for stream_id in ready {
            while let Some(response) = self.poll_stream(stream_id) {
                drained.push((stream_id, response));
            }
        }
        drained
    }

    /// The streams with queued responses.
    pub fn ready_streams(&self) -> impl Iterator<Item = StreamId> + '_ {
        self.streams
            .iter()
            .filter(|(_, stream)| !stream.outbox.is_empty())
            .map(|(id, _)| *id)
    }

    pub fn stream_backlog(&self, stream_id: StreamId) -> Option<Backlog> {
        Some(self.streams.get(&stream_id)?.outbox.backlog())
    }

    /// Whether the stream can take a new watcher now (its queue has room for the answer).
    pub fn stream_has_room(&self, stream_id: StreamId) -> bool {
        self.streams
            .get(&stream_id)
            .is_some_and(|stream| stream.outbox.has_response_room(&self.config))
    }

    pub(super) fn watcher_mut(&mut self, key: WatcherKey) -> Option<&mut Watcher> {
        self.streams.get_mut(&key.0)?.watchers.get_mut(&key.1)
    }

    /// Queues a response regardless of the stream's limits (cancellations: at most one per
    /// watcher).
    pub(super) fn push_forced(&mut self, stream_id: StreamId, response: WatchResponse) {
        if let Some(stream) = self.streams.get_mut(&stream_id) {
            stream.outbox.push(response);
        }
    }

    /// Moves an unsynced watcher to the synced group. Like every helper below, it leaves
    /// deferred progress requests alone: the public operation flushes them once its
    /// changes are complete, never between the watchers of one revision.
    pub(super) fn mark_synced(&mut self, key: WatcherKey) {
        let Some(watcher) = self.watcher_mut(key) else {
            return;
        };
        watcher.synced = true;
        let range = watcher.range.clone();
        self.unsynced.remove(&key);
        self.synced.insert(key, &range);
    }

    pub(super) fn remove_watcher(&mut self, key: WatcherKey) -> Option<Watcher> {
        let watcher = self.streams.get_mut(&key.0)?.watchers.remove(&key.1)?;
        self.unindex(key, &watcher);
        Some(watcher)
    }

    fn unindex(&mut self, key: WatcherKey, watcher: &Watcher) {
        if watcher.synced {
            self.synced.remove(key, &watcher.range);
        } else {
            self.unsynced.remove(&key);
        }
    }

    /// Removes a watcher the hub gives up on and tells the client why.
    pub(super) fn cancel_by_hub(&mut self, key: WatcherKey, reason: CancelReason) {
        if self.remove_watcher(key).is_none() {
            return;
        }
        let response = WatchResponse::canceled(key.1, self.current_revision, reason.to_string());
        self.push_forced(key.0, response);
    }

    /// Removes a watcher whose next revision is compacted, with etcd's answer.
    pub(super) fn cancel_compacted(&mut self, key: WatcherKey, compact_revision: i64) {
        if self.remove_watcher(key).is_none() {
            return;
        }
        let response = WatchResponse::compacted(key.1, self.current_revision, compact_revision);
        self.push_forced(key.0, response);
    }
}
