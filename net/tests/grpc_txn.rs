//! etcd v3 `KV.Txn` and `KV.Compact` over a real gRPC connection to a real single-member
//! server (file storage in a temp dir, 127.0.0.1, ephemeral ports), with etcd 3.5's answers:
//! compare-and-swap, nested txns, ranges seeing the txn's earlier writes, compares on missing
//! keys and missing compare values, the request checks (`v3rpc/key.go`) and their gRPC codes
//! and messages (`rpctypes/error.go`), compaction errors, the request size limit, and read-only
//! txns served without the log.

#![cfg(not(madsim))]

mod common;

use std::fmt::Write as _;

use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use sextant_net::grpc::pb::etcdserverpb::kv_client::KvClient;
use sextant_net::grpc::pb::etcdserverpb::request_op::Request;
use sextant_net::grpc::pb::etcdserverpb::response_op::Response;
use sextant_net::grpc::pb::mvccpb;
use sextant_net::server::{Server, ServerConfig};
use tonic::transport::Channel;
use tonic::Code;

/// A running single-member server and a client connected to it.
struct Node {
    server: Server,
    kv: KvClient<Channel>,
    _dir: tempfile::TempDir,
}

const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

async fn start() -> Node {
    start_with(DEFAULT_MAX_REQUEST_BYTES).await
}

async fn start_with(max_request_bytes: usize) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = ServerConfig {
        max_request_bytes,
        ..common::single_member_config(dir.path().join("data"), "grpc-txn-test")
    };
    let server = Server::start(cfg).await.expect("server starts");
    let addr = server.client_addrs[0];
    let kv = KvClient::connect(format!("http://{addr}"))
        .await
        .expect("client connects")
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    Node {
        server,
        kv,
        _dir: dir,
    }
}

impl Node {
    async fn put(&mut self, k: &str, v: &str) -> i64 {
        let r = self
            .kv
            .put(pb::PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            })
            .await
            .expect("put")
            .into_inner();
        r.header.expect("header").revision
    }

    async fn txn(&mut self, t: pb::TxnRequest) -> Result<pb::TxnResponse, tonic::Status> {
        self.kv.txn(t).await.map(|r| r.into_inner())
    }

    async fn get(&mut self, k: &str) -> pb::RangeResponse {
        self.kv
            .range(pb::RangeRequest {
                key: k.into(),
                ..Default::default()
            })
            .await
            .expect("range")
            .into_inner()
    }

    /// Raft's commit index: moves only when something went through the log.
    async fn commit_index(&self) -> u64 {
        self.server
            .node
            .status()
            .await
            .expect("status")
            .commit_index
    }

    async fn stop(self) {
        self.server.shutdown().await;
    }
}

fn put(k: &str, v: &str) -> pb::RequestOp {
    op(Request::RequestPut(pb::PutRequest {
        key: k.into(),
        value: v.into(),
        prev_kv: true,
        ..Default::default()
    }))
}

fn range(k: &str) -> pb::RequestOp {
    op(Request::RequestRange(pb::RangeRequest {
        key: k.into(),
        ..Default::default()
    }))
}

fn range_at(k: &str, revision: i64) -> pb::RequestOp {
    op(Request::RequestRange(pb::RangeRequest {
        key: k.into(),
        revision,
        ..Default::default()
    }))
}

fn delete(k: &str, end: &str) -> pb::RequestOp {
    op(Request::RequestDeleteRange(pb::DeleteRangeRequest {
        key: k.into(),
        range_end: end.into(),
        prev_kv: true,
    }))
}

fn nested(t: pb::TxnRequest) -> pb::RequestOp {
    op(Request::RequestTxn(t))
}

fn op(r: Request) -> pb::RequestOp {
    pb::RequestOp { request: Some(r) }
}

fn txn(
    compare: Vec<pb::Compare>,
    success: Vec<pb::RequestOp>,
    failure: Vec<pb::RequestOp>,
) -> pb::TxnRequest {
    pb::TxnRequest {
        compare,
        success,
        failure,
    }
}

/// A compare of `key`'s `target` field; `value` may be absent (etcd then compares with 0 / "").
fn cmp(
    key: &str,
    target: CompareTarget,
    result: CompareResult,
    value: Option<TargetUnion>,
) -> pb::Compare {
    pb::Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        range_end: vec![],
        target_union: value,
    }
}

fn value_is(key: &str, v: &str) -> pb::Compare {
    cmp(
        key,
        CompareTarget::Value,
        CompareResult::Equal,
        Some(TargetUnion::Value(v.into())),
    )
}

fn absent(key: &str) -> pb::Compare {
    cmp(
        key,
        CompareTarget::Create,
        CompareResult::Equal,
        Some(TargetUnion::CreateRevision(0)),
    )
}

fn response(r: &pb::ResponseOp) -> &Response {
    r.response.as_ref().expect("response set")
}

fn range_kvs(r: &pb::ResponseOp) -> Vec<(String, String)> {
    let Response::ResponseRange(rr) = response(r) else {
        panic!("not a range response: {r:?}")
    };
    rr.kvs
        .iter()
        .map(|kv| (text(&kv.key), text(&kv.value)))
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn assert_status(r: Result<impl std::fmt::Debug, tonic::Status>, code: Code, message: &str) {
    let e = r.expect_err("request should fail");
    assert_eq!((e.code(), e.message()), (code, message), "{e:?}");
}

#[tokio::test]
async fn compare_and_swap_succeeds_then_fails() {
    let mut n = start().await;
    let created = n.put("k", "v1").await;

    let cas = txn(
        vec![value_is("k", "v1")],
        vec![put("k", "v2")],
        vec![range("k")],
    );
    let won = n.txn(cas.clone()).await.unwrap();
    assert!(won.succeeded);
    let h = won.header.unwrap();
    assert_eq!(h.revision, created + 1);
    assert_eq!(h.cluster_id, n.server.cluster_id);
    assert_eq!(h.member_id, n.server.member_id);
    assert!(h.raft_term >= 1);
    let [r] = &won.responses[..] else { panic!() };
    let Response::ResponsePut(p) = response(r) else {
        panic!()
    };
    assert_eq!(p.header.unwrap().revision, created + 1);
    assert_eq!(text(&p.prev_kv.as_ref().unwrap().value), "v1");

    // The same swap again: the value moved on, so the failure branch runs, changing nothing.
    let lost = n.txn(cas).await.unwrap();
    assert!(!lost.succeeded);
    assert_eq!(lost.header.unwrap().revision, created + 1);
    assert_eq!(
        range_kvs(&lost.responses[0]),
        [("k".to_string(), "v2".to_string())]
    );

    // A swap on the mod revision, as etcd's concurrency recipes do.
    let k = n.get("k").await.kvs[0].clone();
    let by_rev = |rev| {
        txn(
            vec![cmp(
                "k",
                CompareTarget::Mod,
                CompareResult::Equal,
                Some(TargetUnion::ModRevision(rev)),
            )],
            vec![put("k", "v3")],
            vec![],
        )
    };
    assert!(!n.txn(by_rev(created)).await.unwrap().succeeded);
    assert!(n.txn(by_rev(k.mod_revision)).await.unwrap().succeeded);
    assert_eq!(text(&n.get("k").await.kvs[0].value), "v3");
    n.stop().await;
}

#[tokio::test]
async fn nested_txns_take_their_own_branches() {
    let mut n = start().await;
    n.put("a", "1").await;
    // Outer: a == 1 holds. Inner compares see the state before the whole txn: b is absent
    // (even though nothing in this txn writes it first), a is not 2.
    let t = txn(
        vec![value_is("a", "1")],
        vec![
            put("a", "10"),
            nested(txn(
                vec![absent("b")],
                vec![put("b", "new")],
                vec![range("b")],
            )),
            nested(txn(
                vec![value_is("a", "2")],
                vec![delete("c", "")],
                vec![range("a")],
            )),
        ],
        vec![],
    );
    let r = n.txn(t).await.unwrap();
    assert!(r.succeeded);
    let rev = r.header.unwrap().revision;
    assert_eq!(r.responses.len(), 3);
    let Response::ResponseTxn(inner1) = response(&r.responses[1]) else {
        panic!()
    };
    assert!(inner1.succeeded);
    // Nested txn responses carry a header with revision 0, as etcd's.
    assert_eq!(inner1.header, Some(pb::ResponseHeader::default()));
    let Response::ResponsePut(p) = response(&inner1.responses[0]) else {
        panic!()
    };
    assert_eq!(p.header.unwrap().revision, rev);
    assert_eq!(p.prev_kv, None);
    let Response::ResponseTxn(inner2) = response(&r.responses[2]) else {
        panic!()
    };
    assert!(!inner2.succeeded);
    // The failure range sees the outer put of the same txn.
    assert_eq!(
        range_kvs(&inner2.responses[0]),
        [("a".to_string(), "10".to_string())]
    );
    assert_eq!(text(&n.get("b").await.kvs[0].value), "new");
    n.stop().await;
}

#[tokio::test]
async fn ranges_in_a_txn_see_its_earlier_writes() {
    let mut n = start().await;
    n.put("w", "gone soon").await;
    let before = n.put("x", "old").await;
    let t = txn(
        vec![],
        vec![
            range("x"),
            put("x", "new"),
            put("y", "1"),
            range("x"),
            delete("w", ""),
            op(Request::RequestRange(pb::RangeRequest {
                key: "a".into(),
                range_end: "z".into(),
                ..Default::default()
            })),
        ],
        vec![],
    );
    let r = n.txn(t).await.unwrap();
    let rev = r.header.unwrap().revision;
    assert_eq!(rev, before + 1, "one revision for the whole txn");
    let rr = |i: usize| match response(&r.responses[i]) {
        Response::ResponseRange(rr) => rr.clone(),
        other => panic!("{other:?}"),
    };
    // Before any write, a range reports the store's revision; after one, the txn's.
    assert_eq!(rr(0).header.unwrap().revision, before);
    assert_eq!(text(&rr(0).kvs[0].value), "old");
    assert_eq!(rr(3).header.unwrap().revision, rev);
    assert_eq!(text(&rr(3).kvs[0].value), "new");
    assert_eq!(rr(3).kvs[0].mod_revision, rev);
    let Response::ResponseDeleteRange(d) = response(&r.responses[4]) else {
        panic!()
    };
    assert_eq!((d.deleted, d.header.unwrap().revision), (1, rev));
    assert_eq!(
        range_kvs(&r.responses[5]),
        [("x".into(), "new".into()), ("y".into(), "1".into())],
        "w deleted, y created by the txn"
    );
    n.stop().await;
}

#[tokio::test]
async fn compares_on_missing_keys_and_missing_values() {
    let mut n = start().await;
    n.put("here", "v").await;
    let holds = |c: pb::Compare| txn(vec![c], vec![], vec![]);
    let cases = [
        // A missing key compares as a zero key-value...
        (absent("missing"), true),
        (
            cmp(
                "missing",
                CompareTarget::Version,
                CompareResult::Equal,
                Some(TargetUnion::Version(0)),
            ),
            true,
        ),
        (
            cmp(
                "missing",
                CompareTarget::Lease,
                CompareResult::Equal,
                Some(TargetUnion::Lease(0)),
            ),
            true,
        ),
        // ...except that a value compare on it always fails, even against "".
        (value_is("missing", ""), false),
        (
            cmp(
                "missing",
                CompareTarget::Value,
                CompareResult::NotEqual,
                Some(TargetUnion::Value(b"x".to_vec())),
            ),
            false,
        ),
        // No value given: compared with 0 (or "").
        (
            cmp("here", CompareTarget::Mod, CompareResult::Greater, None),
            true,
        ),
        (
            cmp("here", CompareTarget::Value, CompareResult::Greater, None),
            true,
        ),
        (
            cmp(
                "missing",
                CompareTarget::Version,
                CompareResult::Equal,
                None,
            ),
            true,
        ),
        // A value of another target's kind is ignored: VERSION compared with 0, not 7.
        (
            cmp(
                "here",
                CompareTarget::Version,
                CompareResult::Greater,
                Some(TargetUnion::ModRevision(7)),
            ),
            true,
        ),
        (
            cmp(
                "here",
                CompareTarget::Version,
                CompareResult::Equal,
                Some(TargetUnion::Version(1)),
            ),
            true,
        ),
        (
            cmp(
                "here",
                CompareTarget::Version,
                CompareResult::Less,
                Some(TargetUnion::Version(1)),
            ),
            false,
        ),
    ];
    for (i, (c, want)) in cases.into_iter().enumerate() {
        let r = n.txn(holds(c.clone())).await.unwrap();
        assert_eq!(r.succeeded, want, "case {i}: {c:?}");
    }
    // A compare over a range holds when every key in it does; over no keys, on a zero key.
    n.put("p/1", "a").await;
    n.put("p/2", "a").await;
    let over = |v: &str, end: &str| pb::Compare {
        range_end: end.into(),
        ..value_is("p/", v)
    };
    assert!(n.txn(holds(over("a", "p0"))).await.unwrap().succeeded);
    n.put("p/3", "b").await;
    assert!(!n.txn(holds(over("a", "p0"))).await.unwrap().succeeded);
    // "\0" as range_end: every key from "p/" on.
    assert!(!n.txn(holds(over("a", "\0"))).await.unwrap().succeeded);
    n.stop().await;
}

#[tokio::test]
async fn request_checks_answer_as_etcd() {
    let mut n = start().await;
    let invalid = Code::InvalidArgument;

    let dup = n
        .txn(txn(vec![], vec![put("a", "1"), put("a", "2")], vec![]))
        .await;
    assert_status(
        dup,
        invalid,
        "etcdserver: duplicate key given in txn request",
    );
    let put_deleted = n
        .txn(txn(vec![], vec![delete("a", "c"), put("b", "2")], vec![]))
        .await;
    assert_status(
        put_deleted,
        invalid,
        "etcdserver: duplicate key given in txn request",
    );
    // The two branches of one nested txn may write the same key: only one runs.
    let branches = nested(txn(vec![], vec![put("k", "1")], vec![put("k", "2")]));
    n.txn(txn(vec![], vec![branches], vec![])).await.unwrap();

    // etcd's default --max-txn-ops is 128, per list; a nested txn gets what its level left.
    let ops = |n: usize| {
        (0..n)
            .map(|i| put(&format!("k{i}"), "v"))
            .collect::<Vec<_>>()
    };
    n.txn(txn(vec![], ops(128), vec![])).await.unwrap();
    let many = n.txn(txn(vec![], ops(129), vec![])).await;
    assert_status(
        many,
        invalid,
        "etcdserver: too many operations in txn request",
    );
    let compares = (0..129).map(|i| absent(&format!("c{i}"))).collect();
    let many = n.txn(txn(compares, vec![], vec![])).await;
    assert_status(
        many,
        invalid,
        "etcdserver: too many operations in txn request",
    );
    let mut outer = ops(100);
    outer.push(nested(txn(vec![], vec![], ops(29))));
    let many = n.txn(txn(vec![], outer, vec![])).await;
    assert_status(
        many,
        invalid,
        "etcdserver: too many operations in txn request",
    );

    // Empty keys anywhere, `ignore_*` misuse, and an op with no request.
    let empty_key = "etcdserver: key is not provided";
    let r = n.txn(txn(vec![absent("")], vec![], vec![])).await;
    assert_status(r, invalid, empty_key);
    let r = n.txn(txn(vec![], vec![], vec![range("")])).await;
    assert_status(r, invalid, empty_key);
    let r = n
        .txn(txn(
            vec![],
            vec![nested(txn(vec![], vec![delete("", "")], vec![]))],
            vec![],
        ))
        .await;
    assert_status(r, invalid, empty_key);
    let r =
        n.kv.range(pb::RangeRequest::default())
            .await
            .map(|r| r.into_inner());
    assert_status(r, invalid, empty_key);
    let r = n.kv.put(pb::PutRequest::default()).await;
    assert_status(r, invalid, empty_key);
    let r = n.kv.delete_range(pb::DeleteRangeRequest::default()).await;
    assert_status(r, invalid, empty_key);
    let ignore_value = op(Request::RequestPut(pb::PutRequest {
        key: "a".into(),
        value: "v".into(),
        ignore_value: true,
        ..Default::default()
    }));
    let r = n.txn(txn(vec![], vec![ignore_value], vec![])).await;
    assert_status(r, invalid, "etcdserver: value is provided");
    let r = n
        .txn(txn(vec![], vec![pb::RequestOp::default()], vec![]))
        .await;
    assert_status(r, invalid, "etcdserver: key not found");
    // etcd's order: an earlier op's problem is reported first.
    let r = n
        .txn(txn(
            vec![],
            vec![range(""), pb::RequestOp::default()],
            vec![],
        ))
        .await;
    assert_status(r, invalid, empty_key);
    // `ignore_value` on a key that does not exist: refused when applied.
    let ignore_missing = op(Request::RequestPut(pb::PutRequest {
        key: "nope".into(),
        ignore_value: true,
        ..Default::default()
    }));
    let r = n.txn(txn(vec![], vec![ignore_missing], vec![])).await;
    assert_status(r, invalid, "etcdserver: key not found");
    // A put with a lease that does not exist.
    let leased = op(Request::RequestPut(pb::PutRequest {
        key: "a".into(),
        lease: 42,
        ..Default::default()
    }));
    let r = n.txn(txn(vec![], vec![leased], vec![])).await;
    assert_status(r, Code::NotFound, "etcdserver: requested lease not found");
    n.stop().await;
}

#[tokio::test]
async fn compaction_and_revisions_out_of_range() {
    let mut n = start().await;
    let r1 = n.put("k", "1").await;
    let r2 = n.put("k", "2").await;
    let r3 = n.put("k", "3").await;
    let compacted = "etcdserver: mvcc: required revision has been compacted";
    let future = "etcdserver: mvcc: required revision is a future revision";

    let c =
        n.kv.compact(pb::CompactionRequest {
            revision: r2,
            physical: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.header.unwrap().revision, r3);

    let at = |revision| pb::RangeRequest {
        key: "k".into(),
        revision,
        ..Default::default()
    };
    let r = n.kv.range(at(r1)).await;
    assert_status(r, Code::OutOfRange, compacted);
    // Reading exactly at the compaction point still works.
    let kvs = n.kv.range(at(r2)).await.unwrap().into_inner().kvs;
    assert_eq!(text(&kvs[0].value), "2");
    let r = n.kv.range(at(r3 + 1)).await;
    assert_status(r, Code::OutOfRange, future);
    // Also a serializable read.
    let r =
        n.kv.range(pb::RangeRequest {
            serializable: true,
            ..at(r1)
        })
        .await;
    assert_status(r, Code::OutOfRange, compacted);

    // Inside txns, read-only or not: the whole txn is refused, changing nothing.
    let r = n.txn(txn(vec![], vec![range_at("k", r1)], vec![])).await;
    assert_status(r, Code::OutOfRange, compacted);
    let r = n
        .txn(txn(vec![], vec![put("k", "4"), range_at("k", r1)], vec![]))
        .await;
    assert_status(r, Code::OutOfRange, compacted);
    let r = n
        .txn(txn(
            vec![],
            vec![put("k", "4"), range_at("k", r3 + 1)],
            vec![],
        ))
        .await;
    assert_status(r, Code::OutOfRange, future);
    assert_eq!(n.get("k").await.header.unwrap().revision, r3);

    // Compacting again at or below the compaction point, or beyond the store's revision.
    let compact = |revision| pb::CompactionRequest {
        revision,
        physical: false,
    };
    let r = n.kv.compact(compact(r2)).await;
    assert_status(r, Code::OutOfRange, compacted);
    let r = n.kv.compact(compact(r1)).await;
    assert_status(r, Code::OutOfRange, compacted);
    let r = n.kv.compact(compact(r3 + 1)).await;
    assert_status(r, Code::OutOfRange, future);
    n.kv.compact(compact(r3)).await.unwrap();
    n.stop().await;
}

#[tokio::test]
async fn requests_over_the_size_limit_are_refused() {
    let max = 64 * 1024;
    let mut n = start_with(max).await;
    let big = "x".repeat(max + 1);
    let too_large = "etcdserver: request is too large";
    let r =
        n.kv.put(pb::PutRequest {
            key: "k".into(),
            value: big.clone().into(),
            ..Default::default()
        })
        .await;
    assert_status(r, Code::InvalidArgument, too_large);
    let r = n.txn(txn(vec![], vec![], vec![put("k", &big)])).await;
    assert_status(r, Code::InvalidArgument, too_large);
    // Many ops, each small, add up too.
    let ops = (0..100)
        .map(|i| put(&format!("k{i}"), &"y".repeat(max / 64)))
        .collect();
    let r = n.txn(txn(vec![], ops, vec![])).await;
    assert_status(r, Code::InvalidArgument, too_large);
    // Just under the limit is fine.
    let v = "z".repeat(max - 1024);
    n.put("k", &v).await;
    // Beyond the limit plus etcd's gRPC allowance (512 KiB) the gRPC decoder refuses the
    // message before the server sees it (tonic's code and message, not grpc-go's).
    let huge = pb::PutRequest {
        key: "k".into(),
        value: "h".repeat(max + 600 * 1024).into(),
        ..Default::default()
    };
    let e = n.kv.put(huge).await.expect_err("over the gRPC limit");
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    // A read-only txn is never proposed, so only the gRPC message limit bounds it.
    let long_key = "r".repeat(max + 1);
    let r = n
        .txn(txn(vec![], vec![range(&long_key)], vec![]))
        .await
        .unwrap();
    assert!(r.succeeded);
    n.stop().await;
}

#[tokio::test]
async fn read_only_txns_are_served_without_the_log() {
    let mut n = start().await;
    n.put("a", "1").await;
    let before = n.commit_index().await;
    let read = txn(
        vec![value_is("a", "1")],
        vec![range("a"), nested(txn(vec![], vec![range("b")], vec![]))],
        vec![range("b")],
    );
    let r = n.txn(read.clone()).await.unwrap();
    assert!(r.succeeded);
    assert_eq!(range_kvs(&r.responses[0]), [("a".into(), "1".into())]);
    let serializable = txn(
        vec![],
        vec![op(Request::RequestRange(pb::RangeRequest {
            key: "a".into(),
            serializable: true,
            ..Default::default()
        }))],
        vec![],
    );
    let s = n.txn(serializable).await.unwrap();
    assert_eq!(range_kvs(&s.responses[0]), [("a".into(), "1".into())]);
    let only_compares = n.txn(txn(vec![absent("b")], vec![], vec![])).await.unwrap();
    assert!(only_compares.succeeded);
    assert_eq!(
        only_compares.header.unwrap().revision,
        r.header.unwrap().revision
    );
    assert_eq!(n.commit_index().await, before, "reads appended nothing");

    // A txn that could write goes through the log, even when its compare fails and it
    // changes nothing (the revision stays).
    let w = n
        .txn(txn(
            vec![value_is("a", "2")],
            vec![put("a", "3")],
            vec![range("a")],
        ))
        .await
        .unwrap();
    assert!(!w.succeeded);
    assert_eq!(w.header.unwrap().revision, r.header.unwrap().revision);
    assert_eq!(n.commit_index().await, before + 1);
    n.stop().await;
}

/// One response of every kind, rendered as text: the whole shape etcd clients see.
#[tokio::test]
async fn txn_response_snapshot() {
    let mut n = start().await;
    n.put("config/a", "1").await;
    n.put("config/b", "2").await;
    let t = txn(
        vec![
            value_is("config/a", "1"),
            absent("lock"),
            pb::Compare {
                range_end: "config0".into(),
                ..cmp(
                    "config/",
                    CompareTarget::Version,
                    CompareResult::Greater,
                    None,
                )
            },
        ],
        vec![
            put("config/a", "10"),
            put("lock", "me"),
            delete("config/b", ""),
            op(Request::RequestRange(pb::RangeRequest {
                key: "config/".into(),
                range_end: "config0".into(),
                ..Default::default()
            })),
            nested(txn(
                vec![value_is("config/a", "10")],
                vec![put("never", "x")],
                vec![range("lock")],
            )),
        ],
        vec![range("lock")],
    );
    let r = n.txn(t).await.unwrap();
    let h = r.header.unwrap();
    assert_eq!(
        (h.cluster_id, h.member_id),
        (n.server.cluster_id, n.server.member_id)
    );
    insta::assert_snapshot!(render(&r));
    n.stop().await;
}

fn render(r: &pb::TxnResponse) -> String {
    let mut out = String::new();
    render_txn(&mut out, r, 0, true);
    out
}

fn render_txn(out: &mut String, r: &pb::TxnResponse, depth: usize, outer: bool) {
    let pad = "  ".repeat(depth);
    let h = r.header.unwrap_or_default();
    if outer {
        writeln!(
            out,
            "{pad}header: revision={} raft_term={} (cluster and member: this server's)",
            h.revision, h.raft_term
        )
        .unwrap();
    } else {
        writeln!(out, "{pad}{}", header(&r.header)).unwrap();
    }
    writeln!(out, "{pad}succeeded: {}", r.succeeded).unwrap();
    for op in &r.responses {
        match response(op) {
            Response::ResponseRange(rr) => {
                writeln!(
                    out,
                    "{pad}- range: {} count={} more={}",
                    header(&rr.header),
                    rr.count,
                    rr.more
                )
                .unwrap();
                for kv in &rr.kvs {
                    writeln!(out, "{pad}    {}", render_kv(kv)).unwrap();
                }
            }
            Response::ResponsePut(p) => {
                let prev = p.prev_kv.as_ref().map_or("none".into(), render_kv);
                writeln!(out, "{pad}- put: {} prev_kv={prev}", header(&p.header)).unwrap();
            }
            Response::ResponseDeleteRange(d) => {
                writeln!(
                    out,
                    "{pad}- delete_range: {} deleted={}",
                    header(&d.header),
                    d.deleted
                )
                .unwrap();
                for kv in &d.prev_kvs {
                    writeln!(out, "{pad}    prev {}", render_kv(kv)).unwrap();
                }
            }
            Response::ResponseTxn(t) => {
                writeln!(out, "{pad}- txn:").unwrap();
                render_txn(out, t, depth + 2, false);
            }
        }
    }
}

fn header(h: &Option<pb::ResponseHeader>) -> String {
    match h {
        None => "header=none".into(),
        Some(h) => format!(
            "header={{cluster_id={} member_id={} revision={} raft_term={}}}",
            h.cluster_id, h.member_id, h.revision, h.raft_term
        ),
    }
}

fn render_kv(kv: &mvccpb::KeyValue) -> String {
    format!(
        "{}={:?} create={} mod={} version={} lease={}",
        text(&kv.key),
        text(&kv.value),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        kv.lease
    )
}
