//! The store as the watch hub's history source: [`WatchHistory`] over [`KvStore::history`].
//! Both follow etcd's unsynced-watcher semantics (whole revisions, a start at the compaction
//! point allowed, below it refused), so this is a plain mapping.

use bytes::Bytes;

use super::history::HistoryRequest;
use super::{KvError, KvStore};
use crate::watch::{Compacted, HistoryPage, WatchHistory};

impl WatchHistory for KvStore {
    fn events(
        &self,
        key: &Bytes,
        range_end: &Bytes,
        from_revision: i64,
        events_max: usize,
    ) -> Result<HistoryPage, Compacted> {
        let req = HistoryRequest {
            key: key.clone(),
            range_end: range_end.clone(),
            start_revision: from_revision,
            events_max,
        };
        match self.history(&req) {
            Ok(batch) => Ok(HistoryPage {
                events: batch.events,
                next_revision: batch.next_revision,
            }),
            Err(KvError::Compacted { compact_revision }) => Err(Compacted { compact_revision }),
            // The history fails only as compacted; anything else would be a store bug, and
            // the safe answer for a watcher is to start over from the compaction point.
            Err(_) => Err(Compacted {
                compact_revision: self.compact_revision(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Command, PutRequest};
    use crate::watch::{WatchConfig, WatchCreateRequest, WatchHub};

    fn put(key: &'static str, value: &'static str) -> Command {
        Command::Put(PutRequest {
            key: Bytes::from_static(key.as_bytes()),
            value: Bytes::from_static(value.as_bytes()),
            ..PutRequest::default()
        })
    }

    #[test]
    fn pages_follow_the_store_history_and_compaction() {
        let mut kv = KvStore::new();
        for (k, v) in [("a", "1"), ("b", "2"), ("a", "3")] {
            kv.apply(&put(k, v)).unwrap();
        }
        let a = Bytes::from_static(b"a");
        let page = WatchHistory::events(&kv, &a, &Bytes::new(), 1, 100).unwrap();
        let revisions: Vec<i64> = page.events.iter().map(|e| e.kv.mod_revision).collect();
        assert_eq!(revisions, [2, 4]);
        assert_eq!(page.next_revision, 5);
        // One event per page: stops at the next revision boundary.
        let page = WatchHistory::events(&kv, &a, &Bytes::from_static(b"\0"), 2, 1).unwrap();
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.next_revision, 3);

        kv.apply(&Command::Compact {
            revision: 3,
            physical: false,
        })
        .unwrap();
        assert_eq!(
            WatchHistory::events(&kv, &a, &Bytes::new(), 2, 100),
            Err(Compacted {
                compact_revision: 3
            })
        );
        assert!(WatchHistory::events(&kv, &a, &Bytes::new(), 3, 100).is_ok());
    }

    #[test]
    fn a_hub_replays_from_the_store() {
        let mut kv = KvStore::new();
        for (k, v) in [("a", "1"), ("a", "2")] {
            kv.apply(&put(k, v)).unwrap();
        }
        let mut hub = WatchHub::new(WatchConfig::default(), kv.revision()).unwrap();
        let stream = hub.open_stream(0);
        hub.create_watch(stream, WatchCreateRequest::key("a").with_start_revision(1))
            .unwrap();
        hub.catch_up(&kv);
        let responses: Vec<_> = hub.drain_ready().into_iter().map(|(_, r)| r).collect();
        assert!(responses[0].created);
        let values: Vec<&[u8]> = responses[1]
            .events
            .iter()
            .map(|e| e.kv.value.as_ref())
            .collect();
        assert_eq!(values, [b"1".as_slice(), b"2".as_slice()]);
    }
}
