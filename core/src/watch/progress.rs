//! Progress notifications: on request for a whole stream, and periodic per watcher.

use super::error::StreamNotFound;
use super::hub::WatchHub;
use super::request::{StreamId, WatchId};
use super::response::WatchResponse;

impl WatchHub {
    /// etcd's `WatchProgressRequest`: a response with watch id -1 and the current revision,
    /// queued once every watcher of the stream is synced (at once if they already are).
    /// Requests made while some watcher catches up are deferred and answered together by
    /// one response. A stream without watchers gets no answer, as in etcd.
    pub fn request_progress(&mut self, stream_id: StreamId) -> Result<(), StreamNotFound> {
        let stream = self
            .streams
            .get_mut(&stream_id)
            .ok_or(StreamNotFound(stream_id))?;
        stream.progress_deferred = true;
        self.flush_deferred_progress(stream_id);
        Ok(())
    }

    pub(super) fn flush_all_deferred_progress(&mut self) {
        let deferred: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, stream)| stream.progress_deferred)
            .map(|(id, _)| *id)
            .collect();
        for stream_id in deferred {
            self.flush_deferred_progress(stream_id);
        }
    }

    /// Answers a deferred progress request if the stream is now fully synced and its queue
    /// has room; otherwise it stays deferred.
    pub(super) fn flush_deferred_progress(&mut self, stream_id: StreamId) {
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        if !stream.progress_deferred || !stream.all_synced() {
            return;
        }
        if stream.watchers.is_empty() {
            stream.progress_deferred = false;
            return;
        }
        if stream.outbox.has_response_room(&self.config) {
            let response = WatchResponse::progress(WatchId::INVALID, self.current_revision);
            stream.outbox.push(response);
            stream.progress_deferred = false;
        }
    }

    /// Drives the per-stream progress tickers (etcd's `sendLoop` ticker). On each stream
    /// whose ticker is due, every `progress_notify` watcher that is synced and got no events
    /// since the previous tick gets a progress response with the current revision (dropped
    /// when the queue is full, as etcd drops it).
    pub fn tick_progress(&mut self, now_ms: u64) {
        let interval_ms = self.config.progress_interval_ms;
        let current = self.current_revision;
        for stream in self.streams.values_mut() {
            if now_ms < stream.progress_due_at_ms {
                continue;
            }
            // A ticker keeps its phase and drops the ticks it missed.
            let missed = (now_ms - stream.progress_due_at_ms) / interval_ms + 1;
            stream.progress_due_at_ms += missed * interval_ms;
            for (watch_id, watcher) in &mut stream.watchers {
                if !watcher.progress_notify {
                    continue;
                }
                let room = stream.outbox.has_response_room(&self.config);
                if watcher.progress_due && watcher.synced && room {
                    let response = WatchResponse::progress(*watch_id, current);
                    stream.outbox.push(response);
                }
                watcher.progress_due = true;
            }
        }
    }

    /// When [`tick_progress`](Self::tick_progress) next has something to do, if ever.
    pub fn next_progress_deadline_ms(&self) -> Option<u64> {
        self.streams
            .values()
            .filter(|stream| stream.has_progress_watchers())
            .map(|stream| stream.progress_due_at_ms)
            .min()
    }
}
