//! Shared by the watch tests: a minimal in-memory store with a full event history that
//! implements `WatchHistory`, a harness driving a `WatchHub` from it the way the state
//! machine driver will, and a compact text rendering of responses.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use sextant_core::kv::{Event, EventKind, KeyValue};
use sextant_core::watch::{
    CatchUpStatus, Compacted, HistoryPage, StreamId, WatchConfig, WatchHistory, WatchHub,
    WatchResponse,
};

/// One write of a transaction.
#[derive(Clone, Debug)]
pub enum Op {
    Put(Bytes, Bytes),
    Delete(Bytes),
}

pub fn put(key: &str, value: &str) -> Op {
    Op::Put(
        Bytes::copy_from_slice(key.as_bytes()),
        Bytes::copy_from_slice(value.as_bytes()),
    )
}

pub fn delete(key: &str) -> Op {
    Op::Delete(Bytes::copy_from_slice(key.as_bytes()))
}

/// The latest value of every key plus every event ever applied, in order.
#[derive(Default)]
pub struct TestStore {
    revision: i64,
    compact_revision: i64,
    keys: BTreeMap<Bytes, KeyValue>,
    log: Vec<Event>,
    /// Log entries one history call looks at before returning early at a revision boundary
    /// (the MVCC store bounds its scans the same way); `None` for no bound.
    pub history_scan_max: Option<usize>,
}

impl TestStore {
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// All events applied so far, in order (compacted ones included).
    pub fn log(&self) -> &[Event] {
        &self.log
    }

    /// Applies a transaction as etcd does: one revision for all its writes; a transaction
    /// that changes nothing (deletes of absent keys only) does not bump the revision.
    pub fn apply(&mut self, ops: &[Op]) -> Option<(i64, Vec<Event>)> {
        let revision = self.revision + 1;
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Put(key, value) => {
                    let prev = self.keys.get(key).cloned();
                    let kv = KeyValue {
                        key: key.clone(),
                        create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
                        mod_revision: revision,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                        value: value.clone(),
                        lease: 0,
                    };
                    self.keys.insert(key.clone(), kv.clone());
                    events.push(Event {
                        kind: EventKind::Put,
                        kv,
                        prev_kv: prev,
                    });
                }
                Op::Delete(key) => {
                    if let Some(prev) = self.keys.remove(key) {
                        events.push(Event {
                            kind: EventKind::Delete,
                            kv: KeyValue {
                                key: key.clone(),
                                mod_revision: revision,
                                ..KeyValue::default()
                            },
                            prev_kv: Some(prev),
                        });
                    }
                }
            }
        }
        if events.is_empty() {
            return None;
        }
        self.revision = revision;
        self.log.extend(events.iter().cloned());
        Some((revision, events))
    }

    pub fn compact(&mut self, revision: i64) {
        assert!(revision <= self.revision);
        self.compact_revision = self.compact_revision.max(revision);
    }
}

pub fn in_range(k: &[u8], key: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        return k == key;
    }
    if range_end == [0] {
        return k >= key;
    }
    k >= key && k < range_end
}

impl WatchHistory for TestStore {
    fn events(
        &self,
        key: &Bytes,
        range_end: &Bytes,
        from_revision: i64,
        events_max: usize,
    ) -> Result<HistoryPage, Compacted> {
        if from_revision < self.compact_revision {
            return Err(Compacted {
                compact_revision: self.compact_revision,
            });
        }
        let scan_max = self.history_scan_max.unwrap_or(usize::MAX);
        let mut events: Vec<Event> = Vec::new();
        let mut last_revision = None;
        let from = self
            .log
            .iter()
            .filter(|e| e.kv.mod_revision >= from_revision);
        for (scanned, event) in from.enumerate() {
            let revision = event.kv.mod_revision;
            if last_revision != Some(revision) {
                let full = !events.is_empty() && events.len() >= events_max;
                if full || scanned >= scan_max {
                    return Ok(HistoryPage {
                        events,
                        next_revision: revision,
                    });
                }
                last_revision = Some(revision);
            }
            if in_range(&event.kv.key, key, range_end) {
                events.push(event.clone());
            }
        }
        Ok(HistoryPage {
            events,
            next_revision: (self.revision + 1).max(from_revision),
        })
    }
}

/// A store and a hub, driven as the state machine will drive them.
pub struct Harness {
    pub store: TestStore,
    pub hub: WatchHub,
}

impl Harness {
    pub fn new(config: WatchConfig) -> Self {
        Harness {
            store: TestStore::default(),
            hub: WatchHub::new(config, 0).expect("valid config"),
        }
    }

    /// Applies a transaction to the store, then reports it to the hub. Returns the
    /// revision (unchanged when the transaction wrote nothing).
    pub fn apply(&mut self, ops: &[Op]) -> i64 {
        if let Some((revision, events)) = self.store.apply(ops) {
            self.hub.on_applied(revision, &events).expect("increasing");
        }
        self.store.revision()
    }

    pub fn put(&mut self, key: &str, value: &str) -> i64 {
        self.apply(&[put(key, value)])
    }

    pub fn delete(&mut self, key: &str) -> i64 {
        self.apply(&[delete(key)])
    }

    /// Calls `catch_up` until it has nothing it can do now.
    pub fn catch_up_all(&mut self) -> CatchUpStatus {
        for _ in 0..100_000 {
            let status = self.hub.catch_up(&self.store);
            if status != CatchUpStatus::MorePending {
                return status;
            }
        }
        panic!("catch_up never settled");
    }

    pub fn drain(&mut self, stream: StreamId) -> Vec<WatchResponse> {
        std::iter::from_fn(|| self.hub.poll_stream(stream)).collect()
    }

    /// Catches up and drains until nothing moves.
    pub fn settle(&mut self, stream: StreamId) -> Vec<WatchResponse> {
        let mut out = Vec::new();
        loop {
            self.catch_up_all();
            let drained = self.drain(stream);
            if drained.is_empty() {
                return out;
            }
            out.extend(drained);
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn render_kv(kv: &KeyValue) -> String {
    format!(
        "{}={} c{} m{} v{}",
        text(&kv.key),
        text(&kv.value),
        kv.create_revision,
        kv.mod_revision,
        kv.version
    )
}

/// One line per response, events indented below it.
pub fn render(response: &WatchResponse) -> String {
    let mut line = format!("watch {} @{}", response.watch_id, response.header_revision);
    if response.created {
        line.push_str(" created");
    }
    if response.canceled {
        line.push_str(" canceled");
    }
    if response.compact_revision != 0 {
        write!(line, " compact_revision={}", response.compact_revision).unwrap();
    }
    if !response.cancel_reason.is_empty() {
        write!(line, " reason=\"{}\"", response.cancel_reason).unwrap();
    }
    if response.is_progress_notify() {
        line.push_str(" progress");
    }
    for event in &response.events {
        let kind = match event.kind {
            EventKind::Put => "PUT",
            EventKind::Delete => "DELETE",
        };
        let kv = match event.kind {
            EventKind::Put => render_kv(&event.kv),
            EventKind::Delete => format!("{} m{}", text(&event.kv.key), event.kv.mod_revision),
        };
        write!(line, "\n    {kind} {kv}").unwrap();
        if let Some(prev) = &event.prev_kv {
            write!(line, " prev=[{}]", render_kv(prev)).unwrap();
        }
    }
    line
}

pub fn render_all(responses: &[WatchResponse]) -> String {
    responses.iter().map(|r| render(r) + "\n").collect()
}

/// The events of a list of responses, concatenated.
pub fn events_of(responses: &[WatchResponse]) -> Vec<Event> {
    responses
        .iter()
        .flat_map(|r| r.events.iter().cloned())
        .collect()
}

/// (key, mod_revision) of each event: enough to compare sequences in assertions.
pub fn keys_revs(events: &[Event]) -> Vec<(String, i64)> {
    events
        .iter()
        .map(|e| (text(&e.kv.key), e.kv.mod_revision))
        .collect()
}
