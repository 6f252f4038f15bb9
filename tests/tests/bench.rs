//! `sextant bench` against a real member: every benchmark sends exactly what it says, gets
//! every answer, and its writes land (keys counted afterwards). Timing is never asserted;
//! the numbers are for `bin/bench/compare`.

use sextant_tests::cli::{ctl, ctl_ok, single};

fn bench(ep: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec![
        "--command-timeout",
        "10s",
        "bench",
        "--json",
        "--no-progress",
    ];
    all.extend_from_slice(args);
    let out = ctl(ep, &all, "");
    assert!(out.ok(), "bench {args:?} failed: {out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not json ({e}): {out:?}"))
}

fn assert_clean(r: &serde_json::Value, requests: u64) {
    assert_eq!(r["requests"], requests, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    let l = &r["latency_ms"];
    let (min, p50, p99, max) = (
        l["min"].as_f64().unwrap(),
        l["p50"].as_f64().unwrap(),
        l["p99"].as_f64().unwrap(),
        l["max"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= p50 && p50 <= p99 && p99 <= max, "{r}");
}

#[test]
fn put_with_sequential_keys_writes_the_whole_key_space() {
    let (_c, ep) = single();
    let r = bench(
        &ep,
        &[
            "--clients",
            "8",
            "--conns",
            "2",
            "--total",
            "300",
            "put",
            "--key-size",
            "6",
            "--val-size",
            "32",
            "--key-space-size",
            "150",
            "--sequential-keys",
        ],
    );
    assert_clean(&r, 300);
    assert_eq!(r["op"], "put");
    // Keys are 6 bytes, big-endian numbers 0..150: all of them exist, with 32-byte values.
    let count = ctl_ok(
        &ep,
        &["-w", "json", "get", "", "--from-key", "--count-only"],
    );
    let count: serde_json::Value = serde_json::from_str(&count).unwrap();
    assert_eq!(count["count"], 150, "{count}");
}

#[test]
fn txn_put_range_and_keepalive_answer_every_request() {
    let (_c, ep) = single();
    let r = bench(
        &ep,
        &[
            "--clients",
            "4",
            "--total",
            "50",
            "txn-put",
            "--txn-ops",
            "3",
            "--key-space-size",
            "10",
        ],
    );
    assert_clean(&r, 50);
    for consistency in ["l", "s"] {
        let r = bench(
            &ep,
            &[
                "--clients",
                "4",
                "--total",
                "200",
                "range",
                "a",
                "--consistency",
                consistency,
            ],
        );
        assert_clean(&r, 200);
    }
    let r = bench(&ep, &["--clients", "3", "--total", "90", "lease-keepalive"]);
    assert_clean(&r, 90);
    // The leases the clients kept alive were revoked at the end.
    let leases = ctl_ok(&ep, &["lease", "list"]);
    assert_eq!(leases, "found 0 leases\n");
}

#[test]
fn watch_latency_counts_one_event_per_put_and_watcher() {
    let (_c, ep) = single();
    let r = bench(
        &ep,
        &[
            "--conns",
            "2",
            "watch-latency",
            "--watchers",
            "20",
            "--streams",
            "4",
            "--put-total",
            "15",
            "--put-rate",
            "200",
        ],
    );
    assert_clean(&r, 20 * 15);
}

#[test]
fn bad_flags_are_refused_with_a_reason() {
    let (_c, ep) = single();
    let out = ctl(&ep, &["bench", "--clients", "0", "put"], "");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("--clients must be at least 1"),
        "{out:?}"
    );
    let out = ctl(
        &ep,
        &[
            "bench",
            "txn-put",
            "--txn-ops",
            "5",
            "--key-space-size",
            "2",
        ],
        "",
    );
    assert!(out.stderr.contains("--txn-ops must not exceed"), "{out:?}");
}

/// `replication-floor` runs without any server: each of its member processes writes every
/// value it is sent to its own file (checked by value count: every write answered), and
/// nothing is left in the directory afterwards.
#[test]
fn replication_floor_answers_every_write_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for members in ["1", "3", "4"] {
        let r = bench(
            "http://127.0.0.1:1",
            &[
                "--total",
                "150",
                "replication-floor",
                "--members",
                members,
                "--val-size",
                "100",
                "--dir",
                d,
            ],
        );
        assert_clean(&r, 150);
        assert_eq!(r["op"], "replication-floor");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
    for (args, why) in [
        (
            vec!["replication-floor", "--members", "0"],
            "--members must be between 1 and 7",
        ),
        (
            vec!["--clients", "2", "replication-floor"],
            "--clients, --conns and --rate do not apply",
        ),
    ] {
        let mut all = vec!["bench"];
        all.extend(args);
        all.extend(["--dir", d]);
        let out = ctl("http://127.0.0.1:1", &all, "");
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains(why), "{out:?}");
    }
}
