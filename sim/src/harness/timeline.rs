//! The run's timeline: what each member was (role and term) and went through (crash, restart,
//! pause, clock changes) over simulated time, rendered with the nemesis's network faults and
//! the clients' operations into one self-contained HTML page, so a person sees at a glance
//! what happened in a seed.

use std::collections::BTreeMap;
use std::fmt::Write;

use sextant_core::{NodeId, RoleKind, Term};

use crate::checker::{escape_html, KvInput, KvOutput, Operation};

/// A member's role or term changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleChange {
    pub micros: u64,
    pub id: NodeId,
    pub role: RoleKind,
    pub term: Term,
}

/// Something the harness did to one member.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MarkKind {
    Down,
    Up,
    Paused,
    Resumed,
    /// Cut off from every other member (until `Reconnected`).
    Isolated,
    Reconnected,
    /// A clock change (drift or jump), described.
    Clock(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mark {
    pub micros: u64,
    pub id: NodeId,
    pub kind: MarkKind,
}

/// Recorded as the run goes; times are microseconds since `epoch`.
#[derive(Default)]
pub struct Timeline {
    epoch: Option<tokio::time::Instant>,
    pub roles: Vec<RoleChange>,
    pub marks: Vec<Mark>,
    last_roles: BTreeMap<NodeId, (RoleKind, Term)>,
}

impl Timeline {
    /// A timeline starting at the current simulated instant.
    pub fn starting_now() -> Timeline {
        Timeline {
            epoch: Some(tokio::time::Instant::now()),
            ..Default::default()
        }
    }

    fn now_micros(&self) -> u64 {
        self.epoch.map_or(0, |e| e.elapsed().as_micros() as u64)
    }

    /// Records `id`'s role and term if they changed since it was last seen.
    pub fn observe_role(&mut self, id: NodeId, role: RoleKind, term: Term) {
        if self.last_roles.insert(id, (role, term)) == Some((role, term)) {
            return;
        }
        let micros = self.now_micros();
        self.roles.push(RoleChange {
            micros,
            id,
            role,
            term,
        });
    }

    pub fn mark(&mut self, id: NodeId, kind: MarkKind) {
        if matches!(kind, MarkKind::Down) {
            // A restarted member starts as a follower again; its first observation says so.
            self.last_roles.remove(&id);
        }
        let micros = self.now_micros();
        self.marks.push(Mark { micros, id, kind });
    }
}

const LANE_PX: f64 = 26.0;
const OP_LANE_PX: f64 = 14.0;
const LEFT_PX: f64 = 90.0;
const PX_PER_SEC: f64 = 240.0;

fn role_color(r: RoleKind) -> &'static str {
    match r {
        RoleKind::Follower => "#cfd8dc",
        RoleKind::PreCandidate => "#ffe082",
        RoleKind::Candidate => "#ffb74d",
        RoleKind::Leader => "#43a047",
    }
}

/// What the page shows besides the timeline itself.
pub struct TimelineInput<'a> {
    pub title: &'a str,
    pub members: &'a [NodeId],
    /// Simulated microseconds the run lasted.
    pub end_micros: u64,
    /// Nemesis events (time, description).
    pub faults: &'a [(u64, String)],
    pub ops: &'a [Operation<KvInput, KvOutput>],
}

/// Renders the timeline as one self-contained HTML page (inline SVG, no scripts).
pub fn render_html(t: &Timeline, input: &TimelineInput<'_>) -> String {
    let end = input.end_micros.max(1);
    let x = |us: u64| LEFT_PX + us.min(end) as f64 / 1e6 * PX_PER_SEC;
    let width = x(end) + 20.0;
    let clients: Vec<u64> = {
        let mut c: Vec<u64> = input.ops.iter().map(|o| o.client).collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let lanes_top = 40.0;
    let nemesis_y = lanes_top + LANE_PX * input.members.len() as f64 + 8.0;
    let ops_top = nemesis_y + 30.0;
    let height = ops_top + OP_LANE_PX * clients.len() as f64 + 30.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="monospace" font-size="11">"#
    );
    // Time axis: a tick every simulated second.
    let secs = end / 1_000_000 + 1;
    for s in 0..=secs {
        let px = x(s * 1_000_000);
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" y1="20" x2="{px:.1}" y2="{height:.0}" stroke="#eee"/><text x="{px:.1}" y="15">{s}s</text>"##
        );
    }
    for (lane, &id) in input.members.iter().enumerate() {
        let y = lanes_top + LANE_PX * lane as f64;
        let _ = write!(
            svg,
            r#"<text x="4" y="{:.1}">member {id}</text>"#,
            y + LANE_PX * 0.6
        );
        let changes: Vec<&RoleChange> = t.roles.iter().filter(|r| r.id == id).collect();
        for (k, r) in changes.iter().enumerate() {
            let until = changes.get(k + 1).map_or(end, |n| n.micros);
            let (x0, x1) = (x(r.micros), x(until));
            let _ = write!(
                svg,
                r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>member {id}: {:?} in term {} from {:.3}s</title></rect>"#,
                (x1 - x0).max(0.5),
                LANE_PX - 6.0,
                role_color(r.role),
                r.role,
                r.term,
                r.micros as f64 / 1e6
            );
            if r.role == RoleKind::Leader && x1 - x0 > 18.0 {
                let _ = write!(
                    svg,
                    r##"<text x="{:.1}" y="{:.1}" fill="#fff">t{}</text>"##,
                    x0 + 2.0,
                    y + LANE_PX * 0.55,
                    r.term
                );
            }
        }
        // Down and paused spans, drawn over the roles.
        let marks: Vec<&Mark> = t.marks.iter().filter(|m| m.id == id).collect();
        for (k, m) in marks.iter().enumerate() {
            let (ends_with, color, what): (&[MarkKind], &str, &str) = match &m.kind {
                MarkKind::Down => (&[MarkKind::Up], "#e53935", "down (crashed)"),
                MarkKind::Paused => (&[MarkKind::Resumed, MarkKind::Down], "#8e24aa", "paused"),
                MarkKind::Isolated => (
                    &[MarkKind::Reconnected, MarkKind::Down],
                    "#37474f",
                    "isolated",
                ),
                MarkKind::Clock(c) => {
                    let px = x(m.micros);
                    let _ = write!(
                        svg,
                        r##"<path d="M{px:.1} {y:.1} l4 -6 l-8 0 z" fill="#1e88e5"><title>member {id}: clock {} at {:.3}s</title></path>"##,
                        escape_html(c),
                        m.micros as f64 / 1e6
                    );
                    continue;
                }
                _ => continue,
            };
            let until = marks[k + 1..]
                .iter()
                .find(|n| ends_with.contains(&n.kind))
                .map_or(end, |n| n.micros);
            let (x0, x1) = (x(m.micros), x(until));
            let _ = write!(
                svg,
                r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}" fill-opacity="0.75"><title>member {id}: {what} {:.3}s–{:.3}s</title></rect>"#,
                y + 3.0,
                (x1 - x0).max(1.0),
                LANE_PX - 12.0,
                m.micros as f64 / 1e6,
                until as f64 / 1e6
            );
        }
    }
    // Nemesis lane: one tick per fault, described on hover.
    let _ = write!(
        svg,
        r#"<text x="4" y="{:.1}">nemesis</text>"#,
        nemesis_y + 14.0
    );
    for (us, what) in input.faults {
        let px = x(*us);
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" y1="{lanes_top:.1}" x2="{px:.1}" y2="{:.1}" stroke="#fb8c00" stroke-opacity="0.35"/><rect x="{:.1}" y="{:.1}" width="3" height="16" fill="#fb8c00"><title>{:.3}s {}</title></rect>"##,
            nemesis_y + 18.0,
            px - 1.5,
            nemesis_y + 2.0,
            *us as f64 / 1e6,
            escape_html(what)
        );
    }
    // Client operations, one lane per client.
    for (lane, &c) in clients.iter().enumerate() {
        let y = ops_top + OP_LANE_PX * lane as f64;
        let _ = write!(
            svg,
            r#"<text x="4" y="{:.1}">client {c}</text>"#,
            y + OP_LANE_PX * 0.8
        );
        for op in input.ops.iter().filter(|o| o.client == c) {
            let ret = op.ret.unwrap_or(end);
            let (x0, x1) = (x(op.call), x(ret));
            let color = match (&op.input, &op.output) {
                (_, None) => "#9e9e9e",
                (KvInput::Put { .. }, _) => "#1e88e5",
                (KvInput::Get { .. }, _) => "#43a047",
                _ => "#f4511e",
            };
            let out = match &op.output {
                Some(o) => format!("{o:?}"),
                None => "outcome unknown".to_string(),
            };
            let _ = write!(
                svg,
                r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>client {c} {:.3}s–{:.3}s: {} → {}</title></rect>"#,
                y + 2.0,
                (x1 - x0).max(1.0),
                OP_LANE_PX - 4.0,
                op.call as f64 / 1e6,
                ret as f64 / 1e6,
                escape_html(&format!("{:?}", op.input)),
                escape_html(&out)
            );
        }
    }
    svg.push_str("</svg>");
    let legend = [
        ("#43a047", "leader (term inside)"),
        ("#cfd8dc", "follower"),
        ("#ffe082", "pre-candidate"),
        ("#ffb74d", "candidate"),
        ("#e53935", "crashed"),
        ("#8e24aa", "paused"),
        ("#37474f", "isolated"),
        ("#1e88e5", "clock change / put"),
        ("#f4511e", "delete"),
        ("#9e9e9e", "outcome unknown"),
        ("#fb8c00", "nemesis fault"),
    ]
    .iter()
    .map(|(c, w)| {
        format!(r#"<span style="display:inline-block;width:12px;height:12px;background:{c}"></span> {w} &nbsp; "#)
    })
    .collect::<String>();
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif\"><h2>{title}</h2><p>{legend}</p>\
         <p>Hover over any mark for details. One lane per member (role and term over time), \
         the nemesis's faults, then one lane per client (each operation from call to return).</p>\
         <div style=\"overflow-x:auto;border:1px solid #ccc\">{svg}</div></body></html>",
        title = escape_html(input.title)
    )
}
