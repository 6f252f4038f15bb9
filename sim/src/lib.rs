//! # sextant-sim
//!
//! The deterministic simulator. Built with `--cfg madsim` in its own target dir
//! (`cargo sim-test`). It will host the simulated transport, lossy disk, skewed clocks, the
//! nemesis, workload clients, history recording and the linearizability checker (the simulator
//! issue). For now it holds the determinism check that everything later relies on: a madsim
//! run is a pure function of its seed.

pub mod checker;
#[cfg(madsim)]
pub mod harness;
