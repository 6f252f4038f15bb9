//! The chaos test's network: one bridge in the root namespace, one network namespace per
//! member joined to it by a veth pair, addresses in a private /24 derived from the process id,
//! and the host on the bridge so host-side clients reach every member. Faults are `nftables`
//! rules in a member's own namespace (dropping its outgoing packets to chosen addresses, or a
//! random share of them) and a `tbf` rate limit on its veth (a slow link: queueing delay under
//! load), or `netem` delay when the kernel has it. Only the members' and the bridge's own
//! addresses are ever touched. [`Topology`]'s `Drop` deletes every namespace and the bridge.

use std::net::Ipv4Addr;
use std::process::Command;

/// Runs a command, returning its stderr on failure.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `nft -f -` with `script` on stdin inside namespace `ns`.
fn nft(ns: &str, script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())
        .map_err(|e| format!("nft stdin: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft in {ns} failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces, veths and bridge of one cluster.
pub struct Topology {
    /// Prefix of every name this topology made (`sx<pid>c<k>`).
    tag: String,
    bridge: String,
    /// One namespace per member.
    pub namespaces: Vec<String>,
    /// Member `i`'s address.
    pub addrs: Vec<Ipv4Addr>,
    /// The host's address on the bridge.
    pub host: Ipv4Addr,
    /// Whether `tc qdisc … netem` works here (many small VM kernels lack it).
    pub has_netem: bool,
}

impl Topology {
    /// Creates the bridge and `n` namespaces. `cluster` tells apart the clusters of one test
    /// process. Everything made so far is removed if a step fails.
    pub fn create(n: usize, cluster: u32) -> Result<Topology, String> {
        let pid = std::process::id();
        let tag = format!("sx{pid}c{cluster}");
        let third = subnet_octet(pid, cluster)?;
        let mut topo = Topology {
            bridge: format!("{tag}br"),
            tag,
            namespaces: Vec::new(),
            addrs: Vec::new(),
            host: Ipv4Addr::new(10, 213, third, 254),
            has_netem: false,
        };
        let host = format!("{}/24", topo.host);
        run("ip", &["link", "add", &topo.bridge, "type", "bridge"])?;
        run("ip", &["addr", "add", &host, "dev", &topo.bridge])?;
        run("ip", &["link", "set", &topo.bridge, "up"])?;
        for i in 0..n {
            let ns = format!("{}n{i}", topo.tag);
            let veth = format!("{}v{i}", topo.tag);
            let addr = Ipv4Addr::new(10, 213, third, u8::try_from(i + 1).expect("few members"));
            run("ip", &["netns", "add", &ns])?;
            topo.namespaces.push(ns.clone());
            topo.addrs.push(addr);
            run(
                "ip",
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            run("ip", &["link", "set", &veth, "master", &topo.bridge, "up"])?;
            let cidr = format!("{addr}/24");
            run("ip", &["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            nft(
                &ns,
                "table inet sxchaos {\n  chain out {\n    type filter hook output priority 0; policy accept;\n  }\n}\n",
            )?;
        }
        let probe = &topo.namespaces[0];
        topo.has_netem = run(
            "ip",
            &[
                "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                "delay", "1ms",
            ],
        )
        .is_ok();
        if topo.has_netem {
            run(
                "ip",
                &[
                    "netns", "exec", probe, "tc", "qdisc", "del", "dev", "lo", "root",
                ],
            )?;
        }
        Ok(topo)
    }

    /// Member `from` drops every packet it sends to the members in `to` (a one-way cut;
    /// cutting both directions makes a partition).
    pub fn drop_to(&self, from: usize, to: &[usize]) -> Result<(), String> {
        if to.is_empty() {
            return Ok(());
        }
        let set = to
            .iter()
            .map(|&j| self.addrs[j].to_string())
            .collect::<Vec<_>>()
            .join(", ");
        nft(
            &self.namespaces[from],
            &format!("add rule inet sxchaos out ip daddr {{ {set} }} drop\n"),
        )
    }

    /// Cuts the members into groups that can only talk inside their own group.
    pub fn partition(&self, groups: &[Vec<usize>]) -> Result<(), String> {
        for g in groups {
            let others: Vec<usize> = (0..self.addrs.len()).filter(|j| !g.contains(j)).collect();
            for &i in g {
                self.drop_to(i, &others)?;
            }
        }
        Ok(())
    }

    /// Member `i` loses `percent`% of the packets it sends, and its link is slowed: `netem`
    /// delay when available, else a `tbf` rate limit (queueing delay under load).
    pub fn degrade(&self, i: usize, percent: u32) -> Result<(), String> {
        let ns = &self.namespaces[i];
        nft(
            ns,
            &format!(
                "add rule inet sxchaos out ip daddr {} numgen random mod 100 < {percent} drop\n",
                self.subnet()
            ),
        )?;
        let qdisc: &[&str] = if self.has_netem {
            &["netem", "delay", "40ms", "20ms"]
        } else {
            &[
                "tbf", "rate", "2mbit", "burst", "32kbit", "latency", "300ms",
            ]
        };
        let mut args = vec![
            "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "eth0", "root",
        ];
        args.extend_from_slice(qdisc);
        run("ip", &args)
    }

    /// Removes every rule and qdisc the faults added, on every member.
    pub fn heal(&self) -> Result<(), String> {
        for ns in &self.namespaces {
            nft(ns, "flush chain inet sxchaos out\n")?;
            // Fails harmlessly when there is no root qdisc to delete.
            let _ = run(
                "ip",
                &[
                    "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root",
                ],
            );
        }
        Ok(())
    }

    /// The members' and host's subnet, `10.213.x.0/24`.
    pub fn subnet(&self) -> String {
        let [a, b, c, _] = self.host.octets();
        format!("{a}.{b}.{c}.0/24")
    }

    /// The name prefix of everything this topology made.
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            // Deleting the namespace deletes its end of the veth, and with it the pair.
            let _ = run("ip", &["netns", "del", ns]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}

/// A third octet for 10.213.x.0/24 that no interface on this host uses yet.
fn subnet_octet(pid: u32, cluster: u32) -> Result<u8, String> {
    let used = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .map_err(|e| format!("ip addr: {e}"))?;
    let used = String::from_utf8_lossy(&used.stdout).into_owned();
    for k in 0..250u32 {
        let third =
            u8::try_from((pid.wrapping_mul(7) + cluster * 31 + k) % 250 + 1).expect("below 256");
        if !used.contains(&format!(" 10.213.{third}.")) {
            return Ok(third);
        }
    }
    Err("every 10.213.x.0/24 subnet is in use".into())
}

/// Deletes namespaces and bridges left by earlier runs whose process is gone (a run killed
/// before its `Drop` ran).
pub fn sweep_stale() {
    let list = Command::new("ip").args(["netns", "list"]).output();
    let Ok(list) = list else { return };
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let ns = line.split_whitespace().next().unwrap_or("");
        if let Some(pid) = stale_pid(ns) {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = run("ip", &["netns", "del", ns]);
            }
        }
    }
    let links = Command::new("ip").args(["-o", "link", "show"]).output();
    let Ok(links) = links else { return };
    for line in String::from_utf8_lossy(&links.stdout).lines() {
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if !name.ends_with("br") {
            continue;
        }
        if let Some(pid) = stale_pid(name) {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = run("ip", &["link", "del", name]);
            }
        }
    }
}

/// The pid in a name made by [`Topology::create`] (`sx<pid>c…`).
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("sx")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || !rest[digits.len()..].starts_with('c') {
        return None;
    }
    digits.parse().ok()
}
