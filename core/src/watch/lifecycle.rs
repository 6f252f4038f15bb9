//! Creating and cancelling watchers, as etcd's watch server and `watchStream` do.

use super::config::WatchConfig;
use super::error::{CancelWatchError, CreateWatchError, StreamNotFound};
use super::hub::WatchHub;
use super::range::KeyRange;
use super::request::{StreamId, WatchCreateRequest, WatchId};
use super::response::WatchResponse;
use super::stream::Stream;
use super::watcher::Watcher;

impl WatchHub {
    /// Creates a watcher (etcd's `WatchCreateRequest`) and queues its `created` response.
    /// See [`CreateWatchError`] for what a refusal queues.
    pub fn create_watch(
        &mut self,
        stream_id: StreamId,
        request: WatchCreateRequest,
    ) -> Result<WatchId, CreateWatchError> {
        let current = self.current_revision;
        let config = &self.config;
        let stream = self
            .streams
            .get_mut(&stream_id)
            .ok_or(StreamNotFound(stream_id))?;
        if !stream.outbox.has_response_room(config) {
            return Err(CreateWatchError::Backlogged {
                stream: stream_id,
                backlog: stream.outbox.backlog(),
            });
        }
        let (watch_id, range) = match check_create(config, stream, &request) {
            Ok(checked) => checked,
            Err(error) => {
                let reason = error.to_string();
                stream.outbox.push(WatchResponse::refused(current, reason));
                return Err(error);
            }
        };
        // etcd's `watchableStore.watch`: synced unless it asks for revisions already applied.
        let synced = request.start_revision == 0 || request.start_revision > current;
        let next_revision = if synced {
            request.start_revision.max(current + 1)
        } else {
            request.start_revision
        };
        let key = (stream_id, watch_id);
        if synced {
            self.synced.insert(key, &range);
        } else {
            self.unsynced.insert(key);
        }
        stream.watchers.insert(
            watch_id,
            Watcher {
                range,
                next_revision,
                filters: request.filters,
                prev_kv: request.prev_kv,
                progress_notify: request.progress_notify,
                progress_due: true,
                synced,
            },
        );
        stream
            .outbox
            .push(WatchResponse::created(watch_id, current));
        Ok(watch_id)
    }

    /// Cancels a watcher at the client's request and queues its `canceled` response after
    /// whatever was already queued for it.
    pub fn cancel_watch(
        &mut self,
        stream_id: StreamId,
        watch_id: WatchId,
    ) -> Result<(), CancelWatchError> {
        let stream = self
            .streams
            .get(&stream_id)
            .ok_or(StreamNotFound(stream_id))?;
        if !stream.watchers.contains_key(&watch_id) {
            return Err(CancelWatchError::WatchNotFound(watch_id));
        }
        self.remove_watcher((stream_id, watch_id));
        let response = WatchResponse::canceled(watch_id, self.current_revision, String::new());
        self.push_forced(stream_id, response);
        self.flush_deferred_progress(stream_id);
        Ok(())
    }
}

/// Validates a creation in etcd's order (v3rpc first, then mvcc) and picks the watch id.
fn check_create(
    config: &WatchConfig,
    stream: &mut Stream,
    request: &WatchCreateRequest,
) -> Result<(WatchId, KeyRange), CreateWatchError> {
    if request.start_revision < 0 {
        return Err(CreateWatchError::NegativeStartRevision);
    }
    let range = KeyRange::new(request.key.clone(), request.range_end.clone())
        .ok_or(CreateWatchError::EmptyRange)?;
    if let Some(id) = request.watch_id {
        if stream.watchers.contains_key(&id) {
            return Err(CreateWatchError::DuplicateWatchId);
        }
    }
    if stream.watchers.len() >= config.stream_watchers_max {
        return Err(CreateWatchError::TooManyWatchers {
            watchers_max: config.stream_watchers_max,
        });
    }
    let watch_id = match request.watch_id {
        Some(id) => id,
        None => stream.allocate_watch_id(),
    };
    Ok((watch_id, range))
}
