//! The real `etcdctl` (etcd's own client, Debian package `etcd-client`, installed by the test
//! command when missing) against a 3-member Sextant cluster of real processes: every
//! command a user of etcd reaches for first must work unchanged, through every member.
//!
//! etcdctl 3.4 builds `lock` and `elect` from KV txns, watches and leases (its
//! `clientv3/concurrency`), not from the Lock/Election services, so these tests exercise the
//! generic API paths; `endpoint health` reads the key "health"; `check datascale` reads
//! `/metrics` on the client URL.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sextant_tests::{ProcessCluster, Tuning};

/// `etcdctl` with the v3 API against `endpoints`.
fn etcdctl_cmd(endpoints: &str) -> Command {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(["--dial-timeout=5s", "--command-timeout=20s"]);
    cmd
}

/// Runs etcdctl to completion (bounded: killed after `limit`), with optional stdin.
fn run(endpoints: &str, args: &[&str], stdin: Option<&str>, limit: Duration) -> Output {
    let mut cmd = etcdctl_cmd(endpoints);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("run etcdctl (Debian package etcd-client; the README's test command installs it)");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write etcdctl stdin");
    }
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait etcdctl").is_some() {
            return child.wait_with_output().expect("etcdctl output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("etcdctl output");
            panic!(
                "etcdctl {args:?} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs etcdctl and returns its stdout, failing the test (with the cluster's logs) otherwise.
fn ok(c: &ProcessCluster, endpoints: &str, args: &[&str]) -> String {
    ok_in(c, endpoints, args, None)
}

fn ok_in(c: &ProcessCluster, endpoints: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = run(endpoints, args, stdin, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        c.logs()
    );
    stdout
}

fn endpoints(c: &ProcessCluster) -> String {
    c.members
        .iter()
        .map(|m| m.client_url())
        .collect::<Vec<_>>()
        .join(",")
}

/// A long-running etcdctl (watch, elect, lock) whose stdout lines arrive on a channel.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Streaming {
    fn start(endpoints: &str, args: &[&str]) -> Streaming {
        let mut child = etcdctl_cmd(endpoints)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run etcdctl");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Streaming { child, lines }
    }

    /// The next `n` lines, or panics after `limit`.
    fn next_lines(&self, n: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => panic!("expected {n} lines within {limit:?}, got {got:?}"),
            }
        }
        got
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the cluster is ready as a user would check it: every member answers a
/// linearizable read through etcdctl, and the member list shows every member's client URLs
/// (each member publishes them through the log after it starts; a member serves once its own
/// publish is applied, and learns the others' a heartbeat or so after theirs commit).
fn ready(c: &ProcessCluster) -> String {
    let eps = endpoints(c);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut waiting: Vec<String> = c.members.iter().map(|m| m.client_url()).collect();
    loop {
        waiting.retain(|ep| {
            !run(ep, &["get", "ready-probe"], None, Duration::from_secs(30))
                .status
                .success()
        });
        let list = run(
            &eps,
            &["member", "list", "-w", "json"],
            None,
            Duration::from_secs(30),
        );
        let published = list.status.success() && {
            let v: serde_json::Value =
                serde_json::from_slice(&list.stdout).expect("member list json");
            v["members"].as_array().is_some_and(|ms| {
                ms.len() == c.members.len()
                    && ms.iter().all(|m| m["clientURLs"][0].as_str().is_some())
            })
        };
        if waiting.is_empty() && published {
            return eps;
        }
        assert!(
            Instant::now() < deadline,
            "cluster not ready: members not answering {waiting:?}; member list {}\n{}",
            String::from_utf8_lossy(&list.stdout),
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The revision etcdctl reports in `-w json` output.
fn json_revision(json: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(json).expect("etcdctl json");
    v["header"]["revision"].as_i64().expect("header.revision")
}

#[test]
fn kv_prefix_revisions_txn_and_watch() {
    let c = ProcessCluster::start(3, Tuning::default());
    let eps = ready(&c);
    // Each member separately, so followers' forwarding is exercised too.
    for m in &c.members {
        let u = m.client_url();
        assert_eq!(
            ok(&c, &u, &["put", &format!("cfg/{}", m.name), "v1"]),
            "OK\n"
        );
    }
    let all = ok(&c, &eps, &["get", "cfg/", "--prefix"]);
    assert_eq!(all, "cfg/n1\nv1\ncfg/n2\nv1\ncfg/n3\nv1\n");
    let keys = ok(&c, &eps, &["get", "cfg/", "--prefix", "--keys-only"]);
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 3);

    // A past revision still shows the old value.
    let rev = json_revision(&ok(&c, &eps, &["put", "cfg/n1", "v2", "-w", "json"]));
    assert_eq!(
        ok(&c, &eps, &["get", "cfg/n1", &format!("--rev={}", rev - 1)]),
        "cfg/n1\nv1\n"
    );
    assert_eq!(ok(&c, &eps, &["get", "cfg/n1"]), "cfg/n1\nv2\n");
    // Serializable reads from a follower.
    let ser = ok(
        &c,
        &c.members[2].client_url(),
        &["get", "cfg/n2", "--consistency=s"],
    );
    assert!(ser == "cfg/n2\nv1\n" || ser.is_empty(), "{ser}");

    // A txn: compare, success and failure branches.
    let txn = "value(\"cfg/n1\") = \"v2\"\n\nput cfg/n1 v3\nget cfg/n1\n\nput cfg/failed yes\n\n";
    let out = ok_in(&c, &eps, &["txn", "--interactive=false"], Some(txn));
    assert!(out.starts_with("SUCCESS"), "{out}");
    assert!(out.contains("cfg/n1\nv3"), "{out}");
    let out = ok_in(&c, &eps, &["txn", "--interactive=false"], Some(txn));
    assert!(out.starts_with("FAILURE"), "{out}");
    assert_eq!(ok(&c, &eps, &["get", "cfg/failed"]), "cfg/failed\nyes\n");

    // Watch a prefix from one member while writing through another.
    let watcher = Streaming::start(&c.members[1].client_url(), &["watch", "cfg/", "--prefix"]);
    std::thread::sleep(Duration::from_millis(500));
    ok(&c, &c.members[0].client_url(), &["put", "cfg/w", "x"]);
    ok(&c, &c.members[2].client_url(), &["del", "cfg/w"]);
    let lines = watcher.next_lines(5, Duration::from_secs(10));
    assert_eq!(lines, ["PUT", "cfg/w", "x", "DELETE", "cfg/w"]);
    // Watch history from a past revision.
    let hist = Streaming::start(&eps, &["watch", "cfg/n1", &format!("--rev={rev}")]);
    let lines = hist.next_lines(3, Duration::from_secs(10));
    assert_eq!(lines, ["PUT", "cfg/n1", "v2"]);

    // Deleting a prefix reports the count; compaction makes old revisions unreadable.
    // cfg/n1, cfg/n2, cfg/n3 and cfg/failed (cfg/w is gone already).
    assert_eq!(ok(&c, &eps, &["del", "cfg/", "--prefix"]), "4\n");
    assert_eq!(ok(&c, &eps, &["get", "cfg/", "--prefix"]), "");
    let now = json_revision(&ok(&c, &eps, &["get", "x", "-w", "json"]));
    ok(&c, &eps, &["compaction", &now.to_string()]);
    let out = run(
        &eps,
        &["get", "cfg/n1", &format!("--rev={}", rev - 1)],
        None,
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("required revision has been compacted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lease id (hex) in `lease 694d7a11b2c3d4e5 granted with TTL(10s)`.
fn lease_id(grant: &str) -> String {
    let mut words = grant.split_whitespace();
    assert_eq!(words.next(), Some("lease"), "{grant}");
    words.next().expect("lease id").to_string()
}

#[test]
fn leases_keepalive_revoke_and_expiry() {
    let c = ProcessCluster::start(3, Tuning::default());
    let eps = ready(&c);
    let follower = c.members[1].client_url();

    let grant = ok(&c, &eps, &["lease", "grant", "30"]);
    assert!(grant.ends_with("granted with TTL(30s)\n"), "{grant}");
    let id = lease_id(&grant);
    ok(
        &c,
        &eps,
        &["put", "svc/a", "10.0.0.1", &format!("--lease={id}")],
    );
    // Keepalive and TTL through every member (followers forward to the leader).
    for m in &c.members {
        let out = ok(&c, &m.client_url(), &["lease", "keep-alive", "--once", &id]);
        assert_eq!(out, format!("lease {id} keepalived with TTL(30)\n"));
    }
    let ttl = ok(&c, &follower, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(30s), remaining(")),
        "{ttl}"
    );
    assert!(ttl.contains("attached keys([svc/a])"), "{ttl}");
    let list = ok(&c, &eps, &["lease", "list"]);
    assert!(list.contains(&id), "{list}");

    assert_eq!(
        ok(&c, &follower, &["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(ok(&c, &eps, &["get", "svc/a"]), "");
    let out = ok(&c, &eps, &["lease", "timetolive", &id]);
    assert_eq!(out, format!("lease {id} already expired\n"));

    // An ephemeral key disappears when its lease is not kept alive, and a watcher sees it go.
    let grant = ok(&c, &eps, &["lease", "grant", "2"]);
    let id = lease_id(&grant);
    ok(
        &c,
        &eps,
        &["put", "svc/b", "10.0.0.2", &format!("--lease={id}")],
    );
    let watcher = Streaming::start(&eps, &["watch", "svc/b"]);
    let lines = watcher.next_lines(2, Duration::from_secs(15));
    assert_eq!(lines, ["DELETE", "svc/b"]);
    assert_eq!(ok(&c, &eps, &["get", "svc/b"]), "");

    // A kept-alive lease outlives its TTL.
    let id = lease_id(&ok(&c, &eps, &["lease", "grant", "2"]));
    ok(&c, &eps, &["put", "svc/c", "up", &format!("--lease={id}")]);
    let keeper = Streaming::start(&follower, &["lease", "keep-alive", &id]);
    let first = keeper.next_lines(1, Duration::from_secs(10));
    assert_eq!(first, [format!("lease {id} keepalived with TTL(2)")]);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(ok(&c, &eps, &["get", "svc/c"]), "svc/c\nup\n");
    drop(keeper);
}

#[test]
fn lock_serializes_and_elect_hands_over() {
    let c = ProcessCluster::start(3, Tuning::default());
    let eps = ready(&c);
    let dir = tempfile::tempdir().expect("temp dir");
    let trace = dir.path().join("trace");
    let script = format!(
        "echo start >> {t}; sleep 1; echo end >> {t}",
        t = trace.display()
    );
    // Two contenders through different members; each holds the lock while its command runs.
    let mut a = etcdctl_cmd(&c.members[0].client_url())
        .args(["lock", "jobs", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl lock");
    let mut b = etcdctl_cmd(&c.members[2].client_url())
        .args(["lock", "jobs", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl lock");
    for child in [&mut a, &mut b] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                assert!(
                    st.success(),
                    "etcdctl lock failed: {st}\n{err}\n{}",
                    c.logs()
                );
                break;
            }
            assert!(Instant::now() < deadline, "etcdctl lock hung");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let t = std::fs::read_to_string(&trace).expect("trace");
    assert_eq!(
        t, "start\nend\nstart\nend\n",
        "critical sections overlapped"
    );
    // Both released: the lock prefix is empty again.
    assert_eq!(ok(&c, &eps, &["get", "jobs", "--prefix"]), "");

    // Election: the first campaigner leads, an observer sees its proclamation, and when it
    // goes away (its process killed, its lease expiring) the next campaigner takes over.
    let first = Streaming::start(&c.members[0].client_url(), &["elect", "primary", "p1"]);
    let won = first.next_lines(2, Duration::from_secs(15));
    assert!(won[0].starts_with("primary/"), "{won:?}");
    assert_eq!(won[1], "p1");
    let second = Streaming::start(&c.members[1].client_url(), &["elect", "primary", "p2"]);
    let observer = Streaming::start(&c.members[2].client_url(), &["elect", "-l", "primary"]);
    let seen = observer.next_lines(2, Duration::from_secs(15));
    assert_eq!(seen[1], "p1", "{seen:?}");
    drop(first);
    // etcdctl's session lease is 60 s; killing the process leaves it to expire, so the hand-over
    // takes up to a minute.
    let won = second.next_lines(2, Duration::from_secs(90));
    assert_eq!(won[1], "p2", "{won:?}");
    let seen = observer.next_lines(2, Duration::from_secs(15));
    assert_eq!(seen[1], "p2", "{seen:?}");
}

#[test]
fn members_endpoints_and_snapshot() {
    let c = ProcessCluster::start(3, Tuning::default());
    let eps = ready(&c);

    let list = ok(&c, &eps, &["member", "list", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&list).expect("member list json");
    let members = v["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{list}");
    let mut names: Vec<&str> = members
        .iter()
        .map(|m| m["name"].as_str().unwrap_or(""))
        .collect();
    names.sort();
    assert_eq!(names, ["n1", "n2", "n3"]);
    for m in members {
        let client = m["clientURLs"][0].as_str().unwrap_or("");
        assert!(c.members.iter().any(|x| x.client_url() == client), "{list}");
    }
    let table = ok(&c, &eps, &["member", "list"]);
    assert_eq!(table.lines().count(), 3, "{table}");

    // A learner is added (not started) and removed again.
    let ip = std::net::Ipv4Addr::new(127, 0, 0, 4);
    let peer = format!("http://{ip}:{}", sextant_tests::free_port(ip));
    let added = ok(
        &c,
        &c.members[1].client_url(),
        &[
            "member",
            "add",
            "n4",
            &format!("--peer-urls={peer}"),
            "--learner",
        ],
    );
    assert!(added.contains("Member"), "{added}");
    assert!(
        added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{added}"
    );
    let id = added
        .split_whitespace()
        .nth(1)
        .expect("member id")
        .to_string();
    let table = ok(&c, &eps, &["member", "list"]);
    assert!(table.contains(&peer), "{table}");
    assert!(table.contains("true"), "learner flag: {table}");
    ok(&c, &c.members[2].client_url(), &["member", "remove", &id]);
    let table = ok(&c, &eps, &["member", "list"]);
    assert_eq!(table.lines().count(), 3, "{table}");

    // Endpoint status and health for the whole cluster.
    let status = ok(&c, &eps, &["endpoint", "status", "--cluster", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&status).expect("status json");
    let rows = v.as_array().expect("status rows");
    assert_eq!(rows.len(), 3, "{status}");
    let leaders: Vec<u64> = rows
        .iter()
        .map(|r| r["Status"]["leader"].as_u64().unwrap_or(0))
        .collect();
    assert!(leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]));
    let out = run(
        &eps,
        &["endpoint", "health", "--cluster"],
        None,
        Duration::from_secs(30),
    );
    // etcdctl 3.4 prints health to stderr.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("is healthy").count(), 3, "{text}");

    // `-w table` prints what etcdctl prints, character for character.
    let ours = |args: &[&str]| {
        let out = Command::new(sextant_tests::sextant_bin())
            .args(["--endpoints", &eps, "-w", "table"])
            .args(args)
            .output()
            .expect("run sextant");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let table = ok(&c, &eps, &["-w", "table", "member", "list"]);
    assert_eq!(table.lines().count(), 7, "{table}");
    assert_eq!(ours(&["member", "list"]), (Some(0), table, String::new()));
    let first = &eps[..eps.find(',').unwrap_or(eps.len())];
    let theirs = ok(&c, first, &["-w", "table", "endpoint", "status"]);
    let out = Command::new(sextant_tests::sextant_bin())
        .args(["--endpoints", first, "-w", "table", "endpoint", "status"])
        .output()
        .expect("run sextant");
    assert!(out.status.success());
    let mine = String::from_utf8_lossy(&out.stdout).into_owned();
    let (theirs, mine): (Vec<&str>, Vec<&str>) = (theirs.lines().collect(), mine.lines().collect());
    assert_eq!(theirs.len(), 5, "{theirs:?}");
    assert_eq!(mine.len(), 5, "{mine:?}");
    // The borders and header match exactly; in the row, every cell but the raft indexes
    // and the db size (which may move between the two calls).
    for i in [0, 1, 2, 4] {
        assert_eq!(mine[i], theirs[i]);
    }
    let cells = |l: &str| -> Vec<String> { l.split('|').map(|c| c.trim().to_string()).collect() };
    let (t, m) = (cells(theirs[3]), cells(mine[3]));
    for i in [1, 2, 3, 5, 6, 7, 10] {
        assert_eq!(m[i], t[i], "cell {i}: {mine:?} vs {theirs:?}");
    }
    // Commands without a table are refused with etcdctl's message and status, but before
    // anything is sent: etcdctl makes the put and only then fails to print it.
    let (code, stdout, stderr) = ours(&["put", "table/k", "v"]);
    assert_eq!((code, stdout.as_str()), (Some(4), ""));
    let get = ok(&c, &eps, &["get", "table/k"]);
    assert_eq!(get, "", "a refused put was not made");
    let refused = run(
        &eps,
        &["-w", "table", "put", "table/k", "v"],
        None,
        Duration::from_secs(30),
    );
    assert_eq!(refused.status.code(), Some(4));
    assert_eq!(
        stderr.trim(),
        String::from_utf8_lossy(&refused.stderr).trim()
    );

    // A snapshot saved from the cluster is the state machine's, checksummed.
    ok(&c, &eps, &["put", "snap/k", "v"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("backup.db");
    let out = ok(
        &c,
        &eps[..eps.find(',').unwrap_or(eps.len())],
        &["snapshot", "save", file.to_str().expect("utf-8 path")],
    );
    assert!(out.contains("Snapshot saved at"), "{out}");
    let len = std::fs::metadata(&file).expect("snapshot file").len();
    assert!(len > 32, "snapshot of {len} bytes");
}

/// `etcdctl check datascale` and `check perf` with the small load run to completion; their
/// PASS/FAIL verdicts are about this machine's speed, so they are printed, not asserted.
#[test]
fn etcdctl_check_datascale_and_perf_complete() {
    let c = ProcessCluster::start(3, Tuning::default());
    let eps = ready(&c);
    for check in ["datascale", "perf"] {
        let out = run(
            &eps,
            &[
                "check",
                check,
                "--load=s",
                "--auto-compact",
                "--auto-defrag",
            ],
            None,
            Duration::from_secs(240),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let verdicts: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL"))
            .collect();
        println!("etcdctl check {check} --load=s:\n{}", verdicts.join("\n"));
        assert!(
            !verdicts.is_empty(),
            "check {check} gave no verdict ({})\nstdout:\n{stdout}\nstderr:\n{stderr}\n{}",
            out.status,
            c.logs()
        );
        assert!(
            !verdicts.iter().any(|v| v.contains("ERROR")),
            "check {check} saw request errors:\n{stdout}\n{}",
            c.logs()
        );
        // Both checks delete what they wrote.
        let left = ok(
            &c,
            &eps,
            &["get", "/etcdctl-check", "--prefix", "--keys-only"],
        );
        assert_eq!(left, "", "keys left behind by check {check}");
    }
}
