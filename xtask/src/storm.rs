//! The storm benchmark: a flood generator of our own pushes ARP frames through a veth pair into a
//! namespace where an observer watches (arpwatch, Debian's libpcap arpwatch, or nobody for the
//! baseline), and what each observer costs and loses is measured from the outside.
//!
//! Addresses: frames carry only 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24, and exist only
//! inside the two namespaces created here (the testkit's [`Netns`], shared with the test labs),
//! which are deleted on drop (also on failure). Frames are the testkit's [`ArpFrame`]s.

use anyhow::{bail, Context, Result};
use arpwatch_core::testkit::frames::ArpFrame;
use arpwatch_core::testkit::netns::Netns;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::BufRead;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long each flood lasts.
pub const FLOOD: Duration = Duration::from_secs(8);
/// Frames per `sendmmsg` call.
const BATCH: usize = 256;
/// Every this many batches, the planted multi-responder replies go out.
const PLANT_EVERY: u64 = 64;
/// IPs answered by two MACs, hidden in the flood.
pub const PLANTED: [[u8; 4]; 4] =
    [[203, 0, 113, 10], [203, 0, 113, 20], [203, 0, 113, 30], [203, 0, 113, 40]];
const REQUESTER_IP: [u8; 4] = [192, 0, 2, 1];
const REQUESTER_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
const OBSERVER_IFACE: &str = "watch0";
const SENDER_IFACE: &str = "flood0";

/// What the flood is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// A switching loop: the same cycle of 4096 frames (1400 distinct) over and over (what in-kernel de-duplication is for).
    Loop,
    /// Spoofed senders: every frame a new MAC and a random address (nothing to de-duplicate).
    Random,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Loop => "loop",
            Profile::Random => "random",
        }
    }
}

/// Who watches the flood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Observer {
    None,
    Arpwatch,
    #[value(name = "debian-arpwatch")]
    Debian,
}

impl Observer {
    pub fn name(self) -> &'static str {
        match self {
            Observer::None => "none",
            Observer::Arpwatch => "arpwatch",
            Observer::Debian => "debian-arpwatch",
        }
    }
}

/// The two namespaces and the veth pair between them.
pub struct Lab {
    sender: Netns,
    observer: Netns,
}

impl Lab {
    pub fn new() -> Result<Lab> {
        let sender = Netns::try_new("bench-src")?;
        let observer = Netns::try_new("bench-obs")?;
        sender.try_ip(&[
            "link",
            "add",
            SENDER_IFACE,
            "type",
            "veth",
            "peer",
            "name",
            OBSERVER_IFACE,
            "netns",
            &observer.name,
        ])?;
        sender.try_ip(&["link", "set", SENDER_IFACE, "up"])?;
        // Debian's arpwatch refuses an interface without an IPv4 address. `arp off` keeps the
        // observer's own ARP stack from answering or learning, so only the observers work.
        observer.try_ip(&["addr", "add", "198.51.100.2/24", "dev", OBSERVER_IFACE])?;
        observer.try_ip(&["link", "set", OBSERVER_IFACE, "arp", "off", "up"])?;
        Ok(Lab { sender, observer })
    }
}

/// Frames of one flood profile, written into a batch buffer.
struct FrameSource {
    profile: Profile,
    rng: u64,
    cursor: u64,
    loop_frames: Vec<[u8; 60]>,
}

/// `frame` as the 60 bytes that go on the wire (zero-padded).
fn wire(frame: &ArpFrame) -> [u8; 60] {
    let mut bytes = [0u8; 60];
    frame.write_to(&mut bytes);
    bytes
}

/// Address `n` (0..768) of the three documentation ranges.
fn doc_ip(n: u32) -> [u8; 4] {
    let host = (n % 254 + 1) as u8;
    match (n / 254) % 3 {
        0 => [192, 0, 2, host],
        1 => [198, 51, 100, host],
        _ => [203, 0, 113, host],
    }
}

fn host_mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0xbb, b[0], b[1], b[2], b[3]]
}

fn planted_macs(i: usize) -> [[u8; 6]; 2] {
    [[0x02, 0xcc, 0, 0, i as u8, 0x0a], [0x02, 0xcc, 0, 0, i as u8, 0x0b]]
}

impl FrameSource {
    fn new(profile: Profile) -> FrameSource {
        // A cycle of 4096 frames, 1400 of them distinct (700 hosts asking each other and answering),
        // as a loop replays them.
        let loop_frames = (0..4096u32)
            .map(|i| {
                let a = i % 700;
                let b = (i * 7 + 13) % 700;
                if i % 2 == 0 {
                    wire(&ArpFrame::request(host_mac(a), doc_ip(a), doc_ip(b)))
                } else {
                    wire(&ArpFrame::reply(host_mac(b), doc_ip(b), host_mac(a), doc_ip(a)))
                }
            })
            .collect();
        FrameSource { profile, rng: 0x5eed_2026, cursor: 0, loop_frames }
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Fills `batch` with the next frames; batch number `n` decides whether the planted
    /// multi-responders go out in it. Returns how many planted frames it holds.
    fn fill(&mut self, batch: &mut [[u8; 60]], n: u64) -> usize {
        for frame in batch.iter_mut() {
            *frame = match self.profile {
                Profile::Loop => {
                    let f =
                        self.loop_frames[(self.cursor % self.loop_frames.len() as u64) as usize];
                    self.cursor += 1;
                    f
                }
                Profile::Random => {
                    let bits = self.next_random();
                    let sha = host_mac(bits as u32 | 0x8000_0000);
                    let spa = doc_ip((bits >> 32) as u32 % 762);
                    let tpa = doc_ip((bits >> 44) as u32 % 762);
                    // Replies to nobody: a zero target MAC, also as the Ethernet destination.
                    if bits & (1 << 31) == 0 {
                        wire(&ArpFrame::request(sha, spa, tpa))
                    } else {
                        wire(&ArpFrame::reply(sha, spa, [0; 6], tpa))
                    }
                }
            };
        }
        if !n.is_multiple_of(PLANT_EVERY) {
            return 0;
        }
        // Each planted IP is answered to the same requester by two MACs, back to back.
        let mut planted = 0;
        for (i, ip) in PLANTED.iter().enumerate() {
            for mac in planted_macs(i) {
                batch[planted] = wire(&ArpFrame::reply(mac, *ip, REQUESTER_MAC, REQUESTER_IP));
                planted += 1;
            }
        }
        planted
    }
}

/// An AF_PACKET socket bound to the sender interface, opened inside the sender namespace.
fn packet_socket(ns: &Netns, iface: &str) -> Result<OwnedFd> {
    let iface = iface.to_owned();
    // The socket keeps the namespace it was created in after the thread ends.
    ns.run_inside(move || -> Result<OwnedFd> {
        // SAFETY: plain syscalls on a descriptor owned here and on valid buffers.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if fd < 0 {
                bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            // Straight to the driver: the flood should measure the observers, not the qdisc.
            let one: libc::c_int = 1;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
            let name = std::ffi::CString::new(iface.clone())?;
            let ifindex = libc::if_nametoindex(name.as_ptr());
            if ifindex == 0 {
                bail!("no interface {iface} in the sender namespace");
            }
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = ifindex as i32;
            addr.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
            let bound = libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            if bound != 0 {
                bail!("bind AF_PACKET to {iface}: {}", std::io::Error::last_os_error());
            }
            Ok(fd)
        }
    })
}

/// What the flood generator did.
pub struct FloodReport {
    pub sent: u64,
    pub planted_rounds: u64,
    pub elapsed: Duration,
}

/// Sends frames of `profile` as fast as the machine allows for `duration`.
fn flood(socket: &OwnedFd, profile: Profile, duration: Duration) -> Result<FloodReport> {
    let mut source = FrameSource::new(profile);
    let mut batch = vec![[0u8; 60]; BATCH];
    let mut iovecs: Vec<libc::iovec> = batch
        .iter_mut()
        .map(|f| libc::iovec { iov_base: f.as_mut_ptr().cast(), iov_len: f.len() })
        .collect();
    // SAFETY: an all-zero mmsghdr is valid; only the iovec fields are set below.
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iov| {
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut planted_rounds = 0u64;
    let mut n = 0u64;
    while start.elapsed() < duration {
        // The frames are rewritten in place: the iovecs keep pointing at the same buffers.
        // SAFETY: `batch` is not moved while `iovecs` point into it.
        let batch_frames =
            unsafe { std::slice::from_raw_parts_mut(iovecs[0].iov_base.cast::<[u8; 60]>(), BATCH) };
        if source.fill(batch_frames, n) > 0 {
            planted_rounds += 1;
        }
        n += 1;
        let mut offset = 0;
        // A partial send leaves the rest of the batch for the next call; bounded by the batch.
        while offset < BATCH {
            // SAFETY: `headers[offset..]` are valid mmsghdrs over live buffers.
            let got = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    headers[offset..].as_mut_ptr(),
                    (BATCH - offset) as u32,
                    0,
                )
            };
            if got < 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::ENOBUFS)
                    || err.raw_os_error() == Some(libc::EAGAIN)
                {
                    continue;
                }
                bail!("sendmmsg: {err}");
            }
            offset += got as usize;
            sent += got as u64;
        }
    }
    Ok(FloodReport { sent, planted_rounds, elapsed: start.elapsed() })
}

/// user+system CPU time of a process from /proc/PID/stat, in seconds.
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 of `rest`.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// VmHWM of a process, in KiB: the peak RSS of the program it runs. (The peak rusage reports
/// is not: exec keeps the high-water mark of the image it replaced, the copy of the forking
/// parent, and this process holds hundreds of MiB after reading a flood's JSON lines.)
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.split_whitespace().next()?.parse().ok()
}

/// The last VmHWM of a process that ends by itself, read every 50 ms until it has exited (its
/// memory is gone once it is a zombie), for at most `limit`.
fn peak_rss_until_exit(pid: u32, limit: Duration) -> Option<u64> {
    let deadline = Instant::now() + limit;
    let mut peak = None;
    while Instant::now() < deadline {
        match peak_rss_kib(pid) {
            Some(kib) => peak = Some(kib),
            None => break,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    peak
}

/// Busy (non-idle) CPU seconds of the whole machine, from /proc/stat.
fn system_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<f64> = cpu.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let busy: f64 =
        v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, x)| x).sum();
    busy / clock_ticks()
}

/// Waits for `pid` and returns its exit status and its whole-life user+system CPU seconds and
/// peak RSS (KiB) from the kernel's rusage.
pub fn wait_with_rusage(pid: u32) -> Result<(i32, f64, u64)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid as an out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child with valid out-pointers.
    let got = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    if got != pid as i32 {
        bail!("wait4 {pid}: {}", std::io::Error::last_os_error());
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((status, secs(usage.ru_utime) + secs(usage.ru_stime), usage.ru_maxrss as u64))
}

/// Polls `ready` every 20 ms until it holds or `timeout` passes.
fn wait_until(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !ready() {
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Kills a child still running when the measurement fails half-way.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One storm run: a profile against one observer.
pub fn measure(
    lab: &Lab,
    profile: Profile,
    observer: Observer,
    arpwatch_bin: &Path,
) -> Result<Value> {
    let socket = packet_socket(&lab.sender, SENDER_IFACE)?;
    // In memory where there is a tmpfs: a spoofing flood's output is hundreds of MiB a run, and
    // the disk has no part in what is measured. (A pipe read by this process as it comes took
    // the CPU the observer needs on two CPUs: the observer dropped lines.)
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let tmp = base.join(format!("arpwatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut guard = ChildGuard(None);
    let mut result = json!({ "profile": profile.name(), "observer": observer.name() });

    // Start the observer and wait until it is capturing.
    let stderr_path = tmp.join(format!("{}-{}.stderr", profile.name(), observer.name()));
    let stdout_path = tmp.join(format!("{}-{}.stdout", profile.name(), observer.name()));
    let pid = match observer {
        Observer::None => None,
        Observer::Arpwatch => {
            // Ends by itself after the flood plus time to drain.
            let duration = (FLOOD + Duration::from_secs(3)).as_secs().to_string();
            let child = lab
                .observer
                .command(arpwatch_bin.to_str().context("arpwatch path is not UTF-8")?)
                .args([
                    "watch",
                    "--iface",
                    OBSERVER_IFACE,
                    "--format",
                    "json",
                    "--duration",
                    &duration,
                ])
                .stdout(std::fs::File::create(&stdout_path)?)
                .stderr(std::fs::File::create(&stderr_path)?)
                .spawn()
                .context("start arpwatch")?;
            let pid = child.id();
            guard.0 = Some(child);
            wait_until(Duration::from_secs(20), "arpwatch to attach", || {
                std::fs::read_to_string(&stderr_path)
                    .is_ok_and(|s| s.contains(&format!("watching {OBSERVER_IFACE} ")))
            })?;
            Some(pid)
        }
        Observer::Debian => {
            let dat = tmp.join("arp.dat");
            std::fs::write(&dat, "")?;
            // -d: foreground, reports on stderr instead of mail; -N: no bogon reports;
            // -p: no promiscuous mode (the frames are addressed to the interface anyway).
            let child = lab
                .observer
                .command("arpwatch")
                .args(["-d", "-N", "-p", "-i", OBSERVER_IFACE, "-f"])
                .arg(&dat)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout_path)?)
                .stderr(std::fs::File::create(&stderr_path)?)
                .spawn()
                .context("start Debian's arpwatch")?;
            let pid = child.id();
            guard.0 = Some(child);
            wait_until(Duration::from_secs(20), "Debian's arpwatch to open its capture", || {
                packet_socket_of(pid).is_some()
            })?;
            Some(pid)
        }
    };

    let cpu_before = pid.and_then(process_cpu_seconds).unwrap_or(0.0);
    let busy_before = system_busy_seconds();
    let flooded = flood(&socket, profile, FLOOD)?;
    let busy_flood = system_busy_seconds() - busy_before;
    let sent = flooded.sent as f64;
    result["frames_sent"] = json!(flooded.sent);
    result["flood_seconds"] = json!(flooded.elapsed.as_secs_f64());
    result["frames_per_second"] = json!(sent / flooded.elapsed.as_secs_f64());
    result["planted_rounds"] = json!(flooded.planted_rounds);
    result["system_busy_cpu_s_per_mframe"] = json!(busy_flood / (sent / 1e6));
    result["veth_drops"] = json!(veth_drops(lab)?);

    match (observer, pid) {
        (Observer::Arpwatch, Some(pid)) => {
            let hwm = peak_rss_until_exit(pid, Duration::from_secs(30));
            // arpwatch ends by itself (--duration). wait4 reaps it, so the guard lets it go
            // (dropping a `Child` neither waits nor kills).
            guard.0 = None;
            let (status, cpu_total, maxrss) = wait_with_rusage(pid)?;
            if status != 0 {
                bail!(
                    "arpwatch exited with status {status}: {}",
                    std::fs::read_to_string(&stderr_path)?
                );
            }
            let cpu = cpu_total - cpu_before;
            result["cpu_s"] = json!(cpu);
            result["cpu_s_per_mframe"] = json!(cpu / (sent / 1e6));
            result["peak_rss_kib"] = json!(hwm.unwrap_or(maxrss));
            let stderr = std::fs::read_to_string(&stderr_path)?;
            result["kernel"] = kernel_counters(&stderr);
            // Frames the program handled (emitted or suppressed), not those lost to a full ring.
            let handled = result["kernel"]["arp"].as_u64().unwrap_or(0)
                - result["kernel"]["ring_full_drops"].as_u64().unwrap_or(0);
            result["frames_handled"] = json!(handled);
            result["cpu_s_per_mframe_handled"] = json!(cpu / (handled.max(1) as f64 / 1e6));
            result["engine"] = after_label(&stderr, "engine:");
            result["output"] = after_label(&stderr, "output:");
            let stdout = std::fs::File::open(&stdout_path)?;
            let reported = multi_responder_ips(std::io::BufReader::new(stdout))?;
            let planted: Vec<String> = PLANTED
                .iter()
                .map(|ip| format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]))
                .collect();
            let found = planted.iter().filter(|ip| reported.contains(*ip)).count();
            result["planted_reported"] = json!(format!("{found}/{}", planted.len()));
            result["all_planted_reported"] = json!(found == planted.len());
        }
        (Observer::Debian, Some(pid)) => {
            // Let it work off its backlog: done when its CPU time stops moving (bounded).
            let mut last = process_cpu_seconds(pid).unwrap_or(0.0);
            let settle_deadline = Instant::now() + Duration::from_secs(10);
            loop {
                std::thread::sleep(Duration::from_millis(300));
                let now = process_cpu_seconds(pid).unwrap_or(0.0);
                if now - last < 0.01 || Instant::now() > settle_deadline {
                    break;
                }
                last = now;
            }
            let stats = pcap_stats(pid)?;
            let hwm = peak_rss_kib(pid);
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            guard.0 = None;
            let (_, cpu_total, maxrss) = wait_with_rusage(pid)?;
            let cpu = cpu_total - cpu_before;
            result["cpu_s"] = json!(cpu);
            result["cpu_s_per_mframe"] = json!(cpu / (sent / 1e6));
            result["peak_rss_kib"] = json!(hwm.unwrap_or(maxrss));
            result["pcap_received"] = json!(stats.0);
            result["pcap_dropped"] = json!(stats.1);
            let handled = stats.0.saturating_sub(stats.1);
            result["frames_handled"] = json!(handled);
            result["cpu_s_per_mframe_handled"] = json!(cpu / (handled.max(1) as f64 / 1e6));
        }
        _ => {}
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(result)
}

/// Receive and transmit drops on the veth pair (frames that never reached the observer side).
fn veth_drops(lab: &Lab) -> Result<u64> {
    let mut total = 0;
    for (ns, iface) in [(&lab.sender, SENDER_IFACE), (&lab.observer, OBSERVER_IFACE)] {
        let out = ns.try_ip(&["-s", "-j", "link", "show", "dev", iface])?;
        let v: Value = serde_json::from_slice(&out.stdout)?;
        let stats = &v[0]["stats64"];
        total += stats["rx"]["dropped"].as_u64().unwrap_or(0)
            + stats["tx"]["dropped"].as_u64().unwrap_or(0);
    }
    Ok(total)
}

/// `name=value` pairs of arpwatch's `kernel counters:` line, ingress part.
fn kernel_counters(stderr: &str) -> Value {
    let line = stderr.lines().find(|l| l.contains("kernel counters:")).unwrap_or("");
    let ingress = line.split("ingress:").nth(1).and_then(|s| s.split(';').next()).unwrap_or("");
    pairs(ingress)
}

/// The `key=value` pairs after `label` on the first stderr line that has it.
fn after_label(stderr: &str, label: &str) -> Value {
    let line = stderr.lines().find(|l| l.contains(label)).unwrap_or("");
    pairs(line.split(label).nth(1).unwrap_or(""))
}

fn pairs(text: &str) -> Value {
    let map: serde_json::Map<String, Value> = text
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), json!(v.parse::<u64>().ok()?))))
        .collect();
    Value::Object(map)
}

fn multi_responder_ips(stdout: impl BufRead) -> Result<BTreeSet<String>> {
    // Line by line: a spoofing flood's output is hundreds of MiB.
    let mut ips = BTreeSet::new();
    for line in stdout.lines() {
        let line = line?;
        if !line.contains("\"multi_responder\"") {
            continue;
        }
        if let Ok(event) = serde_json::from_str::<Value>(&line) {
            if event["event"] == "multi_responder" {
                ips.extend(event["ip"].as_str().map(str::to_owned));
            }
        }
    }
    Ok(ips)
}

/// The fd number of `pid`'s AF_PACKET socket, found by matching its socket inodes with the
/// packet sockets of its namespace.
fn packet_socket_of(pid: u32) -> Option<i32> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/packet")).ok()?;
    let inodes: BTreeSet<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let target = std::fs::read_link(entry.path()).ok()?;
        let target = target.to_string_lossy();
        if let Some(inode) = target.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
            if inodes.contains(inode) {
                return entry.file_name().to_str()?.parse().ok();
            }
        }
    }
    None
}

/// What `pcap_stats` would report for Debian's arpwatch, which never asks: the kernel's
/// PACKET_STATISTICS of its capture socket (received, dropped), read through a duplicate of the
/// socket taken with pidfd_getfd. Reading resets the kernel's counters, which that process never
/// reads.
fn pcap_stats(pid: u32) -> Result<(u64, u64)> {
    let target_fd = packet_socket_of(pid).context("Debian's arpwatch has no packet socket")?;
    // SAFETY: plain syscalls; the returned descriptors are owned and closed here.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0);
        if pidfd < 0 {
            bail!("pidfd_open: {}", std::io::Error::last_os_error());
        }
        let pidfd = OwnedFd::from_raw_fd(pidfd as i32);
        let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target_fd, 0);
        if fd < 0 {
            bail!("pidfd_getfd: {}", std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd as i32);
        // struct tpacket_stats_v3: tp_packets, tp_drops, tp_freeze_q_cnt (u32 each).
        let mut stats = [0u32; 3];
        let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
        if libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            stats.as_mut_ptr().cast(),
            &mut len,
        ) != 0
        {
            bail!("PACKET_STATISTICS: {}", std::io::Error::last_os_error());
        }
        // tp_packets counts every frame handed to the socket, dropped ones included.
        Ok((stats[0] as u64, stats[1] as u64))
    }
}

/// Installs Debian's arpwatch when it is missing.
pub fn ensure_debian_arpwatch() -> Result<PathBuf> {
    let path = PathBuf::from("/usr/sbin/arpwatch");
    if path.exists() {
        return Ok(path);
    }
    eprintln!("xtask: installing Debian's arpwatch (the libpcap anchor of the storm benchmark)");
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "arpwatch"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("could not start apt-get")?;
    if !status.success() || !path.exists() {
        bail!("apt-get install arpwatch failed ({status})");
    }
    Ok(path)
}

/// Every storm run: each profile against no observer, arpwatch and Debian's arpwatch, or only
/// those `only` selects.
pub fn run_all(arpwatch_bin: &Path, only: &Selection) -> Result<Vec<Value>> {
    if only.wants_observer(Observer::Debian) {
        ensure_debian_arpwatch()?;
    }
    let mut results = Vec::new();
    for profile in [Profile::Loop, Profile::Random] {
        for observer in [Observer::None, Observer::Arpwatch, Observer::Debian] {
            if !only.wants(profile, observer) {
                continue;
            }
            let rounds = if observer == Observer::None { 1 } else { OBSERVER_ROUNDS };
            let mut runs = Vec::new();
            for round in 1..=rounds {
                // A fresh lab per run, so no observer inherits another's veth statistics or state.
                let lab = Lab::new()?;
                eprintln!(
                    "xtask: storm {} / {} ({round}/{rounds})",
                    profile.name(),
                    observer.name()
                );
                runs.push(measure(&lab, profile, observer, arpwatch_bin).with_context(|| {
                    format!("storm {} with {}", profile.name(), observer.name())
                })?);
            }
            results.push(median_run(runs));
        }
    }
    Ok(results)
}

/// Which storms to run: an empty list selects every profile (or observer).
#[derive(Default)]
pub struct Selection {
    pub profiles: Vec<Profile>,
    pub observers: Vec<Observer>,
}

impl Selection {
    fn wants(&self, profile: Profile, observer: Observer) -> bool {
        (self.profiles.is_empty() || self.profiles.contains(&profile))
            && self.wants_observer(observer)
    }

    fn wants_observer(&self, observer: Observer) -> bool {
        self.observers.is_empty() || self.observers.contains(&observer)
    }
}

/// Floods per observer: its row is the median one. One flood's CPU per frame moves by ±15 %
/// on this shared 2-vCPU machine from one run to the next.
pub const OBSERVER_ROUNDS: usize = 3;

/// The run with the median CPU per frame handled (the only one for the baseline), with every
/// run's figure in `rounds_cpu_s_per_mframe_handled`; where any run missed a planted
/// multi-responder, its count of reported ones stands for all.
fn median_run(mut runs: Vec<Value>) -> Value {
    let cpu = |run: &Value| run["cpu_s_per_mframe_handled"].as_f64().unwrap_or(0.0);
    let rounds: Vec<f64> = runs.iter().map(cpu).collect();
    let missed = runs.iter().find(|run| run["all_planted_reported"] == false).cloned();
    runs.sort_by(|a, b| cpu(a).total_cmp(&cpu(b)));
    let mut median = runs.swap_remove(runs.len() / 2);
    median["rounds_cpu_s_per_mframe_handled"] = json!(rounds);
    if let Some(missed) = missed {
        median["planted_reported"] = missed["planted_reported"].clone();
        median["all_planted_reported"] = json!(false);
    }
    median
}
