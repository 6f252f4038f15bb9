//! Explanations of a check and their visualization as one self-contained HTML page.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::check::{CheckResult, Verdict};
use super::model::{Model, Operation};

/// One operation as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpView {
    /// Index in the history.
    pub index: usize,
    /// The client.
    pub client: u64,
    /// Call time.
    pub call: u64,
    /// Return time (for an unknown outcome: when the client gave up, if it did).
    pub ret: Option<u64>,
    /// Whether the outcome is unknown.
    pub unknown: bool,
    /// Whether the search left it out (an observer with an unknown outcome).
    pub ignored: bool,
    /// The model's description, e.g. `put("k", "v") → ok`.
    pub description: String,
}

/// One step of a (partial) linearization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepView {
    /// Index in the history of the operation linearized.
    pub op: usize,
    /// The model's description of the state after it.
    pub state_after: String,
}

/// One partition as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    /// The partition's name.
    pub name: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its operations, in history order.
    pub ops: Vec<OpView>,
    /// The linearization (complete if `verdict` is linearizable, else the longest partial one
    /// found), with the state after each step.
    pub linearization: Vec<StepView>,
    /// The operations that could not be placed after the partial linearization.
    pub unplaceable: Vec<usize>,
    /// The operation whose return was reached without being able to place it.
    pub blocking: Option<usize>,
    /// Search steps spent.
    pub steps: u64,
}

/// Everything the visualization shows, as text: independent of the model's types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// A title, e.g. the file name.
    pub title: String,
    /// The overall verdict.
    pub verdict: Verdict,
    /// Whether the budget ran out.
    pub budget_exceeded: bool,
    /// The initial state, described.
    pub initial_state: String,
    /// One view per partition.
    pub partitions: Vec<PartitionView>,
}

/// Describes a check result with the model's descriptions of operations and states (the states
/// along each linearization are recomputed by replaying it). `result` must come from checking
/// `history` (operation numbers that do not fit are skipped).
pub fn explain<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    result: &CheckResult,
    title: &str,
) -> Explanation {
    let partitions = result
        .partitions
        .iter()
        .map(|p| {
            let ops = p
                .ops
                .iter()
                .filter_map(|&i| history.get(i).map(|op| (i, op)))
                .map(|(i, op)| OpView {
                    index: i,
                    client: op.client,
                    call: op.call,
                    ret: op.ret,
                    unknown: op.output.is_none(),
                    ignored: p.ignored.binary_search(&i).is_ok(),
                    description: model.describe_operation(&op.input, op.output.as_ref()),
                })
                .collect();
            let mut state = model.init();
            let mut linearization = Vec::with_capacity(p.linearization.len());
            for &i in &p.linearization {
                // A result from another history: show what fits.
                let Some(op) = history.get(i) else { break };
                match model.step(&state, &op.input, op.output.as_ref()) {
                    Some(next) => {
                        state = next;
                        linearization.push(StepView {
                            op: i,
                            state_after: model.describe_state(&state),
                        });
                    }
                    None => {
                        // Cannot happen for a linearization the search produced.
                        linearization.push(StepView {
                            op: i,
                            state_after: "(rejected by the model)".into(),
                        });
                        break;
                    }
                }
            }
            PartitionView {
                name: p.name.clone(),
                verdict: p.verdict,
                ops,
                linearization,
                unplaceable: p.unplaceable.clone(),
                blocking: p.blocking,
                steps: p.steps,
            }
        })
        .collect();
    Explanation {
        title: title.to_string(),
        verdict: result.verdict,
        budget_exceeded: result.budget_exceeded,
        initial_state: model.describe_state(&model.init()),
        partitions,
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Horizontal space for one distinct time.
const STEP_PX: u64 = 30;
/// Height of one lane row.
const ROW_PX: u64 = 22;
/// Width of the client labels.
const LABEL_PX: u64 = 90;

const STYLE: &str = r#"
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 6px; }
.verdict { display: inline-block; padding: 2px 8px; border-radius: 4px; font-weight: bold; color: #fff; }
.v-linearizable { background: #2e7d32; } .v-not-linearizable { background: #c62828; } .v-unknown { background: #ef6c00; }
.legend span.sw { display: inline-block; width: 14px; height: 10px; margin: 0 4px 0 12px; border: 1px solid #555; vertical-align: middle; }
section { margin: 14px 0; border-top: 1px solid #ccc; padding-top: 6px; }
summary { cursor: pointer; font-weight: bold; }
.scroll { overflow-x: auto; overflow-y: hidden; border: 1px solid #ddd; margin: 6px 0; background: #fafafa; }
.timeline { position: relative; }
.lane { position: absolute; left: 0; right: 0; border-bottom: 1px solid #eee; }
.lane-label { position: sticky; left: 0; z-index: 3; display: inline-block; padding: 3px 4px; width: 82px; font-size: 11px; color: #555;
              background: rgba(250,250,250,.92); white-space: nowrap; overflow: hidden; }
.op { position: absolute; height: 16px; top: 2px; box-sizing: border-box; border: 1px solid #777; border-radius: 3px; background: #e0e0e0;
      font-size: 11px; line-height: 14px; padding: 0 3px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; cursor: default; }
.op.lin { background: #c8e6c9; border-color: #2e7d32; }
.op.unplaceable { background: #ffcdd2; border-color: #c62828; }
.op.blocking { background: #ef9a9a; border: 2px solid #b71c1c; font-weight: bold; }
.op.unknown { border-style: dashed; background-image: repeating-linear-gradient(45deg, transparent 0 6px, rgba(0,0,0,.06) 6px 12px); }
.op.dropped { opacity: .55; }
.op .badge { display: inline-block; background: #2e7d32; color: #fff; border-radius: 6px; padding: 0 4px; margin-right: 3px; font-size: 10px; }
.hl { outline: 3px solid #1565c0 !important; z-index: 5; }
ol.lin li, ul.unpl li { font-family: ui-monospace, monospace; font-size: 12px; cursor: default; }
ol.lin li .st { color: #2e7d32; }
ul.unpl li { color: #b71c1c; }
.note { color: #555; }
"#;

const SCRIPT: &str = r#"
document.querySelectorAll('section').forEach(function (sec) {
  function mark(op, on) {
    sec.querySelectorAll('[data-op="' + op + '"]').forEach(function (el) { el.classList.toggle('hl', on); });
  }
  sec.querySelectorAll('[data-op]').forEach(function (el) {
    el.addEventListener('mouseenter', function () { mark(el.getAttribute('data-op'), true); });
    el.addEventListener('mouseleave', function () { mark(el.getAttribute('data-op'), false); });
  });
  // Show where the search got stuck.
  var stuck = sec.querySelector('.op.blocking');
  var scroll = sec.querySelector('.scroll');
  if (stuck && scroll) { scroll.scrollLeft = Math.max(0, stuck.offsetLeft - scroll.clientWidth / 2); }
});
"#;

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Linearizable => "v-linearizable",
        Verdict::NotLinearizable => "v-not-linearizable",
        Verdict::Unknown => "v-unknown",
    }
}

fn fmt_time(t: Option<u64>) -> String {
    t.map_or_else(|| "never".to_string(), |t| t.to_string())
}

impl Explanation {
    /// The visualization: one self-contained HTML page (inline CSS and JavaScript, no network).
    ///
    /// Each partition shows a lane per client with each operation as a bar from its call to its
    /// return (an unknown outcome runs to the end, dashed), on a compressed time axis where
    /// each distinct time takes the same width. Bars of the (partial) linearization are green
    /// and numbered in linearization order; the operations that could not be placed after it
    /// are red, the blocking one darker. Below the lanes come the linearization with the state
    /// after each step, and the unplaceable operations. Hovering a bar or a list entry
    /// highlights the operation in both.
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
            escape_html(&self.title)
        );
        let _ = write!(
            h,
            "<h1>{}</h1>\n<p><span class=\"verdict {}\">{}</span>",
            escape_html(&self.title),
            verdict_class(self.verdict),
            self.verdict
        );
        let failing = self
            .partitions
            .iter()
            .filter(|p| p.verdict == Verdict::NotLinearizable)
            .count();
        let ops: usize = self.partitions.iter().map(|p| p.ops.len()).sum();
        let _ = writeln!(
            h,
            " <span class=\"note\">{} operations, {} partition(s), {} not linearizable{}; initial state {}</span></p>",
            ops,
            self.partitions.len(),
            failing,
            if self.budget_exceeded { ", time budget exceeded" } else { "" },
            escape_html(&self.initial_state)
        );
        h.push_str(
            "<p class=\"legend note\">\
             <span class=\"sw\" style=\"background:#c8e6c9;border-color:#2e7d32\"></span>linearized (numbered in order)\
             <span class=\"sw\" style=\"background:#ffcdd2;border-color:#c62828\"></span>could not be placed next\
             <span class=\"sw\" style=\"background:#ef9a9a;border:2px solid #b71c1c\"></span>blocking (its return came first)\
             <span class=\"sw\" style=\"background:#e0e0e0\"></span>not reached\
             <span class=\"sw\" style=\"border-style:dashed\"></span>unknown outcome</p>\n",
        );
        for (k, p) in self.partitions.iter().enumerate() {
            self.partition_html(&mut h, k, p);
        }
        let _ = write!(h, "<script>{SCRIPT}</script>\n</body></html>\n");
        h
    }

    fn partition_html(&self, h: &mut String, k: usize, p: &PartitionView) {
        let open = if p.verdict == Verdict::Linearizable && self.verdict != Verdict::Linearizable {
            ""
        } else {
            " open"
        };
        let _ = writeln!(
            h,
            "<section id=\"p{k}\"><details{open}><summary>{} — <span class=\"verdict {}\">{}</span> \
             <span class=\"note\">{} operations, {} search steps</span></summary>",
            escape_html(&p.name),
            verdict_class(p.verdict),
            p.verdict,
            p.ops.len(),
            p.steps
        );

        // Compressed time axis.
        let mut times: BTreeSet<u64> = BTreeSet::new();
        for op in &p.ops {
            times.insert(op.call);
            if let Some(r) = op.ret {
                times.insert(r.max(op.call));
            }
        }
        let rank: BTreeMap<u64, u64> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| (t, i as u64))
            .collect();
        let end_rank = times.len() as u64 + 1;
        let x = |r: u64| LABEL_PX + r * STEP_PX;

        let order: BTreeMap<usize, usize> = p
            .linearization
            .iter()
            .enumerate()
            .map(|(i, s)| (s.op, i + 1))
            .collect();
        let unplaceable: BTreeSet<usize> = p.unplaceable.iter().copied().collect();

        // Lanes: one per client, split into rows where its operations overlap.
        let mut by_client: BTreeMap<u64, Vec<&OpView>> = BTreeMap::new();
        for op in &p.ops {
            by_client.entry(op.client).or_default().push(op);
        }
        let mut lanes: Vec<(u64, Vec<Vec<&OpView>>)> = Vec::new();
        for (client, mut ops) in by_client {
            ops.sort_by_key(|o| (o.call, o.index));
            let mut rows: Vec<(u64, Vec<&OpView>)> = Vec::new();
            for op in ops {
                let start = rank[&op.call];
                let end = if op.unknown {
                    end_rank
                } else {
                    op.ret.map_or(end_rank, |r| rank[&r.max(op.call)])
                };
                match rows.iter_mut().find(|(free, _)| *free <= start) {
                    Some((free, row)) => {
                        *free = end + 1;
                        row.push(op);
                    }
                    None => rows.push((end + 1, vec![op])),
                }
            }
            lanes.push((client, rows.into_iter().map(|(_, r)| r).collect()));
        }
        let rows_total: u64 = lanes.iter().map(|(_, r)| r.len() as u64).sum();
        let width = x(end_rank + 1) + 20;
        let _ = writeln!(
            h,
            "<div class=\"scroll\"><div class=\"timeline\" style=\"width:{width}px;height:{}px\">",
            rows_total * ROW_PX + 4
        );
        let mut top = 0;
        for (client, rows) in &lanes {
            let _ = writeln!(
                h,
                "<div class=\"lane\" style=\"top:{top}px;height:{}px\"><div class=\"lane-label\">client {client}</div>",
                rows.len() as u64 * ROW_PX
            );
            for (r, row) in rows.iter().enumerate() {
                for op in row {
                    let start = rank[&op.call];
                    let end = if op.unknown {
                        end_rank
                    } else {
                        op.ret.map_or(end_rank, |t| rank[&t.max(op.call)])
                    };
                    let w = ((end - start) * STEP_PX).max(STEP_PX / 2);
                    let mut class = String::from("op");
                    let mut title = format!(
                        "#{} client {}: {}\ncall {}, ",
                        op.index, op.client, op.description, op.call
                    );
                    if op.unknown {
                        let _ = write!(title, "outcome unknown (gave up: {})", fmt_time(op.ret));
                    } else {
                        let _ = write!(title, "return {}", fmt_time(op.ret));
                    }
                    if let Some(&n) = order.get(&op.index) {
                        class.push_str(" lin");
                        let _ = write!(
                            title,
                            "\nlinearized #{n}, state after: {}",
                            p.linearization[n - 1].state_after
                        );
                    }
                    if unplaceable.contains(&op.index) {
                        class.push_str(" unplaceable");
                        title.push_str("\ncould not be placed next");
                    }
                    if p.blocking == Some(op.index) {
                        class.push_str(" blocking");
                        title.push_str(" (blocking: its return was reached first)");
                    }
                    if op.unknown {
                        class.push_str(" unknown");
                    }
                    if op.ignored {
                        class.push_str(" dropped");
                        title.push_str(
                            "\nleft out: an unknown outcome without effect constrains nothing",
                        );
                    }
                    let badge = order
                        .get(&op.index)
                        .map(|n| format!("<span class=\"badge\">{n}</span>"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        h,
                        "<div class=\"{class}\" data-op=\"{}\" style=\"left:{}px;width:{w}px;top:{}px\" title=\"{}\">{badge}{}</div>",
                        op.index,
                        x(start),
                        r as u64 * ROW_PX + 2,
                        escape_html(&title),
                        escape_html(&op.description)
                    );
                }
            }
            h.push_str("</div>\n");
            top += rows.len() as u64 * ROW_PX;
        }
        h.push_str("</div></div>\n");

        // The linearization and the operations that could not be placed.
        let by_index: BTreeMap<usize, &OpView> = p.ops.iter().map(|o| (o.index, o)).collect();
        let describe = |i: usize| {
            by_index.get(&i).map_or_else(
                || format!("#{i}"),
                |o| format!("#{} client {}: {}", o.index, o.client, o.description),
            )
        };
        let heading = match p.verdict {
            Verdict::Linearizable => "Linearization".to_string(),
            _ => format!(
                "Longest partial linearization found ({} of {} operations)",
                p.linearization.len(),
                p.ops.len()
            ),
        };
        let _ = writeln!(
            h,
            "<p><b>{}</b> <span class=\"note\">(initial state {})</span></p><ol class=\"lin\">",
            heading,
            escape_html(&self.initial_state)
        );
        for s in &p.linearization {
            let _ = writeln!(
                h,
                "<li data-op=\"{}\">{} <span class=\"st\">⇒ {}</span></li>",
                s.op,
                escape_html(&describe(s.op)),
                escape_html(&s.state_after)
            );
        }
        h.push_str("</ol>\n");
        if p.verdict != Verdict::Linearizable && (!p.unplaceable.is_empty() || p.blocking.is_some())
        {
            h.push_str(
                "<p><b>Could not be placed next</b> <span class=\"note\">(called before the earliest pending return; \
                 none of them can follow the partial linearization)</span></p><ul class=\"unpl\">\n",
            );
            for &i in &p.unplaceable {
                let tag = if p.blocking == Some(i) {
                    " <b>(blocking: its return was reached first)</b>"
                } else {
                    ""
                };
                let _ = writeln!(
                    h,
                    "<li data-op=\"{i}\">{}{tag}</li>",
                    escape_html(&describe(i))
                );
            }
            h.push_str("</ul>\n");
        }
        h.push_str("</details></section>\n");
    }

    /// Writes [`Explanation::to_html`] to `path`.
    pub fn write_html(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.to_html())
    }
}
