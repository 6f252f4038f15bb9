//! Parsing one script line into a `Command`: `verb arg arg key=value ...`.
//!
//! Lists are written `(1,2,3)` or `(1 2 3)`; data containing spaces may be quoted (`"a b"`, with
//! `\"` and `\\` escapes). Nothing here panics: every problem comes back as an error string that
//! the interpreter prints into the golden output.

use std::collections::BTreeMap;

/// One parsed command line.
#[derive(Debug)]
pub struct Command {
    pub verb: String,
    /// Positional arguments, unquoted.
    pub pos: Vec<String>,
    /// `key=value` arguments, values unquoted.
    pub keys: BTreeMap<String, String>,
}

impl Command {
    /// Fails if a key outside `allowed` was given (catches typos in scripts).
    pub fn allow_keys(&self, allowed: &[&str]) -> Result<(), String> {
        match self.keys.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(format!(
                "unknown option {k:?} for {} (allowed: {})",
                self.verb,
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            )),
            None => Ok(()),
        }
    }

    /// Fails unless the number of positional arguments is within `min..=max`.
    pub fn want_pos(&self, min: usize, max: usize, usage: &str) -> Result<(), String> {
        if self.pos.len() < min || self.pos.len() > max {
            return Err(format!("usage: {} {usage}", self.verb));
        }
        Ok(())
    }

    pub fn key(&self, k: &str) -> Option<&str> {
        self.keys.get(k).map(String::as_str)
    }
}

/// Parses a non-empty, non-comment line.
pub fn parse_line(line: &str) -> Result<Command, String> {
    let mut toks = tokenize(line)?.into_iter();
    let verb = toks.next().ok_or("empty command")?;
    let mut cmd = Command {
        verb,
        pos: Vec::new(),
        keys: BTreeMap::new(),
    };
    for t in toks {
        match split_key(&t) {
            Some((k, v)) => {
                if cmd.keys.insert(k.to_string(), unquote(v)?).is_some() {
                    return Err(format!("option {k:?} given twice"));
                }
            }
            None => cmd.pos.push(unquote(&t)?),
        }
    }
    Ok(cmd)
}

/// Splits a line at whitespace outside parentheses and quotes.
fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut toks = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in line.chars() {
        if quoted {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                cur.push(c);
            }
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| "unbalanced ')'".to_string())?;
                cur.push(c);
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    toks.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if depth > 0 {
        return Err("unbalanced '('".into());
    }
    if !cur.is_empty() {
        toks.push(cur);
    }
    Ok(toks)
}

/// `key=value` when the token starts with a name followed by `=`.
fn split_key(t: &str) -> Option<(&str, &str)> {
    let (k, v) = t.split_once('=')?;
    let is_name = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    is_name.then_some((k, v))
}

/// Removes surrounding quotes and resolves `\"` and `\\`; other tokens are returned as is.
fn unquote(t: &str) -> Result<String, String> {
    let Some(inner) = t.strip_prefix('"') else {
        return Ok(t.to_string());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| format!("bad quoting in {t}"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('"' | '\\')) => out.push(e),
                Some('n') => out.push('\n'),
                _ => return Err(format!("bad escape in {t}")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

pub fn parse_u64(s: &str, what: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("{what}: expected a number, got {s:?}"))
}

pub fn parse_usize(s: &str, what: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .map_err(|_| format!("{what}: expected a number, got {s:?}"))
}

pub fn parse_bool(s: &str, what: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{what}: expected true or false, got {s:?}")),
    }
}

/// The words of a list `(a,b c)`, or a single word.
pub fn parse_list(s: &str) -> Vec<String> {
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(s);
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// A list of numbers `(1,2,3)` or a single number.
pub fn parse_ids(s: &str, what: &str) -> Result<Vec<u64>, String> {
    parse_list(s).iter().map(|w| parse_u64(w, what)).collect()
}

/// `MIN..MAX`.
pub fn parse_range(s: &str, what: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("{what}: expected MIN..MAX, got {s:?}"))?;
    Ok((parse_u64(a, what)?, parse_u64(b, what)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_lists_and_quotes() {
        let c = parse_line(r#"add-nodes 3 voters=(1, 2,3) data="a \"b\"" x"#).unwrap();
        assert_eq!(c.verb, "add-nodes");
        assert_eq!(c.pos, vec!["3", "x"]);
        assert_eq!(c.key("voters"), Some("(1, 2,3)"));
        assert_eq!(c.key("data"), Some(r#"a "b""#));
        assert_eq!(parse_ids("(1, 2,3)", "ids").unwrap(), vec![1, 2, 3]);
        assert!(parse_line("x (1").is_err());
        assert!(parse_line("x \"a").is_err());
        assert!(parse_line("x a=1 a=2").is_err());
    }
}
