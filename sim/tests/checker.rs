//! The linearizability checker on small hand-made histories, and against a brute-force checker
//! on many small random ones.

use std::time::{Duration, Instant};

use sextant_sim::checker::{
    check, check_files_to, escape_html, explain, parse_jepsen_etcd, parse_jsonl,
    parse_porcupine_kv, write_jsonl, CheckOptions, HistoryRecorder, KvInput, KvModel, KvOutput,
    Model, OpId, Operation, ParseError, PorcupineKvModel, PorcupineKvUnpartitioned, RecordError,
    RegisterInput, RegisterModel, RegisterOutput, SharedHistoryRecorder, Verdict,
};

type RegOp = Operation<RegisterInput, RegisterOutput>;

fn write(client: u64, v: i64, call: u64, ret: u64) -> RegOp {
    Operation::completed(
        client,
        RegisterInput::Write(v),
        call,
        RegisterOutput::Write,
        ret,
    )
}

fn read(client: u64, v: Option<i64>, call: u64, ret: u64) -> RegOp {
    Operation::completed(
        client,
        RegisterInput::Read,
        call,
        RegisterOutput::Read(v),
        ret,
    )
}

fn cas(client: u64, from: i64, to: i64, ok: bool, call: u64, ret: u64) -> RegOp {
    Operation::completed(
        client,
        RegisterInput::Cas { from, to },
        call,
        RegisterOutput::Cas { ok },
        ret,
    )
}

fn verdict(history: &[RegOp]) -> Verdict {
    check(&RegisterModel, history, &CheckOptions::default()).verdict
}

#[test]
fn concurrent_writes_and_reads_are_linearizable() {
    // w1 and w2 overlap; a read during both may see either, and later reads agree.
    let h = vec![
        write(0, 1, 0, 10),
        write(1, 2, 1, 9),
        read(2, Some(1), 2, 3),
        read(2, Some(2), 11, 12),
        read(3, Some(2), 13, 14),
    ];
    let r = check(&RegisterModel, &h, &CheckOptions::default());
    assert_eq!(r.verdict, Verdict::Linearizable);
    assert_eq!(r.partitions.len(), 1);
    assert_eq!(r.partitions[0].linearization, vec![0, 2, 1, 3, 4]);
    assert!(r.partitions[0].unplaceable.is_empty());
    assert_eq!(r.partitions[0].blocking, None);
    assert_eq!(verdict(&[]), Verdict::Linearizable);
}

#[test]
fn stale_read_is_not_linearizable_and_explained() {
    let h = vec![write(0, 1, 0, 1), write(1, 2, 2, 3), read(2, Some(1), 4, 5)];
    let r = check(&RegisterModel, &h, &CheckOptions::default());
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let p = &r.partitions[0];
    assert_eq!(p.verdict, Verdict::NotLinearizable);
    // Both writes can be placed; the read cannot follow them.
    assert_eq!(p.linearization, vec![0, 1]);
    assert_eq!(p.unplaceable, vec![2]);
    assert_eq!(p.blocking, Some(2));

    // A read of a value never written, concurrent with everything.
    let h = vec![write(0, 1, 0, 10), read(1, Some(7), 1, 11)];
    let p = &check(&RegisterModel, &h, &CheckOptions::default()).partitions[0];
    assert_eq!(p.verdict, Verdict::NotLinearizable);
    assert_eq!(p.linearization, vec![0]);
    assert_eq!(p.unplaceable, vec![1]);
}

#[test]
fn failed_cas_means_the_compare_did_not_match() {
    // The register is nil: cas(0, 1) fails, and nothing changed.
    assert_eq!(
        verdict(&[cas(0, 0, 1, false, 0, 1), read(1, None, 2, 3)]),
        Verdict::Linearizable
    );
    // The register is 0 when the cas runs: it cannot fail.
    assert_eq!(
        verdict(&[write(0, 0, 0, 1), cas(1, 0, 1, false, 2, 3)]),
        Verdict::NotLinearizable
    );
    // ... unless a concurrent write changed it first.
    assert_eq!(
        verdict(&[
            write(0, 0, 0, 1),
            write(2, 5, 2, 6),
            cas(1, 0, 1, false, 3, 4),
            read(1, Some(5), 7, 8)
        ]),
        Verdict::Linearizable
    );
    // A successful cas must have matched.
    assert_eq!(
        verdict(&[write(0, 3, 0, 1), cas(1, 0, 1, true, 2, 3)]),
        Verdict::NotLinearizable
    );
    assert_eq!(
        verdict(&[
            write(0, 0, 0, 1),
            cas(1, 0, 1, true, 2, 3),
            read(0, Some(1), 4, 5)
        ]),
        Verdict::Linearizable
    );
}

#[test]
fn unknown_write_that_must_have_happened() {
    // Nobody else wrote 2, so the unknown write took effect before the read.
    let h = vec![
        write(0, 1, 0, 1),
        Operation::unknown(1, RegisterInput::Write(2), 2, Some(3)),
        read(2, Some(2), 10, 11),
    ];
    let r = check(&RegisterModel, &h, &CheckOptions::default());
    assert_eq!(r.verdict, Verdict::Linearizable);
    assert_eq!(r.partitions[0].linearization, vec![0, 1, 2]);
    // Even long after the client gave up (the request may still be in flight).
    let mut h2 = h.clone();
    h2[2] = read(2, Some(2), 1000, 1001);
    assert_eq!(verdict(&h2), Verdict::Linearizable);
    // But not before its call.
    let h3 = vec![
        write(0, 1, 0, 1),
        read(2, Some(2), 2, 3),
        Operation::unknown(1, RegisterInput::Write(2), 4, None),
    ];
    assert_eq!(verdict(&h3), Verdict::NotLinearizable);
}

#[test]
fn unknown_write_that_must_not_have_happened() {
    // The reads after the unknown write still see 1: it never took effect (or only later).
    let h = vec![
        write(0, 1, 0, 1),
        Operation::unknown(1, RegisterInput::Write(2), 2, None),
        read(2, Some(1), 3, 4),
        read(2, Some(1), 5, 6),
    ];
    let r = check(&RegisterModel, &h, &CheckOptions::default());
    assert_eq!(r.verdict, Verdict::Linearizable);
    // It took effect between the reads, then the value went back: not possible.
    let h = vec![
        write(0, 1, 0, 1),
        Operation::unknown(1, RegisterInput::Write(2), 2, None),
        read(2, Some(2), 3, 4),
        read(2, Some(1), 5, 6),
    ];
    assert_eq!(verdict(&h), Verdict::NotLinearizable);
    // An unknown cas applies only if it matched.
    let h = vec![
        write(0, 1, 0, 1),
        Operation::unknown(1, RegisterInput::Cas { from: 1, to: 3 }, 2, None),
        read(2, Some(3), 3, 4),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    let h = vec![
        write(0, 1, 0, 1),
        Operation::unknown(1, RegisterInput::Cas { from: 9, to: 3 }, 2, None),
        read(2, Some(3), 3, 4),
    ];
    assert_eq!(verdict(&h), Verdict::NotLinearizable);
    // A read that timed out constrains nothing.
    let h = vec![
        write(0, 1, 0, 1),
        Operation::unknown(1, RegisterInput::Read, 2, Some(3)),
        read(2, Some(1), 4, 5),
    ];
    let r = check(&RegisterModel, &h, &CheckOptions::default());
    assert_eq!(r.verdict, Verdict::Linearizable);
    assert_eq!(r.partitions[0].ops, vec![0, 1, 2]);
    assert_eq!(r.partitions[0].ignored, vec![1]);
    assert_eq!(
        r.partitions[0].linearization,
        vec![0, 2],
        "the timed-out read is left out"
    );
}

/// `n` writes of distinct values, all concurrent, then a read of a value nobody wrote: the
/// search has to try every order of the writes (about n·2^n configurations) before giving up.
fn pathological(n: u64) -> Vec<RegOp> {
    let mut h: Vec<RegOp> = (0..n).map(|i| write(i, i as i64 + 1, i, n + i)).collect();
    h.push(read(n, Some(0), 2 * n + 1, 2 * n + 2));
    h
}

#[test]
fn time_budget_gives_unknown() {
    let h = pathological(40);
    let start = Instant::now();
    let r = check(
        &RegisterModel,
        &h,
        &CheckOptions::with_budget(Duration::from_millis(200)),
    );
    let took = start.elapsed();
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(r.budget_exceeded);
    assert_eq!(r.partitions[0].verdict, Verdict::Unknown);
    assert!(
        took < Duration::from_secs(10),
        "the budget was not enforced: {took:?}"
    );
    // The partial linearization found so far is reported.
    assert_eq!(r.partitions[0].linearization.len(), 40);
    assert_eq!(r.partitions[0].blocking, Some(40));

    // The deterministic budget gives the same answer every time.
    let opts = CheckOptions {
        max_steps: Some(50_000),
        ..CheckOptions::default()
    };
    let a = check(&RegisterModel, &h, &opts);
    let b = check(&RegisterModel, &h, &opts);
    assert_eq!(a.verdict, Verdict::Unknown);
    assert_eq!(a, b);
    assert!(a.steps() <= 50_000);

    // Small enough, the same shape is decided.
    assert_eq!(verdict(&pathological(8)), Verdict::NotLinearizable);
}

#[test]
fn sextant_kv_model() {
    let put = |c, k: &str, v: &str, a, b| {
        Operation::completed(c, KvInput::put(k, v), a, KvOutput::Put, b)
    };
    let get = |c, k: &str, v: Option<&str>, a, b| {
        Operation::completed(
            c,
            KvInput::get(k),
            a,
            KvOutput::Get(v.map(str::to_string)),
            b,
        )
    };
    let del = |c, k: &str, d: Option<bool>, a, b| {
        Operation::completed(c, KvInput::delete(k), a, KvOutput::Delete { deleted: d }, b)
    };
    let cas = |c, k: &str, e: Option<&str>, n: &str, s: bool, a, b| {
        Operation::completed(c, KvInput::cas(k, e, n), a, KvOutput::Cas { swapped: s }, b)
    };
    let opts = CheckOptions::default();
    let ok = vec![
        get(0, "a", None, 0, 1),
        put(0, "a", "1", 2, 3),
        put(1, "b", "x", 2, 3),
        cas(1, "a", Some("1"), "2", true, 4, 5),
        cas(2, "a", None, "9", false, 4, 6),
        get(0, "a", Some("2"), 7, 8),
        del(0, "a", Some(true), 9, 10),
        del(1, "a", Some(false), 11, 12),
        cas(1, "a", None, "3", true, 13, 14),
        del(2, "b", None, 13, 14),
        get(0, "b", None, 15, 16),
    ];
    let r = check(&KvModel, &ok, &opts);
    assert_eq!(r.verdict, Verdict::Linearizable);
    let names: Vec<&str> = r.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["key \"a\"", "key \"b\""]);

    // Key "b" is fine; key "a" loses a write.
    let bad = vec![
        put(0, "b", "x", 0, 1),
        put(0, "a", "1", 0, 1),
        get(1, "b", Some("x"), 2, 3),
        get(1, "a", None, 2, 3),
    ];
    let r = check(&KvModel, &bad, &opts);
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    assert_eq!(r.partitions[0].verdict, Verdict::NotLinearizable);
    assert_eq!(r.partitions[1].verdict, Verdict::Linearizable);
    assert_eq!(
        r.failing_partitions()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        vec!["key \"a\""]
    );
    assert_eq!(r.partitions[0].linearization, vec![1]);
    assert_eq!(r.partitions[0].unplaceable, vec![3]);

    // delete reports whether the key existed.
    assert_eq!(
        check(&KvModel, &[del(0, "k", Some(true), 0, 1)], &opts).verdict,
        Verdict::NotLinearizable
    );
    // A cas that reports a mismatch while the value matched.
    let h = vec![
        put(0, "k", "v", 0, 1),
        cas(0, "k", Some("v"), "w", false, 2, 3),
    ];
    assert_eq!(check(&KvModel, &h, &opts).verdict, Verdict::NotLinearizable);
    // An unknown delete may have happened.
    let h = vec![
        put(0, "k", "v", 0, 1),
        Operation::unknown(1, KvInput::delete("k"), 2, Some(5)),
        get(0, "k", Some("v"), 3, 4),
        get(0, "k", None, 6, 7),
    ];
    assert_eq!(check(&KvModel, &h, &opts).verdict, Verdict::Linearizable);
    // A key touched only by a read that timed out.
    let h = vec![Operation::unknown(0, KvInput::get("q"), 0, Some(1))];
    let r = check(&KvModel, &h, &opts);
    assert_eq!(r.verdict, Verdict::Linearizable);
    assert_eq!(r.partitions[0].ignored, vec![0]);
    assert!(r.partitions[0].linearization.is_empty());
}

#[test]
fn porcupine_kv_models_agree() {
    let text = r#"{:process 0, :type :invoke, :f :put, :key "x", :value "a"}
{:process 1, :type :invoke, :f :append, :key "x", :value "b"}
{:process 0, :type :ok, :f :put, :key "x", :value "a"}
{:process 1, :type :ok, :f :append, :key "x", :value "b"}
{:process 2, :type :invoke, :f :get, :key "x", :value nil}
{:process 2, :type :ok, :f :get, :key "x", :value "ab"}
{:process 2, :type :invoke, :f :get, :key "y", :value nil}
{:process 2, :type :ok, :f :get, :key "y", :value ""}
"#;
    let h = parse_porcupine_kv("t.txt", text).unwrap();
    assert_eq!(h.len(), 4);
    assert_eq!(
        check(&PorcupineKvModel, &h, &CheckOptions::default()).verdict,
        Verdict::Linearizable
    );
    assert_eq!(
        check(&PorcupineKvUnpartitioned, &h, &CheckOptions::default()).verdict,
        Verdict::Linearizable
    );
    let bad = text.replace(":value \"ab\"", ":value \"ba\"");
    let h = parse_porcupine_kv("t.txt", &bad).unwrap();
    assert_eq!(
        check(&PorcupineKvModel, &h, &CheckOptions::default()).verdict,
        Verdict::NotLinearizable
    );
    assert_eq!(
        check(&PorcupineKvUnpartitioned, &h, &CheckOptions::default()).verdict,
        Verdict::NotLinearizable
    );
}

#[test]
fn jepsen_log_parsing() {
    let text = "INFO  jepsen.util - 0\t:invoke\t:write\t4\n\
                INFO  jepsen.util - 1\t:invoke\t:cas\t[4 5]\n\
                INFO  jepsen.util - 2   :invoke   :read   nil\n\
                INFO  jepsen.util - 0\t:ok\t:write\t4\n\
                INFO  jepsen.util - 1\t:info\t:cas\t:timed-out\n\
                INFO  jepsen.util - 2   :fail   :read   :timed-out\n\
                INFO  jepsen.util - 3\t:invoke\t:read\tnil\n\
                INFO  jepsen.util - 3\t:ok\t:read\t5\n\
                \n\
                INFO  jepsen.util - 4\t:invoke\t:cas\t[5 6]\n\
                INFO  jepsen.util - 4\t:fail\t:cas\t[5 6]\n";
    let h = parse_jepsen_etcd("x.log", text).unwrap();
    assert_eq!(h.len(), 5);
    assert_eq!(h[0], write(0, 4, 1, 4));
    assert_eq!(
        h[1],
        Operation::unknown(1, RegisterInput::Cas { from: 4, to: 5 }, 2, Some(5))
    );
    assert_eq!(h[2], Operation::unknown(2, RegisterInput::Read, 3, Some(6)));
    assert_eq!(h[3], read(3, Some(5), 7, 8));
    assert_eq!(h[4], cas(4, 5, 6, false, 10, 11));
    // The cas took effect, so the later failed cas(5, 6) is impossible... unless it ran first:
    // it did not, it was called after the read of 5.
    assert_eq!(verdict(&h), Verdict::NotLinearizable);

    let err = |t: &str| parse_jepsen_etcd("bad.log", t).unwrap_err();
    let e = err("INFO  jepsen.util - 0\t:invoke\t:write\t4\nhello\n");
    assert!(matches!(e, ParseError::Syntax { line: 2, .. }), "{e}");
    assert!(e.to_string().starts_with("bad.log:2: "), "{e}");
    let e = err("INFO  jepsen.util - 0\t:ok\t:write\t4\n");
    assert!(matches!(e, ParseError::Unmatched { line: 1, .. }), "{e}");
    let e = err(
        "INFO  jepsen.util - 0\t:invoke\t:write\t4\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n",
    );
    assert!(
        matches!(
            e,
            ParseError::AlreadyPending {
                line: 2,
                since: 1,
                ..
            }
        ),
        "{e}"
    );
    let e =
        err("INFO  jepsen.util - 0\t:invoke\t:write\t4\nINFO  jepsen.util - 0\t:ok\t:read\t4\n");
    assert!(
        matches!(
            e,
            ParseError::Mismatch {
                line: 2,
                call_line: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = err("INFO  jepsen.util - 0\t:invoke\t:cas\t[4\n");
    assert!(matches!(e, ParseError::Syntax { line: 1, .. }), "{e}");
    let e = err("INFO  jepsen.util - 0\t:invoke\t:write\tx\n");
    assert!(matches!(e, ParseError::Syntax { line: 1, .. }), "{e}");
}

#[test]
fn porcupine_kv_parse_errors() {
    let err = |t: &str| parse_porcupine_kv("kv.txt", t).unwrap_err();
    let e = err("{:process 0, :type :invoke, :f :get, :key \"x\", :value nil}\n{:process 0, :type :ok, :f :get\n");
    assert!(matches!(e, ParseError::Syntax { line: 2, .. }), "{e}");
    assert!(e.to_string().starts_with("kv.txt:2: "), "{e}");
    let e = err("{:process 0, :type :ok, :f :get, :key \"x\", :value \"\"}\n");
    assert!(matches!(e, ParseError::Unmatched { line: 1, .. }), "{e}");
    let e = err("{:process 0, :type :invoke, :f :get, :key \"x\", :value nil}\n{:process 0, :type :ok, :f :put, :key \"x\", :value \"\"}\n");
    assert!(
        matches!(
            e,
            ParseError::Mismatch {
                line: 2,
                call_line: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = err("{:process 0, :type :invoke, :f :frob, :key \"x\", :value nil}\n");
    assert!(matches!(e, ParseError::Syntax { line: 1, .. }), "{e}");
}

#[test]
fn recorder_and_json_lines_round_trip() {
    let mut rec = HistoryRecorder::new();
    assert!(rec.is_empty());
    let a = rec
        .call(1, 10, KvInput::put("k", "v \"quoted\" \n"))
        .unwrap();
    let b = rec.call(2, 10, KvInput::get("k")).unwrap();
    let c = rec.call(3, 11, KvInput::cas("k", None, "w")).unwrap();
    let d = rec.call(4, 12, KvInput::delete("k")).unwrap();
    rec.ret(a, 20, KvOutput::Put).unwrap();
    rec.ret(b, 21, KvOutput::Get(None)).unwrap();
    rec.ret(c, 22, KvOutput::Cas { swapped: false }).unwrap();
    rec.unknown(d, 30, "timeout").unwrap();
    let e = rec.call(1, 31, KvInput::put("other", "x")).unwrap();
    rec.fail(e, 32, "not leader").unwrap();
    let f = rec.call(1, 33, KvInput::get("k")).unwrap();
    // never completed

    // Misuse is refused.
    assert_eq!(
        rec.ret(a, 40, KvOutput::Put),
        Err(RecordError::AlreadyCompleted(a))
    );
    assert_eq!(
        rec.ret(OpId(99), 40, KvOutput::Put),
        Err(RecordError::UnknownOp(OpId(99)))
    );
    assert_eq!(
        rec.ret(f, 40, KvOutput::Put),
        Err(RecordError::WrongOutput {
            op: f,
            input: "get",
            output: "put"
        })
    );
    assert_eq!(
        rec.ret(f, 5, KvOutput::Get(None)),
        Err(RecordError::TimeWentBack { t: 5, previous: 33 })
    );
    assert_eq!(
        rec.call(0, 1, KvInput::get("k")),
        Err(RecordError::TimeWentBack { t: 1, previous: 33 })
    );
    assert_eq!(rec.len(), 11);

    let history = rec.history();
    assert_eq!(history.len(), 5, "the failed put is left out");
    assert!(history[3].is_unknown() && history[3].ret == Some(30));
    assert!(history[4].is_unknown() && history[4].ret.is_none());

    let jsonl = rec.to_jsonl();
    let first = jsonl.lines().next().unwrap();
    assert_eq!(
        first,
        r#"{"client":1,"op":0,"kind":"call","t":10,"f":"put","key":"k","value":"v \"quoted\" \n"}"#
    );
    assert!(
        jsonl.contains(r#"{"client":2,"op":1,"kind":"return","t":21,"f":"get","value":null}"#),
        "{jsonl}"
    );
    assert!(jsonl.contains(
        r#"{"client":3,"op":2,"kind":"call","t":11,"f":"cas","key":"k","expected":null,"new":"w"}"#
    ));
    assert!(jsonl
        .contains(r#"{"client":4,"op":3,"kind":"unknown","t":30,"f":"delete","error":"timeout"}"#));
    assert!(jsonl
        .contains(r#"{"client":1,"op":4,"kind":"fail","t":32,"f":"put","error":"not leader"}"#));
    let parsed = parse_jsonl("h.jsonl", &jsonl).unwrap();
    assert_eq!(parsed, history);

    // A history written by `write_jsonl` reads back the same.
    let mut out = Vec::new();
    write_jsonl(&mut out, &history).unwrap();
    assert_eq!(
        parse_jsonl("h2.jsonl", &String::from_utf8(out).unwrap()).unwrap(),
        history
    );

    assert_eq!(
        rec.check(&CheckOptions::default()).verdict,
        Verdict::Linearizable
    );

    // The shared recorder is the same thing behind a mutex.
    let shared = SharedHistoryRecorder::new();
    let s2 = shared.clone();
    let op = shared.call(7, 1, KvInput::get("z")).unwrap();
    s2.ret(op, 2, KvOutput::Get(Some("nope".into()))).unwrap();
    assert_eq!(
        shared.snapshot().check(&CheckOptions::default()).verdict,
        Verdict::NotLinearizable
    );
}

#[test]
fn json_lines_errors_name_the_line() {
    let err = |t: &str| parse_jsonl("h.jsonl", t).unwrap_err();
    let call = r#"{"client":1,"op":1,"kind":"call","t":5,"f":"get","key":"k"}"#;
    let e = err(&format!("{call}\nnot json\n"));
    assert!(matches!(e, ParseError::Json { line: 2, .. }), "{e}");
    assert!(e.to_string().starts_with("h.jsonl:2: "), "{e}");
    let e = err(&format!(
        "{call}\n{{\"client\":1,\"op\":1,\"kind\":\"return\",\"t\":6}}\n"
    ));
    assert!(
        matches!(e, ParseError::Syntax { line: 2, .. }),
        "a get return needs a value: {e}"
    );
    let e = err(&format!(
        "{call}\n{{\"client\":1,\"op\":1,\"kind\":\"return\",\"t\":4,\"value\":null}}\n"
    ));
    assert!(
        matches!(
            e,
            ParseError::TimeWentBack {
                line: 2,
                t: 4,
                previous: 5,
                ..
            }
        ),
        "{e}"
    );
    let e = err(r#"{"client":1,"op":2,"kind":"return","t":6,"value":null}"#);
    assert!(matches!(e, ParseError::Unmatched { line: 1, .. }), "{e}");
    let e = err(&format!("{call}\n{call}\n"));
    assert!(
        matches!(
            e,
            ParseError::AlreadyPending {
                line: 2,
                since: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = err(&format!(
        "{call}\n{{\"client\":1,\"op\":1,\"kind\":\"return\",\"t\":6,\"f\":\"put\"}}\n"
    ));
    assert!(
        matches!(
            e,
            ParseError::Mismatch {
                line: 2,
                call_line: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = err(&format!(
        "{call}\n{{\"client\":2,\"op\":1,\"kind\":\"return\",\"t\":6,\"value\":null}}\n"
    ));
    assert!(matches!(e, ParseError::Mismatch { line: 2, .. }), "{e}");
    let e = err(r#"{"client":1,"op":1,"kind":"call","t":5,"f":"frob","key":"k"}"#);
    assert!(matches!(e, ParseError::Syntax { line: 1, .. }), "{e}");
    let e = err(r#"{"client":1,"op":1,"kind":"call","t":5,"f":"put","key":"k"}"#);
    assert!(
        matches!(e, ParseError::Syntax { line: 1, .. }),
        "a put needs a value: {e}"
    );
    let e = err(r#"{"client":1,"op":1,"kind":"later","t":5}"#);
    assert!(matches!(e, ParseError::Json { line: 1, .. }), "{e}");
    // Blank lines and unknown fields are fine.
    let h = parse_jsonl("ok.jsonl", &format!("\n{call}\n\n{{\"client\":1,\"op\":1,\"kind\":\"return\",\"t\":6,\"value\":\"v\",\"node\":3}}\n"))
        .unwrap();
    assert_eq!(
        h,
        vec![Operation::completed(
            1,
            KvInput::get("k"),
            5,
            KvOutput::Get(Some("v".into())),
            6
        )]
    );
}

#[test]
fn html_visualization_is_self_contained_and_escaped() {
    let h = vec![
        Operation::completed(
            1,
            KvInput::put("<k&>", "</script><b>\"'"),
            0,
            KvOutput::Put,
            1,
        ),
        Operation::completed(2, KvInput::get("<k&>"), 2, KvOutput::Get(None), 3),
        Operation::unknown(3, KvInput::put("<k&>", "z"), 2, None),
        Operation::completed(1, KvInput::put("ok", "1"), 0, KvOutput::Put, 1),
    ];
    let r = check(&KvModel, &h, &CheckOptions::default());
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let e = explain(&KvModel, &h, &r, "title <t>");
    assert_eq!(e.partitions.len(), 2);
    let p = &e.partitions[0];
    // The put, then the unknown put (it may have happened), then the get cannot follow.
    assert_eq!(p.linearization.len(), 2);
    assert_eq!(p.linearization[0].state_after, "\"</script><b>\\\"'\"");
    let html = e.to_html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("title &lt;t&gt;"));
    assert!(html.contains("&lt;/script&gt;&lt;b&gt;"));
    assert!(!html.contains("</script><b>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network"
    );
    assert!(
        !html.contains("<link") && !html.contains("src="),
        "nothing external"
    );
    assert!(html.contains("not linearizable"));
    for i in 0..4 {
        assert!(html.contains(&format!("data-op=\"{i}\"")), "op {i} shown");
    }
    assert!(
        html.contains("class=\"op unplaceable blocking\""),
        "the failing get is highlighted"
    );
    assert_eq!(escape_html("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
}

#[test]
fn check_files_prints_verdicts_and_writes_html() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("checker-cli");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.jsonl");
    let bad = dir.join("bad.log");
    let broken = dir.join("broken.jsonl");
    let mut rec = HistoryRecorder::new();
    let op = rec.call(0, 1, KvInput::put("k", "v")).unwrap();
    rec.ret(op, 2, KvOutput::Put).unwrap();
    std::fs::write(&good, rec.to_jsonl()).unwrap();
    std::fs::write(
        &bad,
        "INFO  jepsen.util - 0\t:invoke\t:write\t4\nINFO  jepsen.util - 0\t:ok\t:write\t4\n\
         INFO  jepsen.util - 1\t:invoke\t:read\tnil\nINFO  jepsen.util - 1\t:ok\t:read\t5\n",
    )
    .unwrap();
    std::fs::write(&broken, "{\"client\":1}\n").unwrap();
    let out_dir = dir.join("out");
    let mut printed = Vec::new();
    let reports = check_files_to(
        &[good.clone(), bad.clone(), broken.clone()],
        &out_dir,
        Duration::from_secs(10),
        &mut printed,
    )
    .unwrap();
    let printed = String::from_utf8(printed).unwrap();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 3, "{printed}");
    assert_eq!(lines[0], format!("{}: linearizable", good.display()));
    assert!(
        lines[1].starts_with(&format!("{}: not linearizable", bad.display())),
        "{printed}"
    );
    assert!(
        lines[2].starts_with(&format!("{}: error: ", broken.display())),
        "{printed}"
    );
    assert!(matches!(
        reports[0].outcome,
        Ok((Verdict::Linearizable, None))
    ));
    let html = match &reports[1].outcome {
        Ok((Verdict::NotLinearizable, Some(html))) => html.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(html, out_dir.join("bad.log.html"));
    assert!(std::fs::read_to_string(&html).unwrap().contains("read → 5"));
    assert!(reports[2].outcome.is_err());
}

#[test]
fn results_are_deterministic() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/porcupine/kv/c10-bad.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "Porcupine corpus file {}: {e} (the project's shared/ folder must sit beside the repository)",
            path.display()
        )
    });
    let h = parse_porcupine_kv("c10-bad.txt", &text).unwrap();
    let a = check(&PorcupineKvModel, &h, &CheckOptions::default());
    let b = check(
        &PorcupineKvModel,
        &h,
        &CheckOptions {
            budget: Some(Duration::from_secs(100)),
            ..Default::default()
        },
    );
    assert_eq!(a, b);
    let exhaustive = check(
        &PorcupineKvModel,
        &h,
        &CheckOptions {
            exhaustive: true,
            ..Default::default()
        },
    );
    assert_eq!(exhaustive.verdict, Verdict::NotLinearizable);
    assert!(exhaustive
        .partitions
        .iter()
        .all(|p| p.verdict != Verdict::Unknown));
}

// ---------------------------------------------------------------------------------------------
// Against a brute-force checker.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Tries every order: an operation can come next if no remaining operation returned before
/// its call; an operation with an unknown outcome may also never happen.
fn brute_force<M: Model>(model: &M, h: &[Operation<M::Input, M::Output>]) -> bool {
    fn go<M: Model>(
        model: &M,
        h: &[Operation<M::Input, M::Output>],
        left: &mut Vec<usize>,
        state: &M::State,
    ) -> bool {
        if left.iter().all(|&i| h[i].output.is_none()) {
            return true;
        }
        for k in 0..left.len() {
            let i = left[k];
            let blocked = left
                .iter()
                .any(|&j| h[j].output.is_some() && h[j].ret.unwrap() < h[i].call);
            if blocked {
                continue;
            }
            if let Some(next) = model.step(state, &h[i].input, h[i].output.as_ref()) {
                left.remove(k);
                let ok = go(model, h, left, &next);
                left.insert(k, i);
                if ok {
                    return true;
                }
            }
            if h[i].output.is_none() {
                // It never happens.
                left.remove(k);
                let ok = go(model, h, left, state);
                left.insert(k, i);
                if ok {
                    return true;
                }
            }
        }
        false
    }
    go(model, h, &mut (0..h.len()).collect(), &model.init())
}

/// How many random histories each brute-force comparison tries (`CHECKER_FUZZ_ITERS`).
fn fuzz_iters() -> usize {
    std::env::var("CHECKER_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn random_interval(rng: &mut Rng, client_free: &mut [u64], client: usize) -> (u64, u64) {
    let call = client_free[client] + rng.below(4);
    let ret = call + rng.below(6);
    client_free[client] = ret + 1;
    (call, ret)
}

#[test]
fn register_agrees_with_brute_force() {
    let mut rng = Rng(1);
    let mut seen = [0usize; 2];
    for _ in 0..fuzz_iters() {
        let n = 1 + rng.below(8) as usize;
        let clients = 1 + rng.below(4) as usize;
        let mut free = vec![0u64; clients];
        let mut h = Vec::new();
        for _ in 0..n {
            let c = rng.below(clients as u64) as usize;
            let (call, ret) = random_interval(&mut rng, &mut free, c);
            let v = |rng: &mut Rng| rng.below(3) as i64;
            let (input, output) = match rng.below(3) {
                0 => {
                    let r = match rng.below(4) {
                        0 => None,
                        _ => Some(v(&mut rng)),
                    };
                    (RegisterInput::Read, RegisterOutput::Read(r))
                }
                1 => (RegisterInput::Write(v(&mut rng)), RegisterOutput::Write),
                _ => (
                    RegisterInput::Cas {
                        from: v(&mut rng),
                        to: v(&mut rng),
                    },
                    RegisterOutput::Cas {
                        ok: rng.below(2) == 0,
                    },
                ),
            };
            let op = if rng.below(5) == 0 {
                let gave_up = (rng.below(2) == 0).then_some(ret);
                Operation::unknown(c as u64, input, call, gave_up)
            } else {
                Operation::completed(c as u64, input, call, output, ret)
            };
            h.push(op);
        }
        let want = brute_force(&RegisterModel, &h);
        let got = check(&RegisterModel, &h, &CheckOptions::default());
        assert_eq!(
            got.verdict == Verdict::Linearizable,
            want,
            "history: {h:#?}\nresult: {got:#?}"
        );
        seen[usize::from(want)] += 1;
    }
    assert!(
        seen[0] > 300 && seen[1] > 300,
        "both verdicts exercised: {seen:?}"
    );
}

#[test]
fn sextant_kv_agrees_with_brute_force() {
    let mut rng = Rng(2);
    let mut seen = [0usize; 2];
    let vals = ["a", "b"];
    for _ in 0..fuzz_iters() {
        let n = 1 + rng.below(8) as usize;
        let clients = 1 + rng.below(4) as usize;
        let mut free = vec![0u64; clients];
        let mut h = Vec::new();
        for _ in 0..n {
            let c = rng.below(clients as u64) as usize;
            let (call, ret) = random_interval(&mut rng, &mut free, c);
            let key = if rng.below(4) == 0 { "y" } else { "x" };
            let val = |rng: &mut Rng| vals[rng.below(2) as usize];
            let opt = |rng: &mut Rng| {
                if rng.below(3) == 0 {
                    None
                } else {
                    Some(vals[rng.below(2) as usize].to_string())
                }
            };
            let (input, output) = match rng.below(4) {
                0 => (KvInput::get(key), KvOutput::Get(opt(&mut rng))),
                1 => (KvInput::put(key, val(&mut rng)), KvOutput::Put),
                2 => {
                    let deleted = match rng.below(3) {
                        0 => None,
                        1 => Some(true),
                        _ => Some(false),
                    };
                    (KvInput::delete(key), KvOutput::Delete { deleted })
                }
                _ => {
                    let e = opt(&mut rng);
                    (
                        KvInput::cas(key, e.as_deref(), val(&mut rng)),
                        KvOutput::Cas {
                            swapped: rng.below(2) == 0,
                        },
                    )
                }
            };
            let op = if rng.below(5) == 0 {
                Operation::unknown(c as u64, input, call, None)
            } else {
                Operation::completed(c as u64, input, call, output, ret)
            };
            h.push(op);
        }
        // The brute force does not partition: this also checks P-compositionality.
        struct Whole;
        impl Model for Whole {
            type Input = KvInput;
            type Output = KvOutput;
            type State = Vec<(String, Option<String>)>;
            fn init(&self) -> Self::State {
                vec![("x".into(), None), ("y".into(), None)]
            }
            fn step(
                &self,
                s: &Self::State,
                i: &KvInput,
                o: Option<&KvOutput>,
            ) -> Option<Self::State> {
                let k = s.iter().position(|(k, _)| k == i.key()).unwrap();
                let v = KvModel.step(&s[k].1, i, o)?;
                let mut s = s.clone();
                s[k].1 = v;
                Some(s)
            }
        }
        let want = brute_force(&Whole, &h);
        let got = check(&KvModel, &h, &CheckOptions::default());
        assert_eq!(
            got.verdict == Verdict::Linearizable,
            want,
            "history: {h:#?}\nresult: {got:#?}"
        );
        seen[usize::from(want)] += 1;
    }
    assert!(
        seen[0] > 300 && seen[1] > 300,
        "both verdicts exercised: {seen:?}"
    );
}

/// An independent reference for larger histories: a memoized search over (set of linearized
/// operations, state), with none of the checker's list structure, observer rule or ordering.
fn reference<M: Model>(model: &M, h: &[Operation<M::Input, M::Output>]) -> bool {
    use std::collections::HashSet;
    fn go<M: Model>(
        model: &M,
        h: &[Operation<M::Input, M::Output>],
        done: u64,
        state: &M::State,
        seen: &mut HashSet<(u64, M::State)>,
    ) -> bool {
        let pending_known = |i: usize| done & (1 << i) == 0 && h[i].output.is_some();
        if (0..h.len()).all(|i| !pending_known(i)) {
            return true;
        }
        if !seen.insert((done, state.clone())) {
            return false;
        }
        for i in 0..h.len() {
            if done & (1 << i) != 0 {
                continue;
            }
            if (0..h.len()).any(|j| pending_known(j) && h[j].ret.unwrap() < h[i].call) {
                continue;
            }
            if let Some(next) = model.step(state, &h[i].input, h[i].output.as_ref()) {
                if go(model, h, done | (1 << i), &next, seen) {
                    return true;
                }
            }
        }
        false
    }
    assert!(h.len() <= 64);
    go(model, h, 0, &model.init(), &mut HashSet::new())
}

#[test]
fn register_agrees_with_reference_on_larger_histories() {
    let mut rng = Rng(3);
    let mut seen = [0usize; 2];
    for _ in 0..fuzz_iters() / 3 {
        let n = 8 + rng.below(13) as usize;
        let clients = 2 + rng.below(5) as usize;
        let mut free = vec![0u64; clients];
        let mut h = Vec::new();
        for _ in 0..n {
            let c = rng.below(clients as u64) as usize;
            let (call, ret) = random_interval(&mut rng, &mut free, c);
            let v = |rng: &mut Rng| rng.below(3) as i64;
            let (input, output) = match rng.below(3) {
                0 => {
                    let r = if rng.below(6) == 0 {
                        None
                    } else {
                        Some(v(&mut rng))
                    };
                    (RegisterInput::Read, RegisterOutput::Read(r))
                }
                1 => (RegisterInput::Write(v(&mut rng)), RegisterOutput::Write),
                _ => (
                    RegisterInput::Cas {
                        from: v(&mut rng),
                        to: v(&mut rng),
                    },
                    RegisterOutput::Cas {
                        ok: rng.below(2) == 0,
                    },
                ),
            };
            h.push(if rng.below(4) == 0 {
                // A client that gives up moves on (a new client id, as in Jepsen).
                free[c] = call + 1;
                Operation::unknown(c as u64, input, call, Some(ret))
            } else {
                Operation::completed(c as u64, input, call, output, ret)
            });
        }
        let want = reference(&RegisterModel, &h);
        let got = check(&RegisterModel, &h, &CheckOptions::default());
        assert_eq!(
            got.verdict == Verdict::Linearizable,
            want,
            "history: {h:#?}\nresult: {got:#?}"
        );
        seen[usize::from(want)] += 1;
    }
    assert!(
        seen[0] > 50 && seen[1] > 50,
        "both verdicts exercised: {seen:?}"
    );
}

#[test]
fn documented_json_lines_example_parses() {
    // The example of the module documentation.
    let text = r#"{"client":3,"op":7,"kind":"call","t":1234,"f":"put","key":"k","value":"v"}
{"client":1,"op":8,"kind":"call","t":1250,"f":"get","key":"k"}
{"client":3,"op":7,"kind":"return","t":1300,"f":"put"}
{"client":1,"op":8,"kind":"return","t":1310,"f":"get","value":"v"}
{"client":2,"op":9,"kind":"call","t":1400,"f":"cas","key":"k","expected":null,"new":"w"}
{"client":2,"op":9,"kind":"return","t":1420,"f":"cas","swapped":false}
{"client":4,"op":10,"kind":"call","t":1500,"f":"delete","key":"k"}
{"client":4,"op":10,"kind":"unknown","t":2500,"f":"delete","error":"timeout"}
"#;
    let h = parse_jsonl("example.jsonl", text).unwrap();
    assert_eq!(h.len(), 4);
    assert_eq!(h[2].input, KvInput::cas("k", None, "w"));
    assert_eq!(
        h[3],
        Operation::unknown(4, KvInput::delete("k"), 1500, Some(2500))
    );
    assert_eq!(
        check(&KvModel, &h, &CheckOptions::default()).verdict,
        Verdict::Linearizable
    );
}
