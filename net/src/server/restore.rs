//! Disaster recovery (etcd's `etcdutl snapshot restore`): turn a snapshot file into the data
//! dir of one member of a NEW cluster holding the snapshot's data at its revision. Run it once
//! per member with the same file, `--initial-cluster` and token; then start each member with
//! the same name and cluster flags. The state keeps its keys, history, revision and leases;
//! alarms are dropped (they named members of the old cluster).
//!
//! The data dir gets the member's identity and a log that starts with the snapshot at index
//! 1, term 1, whose membership is the initial cluster, so every member starts from the same
//! state and elects a leader as a new cluster does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sextant_core::kv::{AlarmAction, AlarmRequest, Command, KvStore};
use sextant_core::{ConfState, HardState, Snapshot, SnapshotMeta};
use thiserror::Error;

use super::identity::{self, cluster_id, member_id, Identity};
use super::snapshot_file::{self, SnapshotFileError};
use crate::storage::{FileStorage, OpenError, StorageOptions, WriteError};

/// Where and as which member to restore.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    pub data_dir: PathBuf,
    pub name: String,
    /// name -> peer URLs of every member of the new cluster.
    pub initial_cluster: BTreeMap<String, Vec<String>>,
    /// This member's peer URLs; must be its entry in `initial_cluster`.
    pub initial_advertise_peer_urls: Vec<String>,
    pub initial_cluster_token: String,
}

/// What was restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    pub member_id: u64,
    pub cluster_id: u64,
    /// The state's revision (the new cluster continues from it).
    pub revision: i64,
    pub keys: usize,
}

#[derive(Debug, Error)]
pub enum RestoreError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: SnapshotFileError,
    },
    #[error("the snapshot's state cannot be restored: {0}")]
    State(#[from] sextant_core::kv::SnapshotDecodeError),
    #[error("data dir {} exists and is not empty; restore into a new directory", .0.display())]
    DataDirNotEmpty(PathBuf),
    #[error("invalid options: {0}")]
    Options(String),
    #[error("cannot create data dir {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error("opening the new storage: {0}")]
    Open(#[from] OpenError),
    #[error("writing the new storage: {0}")]
    Write(#[from] WriteError),
}

/// Verifies the snapshot file at `path` (SHA-256, format, state) and writes a new data dir
/// for `opts.name` from it. Refuses a data dir that exists and is not empty.
pub fn restore_snapshot(path: &Path, opts: &RestoreOptions) -> Result<Restored, RestoreError> {
    let bytes = std::fs::read(path).map_err(|source| RestoreError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (_, state) = snapshot_file::decode(&bytes).map_err(|source| RestoreError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let mut kv = KvStore::restore(&state)?;
    for a in kv.alarms() {
        kv.apply(&Command::Alarm(AlarmRequest {
            action: AlarmAction::Deactivate,
            member_id: a.member_id,
            kind: Some(a.kind),
        }))
        .expect("deactivating an alarm always applies");
    }

    let (me, cid, voters) = members(opts)?;
    if non_empty_dir(&opts.data_dir)? {
        return Err(RestoreError::DataDirNotEmpty(opts.data_dir.clone()));
    }
    std::fs::create_dir_all(&opts.data_dir).map_err(|source| RestoreError::CreateDir {
        path: opts.data_dir.clone(),
        source,
    })?;
    identity::check_or_write(
        &opts.data_dir,
        &Identity {
            name: opts.name.clone(),
            member_id: me,
            cluster_id: cid,
        },
    )?;
    let (mut storage, _) =
        FileStorage::open(&opts.data_dir.join("member"), StorageOptions::default())?;
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: 1,
            term: 1,
            conf: ConfState::with_voters(voters),
        },
        data: kv.snapshot(),
    };
    let hard_state = HardState {
        term: 1,
        vote: None,
        commit: 1,
    };
    storage.append(Some(hard_state), Some(&snapshot), &[])?;
    storage.sync()?;
    Ok(Restored {
        member_id: me,
        cluster_id: cid,
        revision: kv.revision(),
        keys: kv.len(),
    })
}

/// This member's id, the cluster id and every member id, derived as `Server::start` does.
fn members(opts: &RestoreOptions) -> Result<(u64, u64, Vec<u64>), RestoreError> {
    let Some(urls) = opts.initial_cluster.get(&opts.name) else {
        return Err(RestoreError::Options(format!(
            "--initial-cluster does not name this member ({})",
            opts.name
        )));
    };
    let mut mine = opts.initial_advertise_peer_urls.clone();
    let mut listed = urls.clone();
    mine.sort();
    listed.sort();
    if mine != listed {
        return Err(RestoreError::Options(format!(
            "--initial-advertise-peer-urls {mine:?} differ from {}'s entry in --initial-cluster {listed:?}",
            opts.name
        )));
    }
    let mut ids = BTreeMap::new();
    for (name, urls) in &opts.initial_cluster {
        if urls.is_empty() {
            return Err(RestoreError::Options(format!(
                "member {name} has no peer URL"
            )));
        }
        if let Some(other) = ids.insert(member_id(urls, &opts.initial_cluster_token), name) {
            return Err(RestoreError::Options(format!(
                "members {other} and {name} have the same peer URLs"
            )));
        }
    }
    let me = member_id(urls, &opts.initial_cluster_token);
    let cid = cluster_id(&opts.initial_cluster_token, ids.keys().copied());
    Ok((me, cid, ids.keys().copied().collect()))
}

fn non_empty_dir(dir: &Path) -> Result<bool, RestoreError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(RestoreError::Read {
            path: dir.to_path_buf(),
            source,
        }),
    }
}
