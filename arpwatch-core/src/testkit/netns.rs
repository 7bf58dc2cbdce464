//! Network namespaces for the labs of the privileged tests and for the storm benchmark of `cargo
//! xtask bench`: a [`Netns`] is created with `ip netns add` and deleted when it drops, which also
//! happens when a test panics or a benchmark fails half-way. Needs root and `ip` (iproute2).
//!
//! Addresses: callers use only 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24, only inside
//! these namespaces.
//!
//! This is the one part of the testkit that does I/O; it exists only behind the `testkit` feature
//! (tests, benches, xtask) and never in the arpwatch binary.

use std::io;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Runs a command to completion; an error names the command and carries its stderr.
pub fn try_sh(args: &[&str]) -> io::Result<Output> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{args:?}: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        )));
    }
    Ok(out)
}

/// Runs a command to completion and panics with its output if it fails.
pub fn sh(args: &[&str]) -> Output {
    try_sh(args).unwrap_or_else(|e| panic!("{e}"))
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A namespace named `aw-<tag>-<pid>-<n>` (unique to this process), loopback up.
    pub fn try_new(tag: &str) -> io::Result<Netns> {
        let name =
            format!("aw-{tag}-{}-{}", std::process::id(), NEXT_ID.fetch_add(1, Ordering::Relaxed));
        try_sh(&["ip", "netns", "add", &name])?;
        let ns = Netns { name };
        ns.try_ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// [`try_new`](Self::try_new), panicking on failure.
    pub fn new(tag: &str) -> Netns {
        Netns::try_new(tag).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip -n NS ARGS...`
    pub fn try_ip(&self, args: &[&str]) -> io::Result<Output> {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        try_sh(&full)
    }

    /// `ip -n NS ARGS...`, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> Output {
        self.try_ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A command to run inside the namespace.
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

    /// `ip -j -d link show dev IFACE`, the one object.
    pub fn link_json(&self, iface: &str) -> serde_json::Value {
        let out = self.ip(&["-j", "-d", "link", "show", "dev", iface]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
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

    /// Runs `f` on a thread that has entered this namespace (setns changes only the calling
    /// thread's namespace, so a short-lived thread does it), and returns its result. A socket
    /// opened there stays in this namespace after the thread ends.
    ///
    /// # Panics
    /// When the namespace cannot be entered, or `f` panics.
    pub fn run_inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on a valid namespace descriptor, for this thread only.
            let entered = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "setns {path}: {}", io::Error::last_os_error());
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
                assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
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
                        io::Error::last_os_error()
                    );
                }
                libc::close(fd);
            }
        });
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes its interfaces, and with them their veth peers.
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A namespace's neighbour entry for one IPv6 address (`ip -6 neigh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neigh6 {
    /// The cached link-layer address; `None` while unresolved (INCOMPLETE, FAILED).
    pub lladdr: Option<String>,
    /// The NUD states, e.g. `["REACHABLE"]`, `["STALE"]`.
    pub state: Vec<String>,
}

/// The Neighbor Discovery messages one interface sent and received, from the kernel's own
/// per-interface ICMPv6 statistics (`/proc/net/dev_snmp6/IFACE`): what a lab checks to tell "the
/// kernel did not do it" from "arpwatch did not see it".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NdCounters {
    pub ns_out: u64,
    pub na_out: u64,
    pub ns_in: u64,
    pub na_in: u64,
}

impl std::ops::Sub for NdCounters {
    type Output = NdCounters;
    fn sub(self, before: NdCounters) -> NdCounters {
        NdCounters {
            ns_out: self.ns_out - before.ns_out,
            na_out: self.na_out - before.na_out,
            ns_in: self.ns_in - before.ns_in,
            na_in: self.na_in - before.na_in,
        }
    }
}

/// IPv6 and the kernel's Neighbor Discovery, for the ND labs. Addresses: callers use only
/// 2001:db8::/32 (and the fe80::/64 link-local addresses the kernel makes), only inside these
/// namespaces. Every wait is bounded: it polls the kernel's state and panics with the last state
/// seen when its time runs out.
impl Netns {
    /// Adds `cidr` to `iface` with `nodad`: usable at once, no DAD probe on the wire (how keepalived
    /// and kube-vip add an IPv6 VIP).
    pub fn add_addr_nodad(&self, iface: &str, cidr: &str) {
        self.ip(&["addr", "add", cidr, "dev", iface, "nodad"]);
    }

    pub fn del_addr(&self, iface: &str, cidr: &str) {
        self.ip(&["addr", "del", cidr, "dev", iface]);
    }

    /// The IPv6 addresses (`addr/prefix`) of the namespace whose Duplicate Address Detection has
    /// not finished (`tentative`), and those where it failed (`dadfailed`).
    pub fn tentative6(&self) -> (Vec<String>, Vec<String>) {
        let list = |filter: &str| {
            let out = self.ip(&["-j", "-6", "addr", "show", filter]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
            let mut addrs = Vec::new();
            for link in v.as_array().into_iter().flatten() {
                for a in link["addr_info"].as_array().into_iter().flatten() {
                    if let (Some(ip), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                        addrs.push(format!(
                            "{ip}/{len} on {}",
                            link["ifname"].as_str().unwrap_or("?")
                        ));
                    }
                }
            }
            addrs
        };
        (list("tentative"), list("dadfailed"))
    }

    /// Waits until no IPv6 address of the namespace is tentative (every DAD finished: link-local
    /// addresses after a link came up, addresses added without `nodad`). Panics after `timeout`,
    /// and at once when a DAD failed (the address is taken on the segment).
    pub fn wait_dad(&self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let (tentative, failed) = self.tentative6();
            assert!(
                failed.is_empty(),
                "{}: duplicate address detection failed for {failed:?}",
                self.name
            );
            if tentative.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: still tentative after {timeout:?}: {tentative:?}",
                self.name
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The neighbour entry for `ip` on `iface`, if the kernel has one.
    pub fn neigh6(&self, iface: &str, ip: &str) -> Option<Neigh6> {
        let out = self.ip(&["-j", "-6", "neigh", "show", ip, "dev", iface]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
        let entry = v.as_array()?.first()?.clone();
        Some(Neigh6 {
            lladdr: entry["lladdr"].as_str().map(str::to_owned),
            state: entry["state"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
        })
    }

    /// Polls the neighbour entry for `ip` on `iface` until `done` holds for it (or for its
    /// absence); panics with `what` and the last entry after `timeout`.
    pub fn wait_neigh6(
        &self,
        iface: &str,
        ip: &str,
        what: &str,
        timeout: std::time::Duration,
        done: impl Fn(Option<&Neigh6>) -> bool,
    ) -> Option<Neigh6> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let entry = self.neigh6(iface, ip);
            if done(entry.as_ref()) {
                return entry;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {what} not seen within {timeout:?}; neighbour entry for {ip}: {entry:?}",
                self.name
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The Neighbor Discovery counters of `iface`.
    pub fn nd_counters(&self, iface: &str) -> NdCounters {
        let out = self.exec(&["cat", &format!("/proc/net/dev_snmp6/{iface}")]);
        let text = String::from_utf8(out.stdout).expect("snmp6 text");
        let get = |name: &str| {
            text.lines()
                .find_map(|l| {
                    let mut words = l.split_whitespace();
                    (words.next() == Some(name)).then(|| words.next()?.parse().ok())?
                })
                .unwrap_or_else(|| panic!("no {name} in /proc/net/dev_snmp6/{iface}:\n{text}"))
        };
        NdCounters {
            ns_out: get("Icmp6OutNeighborSolicits"),
            na_out: get("Icmp6OutNeighborAdvertisements"),
            ns_in: get("Icmp6InNeighborSolicits"),
            na_in: get("Icmp6InNeighborAdvertisements"),
        }
    }

    /// Polls the ND counters of `iface` until `done(now - before)` holds; panics with `what` and
    /// the last difference after `timeout`. Returns that difference.
    pub fn wait_nd(
        &self,
        iface: &str,
        before: NdCounters,
        what: &str,
        timeout: std::time::Duration,
        done: impl Fn(&NdCounters) -> bool,
    ) -> NdCounters {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let diff = self.nd_counters(iface) - before;
            if done(&diff) {
                return diff;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {what} not seen within {timeout:?}; {iface} since: {diff:?}",
                self.name
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Netns {
    /// The link-local (fe80::/64) address the kernel made for `iface`: the source of the
    /// solicitations it sends without a packet waiting (reachability confirmation, routers).
    pub fn link_local6(&self, iface: &str) -> String {
        let out = self.ip(&["-j", "-6", "addr", "show", "dev", iface, "scope", "link"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
        // iproute2 lists the addresses the filter left out as empty objects.
        v[0]["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["scope"] == "link")
            .and_then(|a| a["local"].as_str())
            .unwrap_or_else(|| panic!("{}: no link-local address on {iface}: {v}", self.name))
            .to_owned()
    }
}
