//! The `sextant` client subcommands for the services beyond KV (Lease, Watch, v3lock,
//! v3election, Cluster, and the Maintenance calls beyond Status) against real servers,
//! checked against etcd's behaviour and etcdctl's output.

use std::time::Duration;

use sextant_tests::cli::{ctl, ctl_ok, single, Running};
use sextant_tests::{ProcessCluster, Tuning};

const LINE_WAIT: Duration = Duration::from_secs(10);

/// The lease id from `lease <id> granted with TTL(<n>s)`.
fn granted_id(line: &str) -> String {
    let id = line
        .strip_prefix("lease ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("not a grant line: {line:?}"));
    assert_eq!(id.len(), 16, "ids print as 16 hex digits: {line:?}");
    id.to_string()
}

#[test]
fn lease_lifecycle() {
    let (_c, ep) = single();
    let out = ctl_ok(&ep, &["lease", "grant", "100"]);
    assert!(out.ends_with(" granted with TTL(100s)\n"), "{out:?}");
    let id = granted_id(out.trim_end());

    ctl_ok(&ep, &["put", "leased", "v", "--lease", &id]);
    let ttl = ctl_ok(&ep, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(100s), remaining(")),
        "{ttl:?}"
    );
    assert!(ttl.ends_with(", attached keys([leased])\n"), "{ttl:?}");

    let kept = ctl_ok(&ep, &["lease", "keep-alive", &id, "--once"]);
    assert_eq!(kept, format!("lease {id} keepalived with TTL(100)\n"));

    let list = ctl_ok(&ep, &["lease", "list"]);
    assert_eq!(list, format!("found 1 leases\n{id}\n"));

    assert_eq!(
        ctl_ok(&ep, &["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(
        ctl_ok(&ep, &["get", "leased"]),
        "",
        "revoking deletes the keys"
    );
    assert_eq!(
        ctl_ok(&ep, &["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    let out = ctl(&ep, &["lease", "keep-alive", &id, "--once"], "");
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr, "Error: etcdserver: requested lease not found\n");
    let out = ctl(&ep, &["lease", "revoke", &id], "");
    assert_eq!(out.stderr, "Error: etcdserver: requested lease not found\n");
}

#[test]
fn lease_keep_alive_renews_until_interrupted() {
    let (_c, ep) = single();
    let id = granted_id(ctl_ok(&ep, &["lease", "grant", "3"]).trim_end());
    let keeper = Running::spawn(&ep, &["lease", "keep-alive", &id]);
    // Renewed every TTL/3 = 1s: three renewals outlive the 3s TTL.
    let lines = keeper.lines(4, LINE_WAIT);
    for l in &lines {
        assert_eq!(l, &format!("lease {id} keepalived with TTL(3)"));
    }
    assert_eq!(keeper.interrupt(), Some(0));
}

#[test]
fn watch_prints_events_until_interrupted() {
    let (_c, ep) = single();
    let watcher = Running::spawn(&ep, &["watch", "--prefix", "w/", "--prev-kv"]);
    // The watch exists once one of these puts is reported; drain those events.
    let mut reported = None;
    for i in 0..50 {
        ctl_ok(&ep, &["put", "w/sync", &i.to_string()]);
        reported = watcher.next_line(Duration::from_millis(200));
        if reported.is_some() {
            break;
        }
    }
    assert_eq!(reported.as_deref(), Some("PUT"), "the watch never reported");
    while watcher.next_line(Duration::from_millis(500)).is_some() {}

    ctl_ok(&ep, &["put", "w/a", "1"]);
    ctl_ok(&ep, &["put", "w/a", "2"]);
    ctl_ok(&ep, &["del", "w/a"]);
    ctl_ok(&ep, &["put", "other", "x"]);
    // With --prev-kv each event after the first prints the previous pair before the new one;
    // a deleted key prints with an empty value.
    let lines = watcher.lines(13, LINE_WAIT);
    assert_eq!(
        lines,
        vec![
            "PUT", "w/a", "1", //
            "PUT", "w/a", "1", "w/a", "2", //
            "DELETE", "w/a", "2", "w/a", ""
        ]
    );
    assert!(
        watcher.quiet_for(Duration::from_millis(500)),
        "keys outside the prefix are not watched"
    );
    assert_eq!(watcher.interrupt(), Some(0));
}

#[test]
fn watch_replays_from_a_revision() {
    let (_c, ep) = single();
    ctl_ok(&ep, &["put", "r", "a"]); // revision 2
    ctl_ok(&ep, &["put", "r", "b"]); // revision 3
    let watcher = Running::spawn(&ep, &["watch", "r", "--rev", "2"]);
    assert_eq!(
        watcher.lines(6, LINE_WAIT),
        vec!["PUT", "r", "a", "PUT", "r", "b"]
    );
    ctl_ok(&ep, &["compaction", "3"]);
    let out = ctl(&ep, &["watch", "r", "--rev", "2"], "");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.starts_with(
            "Error: watch was canceled (etcdserver: mvcc: required revision has been compacted"
        ),
        "{out:?}"
    );
}

#[test]
fn lock_is_exclusive_and_carries_a_fencing_token() {
    let (_c, ep) = single();
    let holder = Running::spawn(&ep, &["lock", "mylock"]);
    let held = holder.lines(2, LINE_WAIT);
    assert!(held[0].starts_with("mylock/"), "{held:?}");
    let token: i64 = held[1]
        .strip_prefix("fencing token: ")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no fencing token: {held:?}"));
    // The owner key exists with that create revision.
    let v: serde_json::Value =
        serde_json::from_str(&ctl_ok(&ep, &["get", &held[0], "-w", "json"])).expect("json");
    assert_eq!(v["kvs"][0]["create_revision"], token);

    // A second contender waits, running its command only once the first lets go.
    let waiter = Running::spawn(
        &ep,
        &[
            "lock",
            "mylock",
            "sh",
            "-c",
            "echo \"$ETCD_LOCK_KEY $ETCD_LOCK_REV\"",
        ],
    );
    assert!(
        waiter.quiet_for(Duration::from_secs(1)),
        "the lock is exclusive"
    );
    assert_eq!(holder.interrupt(), Some(0));
    let ran = waiter.lines(1, LINE_WAIT);
    let (key, rev) = ran[0].split_once(' ').expect("key and revision");
    assert!(key.starts_with("mylock/") && key != held[0], "{ran:?}");
    assert!(
        rev.parse::<i64>().expect("revision") > token,
        "tokens grow: {ran:?}"
    );
    assert_eq!(waiter.wait(LINE_WAIT), Some(0));
    // Both released: no owner keys are left.
    assert_eq!(ctl_ok(&ep, &["get", "--prefix", "mylock/"]), "");

    // The command's exit status becomes the lock command's.
    let out = ctl(&ep, &["lock", "mylock", "sh", "-c", "exit 3"], "");
    assert_eq!(out.code, Some(3), "{out:?}");
}

#[test]
fn elect_campaigns_and_listen_observes() {
    let (_c, ep) = single();
    let observer = Running::spawn(&ep, &["elect", "--listen", "myelection"]);
    let leader = Running::spawn(&ep, &["elect", "myelection", "p1"]);
    let won = leader.lines(2, LINE_WAIT);
    assert!(won[0].starts_with("myelection/"), "{won:?}");
    assert_eq!(won[1], "p1");
    assert_eq!(observer.lines(2, LINE_WAIT), won);

    let second = Running::spawn(&ep, &["elect", "myelection", "p2"]);
    assert!(
        second.quiet_for(Duration::from_secs(1)),
        "one leader at a time"
    );
    assert_eq!(leader.interrupt(), Some(0), "Ctrl-C resigns");
    let next = second.lines(2, LINE_WAIT);
    assert_eq!(next[1], "p2");
    assert_eq!(observer.lines(2, LINE_WAIT), next);
    assert_eq!(second.interrupt(), Some(0));
    assert_eq!(observer.interrupt(), Some(0));
}

#[test]
fn member_list_add_promote_update_remove() {
    let (c, ep) = single();
    let list = ctl_ok(&ep, &["member", "list"]);
    let row: Vec<&str> = list.trim_end().split(", ").collect();
    assert_eq!(row.len(), 6, "{list:?}");
    assert_eq!(
        row[1..],
        ["started", "n1", &c.members[0].peer_url(), &ep, "false"]
    );
    let self_id = row[0].to_string();

    let added = ctl_ok(
        &ep,
        &[
            "member",
            "add",
            "n2",
            "--peer-urls",
            "http://127.0.0.9:2380",
            "--learner",
        ],
    );
    let first = added.lines().next().expect("first line");
    assert!(
        first.starts_with("Member ") && first.contains(" added as learner to cluster "),
        "{added:?}"
    );
    let new_id = first.split_whitespace().nth(1).expect("id").to_string();
    assert!(added.contains("\nETCD_NAME=\"n2\"\n"), "{added:?}");
    // Members come in id order, as etcd lists them.
    let initial = added
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
        .expect("ETCD_INITIAL_CLUSTER line");
    let mut entries: Vec<&str> = initial.trim_matches('"').split(',').collect();
    entries.sort();
    let n1 = format!("n1={}", c.members[0].peer_url());
    assert_eq!(
        entries,
        [n1.as_str(), "n2=http://127.0.0.9:2380"],
        "{added:?}"
    );
    assert!(
        added.ends_with("ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"),
        "{added:?}"
    );
    let list = ctl_ok(&ep, &["member", "list"]);
    assert!(
        list.contains(&format!(
            "{new_id}, unstarted, , http://127.0.0.9:2380, , true"
        )),
        "{list:?}"
    );

    let out = ctl_ok(
        &ep,
        &[
            "member",
            "update",
            &new_id,
            "--peer-urls",
            "http://127.0.0.9:2381",
        ],
    );
    assert!(
        out.starts_with(&format!("Member {new_id:>16} updated in cluster ")),
        "{out:?}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ctl_ok(&ep, &["member", "list", "-w", "json"])).expect("json");
    let members = v["members"].as_array().expect("members");
    assert_eq!(members.len(), 2);
    assert!(
        members
            .iter()
            .any(|m| m["peerURLs"][0] == "http://127.0.0.9:2381" && m["isLearner"] == true),
        "{v}"
    );

    // An unstarted learner cannot be promoted (it is not caught up).
    let out = ctl(&ep, &["member", "promote", &new_id], "");
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        "Error: etcdserver: can only promote a learner member which is in sync with leader\n"
    );
    let out = ctl_ok(&ep, &["member", "remove", &new_id]);
    assert!(
        out.starts_with(&format!("Member {new_id:>16} removed from cluster ")),
        "{out:?}"
    );
    assert_eq!(ctl_ok(&ep, &["member", "list"]).lines().count(), 1);
    assert!(ctl_ok(&ep, &["member", "list"]).starts_with(&self_id));
}

#[test]
fn endpoint_health_and_cluster_flag() {
    let (_c, ep) = single();
    let out = ctl_ok(&ep, &["endpoint", "health"]);
    assert!(
        out.starts_with(&format!(
            "{ep} is healthy: successfully committed proposal: took = "
        )),
        "{out:?}"
    );
    // --cluster asks every member's client URL from the member list.
    let out = ctl_ok(&ep, &["endpoint", "status", "--cluster"]);
    assert!(out.starts_with(&format!("{ep}, ")), "{out:?}");
    let v: serde_json::Value =
        serde_json::from_str(&ctl_ok(&ep, &["endpoint", "health", "-w", "json"])).expect("json");
    assert_eq!(v[0]["endpoint"], ep.as_str());
    assert_eq!(v[0]["health"], true);
}

#[test]
fn snapshot_save_writes_the_file_atomically() {
    let (_c, ep) = single();
    for i in 0..20 {
        ctl_ok(&ep, &["put", &format!("k{i}"), "v"]);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("snap.db");
    let path = file.to_str().expect("utf8");
    assert_eq!(
        ctl_ok(&ep, &["snapshot", "save", path]),
        format!("Snapshot saved at {path}\n")
    );
    let len = std::fs::metadata(&file).expect("snapshot file").len();
    assert!(len > 0, "empty snapshot");
    assert!(
        !dir.path().join("snap.db.part").exists(),
        "the temp file is renamed away"
    );
    // One endpoint only, as etcdctl requires.
    let out = ctl(&format!("{ep},{ep}"), &["snapshot", "save", path], "");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .starts_with("Error: snapshot must be requested to one selected node"),
        "{out:?}"
    );
}

#[test]
fn maintenance_alarm_defrag() {
    let (_c, ep) = single();
    assert_eq!(ctl_ok(&ep, &["alarm", "list"]), "");
    assert_eq!(ctl_ok(&ep, &["alarm", "disarm"]), "");
    assert_eq!(
        ctl_ok(&ep, &["defrag"]),
        format!("Finished defragmenting etcd member[{ep}]\n")
    );
}

#[test]
fn move_leader_transfers_leadership() {
    let c = ProcessCluster::start(3, Tuning::default());
    let eps: Vec<String> = c.members.iter().map(|m| m.client_url()).collect();
    let all = eps.join(",");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (leader, follower) = loop {
        let out = ctl(&all, &["endpoint", "status"], "");
        let rows: Vec<Vec<String>> = out
            .stdout
            .lines()
            .map(|l| l.split(", ").map(str::to_string).collect())
            .collect();
        let leader = rows.iter().find(|r| r.len() > 4 && r[4] == "true");
        if let (true, Some(l)) = (rows.len() == 3, leader) {
            let f = rows.iter().find(|r| r[4] == "false").expect("a follower");
            break (l[1].clone(), f[1].clone());
        }
        assert!(std::time::Instant::now() < deadline, "no leader: {out:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        ctl_ok(&all, &["move-leader", &follower]),
        format!("Leadership transferred from {leader} to {follower}\n")
    );
    let out = ctl_ok(&all, &["endpoint", "status"]);
    assert!(
        out.lines()
            .any(|l| l.contains(&format!(", {follower}, ")) && l.contains(", true, false, ")),
        "{out:?}"
    );
}

/// `endpoint hashkv --cluster --rev R` until every member answers (a follower may not have
/// applied `R` yet): one `(endpoint, hash)` per member.
fn hashes_at(all: &str, rev: i64) -> Vec<(String, u64)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = ctl(
            all,
            &["endpoint", "hashkv", "--cluster", "--rev", &rev.to_string()],
            "",
        );
        if out.ok() {
            return out
                .stdout
                .lines()
                .map(|l| {
                    let (ep, hash) = l.split_once(", ").expect("endpoint, hash");
                    (ep.to_string(), hash.parse().expect("hash"))
                })
                .collect();
        }
        assert!(std::time::Instant::now() < deadline, "{out:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn endpoint_hashkv_agrees_across_members_and_keeps_to_its_revision() {
    let c = ProcessCluster::start(3, Tuning::default());
    let all: Vec<String> = c.members.iter().map(|m| m.client_url()).collect();
    let all = all.join(",");
    for i in 0..20 {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !ctl(&all, &["put", &format!("k{i}"), &format!("v{i}")], "").ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "no leader\n{}",
                c.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let v: serde_json::Value =
        serde_json::from_str(&ctl_ok(&all, &["get", "k0", "-w", "json"])).expect("json");
    let rev = v["header"]["revision"].as_i64().expect("revision");

    let at_rev = hashes_at(&all, rev);
    assert_eq!(at_rev.len(), 3, "{at_rev:?}");
    assert!(
        at_rev.iter().all(|(_, h)| *h == at_rev[0].1),
        "members disagree at revision {rev}: {at_rev:?}"
    );
    // Later writes leave the hash of `rev` alone and change the current one.
    ctl_ok(&all, &["put", "k0", "changed"]);
    assert_eq!(hashes_at(&all, rev), at_rev);
    let later = hashes_at(&all, rev + 1);
    assert!(later.iter().all(|(_, h)| *h != at_rev[0].1), "{later:?}");

    let one = c.members[0].client_url();
    let rev_arg = rev.to_string();
    let at_rev_as = |format| {
        ctl_ok(
            &one,
            &["endpoint", "hashkv", "--rev", &rev_arg, "-w", format],
        )
    };
    let table = at_rev_as("table");
    let header = table.lines().nth(1).unwrap_or_default();
    assert!(
        header.contains("ENDPOINT") && header.contains("HASH"),
        "{table}"
    );
    let v: serde_json::Value = serde_json::from_str(&at_rev_as("json")).expect("json");
    assert_eq!(v[0]["Endpoint"], one.as_str());
    assert_eq!(v[0]["HashKV"]["hash_revision"], rev);
    assert_eq!(v[0]["HashKV"]["hash"], at_rev[0].1);

    let future = ctl(&one, &["endpoint", "hashkv", "--rev", "1000000"], "");
    assert_eq!(future.code, Some(1), "{future:?}");
    assert!(
        future
            .stderr
            .contains("(etcdserver: mvcc: required revision is a future revision)"),
        "{future:?}"
    );
}
