//! Namespace labs: network namespaces joined by veth pairs and bridges, with the kernel's own ARP
//! stack, and arpwatch processes running inside them. Every namespace and process is removed when
//! its guard drops, which also happens when a test panics.
//!
//! Addresses: only 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24, only inside these namespaces.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Runs a command to completion and panics with its output if it fails.
pub fn sh(args: &[&str]) -> Output {
    let out =
        Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A namespace with a name unique to this process and test (`aw-<tag>-<pid>-<n>`), loopback up.
    pub fn new(tag: &str) -> Netns {
        let name =
            format!("aw-{tag}-{}-{}", std::process::id(), NEXT_ID.fetch_add(1, Ordering::Relaxed));
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// A command inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `args` inside the namespace to completion, panicking on failure.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        self.exec(&["sysctl", "-qw", &format!("{key}={value}")]);
    }

    /// Sends one UDP datagram from inside the namespace: the kernel resolves the next hop with its
    /// own ARP first. Needs nothing but bash.
    pub fn udp_to(&self, ip: &str) {
        self.exec(&["bash", "-c", &format!("echo arpwatch-test > /dev/udp/{ip}/9")]);
    }

    pub fn link_json(&self, iface: &str) -> Value {
        let out = self.ip(&["-j", "-d", "link", "show", "dev", iface]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
        v[0].clone()
    }

    pub fn mac(&self, iface: &str) -> String {
        self.link_json(iface)["address"].as_str().expect("address").to_owned()
    }

    pub fn ifindex(&self, iface: &str) -> u64 {
        self.link_json(iface)["ifindex"].as_u64().expect("ifindex")
    }

    /// Whether any XDP program is attached to `iface` (the `xdp` key of `ip -j -d link`).
    pub fn has_xdp(&self, iface: &str) -> bool {
        self.link_json(iface).get("xdp").is_some()
    }

    /// Creates a veth pair `here` (in self) <-> `there` (in `peer`), both up.
    pub fn veth_to(&self, here: &str, peer: &Netns, there: &str) {
        self.ip(&["link", "add", here, "type", "veth", "peer", "name", there, "netns", &peer.name]);
        self.ip(&["link", "set", here, "up"]);
        peer.ip(&["link", "set", there, "up"]);
    }

    pub fn add_addr(&self, iface: &str, cidr: &str) {
        self.ip(&["addr", "add", cidr, "dev", iface]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes its interfaces, and with them their veth peers.
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A running arpwatch. Killed on drop if still running.
pub struct Arpwatch {
    child: Child,
    stderr_lines: Receiver<String>,
    stderr_seen: Vec<String>,
    /// Reads stdout from the start, so a busy arpwatch never blocks on a full pipe.
    stdout: Option<std::thread::JoinHandle<String>>,
}

pub fn arpwatch_bin() -> &'static str {
    env!("CARGO_BIN_EXE_arpwatch")
}

impl Arpwatch {
    /// Starts arpwatch with `args` inside `ns` (or in this namespace when `None`).
    pub fn start(ns: Option<&Netns>, args: &[&str]) -> Arpwatch {
        let mut cmd = match ns {
            Some(ns) => ns.command(arpwatch_bin()),
            None => Command::new(arpwatch_bin()),
        };
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
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        Arpwatch { child, stderr_lines: rx, stderr_seen: Vec::new(), stdout: Some(stdout) }
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
        let reader = self.stdout.take().unwrap();
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
        let stdout = reader.join().unwrap();
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

impl Netns {
    /// Runs `f` on a thread that has entered this namespace (setns changes only the calling
    /// thread's namespace, so a short-lived thread does it), and returns its result.
    pub fn run_inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let ns = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on a valid namespace descriptor, for this thread only.
            assert_eq!(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                0,
                "setns {path}"
            );
            f()
        })
        .join()
        .expect("thread inside the namespace")
    }

    /// Writes raw Ethernet frames out of `iface` through an AF_PACKET socket opened inside the
    /// namespace, as a MetalLB or kube-vip speaker does for its gratuitous ARP, and as a test does
    /// for tagged or malformed frames the kernel's own stack would never send.
    pub fn send_frames(&self, iface: &str, frames: &[Vec<u8>]) {
        let iface = iface.to_owned();
        let frames = frames.to_vec();
        self.run_inside(move || {
            // SAFETY: plain syscalls on valid descriptors and buffers owned by this thread.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
                let cname = std::ffi::CString::new(iface.clone()).unwrap();
                let ifindex = libc::if_nametoindex(cname.as_ptr());
                assert!(ifindex > 0, "no interface {iface}");
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                addr.sll_family = libc::AF_PACKET as u16;
                addr.sll_ifindex = ifindex as i32;
                addr.sll_halen = 6;
                for frame in &frames {
                    let sent = libc::sendto(
                        fd,
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&addr as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    );
                    assert_eq!(
                        sent,
                        frame.len() as isize,
                        "sendto: {}",
                        std::io::Error::last_os_error()
                    );
                }
                libc::close(fd);
            }
        });
    }

    /// Programs attached to egress of `iface` by TCX, as the kernel reports them.
    pub fn tcx_egress_programs(&self, iface: &str) -> usize {
        let iface = iface.to_owned();
        self.run_inside(move || {
            aya::programs::SchedClassifier::query_tcx(&iface, aya::programs::TcAttachType::Egress)
                .map(|(_, programs)| programs.len())
                .unwrap_or_else(|e| panic!("query TCX egress of {iface}: {e}"))
        })
    }

    /// Whether anything arpwatch attaches is on `iface`: XDP, a TCX egress program, or an egress
    /// netlink filter.
    pub fn has_arpwatch_programs(&self, iface: &str) -> bool {
        let filters = self.exec(&["tc", "filter", "show", "dev", iface, "egress"]);
        self.has_xdp(iface) || self.tcx_egress_programs(iface) > 0 || !filters.stdout.is_empty()
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
