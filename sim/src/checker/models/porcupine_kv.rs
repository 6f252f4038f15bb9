//! Porcupine's key/value model: get, put and append on string keys, every key starting as `""`.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use crate::checker::model::{partition_by_key, quoted, Model, Operation, Partition};

/// An immutable string that carries a polynomial hash of its bytes, so that hashing it is
/// O(1) and concatenating two of them computes the new hash in O(1). Values only grow by
/// appends in this model, which makes long states cheap to hash and compare.
#[derive(Clone)]
pub struct HashedStr {
    text: Arc<str>,
    /// `Σ (byte + 1) · B^(len − 1 − i)` modulo 2^64.
    hash: u64,
    /// `B^len` modulo 2^64.
    pow: u64,
}

const BASE: u64 = 0x9e37_79b9_7f4a_7c15;

impl HashedStr {
    /// Wraps a string.
    pub fn new(s: &str) -> Self {
        let (mut hash, mut pow) = (0u64, 1u64);
        for &b in s.as_bytes() {
            hash = hash.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1);
            pow = pow.wrapping_mul(BASE);
        }
        HashedStr {
            text: Arc::from(s),
            hash,
            pow,
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `self` followed by `tail`.
    pub fn concat(&self, tail: &HashedStr) -> HashedStr {
        if tail.text.is_empty() {
            return self.clone();
        }
        if self.text.is_empty() {
            return tail.clone();
        }
        let mut s = String::with_capacity(self.text.len() + tail.text.len());
        s.push_str(&self.text);
        s.push_str(&tail.text);
        HashedStr {
            text: s.into(),
            hash: self.hash.wrapping_mul(tail.pow).wrapping_add(tail.hash),
            pow: self.pow.wrapping_mul(tail.pow),
        }
    }
}

impl Default for HashedStr {
    fn default() -> Self {
        HashedStr::new("")
    }
}

impl From<&str> for HashedStr {
    fn from(s: &str) -> Self {
        HashedStr::new(s)
    }
}

impl Deref for HashedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl PartialEq for HashedStr {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for HashedStr {}

impl Hash for HashedStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl fmt::Debug for HashedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl fmt::Display for HashedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An operation on the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PorcupineKvInput {
    /// Read a key.
    Get {
        /// The key.
        key: Arc<str>,
    },
    /// Replace a key's value.
    Put {
        /// The key.
        key: Arc<str>,
        /// The new value.
        value: HashedStr,
    },
    /// Append to a key's value.
    Append {
        /// The key.
        key: Arc<str>,
        /// What is appended.
        value: HashedStr,
    },
}

impl PorcupineKvInput {
    /// The key the operation touches.
    pub fn key(&self) -> &Arc<str> {
        match self {
            PorcupineKvInput::Get { key }
            | PorcupineKvInput::Put { key, .. }
            | PorcupineKvInput::Append { key, .. } => key,
        }
    }
}

/// The store's answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PorcupineKvOutput {
    /// The value read (`""` for a key never written).
    Get(HashedStr),
    /// The put happened.
    Put,
    /// The append happened.
    Append,
}

fn describe(input: &PorcupineKvInput, output: Option<&PorcupineKvOutput>) -> String {
    match (input, output) {
        (PorcupineKvInput::Get { key }, Some(PorcupineKvOutput::Get(v))) => {
            format!("get({}) → {}", quoted(key), quoted(v))
        }
        (PorcupineKvInput::Get { key }, _) => format!("get({}) → ?", quoted(key)),
        (PorcupineKvInput::Put { key, value }, o) => {
            format!(
                "put({}, {}){}",
                quoted(key),
                quoted(value),
                if o.is_some() { "" } else { " → ?" }
            )
        }
        (PorcupineKvInput::Append { key, value }, o) => {
            format!(
                "append({}, {}){}",
                quoted(key),
                quoted(value),
                if o.is_some() { "" } else { " → ?" }
            )
        }
    }
}

/// Applies an operation to one key's value.
fn step_value(
    value: &HashedStr,
    input: &PorcupineKvInput,
    output: Option<&PorcupineKvOutput>,
) -> Option<HashedStr> {
    match (input, output) {
        (PorcupineKvInput::Get { .. }, None) => Some(value.clone()),
        (PorcupineKvInput::Get { .. }, Some(PorcupineKvOutput::Get(v))) => {
            (v == value).then(|| value.clone())
        }
        (PorcupineKvInput::Put { value: new, .. }, None | Some(PorcupineKvOutput::Put)) => {
            Some(new.clone())
        }
        (PorcupineKvInput::Append { value: tail, .. }, None | Some(PorcupineKvOutput::Append)) => {
            Some(value.concat(tail))
        }
        _ => None,
    }
}

/// Porcupine's partitioned key/value model: one partition per key, the state is that key's
/// value.
#[derive(Clone, Copy, Debug, Default)]
pub struct PorcupineKvModel;

impl Model for PorcupineKvModel {
    type Input = PorcupineKvInput;
    type Output = PorcupineKvOutput;
    type State = HashedStr;

    fn init(&self) -> HashedStr {
        HashedStr::default()
    }

    fn step(
        &self,
        state: &HashedStr,
        input: &PorcupineKvInput,
        output: Option<&PorcupineKvOutput>,
    ) -> Option<HashedStr> {
        step_value(state, input, output)
    }

    fn is_observer(&self, input: &PorcupineKvInput, _output: Option<&PorcupineKvOutput>) -> bool {
        matches!(input, PorcupineKvInput::Get { .. })
    }

    fn partition(
        &self,
        history: &[Operation<PorcupineKvInput, PorcupineKvOutput>],
    ) -> Vec<Partition> {
        partition_by_key(history, |input| quoted(input.key()).to_string())
    }

    fn describe_operation(
        &self,
        input: &PorcupineKvInput,
        output: Option<&PorcupineKvOutput>,
    ) -> String {
        describe(input, output)
    }

    fn describe_state(&self, state: &HashedStr) -> String {
        quoted(state).to_string()
    }
}

/// The same store checked as one object (no partitioning): the state holds every key. Slower
/// than [`PorcupineKvModel`], kept to compare with Porcupine's `kvNoPartitionModel`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PorcupineKvUnpartitioned;

/// The whole store: `(key, value)` pairs sorted by key; a missing key has the value `""`, and a
/// key whose value is `""` is never stored, so equal stores have equal representations.
pub type KvStore = Vec<(Arc<str>, HashedStr)>;

impl Model for PorcupineKvUnpartitioned {
    type Input = PorcupineKvInput;
    type Output = PorcupineKvOutput;
    type State = KvStore;

    fn init(&self) -> KvStore {
        Vec::new()
    }

    fn step(
        &self,
        state: &KvStore,
        input: &PorcupineKvInput,
        output: Option<&PorcupineKvOutput>,
    ) -> Option<KvStore> {
        let key = input.key();
        let pos = state.binary_search_by(|(k, _)| (**k).cmp(key));
        let empty = HashedStr::default();
        let current = match pos {
            Ok(i) => &state[i].1,
            Err(_) => &empty,
        };
        let new = step_value(current, input, output)?;
        if new == *current {
            return Some(state.clone());
        }
        let mut next = state.clone();
        match (pos, new.is_empty()) {
            (Ok(i), true) => {
                next.remove(i);
            }
            (Ok(i), false) => next[i].1 = new,
            (Err(_), true) => {}
            (Err(i), false) => next.insert(i, (key.clone(), new)),
        }
        Some(next)
    }

    fn is_observer(&self, input: &PorcupineKvInput, _output: Option<&PorcupineKvOutput>) -> bool {
        matches!(input, PorcupineKvInput::Get { .. })
    }

    fn describe_operation(
        &self,
        input: &PorcupineKvInput,
        output: Option<&PorcupineKvOutput>,
    ) -> String {
        describe(input, output)
    }

    fn describe_state(&self, state: &KvStore) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in state.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&format!("{}: {}", quoted(k), quoted(v)));
        }
        s.push('}');
        s
    }
}
