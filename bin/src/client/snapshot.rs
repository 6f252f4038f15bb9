//! `sextant snapshot save FILE`: streams Maintenance.Snapshot from one endpoint into FILE
//! atomically: the blobs go to `FILE.part`, which is fsynced and renamed over FILE (and the
//! directory fsynced), so FILE is either the previous file or the complete snapshot.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use sextant_net::grpc::pb::etcdserverpb as pb;

use super::{exit_with, Connection, GlobalArgs};

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Where to write the snapshot.
    pub file: PathBuf,
}

/// Runs `snapshot save` and exits (see [`super::run`]).
pub fn save(global: &GlobalArgs, args: SaveArgs) -> ! {
    exit_with(
        global,
        |conn| async move { run_save(&conn, &args.file).await },
    )
}

async fn run_save(conn: &Connection, file: &Path) -> anyhow::Result<()> {
    if conn.endpoints().len() != 1 {
        bail!(
            "snapshot must be requested to one selected node, not multiple {:?}",
            conn.endpoints()
        );
    }
    let part = part_path(file);
    let written = stream_to(conn, &part).await;
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, file)
        .with_context(|| format!("renaming {} to {}", part.display(), file.display()))?;
    sync_dir(file)?;
    if !conn.json() {
        println!("Snapshot saved at {}", file.display());
    }
    Ok(())
}

fn part_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Writes the whole stream to `path` and fsyncs it; the bytes written.
async fn stream_to(conn: &Connection, path: &Path) -> anyhow::Result<u64> {
    let mut m = conn.maintenance().await?;
    let mut stream = conn.call(m.snapshot(pb::SnapshotRequest {})).await?;
    let mut out =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut bytes = 0u64;
    let mut remaining = None;
    loop {
        // Each message must come within the command timeout; the whole may take longer.
        let msg = tokio::time::timeout(conn.command_timeout(), stream.next())
            .await
            .map_err(|_| anyhow::anyhow!("context deadline exceeded"))?;
        let Some(msg) = msg else { break };
        let msg = msg?;
        out.write_all(&msg.blob)
            .with_context(|| format!("writing {}", path.display()))?;
        bytes += msg.blob.len() as u64;
        remaining = Some(msg.remaining_bytes);
    }
    match remaining {
        None => bail!("the snapshot stream ended without data"),
        Some(r) if r != 0 => bail!("the snapshot stream ended with {r} bytes still to come"),
        Some(_) => {}
    }
    out.sync_all()
        .with_context(|| format!("fsync {}", path.display()))?;
    Ok(bytes)
}

/// Makes the rename durable.
fn sync_dir(file: &Path) -> anyhow::Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_file_sits_next_to_the_target() {
        assert_eq!(
            part_path(Path::new("/tmp/x/snap.db")),
            PathBuf::from("/tmp/x/snap.db.part")
        );
    }
}
