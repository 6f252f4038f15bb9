//! The simulation harness (madsim only): a cluster of members each running the production
//! node loop over a simulated transport, a lossy disk and a skewed clock; a nemesis; workload
//! clients recording a history; cluster-wide invariant checks; the run's timeline; and the per-seed runner.

pub mod clock;
pub mod cluster;
pub mod disk;
pub mod invariants;
pub mod nemesis;
pub mod run;
pub mod scenario;
pub mod timeline;
pub mod transport;
pub mod workload;
