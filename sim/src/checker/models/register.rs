//! One integer register with read, write and compare-and-set: the model of Porcupine's etcd
//! Jepsen tests.

use std::fmt;

use crate::checker::model::Model;

/// An operation on the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Set the value.
    Write(i64),
    /// If the value is `from`, set it to `to`.
    Cas {
        /// Expected value.
        from: i64,
        /// New value.
        to: i64,
    },
}

/// The register's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOutput {
    /// The value read; `None` when the register has no value yet.
    Read(Option<i64>),
    /// The write happened.
    Write,
    /// `ok: true`: the compare matched and the value was set. `ok: false`: the compare did not
    /// match (the operation still happened, atomically, as a no-op).
    Cas {
        /// Whether the compare matched.
        ok: bool,
    },
}

/// The register model. The state is the value, `None` before the first write.
///
/// An operation whose outcome is unknown constrains nothing, but its effect (for a cas, only
/// if it matched) still applies.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterModel;

impl Model for RegisterModel {
    type Input = RegisterInput;
    type Output = RegisterOutput;
    type State = Option<i64>;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
    ) -> Option<Option<i64>> {
        match (input, output) {
            (RegisterInput::Read, None) => Some(*state),
            (RegisterInput::Read, Some(RegisterOutput::Read(v))) => (v == state).then_some(*state),
            (RegisterInput::Write(v), None | Some(RegisterOutput::Write)) => Some(Some(*v)),
            (RegisterInput::Cas { from, to }, out) => {
                let matched = *state == Some(*from);
                let new = if matched { Some(*to) } else { *state };
                match out {
                    None => Some(new),
                    Some(RegisterOutput::Cas { ok }) => (*ok == matched).then_some(new),
                    Some(_) => None,
                }
            }
            _ => None,
        }
    }

    fn is_observer(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> bool {
        matches!(
            (input, output),
            (RegisterInput::Read, _)
                | (
                    RegisterInput::Cas { .. },
                    Some(RegisterOutput::Cas { ok: false })
                )
        )
    }

    fn describe_operation(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> String {
        let out = match output {
            None => "?".to_string(),
            Some(RegisterOutput::Read(v)) => Value(*v).to_string(),
            Some(RegisterOutput::Write) => "ok".to_string(),
            Some(RegisterOutput::Cas { ok: true }) => "ok".to_string(),
            Some(RegisterOutput::Cas { ok: false }) => "fail".to_string(),
        };
        match input {
            RegisterInput::Read => format!("read → {out}"),
            RegisterInput::Write(v) => format!("write({v}) → {out}"),
            RegisterInput::Cas { from, to } => format!("cas({from}, {to}) → {out}"),
        }
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        Value(*state).to_string()
    }
}

struct Value(Option<i64>);

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("nil"),
        }
    }
}
