//! Limits and intervals of the watch hub.

use thiserror::Error;

/// Configuration of a [`WatchHub`](super::WatchHub). Every bound is per stream unless said
/// otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchConfig {
    /// Responses waiting in a stream's outbound queue. Beyond it, events for a synced
    /// watcher cancel that watcher, progress notifications are dropped (as etcd drops them
    /// on a full channel) and watch creation is refused. Cancellations are always queued, so
    /// the queue may exceed this by one cancellation per watcher.
    pub stream_queue_responses_max: usize,
    /// Events waiting in a stream's outbound queue.
    pub stream_queue_events_max: usize,
    /// Approximate encoded bytes waiting in a stream's outbound queue.
    pub stream_queue_bytes_max: usize,
    /// Watchers on one stream.
    pub stream_watchers_max: usize,
    /// Events read from history for one unsynced watcher in one catch-up step; whole
    /// revisions are read, so a single larger revision still goes through. etcd batches
    /// 1000 revisions (`watchBatchMaxRevs`).
    pub replay_batch_events_max: usize,
    /// Unsynced watchers advanced by one [`catch_up`](super::WatchHub::catch_up) call, over
    /// all streams (etcd's `maxWatchersPerSync` is 512).
    pub catch_up_watchers_max: usize,
    /// Period of progress notifications for watchers created with `progress_notify` (etcd's
    /// `--experimental-watch-progress-notify-interval`, 10 minutes by default).
    pub progress_interval_ms: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            stream_queue_responses_max: 1024,
            stream_queue_events_max: 16 * 1024,
            stream_queue_bytes_max: 32 * 1024 * 1024,
            stream_watchers_max: 10_000,
            replay_batch_events_max: 1000,
            catch_up_watchers_max: 512,
            progress_interval_ms: 10 * 60 * 1000,
        }
    }
}

/// A configuration value the hub cannot work with.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum WatchConfigError {
    #[error("watch config `{field}` must be at least 1")]
    Zero { field: &'static str },
}

impl WatchConfig {
    pub fn validate(&self) -> Result<(), WatchConfigError> {
        let fields = [
            (
                "stream_queue_responses_max",
                self.stream_queue_responses_max as u64,
            ),
            (
                "stream_queue_events_max",
                self.stream_queue_events_max as u64,
            ),
            ("stream_queue_bytes_max", self.stream_queue_bytes_max as u64),
            ("stream_watchers_max", self.stream_watchers_max as u64),
            (
                "replay_batch_events_max",
                self.replay_batch_events_max as u64,
            ),
            ("catch_up_watchers_max", self.catch_up_watchers_max as u64),
            ("progress_interval_ms", self.progress_interval_ms),
        ];
        match fields.iter().find(|(_, value)| *value == 0) {
            Some((field, _)) => Err(WatchConfigError::Zero { field }),
            None => Ok(()),
        }
    }
}
