//! Data-driven interaction tests of the Raft core, in the spirit of etcd-raft's `rafttest`.
//!
//! Every `core/testdata/*.txt` is a script: `#` comment lines (echoed as they are), blank lines,
//! and commands (echoed as `> command`, followed by what they caused, indented). The whole
//! output is compared with a golden snapshot in `core/tests/snapshots/` via `insta`, so a
//! reviewer reads, for each scenario, the messages sent, role and term changes, persisted and
//! applied entries and read results. Commands run against the in-memory cluster of
//! `tests/common` (whose invariant checker runs after every step); `expect` lines additionally
//! fail the test outright when a key property does not hold.
//!
//! Modules: `parse` (script lines to commands), `format` (how the output spells things), `env`
//! (the cluster, per-node configuration, and the shared ready/deliver/stabilize machinery),
//! `verbs` (one function per command; the list is in its docs).
//!
//! Accept new or changed output only after reading it:
//! `INSTA_UPDATE=always cargo test -p sextant-core --test interaction`.

mod common;

#[path = "interaction/env.rs"]
mod env;
#[path = "interaction/format.rs"]
mod format;
#[path = "interaction/parse.rs"]
mod parse;
#[path = "interaction/verbs.rs"]
mod verbs;

use std::panic::{catch_unwind, AssertUnwindSafe};

use env::Env;

/// Runs a script; returns its output and the failures (failed `expect`s, panics).
fn run_script(text: &str) -> (String, Vec<String>) {
    let mut env = Env::new();
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            env.raw(line);
            continue;
        }
        env.raw(format!("> {trimmed}"));
        let cmd = match parse::parse_line(trimmed) {
            Ok(cmd) => cmd,
            Err(e) => {
                env.line(format!("error: {e}"));
                continue;
            }
        };
        match catch_unwind(AssertUnwindSafe(|| verbs::run(&mut env, &cmd))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => env.line(format!("error: {e}")),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                env.line(format!("PANIC: {msg}"));
                failures.push(format!("line {}: panic: {msg}", n + 1));
                // The cluster may be half-way through a step; stop here.
                break;
            }
        }
    }
    failures.extend(env.failures.iter().cloned());
    (env.output(), failures)
}

#[test]
fn interaction() {
    insta::glob!("../testdata", "*.txt", |path| {
        let text = std::fs::read_to_string(path).expect("read script");
        let (output, failures) = run_script(&text);
        if !failures.is_empty() {
            // Never record a snapshot of a failing run.
            eprintln!("{output}");
            panic!("{}: {}", path.display(), failures.join("; "));
        }
        insta::assert_snapshot!(output);
    });
}

/// A typo in a script is reported in the output, never a panic.
#[test]
fn script_errors_are_reported() {
    let (out, failures) = run_script(
        "add-nodes 3 election=x\nadd-nodes 3 voters=(1\nfrobnicate 1\ncampaign 9\nadd-nodes 1 bogus=1\n\
         propose 1\npropose-conf-change 1 q5\ndeliver-msgs from=z\nexpect 1 color=red\n",
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(out.matches("error:").count(), 9, "{out}");
}
