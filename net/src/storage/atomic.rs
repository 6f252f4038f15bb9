//! Whole-file atomic replacement: write a temporary file, fsync it, rename it over the target,
//! fsync the directory. After a crash the target holds either the old or the new content,
//! never a mix; a leftover `*.tmp` is removed on the next open.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use super::error::{IoContext, IoFail};
use super::io::Io;

/// A large file is synced every so many bytes as it is written: the disk then never holds
/// hundreds of megabytes of it unwritten at once, which a log's fsync meanwhile (another
/// thread's) would queue behind.
const SYNC_EVERY_BYTES: usize = 8 << 20;

/// Suffix of the temporary files; `open` deletes any it finds.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Atomically (re)places `dir/name` with the concatenation of `parts`; durable on return.
pub(crate) fn write_atomic(io: &Io, dir: &Path, name: &str, parts: &[&[u8]]) -> Result<(), IoFail> {
    let target = dir.join(name);
    let tmp = tmp_path(dir, name);
    let result = write_tmp(io, &tmp, parts).and_then(|()| {
        fs::rename(&tmp, &target).ctx("rename into place", &target)?;
        io.sync_dir(dir).ctx("fsync directory", dir)
    });
    if result.is_err() {
        // Best effort: the next open removes it anyway.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_tmp(io: &Io, tmp: &Path, parts: &[&[u8]]) -> Result<(), IoFail> {
    let file: File = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .ctx("create", tmp)?;
    let mut at = 0u64;
    let mut unsynced = 0;
    for part in parts {
        for piece in part.chunks(SYNC_EVERY_BYTES) {
            io.write_all_at(&file, piece, at).ctx("write", tmp)?;
            at += piece.len() as u64;
            unsynced += piece.len();
            if unsynced >= SYNC_EVERY_BYTES {
                io.sync_data(&file).ctx("fdatasync", tmp)?;
                unsynced = 0;
            }
        }
    }
    io.sync_all(&file).ctx("fsync", tmp)
}

fn tmp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{TMP_SUFFIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::io::FaultInjector;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let io = Io::default();
        write_atomic(&io, dir.path(), "f", &[b"hello ", b"world"]).unwrap();
        write_atomic(&io, dir.path(), "f", &[b"bye"]).unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"bye");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_write_keeps_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let faults = FaultInjector::new();
        let io = Io::new(Some(faults.clone()));
        write_atomic(&io, dir.path(), "f", &[b"old"]).unwrap();
        faults.disk_full_after(2);
        let err = write_atomic(&io, dir.path(), "f", &[b"new content"]).unwrap_err();
        assert_eq!(err.source.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
