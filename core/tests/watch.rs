//! Behaviour of the watch hub, scenario by scenario, against an in-test store. Each test
//! names the etcd behaviour it checks.

mod watch_support;

use bytes::Bytes;
use sextant_core::watch::{
    AppliedError, CancelWatchError, CatchUpStatus, CreateWatchError, WatchConfig, WatchConfigError,
    WatchCreateRequest, WatchFilters, WatchHub, WatchId, WatchResponse,
};
use watch_support::{delete, events_of, keys_revs, put, render_all, Harness};

fn harness() -> Harness {
    Harness::new(WatchConfig::default())
}

fn kr(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(k, r)| (k.to_string(), *r)).collect()
}

#[test]
fn created_comes_first_then_one_response_per_revision() {
    let mut h = harness();
    h.put("a", "0");
    let s = h.hub.open_stream(0);
    let id = h.hub.create_watch(s, WatchCreateRequest::key("a")).unwrap();
    assert_eq!(id, WatchId(0));
    h.put("a", "1");
    h.put("b", "1");
    h.put("a", "2");
    let out = h.drain(s);
    assert_eq!(
        render_all(&out),
        "watch 0 @1 created\n\
         watch 0 @2\n    PUT a=1 c1 m2 v2\n\
         watch 0 @4\n    PUT a=2 c1 m4 v3\n"
    );
}

#[test]
fn a_transaction_is_delivered_in_one_response_in_order() {
    let mut h = harness();
    h.apply(&[put("a/z", "0")]);
    let s = h.hub.open_stream(0);
    let id = h
        .hub
        .create_watch(s, WatchCreateRequest::prefix("a/"))
        .unwrap();
    h.apply(&[
        put("a/y", "1"),
        put("b", "1"),
        put("a/x", "1"),
        delete("a/z"),
    ]);
    let out = h.drain(s);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].watch_id, id);
    assert_eq!(out[1].header_revision, 2);
    assert_eq!(
        keys_revs(&out[1].events),
        kr(&[("a/y", 2), ("a/x", 2), ("a/z", 2)])
    );
}

#[test]
fn range_conventions_single_prefix_from_key_and_half_open() {
    let mut h = harness();
    let s = h.hub.open_stream(0);
    let single = h.hub.create_watch(s, WatchCreateRequest::key("b")).unwrap();
    let prefix = h
        .hub
        .create_watch(s, WatchCreateRequest::prefix("b"))
        .unwrap();
    let from = h
        .hub
        .create_watch(s, WatchCreateRequest::range("b", "\0"))
        .unwrap();
    let half = h
        .hub
        .create_watch(s, WatchCreateRequest::range("a", "b"))
        .unwrap();
    let all = h
        .hub
        .create_watch(s, WatchCreateRequest::range("", "\0"))
        .unwrap();
    for key in ["a", "ab", "b", "ba", "c"] {
        h.put(key, "v");
    }
    let out = h.drain(s);
    let keys = |id: WatchId| -> Vec<String> {
        let responses: Vec<WatchResponse> =
            out.iter().filter(|r| r.watch_id == id).cloned().collect();
        keys_revs(&events_of(&responses))
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(keys(single), ["b"]);
    assert_eq!(keys(prefix), ["b", "ba"]);
    assert_eq!(keys(from), ["b", "ba", "c"]);
    assert_eq!(keys(half), ["a", "ab"]);
    assert_eq!(keys(all), ["a", "ab", "b", "ba", "c"]);
}

#[test]
fn filters_drop_event_kinds_and_a_fully_filtered_revision_sends_nothing() {
    let mut h = harness();
    let s = h.hub.open_stream(0);
    let no_put = WatchFilters {
        no_put: true,
        no_delete: false,
    };
    let no_delete = WatchFilters {
        no_put: false,
        no_delete: true,
    };
    let deletes = h
        .hub
        .create_watch(s, WatchCreateRequest::prefix("k").with_filters(no_put))
        .unwrap();
    let puts = h
        .hub
        .create_watch(s, WatchCreateRequest::prefix("k").with_filters(no_delete))
        .unwrap();
    h.put("k1", "a"); // 1
    h.apply(&[put("k2", "b"), delete("k1")]); // 2
    h.delete("k2"); // 3
    let out = h.drain(s);
    let of = |id: WatchId| -> Vec<WatchResponse> {
        out.iter()
            .filter(|r| r.watch_id == id && !r.created)
            .cloned()
            .collect()
    };
    let d = of(deletes);
    assert_eq!(d.len(), 2, "revision 1 had only a put: nothing sent");
    assert_eq!(keys_revs(&events_of(&d)), kr(&[("k1", 2), ("k2", 3)]));
    let p = of(puts);
    assert_eq!(p.len(), 2);
    assert_eq!(keys_revs(&events_of(&p)), kr(&[("k1", 1), ("k2", 2)]));
}

#[test]
fn prev_kv_is_stripped_unless_requested() {
    let mut h = harness();
    h.put("a", "old");
    let s = h.hub.open_stream(0);
    let plain = h.hub.create_watch(s, WatchCreateRequest::key("a")).unwrap();
    let with_prev = h
        .hub
        .create_watch(s, WatchCreateRequest::key("a").with_prev_kv())
        .unwrap();
    h.put("a", "new");
    h.delete("a");
    let out = h.drain(s);
    for response in out.iter().filter(|r| !r.created) {
        for event in &response.events {
            if response.watch_id == plain {
                assert_eq!(event.prev_kv, None);
            } else {
                assert_eq!(response.watch_id, with_prev);
                assert!(event.prev_kv.is_some());
            }
        }
    }
    let prevs: Vec<Bytes> = out
        .iter()
        .filter(|r| r.watch_id == with_prev)
        .flat_map(|r| &r.events)
        .map(|e| e.prev_kv.clone().unwrap().value)
        .collect();
    assert_eq!(prevs, [Bytes::from("old"), Bytes::from("new")]);
}

#[test]
fn past_start_revision_replays_in_batches_then_follows_live() {
    let config = WatchConfig {
        replay_batch_events_max: 2,
        ..WatchConfig::default()
    };
    let mut h = Harness::new(config);
    for i in 1..=5 {
        h.put("k", &i.to_string());
    }
    let s = h.hub.open_stream(0);
    let id = h
        .hub
        .create_watch(s, WatchCreateRequest::key("k").with_start_revision(2))
        .unwrap();
    assert_eq!(h.hub.unsynced_watcher_count(), 1);
    // Nothing but `created` until the driver catches up.
    assert_eq!(h.drain(s).len(), 1);
    assert_eq!(h.hub.catch_up(&h.store), CatchUpStatus::MorePending);
    assert_eq!(h.hub.catch_up(&h.store), CatchUpStatus::Done);
    h.put("k", "6");
    let out = h.drain(s);
    assert!(out.iter().all(|r| r.watch_id == id));
    assert_eq!(
        out.iter().map(|r| r.header_revision).collect::<Vec<_>>(),
        [3, 5, 6],
        "replay headers say how far the watcher has seen; then one per revision"
    );
    assert_eq!(
        keys_revs(&events_of(&out)),
        kr(&[("k", 2), ("k", 3), ("k", 4), ("k", 5), ("k", 6)])
    );
}

/// The classic race: revisions applied while a watcher is replaying must be delivered
/// exactly once, whether they land before or after it switches to synced.
#[test]
fn no_loss_no_duplicate_across_the_unsynced_to_synced_switch() {
    let config = WatchConfig {
        replay_batch_events_max: 1,
        ..WatchConfig::default()
    };
    let mut h = Harness::new(config);
    for i in 0..4 {
        h.put("k", &i.to_string());
    }
    let s = h.hub.open_stream(0);
    h.hub
        .create_watch(s, WatchCreateRequest::key("k").with_start_revision(1))
        .unwrap();
    let mut step = 0;
    loop {
        // Writes to the watched key at half the replay pace, so replay does finish.
        if step % 2 == 0 {
            h.put("k", &format!("live{step}"));
        }
        h.put("other", "x");
        step += 1;
        if h.hub.catch_up(&h.store) == CatchUpStatus::Done {
            break;
        }
    }
    assert!(
        step > 1,
        "the watcher replayed while revisions were applied"
    );
    h.put("k", "after");
    let got = keys_revs(&events_of(&h.drain(s)));
    let want: Vec<(String, i64)> = h
        .store
        .log()
        .iter()
        .filter(|e| e.kv.key == "k")
        .map(|e| ("k".to_string(), e.kv.mod_revision))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn future_start_revision_is_synced_and_skips_earlier_revisions() {
    let mut h = harness();
    h.put("k", "1");
    let s = h.hub.open_stream(0);
    h.hub
        .create_watch(s, WatchCreateRequest::key("k").with_start_revision(4))
        .unwrap();
    assert_eq!(h.hub.unsynced_watcher_count(), 0);
    for i in 2..=5 {
        h.put("k", &i.to_string());
    }
    let out = h.drain(s);
    assert_eq!(keys_revs(&events_of(&out)), kr(&[("k", 4), ("k", 5)]));
}

#[test]
fn compacted_start_gets_created_then_one_compaction_answer() {
    let mut h = harness();
    for i in 1..=6 {
        h.put("k", &i.to_string());
    }
    h.store.compact(4);
    let s = h.hub.open_stream(0);
    let gone = h
        .hub
        .create_watch(s, WatchCreateRequest::key("k").with_start_revision(3))
        .unwrap();
    let at_compact = h
        .hub
        .create_watch(s, WatchCreateRequest::key("k").with_start_revision(4))
        .unwrap();
    assert_eq!(h.catch_up_all(), CatchUpStatus::Done);
    let out = h.drain(s);
    assert_eq!(
        render_all(&out),
        "watch 0 @6 created\n\
         watch 1 @6 created\n\
         watch 0 @6 canceled compact_revision=4\n\
         watch 1 @6\n    PUT k=4 c1 m4 v4\n    PUT k=5 c1 m5 v5\n    PUT k=6 c1 m6 v6\n"
    );
    assert_eq!((gone, at_compact), (WatchId(0), WatchId(1)));
    assert_eq!(h.hub.watcher_count(), 1, "the compacted watcher is gone");
}

#[test]
fn refused_creations_answer_created_and_canceled_with_etcd_reasons() {
    let mut h = harness();
    h.put("a", "1");
    let s = h.hub.open_stream(0);
    let negative = WatchCreateRequest::key("a").with_start_revision(-1);
    assert_eq!(
        h.hub.create_watch(s, negative),
        Err(CreateWatchError::NegativeStartRevision)
    );
    assert_eq!(
        h.hub.create_watch(s, WatchCreateRequest::range("b", "a")),
        Err(CreateWatchError::EmptyRange)
    );
    let seven = WatchCreateRequest::key("a").with_watch_id(WatchId(7));
    assert_eq!(h.hub.create_watch(s, seven.clone()), Ok(WatchId(7)));
    assert_eq!(
        h.hub.create_watch(s, seven),
        Err(CreateWatchError::DuplicateWatchId)
    );
    assert_eq!(
        render_all(&h.drain(s)),
        "watch -1 @1 created canceled reason=\"etcdserver: mvcc: required revision has been compacted\"\n\
         watch -1 @1 created canceled reason=\"mvcc: watcher range is empty\"\n\
         watch 7 @1 created\n\
         watch -1 @1 created canceled reason=\"mvcc: duplicate watch ID provided on the WatchStream\"\n"
    );
}

#[test]
fn watch_ids_are_per_stream_and_skip_ids_in_use() {
    let mut h = harness();
    let s1 = h.hub.open_stream(0);
    let s2 = h.hub.open_stream(0);
    let req = || WatchCreateRequest::key("a");
    h.hub
        .create_watch(s1, req().with_watch_id(WatchId(1)))
        .unwrap();
    assert_eq!(h.hub.create_watch(s1, req()), Ok(WatchId(0)));
    assert_eq!(h.hub.create_watch(s1, req()), Ok(WatchId(2)));
    assert_eq!(h.hub.create_watch(s2, req()), Ok(WatchId(0)));
}

#[test]
fn cancel_answers_after_queued_events_and_stops_delivery() {
    let mut h = harness();
    let s = h.hub.open_stream(0);
    let id = h.hub.create_watch(s, WatchCreateRequest::key("a")).unwrap();
    h.put("a", "1");
    h.hub.cancel_watch(s, id).unwrap();
    h.put("a", "2");
    assert_eq!(
        render_all(&h.drain(s)),
        "watch 0 @0 created\nwatch 0 @1\n    PUT a=1 c1 m1 v1\nwatch 0 @1 canceled\n"
    );
    assert_eq!(
        h.hub.cancel_watch(s, id),
        Err(CancelWatchError::WatchNotFound(id))
    );
    assert_eq!(
        CancelWatchError::WatchNotFound(id).to_string(),
        "mvcc: watcher does not exist"
    );
}

#[test]
fn closing_a_stream_drops_its_watchers_and_queue() {
    let mut h = harness();
    h.put("a", "1");
    let s = h.hub.open_stream(0);
    let other = h.hub.open_stream(0);
    h.hub.create_watch(s, WatchCreateRequest::key("a")).unwrap();
    h.hub
        .create_watch(s, WatchCreateRequest::key("a").with_start_revision(1))
        .unwrap();
    h.hub
        .create_watch(other, WatchCreateRequest::key("a"))
        .unwrap();
    h.hub.close_stream(s).unwrap();
    assert_eq!(h.hub.watcher_count(), 1);
    assert_eq!(h.hub.unsynced_watcher_count(), 0);
    assert_eq!(h.hub.poll_stream(s), None);
    assert!(h.hub.close_stream(s).is_err());
    h.put("a", "2");
    assert_eq!(events_of(&h.drain(other)).len(), 1);
}

#[test]
fn a_slow_synced_watcher_is_cancelled_its_events_freed_and_it_can_resume() {
    let config = WatchConfig {
        stream_queue_events_max: 4,
        ..WatchConfig::default()
    };
    let mut h = Harness::new(config);
    let slow = h.hub.open_stream(0);
    let fast = h.hub.open_stream(0);
    let id = h
        .hub
        .create_watch(slow, WatchCreateRequest::key("k"))
        .unwrap();
    h.hub
        .create_watch(fast, WatchCreateRequest::key("k"))
        .unwrap();
    h.drain(slow);
    h.put("k", "1");
    assert_eq!(
        events_of(&h.drain(slow)).len(),
        1,
        "the client read revision 1"
    );
    for i in 2..=7 {
        h.put("k", &i.to_string());
        h.drain(fast);
    }
    let out = h.drain(slow);
    assert_eq!(
        render_all(&out),
        "watch 0 @6 canceled reason=\"watcher is too slow: the stream's queue is full \
         (4 responses, 4 events, 456 bytes pending); watch again from revision 2\"\n"
    );
    assert_eq!(out[0].watch_id, id);
    assert_eq!(h.hub.watcher_count(), 1, "only the fast watcher is left");
    // Resuming from the named revision replays exactly what was dropped.
    let resumed = h
        .hub
        .create_watch(slow, WatchCreateRequest::key("k").with_start_revision(2))
        .unwrap();
    let out = h.settle(slow);
    assert!(out.iter().all(|r| r.watch_id == resumed));
    let revs: Vec<i64> = events_of(&out).iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revs, [2, 3, 4, 5, 6, 7]);
}

/// A progress notification promises the client every event up to its revision, so a slow
/// watcher's events queued before one are kept when it is cancelled.
#[test]
fn slow_cancellation_keeps_events_promised_by_a_queued_progress_notification() {
    let config = WatchConfig {
        stream_queue_events_max: 3,
        ..WatchConfig::default()
    };
    let mut h = Harness::new(config);
    let s = h.hub.open_stream(0);
    h.hub.create_watch(s, WatchCreateRequest::key("k")).unwrap();
    h.put("k", "1");
    h.put("k", "2");
    h.hub.request_progress(s).unwrap();
    h.put("k", "3");
    h.put("k", "4");
    assert_eq!(
        render_all(&h.drain(s)),
        "watch 0 @0 created\n\
         watch 0 @1\n    PUT k=1 c1 m1 v1\n\
         watch 0 @2\n    PUT k=2 c1 m2 v2\n\
         watch -1 @2 progress\n\
         watch 0 @4 canceled reason=\"watcher is too slow: the stream's queue is full \
         (5 responses, 3 events, 470 bytes pending); watch again from revision 3\"\n"
    );
}

#[test]
fn a_replaying_watcher_waits_for_its_queue_instead_of_being_cancelled() {
    let config = WatchConfig {
        stream_queue_events_max: 4,
        replay_batch_events_max: 3,
        ..WatchConfig::default()
    };
    let mut h = Harness::new(config);
    for i in 1..=10 {
        h.put("k", &i.to_string());
    }
    let s = h.hub.open_stream(0);
    h.hub
        .create_watch(s, WatchCreateRequest::key("k").with_start_revision(1))
        .unwrap();
    // With `created` queued, a replay batch may fill only half the queue (2 events); then
    // the watcher waits for the client to read.
    assert_eq!(h.catch_up_all(), CatchUpStatus::Waiting);
    assert_eq!(h.hub.stream_backlog(s).unwrap().events, 2);
    let out = h.settle(s);
    let revs: Vec<i64> = events_of(&out).iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revs, (1..=10).collect::<Vec<_>>());
    assert!(out.iter().all(|r| !r.canceled));
    assert_eq!(h.hub.unsynced_watcher_count(), 0);
}

#[test]
fn a_revision_larger_than_the_queue_cancels_the_watcher() {
    let config = WatchConfig {
        stream_queue_events_max: 2,
        ..WatchConfig::default()
    };
    let mut h = Harness::new(config);
    let s = h.hub.open_stream(0);
    h.hub
        .create_watch(s, WatchCreateRequest::prefix("k"))
        .unwrap();
    h.drain(s);
    h.apply(&[put("k1", "a"), put("k2", "b"), put("k3", "c")]);
    let out = h.drain(s);
    assert_eq!(out.len(), 1);
    assert!(out[0].canceled);
    assert!(
        out[0]
            .cancel_reason
            .starts_with("revision 1 holds 3 matching events"),
        "{}",
        out[0].cancel_reason
    );
}

#[test]
fn progress_request_is_answered_once_all_watchers_are_synced() {
    let config = WatchConfig {
        replay_batch_events_max: 1,
        ..WatchConfig::default()
    };
    let mut h = Harness::new(config);
    let s = h.hub.open_stream(0);
    h.hub.request_progress(s).unwrap();
    assert_eq!(
        h.hub.poll_stream(s),
        None,
        "no watchers: no answer, as etcd"
    );
    h.put("k", "1");
    h.put("k", "2");
    h.hub.create_watch(s, WatchCreateRequest::key("k")).unwrap();
    h.hub
        .create_watch(s, WatchCreateRequest::key("k").with_start_revision(1))
        .unwrap();
    h.hub.request_progress(s).unwrap();
    h.hub.request_progress(s).unwrap();
    assert_eq!(
        h.drain(s).len(),
        2,
        "only the two creations: progress is deferred"
    );
    h.put("k", "3");
    h.catch_up_all();
    let out = h.drain(s);
    assert_eq!(
        render_all(&out),
        "watch 0 @3\n    PUT k=3 c1 m3 v3\n\
         watch 1 @1\n    PUT k=1 c1 m1 v1\n\
         watch 1 @2\n    PUT k=2 c1 m2 v2\n\
         watch 1 @3\n    PUT k=3 c1 m3 v3\n\
         watch -1 @3 progress\n",
        "both requests collapse into one, after every event up to its revision"
    );
    h.hub.request_progress(s).unwrap();
    assert_eq!(render_all(&h.drain(s)), "watch -1 @3 progress\n");
}

#[test]
fn periodic_progress_goes_to_idle_synced_progress_notify_watchers() {
    let config = WatchConfig {
        progress_interval_ms: 1000,
        ..WatchConfig::default()
    };
    let mut h = Harness::new(config);
    h.put("busy", "0");
    let s = h.hub.open_stream(50);
    assert_eq!(h.hub.next_progress_deadline_ms(), None);
    let idle = WatchCreateRequest::key("idle").with_progress_notify();
    let busy = WatchCreateRequest::key("busy").with_progress_notify();
    let replaying = WatchCreateRequest::key("busy")
        .with_progress_notify()
        .with_start_revision(1);
    h.hub.create_watch(s, idle).unwrap();
    h.hub.create_watch(s, busy).unwrap();
    h.hub.create_watch(s, replaying).unwrap();
    h.hub
        .create_watch(s, WatchCreateRequest::key("plain"))
        .unwrap();
    h.drain(s);
    assert_eq!(h.hub.next_progress_deadline_ms(), Some(1050));
    h.hub.tick_progress(1049);
    assert_eq!(h.hub.poll_stream(s), None);
    h.put("busy", "1");
    h.drain(s);
    h.hub.tick_progress(1050);
    assert_eq!(
        render_all(&h.drain(s)),
        "watch 0 @2 progress\n",
        "busy got events since the last tick and the replaying watcher is unsynced"
    );
    assert_eq!(h.hub.next_progress_deadline_ms(), Some(2050));
    h.catch_up_all();
    h.drain(s);
    // Ticks missed are dropped; the ticker keeps its phase.
    h.hub.tick_progress(3500);
    assert_eq!(
        render_all(&h.drain(s)),
        "watch 0 @2 progress\nwatch 1 @2 progress\n",
        "the replaying watcher got events when it caught up"
    );
    assert_eq!(h.hub.next_progress_deadline_ms(), Some(4050));
    h.hub.tick_progress(4050);
    assert_eq!(h.drain(s).len(), 3);
}

#[test]
fn restored_store_moves_synced_watchers_back_to_catch_up() {
    let mut h = harness();
    let s = h.hub.open_stream(0);
    h.hub.create_watch(s, WatchCreateRequest::key("k")).unwrap();
    h.put("k", "1");
    // The store jumps ahead (a snapshot) without the hub seeing the revisions one by one.
    for i in 2..=4 {
        h.store.apply(&[put("k", &i.to_string())]);
    }
    h.hub.on_restored(4).unwrap();
    assert_eq!(h.hub.unsynced_watcher_count(), 1);
    let out = h.settle(s);
    let revs: Vec<i64> = events_of(&out).iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revs, [1, 2, 3, 4]);
    assert_eq!(
        h.hub.on_restored(3),
        Err(AppliedError::RevisionNotIncreasing {
            revision: 3,
            current_revision: 4
        })
    );
}

/// A synced watcher has seen everything up to the revision before the snapshot, so a
/// quiet one does not replay from its creation (which compaction may have removed).
#[test]
fn a_quiet_watcher_survives_a_restore_over_compacted_history() {
    let mut h = harness();
    h.put("k", "1");
    let s = h.hub.open_stream(0);
    h.hub.create_watch(s, WatchCreateRequest::key("k")).unwrap();
    for i in 0..5 {
        h.put("other", &i.to_string());
    }
    h.store.apply(&[put("k", "2")]);
    h.store.compact(h.store.revision() - 1);
    h.hub.on_restored(h.store.revision()).unwrap();
    let out = h.settle(s);
    assert_eq!(
        render_all(&out),
        "watch 0 @1 created\nwatch 0 @7\n    PUT k=2 c1 m7 v2\n"
    );
}

#[test]
fn revisions_must_increase() {
    let mut h = harness();
    h.put("a", "1");
    assert!(h.hub.on_applied(1, &[]).is_err());
    assert!(h.hub.on_applied(2, &[]).is_ok());
}

#[test]
fn a_backlogged_stream_refuses_new_watchers_without_queueing() {
    let config = WatchConfig {
        stream_queue_responses_max: 2,
        ..WatchConfig::default()
    };
    let mut h = Harness::new(config);
    let s = h.hub.open_stream(0);
    h.hub.create_watch(s, WatchCreateRequest::key("a")).unwrap();
    h.hub.create_watch(s, WatchCreateRequest::key("b")).unwrap();
    assert!(!h.hub.stream_has_room(s));
    assert!(matches!(
        h.hub.create_watch(s, WatchCreateRequest::key("c")),
        Err(CreateWatchError::Backlogged { .. })
    ));
    assert_eq!(h.hub.stream_backlog(s).unwrap().responses, 2);
}

#[test]
fn config_limits_must_be_positive() {
    let config = WatchConfig {
        catch_up_watchers_max: 0,
        ..WatchConfig::default()
    };
    assert_eq!(
        WatchHub::new(config, 0).err(),
        Some(WatchConfigError::Zero {
            field: "catch_up_watchers_max"
        })
    );
}

#[test]
fn catch_up_work_per_call_is_bounded_and_round_robin() {
    let config = WatchConfig {
        catch_up_watchers_max: 2,
        replay_batch_events_max: 1,
        ..WatchConfig::default()
    };
    let mut h = Harness::new(config);
    for i in 1..=3 {
        h.put("k", &i.to_string());
    }
    let s = h.hub.open_stream(0);
    for _ in 0..3 {
        h.hub
            .create_watch(s, WatchCreateRequest::key("k").with_start_revision(1))
            .unwrap();
    }
    h.drain(s);
    assert_eq!(h.hub.catch_up(&h.store), CatchUpStatus::MorePending);
    assert_eq!(h.hub.catch_up(&h.store), CatchUpStatus::MorePending);
    let first_batches: Vec<WatchId> = h.drain(s).iter().map(|r| r.watch_id).collect();
    assert_eq!(
        first_batches,
        [WatchId(0), WatchId(1), WatchId(2), WatchId(0)]
    );
    assert_eq!(h.catch_up_all(), CatchUpStatus::Done);
}

/// The store may end a history page early (it bounds its scans); only `next_revision` says
/// how far the page got, and a short page does not mean the watcher has caught up.
#[test]
fn short_history_pages_are_followed_to_the_end() {
    let mut h = harness();
    h.store.history_scan_max = Some(1);
    h.put("rare", "1");
    for i in 0..10 {
        h.put("busy", &i.to_string());
    }
    h.put("rare", "2");
    let s = h.hub.open_stream(0);
    h.hub
        .create_watch(s, WatchCreateRequest::key("rare").with_start_revision(1))
        .unwrap();
    assert_eq!(h.hub.catch_up(&h.store), CatchUpStatus::MorePending);
    assert_eq!(h.catch_up_all(), CatchUpStatus::Done);
    let out = h.drain(s);
    assert_eq!(
        keys_revs(&events_of(&out)),
        kr(&[("rare", 1), ("rare", 12)])
    );
}

/// A store that has applied revisions the hub has not been told about yet: catch-up leaves
/// them to `on_applied`, so they arrive once.
#[test]
fn history_ahead_of_the_hub_is_delivered_once() {
    let mut h = harness();
    h.put("k", "1");
    let s = h.hub.open_stream(0);
    h.hub
        .create_watch(s, WatchCreateRequest::key("k").with_start_revision(1))
        .unwrap();
    let (revision, events) = h.store.apply(&[put("k", "2")]).unwrap();
    assert_eq!(h.catch_up_all(), CatchUpStatus::Done);
    h.hub.on_applied(revision, &events).unwrap();
    let out = h.drain(s);
    assert_eq!(
        render_all(&out),
        "watch 0 @1 created\nwatch 0 @1\n    PUT k=1 c1 m1 v1\nwatch 0 @2\n    PUT k=2 c1 m2 v2\n"
    );
}
