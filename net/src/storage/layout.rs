//! The data directory: its layout, the format file, first-time initialisation, and refusing
//! directories that are not ours.
//!
//! ```text
//! <dir>/FORMAT           "sextant-storage format 1\n", written atomically, last, on init
//! <dir>/wal/*.wal        log segments (wal.rs)
//! <dir>/snap/*.snap      snapshot files (snap.rs)
//! ```
//!
//! Initialisation creates `wal/` with its first segment and `snap/`, makes them durable and
//! only then writes `FORMAT`: the format file marks a complete store. A directory without it
//! that holds exactly what an interrupted initialisation leaves (nothing but an empty first
//! segment) is initialised again; any other content without a format file is refused.

use std::fs;
use std::path::Path;

use super::atomic::{write_atomic, TMP_SUFFIX};
use super::error::{IoContext, IoFail, OpenError};
use super::io::Io;
use super::wal::{initial_segment, segment_name, Wal};

pub(crate) const FORMAT_FILE: &str = "FORMAT";
pub(crate) const WAL_DIR: &str = "wal";
pub(crate) const SNAP_DIR: &str = "snap";
/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_PREFIX: &str = "sextant-storage format ";
/// A format file is a single short line; anything longer is not ours.
const FORMAT_MAX_BYTES: u64 = 256;

fn format_contents() -> String {
    format!("{FORMAT_PREFIX}{FORMAT_VERSION}\n")
}

fn format_tmp() -> String {
    format!("{FORMAT_FILE}{TMP_SUFFIX}")
}

/// The names in `dir`, sorted. A name that is not UTF-8 cannot be ours.
pub(crate) fn dir_names(dir: &Path) -> Result<Vec<String>, OpenError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).ctx("list", dir)? {
        let entry = entry.ctx("list", dir)?;
        match entry.file_name().into_string() {
            Ok(name) => names.push(name),
            Err(_) => return Err(OpenError::UnexpectedFile { path: entry.path() }),
        }
    }
    names.sort();
    Ok(names)
}

/// Makes sure `dir` is a complete store of our format: creates and initialises it when
/// missing or empty, finishes an interrupted initialisation, and refuses anything else.
pub(crate) fn prepare(io: &Io, dir: &Path) -> Result<(), OpenError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(OpenError::NotOurs {
                path: dir.to_path_buf(),
                reason: "it is not a directory".into(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).ctx("create data directory", dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                io.sync_dir(parent).ctx("fsync directory", parent)?;
            }
            return init(io, dir);
        }
        Err(e) => return Err(IoFail::new("inspect", dir, e).into()),
    }
    let names = dir_names(dir)?;
    if names.iter().any(|n| n == FORMAT_FILE) {
        check_format(dir)?;
        for name in &names {
            let path = dir.join(name);
            match name.as_str() {
                FORMAT_FILE => {}
                WAL_DIR | SNAP_DIR if path.is_dir() => {}
                n if n == format_tmp() => fs::remove_file(&path).ctx("remove", &path)?,
                _ => return Err(OpenError::UnexpectedFile { path }),
            }
        }
        for sub in [WAL_DIR, SNAP_DIR] {
            if !names.iter().any(|n| n == sub) {
                return Err(OpenError::Inconsistent {
                    dir: dir.to_path_buf(),
                    reason: format!("the {sub} directory is missing"),
                });
            }
        }
        return Ok(());
    }
    if names.is_empty() {
        return init(io, dir);
    }
    if interrupted_init(dir, &names)? {
        wipe_interrupted_init(dir, &names)?;
        return init(io, dir);
    }
    Err(OpenError::NotOurs {
        path: dir.to_path_buf(),
        reason: format!("it has no {FORMAT_FILE} file but holds {:?}", names[0]),
    })
}

fn check_format(dir: &Path) -> Result<(), OpenError> {
    let path = dir.join(FORMAT_FILE);
    let not_ours = |reason: &str| OpenError::NotOurs {
        path: dir.to_path_buf(),
        reason: reason.to_string(),
    };
    let len = fs::metadata(&path).ctx("inspect", &path)?.len();
    if len > FORMAT_MAX_BYTES {
        return Err(not_ours("its FORMAT file is not a Sextant format file"));
    }
    let bytes = fs::read(&path).ctx("read", &path)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.trim_end() == format_contents().trim_end() {
        return Ok(());
    }
    match text.strip_prefix(FORMAT_PREFIX) {
        Some(found) => Err(OpenError::UnsupportedFormat {
            path: dir.to_path_buf(),
            found: found.trim().to_string(),
            expected: FORMAT_VERSION,
        }),
        None => Err(not_ours("its FORMAT file is not a Sextant format file")),
    }
}

/// Whether `dir` (no format file) holds only what an interrupted `init` leaves behind.
fn interrupted_init(dir: &Path, names: &[String]) -> Result<bool, OpenError> {
    for name in names {
        let path = dir.join(name);
        let ok = match name.as_str() {
            WAL_DIR if path.is_dir() => {
                let segs = dir_names(&path)?;
                match segs.as_slice() {
                    [] => true,
                    [only] if *only == segment_name(1) => {
                        let seg = path.join(only);
                        let bytes = fs::read(&seg).ctx("read", &seg)?;
                        initial_segment().starts_with(&bytes)
                    }
                    _ => false,
                }
            }
            SNAP_DIR if path.is_dir() => dir_names(&path)?.is_empty(),
            n => n == format_tmp(),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn wipe_interrupted_init(dir: &Path, names: &[String]) -> Result<(), OpenError> {
    for name in names {
        let path = dir.join(name);
        if name == WAL_DIR {
            let seg = path.join(segment_name(1));
            if seg.exists() {
                fs::remove_file(&seg).ctx("remove", &seg)?;
            }
        }
        if path.is_dir() {
            fs::remove_dir(&path).ctx("remove", &path)?;
        } else {
            fs::remove_file(&path).ctx("remove", &path)?;
        }
    }
    Ok(())
}

/// Creates a new store in the empty directory `dir`.
fn init(io: &Io, dir: &Path) -> Result<(), OpenError> {
    let wal = dir.join(WAL_DIR);
    let snap = dir.join(SNAP_DIR);
    fs::create_dir(&wal).ctx("create", &wal)?;
    fs::create_dir(&snap).ctx("create", &snap)?;
    Wal::create_initial(io, &wal)?;
    io.sync_dir(dir).ctx("fsync directory", dir)?;
    write_atomic(io, dir, FORMAT_FILE, &[format_contents().as_bytes()])?;
    Ok(())
}
