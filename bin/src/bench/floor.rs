//! `sextant bench replication-floor`: the machine's floor for a replicated write, with no
//! server involved. The leader and each follower are processes of their own (as cluster
//! members are; this binary, started with the hidden `replication-floor-member`), linked by
//! TCP on loopback. One client sends a value; the leader forwards it to every follower and
//! writes it to its own file, each follower writes and `fdatasync`s its copy and answers one
//! byte, and the client gets its answer once a majority (the leader included) holds the value
//! durably. Files are written over space written beforehand, as a write-ahead log reuses its
//! preallocated segments. No gRPC, no consensus, no state machine: whatever an etcd-API
//! server adds comes on top of this, which is what `bin/bench/compare` sets beside put-1.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::Context;

use super::driver::micros;
use super::report::Report;

/// Space each member writes over, at most (the writes wrap around it).
const REGION_BYTES_MAX: u64 = 64 << 20;

pub struct Plan {
    pub members: usize,
    pub val_size: usize,
    pub total: u64,
    pub dir: PathBuf,
}

/// One member's part: the hidden member command's flags.
#[derive(clap::Args, Debug, Clone)]
pub struct MemberPlan {
    #[arg(long)]
    pub file: PathBuf,
    #[arg(long)]
    pub slots: u64,
    #[arg(long)]
    pub val_size: usize,
    /// Empty for a follower; the followers' ports for the leader.
    #[arg(long = "follower")]
    pub followers: Vec<u16>,
    /// Followers that must hold a value (with the leader) before it is answered.
    #[arg(long)]
    pub quorum: usize,
}

impl MemberPlan {
    /// The command line that starts this member.
    fn command(&self) -> anyhow::Result<Command> {
        let exe = std::env::current_exe().context("finding this program to start members")?;
        let mut cmd = Command::new(exe);
        cmd.args(["bench", "replication-floor-member", "--file"])
            .arg(&self.file)
            .args(["--slots", &self.slots.to_string()])
            .args(["--val-size", &self.val_size.to_string()])
            .args(["--quorum", &self.quorum.to_string()]);
        for port in &self.followers {
            cmd.args(["--follower", &port.to_string()]);
        }
        Ok(cmd)
    }
}

/// Runs `plan.total` replicated writes one after another and reports their latencies.
pub fn run(plan: &Plan) -> anyhow::Result<Report> {
    anyhow::ensure!(
        (1..=7).contains(&plan.members),
        "--members must be between 1 and 7"
    );
    anyhow::ensure!(plan.val_size > 0, "--val-size must be at least 1");
    let dir = plan
        .dir
        .join(format!("sextant-floor-{}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = measure(plan, &dir);
    let removed = std::fs::remove_dir_all(&dir);
    let report = result?;
    removed.with_context(|| format!("removing {}", dir.display()))?;
    Ok(report)
}

fn measure(plan: &Plan, dir: &Path) -> anyhow::Result<Report> {
    let slots = (REGION_BYTES_MAX / plan.val_size as u64).clamp(1, plan.total.max(1));
    let mut members = Members(Vec::new());
    let mut ports = Vec::new();
    let member = |i: usize, followers: Vec<u16>, quorum: usize| MemberPlan {
        file: dir.join(format!("member-{i}")),
        slots,
        val_size: plan.val_size,
        followers,
        quorum,
    };
    for i in 1..plan.members {
        ports.push(members.start(i, &member(i, Vec::new(), 0))?);
    }
    let leader = members.start(0, &member(0, ports, plan.members / 2))?;
    let mut conn = connect((Ipv4Addr::LOCALHOST, leader).into())?;

    let mut report = Report::new("replication-floor".into());
    let value = vec![0x5a; plan.val_size];
    let mut ack = [0u8; 1];
    let started = Instant::now();
    for _ in 0..plan.total {
        let sent = Instant::now();
        conn.write_all(&value)
            .and_then(|()| conn.read_exact(&mut ack))
            .context("the leader stopped answering")?;
        report
            .hist
            .record(micros(sent.elapsed()))
            .expect("latency within the histogram's bounds");
    }
    report.elapsed = started.elapsed();
    // Closing the connection ends the leader, which closes its followers'.
    drop(conn);
    members.wait()?;
    Ok(report)
}

/// The member processes by number (0: the leader); any still running when this is dropped
/// are killed.
struct Members(Vec<(usize, Child)>);

impl Members {
    /// Starts member `i` and returns the port it listens on.
    fn start(&mut self, i: usize, plan: &MemberPlan) -> anyhow::Result<u16> {
        let mut child = plan
            .command()?
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a member")?;
        let stdout = child.stdout.take().expect("piped");
        self.0.push((i, child));
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        line.trim()
            .parse()
            .with_context(|| format!("member {i} did not say its port (said {line:?})"))
    }

    /// Waits for every member to end; an error if any failed.
    fn wait(mut self) -> anyhow::Result<()> {
        let mut failed = Vec::new();
        for (i, mut child) in std::mem::take(&mut self.0) {
            let status = child.wait()?;
            if !status.success() {
                failed.push(format!("member {i}: {status}"));
            }
        }
        anyhow::ensure!(failed.is_empty(), "{}", failed.join("; "));
        Ok(())
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One member: prepares its file, prints the port it listens on, takes one connection (the
/// client's for the leader, the leader's for a follower) and serves it until it closes.
pub fn member(plan: &MemberPlan) -> anyhow::Result<()> {
    let region = Region {
        slots: plan.slots,
        val_size: plan.val_size,
    };
    let file = region
        .prepare(&plan.file)
        .with_context(|| format!("preparing {}", plan.file.display()))?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    println!("{}", listener.local_addr()?.port());
    io::stdout().flush()?;
    let followers = plan
        .followers
        .iter()
        .map(|&port| connect((Ipv4Addr::LOCALHOST, port).into()))
        .collect::<io::Result<Vec<_>>>()
        .context("connecting to the followers")?;
    let (conn, _) = listener.accept()?;
    conn.set_nodelay(true)?;
    serve(conn, followers, plan.quorum, &file, region)?;
    Ok(())
}

/// Where a member writes: `slots` values of `val_size` bytes, written before the run.
#[derive(Clone, Copy)]
struct Region {
    slots: u64,
    val_size: usize,
}

impl Region {
    fn prepare(&self, path: &Path) -> io::Result<File> {
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(path)?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = self.slots * self.val_size as u64;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            (&file).write_all(&zeros[..n])?;
            left -= n as u64;
        }
        file.sync_all()?;
        Ok(file)
    }

    /// Writes the `n`th value and makes it durable.
    fn write(&self, file: &File, n: u64, value: &[u8]) -> io::Result<()> {
        file.write_all_at(value, (n % self.slots) * self.val_size as u64)?;
        file.sync_data()
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let conn = TcpStream::connect(addr)?;
    conn.set_nodelay(true)?;
    Ok(conn)
}

/// Reads one value; `false` at a clean end of the stream.
fn read_value(conn: &mut TcpStream, value: &mut [u8]) -> io::Result<bool> {
    match conn.read_exact(value) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Forwards each value, writes its own copy meanwhile, and answers once `quorum` followers
/// hold every value sent so far (acknowledgements still owed by slower followers are taken
/// as they come, and all of them before the end). A follower is a member with no followers:
/// it writes and answers.
fn serve(
    mut client: TcpStream,
    mut followers: Vec<TcpStream>,
    quorum: usize,
    file: &File,
    region: Region,
) -> io::Result<()> {
    let mut value = vec![0u8; region.val_size];
    let mut owed = vec![0u64; followers.len()];
    let mut n = 0;
    while read_value(&mut client, &mut value)? {
        for (f, owed) in followers.iter_mut().zip(&mut owed) {
            f.write_all(&value)?;
            *owed += 1;
        }
        region.write(file, n, &value)?;
        while owed.iter().filter(|&&o| o == 0).count() < quorum {
            take_acks(&mut followers, &mut owed)?;
        }
        client.write_all(&[1])?;
        n += 1;
    }
    // Closing a connection with an unread acknowledgement would reset it under the follower.
    while owed.iter().any(|&o| o > 0) {
        take_acks(&mut followers, &mut owed)?;
    }
    Ok(())
}

/// Waits until some follower that owes acknowledgements has sent one, and takes what came.
fn take_acks(followers: &mut [TcpStream], owed: &mut [u64]) -> io::Result<()> {
    let mut fds: Vec<libc::pollfd> = followers
        .iter()
        .zip(owed.iter())
        .map(|(f, &o)| libc::pollfd {
            fd: if o > 0 { f.as_raw_fd() } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the call's duration.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
    if ready < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(())
        } else {
            Err(e)
        };
    }
    for ((pfd, f), owed) in fds.iter().zip(followers.iter_mut()).zip(owed.iter_mut()) {
        if pfd.fd >= 0 && pfd.revents != 0 {
            let mut ack = [0u8; 1];
            f.read_exact(&mut ack)?;
            *owed -= 1;
        }
    }
    Ok(())
}
