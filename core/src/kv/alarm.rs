//! Cluster alarms (etcd's `AlarmRequest` and alarm store): which members raised which alarm,
//! replicated through the log like every write, so every member reports the same list and
//! refuses the same writes. While any NOSPACE alarm is active, writes that grow the store (a
//! put, a txn that writes, a lease grant) are refused with "mvcc: database space exceeded"
//! (etcd's capped applier), while deletes, revokes and compaction, which free space, still
//! apply; while any CORRUPT alarm is active every write is refused with "corrupt cluster"
//! (etcd's corrupt applier). Alarm requests themselves always apply.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// etcd's `AlarmType` (NONE is "every kind" in a request, never an active alarm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlarmKind {
    /// A member ran out of disk space.
    NoSpace,
    /// A member found its data corrupt.
    Corrupt,
}

/// One active alarm: a member and what it raised (etcd's `AlarmMember`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlarmMember {
    pub member_id: u64,
    pub kind: AlarmKind,
}

/// etcd's `AlarmRequest.AlarmAction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmAction {
    /// The active alarms of `kind` (every kind for `None`).
    Get,
    Activate,
    Deactivate,
}

/// An alarm request as it travels through the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRequest {
    pub action: AlarmAction,
    pub member_id: u64,
    /// `None` is etcd's NONE: with `Get`, every kind; with activate/deactivate, nothing.
    pub kind: Option<AlarmKind>,
}

/// The active alarms, ordered by member then kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Alarms {
    active: BTreeSet<AlarmMember>,
}

impl Alarms {
    pub fn from_list(list: Vec<AlarmMember>) -> Alarms {
        Alarms {
            active: list.into_iter().collect(),
        }
    }

    pub fn list(&self) -> &BTreeSet<AlarmMember> {
        &self.active
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    pub fn any(&self, kind: AlarmKind) -> bool {
        self.active.iter().any(|a| a.kind == kind)
    }

    /// Applies `req` and returns etcd's answer: for `Get` the matching alarms; for
    /// `Activate` the alarm if it was newly raised; for `Deactivate` the alarm if it was
    /// active. NONE activates or deactivates nothing.
    pub fn apply(&mut self, req: &AlarmRequest) -> Vec<AlarmMember> {
        match (req.action, req.kind) {
            (AlarmAction::Get, kind) => self
                .active
                .iter()
                .filter(|a| kind.is_none_or(|k| a.kind == k))
                .copied()
                .collect(),
            (_, None) => Vec::new(),
            (AlarmAction::Activate, Some(kind)) => {
                let m = AlarmMember {
                    member_id: req.member_id,
                    kind,
                };
                if self.active.insert(m) {
                    vec![m]
                } else {
                    Vec::new()
                }
            }
            (AlarmAction::Deactivate, Some(kind)) => {
                let m = AlarmMember {
                    member_id: req.member_id,
                    kind,
                };
                if self.active.remove(&m) {
                    vec![m]
                } else {
                    Vec::new()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(action: AlarmAction, member_id: u64, kind: Option<AlarmKind>) -> AlarmRequest {
        AlarmRequest {
            action,
            member_id,
            kind,
        }
    }

    #[test]
    fn activate_get_deactivate_answer_as_etcd() {
        let mut a = Alarms::default();
        let nospace = AlarmMember {
            member_id: 7,
            kind: AlarmKind::NoSpace,
        };
        assert_eq!(
            a.apply(&req(AlarmAction::Activate, 7, Some(AlarmKind::NoSpace))),
            vec![nospace]
        );
        // Raising it again reports nothing new.
        assert!(a
            .apply(&req(AlarmAction::Activate, 7, Some(AlarmKind::NoSpace)))
            .is_empty());
        a.apply(&req(AlarmAction::Activate, 3, Some(AlarmKind::Corrupt)));
        assert_eq!(a.apply(&req(AlarmAction::Get, 0, None)).len(), 2);
        assert_eq!(
            a.apply(&req(AlarmAction::Get, 0, Some(AlarmKind::NoSpace))),
            vec![nospace]
        );
        assert!(a.any(AlarmKind::Corrupt));
        assert!(a.apply(&req(AlarmAction::Activate, 1, None)).is_empty());
        assert_eq!(
            a.apply(&req(AlarmAction::Deactivate, 7, Some(AlarmKind::NoSpace))),
            vec![nospace]
        );
        assert!(a
            .apply(&req(AlarmAction::Deactivate, 7, Some(AlarmKind::NoSpace)))
            .is_empty());
        assert!(!a.any(AlarmKind::NoSpace));
    }
}
