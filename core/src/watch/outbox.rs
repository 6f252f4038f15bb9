//! A stream's bounded queue of outbound responses, with its accounting.

use std::collections::VecDeque;
use std::fmt;

use super::config::WatchConfig;
use super::request::WatchId;
use super::response::WatchResponse;

/// What waits in a stream's queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    pub responses: usize,
    pub events: usize,
    /// Approximate, as [`WatchResponse::size_bytes`].
    pub bytes: usize,
}

impl fmt::Display for Backlog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} responses, {} events, {} bytes pending",
            self.responses, self.events, self.bytes
        )
    }
}

/// How much one replay batch may add to a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ReplayBudget {
    pub events: usize,
    pub bytes: usize,
}

impl ReplayBudget {
    pub fn admits(&self, events: usize, bytes: usize) -> bool {
        events <= self.events && bytes <= self.bytes
    }
}

struct Queued {
    response: WatchResponse,
    size_bytes: usize,
}

#[derive(Default)]
pub(super) struct Outbox {
    queue: VecDeque<Queued>,
    events: usize,
    bytes: usize,
}

impl Outbox {
    pub fn backlog(&self) -> Backlog {
        Backlog {
            responses: self.queue.len(),
            events: self.events,
            bytes: self.bytes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Room for one more response without events (a creation answer or a progress
    /// notification).
    pub fn has_response_room(&self, config: &WatchConfig) -> bool {
        self.queue.len() < config.stream_queue_responses_max
    }

    /// Room for one more response of `events` events and `size_bytes` bytes.
    pub fn fits(&self, config: &WatchConfig, events: usize, size_bytes: usize) -> bool {
        self.has_response_room(config)
            && self.events + events <= config.stream_queue_events_max
            && self.bytes + size_bytes <= config.stream_queue_bytes_max
    }

    /// What a replay batch may add: the whole limits on an empty queue, else only up to half
    /// of them, so replaying watchers leave room for the synced ones (which are cancelled
    /// when their events do not fit). `None` when a batch must wait for the queue to drain.
    pub fn replay_budget(&self, config: &WatchConfig) -> Option<ReplayBudget> {
        if self.queue.is_empty() {
            return Some(ReplayBudget {
                events: config.stream_queue_events_max,
                bytes: config.stream_queue_bytes_max,
            });
        }
        let budget = ReplayBudget {
            events: (config.stream_queue_events_max / 2).saturating_sub(self.events),
            bytes: (config.stream_queue_bytes_max / 2).saturating_sub(self.bytes),
        };
        let responses_room = self.queue.len() < config.stream_queue_responses_max / 2;
        (responses_room && budget.events > 0 && budget.bytes > 0).then_some(budget)
    }

    /// Queues a response regardless of the limits; callers check them first where they
    /// apply.
    pub fn push(&mut self, response: WatchResponse) {
        let size_bytes = response.size_bytes();
        self.events += response.events.len();
        self.bytes += size_bytes;
        self.queue.push_back(Queued {
            response,
            size_bytes,
        });
    }

    pub fn pop(&mut self) -> Option<WatchResponse> {
        let queued = self.queue.pop_front()?;
        self.events -= queued.response.events.len();
        self.bytes -= queued.size_bytes;
        Some(queued.response)
    }

    /// Drops the queued event responses of one watcher, returning the revision of the
    /// first event dropped. Events queued before a progress notification that covers the
    /// watcher (its own or the stream's) stay: the client will read that notification as a
    /// promise that it has seen them.
    pub fn drop_events_of(&mut self, watch_id: WatchId) -> Option<i64> {
        let promised = self.queue.iter().rposition(|queued| {
            let response = &queued.response;
            response.is_progress_notify()
                && (response.watch_id == watch_id || response.watch_id == WatchId::INVALID)
        });
        let keep_below = promised.map_or(0, |position| position + 1);
        let mut first_dropped = None;
        let (mut events, mut bytes) = (self.events, self.bytes);
        let mut position = 0;
        self.queue.retain(|queued| {
            let response = &queued.response;
            let drop = position >= keep_below
                && response.watch_id == watch_id
                && !response.events.is_empty();
            position += 1;
            if drop {
                first_dropped.get_or_insert(response.events[0].kv.mod_revision);
                events -= response.events.len();
                bytes -= queued.size_bytes;
            }
            !drop
        });
        self.events = events;
        self.bytes = bytes;
        first_dropped
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::kv::{Event, EventKind, KeyValue};

    fn event(revision: i64) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: Bytes::from_static(b"k"),
                mod_revision: revision,
                value: Bytes::from_static(b"value"),
                ..KeyValue::default()
            },
            prev_kv: None,
        }
    }

    #[test]
    fn accounting_returns_to_zero_after_drops_and_pops() {
        let mut outbox = Outbox::default();
        let (a, b) = (WatchId(1), WatchId(2));
        outbox.push(WatchResponse::created(a, 0));
        outbox.push(WatchResponse::events(a, 1, vec![event(1)]));
        outbox.push(WatchResponse::events(b, 1, vec![event(1)]));
        outbox.push(WatchResponse::progress(WatchId::INVALID, 1));
        outbox.push(WatchResponse::events(a, 2, vec![event(2), event(2)]));
        outbox.push(WatchResponse::events(a, 3, vec![event(3)]));
        assert_eq!(outbox.backlog().events, 5);
        // Revision 1 is promised by the progress notification: only 2 and 3 go.
        assert_eq!(outbox.drop_events_of(a), Some(2));
        assert_eq!(outbox.backlog().responses, 4);
        assert_eq!(outbox.backlog().events, 2);
        assert_eq!(outbox.drop_events_of(a), None);
        while outbox.pop().is_some() {}
        assert_eq!(outbox.backlog(), Backlog::default());
    }
}
