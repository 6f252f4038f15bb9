//! State-machine snapshot files in `snap/`.
//!
//! One file per snapshot, named `{index:016x}-{term:016x}.snap` (so names sort by index),
//! written atomically (temp, fsync, rename, fsync dir). Layout:
//!
//! ```text
//! offset  size  field
//!      0     8  magic "SXTSNAP1"
//!      8     4  meta length m, u32 LE
//!     12     8  data length d, u64 LE
//!     20     4  crc32c(meta), u32 LE
//!     24     4  crc32c(data), u32 LE
//!     28     4  crc32c(bytes 0..28), u32 LE
//!     32     m  postcard(SnapshotMeta)
//!   32+m     d  data
//! ```
//!
//! A snapshot file only counts once the write-ahead log records it (see `wal.rs`): a file the
//! log does not know about is left over from a crash and is removed on open.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sextant_core::{Index, Snapshot, SnapshotMeta};

use super::atomic::{write_atomic, TMP_SUFFIX};
use super::error::{IoContext, IoFail, OpenError};
use super::io::Io;
use super::wal::SnapRef;

const MAGIC: &[u8; 8] = b"SXTSNAP1";
const HEADER_LEN: usize = 32;
const SUFFIX: &str = ".snap";

pub(crate) fn file_name(s: SnapRef) -> String {
    format!("{:016x}-{:016x}{SUFFIX}", s.index, s.term)
}

/// The snapshot position a file name stands for, if it is a snapshot file name.
pub(crate) fn parse_file_name(name: &str) -> Option<SnapRef> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (index, term) = stem.split_once('-')?;
    Some(SnapRef {
        index: parse_hex16(index)?,
        term: parse_hex16(term)?,
    })
}

pub(crate) fn parse_hex16(s: &str) -> Option<u64> {
    if s.len() != 16
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Writes `snap` durably under its own name in `dir`.
pub(crate) fn write_snapshot(io: &Io, dir: &Path, snap: &Snapshot) -> Result<(), IoFail> {
    let meta = postcard::to_allocvec(&snap.meta).map_err(|e| {
        IoFail::new(
            "encode snapshot meta for",
            dir,
            std::io::Error::other(e.to_string()),
        )
    })?;
    let mut head = [0u8; HEADER_LEN];
    head[0..8].copy_from_slice(MAGIC);
    head[8..12].copy_from_slice(&(meta.len() as u32).to_le_bytes());
    head[12..20].copy_from_slice(&(snap.data.len() as u64).to_le_bytes());
    head[20..24].copy_from_slice(&crc32c::crc32c(&meta).to_le_bytes());
    head[24..28].copy_from_slice(&crc32c::crc32c(&snap.data).to_le_bytes());
    let hcrc = crc32c::crc32c(&head[..28]);
    head[28..32].copy_from_slice(&hcrc.to_le_bytes());
    let name = file_name(SnapRef::of(&snap.meta));
    write_atomic(io, dir, &name, &[&head, &meta, &snap.data])
}

/// A snapshot file's fixed header, checked: magic, header checksum, and lengths that add up
/// to the file's length.
struct Header {
    meta_len: usize,
    meta_crc: u32,
    data_crc: u32,
}

fn header(file: &[u8]) -> Result<Header, String> {
    if file.len() < HEADER_LEN {
        return Err(format!("file too short ({} bytes)", file.len()));
    }
    if &file[0..8] != MAGIC {
        return Err("not a snapshot file (bad magic)".into());
    }
    let u32_at = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap_or([0; 4]));
    if u32_at(28) != crc32c::crc32c(&file[..28]) {
        return Err("header checksum mismatch".into());
    }
    let meta_len = u32_at(8) as u64;
    let data_len = u64::from_le_bytes(file[12..20].try_into().unwrap_or([0; 8]));
    let expected = (HEADER_LEN as u64)
        .checked_add(meta_len)
        .and_then(|n| n.checked_add(data_len));
    if expected != Some(file.len() as u64) {
        return Err(format!(
            "file is {} bytes, header says {} + {meta_len} + {data_len}",
            file.len(),
            HEADER_LEN
        ));
    }
    Ok(Header {
        meta_len: meta_len as usize,
        meta_crc: u32_at(20),
        data_crc: u32_at(24),
    })
}

/// Decodes a snapshot file's bytes, checking every checksum and length.
pub(crate) fn decode(bytes: Vec<u8>) -> Result<Snapshot, String> {
    let head = header(&bytes)?;
    let meta_end = HEADER_LEN + head.meta_len;
    let meta_bytes = &bytes[HEADER_LEN..meta_end];
    if crc32c::crc32c(meta_bytes) != head.meta_crc {
        return Err("meta checksum mismatch".into());
    }
    if crc32c::crc32c(&bytes[meta_end..]) != head.data_crc {
        return Err("data checksum mismatch".into());
    }
    let (meta, rest) = postcard::take_from_bytes::<SnapshotMeta>(meta_bytes)
        .map_err(|e| format!("undecodable meta: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the meta".into());
    }
    // A view of the buffer read, not a copy of its tail (it can be the whole state machine).
    Ok(Snapshot {
        meta,
        data: Bytes::from(bytes).slice(meta_end..),
    })
}

/// Loads the snapshot at `want` from `dir`.
pub(crate) fn load(dir: &Path, want: SnapRef) -> Result<Snapshot, OpenError> {
    let path = dir.join(file_name(want));
    let bad = |reason: String| OpenError::Snapshot {
        path: path.clone(),
        reason,
    };
    let bytes = fs::read(&path).map_err(|e| {
        bad(format!(
            "cannot read the snapshot the log starts after: {e}"
        ))
    })?;
    let snap = decode(bytes).map_err(bad)?;
    if SnapRef::of(&snap.meta) != want {
        return Err(bad(format!(
            "file holds the snapshot at index {} term {}",
            snap.meta.index, snap.meta.term
        )));
    }
    Ok(snap)
}

/// The data of the snapshot file `want` in `dir`, memory-mapped: the bytes stay in the page
/// cache instead of the heap, and are read from the disk only when something (sending the
/// snapshot to a lagging follower) touches them. Checks the header and the lengths, not the
/// data's checksum (that would read it all; the file was verified when loaded or written by
/// this process).
pub(crate) fn map_data(dir: &Path, want: SnapRef) -> Result<Bytes, String> {
    let path = dir.join(file_name(want));
    let file = fs::File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
    // SAFETY: snapshot files are written once under a temporary name and renamed into
    // place; nothing writes to or truncates them afterwards, only unlinks them, which keeps
    // the mapping valid. (Someone truncating the file by hand would crash the process, as
    // with etcd's memory-mapped database.)
    let map =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("map {}: {e}", path.display()))?;
    let head = header(&map).map_err(|e| format!("{}: {e}", path.display()))?;
    let start = HEADER_LEN + head.meta_len;
    Ok(Bytes::from_owner(map).slice(start..))
}

/// The snapshot files in `dir` (ascending by index, then term), after removing leftover
/// temporary files. Anything else in the directory is refused.
pub(crate) fn list(dir: &Path) -> Result<Vec<SnapRef>, OpenError> {
    let mut found = Vec::new();
    for name in super::layout::dir_names(dir)? {
        if name.ends_with(TMP_SUFFIX) {
            let p = dir.join(&name);
            fs::remove_file(&p).ctx("remove leftover temporary file", &p)?;
            continue;
        }
        match parse_file_name(&name) {
            Some(s) if dir.join(&name).is_file() => found.push(s),
            _ => {
                return Err(OpenError::UnexpectedFile {
                    path: dir.join(name),
                })
            }
        }
    }
    found.sort_by_key(|s| (s.index, s.term));
    Ok(found)
}

/// Removes snapshot files that are not needed: any newer than `current` (written before a
/// crash, never recorded in the log), and all but the `keep - 1` newest older ones. The
/// current snapshot is always kept. Returns the removed paths.
pub(crate) fn gc(
    dir: &Path,
    current: Option<SnapRef>,
    keep: usize,
) -> Result<Vec<PathBuf>, IoFail> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).ctx("list", dir)? {
        let entry = entry.ctx("list", dir)?;
        if let Some(s) = entry.file_name().to_str().and_then(parse_file_name) {
            files.push(s);
        }
    }
    files.sort_by_key(|s| std::cmp::Reverse((s.index, s.term)));
    let cur_index: Index = current.map_or(0, |c| c.index);
    let mut older_kept = 0usize;
    let mut removed = Vec::new();
    for s in files {
        let drop = if Some(s) == current {
            false
        } else if current.is_none() || s.index >= cur_index {
            true
        } else {
            older_kept += 1;
            older_kept >= keep.max(1)
        };
        if drop {
            let p = dir.join(file_name(s));
            fs::remove_file(&p).ctx("remove old snapshot", &p)?;
            removed.push(p);
        }
    }
    Ok(removed)
}

impl SnapRef {
    pub(crate) fn of(meta: &SnapshotMeta) -> SnapRef {
        SnapRef {
            index: meta.index,
            term: meta.term,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_core::{ConfState, Term};

    fn snap(index: Index, term: Term, data: &'static [u8]) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                conf: ConfState::with_voters([1, 2, 3]),
            },
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn names_round_trip_and_sort_by_index() {
        let s = SnapRef {
            index: 0x1234,
            term: 7,
        };
        assert_eq!(parse_file_name(&file_name(s)), Some(s));
        assert_eq!(
            parse_file_name("00000000000012340000000000000007.snap"),
            None
        );
        assert_eq!(
            parse_file_name("000000000000123G-0000000000000007.snap"),
            None
        );
        assert!(
            file_name(SnapRef { index: 9, term: 99 }) < file_name(SnapRef { index: 10, term: 1 })
        );
    }

    #[test]
    fn write_load_and_detect_damage() {
        let dir = tempfile::tempdir().unwrap();
        let s = snap(10, 2, b"state machine bytes");
        write_snapshot(&Io::default(), dir.path(), &s).unwrap();
        let r = SnapRef::of(&s.meta);
        assert_eq!(load(dir.path(), r).unwrap(), s);
        let path = dir.path().join(file_name(r));
        let good = fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x10;
            assert!(decode(b).is_err(), "flip at {i} undetected");
        }
        for cut in 0..good.len() {
            assert!(
                decode(good[..cut].to_vec()).is_err(),
                "cut at {cut} undetected"
            );
        }
        // A file renamed to another position is refused.
        fs::rename(
            &path,
            dir.path().join(file_name(SnapRef { index: 11, term: 2 })),
        )
        .unwrap();
        assert!(load(dir.path(), SnapRef { index: 11, term: 2 }).is_err());
    }

    #[test]
    fn gc_keeps_current_and_newest_older() {
        let dir = tempfile::tempdir().unwrap();
        for i in 1..=6 {
            write_snapshot(&Io::default(), dir.path(), &snap(i * 10, 1, b"x")).unwrap();
        }
        let current = SnapRef { index: 40, term: 1 };
        gc(dir.path(), Some(current), 3).unwrap();
        let left: Vec<_> = list(dir.path()).unwrap().iter().map(|s| s.index).collect();
        assert_eq!(left, vec![20, 30, 40]);
    }
}
