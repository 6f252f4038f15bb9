//! Porcupine's `kv/cNN-*.txt`: one EDN map per line,
//! `{:process 9, :type :invoke, :f :append, :key "5", :value "x 9 1 y"}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ParseError;
use crate::checker::model::Operation;
use crate::checker::models::{HashedStr, PorcupineKvInput, PorcupineKvOutput};

#[derive(Debug, PartialEq)]
enum Edn {
    Keyword(String),
    Int(i64),
    Str(String),
    Nil,
}

/// Parses `{:k v, :k v}` with keyword keys and keyword, integer, string or nil values.
fn parse_map(s: &str) -> Result<Vec<(String, Edn)>, String> {
    let mut chars = s.trim().chars().peekable();
    if chars.next() != Some('{') {
        return Err("expected `{`".into());
    }
    let mut out = Vec::new();
    let word = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        let mut w = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == ',' || c == '}' {
                break;
            }
            w.push(c);
            chars.next();
        }
        w
    };
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        match chars.next() {
            Some('}') => break,
            Some(':') => {}
            Some(c) => return Err(format!("expected a keyword or `}}`, found {c:?}")),
            None => return Err("unterminated map".into()),
        }
        let key = word(&mut chars);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let value = match chars.peek() {
            Some('"') => {
                chars.next();
                let mut v = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => v.push('\n'),
                            Some('t') => v.push('\t'),
                            Some('r') => v.push('\r'),
                            Some(c) => v.push(c),
                            None => return Err("unterminated string".into()),
                        },
                        Some(c) => v.push(c),
                        None => return Err("unterminated string".into()),
                    }
                }
                Edn::Str(v)
            }
            Some(':') => {
                chars.next();
                Edn::Keyword(word(&mut chars))
            }
            Some(_) => {
                let w = word(&mut chars);
                if w == "nil" {
                    Edn::Nil
                } else {
                    Edn::Int(
                        w.parse()
                            .map_err(|_| format!("bad value {w:?} for :{key}"))?,
                    )
                }
            }
            None => return Err("unterminated map".into()),
        };
        out.push((key, value));
    }
    if chars.any(|c| !c.is_whitespace()) {
        return Err("text after the map".into());
    }
    Ok(out)
}

/// Parses a Porcupine kv log. Times are line numbers. A `:fail` return is an operation that
/// did not happen (left out); an `:info` return, or no return by the end of the file, an
/// unknown outcome. `file` names the source in errors.
pub fn parse_porcupine_kv(
    file: &str,
    text: &str,
) -> Result<Vec<Operation<PorcupineKvInput, PorcupineKvOutput>>, ParseError> {
    let mut ops: Vec<Option<Operation<PorcupineKvInput, PorcupineKvOutput>>> = Vec::new();
    let mut pending: super::PendingCalls<i64> = super::PendingCalls::new();
    // Values repeat (every get returns a value some append built): share them.
    let mut keys: BTreeMap<String, Arc<str>> = BTreeMap::new();
    let mut key_of = |s: String| {
        keys.entry(s)
            .or_insert_with_key(|s| Arc::from(s.as_str()))
            .clone()
    };
    let mut values: BTreeMap<String, HashedStr> = BTreeMap::new();
    let mut intern = |s: String| {
        values
            .entry(s)
            .or_insert_with_key(|s| HashedStr::new(s))
            .clone()
    };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = line as u64;
        if raw.trim().is_empty() {
            continue;
        }
        let syntax = |message: String| ParseError::Syntax {
            file: file.to_string(),
            line,
            message,
        };
        let map = parse_map(raw).map_err(syntax)?;
        let mut fields: BTreeMap<String, Edn> = BTreeMap::new();
        for (k, v) in map {
            fields.insert(k, v);
        }
        let get = |k: &str| fields.get(k).ok_or_else(|| syntax(format!("missing :{k}")));
        let Edn::Int(process) = *get("process")? else {
            return Err(syntax(":process is not an integer".into()));
        };
        let Edn::Keyword(kind) = get("type")? else {
            return Err(syntax(":type is not a keyword".into()));
        };
        let Edn::Keyword(f) = get("f")? else {
            return Err(syntax(":f is not a keyword".into()));
        };
        let Edn::Str(key) = get("key")? else {
            return Err(syntax(":key is not a string".into()));
        };
        let value = match get("value")? {
            Edn::Str(s) => Some(s.clone()),
            Edn::Nil => None,
            _ => return Err(syntax(":value is not a string or nil".into())),
        };
        let client = u64::try_from(process).map_err(|_| syntax("negative :process".into()))?;
        if kind == "invoke" {
            let key = key_of(key.clone());
            let input = match (f.as_str(), value) {
                ("get", _) => PorcupineKvInput::Get { key },
                ("put", Some(v)) => PorcupineKvInput::Put {
                    key,
                    value: intern(v),
                },
                ("append", Some(v)) => PorcupineKvInput::Append {
                    key,
                    value: intern(v),
                },
                (f, _) => {
                    return Err(syntax(format!(
                        "unknown invocation :{f} (or missing :value)"
                    )))
                }
            };
            pending.open(file, line, process, ops.len())?;
            ops.push(Some(Operation::unknown(client, input, t, None)));
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
        let (call_f, call_key) = match &op.input {
            PorcupineKvInput::Get { key } => ("get", key),
            PorcupineKvInput::Put { key, .. } => ("put", key),
            PorcupineKvInput::Append { key, .. } => ("append", key),
        };
        if f != call_f {
            return Err(mismatch(format!("returns :{f} for a :{call_f} call")));
        }
        if **call_key != **key {
            return Err(mismatch(format!(
                "returns key {key:?} for a call on key {call_key:?}"
            )));
        }
        match kind.as_str() {
            "ok" => {
                op.output = Some(match f.as_str() {
                    "get" => PorcupineKvOutput::Get(intern(value.unwrap_or_default())),
                    "put" => PorcupineKvOutput::Put,
                    _ => PorcupineKvOutput::Append,
                });
                op.ret = Some(t);
            }
            "fail" => ops[slot] = None,
            "info" => op.ret = Some(t),
            other => return Err(syntax(format!("unknown :type :{other}"))),
        }
    }
    Ok(ops.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_edn_maps() {
        let m =
            parse_map(r#"{:process 9, :type :invoke, :f :append, :key "5", :value "x \"9\" 1 y"}"#)
                .unwrap();
        assert_eq!(m[0], ("process".to_string(), Edn::Int(9)));
        assert_eq!(m[1], ("type".to_string(), Edn::Keyword("invoke".into())));
        assert_eq!(m[4], ("value".to_string(), Edn::Str("x \"9\" 1 y".into())));
        assert!(parse_map("{:process 9").is_err());
        assert!(parse_map("{:process x}").is_err());
        assert!(parse_map(r#"{:key "abc"#).is_err());
    }
}
