//! Planted bugs: known Raft mistakes the simulator must catch (issue: "planted bugs are
//! caught"). They exist only in the simulator build (`--cfg madsim`); in every other build
//! `active` is a constant `false` and the checks compile away. The simulator sets the mutation
//! explicitly at the start of every seed, on the thread that runs it, so nothing carries over
//! from one seed to the next nor crosses between seeds run in parallel.

/// A deliberately wrong variant of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Commit an entry of an earlier term by counting replicas (§5.4.2, Figure 8).
    Figure8Commit,
    /// Grant votes without the up-to-date log check (§5.4.1).
    VoteWithoutLogCheck,
    /// Answer ReadIndex at once, without a heartbeat round confirming leadership (thesis §6.4).
    ReadIndexWithoutQuorum,
    /// Serve lease reads for a full election timeout, ignoring clock drift (thesis §6.4.1).
    LeaseWithoutDriftBound,
    /// Acknowledge appends and count the leader's own entries before they are durable.
    AckBeforeFsync,
    /// Handle AppendEntries responses from earlier terms as if they were current.
    AppendRespWithoutTermCheck,
    /// Write a state-machine snapshot's key slices from the store as it is when each slice is
    /// written (versions applied since the snapshot started included), not as it was at the
    /// snapshot's revision.
    SnapshotSlicesSeeLaterWrites,
}

impl Mutation {
    pub const ALL: [Mutation; 7] = [
        Mutation::Figure8Commit,
        Mutation::VoteWithoutLogCheck,
        Mutation::ReadIndexWithoutQuorum,
        Mutation::LeaseWithoutDriftBound,
        Mutation::AckBeforeFsync,
        Mutation::AppendRespWithoutTermCheck,
        Mutation::SnapshotSlicesSeeLaterWrites,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mutation::Figure8Commit => "figure8-commit",
            Mutation::VoteWithoutLogCheck => "vote-without-log-check",
            Mutation::ReadIndexWithoutQuorum => "read-index-without-quorum",
            Mutation::LeaseWithoutDriftBound => "lease-without-drift-bound",
            Mutation::AckBeforeFsync => "ack-before-fsync",
            Mutation::AppendRespWithoutTermCheck => "append-resp-without-term-check",
            Mutation::SnapshotSlicesSeeLaterWrites => "snapshot-slices-see-later-writes",
        }
    }

    pub fn from_name(name: &str) -> Option<Mutation> {
        Mutation::ALL.into_iter().find(|m| m.name() == name)
    }
}

#[cfg(madsim)]
mod switch {
    use std::cell::Cell;

    use super::Mutation;

    thread_local! {
        /// Per thread: a simulation runs on the thread that started it, and tests running
        /// seeds in parallel threads of one process must not switch each other's bugs.
        static ACTIVE: Cell<u8> = const { Cell::new(0) };
    }

    fn code(m: Mutation) -> u8 {
        Mutation::ALL.iter().position(|x| *x == m).expect("listed") as u8 + 1
    }

    /// Enables one mutation (or none) for the simulation that follows on this thread.
    pub fn set(m: Option<Mutation>) {
        ACTIVE.with(|a| a.set(m.map_or(0, code)));
    }

    pub fn active(m: Mutation) -> bool {
        ACTIVE.with(|a| a.get()) == code(m)
    }
}

#[cfg(madsim)]
pub use switch::set;

/// Whether `m` is enabled (always false outside the simulator).
#[inline(always)]
pub fn active(m: Mutation) -> bool {
    #[cfg(madsim)]
    {
        switch::active(m)
    }
    #[cfg(not(madsim))]
    {
        let _ = m;
        false
    }
}
