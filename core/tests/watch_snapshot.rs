//! A representative watch stream, rendered as text and compared with a reviewed snapshot:
//! creation answers, a replay from history in batches, a transaction delivered as one
//! response, filters, `prev_kv`, a deferred progress request, a client cancellation and a
//! compaction answer, in the order a client would read them.

mod watch_support;

use std::fmt::Write as _;

use sextant_core::watch::{WatchConfig, WatchCreateRequest, WatchFilters};
use watch_support::{delete, put, render, Harness};

#[test]
fn representative_watch_stream() {
    let config = WatchConfig {
        replay_batch_events_max: 2,
        ..WatchConfig::default()
    };
    let mut h = Harness::new(config);
    let mut transcript = String::new();
    let note = |h: &mut Harness, transcript: &mut String, what: &str| {
        writeln!(transcript, "> {what}").unwrap();
        for stream in h.hub.ready_streams().collect::<Vec<_>>() {
            while let Some(response) = h.hub.poll_stream(stream) {
                writeln!(transcript, "{}", render(&response)).unwrap();
            }
        }
    };

    h.put("foo", "1");
    h.put("foo/a", "1");
    h.put("bar", "1");
    h.put("foo/a", "2");
    note(
        &mut h,
        &mut transcript,
        "put foo, foo/a, bar, foo/a (revisions 1-4)",
    );

    let s = h.hub.open_stream(0);
    h.hub
        .create_watch(s, WatchCreateRequest::key("foo"))
        .unwrap();
    let replay = WatchCreateRequest::prefix("foo/")
        .with_prev_kv()
        .with_start_revision(1);
    h.hub.create_watch(s, replay).unwrap();
    let deletes_only = WatchFilters {
        no_put: true,
        no_delete: false,
    };
    let all_deletes = WatchCreateRequest::range("", "\0").with_filters(deletes_only);
    h.hub.create_watch(s, all_deletes).unwrap();
    h.hub.request_progress(s).unwrap();
    note(
        &mut h,
        &mut transcript,
        "watch foo; watch prefix foo/ from revision 1 with prev_kv; watch all keys, deletes \
         only; request progress",
    );

    h.apply(&[put("foo", "2"), put("foo/b", "1"), delete("bar")]);
    note(
        &mut h,
        &mut transcript,
        "txn: put foo, put foo/b, delete bar (revision 5)",
    );

    h.hub.catch_up(&h.store);
    note(&mut h, &mut transcript, "catch up one step");

    h.hub.catch_up(&h.store);
    note(&mut h, &mut transcript, "catch up one step");

    h.delete("foo/a");
    h.hub
        .cancel_watch(s, sextant_core::watch::WatchId(0))
        .unwrap();
    h.put("foo", "3");
    note(
        &mut h,
        &mut transcript,
        "delete foo/a; cancel watch 0; put foo",
    );

    h.store.compact(5);
    let old = WatchCreateRequest::key("foo").with_start_revision(2);
    h.hub.create_watch(s, old).unwrap();
    h.catch_up_all();
    h.hub.request_progress(s).unwrap();
    note(
        &mut h,
        &mut transcript,
        "compact at 5; watch foo from revision 2; catch up; request progress",
    );

    insta::assert_snapshot!(transcript);
}
