//! The loop's side of watches: it owns the [`WatchHub`] and one outlet per stream.
//!
//! Watches are served by every member from its applied state, like etcd: the loop reports
//! each applied revision ([`Watches::applied`]) and each snapshot install
//! ([`Watches::restored`]); nothing goes through the log. After every batch of work
//! ([`Watches::pump`]) it runs the stream requests that arrived, a bounded amount of catch-up
//! from the store's history, and moves queued responses into each stream's bounded channel
//! while that has room (`try_reserve`, never blocking). A stream whose client reads slowly
//! keeps its responses in the hub's bounded queue, whose limits cancel its slow synced
//! watchers; unsynced watchers simply wait for room.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sextant_core::kv::{Event, KvStore};
use sextant_core::watch::{
    CatchUpStatus, StreamId, WatchConfig, WatchCreateRequest, WatchHub, WatchId, WatchResponse,
};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::watch_stream::{Opened, WatchRequest};

/// Catch-up and delivery rounds one [`Watches::pump`] runs before yielding to other work.
const PUMP_ROUNDS: usize = 4;

/// A stream request waiting its turn (requests of one stream run in order).
enum Control {
    Create(WatchCreateRequest),
    Cancel(WatchId),
    Progress,
}

struct Outlet {
    tx: mpsc::Sender<WatchResponse>,
    starved: Arc<AtomicBool>,
    controls: VecDeque<Control>,
}

pub(super) struct Watches {
    hub: WatchHub,
    outlets: BTreeMap<StreamId, Outlet>,
    /// Streams with requests waiting (a creation waits while its stream is backlogged).
    waiting: BTreeSet<StreamId>,
    channel_responses: usize,
    /// Requests one stream may have waiting; beyond it the stream is closed.
    controls_max: usize,
    /// More catch-up or delivery work is ready: the loop should pump again soon.
    busy: bool,
}

impl Watches {
    pub fn new(config: WatchConfig, channel_responses: usize, revision: i64) -> Watches {
        let controls_max = config.stream_queue_responses_max;
        let hub = WatchHub::new(config, revision).expect("watch config validated by NodeLoop::new");
        Watches {
            hub,
            outlets: BTreeMap::new(),
            waiting: BTreeSet::new(),
            channel_responses: channel_responses.max(1),
            controls_max,
            busy: false,
        }
    }

    pub fn watcher_count(&self) -> usize {
        self.hub.watcher_count()
    }

    pub fn busy(&self) -> bool {
        self.busy
    }

    pub fn on_request(&mut self, req: WatchRequest, now_ms: u64) {
        let (stream, control) = match req {
            WatchRequest::Open { reply } => {
                let stream = self.hub.open_stream(now_ms);
                let (tx, responses) = mpsc::channel(self.channel_responses);
                let starved = Arc::new(AtomicBool::new(false));
                let opened = Opened {
                    stream,
                    responses,
                    starved: starved.clone(),
                };
                if reply.send(opened).is_err() {
                    let _ = self.hub.close_stream(stream);
                    return;
                }
                let outlet = Outlet {
                    tx,
                    starved,
                    controls: VecDeque::new(),
                };
                self.outlets.insert(stream, outlet);
                return;
            }
            WatchRequest::Close { stream } => {
                self.close(stream);
                return;
            }
            WatchRequest::Poll => {
                self.busy = true;
                return;
            }
            WatchRequest::Create { stream, req } => (stream, Control::Create(req)),
            WatchRequest::Cancel { stream, watch_id } => (stream, Control::Cancel(watch_id)),
            WatchRequest::Progress { stream } => (stream, Control::Progress),
        };
        let Some(outlet) = self.outlets.get_mut(&stream) else {
            return;
        };
        if outlet.controls.len() >= self.controls_max {
            tracing::warn!(
                stream = stream.0,
                "watch stream sent more requests than it reads answers; closing it"
            );
            self.close(stream);
            return;
        }
        outlet.controls.push_back(control);
        self.waiting.insert(stream);
        self.busy = true;
    }

    fn close(&mut self, stream: StreamId) {
        self.outlets.remove(&stream);
        self.waiting.remove(&stream);
        let _ = self.hub.close_stream(stream);
    }

    /// The store applied `revision` with these events (all of that revision). Commands that
    /// wrote nothing leave the revision unchanged and are skipped.
    pub fn applied(&mut self, revision: i64, events: &[Event]) {
        if revision <= self.hub.current_revision() {
            return;
        }
        if let Err(e) = self.hub.on_applied(revision, events) {
            tracing::error!(error = %e, "watch hub out of step with the store");
        }
        if !self.outlets.is_empty() {
            self.busy = true;
        }
    }

    /// The store was replaced by a snapshot at `revision`.
    pub fn restored(&mut self, revision: i64) {
        if let Err(e) = self.hub.on_restored(revision) {
            tracing::error!(error = %e, "watch hub out of step with the restored store");
        }
        self.busy = true;
    }

    /// Per tick: progress notifications, and streams whose client went away without a close.
    pub fn tick(&mut self, now_ms: u64) {
        if self.outlets.is_empty() {
            return;
        }
        self.hub.tick_progress(now_ms);
        let gone: Vec<StreamId> = self
            .outlets
            .iter()
            .filter(|(_, o)| o.tx.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for stream in gone {
            self.close(stream);
        }
        // A poll lost to a full request queue is made up for here.
        self.busy = true;
    }

    /// Runs waiting stream requests, bounded catch-up, and delivery.
    pub fn pump(&mut self, kv: &KvStore) {
        if !self.busy {
            return;
        }
        for _ in 0..PUMP_ROUNDS {
            self.run_controls();
            let status = self.hub.catch_up(kv);
            let moved = self.deliver();
            if status != CatchUpStatus::MorePending && !moved {
                self.busy = false;
                return;
            }
        }
        self.busy = true;
    }

    fn run_controls(&mut self) {
        let waiting: Vec<StreamId> = self.waiting.iter().copied().collect();
        for stream in waiting {
            let Some(outlet) = self.outlets.get_mut(&stream) else {
                self.waiting.remove(&stream);
                continue;
            };
            while let Some(control) = outlet.controls.pop_front() {
                match control {
                    Control::Create(req) => {
                        if !self.hub.stream_has_room(stream) {
                            // Waits for the stream to drain; later requests wait behind it.
                            outlet.controls.push_front(Control::Create(req));
                            break;
                        }
                        // Refusals are answered in the stream itself.
                        let _ = self.hub.create_watch(stream, req);
                    }
                    Control::Cancel(watch_id) => {
                        let _ = self.hub.cancel_watch(stream, watch_id);
                    }
                    Control::Progress => {
                        let _ = self.hub.request_progress(stream);
                    }
                }
            }
            if outlet.controls.is_empty() {
                self.waiting.remove(&stream);
            }
        }
    }

    /// Moves queued responses into the streams' channels while they have room. Returns
    /// whether anything moved.
    fn deliver(&mut self) -> bool {
        let mut moved = false;
        let ready: Vec<StreamId> = self.hub.ready_streams().collect();
        let mut closed = Vec::new();
        for stream in ready {
            let Some(outlet) = self.outlets.get(&stream) else {
                let _ = self.hub.close_stream(stream);
                continue;
            };
            loop {
                let permit = match outlet.tx.try_reserve() {
                    Ok(permit) => permit,
                    Err(TrySendError::Full(())) => {
                        // Ask the receiver to poll us after its next read; then look once
                        // more, in case it read just before the flag was set.
                        outlet.starved.store(true, Ordering::Release);
                        match outlet.tx.try_reserve() {
                            Ok(permit) => permit,
                            Err(TrySendError::Full(())) => break,
                            Err(TrySendError::Closed(())) => {
                                closed.push(stream);
                                break;
                            }
                        }
                    }
                    Err(TrySendError::Closed(())) => {
                        closed.push(stream);
                        break;
                    }
                };
                let Some(response) = self.hub.poll_stream(stream) else {
                    break;
                };
                permit.send(response);
                moved = true;
            }
        }
        for stream in closed {
            self.close(stream);
        }
        moved
    }
}
