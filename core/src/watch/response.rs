//! The responses a stream sends, as etcd's `WatchResponse`, and their accounted size.

use crate::kv::{Event, KeyValue};

use super::request::WatchId;

/// Fixed cost charged per response and per key-value pair on top of their byte strings
/// (header fields, revisions, framing). The accounting bounds memory, it is not an exact
/// encoding size.
const RESPONSE_OVERHEAD_BYTES: usize = 64;
const KEY_VALUE_OVERHEAD_BYTES: usize = 48;

/// etcd's `WatchResponse` without the cluster fields of the header (the driver adds them)
/// and without `fragment` (the transport splits large responses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchResponse {
    /// The header's revision: for events, the revision up to which the watcher has now seen
    /// everything; for progress, the current revision.
    pub header_revision: i64,
    pub watch_id: WatchId,
    pub created: bool,
    pub canceled: bool,
    /// Set (non-zero) when the watcher was cancelled because its start revision is
    /// compacted.
    pub compact_revision: i64,
    pub cancel_reason: String,
    pub events: Vec<Event>,
}

impl WatchResponse {
    fn empty(watch_id: WatchId, header_revision: i64) -> Self {
        WatchResponse {
            header_revision,
            watch_id,
            created: false,
            canceled: false,
            compact_revision: 0,
            cancel_reason: String::new(),
            events: Vec::new(),
        }
    }

    pub(super) fn created(watch_id: WatchId, header_revision: i64) -> Self {
        WatchResponse {
            created: true,
            ..Self::empty(watch_id, header_revision)
        }
    }

    /// A creation that failed: etcd answers `created` and `canceled` together, with watch
    /// id -1 and the reason.
    pub(super) fn refused(header_revision: i64, reason: String) -> Self {
        WatchResponse {
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Self::empty(WatchId::INVALID, header_revision)
        }
    }

    pub(super) fn canceled(watch_id: WatchId, header_revision: i64, reason: String) -> Self {
        WatchResponse {
            canceled: true,
            cancel_reason: reason,
            ..Self::empty(watch_id, header_revision)
        }
    }

    pub(super) fn compacted(watch_id: WatchId, header_revision: i64, compact: i64) -> Self {
        WatchResponse {
            canceled: true,
            compact_revision: compact,
            ..Self::empty(watch_id, header_revision)
        }
    }

    pub(super) fn events(watch_id: WatchId, header_revision: i64, events: Vec<Event>) -> Self {
        WatchResponse {
            events,
            ..Self::empty(watch_id, header_revision)
        }
    }

    pub(super) fn progress(watch_id: WatchId, header_revision: i64) -> Self {
        Self::empty(watch_id, header_revision)
    }

    /// A progress notification: no events, not a creation, cancellation or compaction
    /// answer. (clientv3's `IsProgressNotify` also wants a non-zero header revision, which
    /// etcd always has; here a store that has applied nothing yet is at revision 0.)
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty() && !self.created && !self.canceled && self.compact_revision == 0
    }

    /// The size charged against a stream's `stream_queue_bytes_max`.
    pub fn size_bytes(&self) -> usize {
        RESPONSE_OVERHEAD_BYTES + self.cancel_reason.len() + events_size_bytes(&self.events)
    }
}

pub(super) fn events_size_bytes(events: &[Event]) -> usize {
    events.iter().map(event_size_bytes).sum()
}

fn event_size_bytes(event: &Event) -> usize {
    key_value_size_bytes(&event.kv) + event.prev_kv.as_ref().map_or(0, key_value_size_bytes)
}

fn key_value_size_bytes(kv: &KeyValue) -> usize {
    KEY_VALUE_OVERHEAD_BYTES + kv.key.len() + kv.value.len()
}

/// The bytes a response holding exactly `events` is charged.
pub(super) fn events_response_size_bytes(events: &[Event]) -> usize {
    RESPONSE_OVERHEAD_BYTES + events_size_bytes(events)
}
