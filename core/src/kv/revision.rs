//! `Revision`: a position in the store's history, as etcd's `mvcc.revision`.

use serde::{Deserialize, Serialize};

/// One change's place in history: `main` is the store revision of the command that made it
/// (all changes of one txn share it), `sub` orders the changes within that command, from 0.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub(crate) struct Revision {
    pub main: i64,
    pub sub: u32,
}

impl Revision {
    pub(crate) fn new(main: i64, sub: u32) -> Revision {
        Revision { main, sub }
    }
}
