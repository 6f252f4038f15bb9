//! # A Porcupine-style linearizability checker
//!
//! Plain Rust, independent of madsim: it runs in the simulator, in tests and from the command
//! line (`cargo sim check FILE…`, see [`check_files`]).
//!
//! ## What it does
//!
//! A *history* is a list of [`Operation`]s, each with a client, an input, a call time and
//! either a return time and output or an *unknown outcome* (timed out, crashed client). A
//! [`Model`] is a sequential specification: `init`, `step(state, input, output) -> Option<new
//! state>`, a `partition` of the history into independent parts and `describe_*` texts.
//! [`check`] decides whether some total order of the operations (a *linearization*) respects
//! real time (an operation that returned before another was called comes first) and the model.
//!
//! - **Search**: Wing & Gong's algorithm with Lowe's cache, as in Porcupine's `checkSingle`: a
//!   doubly linked list of call/return entries, lift/unlift, a backtracking stack and a cache
//!   of (bitset of linearized operations, model state) pairs. One extra rule: an *observer*
//!   (an operation that never changes the state, see [`Model::is_observer`]) that can be
//!   linearized now is linearized at once, without trying alternatives (this is exact, see
//!   the `search` module).
//! - **P-compositionality**: each partition is checked on its own. Partitions take turns
//!   with a doubling allowance of steps (deterministic, unlike Porcupine's goroutines), so a
//!   violation in an easy partition is found even when another partition is hard; the check
//!   stops at the end of that round unless [`CheckOptions::exhaustive`] is set.
//! - **Unknown outcomes**: an operation with `output == None` may take effect at any point
//!   after its call, or not at all: like Porcupine, the search gives it a return after every
//!   other event (being linearized last is the same as never happening). Better than
//!   Porcupine, observers with an unknown outcome (a read that timed out) are left out, as
//!   they constrain nothing.
//! - **Budgets**: [`CheckOptions::budget`] (wall clock) and [`CheckOptions::max_steps`]
//!   (deterministic) end the search with [`Verdict::Unknown`].
//! - **Explanations**: for a partition that is not linearizable, [`PartitionResult`] gives the
//!   longest partial linearization found and the operations that could not be placed after it;
//!   [`explain`] and [`Explanation::to_html`] turn that into one self-contained HTML page.
//!
//! Results never depend on timing unless the wall-clock budget runs out: no hash map is
//! iterated, and partitions take turns in a fixed order.
//!
//! ## Models
//!
//! - [`RegisterModel`]: one integer register with read, write and cas (Porcupine's etcd Jepsen
//!   model). A cas that reports failure happened as a no-op whose compare failed.
//! - [`PorcupineKvModel`] (partitioned by key) and [`PorcupineKvUnpartitioned`]: Porcupine's
//!   get/put/append store.
//! - [`KvModel`]: Sextant's store, `put(key, value)`, `get(key) -> Option<value>`,
//!   `delete(key)`, `cas(key, expected: Option<value>, new) -> bool`, partitioned by key.
//!
//! ## Formats
//!
//! [`HistoryFormat::detect`] tells them apart by their first line.
//!
//! - Porcupine's `jepsen/etcd_NNN.log` ([`parse_jepsen_etcd`]) and `kv/cNN-*.txt`
//!   ([`parse_porcupine_kv`]); times are line numbers.
//! - Sextant's **JSON lines** ([`parse_jsonl`], written by [`HistoryRecorder`] and
//!   [`write_jsonl`]), described next.
//!
//! ## The JSON-lines history format
//!
//! One JSON object per line, one *event* per object, in the order the events happened. Blank
//! lines are skipped and fields not listed here are ignored. Every event has:
//!
//! | field | type | meaning |
//! | --- | --- | --- |
//! | `kind` | `"call"`, `"return"`, `"fail"` or `"unknown"` | what happened |
//! | `client` | integer ≥ 0 | the client (must be the same on the call and its completion) |
//! | `op` | integer ≥ 0 | the operation's id, unique in the file |
//! | `t` | integer ≥ 0 | the time, e.g. simulated nanoseconds; never decreases from line to line |
//!
//! A **call** names the operation in `f` with its arguments:
//!
//! | `f` | arguments |
//! | --- | --- |
//! | `"put"` | `key` (string), `value` (string) |
//! | `"get"` | `key` |
//! | `"delete"` | `key` |
//! | `"cas"` | `key`, `expected` (string, or `null` to expect the key absent), `new` (string) |
//!
//! A **return** completes the operation `op` with its result (`f` may be repeated; if present
//! it must match the call's):
//!
//! | `f` | result |
//! | --- | --- |
//! | `"put"` | none |
//! | `"get"` | `value`: string, or `null` if the key is absent (required) |
//! | `"delete"` | optionally `deleted`: whether the key existed |
//! | `"cas"` | `swapped`: `true` if the compare matched and the value was set, `false` if not (nothing changed) |
//!
//! A **fail** says the operation definitely did not take effect (refused before being
//! proposed); the checker leaves it out. An **unknown** says the client gave up without
//! knowing the outcome (timeout, lost connection): the operation may take effect at any point
//! after its call, or never. A call with no completion by the end of the file is unknown too.
//! Both may carry a free-text `error`.
//!
//! A return and a call at the same `t` are concurrent; an operation precedes another only if
//! its return's `t` is smaller than the other's call's `t`.
//!
//! ```text
//! {"client":3,"op":7,"kind":"call","t":1234,"f":"put","key":"k","value":"v"}
//! {"client":1,"op":8,"kind":"call","t":1250,"f":"get","key":"k"}
//! {"client":3,"op":7,"kind":"return","t":1300,"f":"put"}
//! {"client":1,"op":8,"kind":"return","t":1310,"f":"get","value":"v"}
//! {"client":2,"op":9,"kind":"call","t":1400,"f":"cas","key":"k","expected":null,"new":"w"}
//! {"client":2,"op":9,"kind":"return","t":1420,"f":"cas","swapped":false}
//! {"client":4,"op":10,"kind":"call","t":1500,"f":"delete","key":"k"}
//! {"client":4,"op":10,"kind":"unknown","t":2500,"f":"delete","error":"timeout"}
//! ```

mod check;
mod cli;
mod formats;
mod html;
mod model;
mod models;
mod search;

pub use check::{check, CheckOptions, CheckResult, PartitionResult, Verdict};
pub use cli::{
    check_file, check_files, check_files_to, CheckFileError, CheckFilesError, FileCheck, FileReport,
};
pub use formats::{
    parse_jepsen_etcd, parse_jsonl, parse_porcupine_kv, write_jsonl, HistoryFormat,
    HistoryRecorder, OpId, ParseError, RecordError, SharedHistoryRecorder,
};
pub use html::{escape_html, explain, Explanation, OpView, PartitionView, StepView};
pub use model::{partition_by_key, Model, Operation, Partition};
pub use models::{
    HashedStr, KvInput, KvModel, KvOutput, KvStore, PorcupineKvInput, PorcupineKvModel,
    PorcupineKvOutput, PorcupineKvUnpartitioned, RegisterInput, RegisterModel, RegisterOutput,
};
