//! The status page (`/` of the metrics listener) in a real browser during a lab incident: kube-proxy
//! in IPVS mode without strictARP, three nodes answering one VIP (as in `labs_incidents`), watched
//! by arpwatch in the client's namespace. Debian's headless Chromium, run inside that namespace,
//! loads the page; the test checks the rendered DOM (the multi-responder's MACs appear,
//! highlighted) and keeps a screenshot under `target/test-artifacts/status-page.png`.
//!
//! Needs root and Chromium (`apt-get install -y chromium`, which `.ci/run` does); fails, never
//! skips, without either. Every wait is bounded; the namespaces, the browser's processes and its
//! profile directory are removed on every path (guards that drop on a panic too).

mod support;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::lab::{cluster, get, hold_vip_like_ipvs, Arpwatch, Netns, METRICS};

const VIP: &str = "192.0.2.100";

/// Debian's package and binary name.
const CHROMIUM: &str = "chromium";

/// The longest one Chromium run may take (it usually takes about a second).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// A fresh directory, removed with everything in it on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "arpwatch-{tag}-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A process group started by this test (the browser and every process it forks), killed on drop
/// if still there.
struct Group {
    child: std::process::Child,
}

impl Group {
    fn kill(&mut self) {
        // SAFETY: kill(2) on the process group this test created (pgid = the child's pid).
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
        // Helpers (zygote, GPU, network service) may outlive the browser process by a moment.
        // SAFETY: as above; ESRCH when the group is already gone.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
    }
}

struct BrowserRun {
    stdout: String,
    stderr: String,
    success: bool,
}

/// Runs headless Chromium inside `ns` with `args` then `url`, with a throwaway profile, at most
/// [`BROWSER_TIMEOUT`]. Panics when Chromium cannot be started or does not finish in time.
fn chromium(ns: &Netns, args: &[&str], url: &str) -> BrowserRun {
    let profile = TempDir::new("chromium-profile");
    let profile_arg = format!("--user-data-dir={}", profile.0.display());
    let mut cmd = ns.command(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        &profile_arg,
    ]);
    cmd.args(args).arg(url);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let child =
        cmd.spawn().unwrap_or_else(|e| panic!("cannot start ip netns exec {CHROMIUM}: {e}"));
    let mut group = Group { child };
    let mut stdout = group.child.stdout.take().unwrap();
    let mut stderr = group.child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let status = loop {
        if let Some(status) = group.child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            group.kill();
            let stderr = err.join().unwrap_or_default();
            panic!("{CHROMIUM} did not finish within {BROWSER_TIMEOUT:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Kill what is left of the group before reading to the end: a helper holding the pipes open
    // would otherwise keep the readers waiting.
    drop(group);
    BrowserRun {
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        success: status.success(),
    }
}

/// Fails (never skips) when the browser is missing, with what to do about it.
fn require_chromium() {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(CHROMIUM).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{CHROMIUM} is not installed: this test loads the status page in Debian's headless \
         Chromium. Install it with `apt-get install -y chromium` (.ci/run does)"
    );
}

/// `target/test-artifacts`, beside the build's other outputs.
fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir.canonicalize().unwrap_or(dir)
}

#[test]
fn headless_chromium_shows_the_multi_responders_macs_during_an_ipvs_incident() {
    require_chromium();
    let lan = cluster("page", 3);
    let (client, nodes) = (&lan.hosts[0], &lan.hosts[1..]);
    for node in nodes {
        hold_vip_like_ipvs(node, VIP, false);
    }
    let node_macs: Vec<String> = nodes.iter().map(|n| n.mac("eth0")).collect();

    let mut watch = Arpwatch::start(
        Some(client),
        &["watch", "--iface", "eth0", "--metrics-addr", METRICS, "--duration", "120"],
    );
    watch.wait_attached(&["eth0"]);
    watch.wait_for_stderr("serving metrics", Duration::from_secs(10));

    // The incident: one request for the VIP, three nodes answer it.
    client.udp_to(VIP);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(client, "/");
        assert_eq!(status, 200, "GET / answers the status page: {body}");
        if body.contains("multi_responder") && node_macs.iter().all(|m| body.contains(m.as_str())) {
            break;
        }
        assert!(Instant::now() < deadline, "the incident never reached the page:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let url = format!("http://{METRICS}/");
    let dom = chromium(client, &["--dump-dom"], &url);
    assert!(dom.success, "{CHROMIUM} --dump-dom failed:\n{}", dom.stderr);
    let html = &dom.stdout;
    assert!(html.contains("<h1>arpwatch"), "not the status page:\n{html}\n{}", dom.stderr);
    assert!(html.contains("multi_responder"), "the open condition is shown:\n{html}");
    for mac in &node_macs {
        assert!(
            html.contains(&format!("<span class=\"mac multi\">{mac}</span>")),
            "the multi-responder's MAC {mac} is shown, highlighted:\n{html}"
        );
    }
    assert!(html.contains(VIP), "{html}");
    assert!(html.contains("<tr class=\"crit\">"), "a critical row: {html}");
    assert!(html.contains("id=\"kernel\""), "the kernel counters: {html}");
    assert!(!html.contains("<script"), "no JavaScript: {html}");

    let png = artifacts_dir().join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let screenshot_arg = format!("--screenshot={}", png.display());
    let shot = chromium(client, &[&screenshot_arg, "--window-size=1280,900"], &url);
    assert!(shot.success, "{CHROMIUM} --screenshot failed:\n{}", shot.stderr);
    let bytes = std::fs::read(&png)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}\n{}", png.display(), shot.stderr));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", png.display());
    assert!(bytes.len() > 10_000, "a blank screenshot? {} bytes", bytes.len());
    println!("status page screenshot: {}", png.display());

    watch.signal(libc::SIGTERM);
    let done = watch.finish(Duration::from_secs(30));
    assert!(done.status.success(), "arpwatch failed: {}\n{}", done.status, done.stderr);
    assert!(!done.events("multi_responder", VIP).is_empty(), "{}", done.stdout);
}
