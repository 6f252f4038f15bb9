//! Golden help texts of `sextant` and every client subcommand (the CLI's user interface:
//! a changed flag or wording shows up here).

use std::process::Command;

use sextant_tests::sextant_bin;

fn help(args: &[&str]) -> String {
    let out = Command::new(sextant_bin())
        .args(args)
        .arg("--help")
        .output()
        .expect("run sextant --help");
    assert!(out.status.success(), "{args:?} --help failed: {out:?}");
    String::from_utf8(out.stdout).expect("utf8 help")
}

macro_rules! help_snapshot {
    ($name:ident, [$($arg:literal),*]) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), help(&[$($arg),*]));
        }
    };
}

help_snapshot!(sextant, []);
help_snapshot!(put, ["put"]);
help_snapshot!(get, ["get"]);
help_snapshot!(del, ["del"]);
help_snapshot!(txn, ["txn"]);
help_snapshot!(watch, ["watch"]);
help_snapshot!(lease, ["lease"]);
help_snapshot!(lease_grant, ["lease", "grant"]);
help_snapshot!(lease_revoke, ["lease", "revoke"]);
help_snapshot!(lease_timetolive, ["lease", "timetolive"]);
help_snapshot!(lease_keep_alive, ["lease", "keep-alive"]);
help_snapshot!(lease_list, ["lease", "list"]);
help_snapshot!(lock, ["lock"]);
help_snapshot!(elect, ["elect"]);
help_snapshot!(member, ["member"]);
help_snapshot!(member_list, ["member", "list"]);
help_snapshot!(member_add, ["member", "add"]);
help_snapshot!(member_remove, ["member", "remove"]);
help_snapshot!(member_update, ["member", "update"]);
help_snapshot!(member_promote, ["member", "promote"]);
help_snapshot!(endpoint, ["endpoint"]);
help_snapshot!(endpoint_status, ["endpoint", "status"]);
help_snapshot!(endpoint_health, ["endpoint", "health"]);
help_snapshot!(endpoint_hashkv, ["endpoint", "hashkv"]);
help_snapshot!(snapshot, ["snapshot"]);
help_snapshot!(snapshot_save, ["snapshot", "save"]);
help_snapshot!(compaction, ["compaction"]);
help_snapshot!(move_leader, ["move-leader"]);
help_snapshot!(defrag, ["defrag"]);
help_snapshot!(alarm, ["alarm"]);
help_snapshot!(alarm_list, ["alarm", "list"]);
help_snapshot!(alarm_disarm, ["alarm", "disarm"]);
help_snapshot!(bench, ["bench"]);
help_snapshot!(bench_put, ["bench", "put"]);
help_snapshot!(bench_range, ["bench", "range"]);
help_snapshot!(bench_txn_put, ["bench", "txn-put"]);
help_snapshot!(bench_watch_latency, ["bench", "watch-latency"]);
help_snapshot!(bench_lease_keepalive, ["bench", "lease-keepalive"]);
help_snapshot!(bench_replication_floor, ["bench", "replication-floor"]);
