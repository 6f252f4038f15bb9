//! Model-based randomized test of the watch hub: random writes and transactions, watchers
//! created on random streams at random start revisions with random ranges, filters and
//! options, random cancellations, compactions, restores, progress requests and ticks, and
//! random catch-up and draining with small queues (so slow watchers get cancelled).
//!
//! The model is the full event log. Checked on every response: `created` comes first for
//! each watcher, a revision is never split across responses, header revisions cover the
//! events, and a progress notification is never ahead of the events a watcher received.
//! Checked at the end: every live watcher received exactly the filtered history from its
//! start revision; every ended one a prefix of it, and a slow one exactly the part below the
//! revision its cancellation says to resume from.

mod watch_support;

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sextant_core::kv::Event;
use sextant_core::watch::{
    StreamId, WatchConfig, WatchCreateRequest, WatchFilters, WatchId, WatchResponse,
};
use watch_support::{delete, in_range, put, Harness, Op};

const SEEDS: u64 = 300;
const STEPS: usize = 400;
const KEYS: [&str; 7] = ["a", "a/1", "a/2", "ab", "b", "b/1", "z"];

#[derive(Debug, PartialEq)]
enum Ending {
    Live,
    ClientCancel,
    StreamClosed,
    Compacted,
    Slow { resume_revision: i64 },
    Other(String),
}

struct ModelWatcher {
    stream: StreamId,
    request: WatchCreateRequest,
    /// The first revision it must receive.
    start_revision: i64,
    announced: bool,
    received: Vec<Event>,
    responses: Vec<WatchResponse>,
    ending: Ending,
}

impl ModelWatcher {
    fn expected(&self, log: &[Event], up_to_revision: i64) -> Vec<Event> {
        let (key, end) = (&self.request.key, &self.request.range_end);
        let key: &[u8] = if key.is_empty() { b"\0" } else { key };
        log.iter()
            .filter(|e| e.kv.mod_revision >= self.start_revision)
            .filter(|e| e.kv.mod_revision <= up_to_revision)
            .filter(|e| in_range(&e.kv.key, key, end))
            .filter(|e| self.request.filters.passes(e))
            .map(|e| {
                let mut e = e.clone();
                if !self.request.prev_kv {
                    e.prev_kv = None;
                }
                e
            })
            .collect()
    }
}

#[derive(Default, Debug)]
struct Stats {
    events_received: usize,
    replay_responses: usize,
    slow_cancels: usize,
    compactions: usize,
    progress_checked: usize,
    live_at_end: usize,
}

struct Model {
    h: Harness,
    streams: Vec<StreamId>,
    watchers: Vec<ModelWatcher>,
    /// Created watchers whose `created` response is not read yet, per (stream, id).
    unannounced: BTreeMap<(StreamId, WatchId), VecDeque<usize>>,
    /// The watcher a (stream, id) currently refers to, once announced.
    active: BTreeMap<(StreamId, WatchId), usize>,
    now_ms: u64,
    stats: Stats,
    /// Everything the hub was asked and answered, for failure messages.
    transcript: Vec<String>,
    /// Whether writes are applied to the store without being reported to the hub yet.
    hold_reports: bool,
    held: VecDeque<(i64, Vec<Event>)>,
}

impl Model {
    fn watcher_of(&self, stream: StreamId, id: WatchId) -> usize {
        *self
            .active
            .get(&(stream, id))
            .unwrap_or_else(|| panic!("response for watch {id} on stream {stream} before created"))
    }

    fn read(&mut self, stream: StreamId, response: WatchResponse) {
        self.transcript.push(format!(
            "stream {stream} <- {}",
            watch_support::render(&response)
        ));
        let log = self.h.store.log().to_vec();
        if response.watch_id == WatchId::INVALID {
            if response.created {
                assert!(response.canceled, "a refusal");
                return;
            }
            assert!(response.is_progress_notify());
            let ids: Vec<usize> = self
                .active
                .iter()
                .filter(|((s, _), _)| *s == stream)
                .map(|(_, w)| *w)
                .collect();
            for w in ids {
                self.check_progress(w, response.header_revision, &log);
            }
            return;
        }
        let key = (stream, response.watch_id);
        if response.created {
            assert!(!response.canceled);
            let w = self
                .unannounced
                .get_mut(&key)
                .and_then(VecDeque::pop_front)
                .expect("a created response for a watcher we created");
            assert!(self.active.insert(key, w).is_none(), "id reused while live");
            self.watchers[w].announced = true;
            return;
        }
        let w = self.watcher_of(stream, response.watch_id);
        if response.is_progress_notify() {
            self.check_progress(w, response.header_revision, &log);
            return;
        }
        let watcher = &mut self.watchers[w];
        if let (Some(previous), Some(first)) = (watcher.received.last(), response.events.first()) {
            assert!(
                previous.kv.mod_revision < first.kv.mod_revision,
                "a revision split across responses, or out of order"
            );
        }
        if let Some(last) = response.events.last() {
            assert!(response.header_revision >= last.kv.mod_revision);
            let first = response.events[0].kv.mod_revision;
            if first != last.kv.mod_revision {
                self.stats.replay_responses += 1;
            }
        }
        self.stats.events_received += response.events.len();
        watcher.received.extend(response.events.iter().cloned());
        if response.canceled {
            watcher.ending = if response.compact_revision != 0 {
                self.stats.compactions += 1;
                assert!(watcher.start_revision.max(1) < response.compact_revision);
                Ending::Compacted
            } else if response.cancel_reason.is_empty() {
                Ending::ClientCancel
            } else if let Some(at) = response.cancel_reason.find("watch again from revision ") {
                self.stats.slow_cancels += 1;
                let number = &response.cancel_reason[at + "watch again from revision ".len()..];
                Ending::Slow {
                    resume_revision: number.parse().expect("a revision"),
                }
            } else {
                Ending::Other(response.cancel_reason.clone())
            };
            self.active.remove(&key);
        }
        self.watchers[w].responses.push(response);
    }

    /// A progress notification at `revision` promises every event up to it.
    fn check_progress(&mut self, w: usize, revision: i64, log: &[Event]) {
        let watcher = &self.watchers[w];
        let expected = watcher.expected(log, revision);
        assert_eq!(
            watcher.received,
            expected,
            "progress at {revision} ahead of the events of {:?}\n{}",
            watcher.request,
            self.transcript.join("\n")
        );
        self.stats.progress_checked += 1;
    }

    fn drain(&mut self, stream: StreamId, polls_max: usize) {
        for _ in 0..polls_max {
            let Some(response) = self.h.hub.poll_stream(stream) else {
                return;
            };
            self.read(stream, response);
        }
    }

    fn random_request(&self, rng: &mut StdRng) -> WatchCreateRequest {
        let mut request = match rng.random_range(0..6) {
            0 | 1 => WatchCreateRequest::key(KEYS[rng.random_range(0..KEYS.len())]),
            2 => WatchCreateRequest::prefix(["a", "a/", "b"][rng.random_range(0..3)]),
            3 => WatchCreateRequest::range("a/", "b/1"),
            4 => WatchCreateRequest::range("b", "\0"),
            _ => WatchCreateRequest::range("", "\0"),
        };
        let current = self.h.store.revision();
        if rng.random_bool(0.5) {
            request.start_revision = rng.random_range(1..=current + 3);
        }
        request.prev_kv = rng.random_bool(0.5);
        request.progress_notify = rng.random_bool(0.3);
        request.filters = WatchFilters {
            no_put: rng.random_bool(0.1),
            no_delete: rng.random_bool(0.1),
        };
        if rng.random_bool(0.15) {
            request.watch_id = Some(WatchId(rng.random_range(0..6)));
        }
        request
    }

    fn create(&mut self, rng: &mut StdRng) {
        let stream = self.streams[rng.random_range(0..self.streams.len())];
        let request = self.random_request(rng);
        let current = self.h.hub.current_revision();
        let Ok(id) = self.h.hub.create_watch(stream, request.clone()) else {
            return;
        };
        let start_revision = if request.start_revision == 0 {
            current + 1
        } else {
            request.start_revision
        };
        self.unannounced
            .entry((stream, id))
            .or_default()
            .push_back(self.watchers.len());
        self.watchers.push(ModelWatcher {
            stream,
            request,
            start_revision,
            announced: false,
            received: Vec::new(),
            responses: Vec::new(),
            ending: Ending::Live,
        });
    }

    /// Reports to the hub the revisions the store applied while reporting was held back.
    fn report_held(&mut self) {
        for (revision, events) in self.held.drain(..) {
            self.h.hub.on_applied(revision, &events).unwrap();
        }
    }

    fn write(&mut self, rng: &mut StdRng) {
        let mut keys = KEYS.to_vec();
        let ops: Vec<Op> = (0..rng.random_range(1..=3))
            .map(|_| {
                let key = keys.swap_remove(rng.random_range(0..keys.len()));
                if rng.random_bool(0.7) {
                    put(key, &rng.random_range(0..1000).to_string())
                } else {
                    delete(key)
                }
            })
            .collect();
        // Sometimes the store runs ahead of the hub: catch-up must not deliver what the hub
        // has not been told about yet (it would be delivered again when reported).
        if self.hold_reports || !self.held.is_empty() {
            if let Some(applied) = self.h.store.apply(&ops) {
                self.held.push_back(applied);
            }
        } else {
            self.h.apply(&ops);
        }
    }

    fn close(&mut self, stream: StreamId) {
        self.h.hub.close_stream(stream).unwrap();
        self.streams.retain(|s| *s != stream);
        for watcher in &mut self.watchers {
            if watcher.stream == stream && watcher.ending == Ending::Live {
                watcher.ending = Ending::StreamClosed;
            }
        }
        self.active.retain(|(s, _), _| *s != stream);
        self.unannounced.retain(|(s, _), _| *s != stream);
    }

    fn settle(&mut self) {
        for _ in 0..10_000 {
            self.h.catch_up_all();
            let streams = self.streams.clone();
            let before = self.stats.events_received;
            let mut read_any = false;
            for stream in streams {
                while let Some(response) = self.h.hub.poll_stream(stream) {
                    self.read(stream, response);
                    read_any = true;
                }
            }
            if !read_any && before == self.stats.events_received {
                assert_eq!(self.h.hub.unsynced_watcher_count(), 0);
                return;
            }
        }
        panic!("never settled");
    }

    fn check_final(&mut self) {
        let log = self.h.store.log().to_vec();
        let current = self.h.store.revision();
        for watcher in &self.watchers {
            let expected = watcher.expected(&log, current);
            let got = &watcher.received;
            let context = format!("{:?} {:?}", watcher.request, watcher.ending);
            match &watcher.ending {
                Ending::Live => {
                    if self.streams.contains(&watcher.stream) {
                        assert!(watcher.announced);
                        assert_eq!(got, &expected, "live watcher {context}");
                        self.stats.live_at_end += 1;
                    }
                }
                Ending::Slow { resume_revision } => {
                    let below: Vec<Event> = expected
                        .iter()
                        .filter(|e| e.kv.mod_revision < *resume_revision)
                        .cloned()
                        .collect();
                    assert_eq!(got, &below, "slow watcher {context}");
                }
                Ending::Other(reason) => {
                    assert!(
                        reason.starts_with("revision "),
                        "unexpected reason {reason}"
                    );
                    assert!(expected.starts_with(got), "{context}");
                }
                _ => assert!(expected.starts_with(got), "ended watcher {context}"),
            }
        }
    }
}

fn random_config(rng: &mut StdRng) -> WatchConfig {
    WatchConfig {
        stream_queue_responses_max: rng.random_range(2..=24),
        stream_queue_events_max: rng.random_range(3..=30),
        stream_queue_bytes_max: if rng.random_bool(0.3) {
            rng.random_range(400..=3000)
        } else {
            1 << 20
        },
        stream_watchers_max: rng.random_range(2..=8),
        replay_batch_events_max: rng.random_range(1..=5),
        catch_up_watchers_max: rng.random_range(1..=4),
        progress_interval_ms: 1000,
    }
}

fn run(seed: u64, stats: &mut Stats) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model {
        h: Harness::new(random_config(&mut rng)),
        streams: Vec::new(),
        watchers: Vec::new(),
        unannounced: BTreeMap::new(),
        active: BTreeMap::new(),
        now_ms: 0,
        stats: Stats::default(),
        transcript: Vec::new(),
        hold_reports: false,
        held: VecDeque::new(),
    };
    if rng.random_bool(0.5) {
        model.h.store.history_scan_max = Some(rng.random_range(1..=6));
    }
    for _ in 0..rng.random_range(1..=3) {
        let stream = model.h.hub.open_stream(0);
        model.streams.push(stream);
    }
    for _ in 0..STEPS {
        let stream = model.streams[rng.random_range(0..model.streams.len())];
        let op = rng.random_range(0..100);
        model.transcript.push(format!(
            "op {op} on stream {stream} at revision {}",
            model.h.store.revision()
        ));
        match op {
            0..=34 => model.write(&mut rng),
            35..=46 => model.create(&mut rng),
            47..=50 => {
                let ids: Vec<WatchId> = model
                    .active
                    .keys()
                    .filter(|(s, _)| *s == stream)
                    .map(|(_, id)| *id)
                    .collect();
                if !ids.is_empty() {
                    let id = ids[rng.random_range(0..ids.len())];
                    let _ = model.h.hub.cancel_watch(stream, id);
                }
            }
            51..=53 => {
                let revision = model.h.store.revision();
                model.h.store.compact(rng.random_range(0..=revision));
            }
            54..=68 => {
                for _ in 0..rng.random_range(1..=3) {
                    model.h.hub.catch_up(&model.h.store);
                }
            }
            69..=86 => model.drain(stream, rng.random_range(1..=8)),
            87..=89 => model.h.hub.request_progress(stream).unwrap(),
            90..=92 => {
                model.now_ms += rng.random_range(0..=1500);
                model.h.hub.tick_progress(model.now_ms);
            }
            93 => {
                model.report_held();
                let revision = model.h.store.revision();
                model.h.hub.on_restored(revision).unwrap();
            }
            94 => {
                model.hold_reports = !model.hold_reports;
                if !model.hold_reports {
                    model.report_held();
                }
            }
            95..=96 => {
                let stream = model.h.hub.open_stream(model.now_ms);
                model.streams.push(stream);
            }
            97 if model.streams.len() > 1 => model.close(stream),
            _ => model.h.hub.request_progress(stream).unwrap(),
        }
    }
    model.report_held();
    model.settle();
    model.check_final();
    stats.events_received += model.stats.events_received;
    stats.replay_responses += model.stats.replay_responses;
    stats.slow_cancels += model.stats.slow_cancels;
    stats.compactions += model.stats.compactions;
    stats.progress_checked += model.stats.progress_checked;
    stats.live_at_end += model.stats.live_at_end;
}

#[test]
fn every_watcher_receives_exactly_its_filtered_history() {
    let mut stats = Stats::default();
    for seed in 0..SEEDS {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(seed, &mut stats);
        }));
        if let Err(panic) = outcome {
            eprintln!("watch model failed with seed {seed}");
            std::panic::resume_unwind(panic);
        }
    }
    eprintln!("{stats:?}");
    // The scenarios the test exists for all happened.
    assert!(stats.events_received > 10_000, "{stats:?}");
    assert!(stats.replay_responses > 100, "{stats:?}");
    assert!(stats.slow_cancels > 100, "{stats:?}");
    assert!(stats.compactions > 10, "{stats:?}");
    assert!(stats.progress_checked > 100, "{stats:?}");
    assert!(stats.live_at_end > 100, "{stats:?}");
}
