//! The process's allocator (mimalloc: small allocations such as keys, values and index nodes
//! without per-chunk headers, and less fragmentation across the runtime threads than glibc
//! malloc), and its housekeeping.

use std::cell::Cell;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often at most a runtime thread hands its freed memory back as it goes idle.
const COLLECT_EVERY: Duration = Duration::from_secs(1);

/// Runs on a runtime worker thread about to go idle (tokio's `on_thread_park`): at most once
/// per [`COLLECT_EVERY`], returns the memory freed in this thread's heap to the OS. mimalloc
/// does that only in later allocations on the same thread, so a member that went idle right
/// after a large free (its snapshot's values moved onto the stored file: ~250 MB with a
/// million keys) went on holding it, twice the resident memory of its peers.
pub fn collect_when_idle() {
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    if LAST
        .get()
        .is_some_and(|last| now.duration_since(last) < COLLECT_EVERY)
    {
        return;
    }
    LAST.set(Some(now));
    // SAFETY: mi_collect only works on the calling thread's own heap and takes no pointers.
    unsafe { libmimalloc_sys::mi_collect(false) };
}
