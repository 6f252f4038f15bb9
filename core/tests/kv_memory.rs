//! Memory per key of the key-value store: loads 100k keys of 256-byte values and reports the
//! heap bytes per key, measured by a counting allocator (bytes requested; the allocator's own
//! per-block overhead comes on top) and by the store's own accounting (`memory_bytes`), and
//! what sharing the values with a stored snapshot frees.
//! Run with `--nocapture` to see the figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use sextant_core::kv::{Command, KvStore, PutRequest};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const KEYS: usize = 100_000;
const VALUE_BYTES: usize = 256;

fn put(i: usize, round: u8) -> Command {
    Command::Put(PutRequest {
        key: Bytes::from(format!("key/{i:06}")),
        value: Bytes::from(vec![round; VALUE_BYTES]),
        ..Default::default()
    })
}

fn live() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

#[test]
fn memory_per_key() {
    let base = live();
    let mut s = KvStore::new();
    for i in 0..KEYS {
        s.apply(&put(i, 1)).unwrap();
    }
    let measured = (live() - base) as f64 / KEYS as f64;
    let accounted = s.memory_bytes() as f64 / KEYS as f64;
    let payload = (10 + VALUE_BYTES) as f64;
    eprintln!(
        "{KEYS} keys of {VALUE_BYTES} B: {measured:.0} B/key measured, {accounted:.0} B/key \
         accounted, payload {payload:.0} B/key (overhead {:.0} B/key measured)",
        measured - payload
    );
    assert!(
        (accounted - measured).abs() / measured < 0.15,
        "accounting is off"
    );
    assert!(measured < payload + 300.0, "index overhead grew");

    // A second version of every key doubles the values; compacting drops the old ones.
    for i in 0..KEYS {
        s.apply(&put(i, 2)).unwrap();
    }
    let two_versions = (live() - base) as f64 / KEYS as f64;
    s.apply(&Command::Compact {
        revision: s.revision(),
        physical: true,
    })
    .unwrap();
    let compacted = (live() - base) as f64 / KEYS as f64;
    eprintln!(
        "after rewriting every key: {two_versions:.0} B/key; compacted: {compacted:.0} B/key \
         ({:.0} accounted)",
        s.memory_bytes() as f64 / KEYS as f64
    );
    assert!(
        compacted < measured + 40.0,
        "compaction did not give the memory back"
    );
    drop(s);
    assert!(live() - base < 64 * 1024, "the store leaked");

    // Once the storage hands a snapshot back (in production memory-mapped from its file, so
    // not heap), the values it holds leave the heap. Here the stored copy is a heap buffer,
    // counted apart.
    let mut s = KvStore::new();
    for i in 0..KEYS {
        s.apply(&put(i, 3)).unwrap();
    }
    let loaded = live() - base;
    let encoded = s.snapshot();
    let stored = Bytes::from(encoded.to_vec());
    let shared = s.share_values(&encoded, &stored);
    assert_eq!(shared.versions, KEYS);
    drop(encoded);
    let after = live() - base - stored.len() as isize;
    let freed = (loaded - after) as f64 / KEYS as f64;
    eprintln!(
        "values shared from a stored snapshot: {:.0} B/key on the heap (was {:.0}), \
         {freed:.0} B/key freed",
        after as f64 / KEYS as f64,
        loaded as f64 / KEYS as f64
    );
    assert!(freed >= VALUE_BYTES as f64, "the values stayed on the heap");
    drop((s, stored));
    assert!(live() - base < 64 * 1024, "sharing leaked");
}
