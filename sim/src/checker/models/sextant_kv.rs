//! The model for Sextant histories: a map from string keys to string values with put, get,
//! delete and compare-and-set, partitioned by key.

use crate::checker::model::{partition_by_key, quoted, Model, Operation, Partition};

/// An operation on the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: String,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// If `key`'s value is `expected` (`None`: the key is absent), set it to `new`.
    Cas {
        /// The key.
        key: String,
        /// The expected value; `None` expects the key to be absent.
        expected: Option<String>,
        /// The new value.
        new: String,
    },
}

impl KvInput {
    /// `put(key, value)`.
    pub fn put(key: impl Into<String>, value: impl Into<String>) -> Self {
        KvInput::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `get(key)`.
    pub fn get(key: impl Into<String>) -> Self {
        KvInput::Get { key: key.into() }
    }

    /// `delete(key)`.
    pub fn delete(key: impl Into<String>) -> Self {
        KvInput::Delete { key: key.into() }
    }

    /// `cas(key, expected, new)`; `expected == None` expects the key to be absent.
    pub fn cas(key: impl Into<String>, expected: Option<&str>, new: impl Into<String>) -> Self {
        KvInput::Cas {
            key: key.into(),
            expected: expected.map(str::to_string),
            new: new.into(),
        }
    }

    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            KvInput::Put { key, .. }
            | KvInput::Get { key }
            | KvInput::Delete { key }
            | KvInput::Cas { key, .. } => key,
        }
    }

    /// The operation's name as in the JSON-lines format: `put`, `get`, `delete` or `cas`.
    pub fn name(&self) -> &'static str {
        match self {
            KvInput::Put { .. } => "put",
            KvInput::Get { .. } => "get",
            KvInput::Delete { .. } => "delete",
            KvInput::Cas { .. } => "cas",
        }
    }
}

/// The store's answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The put happened.
    Put,
    /// The value read, `None` if the key is absent.
    Get(Option<String>),
    /// The delete happened. `deleted`, when known, says whether the key existed.
    Delete {
        /// Whether the key existed (`None`: not reported).
        deleted: Option<bool>,
    },
    /// Whether the compare matched (and the value was set).
    Cas {
        /// `true`: matched and swapped; `false`: did not match, nothing changed.
        swapped: bool,
    },
}

/// The model of Sextant's key/value store. One partition per key; the state is the key's value
/// (`None` when absent). Every key starts absent.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvModel;

fn opt(v: Option<&str>) -> String {
    match v {
        Some(v) => quoted(v).to_string(),
        None => "none".to_string(),
    }
}

impl Model for KvModel {
    type Input = KvInput;
    type Output = KvOutput;
    type State = Option<String>;

    fn init(&self) -> Option<String> {
        None
    }

    fn step(
        &self,
        state: &Option<String>,
        input: &KvInput,
        output: Option<&KvOutput>,
    ) -> Option<Option<String>> {
        match (input, output) {
            (KvInput::Put { value, .. }, None | Some(KvOutput::Put)) => Some(Some(value.clone())),
            (KvInput::Get { .. }, None) => Some(state.clone()),
            (KvInput::Get { .. }, Some(KvOutput::Get(v))) => (v == state).then(|| state.clone()),
            (KvInput::Delete { .. }, None | Some(KvOutput::Delete { deleted: None })) => Some(None),
            (KvInput::Delete { .. }, Some(KvOutput::Delete { deleted: Some(d) })) => {
                (*d == state.is_some()).then_some(None)
            }
            (KvInput::Cas { expected, new, .. }, out) => {
                let matched = expected == state;
                let next = if matched {
                    Some(new.clone())
                } else {
                    state.clone()
                };
                match out {
                    None => Some(next),
                    Some(KvOutput::Cas { swapped }) => (*swapped == matched).then_some(next),
                    Some(_) => None,
                }
            }
            _ => None,
        }
    }

    fn is_observer(&self, input: &KvInput, output: Option<&KvOutput>) -> bool {
        matches!(
            (input, output),
            (KvInput::Get { .. }, _)
                | (KvInput::Cas { .. }, Some(KvOutput::Cas { swapped: false }))
                | (
                    KvInput::Delete { .. },
                    Some(KvOutput::Delete {
                        deleted: Some(false)
                    })
                )
        )
    }

    fn partition(&self, history: &[Operation<KvInput, KvOutput>]) -> Vec<Partition> {
        partition_by_key(history, |input| quoted(input.key()).to_string())
    }

    fn describe_operation(&self, input: &KvInput, output: Option<&KvOutput>) -> String {
        let out = match output {
            None => "?".to_string(),
            Some(KvOutput::Put) => "ok".to_string(),
            Some(KvOutput::Get(v)) => opt(v.as_deref()),
            Some(KvOutput::Delete { deleted: None }) => "ok".to_string(),
            Some(KvOutput::Delete {
                deleted: Some(true),
            }) => "deleted".to_string(),
            Some(KvOutput::Delete {
                deleted: Some(false),
            }) => "absent".to_string(),
            Some(KvOutput::Cas { swapped: true }) => "swapped".to_string(),
            Some(KvOutput::Cas { swapped: false }) => "mismatch".to_string(),
        };
        match input {
            KvInput::Put { key, value } => {
                format!("put({}, {}) → {out}", quoted(key), quoted(value))
            }
            KvInput::Get { key } => format!("get({}) → {out}", quoted(key)),
            KvInput::Delete { key } => format!("delete({}) → {out}", quoted(key)),
            KvInput::Cas { key, expected, new } => {
                format!(
                    "cas({}, {}, {}) → {out}",
                    quoted(key),
                    opt(expected.as_deref()),
                    quoted(new)
                )
            }
        }
    }

    fn describe_state(&self, state: &Option<String>) -> String {
        opt(state.as_deref())
    }
}
