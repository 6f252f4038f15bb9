//! Which member of which cluster a data dir belongs to. Written on first start; a later start
//! with flags that name another member or cluster is refused instead of corrupting state.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sextant_core::NodeId;
use thiserror::Error;

const FILE: &str = "identity.toml";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub name: String,
    pub member_id: NodeId,
    pub cluster_id: u64,
}

#[derive(Debug, Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a sextant identity file: {why}")]
    Corrupt { path: String, why: String },
    #[error(
        "{path} belongs to member {found_name} ({found_member:x}) of cluster {found_cluster:x}, \
         but the flags describe member {name} ({member:x}) of cluster {cluster:x}"
    )]
    Mismatch {
        path: String,
        found_name: String,
        found_member: NodeId,
        found_cluster: u64,
        name: String,
        member: NodeId,
        cluster: u64,
    },
}

/// 64-bit FNV-1a: a stable hash for ids (never changes across builds or platforms).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A member's id from its sorted peer URLs and the cluster token (as etcd derives it).
pub fn member_id(peer_urls: &[String], token: &str) -> NodeId {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let joined = urls.join(",");
    fnv1a(&[joined.as_bytes(), token.as_bytes()]).max(1)
}

/// The cluster's id from its initial member ids and token.
pub fn cluster_id(token: &str, members: impl Iterator<Item = NodeId>) -> u64 {
    let mut ids: Vec<NodeId> = members.collect();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    fnv1a(&[&bytes, token.as_bytes()]).max(1)
}

/// The identity written into `dir`, if any.
pub fn read(dir: &Path) -> Result<Option<Identity>, IdentityError> {
    let path = dir.join(FILE);
    let p = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| IdentityError::Corrupt {
                path: p,
                why: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IdentityError::Io { path: p, source }),
    }
}

/// Writes the identity into a new data dir, or checks it against an existing one.
pub fn check_or_write(dir: &Path, want: &Identity) -> Result<(), IdentityError> {
    let path = dir.join(FILE);
    let p = path.display().to_string();
    let io = |source| IdentityError::Io {
        path: p.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let found: Identity = toml::from_str(&text).map_err(|e| IdentityError::Corrupt {
                path: p.clone(),
                why: e.to_string(),
            })?;
            if found != *want {
                return Err(IdentityError::Mismatch {
                    path: p,
                    found_name: found.name,
                    found_member: found.member_id,
                    found_cluster: found.cluster_id,
                    name: want.name.clone(),
                    member: want.member_id,
                    cluster: want.cluster_id,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)?;
            let text = toml::to_string(want).expect("identity serializes");
            let tmp = dir.join(format!("{FILE}.tmp"));
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
            Ok(())
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = member_id(&["http://127.0.0.1:2380".into()], "t");
        assert_eq!(a, member_id(&["http://127.0.0.1:2380".into()], "t"));
        assert_ne!(a, member_id(&["http://127.0.0.2:2380".into()], "t"));
        assert_ne!(a, member_id(&["http://127.0.0.1:2380".into()], "u"));
        assert_eq!(
            cluster_id("t", [3, 1, 2].into_iter()),
            cluster_id("t", [1, 2, 3].into_iter())
        );
    }

    #[test]
    fn mismatched_data_dir_is_refused() {
        let dir = std::env::temp_dir().join(format!("sextant-identity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let me = Identity {
            name: "a".into(),
            member_id: 1,
            cluster_id: 9,
        };
        check_or_write(&dir, &me).unwrap();
        check_or_write(&dir, &me).unwrap();
        let other = Identity {
            name: "b".into(),
            member_id: 2,
            cluster_id: 9,
        };
        let err = check_or_write(&dir, &other).unwrap_err().to_string();
        assert!(err.contains("belongs to member a"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
