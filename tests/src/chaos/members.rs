//! The chaos test's member processes: real `sextant server` processes started with
//! `ip netns exec` in their own namespaces (which execs, so the child's pid is the server's),
//! killed with `SIGKILL` and restarted on the same data dir, paused with `SIGSTOP` and resumed
//! with `SIGCONT`. Member 0's data dir is a small tmpfs the nemesis can fill. `Drop` resumes
//! and kills every process, then unmounts the tmpfs, also when a test fails.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::net::run;

/// Port every member listens on for clients (each member has its own namespace).
pub const CLIENT_PORT: u16 = 2379;
/// Port every member listens on for peers.
pub const PEER_PORT: u16 = 2380;
/// Size of member 0's tmpfs data dir.
const TMPFS_SIZE: &str = "48m";

/// One member process.
pub struct NsMember {
    pub name: String,
    pub ns: String,
    pub addr: Ipv4Addr,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl NsMember {
    pub fn client_url(&self) -> String {
        format!("http://{}:{CLIENT_PORT}", self.addr)
    }

    fn peer_url(&self) -> String {
        format!("http://{}:{PEER_PORT}", self.addr)
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = run("kill", &[sig, &c.id().to_string()]);
        }
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

/// The member processes of one cluster.
pub struct NsCluster {
    pub members: Vec<NsMember>,
    initial_cluster: String,
    heartbeat_ms: u64,
    election_ms: u64,
    /// Member 0's tmpfs mount point (its data dir), while mounted.
    tmpfs: Option<PathBuf>,
}

impl NsCluster {
    /// Starts one member per namespace. Member 0's data dir is a fresh tmpfs.
    pub fn start(
        dir: &Path,
        namespaces: &[String],
        addrs: &[Ipv4Addr],
        heartbeat_ms: u64,
        election_ms: u64,
    ) -> Result<NsCluster, String> {
        let members: Vec<NsMember> = namespaces
            .iter()
            .zip(addrs)
            .enumerate()
            .map(|(i, (ns, addr))| NsMember {
                name: format!("m{i}"),
                ns: ns.clone(),
                addr: *addr,
                // Member 0's data dir is inside its tmpfs, next to the file that fills it.
                data_dir: if i == 0 {
                    dir.join("m0-disk").join("data")
                } else {
                    dir.join(format!("m{i}"))
                },
                log_path: dir.join(format!("m{i}.log")),
                child: None,
                paused: false,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = NsCluster {
            members,
            initial_cluster,
            heartbeat_ms,
            election_ms,
            tmpfs: None,
        };
        let mount = dir.join("m0-disk");
        std::fs::create_dir_all(&mount).map_err(|e| format!("mkdir: {e}"))?;
        let size = format!("size={TMPFS_SIZE}");
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &size,
                "tmpfs",
                &mount.to_string_lossy(),
            ],
        )?;
        c.tmpfs = Some(mount);
        for i in 0..c.members.len() {
            c.launch(i)?;
        }
        Ok(c)
    }

    /// Starts (or restarts) member `i` on its data dir.
    pub fn launch(&mut self, i: usize) -> Result<(), String> {
        let bin = crate::sextant_bin();
        let m = &mut self.members[i];
        if m.child.is_some() {
            return Err(format!("{} is already running", m.name));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log_path)
            .map_err(|e| format!("open log: {e}"))?;
        let err = log.try_clone().map_err(|e| format!("dup log: {e}"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &m.ns])
            .arg(&bin)
            .arg("server")
            .args(crate::member_flags(&crate::MemberFlags {
                name: &m.name,
                data_dir: &m.data_dir,
                client_url: &m.client_url(),
                peer_url: &m.peer_url(),
                initial_cluster: &self.initial_cluster,
                joins_existing: false,
                token: "chaos",
                heartbeat_ms: self.heartbeat_ms,
                election_ms: self.election_ms,
            }))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", m.name))?;
        m.child = Some(child);
        m.paused = false;
        Ok(())
    }

    /// `SIGKILL`: no chance to flush anything.
    pub fn kill9(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut c) = m.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        m.paused = false;
    }

    /// `SIGSTOP`: the process stays, silent, with its connections open.
    pub fn pause(&mut self, i: usize) {
        self.members[i].signal("-STOP");
        self.members[i].paused = true;
    }

    /// `SIGCONT` after [`NsCluster::pause`].
    pub fn resume(&mut self, i: usize) {
        if self.members[i].paused {
            self.members[i].signal("-CONT");
            self.members[i].paused = false;
        }
    }

    /// Resumes paused members and restarts dead ones.
    pub fn revive_all(&mut self) -> Result<(), String> {
        for i in 0..self.members.len() {
            self.resume(i);
            if !self.members[i].is_running() {
                self.kill9(i);
                self.launch(i)?;
            }
        }
        Ok(())
    }

    /// Fills member 0's tmpfs to the last byte; returns the bytes written.
    pub fn fill_disk(&self) -> Result<u64, String> {
        let mount = self.tmpfs.as_ref().ok_or("no tmpfs")?;
        let mut f = File::create(mount.join("fill")).map_err(|e| format!("create fill: {e}"))?;
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        // Bounded: the tmpfs holds at most TMPFS_SIZE.
        for _ in 0..4096 {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(_) => break,
            }
        }
        // Whatever is left is smaller than a chunk: take it byte by byte in small writes.
        for _ in 0..65_536 {
            if f.write(&[0u8]).map_or(true, |n| n == 0) {
                break;
            }
            written += 1;
        }
        Ok(written)
    }

    /// Frees the space [`NsCluster::fill_disk`] took.
    pub fn free_disk(&self) -> Result<(), String> {
        let mount = self.tmpfs.as_ref().ok_or("no tmpfs")?;
        match std::fs::remove_file(mount.join("fill")) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("remove fill: {e}")),
        }
    }

    /// Every member's log, for failure reports.
    pub fn logs(&self) -> Vec<(String, PathBuf)> {
        self.members
            .iter()
            .map(|m| (m.name.clone(), m.log_path.clone()))
            .collect()
    }
}

impl Drop for NsCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.resume(i);
            self.kill9(i);
        }
        if let Some(mount) = self.tmpfs.take() {
            let _ = run("umount", &["-l", &mount.to_string_lossy()]);
        }
    }
}
