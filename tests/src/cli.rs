//! Running the `sextant` client subcommands as a user would: a fresh process per command,
//! stdin fed from a string, stdout/stderr/exit status captured; and long-running ones
//! (`watch`, `lock`, `elect`) spawned with their stdout read line by line (bounded waits).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{sextant_bin, ProcessCluster, Tuning};

/// What one command printed and how it ended.
#[derive(Debug)]
pub struct CtlOutput {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

impl CtlOutput {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// `sextant --endpoints <endpoints> <args…>` with `stdin` as its input.
pub fn ctl(endpoints: &str, args: &[&str], stdin: &str) -> CtlOutput {
    let mut child = Command::new(sextant_bin())
        .args(["--endpoints", endpoints])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sextant");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for sextant");
    CtlOutput {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// `ctl` that must succeed; its stdout.
pub fn ctl_ok(endpoints: &str, args: &[&str]) -> String {
    let out = ctl(endpoints, args, "");
    assert!(out.ok(), "sextant {args:?} failed: {out:?}");
    out.stdout
}

/// A one-member cluster whose member reports itself leader through `endpoint status`
/// (bounded; on failure the panic carries the member's log); with its client URL.
pub fn single() -> (ProcessCluster, String) {
    let mut c = ProcessCluster::start(1, Tuning::default());
    let url = c.members[0].client_url();
    let limit = Duration::from_secs(20);
    let deadline = Instant::now() + limit;
    loop {
        let out = ctl(&url, &["endpoint", "status"], "");
        if out.ok() && out.stdout.contains(", true, false, ") {
            return (c, url);
        }
        let running = c.members[0].is_running();
        assert!(
            running && Instant::now() < deadline,
            "{url} has no leader after {limit:?} (process running: {running}): {out:?}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A long-running client command whose stdout lines arrive on a channel.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    pub fn spawn(endpoints: &str, args: &[&str]) -> Running {
        let mut child = Command::new(sextant_bin())
            .args(["--endpoints", endpoints])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sextant");
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The next `n` lines, or panics after `limit`.
    pub fn lines(&self, n: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        (0..n)
            .map(|i| {
                let left = deadline.saturating_duration_since(Instant::now());
                self.lines.recv_timeout(left).unwrap_or_else(|e| {
                    panic!("line {} of {n} not printed within {limit:?}: {e}", i + 1)
                })
            })
            .collect()
    }

    /// The next line if one arrives within `wait`.
    pub fn next_line(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// Whether a line arrives within `wait` (used to show a command is still blocked).
    pub fn quiet_for(&self, wait: Duration) -> bool {
        self.lines.recv_timeout(wait).is_err()
    }

    /// `SIGINT` (Ctrl-C) and the exit code, bounded.
    pub fn interrupt(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait(mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("sextant did not exit within {limit:?}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
