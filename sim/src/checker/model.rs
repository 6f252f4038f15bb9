//! The model trait (a sequential specification) and the operation type histories are made of.

use std::collections::BTreeMap;
use std::fmt::{self, Debug, Display};
use std::hash::Hash;

/// One operation of a concurrent history, as a client saw it.
///
/// Times are abstract and only their order matters: an operation `a` precedes `b` in real time
/// when `a.ret < b.call`. Equal times count as concurrent (a call and a return at the same time
/// overlap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client (process, session) that issued the operation. Used for display only.
    pub client: u64,
    /// What was asked.
    pub input: I,
    /// When the client issued the call.
    pub call: u64,
    /// When the client saw the return. For an operation whose outcome is unknown
    /// (`output == None`) this is when the client gave up, if known, and is used for display
    /// only: the checker lets such an operation take effect at any point after its call.
    pub ret: Option<u64>,
    /// What was answered; `None` means the outcome is unknown (timed out, crashed client): the
    /// operation may have taken effect at any point after its call, or not at all.
    pub output: Option<O>,
}

impl<I, O> Operation<I, O> {
    /// An operation that completed with `output` at time `ret`.
    pub fn completed(client: u64, input: I, call: u64, output: O, ret: u64) -> Self {
        Operation {
            client,
            input,
            call,
            ret: Some(ret),
            output: Some(output),
        }
    }

    /// An operation whose outcome is unknown. `gave_up` is when the client stopped waiting, if
    /// it did (display only).
    pub fn unknown(client: u64, input: I, call: u64, gave_up: Option<u64>) -> Self {
        Operation {
            client,
            input,
            call,
            ret: gave_up,
            output: None,
        }
    }

    /// Whether the outcome of the operation is unknown.
    pub fn is_unknown(&self) -> bool {
        self.output.is_none()
    }
}

/// A partition of a history: the indices (into the history) of the operations that belong to
/// it. Partitions are checked independently (P-compositionality), so a model may only split a
/// history where the specification makes the parts independent (e.g. by key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Shown in verdicts and the visualization (e.g. `key "x"`).
    pub name: String,
    /// Indices into the history, in increasing order.
    pub ops: Vec<usize>,
}

/// A sequential specification of an object.
///
/// `step` must be a pure function: the checker calls it many times for the same arguments, in
/// an order that depends only on the history.
pub trait Model {
    /// What a client asks.
    type Input: Clone + Debug;
    /// What the object answers.
    type Output: Clone + Debug;
    /// The object's state. Hashed and compared to prune the search, so two states must be equal
    /// exactly when the object behaves the same from them on.
    type State: Clone + Eq + Hash + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`. Returns the new state if the object can answer `output` in
    /// `state`, `None` if it cannot.
    ///
    /// `output == None` means the outcome is unknown: the model must then accept the operation in
    /// every state and return the state that results if it takes effect.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Whether the operation leaves the state unchanged whenever `step` accepts it (a read, a
    /// compare-and-set that reports a failed compare). The checker linearizes an accepted
    /// observer as early as possible without trying alternatives, and drops observers whose
    /// outcome is unknown (they constrain nothing). Answering `true` for an operation that can
    /// change the state makes the checker unsound; the default `false` is always safe.
    fn is_observer(&self, _input: &Self::Input, _output: Option<&Self::Output>) -> bool {
        false
    }

    /// Splits a history into independent parts. The default keeps it whole.
    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Partition> {
        vec![Partition {
            name: "all operations".to_string(),
            ops: (0..history.len()).collect(),
        }]
    }

    /// A short human-readable text for an operation, e.g. `put(k, v) → ok`, or
    /// `cas(x, 1, 2) → ?` for an unknown outcome.
    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        match output {
            Some(o) => format!("{input:?} → {o:?}"),
            None => format!("{input:?} → ?"),
        }
    }

    /// A short human-readable text for a state.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// Partitions a history by a key taken from each input: one partition per distinct key, in
/// increasing key order, named `key <key>`.
pub fn partition_by_key<I, O, K, F>(history: &[Operation<I, O>], key: F) -> Vec<Partition>
where
    K: Ord + Display,
    F: Fn(&I) -> K,
{
    let mut parts: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        parts.entry(key(&op.input)).or_default().push(i);
    }
    parts
        .into_iter()
        .map(|(k, ops)| Partition {
            name: format!("key {k}"),
            ops,
        })
        .collect()
}

/// Formats a string for display: quoted, with control characters escaped.
pub(crate) fn quoted(s: &str) -> impl Display + '_ {
    struct Q<'a>(&'a str);
    impl Display for Q<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    Q(s)
}
