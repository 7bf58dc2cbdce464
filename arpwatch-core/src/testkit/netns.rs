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
