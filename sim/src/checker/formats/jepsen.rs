//! Porcupine's `jepsen/etcd_NNN.log`: `INFO  jepsen.util - <process> <type> <f> <value>`.

use super::ParseError;
use crate::checker::model::Operation;
use crate::checker::models::{RegisterInput, RegisterOutput};

/// Parses a Jepsen etcd log into a register history. Times are line numbers.
///
/// - `:invoke` is a call; `:ok` a return; `:fail :cas` a cas whose compare did not match;
///   `:fail :read` (timed out) a read with no result (unknown outcome, which constrains
///   nothing); `:fail` of a write a write that did not happen (left out); `:info` an unknown
///   outcome (the operation may take effect at any point after its call, or never), as is a
///   call with no return by the end of the file.
/// - A process has at most one pending operation.
///
/// `file` names the source in errors.
pub fn parse_jepsen_etcd(
    file: &str,
    text: &str,
) -> Result<Vec<Operation<RegisterInput, RegisterOutput>>, ParseError> {
    // Slots of the history in call order; `None` for operations dropped as failed.
    let mut ops: Vec<Option<Operation<RegisterInput, RegisterOutput>>> = Vec::new();
    // process → (slot, line of the call)
    let mut pending: super::PendingCalls<u64> = super::PendingCalls::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = line as u64;
        let syntax = |message: String| ParseError::Syntax {
            file: file.to_string(),
            line,
            message,
        };
        let tokens: Vec<&str> = raw.split_whitespace().collect();
        if tokens.is_empty() {
            continue;
        }
        if tokens.len() < 6 || tokens[0] != "INFO" || tokens[1] != "jepsen.util" || tokens[2] != "-"
        {
            return Err(syntax(format!(
                "not a `INFO jepsen.util - <process> <type> <f> <value>` line: {raw:?}"
            )));
        }
        let process: u64 = tokens[3]
            .parse()
            .map_err(|_| syntax(format!("bad process id {:?}", tokens[3])))?;
        let kind = tokens[4];
        let f = tokens[5];
        let value = &tokens[6..];
        let int = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| syntax(format!("bad integer {s:?}")))
        };
        let pair = |v: &[&str]| -> Result<(i64, i64), ParseError> {
            match v {
                [a, b] if a.starts_with('[') && b.ends_with(']') => {
                    Ok((int(&a[1..])?, int(&b[..b.len() - 1])?))
                }
                _ => Err(syntax(format!(
                    "expected `[FROM TO]`, found {:?}",
                    v.join(" ")
                ))),
            }
        };
        if kind == ":invoke" {
            let input = match (f, value) {
                (":read", _) => RegisterInput::Read,
                (":write", [v]) => RegisterInput::Write(int(v)?),
                (":cas", v) => {
                    let (from, to) = pair(v)?;
                    RegisterInput::Cas { from, to }
                }
                _ => {
                    return Err(syntax(format!(
                        "unknown invocation {f} {}",
                        value.join(" ")
                    )))
                }
            };
            pending.open(file, line, process, ops.len())?;
            ops.push(Some(Operation::unknown(process, input, t, None)));
            continue;
        }
        let (slot, call_line) = pending.close(file, line, process)?;
        let op = ops[slot]
            .as_mut()
            .expect("pending operations are never dropped");
        let mismatch = |message: String| ParseError::Mismatch {
            file: file.to_string(),
            line,
            call_line,
            message,
        };
        let expected_f = match op.input {
            RegisterInput::Read => ":read",
            RegisterInput::Write(_) => ":write",
            RegisterInput::Cas { .. } => ":cas",
        };
        if f != expected_f {
            return Err(mismatch(format!("returns {f} for a {expected_f} call")));
        }
        match (kind, op.input) {
            (":ok", RegisterInput::Read) => {
                let v = match value {
                    ["nil"] => None,
                    [v] => Some(int(v)?),
                    _ => return Err(syntax(format!("bad read result {:?}", value.join(" ")))),
                };
                op.output = Some(RegisterOutput::Read(v));
                op.ret = Some(t);
            }
            (":ok", RegisterInput::Write(w)) => {
                if let [v] = value {
                    if int(v)? != w {
                        return Err(mismatch(format!("write of {v} returns for a write of {w}")));
                    }
                }
                op.output = Some(RegisterOutput::Write);
                op.ret = Some(t);
            }
            (":ok" | ":fail", RegisterInput::Cas { from, to }) => {
                if value.first().is_some_and(|v| v.starts_with('[')) && pair(value)? != (from, to) {
                    return Err(mismatch(format!(
                        "cas {} returns for cas [{from} {to}]",
                        value.join(" ")
                    )));
                }
                op.output = Some(RegisterOutput::Cas { ok: kind == ":ok" });
                op.ret = Some(t);
            }
            // A read that timed out has no result: unknown outcome.
            (":fail", RegisterInput::Read) => op.ret = Some(t),
            // A write that definitely failed did not happen.
            (":fail", RegisterInput::Write(_)) => ops[slot] = None,
            (":info", _) => op.ret = Some(t),
            _ => return Err(syntax(format!("unknown event type {kind}"))),
        }
    }
    Ok(ops.into_iter().flatten().collect())
}
