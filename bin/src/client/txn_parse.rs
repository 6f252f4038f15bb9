//! etcdctl's transaction syntax: compares, a blank line, success ops, a blank line, failure
//! ops. A compare is `TARGET("key") OP "value"` with TARGET one of `c`/`create`, `m`/`mod`,
//! `val`/`value`, `ver`/`version`, `lease` and OP one of `=`, `!=`, `<`, `>`; an op is a
//! `put`, `get` or `del` line taking the same arguments and flags as those subcommands.

use std::io::BufRead;

use clap::Parser;
use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use sextant_net::grpc::pb::etcdserverpb::request_op::Request;

use super::del::DelArgs;
use super::get::GetArgs;
use super::put::PutArgs;

/// Why a transaction text was refused; every variant names the 1-based line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxnParseError {
    #[error("line {line_no}: malformed comparison: {line} ({why})")]
    MalformedCompare {
        line_no: usize,
        line: String,
        why: String,
    },
    #[error("line {line_no}: invalid txn request: {line} ({why})")]
    InvalidRequest {
        line_no: usize,
        line: String,
        why: String,
    },
    #[error("reading the transaction: {0}")]
    Read(String),
}

/// The three parts of the text, for interactive prompts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Compares,
    Success,
    Failure,
}

impl Section {
    /// etcdctl's prompt for the section in interactive mode.
    pub fn prompt(self) -> &'static str {
        match self {
            Section::Compares => "compares:",
            Section::Success => "success requests (get, put, del):",
            Section::Failure => "failure requests (get, put, del):",
        }
    }
}

/// Parses a whole transaction text.
#[cfg(test)]
pub fn parse_txn(text: &str) -> Result<pb::TxnRequest, TxnParseError> {
    parse_txn_from(text.as_bytes(), |_| {})
}

/// Parses a transaction read line by line from `input`, calling `on_section` as each
/// section starts (interactive mode prints its prompt there). End of input ends the text.
pub fn parse_txn_from(
    mut input: impl BufRead,
    mut on_section: impl FnMut(Section),
) -> Result<pb::TxnRequest, TxnParseError> {
    let mut req = pb::TxnRequest::default();
    let mut line_no = 0;
    let mut eof = false;
    for section in [Section::Compares, Section::Success, Section::Failure] {
        if eof {
            break;
        }
        on_section(section);
        loop {
            let mut raw = String::new();
            let n = input
                .read_line(&mut raw)
                .map_err(|e| TxnParseError::Read(e.to_string()))?;
            if n == 0 {
                eof = true;
                break;
            }
            line_no += 1;
            let line = raw.trim();
            if line.is_empty() {
                break;
            }
            match section {
                Section::Compares => req.compare.push(parse_compare(line_no, line)?),
                Section::Success => req.success.push(parse_op(line_no, line)?),
                Section::Failure => req.failure.push(parse_op(line_no, line)?),
            }
        }
    }
    Ok(req)
}

/// One compare line, e.g. `mod("k") > "3"`.
pub fn parse_compare(line_no: usize, line: &str) -> Result<pb::Compare, TxnParseError> {
    let bad = |why: String| TxnParseError::MalformedCompare {
        line_no,
        line: line.to_string(),
        why,
    };
    let (target, rest) = line
        .split_once('(')
        .ok_or_else(|| bad("expected TARGET(\"key\") OP \"value\"".into()))?;
    let target = target.trim();
    let (key, rest) = quoted(rest.trim_start()).map_err(|e| bad(format!("key: {e}")))?;
    let rest = rest
        .trim_start()
        .strip_prefix(')')
        .ok_or_else(|| bad("expected `)` after the key".into()))?;
    let rest = rest.trim_start();
    let op_len = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    let (op, rest) = rest.split_at(op_len);
    let result = match op {
        "=" | "==" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        "<" => CompareResult::Less,
        ">" => CompareResult::Greater,
        "" => return Err(bad("missing operator".into())),
        other => {
            return Err(bad(format!(
                "unknown operator {other:?}, want =, !=, < or >"
            )))
        }
    };
    let (value, rest) = quoted(rest.trim_start()).map_err(|e| bad(format!("value: {e}")))?;
    if !rest.trim().is_empty() {
        return Err(bad(format!("unexpected {:?} after the value", rest.trim())));
    }
    let int = |what: &str, radix: u32| {
        i64::from_str_radix(&value, radix)
            .map_err(|e| bad(format!("{what} {value:?} is not a number: {e}")))
    };
    let (target, union) = match target {
        "ver" | "version" => (
            CompareTarget::Version,
            TargetUnion::Version(int("version", 10)?),
        ),
        "c" | "create" => (
            CompareTarget::Create,
            TargetUnion::CreateRevision(int("revision", 10)?),
        ),
        "m" | "mod" => (
            CompareTarget::Mod,
            TargetUnion::ModRevision(int("revision", 10)?),
        ),
        "val" | "value" => (
            CompareTarget::Value,
            TargetUnion::Value(value.clone().into_bytes()),
        ),
        "lease" => (
            CompareTarget::Lease,
            TargetUnion::Lease(int("lease id", 16)?),
        ),
        other => {
            return Err(bad(format!(
            "unknown target {other:?}, want c, create, m, mod, val, value, ver, version or lease"
        )))
        }
    };
    Ok(pb::Compare {
        result: result.into(),
        target: target.into(),
        key: key.into_bytes(),
        range_end: Vec::new(),
        target_union: Some(union),
    })
}

/// A Go-style double-quoted string at the start of `s`, and what follows it.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let body = s
        .strip_prefix('"')
        .ok_or_else(|| format!("expected a double-quoted string at {s:?}"))?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next().ok_or("unterminated escape")?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    '\\' | '"' | '\'' => out.push(e),
                    'x' => {
                        let hex: String = (0..2)
                            .filter_map(|_| chars.next().map(|(_, h)| h))
                            .collect();
                        let b = u8::from_str_radix(&hex, 16)
                            .map_err(|_| format!("bad escape \\x{hex}"))?;
                        out.push(char::from(b));
                    }
                    other => return Err(format!("unknown escape \\{other}")),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

/// The op lines, parsed with the very flags of the `put`, `get` and `del` subcommands.
#[derive(Parser, Debug)]
#[command(no_binary_name = true, disable_help_subcommand = true)]
enum OpLine {
    Put(PutArgs),
    Get(GetArgs),
    Del(DelArgs),
}

/// One op line, e.g. `put k v`, `get --prefix k`, `del k`.
pub fn parse_op(line_no: usize, line: &str) -> Result<pb::RequestOp, TxnParseError> {
    let bad = |why: String| TxnParseError::InvalidRequest {
        line_no,
        line: line.to_string(),
        why,
    };
    let words = shlex::split(line).ok_or_else(|| bad("unbalanced quotes".into()))?;
    let op = OpLine::try_parse_from(&words).map_err(|e| bad(first_line(&e.to_string())))?;
    let request = match op {
        OpLine::Put(a) => Request::RequestPut(
            a.request(|| Err(anyhow::anyhow!("put needs a value in a transaction")))
                .map_err(|e| bad(e.to_string()))?,
        ),
        OpLine::Get(a) => Request::RequestRange(a.request().map_err(|e| bad(e.to_string()))?),
        OpLine::Del(a) => Request::RequestDeleteRange(a.request().map_err(|e| bad(e.to_string()))?),
    };
    Ok(pb::RequestOp {
        request: Some(request),
    })
}

/// clap's first error line, without its `error: ` tag.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s);
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Request::RequestPut(pb::PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn full_transaction() {
        let text = "mod(\"key1\") > \"0\"\nvalue(\"key2\") = \"v\"\n\nput key1 \"over write\"\nget key1\n\ndel key2\n";
        let req = parse_txn(text).expect("parses");
        assert_eq!(req.compare.len(), 2);
        assert_eq!(req.compare[0].target, CompareTarget::Mod as i32);
        assert_eq!(req.compare[0].result, CompareResult::Greater as i32);
        assert_eq!(req.compare[0].key, b"key1");
        assert_eq!(
            req.compare[0].target_union,
            Some(TargetUnion::ModRevision(0))
        );
        assert_eq!(
            req.compare[1].target_union,
            Some(TargetUnion::Value(b"v".to_vec()))
        );
        assert_eq!(req.success[0], put("key1", "over write"));
        assert!(matches!(
            &req.success[1].request,
            Some(Request::RequestRange(r)) if r.key == b"key1" && r.range_end.is_empty()
        ));
        assert!(matches!(
            &req.failure[0].request,
            Some(Request::RequestDeleteRange(d)) if d.key == b"key2"
        ));
    }

    #[test]
    fn sections_may_be_missing_or_empty() {
        let req = parse_txn("\nput a b\n").expect("parses");
        assert!(req.compare.is_empty());
        assert_eq!(req.success, vec![put("a", "b")]);
        assert!(req.failure.is_empty());
        assert_eq!(parse_txn("").expect("empty"), pb::TxnRequest::default());
    }

    #[test]
    fn every_target_and_operator() {
        let c = |s: &str| parse_compare(1, s).expect(s);
        assert_eq!(
            c("c(\"k\") = \"5\"").target_union,
            Some(TargetUnion::CreateRevision(5))
        );
        assert_eq!(
            c("create(\"k\") < \"5\"").result,
            CompareResult::Less as i32
        );
        assert_eq!(
            c("ver(\"k\") != \"2\"").target_union,
            Some(TargetUnion::Version(2))
        );
        assert_eq!(
            c("version(\"k\") != \"2\"").result,
            CompareResult::NotEqual as i32
        );
        assert_eq!(c("m(\"k\") = \"3\"").target, CompareTarget::Mod as i32);
        assert_eq!(
            c("lease(\"k\") = \"694d77aa9e38260f\"").target_union,
            Some(TargetUnion::Lease(0x694d77aa9e38260f))
        );
        assert_eq!(c("val(\"a\\\"b\") = \"x\\ny\"").key, b"a\"b".to_vec());
        assert_eq!(
            c("val(\"k\")=\"x\"").target_union,
            Some(TargetUnion::Value(b"x".to_vec()))
        );
    }

    #[test]
    fn op_flags_work_as_in_the_subcommands() {
        let op = parse_op(1, "get --prefix a --limit 2").expect("get");
        let Some(Request::RequestRange(r)) = op.request else {
            panic!("not a range")
        };
        assert_eq!(
            (r.key.as_slice(), r.range_end.as_slice(), r.limit),
            (&b"a"[..], &b"b"[..], 2)
        );
        let op = parse_op(1, "put --prev-kv k 'v w'").expect("put");
        let Some(Request::RequestPut(p)) = op.request else {
            panic!("not a put")
        };
        assert!(p.prev_kv);
        assert_eq!(p.value, b"v w");
    }

    #[test]
    fn malformed_compares_say_what_is_wrong() {
        let err = |s: &str| parse_compare(3, s).unwrap_err().to_string();
        assert_eq!(
            err("mod(k) > \"3\""),
            "line 3: malformed comparison: mod(k) > \"3\" (key: expected a double-quoted string at \"k) > \\\"3\\\"\")"
        );
        assert_eq!(
            err("size(\"k\") = \"1\""),
            "line 3: malformed comparison: size(\"k\") = \"1\" (unknown target \"size\", want c, create, m, mod, val, value, ver, version or lease)"
        );
        assert_eq!(
            err("mod(\"k\") >= \"1\""),
            "line 3: malformed comparison: mod(\"k\") >= \"1\" (unknown operator \">=\", want =, !=, < or >)"
        );
        assert_eq!(
            err("mod(\"k\") > \"x\""),
            "line 3: malformed comparison: mod(\"k\") > \"x\" (revision \"x\" is not a number: invalid digit found in string)"
        );
        assert!(err("value(\"k\") = \"v").contains("value: unterminated string"));
        assert!(err("value \"k\" = \"v\"").contains("expected TARGET"));
        assert!(err("value(\"k\") = \"v\" extra").contains("unexpected \"extra\""));
    }

    #[test]
    fn malformed_ops_say_what_is_wrong() {
        let err = |s: &str| parse_txn(s).unwrap_err();
        assert!(matches!(
            err("\nset k v\n"),
            TxnParseError::InvalidRequest { line_no: 2, ref why, .. } if why.contains("unrecognized subcommand 'set'")
        ));
        assert!(matches!(
            err("\nput k\n"),
            TxnParseError::InvalidRequest { line_no: 2, ref why, .. } if why == "put needs a value in a transaction"
        ));
        assert!(matches!(
            err("\n\nget k --bogus\n"),
            TxnParseError::InvalidRequest { line_no: 3, ref why, .. } if why.contains("--bogus")
        ));
        assert!(matches!(
            err("\nput k \"v\n"),
            TxnParseError::InvalidRequest { ref why, .. } if why == "unbalanced quotes"
        ));
        assert!(matches!(
            err("value(\"k\") = \"v\"\n\nget --prefix --from-key k\n"),
            TxnParseError::InvalidRequest { line_no: 3, ref why, .. } if why.contains("--prefix` and `--from-key`")
        ));
    }

    #[test]
    fn sections_are_announced_in_order() {
        let mut seen = Vec::new();
        parse_txn_from("\n\n".as_bytes(), |s| seen.push(s)).expect("parses");
        assert_eq!(
            seen,
            vec![Section::Compares, Section::Success, Section::Failure]
        );
    }
}
