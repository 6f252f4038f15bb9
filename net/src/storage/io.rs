//! The seam every storage write and sync goes through, with optional injected faults.
//!
//! Production code passes no [`FaultInjector`] and the calls go straight to `std::fs`. Tests
//! hand one in through [`StorageOptions::faults`](super::StorageOptions::faults) to make the
//! disk "fill up" (writes fail with `StorageFull` after a byte budget, the crossing write done
//! partially, as a real full disk does) or fsync fail, exercising the real error paths of the
//! storage rather than a mock of it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A handle to arm injected faults; clones share the same state, so a test keeps one clone
/// and arms it while the storage holds another.
#[derive(Clone, Debug, Default)]
pub struct FaultInjector {
    state: Arc<FaultState>,
}

#[derive(Debug)]
struct FaultState {
    /// Bytes that may still be written; `u64::MAX` means unlimited.
    write_budget: AtomicU64,
    fail_sync: AtomicBool,
}

impl Default for FaultState {
    fn default() -> Self {
        FaultState {
            write_budget: AtomicU64::new(u64::MAX),
            fail_sync: AtomicBool::new(false),
        }
    }
}

impl FaultInjector {
    pub fn new() -> Self {
        FaultInjector::default()
    }

    /// The disk fills up after `bytes` more bytes: the write that crosses the limit writes
    /// what fits and then fails with `ErrorKind::StorageFull`, as do all later writes.
    pub fn disk_full_after(&self, bytes: u64) {
        self.state.write_budget.store(bytes, Ordering::SeqCst);
    }

    /// While set, every fsync / fdatasync fails with an I/O error (without syncing).
    pub fn fail_syncs(&self, fail: bool) {
        self.state.fail_sync.store(fail, Ordering::SeqCst);
    }

    /// Removes every armed fault.
    pub fn heal(&self) {
        self.state.write_budget.store(u64::MAX, Ordering::SeqCst);
        self.state.fail_sync.store(false, Ordering::SeqCst);
    }

    /// How many of `want` bytes may be written now (and takes them from the budget).
    fn take_budget(&self, want: usize) -> usize {
        let want = want as u64;
        let prev = self
            .state
            .write_budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(if b == u64::MAX { b } else { b - b.min(want) })
            })
            .unwrap_or(u64::MAX);
        prev.min(want) as usize
    }

    fn sync_fails(&self) -> bool {
        self.state.fail_sync.load(Ordering::SeqCst)
    }
}

/// File writes and syncs, through the fault injector when there is one.
#[derive(Clone, Debug, Default)]
pub(crate) struct Io {
    faults: Option<FaultInjector>,
}

impl Io {
    pub fn new(faults: Option<FaultInjector>) -> Self {
        Io { faults }
    }

    /// Writes all of `buf` at byte `offset` of `file` (pwrite; the file position is unused).
    pub fn write_all_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        if let Some(f) = &self.faults {
            let allowed = f.take_budget(buf.len());
            if allowed < buf.len() {
                file.write_all_at(&buf[..allowed], offset)?;
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "no space left on device (injected fault)",
                ));
            }
        }
        file.write_all_at(buf, offset)
    }

    fn check_sync(&self) -> io::Result<()> {
        match &self.faults {
            Some(f) if f.sync_fails() => Err(io::Error::other(
                "input/output error during fsync (injected fault)",
            )),
            _ => Ok(()),
        }
    }

    /// fdatasync: the data and the file size, not other metadata.
    pub fn sync_data(&self, file: &File) -> io::Result<()> {
        self.check_sync()?;
        file.sync_data()
    }

    /// fsync: data and all metadata (for newly created files).
    pub fn sync_all(&self, file: &File) -> io::Result<()> {
        self.check_sync()?;
        file.sync_all()
    }

    /// fsync of a directory, making creations, renames and removals in it durable.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check_sync()?;
        File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_shared_between_clones_and_partial() {
        let f = FaultInjector::new();
        let g = f.clone();
        assert_eq!(f.take_budget(10), 10);
        g.disk_full_after(5);
        assert_eq!(f.take_budget(3), 3);
        assert_eq!(f.take_budget(3), 2);
        assert_eq!(f.take_budget(3), 0);
        g.heal();
        assert_eq!(f.take_budget(100), 100);
    }
}
