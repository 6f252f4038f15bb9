//! Checking a whole history: partitioning, budgets and the result types.

use std::fmt;
use std::time::Duration;

use super::model::{Model, Operation};
use super::search::{Budget, Search, Status};

/// Steps each partition may take in the first round.
const FIRST_SLICE: u64 = 4096;

/// The answer for a history (or one partition of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// A linearization exists.
    Linearizable,
    /// No linearization exists.
    NotLinearizable,
    /// The search did not finish: the budget ran out (or, for a partition, the check stopped
    /// once another partition was found not linearizable).
    Unknown,
}

impl Verdict {
    /// `linearizable`, `not linearizable` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not linearizable",
            Verdict::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits and switches for [`check`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Wall-clock budget for the whole history; past it the verdict is [`Verdict::Unknown`]
    /// (unless a partition was already found not linearizable). `None`: no limit. Inside a
    /// madsim runtime `Instant` is simulated and does not advance while the check runs: use
    /// `max_steps` there.
    pub budget: Option<Duration>,
    /// A deterministic budget: the maximum number of search steps over all partitions (a step
    /// tries one entry of the history; a register step takes well under a microsecond in
    /// release builds). `None`: no limit.
    pub max_steps: Option<u64>,
    /// Check every partition to the end (or until the budget runs out). By default the
    /// partitions take turns, each round allowing each unfinished partition twice as many
    /// steps as the previous one, and the check stops at the end of the round in which a
    /// partition was found not linearizable: the verdict is then certain, the failing
    /// partitions that are about as easy to find are reported too, and the others are
    /// [`Verdict::Unknown`].
    pub exhaustive: bool,
}

impl CheckOptions {
    /// Options with a wall-clock budget and nothing else.
    pub fn with_budget(budget: Duration) -> Self {
        CheckOptions {
            budget: Some(budget),
            ..CheckOptions::default()
        }
    }
}

/// The result of checking one partition. Operation numbers are indices into the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionResult {
    /// The partition's name (see [`super::Partition`]).
    pub name: String,
    /// All operations of the partition, in increasing order, including observers with an
    /// unknown outcome that the search leaves out (they constrain nothing).
    pub ops: Vec<usize>,
    /// The operations the search left out: observers with an unknown outcome (e.g. reads that
    /// timed out), which constrain nothing. Sorted.
    pub ignored: Vec<usize>,
    /// The verdict for this partition; [`Verdict::Unknown`] if the budget ran out or the check
    /// stopped after finding another partition not linearizable.
    pub verdict: Verdict,
    /// If linearizable: a linearization (the operations the search left out are not in it).
    /// Otherwise: the longest partial linearization the search found, a prefix that some
    /// linearization attempt reached (empty if none, or if the partition was not checked).
    pub linearization: Vec<usize>,
    /// Not linearizable (or unknown): the operations that could come next after
    /// `linearization` (called before the earliest pending return), none of which could be
    /// placed there. Sorted.
    pub unplaceable: Vec<usize>,
    /// Not linearizable (or unknown): the operation whose return the search reached after
    /// `linearization` without being able to linearize it first. It is in `unplaceable`.
    pub blocking: Option<usize>,
    /// Search steps spent on this partition.
    pub steps: u64,
}

/// The result of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// [`Verdict::NotLinearizable`] if some partition is not linearizable, else
    /// [`Verdict::Unknown`] if some partition is unknown, else [`Verdict::Linearizable`].
    pub verdict: Verdict,
    /// One result per partition, in the model's partition order.
    pub partitions: Vec<PartitionResult>,
    /// Whether the budget ran out.
    pub budget_exceeded: bool,
}

impl CheckResult {
    /// The partitions that are not linearizable.
    pub fn failing_partitions(&self) -> impl Iterator<Item = &PartitionResult> {
        self.partitions
            .iter()
            .filter(|p| p.verdict == Verdict::NotLinearizable)
    }

    /// Total search steps.
    pub fn steps(&self) -> u64 {
        self.partitions.iter().map(|p| p.steps).sum()
    }
}

/// Checks whether `history` is linearizable with respect to `model`.
///
/// The history is split with [`Model::partition`] and each partition is searched on its own;
/// the partitions take turns (see [`CheckOptions::exhaustive`]) under one shared budget. The result depends only on the history and the model,
/// except when the wall-clock budget runs out.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> CheckResult {
    let mut budget = Budget::new(options.budget, options.max_steps);
    let mut parts = Vec::new();
    for part in model.partition(history) {
        let mut all: Vec<usize> = part
            .ops
            .into_iter()
            .filter(|&i| i < history.len())
            .collect();
        all.sort_unstable();
        all.dedup();
        // Observers whose outcome is unknown constrain nothing: leave them out.
        let checked: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| {
                let op = &history[i];
                !(op.output.is_none() && model.is_observer(&op.input, None))
            })
            .collect();
        let search = Search::new(model, checked.iter().map(|&i| &history[i]).collect());
        parts.push((part.name, all, checked, search));
    }

    // Partitions take turns with a doubling allowance of steps.
    let mut slice = FIRST_SLICE;
    let mut violation = false;
    loop {
        let mut unfinished = false;
        for (_, _, _, search) in parts.iter_mut() {
            if search.findings().status.is_some() {
                continue;
            }
            match search.run(slice, &mut budget) {
                Some(Status::NotLinearizable) => violation = true,
                Some(Status::Linearizable) => {}
                None => unfinished = true,
            }
            if budget.exhausted() {
                break;
            }
        }
        if !unfinished || budget.exhausted() || (violation && !options.exhaustive) {
            break;
        }
        slice = slice.saturating_mul(2);
    }

    let partitions: Vec<PartitionResult> = parts
        .into_iter()
        .map(|(name, ops, checked, search)| {
            let f = search.findings();
            let ignored = ops
                .iter()
                .copied()
                .filter(|i| checked.binary_search(i).is_err())
                .collect();
            let global = |v: &[usize]| -> Vec<usize> { v.iter().map(|&i| checked[i]).collect() };
            let mut unplaceable = global(&f.unplaceable);
            unplaceable.sort_unstable();
            PartitionResult {
                name,
                ops,
                ignored,
                verdict: match f.status {
                    Some(Status::Linearizable) => Verdict::Linearizable,
                    Some(Status::NotLinearizable) => Verdict::NotLinearizable,
                    None => Verdict::Unknown,
                },
                linearization: global(&f.linearization),
                unplaceable,
                blocking: f.blocking.map(|i| checked[i]),
                steps: f.steps,
            }
        })
        .collect();
    let verdict = if partitions
        .iter()
        .any(|p| p.verdict == Verdict::NotLinearizable)
    {
        Verdict::NotLinearizable
    } else if partitions.iter().any(|p| p.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    CheckResult {
        verdict,
        partitions,
        budget_exceeded: budget.exhausted(),
    }
}
