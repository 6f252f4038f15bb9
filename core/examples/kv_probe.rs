//! Memory and speed of the key-value store at scale, for the benchmark work (issue: 1M keys
//! of 256 bytes per member, restart under 2 s). Applies N puts (16-byte sequential keys,
//! 256-byte values), then snapshots, restores, and shares the values with a stored copy of
//! the snapshot, printing the live heap per key (counted by a wrapping allocator) and the
//! time of each step:
//!
//! ```sh
//! cargo run --release -p sextant-core --example kv_probe -- 1000000
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use sextant_core::kv::{Command, KvStore, PutRequest};

/// The system allocator, counting the bytes it has handed out and not taken back.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE_BYTES.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

fn main() {
    let n: usize = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 200_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: kv_probe [KEYS]");
            std::process::exit(2);
        }
    };
    let base = live();
    let mut kv = KvStore::new();
    let start = Instant::now();
    for i in 0..n {
        let put = PutRequest {
            key: Bytes::from(format!("{i:016}")),
            value: Bytes::from(vec![b'v'; 256]),
            ..Default::default()
        };
        kv.apply(&Command::Put(put)).expect("put applies");
    }
    println!(
        "{n} puts: {:.2?}; live heap {} B/key (the store's own estimate {} B/key)",
        start.elapsed(),
        (live() - base) / n,
        kv.memory_bytes() / n
    );
    let start = Instant::now();
    let snap = kv.snapshot();
    println!(
        "snapshot: {:.2?}, {} B/key",
        start.elapsed(),
        snap.len() / n
    );
    drop(kv);
    let base = live();
    let start = Instant::now();
    let mut restored = KvStore::restore_bytes(&snap).expect("own snapshot restores");
    println!(
        "restore (values left in the snapshot's buffer): {:.2?}; live heap besides the \
         buffer {} B/key",
        start.elapsed(),
        (live() - base) / n
    );
    assert_eq!(restored.len(), n);
    // The stored copy stands for the memory-mapped snapshot file: counted apart.
    let stored = Bytes::from(snap.to_vec());
    let start = Instant::now();
    let shared = restored.share_values(&snap, &stored);
    let took = start.elapsed();
    let base = base - snap.len() + stored.len();
    drop(snap);
    println!(
        "share the values with a stored copy: {took:.2?} ({} versions); live heap besides \
         the copy {} B/key",
        shared.versions,
        (live() - base) / n
    );
}
