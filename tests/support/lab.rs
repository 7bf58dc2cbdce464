//! Namespace labs: network namespaces (the testkit's [`Netns`], shared with the storm benchmark
//! of `cargo xtask bench`) joined by veth pairs and bridges, with the kernel's own ARP stack, and
//! arpwatch processes running inside them. Every namespace and process is removed when its guard
//! drops, which also happens when a test panics.
//!
//! Addresses: only 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24, only inside these namespaces.

pub use arpwatch_core::testkit::netns::Netns;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A running arpwatch. Killed on drop if still running.
pub struct Arpwatch {
    child: Child,
    stderr_lines: Receiver<String>,
    stderr_seen: Vec<String>,
    /// Reads stdout from the start, so a busy arpwatch never blocks on a full pipe.
    stdout: Option<std::thread::JoinHandle<String>>,
    /// Or holds a pipe nobody reads ([`Arpwatch::start_unread`]).
    unread: Option<std::process::ChildStdout>,
}

pub fn arpwatch_bin() -> &'static str {
    env!("CARGO_BIN_EXE_arpwatch")
}

impl Arpwatch {
    /// Starts arpwatch with `args` inside `ns` (or in this namespace when `None`).
    pub fn start(ns: Option<&Netns>, args: &[&str]) -> Arpwatch {
        Self::start_with(ns, args, &[], true)
    }

    /// Starts arpwatch with its stdout on a pipe nobody reads: once the pipe is full, every write
    /// to it blocks. [`Arpwatch::finish`] returns an empty stdout.
    pub fn start_unread(ns: Option<&Netns>, args: &[&str]) -> Arpwatch {
        Self::start_with(ns, args, &[], false)
    }

    /// [`Arpwatch::start`] with environment variables set for arpwatch (e.g. `RUST_LOG`).
    pub fn start_with_env(ns: Option<&Netns>, args: &[&str], env: &[(&str, &str)]) -> Arpwatch {
        Self::start_with(ns, args, env, true)
    }

    fn start_with(
        ns: Option<&Netns>,
        args: &[&str],
        env: &[(&str, &str)],
        read_stdout: bool,
    ) -> Arpwatch {
        let mut cmd = match ns {
            Some(ns) => ns.command(arpwatch_bin()),
            None => Command::new(arpwatch_bin()),
        };
        cmd.envs(env.iter().copied());
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start arpwatch");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = child.stdout.take().unwrap();
        let (stdout, unread) = if read_stdout {
            let reader = std::thread::spawn(move || {
                let mut s = String::new();
                let _ = stdout.read_to_string(&mut s);
                s
            });
            (Some(reader), None)
        } else {
            (None, Some(stdout))
        };
        Arpwatch { child, stderr_lines: rx, stderr_seen: Vec::new(), stdout, unread }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a stderr line contains `needle`; panics with everything seen after `timeout`.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(line) = self.stderr_seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => panic!(
                    "arpwatch did not print {needle:?} within {timeout:?}; stderr so far:\n{}",
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Waits until every interface in `ifaces` is attached.
    pub fn wait_attached(&mut self, ifaces: &[&str]) {
        for iface in ifaces {
            self.wait_for_stderr(&format!("watching {iface} "), Duration::from_secs(20));
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, sig) }, 0, "kill");
    }

    /// Waits for the process to exit (killing it after `timeout`) and returns its status, its
    /// whole stdout and its whole stderr.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let reader = self.stdout.take();
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "arpwatch did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr_seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(self.unread.take());
        let stdout = reader.map(|r| r.join().unwrap()).unwrap_or_default();
        let mut stderr = std::mem::take(&mut self.stderr_seen);
        while let Ok(line) = self.stderr_lines.recv_timeout(Duration::from_millis(500)) {
            stderr.push(line);
        }
        Finished { status, stdout, stderr: stderr.join("\n") }
    }
}

impl Drop for Arpwatch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Every stdout line as JSON; panics on a line that is not.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

/// What arpwatch attaches, as the kernel reports it: a [`Netns`] extension for the tests that
/// check attach and detach (it needs aya, which the testkit does not depend on).
pub trait ProgramsOn {
    /// Programs attached to egress of `iface` by TCX.
    fn tcx_egress_programs(&self, iface: &str) -> usize;
    /// Programs attached to ingress of `iface` by TCX.
    fn tcx_ingress_programs(&self, iface: &str) -> usize;
    /// `tc filter show dev IFACE ingress|egress`: netlink filters, one line each (and one per
    /// chain).
    fn tc_filters(&self, iface: &str, direction: &str) -> String;
    /// `tc qdisc show dev IFACE`.
    fn qdiscs(&self, iface: &str) -> String;
    /// The id of the XDP program on `iface`, if one is attached.
    fn xdp_program_id(&self, iface: &str) -> Option<u64>;
    /// Whether anything arpwatch attaches is on `iface`: XDP, a TCX program, or a netlink filter
    /// (ingress or egress).
    fn has_arpwatch_programs(&self, iface: &str) -> bool;
}

fn tcx_programs(ns: &Netns, iface: &str, attach_type: aya::programs::TcAttachType) -> usize {
    let iface = iface.to_owned();
    ns.run_inside(move || {
        aya::programs::SchedClassifier::query_tcx(&iface, attach_type)
            .map(|(_, programs)| programs.len())
            .unwrap_or_else(|e| panic!("query TCX {attach_type:?} of {iface}: {e}"))
    })
}

impl ProgramsOn for Netns {
    fn tcx_egress_programs(&self, iface: &str) -> usize {
        tcx_programs(self, iface, aya::programs::TcAttachType::Egress)
    }

    fn tcx_ingress_programs(&self, iface: &str) -> usize {
        tcx_programs(self, iface, aya::programs::TcAttachType::Ingress)
    }

    fn tc_filters(&self, iface: &str, direction: &str) -> String {
        let out = self.exec(&["tc", "filter", "show", "dev", iface, direction]);
        String::from_utf8(out.stdout).expect("tc output")
    }

    fn qdiscs(&self, iface: &str) -> String {
        String::from_utf8(self.exec(&["tc", "qdisc", "show", "dev", iface]).stdout)
            .expect("tc output")
    }

    fn xdp_program_id(&self, iface: &str) -> Option<u64> {
        self.link_json(iface).get("xdp")?.get("prog")?.get("id")?.as_u64()
    }

    fn has_arpwatch_programs(&self, iface: &str) -> bool {
        self.has_xdp(iface)
            || self.tcx_egress_programs(iface) > 0
            || self.tcx_ingress_programs(iface) > 0
            || !self.tc_filters(iface, "egress").is_empty()
            || !self.tc_filters(iface, "ingress").is_empty()
    }
}

/// One L2 segment: a `switch` namespace holding bridge `br0`, and hosts attached to it, each by a
/// veth pair `eth0` (in the host) <-> `pN` (a bridge port in the switch).
pub struct Lan {
    /// Hosts first, so they are deleted before the switch.
    pub hosts: Vec<Netns>,
    pub switch: Netns,
    extra_ports: usize,
}

impl Lan {
    pub fn new(tag: &str) -> Lan {
        let switch = Netns::new(&format!("{tag}sw"));
        switch.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ]);
        switch.ip(&["link", "set", "br0", "up"]);
        Lan { hosts: Vec::new(), switch, extra_ports: 0 }
    }

    /// Adds a host with `cidr` on its `eth0`; returns its index in `hosts`.
    pub fn add_host(&mut self, tag: &str, cidr: &str) -> usize {
        let n = self.hosts.len();
        let host = Netns::new(tag);
        let port = format!("p{n}");
        host.veth_to("eth0", &self.switch, &port);
        self.switch.ip(&["link", "set", &port, "master", "br0"]);
        host.add_addr("eth0", cidr);
        self.hosts.push(host);
        n
    }

    /// Connects one more interface `iface` of host `host` to the bridge (a node with several
    /// NICs on one segment). Returns the bridge port's name.
    pub fn connect(&mut self, host: usize, iface: &str) -> String {
        self.extra_ports += 1;
        let port = format!("x{}", self.extra_ports);
        self.hosts[host].veth_to(iface, &self.switch, &port);
        self.switch.ip(&["link", "set", &port, "master", "br0"]);
        port
    }

    /// The bridge ports of the hosts' `eth0`, in the order hosts were added (for a mirror-port
    /// view of the segment).
    pub fn ports(&self) -> Vec<String> {
        (0..self.hosts.len()).map(|n| format!("p{n}")).collect()
    }
}

/// Makes `host` hold `vip` the way kube-proxy in IPVS mode does: a /32 on a down, ARP-off device
/// named `kube-ipvs0` (a veth end stands in for the dummy device this kernel lacks). With
/// `strict_arp` false (`arp_ignore=0`) Linux answers ARP for it on eth0; with `strict_arp` true
/// (`arp_ignore=1`, `arp_announce=2`, what kube-proxy's strictARP sets) it does not.
pub fn hold_vip_like_ipvs(host: &Netns, vip: &str, strict_arp: bool) {
    host.ip(&["link", "add", "kube-ipvs0", "type", "veth", "peer", "name", "kube-ipvs0p"]);
    host.ip(&["link", "set", "kube-ipvs0", "arp", "off"]);
    host.add_addr("kube-ipvs0", &format!("{vip}/32"));
    let (ignore, announce) = if strict_arp { ("1", "2") } else { ("0", "0") };
    for scope in ["all", "eth0"] {
        host.sysctl(&format!("net.ipv4.conf.{scope}.arp_ignore"), ignore);
        host.sysctl(&format!("net.ipv4.conf.{scope}.arp_announce"), announce);
    }
}

/// A configuration file for one test, removed on drop.
pub struct TempConfig {
    pub path: std::path::PathBuf,
}

impl TempConfig {
    pub fn new(toml: &str) -> TempConfig {
        let path = std::env::temp_dir().join(format!(
            "arpwatch-test-{}-{}.toml",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, toml).expect("write config");
        TempConfig { path }
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }

    /// Replaces the file the way a Kubernetes ConfigMap update or an editor does: a new file
    /// renamed over the old one, so a reader never sees it half written.
    pub fn replace(&self, toml: &str) {
        let next = self.path.with_extension("next");
        std::fs::write(&next, toml).expect("write config");
        std::fs::rename(&next, &self.path).expect("replace config");
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Finished {
    /// The events of kind `event` about `ip`, in output order.
    pub fn events(&self, event: &str, ip: &str) -> Vec<Value> {
        self.json_lines().into_iter().filter(|e| e["event"] == event && e["ip"] == ip).collect()
    }
}

/// Runs arpwatch in `ns` on `ifaces` for `seconds`, calls `scenario` once it is attached, and
/// returns its output after it stopped by itself.
pub fn watch_during(
    ns: &Netns,
    ifaces: &[&str],
    extra: &[&str],
    seconds: &str,
    scenario: impl FnOnce(),
) -> Finished {
    let mut args = vec!["watch", "--format", "json", "--duration", seconds];
    for iface in ifaces {
        args.extend(["--iface", iface]);
    }
    args.extend_from_slice(extra);
    let mut watch = Arpwatch::start(Some(ns), &args);
    watch.wait_attached(ifaces);
    scenario();
    let done = watch.finish(Duration::from_secs(30));
    assert!(done.status.success(), "arpwatch failed: {}\n{}", done.status, done.stderr);
    done
}

/// A client at 192.0.2.1 and `nodes` nodes at 192.0.2.11, .12, ...
pub fn cluster(tag: &str, nodes: usize) -> Lan {
    let mut lan = Lan::new(tag);
    lan.add_host(&format!("{tag}c"), "192.0.2.1/24");
    for n in 0..nodes {
        lan.add_host(&format!("{tag}n{n}"), &format!("192.0.2.{}/24", 11 + n));
    }
    lan
}

/// Two namespaces joined by one veth pair: `observer` (192.0.2.1, where arpwatch runs) and
/// `peer` (192.0.2.2).
pub struct Pair {
    pub observer: Netns,
    pub peer: Netns,
}

pub fn pair(tag: &str) -> Pair {
    let observer = Netns::new(&format!("{tag}o"));
    let peer = Netns::new(&format!("{tag}p"));
    observer.veth_to("eth0", &peer, "eth0");
    observer.add_addr("eth0", "192.0.2.1/24");
    peer.add_addr("eth0", "192.0.2.2/24");
    Pair { observer, peer }
}

/// The raw line (`--raw`) of the `op` from `spa` about `tpa`.
pub fn find_raw<'a>(lines: &'a [Value], op: &str, spa: &str, tpa: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["op"] == op && l["spa"] == spa && l["tpa"] == tpa)
        .unwrap_or_else(|| panic!("no {op} {spa} -> {tpa} among {lines:#?}"))
}

/// Where the labs' arpwatch serves its metrics, inside its namespace.
pub const METRICS: &str = "127.0.0.1:9851";

/// GET `path` from the metrics server inside `ns`, waiting at most `timeout` for the answer:
/// (status, body), or `None` when no answer came in time.
pub fn get_within(ns: &Netns, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let path = path.to_owned();
    ns.run_inside(move || {
        let mut stream = TcpStream::connect(METRICS).ok()?;
        stream.set_read_timeout(Some(timeout)).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: arpwatch\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        Some((status, body))
    })
}

/// GET `path` from the metrics server inside `ns`: (status, body); it must answer within 5 s.
pub fn get(ns: &Netns, path: &str) -> (u16, String) {
    get_within(ns, path, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{path} unanswered within 5 s"))
}

/// The value of the sample whose name and labels are exactly `series`.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

/// Scrapes until `done(body)` holds; panics with the last body after `timeout`.
pub fn scrape_until(
    ns: &Netns,
    timeout: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = get(ns, "/metrics");
        assert_eq!(status, 200);
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what} not seen within {timeout:?}:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// IPv6 labs (Neighbor Discovery, the kernel's own). Addresses: only 2001:db8::/32 (and the
// fe80::/64 link-local addresses the kernel makes), only inside the labs' namespaces.

/// How long the kernel may take to finish Duplicate Address Detection of the addresses a lab
/// starts with (a random delay of up to 1 s, then one probe and 1 s of silence).
pub const DAD_TIMEOUT: Duration = Duration::from_secs(10);

impl Lan {
    /// Waits until every IPv6 address of every host is past DAD (none `tentative`).
    pub fn wait_dad(&self) {
        for host in &self.hosts {
            host.wait_dad(DAD_TIMEOUT);
        }
    }
}

/// A client at 2001:db8::1 and `nodes` nodes at 2001:db8::11, ::12, ... (all /64), with every
/// address past DAD: the IPv6 twin of [`cluster`].
pub fn cluster6(tag: &str, nodes: usize) -> Lan {
    let mut lan = Lan::new(tag);
    lan.add_host(&format!("{tag}c"), "2001:db8::1/64");
    for n in 0..nodes {
        lan.add_host(&format!("{tag}n{n}"), &format!("2001:db8::{:x}/64", 0x11 + n));
    }
    lan.wait_dad();
    lan
}

/// The raw ND lines (`--raw`) of `op` (`neighbor_solicitation`, `neighbor_advertisement`) about
/// `target`.
pub fn raw_nd<'a>(lines: &'a [Value], op: &str, target: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["proto"] == "ndp" && l["op"] == op && l["target"] == target).collect()
}

/// The events of `done` whose severity is `warning` or `critical`.
pub fn alarms(done: &Finished) -> Vec<Value> {
    done.json_lines()
        .into_iter()
        .filter(|e| e["severity"] == "warning" || e["severity"] == "critical")
        .collect()
}
