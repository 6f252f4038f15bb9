//! The script verbs, one function each, and `run`, which dispatches a parsed command to its verb.
//! A verb prints what it caused (through `Env`) and returns `Err` with a message for a bad
//! command or a refused operation; the error is printed, never panicked on.
//!
//! Verbs (ids are node ids; `IDS` is one or more ids; filters are `from=ID to=ID
//! type=(Kind,..) n=N`):
//!
//! | verb | effect |
//! |---|---|
//! | `add-nodes N [voters=(..)] [learners=(..)] [opts]` | add N nodes (see `add_nodes`) |
//! | `campaign ID` | start an election now |
//! | `tick ID [N]`, `tick-all [N]` | advance logical time |
//! | `propose ID DATA` | propose application data |
//! | `propose-conf-change ID v4 l5 r2 [joint\|joint-explicit]`, `... ID leave` | membership |
//! | `read-index ID` | start a linearizable read |
//! | `transfer-leader FROM TO` | leadership transfer |
//! | `stabilize [IDS]` | handle readies and deliver messages (among IDS) until quiet |
//! | `process-ready IDS` | handle one `Ready` of each node |
//! | `persist-mode sync\|async`, `persist ID [N]` | when handed-out writes become durable |
//! | `deliver-msgs`, `drop-msgs`, `hold-msgs`, `release-msgs` `[filters]` | the network |
//! | `msgs` | list messages in flight and held |
//! | `partition (..) (..)`, `isolate ID`, `cut FROM TO`, `heal` | network faults |
//! | `snapshot ID`, `compact ID [INDEX]` | log compaction |
//! | `crash ID`, `restart ID`, `wipe ID` | node faults (`wipe`: a down node loses its disk) |
//! | `status IDS`, `raft-state`, `log ID` | inspect |
//! | `expect ID key=value..` | assert (`role term vote leader commit applied last lease`) |

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use sextant_core::{
    ConfChange, ConfChangeKind, ConfChangeSingle, ConfState, ConfTransition, Config, HardState,
    Message, NodeId, ProgressKind, Proposed, ReadMode, Snapshot, SnapshotMeta,
};

use crate::common::{Durable, PersistMode};
use crate::env::Env;
use crate::format;
use crate::parse::{
    parse_bool, parse_ids, parse_list, parse_range, parse_u64, parse_usize, Command,
};

type VerbResult = Result<(), String>;

/// Runs one command.
pub fn run(env: &mut Env, cmd: &Command) -> VerbResult {
    let verb: fn(&mut Env, &Command) -> VerbResult = match cmd.verb.as_str() {
        "add-nodes" => add_nodes,
        "campaign" => campaign,
        "tick" => tick,
        "tick-all" => tick_all,
        "propose" => propose,
        "propose-conf-change" => propose_conf_change,
        "read-index" => read_index,
        "transfer-leader" => transfer_leader,
        "stabilize" => stabilize,
        "process-ready" => process_ready,
        "persist-mode" => persist_mode,
        "persist" => persist,
        "deliver-msgs" => |e, c| network_op(e, c, NetOp::Deliver),
        "drop-msgs" => |e, c| network_op(e, c, NetOp::Drop),
        "hold-msgs" => |e, c| network_op(e, c, NetOp::Hold),
        "release-msgs" => |e, c| network_op(e, c, NetOp::Release),
        "msgs" => msgs,
        "partition" => partition,
        "isolate" => isolate,
        "cut" => cut,
        "heal" => heal,
        "snapshot" => snapshot,
        "compact" => compact,
        "crash" => crash,
        "restart" => restart,
        "wipe" => wipe,
        "status" => status,
        "raft-state" => raft_state,
        "log" => log,
        "expect" => expect,
        other => return Err(format!("unknown verb {other:?}")),
    };
    verb(env, cmd)
}

fn id_arg(env: &Env, s: &str) -> Result<NodeId, String> {
    env.up(parse_u64(s, "node id")?)
}

fn ids_args(env: &Env, args: &[String]) -> Result<Vec<NodeId>, String> {
    args.iter().map(|a| id_arg(env, a)).collect()
}

/// `add-nodes N [voters=(..)] [learners=(..)] [pre-vote=B] [check-quorum=B]
/// [read-mode=safe|lease:DRIFT] [election=MIN..MAX] [heartbeat=N] [inflight=N]
/// [inflight-bytes=N] [max-append-bytes=N] [snapshot-chunk=N] [forward=B]`
///
/// Adds nodes numbered after the highest existing id. Without `voters`/`learners`, the first
/// nodes of a script bootstrap as the voters of a new cluster and later ones join empty (they
/// wait for a leader to contact them). With `voters` only they bootstrap with those voters;
/// with `learners` they start from a snapshot at 1@1 holding that membership. Options not
/// given keep `Config::new`'s defaults.
fn add_nodes(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[
        "voters",
        "learners",
        "pre-vote",
        "check-quorum",
        "read-mode",
        "election",
        "heartbeat",
        "inflight",
        "inflight-bytes",
        "max-append-bytes",
        "snapshot-chunk",
        "forward",
    ])?;
    cmd.want_pos(1, 1, "N [options]")?;
    let n = parse_u64(&cmd.pos[0], "N")?;
    let first = env.all_ids().last().copied().unwrap_or(0) + 1;
    let new: Vec<NodeId> = (first..first + n).collect();
    let mut cfg_template = Config::new(1);
    apply_config_options(&mut cfg_template, cmd)?;
    let voters = cmd
        .key("voters")
        .map(|v| parse_ids(v, "voters"))
        .transpose()?;
    let learners = cmd
        .key("learners")
        .map(|v| parse_ids(v, "learners"))
        .transpose()?;
    for &id in &new {
        let cfg = Config {
            id,
            ..cfg_template.clone()
        };
        cfg.validate().map_err(|e| e.to_string())?;
        env.configs.borrow_mut().insert(id, cfg);
    }
    let start_empty = voters.is_none() && learners.is_none() && first > 1;
    for &id in &new {
        match (&voters, &learners) {
            (_, Some(learners)) => {
                let voters = voters.clone().unwrap_or_else(|| {
                    new.iter()
                        .copied()
                        .filter(|i| !learners.contains(i))
                        .collect()
                });
                let cs = ConfState {
                    voters: voters.into_iter().collect(),
                    learners: learners.iter().copied().collect(),
                    ..ConfState::default()
                };
                env.cluster.add_node_from_storage(id, snapshot_storage(cs));
            }
            _ if start_empty => env.cluster.add_empty_node(id),
            (voters, None) => {
                let voters = voters.clone().unwrap_or_else(|| new.clone());
                env.cluster.add_bootstrapped_node(id, &voters);
            }
        }
        env.boots.insert(id, 0);
        env.register_boot(id);
        let line = summary(env, id);
        env.line(line);
    }
    Ok(())
}

/// Storage holding only a snapshot at 1@1 with membership `cs` (etcd's rafttest way of
/// starting a cluster).
fn snapshot_storage(cs: ConfState) -> Durable {
    Durable {
        hard_state: HardState {
            term: 1,
            vote: None,
            commit: 1,
        },
        snapshot: Some(Snapshot {
            meta: SnapshotMeta {
                index: 1,
                term: 1,
                conf: cs,
            },
            data: Bytes::new(),
        }),
        entries: Vec::new(),
    }
}

fn apply_config_options(c: &mut Config, cmd: &Command) -> VerbResult {
    let num = |k: &str| cmd.key(k).map(|v| parse_usize(v, k)).transpose();
    if let Some(v) = cmd.key("pre-vote") {
        c.pre_vote = parse_bool(v, "pre-vote")?;
    }
    if let Some(v) = cmd.key("check-quorum") {
        c.check_quorum = parse_bool(v, "check-quorum")?;
    }
    if let Some(v) = cmd.key("forward") {
        c.forward_proposals = parse_bool(v, "forward")?;
    }
    if let Some(v) = cmd.key("read-mode") {
        c.read_mode = match v.split_once(':') {
            None if v == "safe" => ReadMode::Safe,
            Some(("lease", d)) => ReadMode::Lease {
                drift_ticks_max: parse_u64(d, "lease drift")? as u32,
            },
            _ => {
                return Err(format!(
                    "read-mode: expected safe or lease:DRIFT, got {v:?}"
                ))
            }
        };
    }
    if let Some(v) = cmd.key("election") {
        let (lo, hi) = parse_range(v, "election")?;
        c.election_ticks_min = lo as u32;
        c.election_ticks_max = hi as u32;
    }
    if let Some(v) = num("heartbeat")? {
        c.heartbeat_ticks = v as u32;
    }
    if let Some(v) = num("inflight")? {
        c.inflight_msgs_max = v;
    }
    if let Some(v) = num("inflight-bytes")? {
        c.inflight_bytes_max = v;
    }
    if let Some(v) = num("max-append-bytes")? {
        c.append_bytes_max = v;
    }
    if let Some(v) = num("snapshot-chunk")? {
        c.snapshot_chunk_bytes = v;
    }
    Ok(())
}

/// One line: role, term, vote, leader and the log's positions.
pub fn summary(env: &Env, id: NodeId) -> String {
    let Some(n) = env.cluster.nodes.get(&id) else {
        return format!("{id}: down");
    };
    let r = &n.raft;
    format!(
        "{id}: {} term={} vote={} leader={} commit={} applied={} last={}@{}",
        format::role(r.role()),
        r.term(),
        format::opt_id(r.vote()),
        format::opt_id(r.leader()),
        r.commit_index(),
        r.applied_index(),
        r.last_index(),
        r.last_term()
    )
}

fn campaign(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, 1, "ID")?;
    let id = id_arg(env, &cmd.pos[0])?;
    env.observe(|e| e.cluster.raft_mut(id).campaign())
        .map_err(|e| e.to_string())
}

fn tick(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, 2, "ID [N]")?;
    let id = id_arg(env, &cmd.pos[0])?;
    let n = cmd.pos.get(1).map_or(Ok(1), |s| parse_u64(s, "N"))?;
    for _ in 0..n {
        env.observe(|e| e.cluster.raft_mut(id).tick());
    }
    Ok(())
}

fn tick_all(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(0, 1, "[N]")?;
    let n = cmd.pos.first().map_or(Ok(1), |s| parse_u64(s, "N"))?;
    for _ in 0..n {
        env.observe(|e| e.cluster.tick_all());
    }
    Ok(())
}

fn print_proposed(env: &mut Env, p: Proposed) {
    match p {
        Proposed::Appended { index, term } => env.line(format!("appended at {index}@{term}")),
        Proposed::Forwarded { leader } => env.line(format!("forwarded to {leader}")),
    }
}

fn propose(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(2, 2, "ID DATA")?;
    let id = id_arg(env, &cmd.pos[0])?;
    let data = Bytes::from(cmd.pos[1].clone().into_bytes());
    let p = env
        .observe(|e| e.cluster.raft_mut(id).propose(data))
        .map_err(|e| e.to_string())?;
    print_proposed(env, p);
    Ok(())
}

/// `propose-conf-change ID v4 l5 r2 [joint|joint-explicit]` or `propose-conf-change ID leave`.
fn propose_conf_change(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(
        2,
        usize::MAX,
        "ID (v<id>|l<id>|r<id>)... [joint|joint-explicit] | ID leave",
    )?;
    let id = id_arg(env, &cmd.pos[0])?;
    let mut cc = ConfChange::leave_joint();
    for w in &cmd.pos[1..] {
        match w.as_str() {
            "leave" => continue,
            "joint" => {
                cc.transition = ConfTransition::JointAuto;
                continue;
            }
            "joint-explicit" => {
                cc.transition = ConfTransition::JointExplicit;
                continue;
            }
            _ => {}
        }
        let bad = || format!("bad change {w:?}: expected v<id>, l<id> or r<id>");
        let (kind, node) = match w.split_at_checked(1).ok_or_else(bad)? {
            ("v", n) => (ConfChangeKind::AddVoter, n),
            ("l", n) => (ConfChangeKind::AddLearner, n),
            ("r", n) => (ConfChangeKind::Remove, n),
            _ => return Err(bad()),
        };
        let node = parse_u64(node, "change")?;
        cc.changes.push(ConfChangeSingle { kind, node });
    }
    let leave = cmd.pos[1..].iter().any(|w| w == "leave");
    if leave != cc.changes.is_empty() {
        return Err("give either changes or `leave`".into());
    }
    let p = env
        .observe(|e| e.cluster.raft_mut(id).propose_conf_change(cc))
        .map_err(|e| e.to_string())?;
    print_proposed(env, p);
    Ok(())
}

fn read_index(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, 1, "ID")?;
    let id = id_arg(env, &cmd.pos[0])?;
    let rid = env
        .observe(|e| e.cluster.raft_mut(id).read_index())
        .map_err(|e| e.to_string())?;
    let name = env.names.name(&rid);
    env.line(format!("read {name} started"));
    Ok(())
}

fn transfer_leader(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(2, 2, "FROM TO")?;
    let from = id_arg(env, &cmd.pos[0])?;
    let to = parse_u64(&cmd.pos[1], "TO")?;
    env.observe(|e| e.cluster.raft_mut(from).transfer_leader(to))
        .map_err(|e| e.to_string())
}

fn stabilize(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    if cmd.pos.is_empty() {
        return env.stabilize(None);
    }
    let ids: BTreeSet<NodeId> = cmd
        .pos
        .iter()
        .map(|s| parse_u64(s, "node id"))
        .collect::<Result<_, _>>()?;
    env.stabilize(Some(&ids))
}

fn process_ready(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, usize::MAX, "IDS")?;
    for id in ids_args(env, &cmd.pos)? {
        if !env.process_ready(id) {
            env.line(format!("{id}: nothing ready"));
        }
    }
    env.cluster.check();
    Ok(())
}

fn persist_mode(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, 1, "sync|async")?;
    env.cluster.persist_mode = match cmd.pos[0].as_str() {
        "sync" => PersistMode::Sync,
        "async" => PersistMode::Async,
        other => return Err(format!("expected sync or async, got {other:?}")),
    };
    Ok(())
}

fn persist(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, 2, "ID [N]")?;
    let id = id_arg(env, &cmd.pos[0])?;
    let n = cmd
        .pos
        .get(1)
        .map_or(Ok(usize::MAX), |s| parse_usize(s, "N"))?;
    if env.persist(id, n) == 0 {
        env.line(format!("{id}: nothing to persist"));
    }
    env.cluster.check();
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum NetOp {
    Deliver,
    Drop,
    Hold,
    Release,
}

/// Which messages a network verb acts on.
struct Filter {
    from: Option<NodeId>,
    to: Option<NodeId>,
    kinds: Option<Vec<String>>,
    n: usize,
}

impl Filter {
    fn parse(cmd: &Command) -> Result<Filter, String> {
        cmd.allow_keys(&["from", "to", "type", "n"])?;
        cmd.want_pos(0, 0, "[from=ID] [to=ID] [type=(Kind,..)] [n=N]")?;
        let id = |k: &str| cmd.key(k).map(|v| parse_u64(v, k)).transpose();
        Ok(Filter {
            from: id("from")?,
            to: id("to")?,
            kinds: cmd.key("type").map(parse_list),
            n: cmd
                .key("n")
                .map_or(Ok(usize::MAX), |v| parse_usize(v, "n"))?,
        })
    }

    fn matches(&self, m: &Message) -> bool {
        self.from.is_none_or(|f| f == m.from)
            && self.to.is_none_or(|t| t == m.to)
            && self
                .kinds
                .as_ref()
                .is_none_or(|ks| ks.iter().any(|k| k == m.body.kind()))
    }

    /// Splits `msgs` into the (at most `n`) matching messages and the rest, in order.
    fn take(&self, msgs: Vec<Message>) -> (Vec<Message>, Vec<Message>) {
        let (mut hit, mut rest) = (Vec::new(), Vec::new());
        for m in msgs {
            if hit.len() < self.n && self.matches(&m) {
                hit.push(m);
            } else {
                rest.push(m);
            }
        }
        (hit, rest)
    }
}

fn network_op(env: &mut Env, cmd: &Command, op: NetOp) -> VerbResult {
    let f = Filter::parse(cmd)?;
    let source = if op == NetOp::Release {
        std::mem::take(&mut env.held)
    } else {
        std::mem::take(&mut env.cluster.network)
    };
    let (hit, rest) = f.take(source);
    if op == NetOp::Release {
        env.held = rest;
    } else {
        env.cluster.network = rest;
    }
    if hit.is_empty() {
        env.line("no matching messages");
    }
    for m in hit {
        let text = format::message(&m, &env.names);
        match op {
            NetOp::Deliver => env.deliver(m, true),
            NetOp::Drop => env.line(format!("drop {text}")),
            NetOp::Hold => {
                env.line(format!("hold {text}"));
                env.held.push(m);
            }
            NetOp::Release => {
                env.line(format!("release {text}"));
                env.cluster.network.push(m);
            }
        }
    }
    env.cluster.check();
    Ok(())
}

fn msgs(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(0, 0, "")?;
    let mut lines: Vec<String> = env
        .cluster
        .network
        .iter()
        .map(|m| format::message(m, &env.names))
        .collect();
    lines.extend(
        env.held
            .iter()
            .map(|m| format!("(held) {}", format::message(m, &env.names))),
    );
    if lines.is_empty() {
        lines.push("no messages".into());
    }
    for l in lines {
        env.line(l);
    }
    Ok(())
}

/// `partition (1) (2,3)`: cuts every link between different groups (both directions).
fn partition(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(2, usize::MAX, "(IDS) (IDS)...")?;
    let groups: Vec<Vec<NodeId>> = cmd
        .pos
        .iter()
        .map(|g| parse_ids(g, "group"))
        .collect::<Result<_, _>>()?;
    for (k, a) in groups.iter().enumerate() {
        for b in &groups[k + 1..] {
            for &x in a {
                for &y in b {
                    env.cluster.cut.insert((x, y));
                    env.cluster.cut.insert((y, x));
                }
            }
        }
    }
    Ok(())
}

fn isolate(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, 1, "ID")?;
    let id = parse_u64(&cmd.pos[0], "node id")?;
    let all: Vec<NodeId> = env.all_ids().into_iter().collect();
    env.cluster.isolate(id, &all);
    Ok(())
}

/// `cut FROM TO`: drops everything on the directed link FROM -> TO.
fn cut(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(2, 2, "FROM TO")?;
    let from = parse_u64(&cmd.pos[0], "FROM")?;
    let to = parse_u64(&cmd.pos[1], "TO")?;
    env.cluster.cut.insert((from, to));
    Ok(())
}

fn heal(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(0, 0, "")?;
    env.cluster.heal();
    Ok(())
}

fn snapshot(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, 1, "ID")?;
    let id = id_arg(env, &cmd.pos[0])?;
    let index = env.cluster.take_snapshot(id).map_err(|e| e.to_string())?;
    let r = env.cluster.raft(id);
    let s = r.latest_snapshot().expect("just taken");
    let line = format!(
        "snapshot at {index}@{} {} ({} bytes)",
        s.meta.term,
        format::conf(&s.meta.conf),
        s.data.len()
    );
    env.line(line);
    Ok(())
}

fn compact(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, 2, "ID [INDEX]")?;
    let id = id_arg(env, &cmd.pos[0])?;
    let index = match cmd.pos.get(1) {
        Some(s) => parse_u64(s, "INDEX")?,
        None => env
            .cluster
            .raft(id)
            .latest_snapshot()
            .map(|s| s.meta.index)
            .ok_or("no snapshot to compact to")?,
    };
    env.cluster
        .compact_log(id, index)
        .map_err(|e| e.to_string())?;
    let first = env.cluster.raft(id).first_index();
    env.line(format!("log now starts at {first}"));
    Ok(())
}

fn crash(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, 1, "ID")?;
    let id = id_arg(env, &cmd.pos[0])?;
    let lost = env.cluster.nodes[&id].pending.len();
    let in_flight = env
        .cluster
        .network
        .iter()
        .filter(|m| m.to == id || m.from == id)
        .count();
    env.cluster.crash(id);
    env.line(format!(
        "{id} crashed: {lost} unpersisted writes lost, {in_flight} messages to/from it dropped"
    ));
    Ok(())
}

fn restart(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, 1, "ID")?;
    let id = parse_u64(&cmd.pos[0], "node id")?;
    if !env.cluster.down.contains_key(&id) {
        return Err(format!("node {id} is not down"));
    }
    let boots = env.boots.get(&id).copied().unwrap_or(0) + 1;
    env.boots.insert(id, boots);
    env.cluster.restart(id, boots);
    env.register_boot(id);
    let line = summary(env, id);
    env.line(line);
    Ok(())
}

fn wipe(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, 1, "ID")?;
    let id = parse_u64(&cmd.pos[0], "node id")?;
    let Some(d) = env.cluster.down.get_mut(&id) else {
        return Err(format!("node {id} is not down (crash it first)"));
    };
    *d = Durable::default();
    env.line(format!("{id}: storage wiped"));
    Ok(())
}

fn status(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, usize::MAX, "IDS")?;
    for id in ids_args(env, &cmd.pos)? {
        let mut lines = vec![summary(env, id)];
        let r = env.cluster.raft(id);
        lines.push(format!("   conf {}", format::conf(r.conf_state())));
        let d = r.next_deadline();
        if d.ticks != u32::MAX {
            lines.push(format!("   next timer: {:?} in {} ticks", d.timer, d.ticks));
        }
        if r.is_leader() {
            if let ReadMode::Lease { .. } = r.config().read_mode {
                let lease = if r.lease_valid() { "valid" } else { "expired" };
                lines.push(format!("   lease {lease}"));
            }
            if let Some(t) = r.transferee() {
                lines.push(format!("   transferring to {t}"));
            }
            for p in r.conf_state().members() {
                let Some(pv) = r.progress(p) else { continue };
                let state = match pv.state {
                    ProgressKind::Probe => "Probe".to_string(),
                    ProgressKind::Replicate => "Replicate".to_string(),
                    ProgressKind::Snapshot { index } => format!("Snapshot({index})"),
                };
                let active = if pv.recent_active || p == id {
                    ""
                } else {
                    " inactive"
                };
                lines.push(format!(
                    "   progress {p}: match={} next={} {state} inflight={}{active}",
                    pv.match_index, pv.next_index, pv.inflight_msgs
                ));
            }
        }
        for l in lines {
            env.line(l);
        }
    }
    Ok(())
}

fn raft_state(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(0, 0, "")?;
    for id in env.all_ids() {
        let line = summary(env, id);
        env.line(line);
    }
    Ok(())
}

fn log(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[])?;
    cmd.want_pos(1, 1, "ID")?;
    let id = id_arg(env, &cmd.pos[0])?;
    let r = env.cluster.raft(id);
    let first = r.first_index();
    let mut lines = Vec::new();
    if first > 1 {
        let t = r.term_at(first - 1).unwrap_or(0);
        lines.push(format!("(compacted through {}@{t})", first - 1));
    }
    for i in first..=r.last_index() {
        if let Some(e) = r.entry(i) {
            lines.push(format::entry(e));
        }
    }
    if lines.is_empty() {
        lines.push("(empty)".into());
    }
    for l in lines {
        env.line(l);
    }
    Ok(())
}

/// `expect ID key=value..`: fails the test (after printing) when a value differs. Prints
/// nothing when every value matches.
fn expect(env: &mut Env, cmd: &Command) -> VerbResult {
    cmd.allow_keys(&[
        "role", "term", "vote", "leader", "commit", "applied", "last", "lease",
    ])?;
    cmd.want_pos(1, 1, "ID key=value..")?;
    let id = id_arg(env, &cmd.pos[0])?;
    let r = env.cluster.raft(id);
    let actual: BTreeMap<&str, String> = [
        ("role", format::role(r.role()).to_string()),
        ("term", r.term().to_string()),
        ("vote", format::opt_id(r.vote())),
        ("leader", format::opt_id(r.leader())),
        ("commit", r.commit_index().to_string()),
        ("applied", r.applied_index().to_string()),
        ("last", r.last_index().to_string()),
        ("lease", r.lease_valid().to_string()),
    ]
    .into_iter()
    .collect();
    for (k, want) in &cmd.keys {
        let got = &actual[k.as_str()];
        if got != want {
            let msg = format!("expect failed: node {id} {k}={got}, expected {want}");
            env.line(msg.clone());
            env.failures.push(msg);
        }
    }
    Ok(())
}
