//! Declarative scenarios (`scenarios/*.toml`): cluster size, workload, durations, read mode and
//! the fault mix. Each seed draws its own swarm from the scenario (swarm testing): every fault
//! kind is kept with some probability and its rate scaled, so seeds explore different mixes.

use std::path::{Path, PathBuf};

use madsim::rand::Rng;
use serde::Deserialize;
use thiserror::Error;

/// Mean fault events per simulated second, by kind.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultRates {
    #[serde(default)]
    pub partition: f64,
    #[serde(default)]
    pub crash: f64,
    #[serde(default)]
    pub pause: f64,
    #[serde(default)]
    pub loss: f64,
    #[serde(default)]
    pub duplicate: f64,
    #[serde(default)]
    pub delay: f64,
    /// Stale replays: set the share of messages that are delivered once more 0.5–3 s later.
    #[serde(default)]
    pub replay: f64,
    #[serde(default)]
    pub clock: f64,
    /// Isolate the current leader.
    #[serde(default)]
    pub leader_partition: f64,
    /// Pause the current leader (resumed by the next pause event).
    #[serde(default)]
    pub leader_pause: f64,
    /// Swizzle-clog: clog or unclog one member at a time.
    #[serde(default)]
    pub swizzle: f64,
    /// Ask the leader to hand leadership to another member.
    #[serde(default)]
    pub transfer: f64,
    /// Membership changes: remove a voter, add it back as a learner, promote it.
    #[serde(default)]
    pub membership: f64,
    /// Leader churn (Figure 8's adversary): each event arms a strike at the next leader to
    /// be elected, within 0–200 ms of taking office (a crash losing its unsynced writes, or
    /// isolation); the victim comes back 0.1–1 s later.
    #[serde(default)]
    pub leader_churn: f64,
    /// Silent disk corruption: flip a bit in a durable record of a member (at most a minority
    /// of them), which must refuse to start when it next boots.
    #[serde(default)]
    pub corruption: f64,
}

/// What the clock fault does to a member's clock.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ClockMode {
    /// Drift up to ±20% and jumps of up to ±20 ticks: beyond what lease reads tolerate, so
    /// scenarios with lease reads should use `bounded`.
    #[default]
    Unbounded,
    /// Drift only, kept within what the configured lease drift bound tolerates (any two
    /// members' tick rates differ by less than `election_ticks_min / (election_ticks_min -
    /// drift_ticks_max)`); no jumps. Lease reads must stay linearizable.
    Bounded,
    /// Drift of two to four times the tolerated bound, plus jumps: lease reads are expected
    /// to go stale and the checker must say so.
    BeyondBound,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_members")]
    pub members: u64,
    /// Simulated seconds of faults and workload.
    #[serde(default = "default_duration")]
    pub duration_s: f64,
    /// Simulated seconds the healed cluster has to elect a leader and serve.
    #[serde(default = "default_liveness")]
    pub liveness_s: f64,
    #[serde(default = "default_clients")]
    pub clients: u64,
    #[serde(default = "default_keys")]
    pub keys: u64,
    #[serde(default)]
    pub lease_reads: bool,
    /// How far the clock fault may push members' clocks (see `ClockMode`).
    #[serde(default)]
    pub clock_mode: ClockMode,
    /// The scenario breaks a documented assumption on purpose (e.g. `clock_mode =
    /// "beyond-bound"` with lease reads): its runs are expected to be caught — by the
    /// checker or the invariants — and the test suite requires that they are.
    #[serde(default)]
    pub expect_violation: bool,
    /// Simulated fsync latency range in microseconds (default 100..=2000).
    #[serde(default = "default_fsync")]
    pub fsync_micros: (u64, u64),
    /// The longest message delay the delay fault may choose (default 200 ms); longer delays
    /// deliver messages terms after they were sent.
    #[serde(default = "default_delay_ms_max")]
    pub delay_ms_max: u32,
    /// Swarm: keep each fault kind with this probability per seed (1.0 keeps all).
    #[serde(default = "default_keep")]
    pub swarm_keep: f64,
    /// etcd's periodic auto-compaction with this retention (simulated ms); none by default.
    /// Compactions then land during snapshots, restarts and installs.
    #[serde(default)]
    pub auto_compaction_ms: Option<u64>,
    #[serde(default)]
    pub faults: FaultRates,
}

fn default_members() -> u64 {
    3
}
fn default_duration() -> f64 {
    10.0
}
fn default_liveness() -> f64 {
    10.0
}
fn default_clients() -> u64 {
    4
}
fn default_keys() -> u64 {
    4
}
fn default_fsync() -> (u64, u64) {
    (100, 2_000)
}
fn default_delay_ms_max() -> u32 {
    200
}
fn default_keep() -> f64 {
    0.75
}

#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("scenario {name:?} not found in {dir} (available: {available})")]
    NotFound {
        name: String,
        dir: String,
        available: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Invalid { path: String, why: String },
}

/// The directory holding the scenario files (`scenarios/` at the workspace root).
pub fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
}

/// Every scenario name, sorted.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let p = e.path();
                    if p.extension()? != "toml" {
                        return None;
                    }
                    Some(p.file_stem()?.to_string_lossy().into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn load(dir: &Path, name: &str) -> Result<Scenario, ScenarioError> {
    let path = dir.join(format!("{name}.toml"));
    let p = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ScenarioError::NotFound {
                name: name.to_string(),
                dir: dir.display().to_string(),
                available: list(dir).join(", "),
            })
        }
        Err(source) => return Err(ScenarioError::Io { path: p, source }),
    };
    let s: Scenario = toml::from_str(&text).map_err(|e| ScenarioError::Invalid {
        path: p.clone(),
        why: e.to_string(),
    })?;
    if s.name != name {
        return Err(ScenarioError::Invalid {
            path: p,
            why: format!("name {:?} does not match the file name", s.name),
        });
    }
    if !(3..=7).contains(&s.members) {
        return Err(ScenarioError::Invalid {
            path: p,
            why: "members must be 3..=7".into(),
        });
    }
    Ok(s)
}

impl FaultRates {
    /// This seed's swarm: each kind kept with probability `keep`, its rate scaled by 0.25..2.
    pub fn draw(&self, keep: f64) -> FaultRates {
        let mut rng = madsim::rand::thread_rng();
        let mut pick = |rate: f64| {
            if rate > 0.0 && rng.gen_bool(keep.clamp(0.0, 1.0)) {
                rate * rng.gen_range(0.25..2.0)
            } else {
                0.0
            }
        };
        FaultRates {
            partition: pick(self.partition),
            crash: pick(self.crash),
            pause: pick(self.pause),
            loss: pick(self.loss),
            duplicate: pick(self.duplicate),
            delay: pick(self.delay),
            replay: pick(self.replay),
            clock: pick(self.clock),
            leader_partition: pick(self.leader_partition),
            leader_pause: pick(self.leader_pause),
            swizzle: pick(self.swizzle),
            transfer: pick(self.transfer),
            membership: pick(self.membership),
            leader_churn: pick(self.leader_churn),
            corruption: pick(self.corruption),
        }
    }

    pub fn total(&self) -> f64 {
        self.partition
            + self.crash
            + self.pause
            + self.loss
            + self.duplicate
            + self.delay
            + self.replay
            + self.clock
            + self.leader_partition
            + self.leader_pause
            + self.swizzle
            + self.transfer
            + self.membership
            + self.leader_churn
            + self.corruption
    }
}
