//! `cargo xtask demo`: the incidents of arpwatch's story, one after another, in a namespace lab
//! with the kernel's own ARP and Neighbor Discovery, each watched by the release binary in text
//! form. Per scenario it prints one line of explanation, then what arpwatch reported about the
//! scenario's IP, then whether the expected event came (and no event that must not). Exit status 1
//! when one did not.
//!
//! The labs are those of `tests/labs_incidents.rs`, `tests/labs_node_view.rs` and
//! `tests/labs_ndp.rs`, rebuilt here on the testkit's [`Netns`] (the tests' `support` module is
//! not a library). Addresses: only 192.0.2.0/24 and 2001:db8::/32, only inside the namespaces the
//! demo creates. Every wait is bounded. Namespaces, the temporary directory and arpwatch processes
//! are guards: they go on every way out (an error, a failed lab step, which panics, and SIGINT,
//! SIGTERM or SIGHUP, which set a flag every wait checks); a later demo removes the namespaces of
//! an earlier one that was killed outright.

use anyhow::{bail, Context, Result};
use arpwatch_core::testkit::frames::{ip_bytes, mac_bytes, ArpFrame, NdFrame};
use arpwatch_core::testkit::netns::{try_sh, Netns};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The IPv4 VIP of every IPv4 scenario.
const VIP: &str = "192.0.2.100";
/// The IPv6 VIP of every IPv6 scenario.
const VIP6: &str = "2001:db8::100";
const VIP6_128: &str = "2001:db8::100/128";
/// Every namespace of the demo has a tag starting with this (`aw-demo…-PID-N`).
const TAG: &str = "demo";
/// How long arpwatch may take to attach to its interfaces.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the kernel may take for an exchange it starts at once.
const EXCHANGE: Duration = Duration::from_secs(2);
/// How long the kernel may take to finish DAD of a lab's IPv6 addresses.
const DAD_TIMEOUT: Duration = Duration::from_secs(10);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The first panic message of the running scenario (a failed lab step), printed in one line.
static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

/// What the demo returns when SIGINT, SIGTERM or SIGHUP arrived.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

fn interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// Sleeps `d`, waking early (with an error) when interrupted.
fn pause(d: Duration) -> Result<()> {
    let deadline = Instant::now() + d;
    loop {
        interrupted()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic, which is
        // async-signal-safe.
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut())
        };
        if installed != 0 {
            bail!("cannot install a handler for signal {sig}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One incident: how to reproduce it and what arpwatch must say about `ip`.
struct Scenario {
    name: &'static str,
    /// One line: what the lab does and why arpwatch should object (or not).
    explain: &'static str,
    /// Where arpwatch runs, for the heading of its output.
    watcher: &'static str,
    ip: &'static str,
    /// Events about `ip` that must appear.
    expect: &'static [&'static str],
    /// Events about `ip` that must not.
    forbid: &'static [&'static str],
    run: fn(&Demo) -> Result<Watched>,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "ipvs-without-strict-arp",
        explain: "kube-proxy in IPVS mode without strictARP: three nodes hold the VIP on a down \
                  kube-ipvs0 with arp_ignore=0, so every node's kernel answers the client's one \
                  ARP request.",
        watcher: "the client (eth0)",
        ip: VIP,
        expect: &["multi_responder"],
        forbid: &[],
        run: ipvs_without_strict_arp,
    },
    Scenario {
        name: "two-nics",
        explain: "A node with two NICs on one segment holds the VIP IPVS-style and answers the \
                  client's request on both, with two MACs (\"wandering IPs\").",
        watcher: "the node itself (eth0, eth1: its own answers, on egress)",
        ip: VIP,
        expect: &["unexpected_interface"],
        forbid: &[],
        run: two_nics,
    },
    Scenario {
        name: "clean-failover",
        explain: "A speaker fails over: node A drops the VIP, node B takes it and announces it \
                  with gratuitous ARP. One owner change with its gap, no multi-responder.",
        watcher: "the client (eth0)",
        ip: VIP,
        expect: &["owner_change"],
        forbid: &["multi_responder"],
        run: clean_failover,
    },
    Scenario {
        name: "flapping",
        explain: "The VIP moves A -> B -> A -> B, 1.2 s apart, each move announced: flapping \
                  (concurrency window 1 s in a temporary config, so no moment looks like two \
                  holders).",
        watcher: "the client (eth0)",
        ip: VIP,
        expect: &["owner_change", "flapping"],
        forbid: &[],
        run: flapping,
    },
    Scenario {
        name: "dead-speaker",
        explain: "Nobody holds the pool's VIP any more and the client keeps asking: unanswered \
                  (arpwatch on the switch's ports, as on a mirror port, with a pool config).",
        watcher: "the switch (every bridge port: a mirror view)",
        ip: VIP,
        expect: &["unanswered"],
        forbid: &[],
        run: dead_speaker,
    },
    Scenario {
        name: "foreign-device",
        explain: "A device that is no node of the pool (its MAC is not among the pool's allowed \
                  MACs in a temporary config) answers for the VIP: unknown_responder.",
        watcher: "the client (eth0)",
        ip: VIP,
        expect: &["unknown_responder"],
        forbid: &[],
        run: foreign_device,
    },
    Scenario {
        name: "ndp-two-responders",
        explain: "IPv6 split brain: two nodes hold 2001:db8::100 and both kernels answer the \
                  client's neighbor solicitation.",
        watcher: "the client (eth0)",
        ip: VIP6,
        expect: &["multi_responder"],
        forbid: &[],
        run: ndp_two_responders,
    },
    Scenario {
        name: "ndp-failover",
        explain: "IPv6 failover the way MetalLB and kube-vip do it: A drops the VIP, B adds it \
                  and announces it with an unsolicited neighbor advertisement (O=1).",
        watcher: "the client (eth0)",
        ip: VIP6,
        expect: &["owner_change"],
        forbid: &["multi_responder"],
        run: ndp_failover,
    },
];

/// The names of the scenarios, for `--scenario`.
pub fn scenario_names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|s| s.name).collect()
}

/// What the demo needs while it runs: the binary and a temporary directory for configs.
struct Demo {
    bin: PathBuf,
    tmp: TempDir,
}

/// A directory removed, with its contents, on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let path = std::env::temp_dir().join(format!("arpwatch-demo-{}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Demo {
    /// Writes a configuration file for one scenario (removed with the directory).
    fn config(&self, name: &str, toml: &str) -> Result<String> {
        let path = self.tmp.0.join(format!("{name}.toml"));
        std::fs::write(&path, toml).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path.to_str().context("the temporary directory is not UTF-8")?.to_owned())
    }
}

/// Runs the demo: `only` names the scenarios to run (all when empty); `check` prints only a
/// verdict per scenario (and everything about a failing one). The binary is built by the caller.
pub fn run(bin: &Path, only: &[String], check: bool) -> Result<()> {
    for name in only {
        if !SCENARIOS.iter().any(|s| s.name == name) {
            bail!(
                "there is no scenario {name:?}; the scenarios are {}",
                scenario_names().join(", ")
            );
        }
    }
    try_sh(&["ip", "netns", "list"])
        .context("the demo needs iproute2's `ip` with network namespace support")?;
    sweep_stale_namespaces();
    install_signal_handlers()?;
    let demo = Demo { bin: bin.to_owned(), tmp: TempDir::new()? };

    // A lab step that fails panics (the testkit's waits do, with what they saw): caught per
    // scenario, its message printed on one line.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let mut slot = PANIC_MESSAGE.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic".to_owned());
            *slot = Some(msg);
        }
    }));
    let chosen: Vec<&Scenario> =
        SCENARIOS.iter().filter(|s| only.is_empty() || only.iter().any(|o| o == s.name)).collect();
    let outcome = run_scenarios(&demo, &chosen, check);
    std::panic::set_hook(default_hook);
    drop(demo);
    match outcome {
        Err(e) if e.is::<Interrupted>() => {
            bail!("the demo was interrupted; its namespaces, files and arpwatch processes are gone")
        }
        other => other,
    }
}

fn run_scenarios(demo: &Demo, chosen: &[&Scenario], check: bool) -> Result<()> {
    let started = Instant::now();
    if !check {
        println!(
            "arpwatch demo: {} incidents in network namespaces with the kernel's own ARP and \
             Neighbor Discovery,\neach watched by {} --format text (192.0.2.0/24 and \
             2001:db8::/32, inside the demo's namespaces only).",
            chosen.len(),
            demo.bin.display()
        );
    }
    let mut failed = Vec::new();
    for (n, scenario) in chosen.iter().enumerate() {
        interrupted()?;
        let t0 = Instant::now();
        if !check {
            println!("\n[{}/{}] {}", n + 1, chosen.len(), scenario.name);
            println!("  {}", scenario.explain);
        }
        *PANIC_MESSAGE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let result = catch_unwind(AssertUnwindSafe(|| (scenario.run)(demo)));
        // Whatever went wrong, an interruption is what to report.
        interrupted()?;
        let verdict = match result {
            Ok(Ok(watched)) => judge(scenario, &watched, check),
            Ok(Err(e)) => Err(format!("the lab failed: {e:#}")),
            Err(_) => {
                let msg = PANIC_MESSAGE.lock().unwrap_or_else(|e| e.into_inner()).take();
                Err(format!("the lab failed: {}", msg.unwrap_or_default().replace('\n', " | ")))
            }
        };
        let secs = t0.elapsed().as_secs_f64();
        match verdict {
            Ok(found) => println!("{}ok: {found} ({secs:.1} s)", prefix(check, scenario)),
            Err(why) => {
                println!("{}FAILED: {why} ({secs:.1} s)", prefix(check, scenario));
                failed.push(scenario.name);
            }
        }
    }
    let total = started.elapsed().as_secs_f64();
    if failed.is_empty() {
        println!("\ndemo: all {} scenarios reported as expected in {total:.0} s", chosen.len());
        Ok(())
    } else {
        bail!(
            "{} of {} scenarios did not report as expected: {} ({total:.0} s)",
            failed.len(),
            chosen.len(),
            failed.join(", ")
        )
    }
}

/// A verdict's start: indented under the scenario's heading, or (`--check`, no heading) its name.
fn prefix(check: bool, scenario: &Scenario) -> String {
    if check {
        format!("{}: ", scenario.name)
    } else {
        "  ".to_owned()
    }
}

/// What one arpwatch printed: its stdout (text lines) and its stderr.
struct Watched {
    stdout: String,
    stderr: String,
}

/// A text line's severity, event name and IP: `TS SEVERITY EVENT IP key=value...`.
fn parse_line(line: &str) -> Option<(&str, &str, &str)> {
    let mut words = line.split_whitespace();
    let (_ts, severity, event, ip) = (words.next()?, words.next()?, words.next()?, words.next()?);
    Some((severity, event, ip))
}

/// The lines worth showing: warnings and worse, and who answered (`new_binding`); the other
/// informational lines (each gratuitous announcement, probes) are left out of the demo's view.
fn worth_showing(severity: &str, event: &str) -> bool {
    severity != "INFO" || event == "new_binding"
}

/// Prints the lines about the scenario's IP, then checks them: `Ok` with the events found, or
/// `Err` with what is missing or should not be there.
fn judge(scenario: &Scenario, watched: &Watched, check: bool) -> Result<String, String> {
    let about: Vec<(&str, &str)> = watched
        .stdout
        .lines()
        .filter_map(|l| parse_line(l).filter(|(_, _, ip)| *ip == scenario.ip).map(|p| (l, p.1)))
        .collect();
    let events: Vec<&str> = about.iter().map(|(_, e)| *e).collect();
    let relevant: Vec<&str> = about
        .iter()
        .filter(|(l, _)| parse_line(l).is_some_and(|(sev, e, _)| worth_showing(sev, e)))
        .map(|(l, _)| *l)
        .collect();
    let missing: Vec<&str> =
        scenario.expect.iter().copied().filter(|e| !events.contains(e)).collect();
    let unwanted: Vec<&str> =
        scenario.forbid.iter().copied().filter(|e| events.contains(e)).collect();
    let ok = missing.is_empty() && unwanted.is_empty();
    if !check || !ok {
        println!("  arpwatch on {} said about {}:", scenario.watcher, scenario.ip);
        if relevant.is_empty() {
            println!("    (nothing)");
        }
        for line in &relevant {
            println!("    {line}");
        }
    }
    if ok {
        return Ok(scenario.expect.join(", "));
    }
    if check {
        // Everything, to tell a lab problem from an arpwatch one.
        println!("  arpwatch's whole stdout:\n{}", indent(&watched.stdout));
        println!("  arpwatch's stderr:\n{}", indent(&watched.stderr));
    }
    let mut why = Vec::new();
    if !missing.is_empty() {
        why.push(format!("expected {} about {}, not reported", missing.join(", "), scenario.ip));
    }
    if !unwanted.is_empty() {
        why.push(format!(
            "{} about {} should not have been reported",
            unwanted.join(", "),
            scenario.ip
        ));
    }
    Err(why.join("; "))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// Removes namespaces an earlier demo left behind when it was killed outright (SIGKILL): those
/// named `aw-demo…-PID-N` whose process is gone.
fn sweep_stale_namespaces() {
    let Ok(out) = try_sh(&["ip", "netns", "list"]) else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let parts: Vec<&str> = name.split('-').collect();
        let [aw, tag, pid, _n] = parts[..] else { continue };
        if aw != "aw" || !tag.starts_with(TAG) || pid.parse::<u32>().is_err() {
            continue;
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = try_sh(&["ip", "netns", "del", name]);
        }
    }
}

/// A running arpwatch, in its own process group (so a Ctrl-C reaches the demo, which stops it in
/// order). Stopped on drop: SIGINT, then SIGKILL after 2 s.
struct Watcher {
    child: Child,
    stderr_lines: Receiver<String>,
    stderr_seen: Vec<String>,
    stdout: Option<JoinHandle<String>>,
}

impl Watcher {
    /// Starts `arpwatch watch --format text` in `ns` on `ifaces`, stopping by itself after
    /// `seconds`, and waits until it is attached to each interface.
    fn start(
        demo: &Demo,
        ns: &Netns,
        ifaces: &[&str],
        extra: &[&str],
        seconds: &str,
        env: &[(&str, &str)],
    ) -> Result<Watcher> {
        let mut cmd = ns.command(demo.bin.to_str().context("the binary's path is not UTF-8")?);
        cmd.args(["watch", "--format", "text", "--kubernetes", "off", "--duration", seconds]);
        for iface in ifaces {
            cmd.args(["--iface", iface]);
        }
        // The node name is the host's unless a scenario names one.
        cmd.args(extra).env_remove("NODE_NAME").envs(env.iter().copied());
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().context("cannot start arpwatch")?;
        let stderr = child.stderr.take().context("arpwatch's stderr")?;
        let mut stdout = child.stdout.take().context("arpwatch's stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let mut watcher =
            Watcher { child, stderr_lines: rx, stderr_seen: Vec::new(), stdout: Some(reader) };
        for iface in ifaces {
            watcher.wait_for_stderr(&format!("watching {iface} "), ATTACH_TIMEOUT)?;
        }
        Ok(watcher)
    }

    fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        if self.stderr_seen.iter().any(|l| l.contains(needle)) {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        loop {
            interrupted()?;
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.stderr_seen.push(line);
                    if found {
                        return Ok(());
                    }
                }
                Err(RecvTimeoutError::Timeout) if !left.is_zero() => {}
                Err(_) => bail!(
                    "arpwatch did not print {needle:?} within {timeout:?}; its stderr: {}",
                    self.stderr_seen.join(" | ")
                ),
            }
        }
    }

    /// Waits until arpwatch stopped by itself (its `--duration`, at most `timeout`) and returns
    /// what it printed.
    fn finish(mut self, timeout: Duration) -> Result<Watched> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            interrupted()?;
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                bail!("arpwatch did not stop within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = self.stdout.take().map(|r| r.join().unwrap_or_default()).unwrap_or_default();
        let mut stderr = std::mem::take(&mut self.stderr_seen);
        while let Ok(line) = self.stderr_lines.recv_timeout(Duration::from_millis(200)) {
            stderr.push(line);
        }
        let stderr = stderr.join("\n");
        if !status.success() {
            bail!("arpwatch failed ({status}): {}", stderr.replace('\n', " | "));
        }
        Ok(Watched { stdout, stderr })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child, which has not been reaped.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs arpwatch in `ns` on `ifaces` for `seconds`, runs `scenario` once it is attached, and
/// returns what arpwatch printed once it stopped by itself.
fn watch_during(
    demo: &Demo,
    ns: &Netns,
    ifaces: &[&str],
    extra: &[&str],
    seconds: &str,
    scenario: impl FnOnce() -> Result<()>,
) -> Result<Watched> {
    let watcher = Watcher::start(demo, ns, ifaces, extra, seconds, &[])?;
    scenario()?;
    watcher.finish(Duration::from_secs(30))
}

/// One L2 segment: a `switch` namespace with bridge `br0`, and hosts, each attached by a veth
/// pair `eth0` (in the host) <-> `pN` (a port of the bridge). Hosts go before the switch.
struct Lan {
    hosts: Vec<Netns>,
    switch: Netns,
    extra_ports: usize,
}

impl Lan {
    fn new(tag: &str) -> Lan {
        let switch = Netns::new(&format!("{TAG}{tag}sw"));
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

    fn add_host(&mut self, tag: &str, cidr: &str) -> usize {
        let n = self.hosts.len();
        let host = Netns::new(&format!("{TAG}{tag}"));
        let port = format!("p{n}");
        host.veth_to("eth0", &self.switch, &port);
        self.switch.ip(&["link", "set", &port, "master", "br0"]);
        host.add_addr("eth0", cidr);
        self.hosts.push(host);
        n
    }

    /// Connects one more interface of host `host` to the bridge.
    fn connect(&mut self, host: usize, iface: &str) {
        self.extra_ports += 1;
        let port = format!("x{}", self.extra_ports);
        self.hosts[host].veth_to(iface, &self.switch, &port);
        self.switch.ip(&["link", "set", &port, "master", "br0"]);
    }

    fn ports(&self) -> Vec<String> {
        (0..self.hosts.len()).map(|n| format!("p{n}")).collect()
    }
}

/// A client at 192.0.2.1 and `nodes` nodes at 192.0.2.11, .12, ...
fn cluster(tag: &str, nodes: usize) -> Lan {
    let mut lan = Lan::new(tag);
    lan.add_host(&format!("{tag}c"), "192.0.2.1/24");
    for n in 0..nodes {
        lan.add_host(&format!("{tag}n{n}"), &format!("192.0.2.{}/24", 11 + n));
    }
    lan
}

/// A client at 2001:db8::1 and `nodes` nodes at 2001:db8::11, ::12, ..., past DAD.
fn cluster6(tag: &str, nodes: usize) -> Lan {
    let mut lan = Lan::new(tag);
    lan.add_host(&format!("{tag}c"), "2001:db8::1/64");
    for n in 0..nodes {
        lan.add_host(&format!("{tag}n{n}"), &format!("2001:db8::{:x}/64", 0x11 + n));
    }
    for host in &lan.hosts {
        host.wait_dad(DAD_TIMEOUT);
    }
    lan
}

/// `host` holds `vip` the way kube-proxy in IPVS mode does: a /32 on a down, ARP-off device named
/// `kube-ipvs0` (a veth end stands in for a dummy device). Without strictARP (`arp_ignore=0`)
/// Linux answers ARP for it on eth0.
fn hold_vip_like_ipvs(host: &Netns, vip: &str) {
    host.ip(&["link", "add", "kube-ipvs0", "type", "veth", "peer", "name", "kube-ipvs0p"]);
    host.ip(&["link", "set", "kube-ipvs0", "arp", "off"]);
    host.add_addr("kube-ipvs0", &format!("{vip}/32"));
    for scope in ["all", "eth0"] {
        host.sysctl(&format!("net.ipv4.conf.{scope}.arp_ignore"), "0");
        host.sysctl(&format!("net.ipv4.conf.{scope}.arp_announce"), "0");
    }
}

/// A speaker's gratuitous announcement of the VIP, MetalLB style: a request and a reply.
fn announce(node: &Netns) {
    let mac = mac_bytes(&node.mac("eth0"));
    let frames = [1, 2].map(|op| ArpFrame::gratuitous(op, mac, ip_bytes(VIP)).bytes());
    node.send_frames("eth0", &frames);
}

/// Moves the VIP from `from` to `to` as an L2 speaker fails over: the address moves, then the new
/// leader announces it.
fn fail_over(from: &Netns, to: &Netns) {
    from.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "eth0"]);
    to.add_addr("eth0", &format!("{VIP}/32"));
    announce(to);
}

fn ipvs_without_strict_arp(demo: &Demo) -> Result<Watched> {
    let lan = cluster("ipvs", 3);
    let (client, nodes) = (&lan.hosts[0], &lan.hosts[1..]);
    for node in nodes {
        hold_vip_like_ipvs(node, VIP);
    }
    watch_during(demo, client, &["eth0"], &[], "3", || {
        client.udp_to(VIP);
        Ok(())
    })
}

fn two_nics(demo: &Demo) -> Result<Watched> {
    let mut lan = cluster("nics", 1);
    lan.connect(1, "eth1");
    let (client, node) = (&lan.hosts[0], &lan.hosts[1]);
    hold_vip_like_ipvs(node, VIP);
    node.sysctl("net.ipv4.conf.eth1.arp_ignore", "0");
    let watcher =
        Watcher::start(demo, node, &["eth0", "eth1"], &[], "3", &[("NODE_NAME", "demo-node-1")])?;
    client.udp_to(VIP);
    watcher.finish(Duration::from_secs(30))
}

fn clean_failover(demo: &Demo) -> Result<Watched> {
    let lan = cluster("fo", 2);
    let (client, a, b) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    a.add_addr("eth0", &format!("{VIP}/32"));
    watch_during(demo, client, &["eth0"], &[], "3", || {
        client.udp_to(VIP); // the old leader answers the client: A's last claim
        fail_over(a, b);
        Ok(())
    })
}

fn flapping(demo: &Demo) -> Result<Watched> {
    let lan = cluster("flap", 2);
    let (client, a, b) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    a.add_addr("eth0", &format!("{VIP}/32"));
    let config = demo.config("flapping", "[thresholds]\nconcurrency_window = \"1s\"\n")?;
    watch_during(demo, client, &["eth0"], &["--config", &config], "6", || {
        announce(a);
        for (from, to) in [(a, b), (b, a), (a, b)] {
            pause(Duration::from_millis(1200))?;
            fail_over(from, to);
        }
        Ok(())
    })
}

fn dead_speaker(demo: &Demo) -> Result<Watched> {
    let lan = cluster("dead", 1);
    let client = &lan.hosts[0];
    let config = demo.config(
        "dead-speaker",
        &format!(
            "full_view = true\n[[pools]]\nname = \"metallb\"\ncidrs = [\"{VIP}/32\"]\n\
             [thresholds]\nreply_timeout = \"500ms\"\nunanswered_after = 2\n"
        ),
    )?;
    let ports = lan.ports();
    let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
    watch_during(demo, &lan.switch, &ports, &["--config", &config], "6", || {
        // The client's kernel asks up to three times, a second apart.
        client.udp_to(VIP);
        Ok(())
    })
}

fn foreign_device(demo: &Demo) -> Result<Watched> {
    let mut lan = cluster("frgn", 1);
    // The foreign device has the VIP as its own address; the pool allows only the node's MAC.
    lan.add_host("frgnx", &format!("{VIP}/24"));
    let (client, node) = (&lan.hosts[0], &lan.hosts[1]);
    let config = demo.config(
        "foreign-device",
        &format!(
            "[[pools]]\nname = \"metallb\"\ncidrs = [\"{VIP}/32\"]\nmacs = [\"{}\"]\n",
            node.mac("eth0")
        ),
    )?;
    watch_during(demo, client, &["eth0"], &["--config", &config], "3", || {
        client.udp_to(VIP);
        Ok(())
    })
}

fn ndp_two_responders(demo: &Demo) -> Result<Watched> {
    let lan = cluster6("ndmr", 2);
    let (client, nodes) = (&lan.hosts[0], &lan.hosts[1..]);
    for node in nodes {
        node.add_addr_nodad("eth0", VIP6_128);
    }
    let before: Vec<_> = nodes.iter().map(|n| n.nd_counters("eth0")).collect();
    watch_during(demo, client, &["eth0"], &[], "3", || {
        client.udp_to(VIP6);
        for (node, before) in nodes.iter().zip(&before) {
            node.wait_nd("eth0", *before, "its advertisement of the VIP", EXCHANGE, |d| {
                d.ns_in >= 1 && d.na_out >= 1
            });
        }
        Ok(())
    })
}

fn ndp_failover(demo: &Demo) -> Result<Watched> {
    let lan = cluster6("ndfo", 2);
    let (client, a, b) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    a.add_addr_nodad("eth0", VIP6_128);
    let (mac_a, mac_b) = (a.mac("eth0"), b.mac("eth0"));
    let vip_at = |mac: &str, what: &str| {
        client.wait_neigh6("eth0", VIP6, what, EXCHANGE, |e| {
            e.is_some_and(|e| e.lladdr.as_deref() == Some(mac))
        });
    };
    watch_during(demo, client, &["eth0"], &[], "3", || {
        client.udp_to(VIP6);
        vip_at(&mac_a, "the VIP resolved through A");
        a.del_addr("eth0", VIP6_128);
        b.add_addr_nodad("eth0", VIP6_128);
        let vip: std::net::Ipv6Addr = VIP6.parse()?;
        b.send_frames("eth0", &[NdFrame::unsolicited(mac_bytes(&mac_b), vip.octets()).bytes()]);
        vip_at(&mac_b, "B's unsolicited NA");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_line_gives_its_event_and_ip() {
        let line = "2026-01-02T03:04:05.678Z CRITICAL multi_responder 192.0.2.100 iface=eth0";
        assert_eq!(parse_line(line), Some(("CRITICAL", "multi_responder", "192.0.2.100")));
        assert_eq!(parse_line("short line"), None);
        assert!(worth_showing("INFO", "new_binding") && worth_showing("WARNING", "owner_change"));
        assert!(!worth_showing("INFO", "gratuitous"));
    }

    fn never_run(_: &Demo) -> Result<Watched> {
        unreachable!("judge only")
    }

    const FAILOVER: Scenario = Scenario {
        name: "t",
        explain: "",
        watcher: "",
        ip: "192.0.2.100",
        expect: &["owner_change"],
        forbid: &["multi_responder"],
        run: never_run,
    };

    fn watched(lines: &[&str]) -> Watched {
        Watched { stdout: lines.join("\n"), stderr: String::new() }
    }

    #[test]
    fn a_scenario_passes_with_its_event_about_its_ip_and_fails_without_or_with_a_forbidden_one() {
        let change = "T WARNING owner_change 192.0.2.100 old_mac=a new_mac=b";
        let other_ip = "T WARNING owner_change 192.0.2.7 old_mac=a new_mac=b";
        let multi = "T CRITICAL multi_responder 192.0.2.100 state=start";
        assert_eq!(judge(&FAILOVER, &watched(&[change]), true), Ok("owner_change".into()));
        let missing = judge(&FAILOVER, &watched(&[other_ip]), true).unwrap_err();
        assert!(missing.contains("expected owner_change about 192.0.2.100"), "{missing}");
        let unwanted = judge(&FAILOVER, &watched(&[change, multi]), true).unwrap_err();
        assert!(unwanted.contains("multi_responder about 192.0.2.100 should not"), "{unwanted}");
    }

    fn lab_step_panics(_: &Demo) -> Result<Watched> {
        panic!("a lab step failed")
    }

    fn lab_step_fails(_: &Demo) -> Result<Watched> {
        bail!("arpwatch did not start")
    }

    fn reports_a_change(_: &Demo) -> Result<Watched> {
        Ok(watched(&["T WARNING owner_change 192.0.2.100 old_mac=a new_mac=b"]))
    }

    #[test]
    fn a_failed_lab_step_fails_its_scenario_and_the_next_still_runs() {
        let demo = Demo { bin: PathBuf::from("/nonexistent"), tmp: TempDir::new().unwrap() };
        let panics = Scenario { name: "panics", run: lab_step_panics, ..FAILOVER };
        let fails = Scenario { name: "fails", run: lab_step_fails, ..FAILOVER };
        let passes = Scenario { name: "passes", run: reports_a_change, ..FAILOVER };
        let err = run_scenarios(&demo, &[&panics, &fails, &passes], true).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("2 of 3 scenarios did not report as expected: panics, fails ({:.0} s)", 0.0)
        );
        run_scenarios(&demo, &[&passes], true).unwrap();
    }

    #[test]
    fn scenario_names_are_unique_and_ips_documentation_addresses() {
        let mut names = scenario_names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len());
        for s in SCENARIOS {
            assert!(s.ip.starts_with("192.0.2.") || s.ip.starts_with("2001:db8:"), "{}", s.ip);
            assert!(!s.expect.is_empty(), "{} expects something", s.name);
        }
    }
}
