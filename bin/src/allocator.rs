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

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`, checked by
/// the kernel at each page fault, so it also covers memory mapped before the call). mimalloc
/// asks for huge pages on its arenas (`MADV_HUGEPAGE`), and each first touch of a 2 MiB
/// region then zeroes all of it inside the page fault: 8.7 % of all CPU samples of a
/// 3-member cluster under 100-client puts went to that zeroing (`clear_page_erms` under
/// `mi_page_free_list_extend`), on the runtime threads. Without it, the same run gave
/// about 13 % more puts per second and half the p99 (README, "Benchmarks").
/// The server calls it before starting its runtime. Failure (a kernel without the call)
/// only loses the gain, so it is logged, not fatal.
pub fn no_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes a flag of this
    // process's memory map.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
