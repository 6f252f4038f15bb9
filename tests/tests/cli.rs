//! The `sextant` client subcommands against a real single-member server: what they print
//! (etcdctl's simple and json output), their errors, and endpoint fail-over. These cover what
//! the server serves today: KV (Range/Put/DeleteRange/Txn/Compact) and Maintenance.Status.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sextant_tests::cli::{ctl, ctl_ok, single};
use sextant_tests::free_port;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not json ({e}): {s}"))
}

fn b64(s: &str) -> String {
    BASE64.encode(s)
}

#[test]
fn put_get_del_print_like_etcdctl() {
    let (_c, ep) = single();
    assert_eq!(ctl_ok(&ep, &["put", "foo", "bar"]), "OK\n");
    assert_eq!(ctl_ok(&ep, &["put", "foo1", "bar1"]), "OK\n");
    assert_eq!(ctl_ok(&ep, &["put", "zoo", "z"]), "OK\n");
    // The value comes from stdin when omitted.
    let out = ctl(&ep, &["put", "stdin-key"], "from stdin");
    assert_eq!(
        (out.stdout.as_str(), out.code),
        ("OK\n", Some(0)),
        "{out:?}"
    );
    assert_eq!(
        ctl_ok(&ep, &["get", "stdin-key"]),
        "stdin-key\nfrom stdin\n"
    );

    assert_eq!(ctl_ok(&ep, &["get", "foo"]), "foo\nbar\n");
    assert_eq!(ctl_ok(&ep, &["get", "missing"]), "");
    assert_eq!(
        ctl_ok(&ep, &["get", "--prefix", "foo"]),
        "foo\nbar\nfoo1\nbar1\n"
    );
    assert_eq!(
        ctl_ok(&ep, &["get", "foo", "zoo"]),
        "foo\nbar\nfoo1\nbar1\nstdin-key\nfrom stdin\n"
    );
    assert_eq!(
        ctl_ok(&ep, &["get", "--from-key", "stdin"]),
        "stdin-key\nfrom stdin\nzoo\nz\n"
    );
    assert_eq!(
        ctl_ok(&ep, &["get", "--prefix", "foo", "--print-value-only"]),
        "bar\nbar1\n"
    );
    assert_eq!(
        ctl_ok(&ep, &["get", "--prefix", "foo", "--keys-only"]),
        "foo\n\nfoo1\n\n"
    );
    assert_eq!(
        ctl_ok(&ep, &["get", "--prefix", "foo", "--count-only"]),
        "2\n"
    );
    assert_eq!(
        ctl_ok(
            &ep,
            &[
                "get",
                "--prefix",
                "",
                "--limit",
                "2",
                "--sort-by",
                "KEY",
                "--order",
                "DESCEND"
            ]
        ),
        "zoo\nz\nstdin-key\nfrom stdin\n"
    );
    assert_eq!(
        ctl_ok(&ep, &["get", "foo", "--consistency", "s"]),
        "foo\nbar\n"
    );

    // Revisions: foo was created at revision 2; overwrite it and read the old value.
    assert_eq!(
        ctl_ok(&ep, &["put", "foo", "baz", "--prev-kv"]),
        "OK\nfoo\nbar\n"
    );
    assert_eq!(ctl_ok(&ep, &["get", "foo", "--rev", "2"]), "foo\nbar\n");
    assert_eq!(ctl_ok(&ep, &["get", "foo"]), "foo\nbaz\n");

    assert_eq!(ctl_ok(&ep, &["del", "zoo"]), "1\n");
    assert_eq!(ctl_ok(&ep, &["del", "zoo"]), "0\n");
    assert_eq!(
        ctl_ok(&ep, &["del", "--prefix", "foo", "--prev-kv"]),
        "2\nfoo\nbaz\nfoo1\nbar1\n"
    );
    assert_eq!(ctl_ok(&ep, &["get", "--prefix", "foo"]), "");
}

#[test]
fn bad_input_is_an_error_on_stderr() {
    let (_c, ep) = single();
    let out = ctl(&ep, &["get", "a", "--prefix", "--from-key"], "");
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "Error: `--prefix` and `--from-key` cannot be set at the same time, choose one\n"
    );
    let out = ctl(&ep, &["put", "k", "v", "--ignore-value"], "");
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr, "Error: value is provided with --ignore-value\n");
    // The server's refusal, in etcd's words.
    let out = ctl(&ep, &["put", "nokey", "--ignore-value"], "");
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr, "Error: etcdserver: key not found\n");
    let out = ctl(&ep, &["get", "k", "--rev", "1000"], "");
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        "Error: etcdserver: mvcc: required revision is a future revision\n"
    );
    // Usage errors come from the flag parser, with its status 2.
    let out = ctl(&ep, &["get"], "");
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("<KEY>"), "{out:?}");
}

#[test]
fn json_output_is_the_response_with_etcd_field_names() {
    let (_c, ep) = single();
    let put = json(&ctl_ok(&ep, &["put", "k1", "v1", "-w", "json"]));
    let header = &put["header"];
    assert!(
        header["cluster_id"].as_u64().is_some_and(|v| v != 0),
        "{put}"
    );
    assert!(
        header["member_id"].as_u64().is_some_and(|v| v != 0),
        "{put}"
    );
    assert_eq!(header["revision"], 2);
    assert!(header["raft_term"].as_u64().is_some());
    ctl_ok(&ep, &["put", "k2", "v2"]);

    // Global flags may also come first, as with etcdctl.
    let out = ctl(&ep, &["-w", "json", "get", "--prefix", "k"], "");
    assert!(out.ok(), "{out:?}");
    let got = json(&out.stdout);
    assert_eq!(got["count"], 2);
    assert_eq!(got["header"]["revision"], 3);
    let kvs = got["kvs"].as_array().expect("kvs");
    assert_eq!(kvs[0]["key"], b64("k1"));
    assert_eq!(kvs[0]["value"], b64("v1"));
    assert_eq!(kvs[0]["create_revision"], 2);
    assert_eq!(kvs[0]["mod_revision"], 2);
    assert_eq!(kvs[0]["version"], 1);
    assert!(
        kvs[0].get("lease").is_none(),
        "zero fields are omitted: {got}"
    );
    assert!(got.get("more").is_none(), "{got}");

    let del = json(&ctl_ok(&ep, &["del", "k1", "-w", "json"]));
    assert_eq!(del["deleted"], 1);
    let none = json(&ctl_ok(&ep, &["get", "k1", "-w", "json"]));
    assert!(
        none.get("kvs").is_none() && none.get("count").is_none(),
        "{none}"
    );
}

#[test]
fn txn_reads_etcdctl_syntax() {
    let (_c, ep) = single();
    ctl_ok(&ep, &["put", "key1", "v1"]);
    let txn = "mod(\"key1\") > \"0\"\nvalue(\"key1\") = \"v1\"\n\nput key1 \"over write\"\nget key1\n\nput key1 failed\n";
    let out = ctl(&ep, &["txn"], txn);
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stdout, "SUCCESS\n\nOK\n\nkey1\nover write\n");
    // Now the compare fails and the failure branch runs.
    let out = ctl(&ep, &["txn"], txn);
    assert_eq!(out.stdout, "FAILURE\n\nOK\n", "{out:?}");
    assert_eq!(ctl_ok(&ep, &["get", "key1"]), "key1\nfailed\n");

    // From a file, with json output.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("txn.txt");
    std::fs::write(&file, "version(\"key1\") = \"3\"\n\ndel key1\n\n").expect("write");
    let out = ctl(
        &ep,
        &["txn", "--file", file.to_str().expect("utf8"), "-w", "json"],
        "",
    );
    assert!(out.ok(), "{out:?}");
    let v = json(&out.stdout);
    assert_eq!(v["succeeded"], true);
    assert_eq!(
        v["responses"][0]["Response"]["response_delete_range"]["deleted"],
        1
    );

    // Interactive mode prompts for each section.
    let out = ctl(&ep, &["txn", "-i"], "\nput a 1\n\n\n");
    assert_eq!(
        out.stdout,
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n",
        "{out:?}"
    );

    let out = ctl(&ep, &["txn"], "mod(\"key1\") >= \"0\"\n\n");
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        "Error: line 1: malformed comparison: mod(\"key1\") >= \"0\" (unknown operator \">=\", want =, !=, < or >)\n"
    );
    let out = ctl(&ep, &["txn"], "\nupsert k v\n");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .starts_with("Error: line 2: invalid txn request: upsert k v ("),
        "{out:?}"
    );
}

#[test]
fn compaction_discards_old_revisions() {
    let (_c, ep) = single();
    ctl_ok(&ep, &["put", "k", "a"]); // revision 2
    ctl_ok(&ep, &["put", "k", "b"]); // revision 3
    ctl_ok(&ep, &["put", "k", "c"]); // revision 4
    assert_eq!(ctl_ok(&ep, &["get", "k", "--rev", "2"]), "k\na\n");
    assert_eq!(ctl_ok(&ep, &["compaction", "3"]), "compacted revision 3\n");
    let out = ctl(&ep, &["get", "k", "--rev", "2"], "");
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
    assert_eq!(ctl_ok(&ep, &["get", "k", "--rev", "3"]), "k\nb\n");
    let out = ctl(&ep, &["compaction", "3"], "");
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
    assert_eq!(
        ctl_ok(&ep, &["compaction", "4", "--physical"]),
        "compacted revision 4\n"
    );
}

#[test]
fn endpoint_status_prints_etcdctl_rows() {
    let (_c, ep) = single();
    ctl_ok(&ep, &["put", "k", "v"]);
    let out = ctl_ok(&ep, &["endpoint", "status"]);
    let fields: Vec<&str> = out.trim_end_matches('\n').split(", ").collect();
    // endpoint, ID, version, db size, is leader, is learner, raft term, raft index,
    // raft applied index, errors
    assert_eq!(fields.len(), 10, "{out:?}");
    assert_eq!(fields[0], ep);
    assert!(u64::from_str_radix(fields[1], 16).is_ok(), "{out:?}");
    assert_eq!(fields[2], "3.5.0");
    assert!(fields[3].ends_with('B'), "{out:?}");
    assert_eq!((fields[4], fields[5]), ("true", "false"));
    let index: u64 = fields[7].parse().expect("raft index");
    let applied: u64 = fields[8].parse().expect("applied index");
    assert!(index >= 2 && applied <= index, "{out:?}");
    assert_eq!(fields[9], "");

    let v = json(&ctl_ok(&ep, &["endpoint", "status", "-w", "json"]));
    let first = &v[0];
    assert_eq!(first["Endpoint"], ep.as_str());
    assert_eq!(first["Status"]["version"], "3.5.0");
    assert_eq!(
        first["Status"]["leader"],
        first["Status"]["header"]["member_id"]
    );
    assert!(first["Status"]["raftIndex"].as_u64().is_some(), "{v}");
}

#[test]
fn unreachable_endpoints_are_skipped_then_reported() {
    let (_c, ep) = single();
    let dead = format!("127.0.0.1:{}", free_port(std::net::Ipv4Addr::LOCALHOST));
    ctl_ok(&ep, &["put", "k", "v"]);
    // The first endpoint refuses connections; the second answers.
    let both = format!("{dead},{ep}");
    assert_eq!(ctl_ok(&both, &["get", "k"]), "k\nv\n");
    let out = ctl(&dead, &["get", "k", "--dial-timeout", "1s"], "");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.starts_with(&format!(
            "Error: cannot connect to any endpoint (http://{dead}: "
        )),
        "{out:?}"
    );
}
