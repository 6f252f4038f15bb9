//! Sextant's history format: JSON lines, one event per line (see the `checker` module
//! documentation), and the recorder that builds such histories in memory.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Deserializer, Serialize};

use super::ParseError;
use crate::checker::check::{check, CheckOptions, CheckResult};
use crate::checker::model::Operation;
use crate::checker::models::{KvInput, KvModel, KvOutput};

/// An operation's id in a [`HistoryRecorder`] (the `op` field of the JSON lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    Call(KvInput),
    Return(KvOutput),
    Fail(Option<String>),
    Unknown(Option<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Event {
    client: u64,
    op: u64,
    t: u64,
    body: Body,
}

/// Why an event does not fit the events before it.
#[derive(Debug)]
enum EventError {
    TimeWentBack { t: u64, previous: u64 },
    Duplicate { op: u64, since: usize },
    Unmatched { op: u64 },
    Mismatch { call_line: usize, message: String },
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    /// Index into `ops` and line (event number, from 1) of the call.
    Pending(usize, usize),
    Done(usize),
}

/// Folds events into operations, checking that they fit together.
#[derive(Clone, Debug, Default)]
struct Builder {
    ops: Vec<Option<Operation<KvInput, KvOutput>>>,
    slots: BTreeMap<u64, Slot>,
    last_t: Option<u64>,
}

fn output_fits(input: &KvInput, output: &KvOutput) -> bool {
    matches!(
        (input, output),
        (KvInput::Put { .. }, KvOutput::Put)
            | (KvInput::Get { .. }, KvOutput::Get(_))
            | (KvInput::Delete { .. }, KvOutput::Delete { .. })
            | (KvInput::Cas { .. }, KvOutput::Cas { .. })
    )
}

fn output_name(output: &KvOutput) -> &'static str {
    match output {
        KvOutput::Put => "put",
        KvOutput::Get(_) => "get",
        KvOutput::Delete { .. } => "delete",
        KvOutput::Cas { .. } => "cas",
    }
}

impl Builder {
    fn push(&mut self, ev: &Event, line: usize) -> Result<(), EventError> {
        if let Some(previous) = self.last_t {
            if ev.t < previous {
                return Err(EventError::TimeWentBack { t: ev.t, previous });
            }
        }
        if let Body::Call(input) = &ev.body {
            if let Some(Slot::Pending(_, since) | Slot::Done(since)) = self.slots.get(&ev.op) {
                return Err(EventError::Duplicate {
                    op: ev.op,
                    since: *since,
                });
            }
            self.slots
                .insert(ev.op, Slot::Pending(self.ops.len(), line));
            self.ops.push(Some(Operation::unknown(
                ev.client,
                input.clone(),
                ev.t,
                None,
            )));
            self.last_t = Some(ev.t);
            return Ok(());
        }
        let Some(&Slot::Pending(index, call_line)) = self.slots.get(&ev.op) else {
            return Err(EventError::Unmatched { op: ev.op });
        };
        let op = self.ops[index]
            .as_mut()
            .expect("pending operations are never dropped");
        if op.client != ev.client {
            return Err(EventError::Mismatch {
                call_line,
                message: format!(
                    "client {} completes an operation of client {}",
                    ev.client, op.client
                ),
            });
        }
        match &ev.body {
            Body::Call(_) => unreachable!("handled above"),
            Body::Return(output) => {
                if !output_fits(&op.input, output) {
                    return Err(EventError::Mismatch {
                        call_line,
                        message: format!(
                            "a {} result for a {} call",
                            output_name(output),
                            op.input.name()
                        ),
                    });
                }
                op.output = Some(output.clone());
                op.ret = Some(ev.t);
            }
            Body::Unknown(_) => op.ret = Some(ev.t),
            Body::Fail(_) => self.ops[index] = None,
        }
        self.slots.insert(ev.op, Slot::Done(call_line));
        self.last_t = Some(ev.t);
        Ok(())
    }

    fn history(&self) -> Vec<Operation<KvInput, KvOutput>> {
        self.ops.iter().flatten().cloned().collect()
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

#[derive(Serialize)]
struct OutLine<'a> {
    client: u64,
    op: u64,
    kind: &'static str,
    t: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    f: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    swapped: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl<'a> OutLine<'a> {
    fn new(client: u64, op: u64, kind: &'static str, t: u64) -> Self {
        OutLine {
            client,
            op,
            kind,
            t,
            f: None,
            key: None,
            value: None,
            expected: None,
            new: None,
            swapped: None,
            deleted: None,
            error: None,
        }
    }

    fn call(client: u64, op: u64, t: u64, input: &'a KvInput) -> Self {
        let mut l = OutLine::new(client, op, "call", t);
        l.f = Some(input.name());
        l.key = Some(input.key());
        match input {
            KvInput::Put { value, .. } => l.value = Some(Some(value)),
            KvInput::Get { .. } | KvInput::Delete { .. } => {}
            KvInput::Cas { expected, new, .. } => {
                l.expected = Some(expected.as_deref());
                l.new = Some(new);
            }
        }
        l
    }

    fn ret(client: u64, op: u64, t: u64, output: &'a KvOutput) -> Self {
        let mut l = OutLine::new(client, op, "return", t);
        l.f = Some(output_name(output));
        match output {
            KvOutput::Put => {}
            KvOutput::Get(v) => l.value = Some(v.as_deref()),
            KvOutput::Delete { deleted } => l.deleted = *deleted,
            KvOutput::Cas { swapped } => l.swapped = Some(*swapped),
        }
        l
    }

    fn write(&self, w: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *w, self).map_err(io::Error::from)?;
        w.write_all(b"\n")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Call,
    Return,
    Fail,
    Unknown,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct InLine {
    client: u64,
    op: u64,
    kind: Kind,
    t: u64,
    #[serde(default)]
    f: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, deserialize_with = "present")]
    value: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    expected: Option<Option<String>>,
    #[serde(default)]
    new: Option<String>,
    #[serde(default)]
    swapped: Option<bool>,
    #[serde(default)]
    deleted: Option<bool>,
    #[serde(default)]
    error: Option<String>,
}

/// Parses Sextant's JSON-lines history format (documented in the `checker` module) into a
/// history for [`KvModel`], in call order. `file` names the source in errors.
pub fn parse_jsonl(
    file: &str,
    text: &str,
) -> Result<Vec<Operation<KvInput, KvOutput>>, ParseError> {
    let mut builder = Builder::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let syntax = |message: String| ParseError::Syntax {
            file: file.to_string(),
            line,
            message,
        };
        let l: InLine = serde_json::from_str(raw).map_err(|source| ParseError::Json {
            file: file.to_string(),
            line,
            source,
        })?;
        let missing =
            |field: &str, f: &str| syntax(format!("a {f} {} needs `{field}`", kind_name(&l.kind)));
        let body = match l.kind {
            Kind::Call => {
                let f =
                    l.f.as_deref()
                        .ok_or_else(|| syntax("a call needs `f`".into()))?;
                let key = l.key.clone().ok_or_else(|| missing("key", f))?;
                Body::Call(match f {
                    "put" => KvInput::Put {
                        key,
                        value: l
                            .value
                            .clone()
                            .flatten()
                            .ok_or_else(|| missing("value", f))?,
                    },
                    "get" => KvInput::Get { key },
                    "delete" => KvInput::Delete { key },
                    "cas" => KvInput::Cas {
                        key,
                        expected: l.expected.clone().ok_or_else(|| missing("expected", f))?,
                        new: l.new.clone().ok_or_else(|| missing("new", f))?,
                    },
                    other => {
                        return Err(syntax(format!(
                            "unknown operation `{other}` (put, get, delete or cas)"
                        )))
                    }
                })
            }
            Kind::Return => {
                // The output's shape comes from the call.
                let call = builder
                    .slots
                    .get(&l.op)
                    .and_then(|s| match s {
                        Slot::Pending(index, _) => builder.ops[*index].as_ref(),
                        Slot::Done(_) => None,
                    })
                    .ok_or_else(|| ParseError::Unmatched {
                        file: file.to_string(),
                        line,
                        what: format!("op {}", l.op),
                    })?;
                let f = call.input.name();
                if let Some(rf) = l.f.as_deref() {
                    if rf != f {
                        let call_line = match builder.slots.get(&l.op) {
                            Some(Slot::Pending(_, cl)) => *cl,
                            _ => 0,
                        };
                        return Err(ParseError::Mismatch {
                            file: file.to_string(),
                            line,
                            call_line,
                            message: format!("returns `{rf}` for a `{f}` call"),
                        });
                    }
                }
                Body::Return(match call.input {
                    KvInput::Put { .. } => KvOutput::Put,
                    KvInput::Get { .. } => {
                        KvOutput::Get(l.value.clone().ok_or_else(|| missing("value", f))?)
                    }
                    KvInput::Delete { .. } => KvOutput::Delete { deleted: l.deleted },
                    KvInput::Cas { .. } => KvOutput::Cas {
                        swapped: l.swapped.ok_or_else(|| missing("swapped", f))?,
                    },
                })
            }
            Kind::Fail => Body::Fail(l.error.clone()),
            Kind::Unknown => Body::Unknown(l.error.clone()),
        };
        let ev = Event {
            client: l.client,
            op: l.op,
            t: l.t,
            body,
        };
        builder.push(&ev, line).map_err(|e| match e {
            EventError::TimeWentBack { t, previous } => ParseError::TimeWentBack {
                file: file.to_string(),
                line,
                t,
                previous,
            },
            EventError::Duplicate { op, since } => ParseError::AlreadyPending {
                file: file.to_string(),
                line,
                what: format!("op {op}"),
                since,
            },
            EventError::Unmatched { op } => ParseError::Unmatched {
                file: file.to_string(),
                line,
                what: format!("op {op}"),
            },
            EventError::Mismatch { call_line, message } => ParseError::Mismatch {
                file: file.to_string(),
                line,
                call_line,
                message,
            },
        })?;
    }
    Ok(builder.history())
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Call => "call",
        Kind::Return => "return",
        Kind::Fail => "fail",
        Kind::Unknown => "unknown",
    }
}

fn write_event(w: &mut impl Write, ev: &Event, calls: &BTreeMap<u64, &KvInput>) -> io::Result<()> {
    let f = calls.get(&ev.op).map(|i| i.name());
    match &ev.body {
        Body::Call(input) => OutLine::call(ev.client, ev.op, ev.t, input).write(w),
        Body::Return(output) => OutLine::ret(ev.client, ev.op, ev.t, output).write(w),
        Body::Fail(error) | Body::Unknown(error) => {
            let kind = if matches!(ev.body, Body::Fail(_)) {
                "fail"
            } else {
                "unknown"
            };
            let mut l = OutLine::new(ev.client, ev.op, kind, ev.t);
            l.f = f;
            l.error = error.as_deref();
            l.write(w)
        }
    }
}

/// Writes a history (for instance one parsed or built by hand) in the JSON-lines format. The
/// operations get ids `0, 1, …` in history order; an operation with an unknown outcome gets an
/// `unknown` line at its `ret` time, or no line if `ret` is `None`.
pub fn write_jsonl(w: &mut impl Write, history: &[Operation<KvInput, KvOutput>]) -> io::Result<()> {
    let mut events: Vec<(u64, bool, u64, Event)> = Vec::with_capacity(2 * history.len());
    for (i, op) in history.iter().enumerate() {
        let id = i as u64;
        events.push((
            op.call,
            false,
            id,
            Event {
                client: op.client,
                op: id,
                t: op.call,
                body: Body::Call(op.input.clone()),
            },
        ));
        let body = match (&op.output, op.ret) {
            (Some(o), _) => Body::Return(o.clone()),
            (None, Some(_)) => Body::Unknown(None),
            (None, None) => continue,
        };
        let t = op.ret.unwrap_or(op.call).max(op.call);
        events.push((
            t,
            true,
            id,
            Event {
                client: op.client,
                op: id,
                t,
                body,
            },
        ));
    }
    events.sort_by_key(|e| (e.0, e.1, e.2));
    let calls: BTreeMap<u64, &KvInput> = history
        .iter()
        .enumerate()
        .map(|(i, op)| (i as u64, &op.input))
        .collect();
    for (_, _, _, ev) in &events {
        write_event(w, ev, &calls)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Recorder

/// Why the recorder refused an event.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The operation was never called.
    #[error("operation {0:?} was never called")]
    UnknownOp(OpId),
    /// The operation was already completed (returned, failed or declared unknown).
    #[error("operation {0:?} is already completed")]
    AlreadyCompleted(OpId),
    /// The result does not fit the call (e.g. a get result for a put).
    #[error("operation {op:?}: a {output} result for a {input} call")]
    WrongOutput {
        /// The operation.
        op: OpId,
        /// The call's kind.
        input: &'static str,
        /// The result's kind.
        output: &'static str,
    },
    /// Time went backwards.
    #[error("time {t} is before the previous event's time {previous}")]
    TimeWentBack {
        /// The event's time.
        t: u64,
        /// The previous event's time.
        previous: u64,
    },
}

/// Builds a history of operations on Sextant's key/value store in memory, as a simulation
/// runs, and writes it as JSON lines.
///
/// Times (`t`) are the simulator's global time (e.g. nanoseconds since the start); they must
/// not decrease from one event to the next (an event that goes back in time is refused). A
/// return and a call at the same time count as concurrent.
///
/// ```
/// use sextant_sim::checker::{CheckOptions, HistoryRecorder, KvInput, KvOutput, Verdict};
///
/// let mut rec = HistoryRecorder::new();
/// let put = rec.call(1, 10, KvInput::put("k", "v"))?;
/// let get = rec.call(2, 15, KvInput::get("k"))?;
/// rec.ret(put, 20, KvOutput::Put)?;
/// rec.ret(get, 25, KvOutput::Get(Some("v".into())))?;
/// let lost = rec.call(3, 30, KvInput::put("k", "w"))?;
/// rec.unknown(lost, 90, "timeout")?;
/// assert_eq!(rec.check(&CheckOptions::default()).verdict, Verdict::Linearizable);
/// let jsonl = rec.to_jsonl();
/// assert_eq!(jsonl.lines().count(), 6);
/// # Ok::<(), sextant_sim::checker::RecordError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct HistoryRecorder {
    events: Vec<Event>,
    builder: Builder,
    next_op: u64,
}

impl HistoryRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        HistoryRecorder::default()
    }

    /// Records a call by `client` at time `t` and returns the operation's id.
    pub fn call(&mut self, client: u64, t: u64, input: KvInput) -> Result<OpId, RecordError> {
        let op = self.next_op;
        let ev = Event {
            client,
            op,
            t,
            body: Body::Call(input),
        };
        self.builder
            .push(&ev, self.events.len() + 1)
            .map_err(|e| match e {
                EventError::TimeWentBack { t, previous } => {
                    RecordError::TimeWentBack { t, previous }
                }
                other => unreachable!("a fresh operation id cannot clash: {other:?}"),
            })?;
        self.next_op += 1;
        self.events.push(ev);
        Ok(OpId(op))
    }

    fn complete(&mut self, op: OpId, t: u64, body: Body) -> Result<(), RecordError> {
        let client = match self.builder.slots.get(&op.0) {
            None => return Err(RecordError::UnknownOp(op)),
            Some(Slot::Done(_)) => return Err(RecordError::AlreadyCompleted(op)),
            Some(Slot::Pending(index, _)) => {
                let call = self.builder.ops[*index]
                    .as_ref()
                    .expect("pending operations are never dropped");
                if let Body::Return(output) = &body {
                    if !output_fits(&call.input, output) {
                        return Err(RecordError::WrongOutput {
                            op,
                            input: call.input.name(),
                            output: output_name(output),
                        });
                    }
                }
                call.client
            }
        };
        let ev = Event {
            client,
            op: op.0,
            t,
            body,
        };
        self.builder
            .push(&ev, self.events.len() + 1)
            .map_err(|e| match e {
                EventError::TimeWentBack { t, previous } => {
                    RecordError::TimeWentBack { t, previous }
                }
                EventError::Duplicate { .. }
                | EventError::Unmatched { .. }
                | EventError::Mismatch { .. } => RecordError::AlreadyCompleted(op),
            })?;
        self.events.push(ev);
        Ok(())
    }

    /// Records that `op` returned `output` at time `t`.
    pub fn ret(&mut self, op: OpId, t: u64, output: KvOutput) -> Result<(), RecordError> {
        self.complete(op, t, Body::Return(output))
    }

    /// Records that `op` definitely failed without taking effect (e.g. refused before being
    /// proposed). The checker leaves it out.
    pub fn fail(&mut self, op: OpId, t: u64, error: impl Into<String>) -> Result<(), RecordError> {
        self.complete(op, t, Body::Fail(Some(error.into())))
    }

    /// Records that the client gave up on `op` at time `t` without knowing its outcome
    /// (timeout, lost connection): it may take effect at any point after its call, or never.
    /// An operation never completed is treated the same way.
    pub fn unknown(
        &mut self,
        op: OpId,
        t: u64,
        error: impl Into<String>,
    ) -> Result<(), RecordError> {
        self.complete(op, t, Body::Unknown(Some(error.into())))
    }

    /// The number of events recorded.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The history so far, in call order (failed operations left out; pending ones have an
    /// unknown outcome).
    pub fn history(&self) -> Vec<Operation<KvInput, KvOutput>> {
        self.builder.history()
    }

    /// Checks the history so far with [`KvModel`].
    pub fn check(&self, options: &CheckOptions) -> CheckResult {
        check(&KvModel, &self.history(), options)
    }

    /// Writes the events as JSON lines, in the order they were recorded.
    pub fn write_jsonl(&self, w: &mut impl Write) -> io::Result<()> {
        let calls: BTreeMap<u64, &KvInput> = self
            .events
            .iter()
            .filter_map(|e| match &e.body {
                Body::Call(i) => Some((e.op, i)),
                _ => None,
            })
            .collect();
        for ev in &self.events {
            write_event(w, ev, &calls)?;
        }
        Ok(())
    }

    /// The events as JSON lines.
    pub fn to_jsonl(&self) -> String {
        let mut out = Vec::new();
        self.write_jsonl(&mut out)
            .expect("writing to memory cannot fail");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }
}

/// A [`HistoryRecorder`] behind a mutex, cheap to clone, for recording from many simulated
/// clients. The methods are those of [`HistoryRecorder`].
#[derive(Clone, Debug, Default)]
pub struct SharedHistoryRecorder(Arc<Mutex<HistoryRecorder>>);

impl SharedHistoryRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        SharedHistoryRecorder::default()
    }

    fn lock(&self) -> MutexGuard<'_, HistoryRecorder> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// See [`HistoryRecorder::call`].
    pub fn call(&self, client: u64, t: u64, input: KvInput) -> Result<OpId, RecordError> {
        self.lock().call(client, t, input)
    }

    /// See [`HistoryRecorder::ret`].
    pub fn ret(&self, op: OpId, t: u64, output: KvOutput) -> Result<(), RecordError> {
        self.lock().ret(op, t, output)
    }

    /// See [`HistoryRecorder::fail`].
    pub fn fail(&self, op: OpId, t: u64, error: impl Into<String>) -> Result<(), RecordError> {
        self.lock().fail(op, t, error)
    }

    /// See [`HistoryRecorder::unknown`].
    pub fn unknown(&self, op: OpId, t: u64, error: impl Into<String>) -> Result<(), RecordError> {
        self.lock().unknown(op, t, error)
    }

    /// A copy of the recorder as it is now.
    pub fn snapshot(&self) -> HistoryRecorder {
        self.lock().clone()
    }
}
