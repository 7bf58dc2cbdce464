//! Event-level replay tests: every real capture of `../shared/pcaps` is replayed through the
//! built binary (`arpwatch replay FILE --format json`, which runs the engine with `full_view`),
//! and the events an operator must see are checked against `GROUND_TRUTH.md` there. Frame
//! timestamps come from `arpwatch replay --raw` of the same file; frame numbers count every
//! packet of a file from 1, as in tshark. Observation-level checks (decoding, frame counts) are
//! in `replay_captures.rs`.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// What `NODE_NAME` is set to; every event must carry it.
const NODE: &str = "replay-events-node";

fn captures_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps"));
    assert!(
        dir.join("GROUND_TRUTH.md").is_file(),
        "the real captures are missing: expected them with GROUND_TRUTH.md in {}",
        dir.display()
    );
    dir
}

fn capture(name: &str) -> PathBuf {
    let path = captures_dir().join(name);
    assert!(path.is_file(), "capture {} is missing", path.display());
    path
}

/// A file of its own under the system's temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "arpwatch-replay-events-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// One run of the binary.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout, one JSON object a line.
    fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect()
    }
}

/// The binary with `args`, as the tests run it: a fixed node name, no log filter.
fn arpwatch_command(args: &[&Path]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arpwatch"));
    command.args(args).env("NODE_NAME", NODE).env_remove("RUST_LOG");
    command
}

impl Run {
    /// What a run of the binary with `args` left; a panic fails the test.
    fn of(args: &[&Path], out: std::process::Output) -> Run {
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
        run
    }
}

fn arpwatch(args: &[&Path]) -> Run {
    Run::of(args, arpwatch_command(args).output().expect("the arpwatch binary runs"))
}

/// A run of the binary with `input` written to its standard input through a pipe.
fn arpwatch_fed(args: &[&Path], input: Vec<u8>) -> Run {
    let mut child = arpwatch_command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the arpwatch binary runs");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("arpwatch ends");
    writer.join().unwrap().expect("arpwatch reads all of its input");
    Run::of(args, out)
}

/// `arpwatch replay CAPTURE --format json [--config FILE] [--raw]`, which must succeed.
fn replay_run(name: &str, config: Option<&str>, raw: bool) -> Run {
    let path = capture(name);
    let config = config.map(|toml| TempFile::new("arpwatch.toml", toml.as_bytes()));
    let mut args = vec![Path::new("replay"), &path, "--format".as_ref(), "json".as_ref()];
    if let Some(file) = &config {
        args.extend([Path::new("--config"), &file.0]);
    }
    if raw {
        args.push("--raw".as_ref());
    }
    let run = arpwatch(&args);
    assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
    run
}

/// The events of one replay, each checked against the output contract (SPEC §4).
struct Events(Vec<Value>);

fn replay(name: &str) -> Events {
    replay_with(name, None)
}

/// Replays with `config` (TOML) written to a temporary file.
fn replay_config(name: &str, config: &str) -> Events {
    replay_with(name, Some(config))
}

fn replay_with(name: &str, config: Option<&str>) -> Events {
    let events = replay_run(name, config, false).lines();
    for e in &events {
        assert_eq!(e["schema"], 1, "{e}");
        assert_eq!(e["node"], NODE, "{e}");
        timestamp(&e["ts"]);
        assert!(["info", "warning", "critical"].contains(&str_of(&e["severity"])), "{e}");
        let ip: std::net::IpAddr =
            str_of(&e["ip"]).parse().unwrap_or_else(|_| panic!("ip is not an IP address: {e}"));
        assert_eq!(ip.to_string(), str_of(&e["ip"]), "RFC 5952 form: {e}");
        let proto = if ip.is_ipv4() { "arp" } else { "ndp" };
        if !(e["event"] == "storm" && e["scope"] == "iface") {
            assert_eq!(e["proto"], proto, "{e}");
        }
    }
    Events(events)
}

/// The observations of a capture (`--raw`): one per valid ARP frame, in file order.
fn observations(name: &str) -> Vec<Value> {
    replay_run(name, None, true).lines()
}

impl Events {
    fn of(&self, kind: &str) -> Vec<&Value> {
        self.0.iter().filter(|e| e["event"] == kind).collect()
    }

    fn count(&self, kind: &str) -> usize {
        self.of(kind).len()
    }

    /// The kinds of the events that are not `info`, in order.
    fn alarms(&self) -> Vec<&str> {
        self.0.iter().filter(|e| e["severity"] != "info").map(|e| str_of(&e["event"])).collect()
    }

    /// The `state` of each event of `kind`, in order.
    fn states(&self, kind: &str) -> Vec<&str> {
        self.of(kind).iter().map(|e| str_of(&e["state"])).collect()
    }

    /// (`ip`, `mac`) of each event of `kind`, in order.
    fn ip_macs(&self, kind: &str) -> Vec<(&str, &str)> {
        self.ip_macs_of(kind, None)
    }

    /// (`ip`, `mac`) of each event of `kind` about `proto` (`arp`, `ndp`; any when `None`).
    fn ip_macs_of(&self, kind: &str, proto: Option<&str>) -> Vec<(&str, &str)> {
        self.of(kind)
            .iter()
            .filter(|e| proto.is_none_or(|p| e["proto"] == p))
            .map(|e| (str_of(&e["ip"]), str_of(&e["mac"])))
            .collect()
    }
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn timestamp(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(str_of(v), &Rfc3339).unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// The kinds that must never fire on benign traffic.
const CONFLICTS: [&str; 3] = ["multi_responder", "owner_change", "flapping"];

// ------------------------------------------------------------ sequential spoofing

const ARPSPOOF: &str = "arpspoof_gateway_oneway.pcap";
const ARPSPOOF_ATTACKER: &str = "60:67:20:77:15:22";
const ARPSPOOF_GATEWAY: &str = "bc:d1:77:09:14:15";

#[test]
fn arpspoof_owner_change_at_frame_4_with_how_and_the_gap() {
    let frames = observations(ARPSPOOF);
    assert_eq!(frames.len(), 11, "every frame is ARP, so frame n is observation n - 1");
    let events = replay(ARPSPOOF);
    let changes = events.of("owner_change");
    // Frame 4: the real gateway answers the attacker's own request, 1709 ms after the attacker's
    // claim in frame 1. Frame 5 moves the IP back to the attacker 293 ms later; that move is the
    // first evidence of the multi-responder it starts (one incident, one story), not a second
    // owner change beside it.
    assert_eq!(changes.len(), 1, "{changes:?}");
    let change = changes[0];
    assert_eq!(change["ts"], frames[3]["ts"], "frame 4: {change}");
    assert_eq!(change["ip"], "192.168.6.1", "{change}");
    assert_eq!(
        (change["old_mac"].as_str(), change["new_mac"].as_str()),
        (Some(ARPSPOOF_ATTACKER), Some(ARPSPOOF_GATEWAY))
    );
    assert_eq!(change["announced"], "reply", "plain replies, no gratuitous ARP: {change}");
    assert_eq!(change["gap_ms"], 1709, "{change}");
    assert_eq!(change["severity"], "warning");
}

#[test]
fn arpspoof_attacker_reclaiming_the_gateway_is_a_sustained_multi_responder() {
    // Claims of 192.168.6.1: attacker (frame 1, to .117), gateway (frame 4, to .115), attacker
    // (frame 5, to .117): A, B, A within 2 s, inside the 10 s concurrency window, and the gateway
    // only answered (a plain reply, no takeover announced): it answered while the attacker held
    // the IP. The two MACs never answered the same requester, so the strong form does not apply;
    // the sustained form does, on frame 5, and nothing interleaves afterwards, so no `ongoing`.
    // The capture ends 7 s later, before the 30 s quiet window, so no `end` either.
    let frames = observations(ARPSPOOF);
    let events = replay(ARPSPOOF);
    let mr = events.of("multi_responder");
    assert_eq!(mr.len(), 1, "{mr:?}");
    let e = mr[0];
    assert_eq!((e["state"].as_str(), e["form"].as_str()), (Some("start"), Some("sustained")));
    assert_eq!(e["ip"], "192.168.6.1");
    assert_eq!(e["severity"], "critical");
    assert_eq!(e["ts"], frames[4]["ts"], "reported on frame 5");
    let macs = e["macs"].as_array().unwrap();
    assert_eq!(macs, &[ARPSPOOF_ATTACKER, ARPSPOOF_GATEWAY], "in the order of their first claims");
    assert_eq!(e["count"], 1);
    // Everything alarming in the capture, in order; the attacker's requests for .1 are answered
    // by its own next claim (no `unanswered`).
    assert_eq!(events.alarms(), ["owner_change", "multi_responder"]);
}

#[test]
fn arpspoof_attacker_mac_holds_two_ips() {
    let events = replay(ARPSPOOF);
    let bindings = events.ip_macs("new_binding");
    assert_eq!(
        bindings,
        [
            ("192.168.6.1", ARPSPOOF_ATTACKER),
            ("192.168.6.115", ARPSPOOF_ATTACKER),
            ("192.168.6.1", ARPSPOOF_GATEWAY),
        ]
    );
    let announced: Vec<_> =
        events.of("new_binding").iter().map(|e| str_of(&e["announced"])).collect();
    assert_eq!(announced, ["reply", "request", "reply"]);
}

#[test]
fn arpspoof_with_the_gateway_pool_names_the_attacker_as_unknown_responder() {
    let frames = observations(ARPSPOOF);
    let events = replay_config(
        ARPSPOOF,
        &format!("[[pools]]\nname = \"gateway\"\ncidrs = [\"192.168.6.1/32\"]\nmacs = [\"{ARPSPOOF_GATEWAY}\"]\n"),
    );
    let unknown = events.of("unknown_responder");
    // The attacker claims five times within 9 s: one line (repeats wait for the 60 s report
    // interval); the gateway's own claim is allowed.
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    let e = unknown[0];
    assert_eq!(
        (e["ip"].as_str(), e["mac"].as_str()),
        (Some("192.168.6.1"), Some(ARPSPOOF_ATTACKER))
    );
    assert_eq!(e["pool"], "gateway");
    assert_eq!(e["severity"], "critical");
    assert_eq!(e["announced"], "reply");
    assert_eq!(e["count"], 1);
    assert_eq!(e["ts"], frames[0]["ts"], "the attacker's first claim, frame 1");
    assert_eq!(events.count("owner_change"), 1);
    assert_eq!(events.count("multi_responder"), 1);
}

const SANDERS: &str = "sanders_arppoison.pcapng";
const SANDERS_ATTACKER: &str = "00:25:b3:bf:91:ee";

#[test]
fn sanders_attacker_claim_of_the_silent_gateway_is_a_binding_only() {
    // Frame 54: unicast request "172.16.0.1 is 00:25:b3…" to the victim (a weak claim: a
    // binding); frame 56: the unsolicited reply (a claim, of an IP with no other MAC). The real
    // gateway sends no ARP, so without a pool there is nothing to alarm on.
    let events = replay(SANDERS);
    assert_eq!(
        events.ip_macs("new_binding"),
        [
            ("172.16.0.1", SANDERS_ATTACKER),
            ("172.16.0.107", "00:21:70:c0:56:f0"),
            ("172.16.0.105", SANDERS_ATTACKER),
        ]
    );
    assert_eq!(events.of("new_binding")[0]["announced"], "request");
    assert_eq!(events.0.len(), 3, "{:?}", events.0);
    assert!(events.alarms().is_empty(), "{:?}", events.alarms());
}

#[test]
fn sanders_with_the_gateway_pool_the_attackers_reply_is_an_unknown_responder() {
    let frames = observations(SANDERS);
    assert_eq!(frames.len(), 4, "frames 54, 55, 56, 165");
    let events = replay_config(
        SANDERS,
        "[[pools]]\nname = \"gateway\"\ncidrs = [\"172.16.0.1/32\"]\nmacs = [\"00:26:0b:31:07:33\"]\n",
    );
    let unknown = events.of("unknown_responder");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    let e = unknown[0];
    assert_eq!((e["ip"].as_str(), e["mac"].as_str()), (Some("172.16.0.1"), Some(SANDERS_ATTACKER)));
    assert_eq!(e["announced"], "reply");
    assert_eq!(e["ts"], frames[2]["ts"], "the unsolicited reply, frame 56");
    assert_eq!(e["pool"], "gateway");
    assert_eq!(events.alarms(), ["unknown_responder"]);
}

const SGR_SPOOF: &str = "sgr_na-arpSpoofing.pcap";
const SGR_SPOOFER: &str = "00:e0:4d:3c:25:7b";

#[test]
fn sgr_spoofing_one_mac_claims_two_ips_and_36_replies_make_two_lines() {
    let events = replay(SGR_SPOOF);
    assert_eq!(
        events.ip_macs("new_binding"),
        [("10.0.0.153", SGR_SPOOFER), ("10.0.0.157", SGR_SPOOFER)]
    );
    assert_eq!(events.0.len(), 2, "34 exact repeats add nothing: {:?}", events.0);
    assert_eq!(events.count("multi_responder"), 0);
}

#[test]
fn sgr_spoofing_repeated_unknown_responder_is_throttled_with_counts() {
    // 18 claims per IP over 134 s (frames 1-10 a second apart, then every 10 s). Reported on the
    // first claim, then on the first claim at least 60 s (report interval) after the previous
    // report, with the claims since: at 64.1 s (10) and 124.2 s (6). The last claim, at 134.2 s,
    // waits for a report the capture does not reach.
    let events = replay_config(
        SGR_SPOOF,
        "[[pools]]\nname = \"lan\"\ncidrs = [\"10.0.0.0/24\"]\nmacs = [\"02:00:00:00:00:01\"]\n",
    );
    for ip in ["10.0.0.153", "10.0.0.157"] {
        let lines: Vec<_> =
            events.of("unknown_responder").into_iter().filter(|e| e["ip"] == ip).collect();
        let counts: Vec<_> = lines.iter().map(|e| e["count"].as_u64().unwrap()).collect();
        assert_eq!(counts, [1, 10, 6], "{ip}: {lines:?}");
        assert!(lines.iter().all(|e| e["mac"] == SGR_SPOOFER));
        for pair in lines.windows(2) {
            let apart = timestamp(&pair[1]["ts"]) - timestamp(&pair[0]["ts"]);
            assert!(apart >= Duration::from_secs(60), "{ip}: reports {apart} apart");
        }
    }
    assert_eq!(events.alarms().len(), 6);
}

// ------------------------------------------------------------ storms and scans

const STORM: &str = "wireshark_arp-storm.pcap";
const STORM_ROUTER: &str = "00:07:0d:af:f4:54";

#[test]
fn arp_storm_router_at_39_per_second_is_no_storm_with_the_defaults() {
    // A router with secondary subnets: 622 requests in 29 s, peak 39 in a second, below
    // storm_rate_per_mac = 50 (and far below 500 per interface). Its 303 targets never had an
    // owner and are in no pool, so they are not watched for `unanswered` either.
    let events = replay(STORM);
    assert!(events.alarms().is_empty(), "{:?}", events.alarms());
    let bindings = events.of("new_binding");
    assert_eq!(bindings.len(), 9, "one per sender IP");
    assert!(bindings.iter().all(|e| e["mac"] == STORM_ROUTER && e["announced"] == "request"));
    assert_eq!(events.0.len(), 9);
}

#[test]
fn arp_storm_above_a_20_per_second_threshold_is_one_storm_line() {
    // Always above 20 a second from the first second on: one `start`; the capture (29 s) ends
    // before the report interval (60 s) and before any quiet window, so nothing more.
    let events = replay_config(STORM, "[thresholds]\nstorm_rate_per_mac = 20\n");
    let storms = events.of("storm");
    assert_eq!(storms.len(), 1, "{storms:?}");
    let e = storms[0];
    assert_eq!((e["state"].as_str(), e["scope"].as_str()), (Some("start"), Some("mac")));
    assert_eq!(e["mac"], STORM_ROUTER);
    assert_eq!(e["severity"], "warning");
    assert!(e["rate"].as_u64().unwrap() > 20, "{e}");
    assert_eq!(events.alarms(), ["storm"]);
}

#[test]
fn arp_storm_with_a_short_quiet_window_ends_and_starts_again() {
    // With a 3 s quiet window the rate dips below 20 long enough once (around 21 s, 11 frames in
    // that second): the storm ends 3 s after its last frame over the threshold, and the next
    // second over it is a new `start`.
    let events =
        replay_config(STORM, "[thresholds]\nstorm_rate_per_mac = 20\nquiet_window = \"3s\"\n");
    assert_eq!(events.states("storm"), ["start", "end", "start"]);
    let storms = events.of("storm");
    let (start, end, again) = (storms[0], storms[1], storms[2]);
    assert!(storms.iter().all(|e| e["mac"] == STORM_ROUTER && e["scope"] == "mac"));
    assert_eq!(end["first_seen"], start["ts"]);
    assert_eq!(
        timestamp(&end["ts"]) - timestamp(&end["last_seen"]),
        Duration::from_secs(3),
        "dated when the quiet window ran out"
    );
    assert!(end["count"].as_u64().unwrap() > 1, "{end}");
    assert!(timestamp(&again["ts"]) > timestamp(&end["ts"]));
    assert_eq!(again["count"], 1);
}

const SCAN: &str = "sgr_hs-arpScan.pcap";
const SCANNER: &str = "00:0c:29:20:a8:7f";

#[test]
fn arp_scan_is_one_storm_start_per_mac_and_per_interface() {
    // 509 requests in 1.02 s: over 50 a second from the scanner's MAC after about 100 ms, over
    // 500 a second on the interface at the end. One `start` each; the scan is over before the
    // report interval, and the replay ends with it, so no `ongoing` and no `end`.
    let events = replay(SCAN);
    let storms = events.of("storm");
    assert_eq!(events.states("storm"), ["start", "start"], "{storms:?}");
    let by_mac = storms.iter().find(|e| e["scope"] == "mac").expect("a per-MAC storm");
    assert_eq!(
        (by_mac["mac"].as_str(), by_mac["ip"].as_str()),
        (Some(SCANNER), Some("10.0.0.128"))
    );
    assert!(by_mac["rate"].as_u64().unwrap() > 50);
    let by_iface = storms.iter().find(|e| e["scope"] == "iface").expect("a per-interface storm");
    assert_eq!(by_iface["ip"], "0.0.0.0");
    assert!(by_iface["rate"].as_u64().unwrap() > 500);
    assert_eq!(by_iface["iface"], "sgr_hs-arpScan");
}

#[test]
fn arp_scan_ongoing_reports_are_limited_by_the_report_interval() {
    let events = replay_config(SCAN, "[thresholds]\nreport_interval = \"250ms\"\n");
    let by_mac: Vec<_> = events.of("storm").into_iter().filter(|e| e["scope"] == "mac").collect();
    let states: Vec<_> = by_mac.iter().map(|e| str_of(&e["state"])).collect();
    // About 0.9 s of storm at 4 reports a second at most: a start and three `ongoing`.
    assert_eq!(states, ["start", "ongoing", "ongoing", "ongoing"], "{by_mac:?}");
    for pair in by_mac.windows(2) {
        assert!(
            timestamp(&pair[1]["ts"]) - timestamp(&pair[0]["ts"]) >= Duration::from_millis(250)
        );
        assert!(pair[1]["count"].as_u64() > pair[0]["count"].as_u64(), "counts are cumulative");
        assert_eq!(pair[1]["first_seen"], by_mac[0]["ts"]);
    }
}

#[test]
fn arp_scan_asking_for_its_own_ip_is_no_conflict_and_no_unanswered_flood() {
    // Frames 129 and 383 ask for the scanner's own IP (SPA = TPA): its own announcement, with
    // its own MAC. The 254 other targets never had an owner and are in no pool: not watched,
    // so the scan's unanswered requests are no `unanswered` flood.
    let frames = observations(SCAN);
    assert_eq!(frames.len(), 509, "every frame is ARP, so frame n is observation n - 1");
    let events = replay(SCAN);
    let announcements = events.of("gratuitous");
    assert_eq!(events.ip_macs("gratuitous"), [("10.0.0.128", SCANNER), ("10.0.0.128", SCANNER)]);
    assert_eq!(announcements[0]["ts"], frames[128]["ts"]);
    assert_eq!(announcements[1]["ts"], frames[382]["ts"]);
    assert_eq!(events.ip_macs("new_binding"), [("10.0.0.128", SCANNER)]);
    for kind in CONFLICTS.iter().chain(&["probe_conflict", "unanswered", "sender_mismatch"]) {
        assert_eq!(events.count(kind), 0, "{kind}");
    }
    assert_eq!(events.alarms(), ["storm", "storm"]);
}

// ------------------------------------------------------------ probes, announcements, HA

const WINDOWS: &str = "wireshark_smb-on-windows-10_probes.pcapng";
const VM1: &str = "00:0c:29:61:f5:5f";
const VM2: &str = "00:0c:29:03:df:ad";

#[test]
fn windows_probes_are_17_probes_and_5_announcements_without_conflict() {
    let events = replay(WINDOWS);
    let probe = |ip, mac, n| std::iter::repeat_n((ip, mac), n);
    let expected_probes: Vec<_> = probe("169.254.145.153", VM1, 3) // frames 14, 15, 17
        .chain(probe("192.168.199.133", VM1, 3)) // 27, 44, 62
        .chain(probe("169.254.195.103", VM2, 2)) // 311, 331
        .chain(probe("192.168.199.132", VM2, 3)) // 358, 377, 386
        .chain(probe("169.254.195.103", VM2, 3)) // 458, 460, 463
        .chain(probe("192.168.199.132", VM2, 3)) // 492, 513, 528
        .collect();
    assert_eq!(events.ip_macs_of("probe", Some("arp")), expected_probes);
    assert_eq!(
        events.ip_macs_of("gratuitous", Some("arp")),
        [
            ("169.254.145.153", VM1), // frame 18
            ("192.168.199.133", VM1), // 72
            ("192.168.199.132", VM2), // 392
            ("169.254.195.103", VM2), // 465
            ("192.168.199.132", VM2), // 534
        ]
    );
    assert_eq!(events.of("new_binding").iter().filter(|e| e["proto"] == "arp").count(), 5);
    assert!(events.alarms().is_empty(), "{:?}", events.alarms());
    assert_eq!(events.count("probe_conflict"), 0);
}

#[test]
fn windows_dad_probes_and_their_own_announcements_are_no_conflict() {
    // GROUND_TRUTH.md: each VM probes its link-local address (DAD) and announces it itself a
    // second later (NA to ff02::1, S=0 O=1); two addresses resolve each other (S=1).
    const LL1: &str = "fe80::65b5:3a97:92d1:9199";
    const LL2: &str = "fe80::31cb:26de:c5bb:c367";
    let events = replay(WINDOWS);
    let frames = observations(WINDOWS);
    let nd: Vec<&Value> = frames.iter().filter(|o| o["proto"] == "ndp").collect();
    assert_eq!(nd.len(), 14, "7 NS and 7 NA");
    assert_eq!(
        events.ip_macs_of("probe", Some("ndp")),
        [(LL1, VM1), (LL1, VM1), (LL2, VM2), (LL2, VM2), (LL2, VM2)]
    );
    assert_eq!(
        events.ip_macs_of("gratuitous", Some("ndp")),
        [(LL1, VM1), (LL1, VM1), (LL2, VM2), (LL2, VM2), (LL2, VM2)]
    );
    for e in events.of("gratuitous").iter().filter(|e| e["proto"] == "ndp") {
        assert_eq!(e["override"], true, "{e}");
    }
    let ndp_bindings: BTreeSet<(&str, &str)> =
        events.ip_macs_of("new_binding", Some("ndp")).into_iter().collect();
    assert_eq!(
        ndp_bindings,
        [(LL1, VM1), (LL2, VM2), ("fe80::78da:c04d:12da:8a08", "00:50:56:c0:00:01")].into()
    );
    assert_eq!(events.0.len(), 17 + 5 + 5 + 5 + 5 + 3, "ARP: probes, announcements, bindings");
}

// ------------------------------------------------------------ IPv6 Neighbor Discovery

const DAD_CONFLICT: &str = "realjimmy_ipv6_dad_conflict.pcap";

#[test]
fn a_dad_probe_answered_by_the_holder_is_a_probe_conflict() {
    // GROUND_TRUTH.md: 00:e0:fc:4b:07:95 probes its link-local address and 2001::1; 16 ms later
    // 00:e0:fc:71:45:d6, which holds 2001::1, answers with an NA to ff02::1 (R=1 S=0 O=1).
    const PROBER: &str = "00:e0:fc:4b:07:95";
    const HOLDER: &str = "00:e0:fc:71:45:d6";
    let events = replay(DAD_CONFLICT);
    let frames = observations(DAD_CONFLICT);
    assert_eq!(frames.len(), 3);
    assert_eq!(events.ip_macs("probe"), [("fe80::2e0:fcff:fe4b:795", PROBER), ("2001::1", PROBER)]);
    let conflict = events.of("probe_conflict");
    assert_eq!(conflict.len(), 1, "{:#?}", events.0);
    assert_eq!(
        (conflict[0]["ip"].as_str(), conflict[0]["mac"].as_str()),
        (Some("2001::1"), Some(PROBER))
    );
    assert_eq!(conflict[0]["old_mac"], HOLDER);
    assert_eq!(conflict[0]["ts"], frames[2]["ts"], "reported on the holder's answer");
    assert_eq!(conflict[0]["proto"], "ndp");
    assert_eq!(events.ip_macs("gratuitous"), [("2001::1", HOLDER)]);
    assert_eq!(events.alarms(), ["probe_conflict"]);
}

#[test]
fn a_linux_cooked_solicitation_and_its_answer_sent_by_the_capturing_host() {
    // GROUND_TRUTH.md: frame 1 (in) solicits fe80::203:47ff:feeb:3faf; frame 2, sent by the
    // capturing host, answers R=0 S=1 O=1 with its TLLA.
    let name = "wireshark_c1222_over_ipv6_sll.pcap";
    let frames = observations(name);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0]["op"], "neighbor_solicitation");
    assert_eq!(frames[0]["src"], "fe80::21e:ecff:fe30:9474");
    assert_eq!(frames[0]["dst"], "ff02::1:ffeb:3faf");
    assert_eq!(frames[0]["target"], "fe80::203:47ff:feeb:3faf");
    assert_eq!(frames[0]["lladdr"], "00:1e:ec:30:94:74");
    assert_eq!(
        (frames[0]["direction"].as_str(), frames[1]["direction"].as_str()),
        (Some("ingress"), Some("egress"))
    );
    assert_eq!(frames[1]["op"], "neighbor_advertisement");
    assert_eq!(frames[1]["lladdr"], "00:03:47:eb:3f:af");
    assert_eq!(
        frames[1]["flags"],
        serde_json::json!({"router": false, "solicited": true, "override": true})
    );
    let events = replay(name);
    assert_eq!(
        events.ip_macs("new_binding"),
        [
            ("fe80::21e:ecff:fe30:9474", "00:1e:ec:30:94:74"),
            ("fe80::203:47ff:feeb:3faf", "00:03:47:eb:3f:af")
        ]
    );
    assert_eq!(events.0.len(), 2, "{:#?}", events.0);
}

#[test]
fn routers_checking_reachability_with_answers_lacking_tlla_raise_nothing() {
    // GROUND_TRUTH.md: 20 unicast NS, each answered within 10 ms by an NA (R=1 S=1 O=0) with no
    // target link-layer option: the claim is the Ethernet source.
    let name = "wireshark_eigrp-for-ipv6-updates.pcap";
    let frames = observations(name);
    assert_eq!(frames.len(), 40);
    let nas: Vec<&Value> = frames.iter().filter(|o| o["op"] == "neighbor_advertisement").collect();
    assert_eq!(nas.len(), 20);
    assert!(nas.iter().all(|o| o["lladdr"].is_null()), "no TLLA");
    let events = replay(name);
    let bindings: BTreeSet<(&str, &str)> = events.ip_macs("new_binding").into_iter().collect();
    assert_eq!(
        bindings,
        [
            ("fe80::c600:3aff:fe44:0", "c4:00:3a:44:00:00"),
            ("fe80::c601:3aff:fe44:0", "c4:01:3a:44:00:00"),
            ("fe80::c602:3aff:fe44:0", "c4:02:3a:44:00:00"),
        ]
        .into()
    );
    assert_eq!(events.0.len(), 3, "bindings only: {:#?}", events.0);
}

const HSRP: &str = "packetlife_gratuitous_arp_hsrp.pcap";

#[test]
fn hsrp_virtual_mac_announcements_are_gratuitous_only() {
    let events = replay(HSRP);
    assert_eq!(events.ip_macs("gratuitous"), [("10.0.0.6", "00:00:0c:07:ac:01"); 6]);
    assert_eq!(events.ip_macs("new_binding"), [("10.0.0.6", "00:00:0c:07:ac:01")]);
    assert_eq!(events.0.len(), 7);
    assert!(events.alarms().is_empty(), "{:?}", events.alarms());
}

#[test]
fn dot1q_events_carry_vlan_123_and_the_two_announcements() {
    let events = replay("packetlife_ICMP_across_dot1q.pcap");
    assert!(!events.0.is_empty());
    for e in &events.0 {
        assert_eq!(e["vlan"], serde_json::json!([123]), "{e}");
    }
    let announced =
        [("192.168.123.1", "00:19:06:ea:b8:c1"), ("192.168.123.2", "00:18:73:de:57:c1")];
    assert_eq!(events.ip_macs("gratuitous"), announced);
    assert_eq!(events.ip_macs("new_binding"), announced);
    // The request and reply each way afterwards are answered at once.
    assert!(events.alarms().is_empty(), "{:?}", events.alarms());
}

// ------------------------------------------------------------ Linux cooked capture

const LINUX_SLL: &str = "zeek_linuxsll-arp.pcap";

#[test]
fn linux_sll_unowned_ip_outside_any_pool_is_not_unanswered() {
    // 10.1.10.1 never had an owner and no pool lists it: nothing to watch.
    let events = replay(LINUX_SLL);
    assert_eq!(events.count("unanswered"), 0);
    assert!(events.alarms().is_empty(), "{:?}", events.alarms());
    assert_eq!(
        events.ip_macs("gratuitous"),
        [("192.168.22.81", "00:50:56:8b:3f:0d"); 2],
        "frames 5 and 8"
    );
    assert_eq!(events.count("new_binding"), 3);
}

#[test]
fn linux_sll_pool_ip_nobody_answers_is_unanswered_from_the_second_request() {
    // 10.1.10.100 asks for 10.1.10.1 about once a second (frames 2, 3, 4, ...). The request of
    // frame 2 times out at frame 3; the one of frame 3 times out 1 s (reply_timeout) after it,
    // the second in a row: `unanswered` starts then, dated at that deadline. The later requests
    // are evidence within the report interval (no `ongoing`); the capture ends before the quiet
    // window (no `end`).
    let frames = observations(LINUX_SLL);
    let events =
        replay_config(LINUX_SLL, "[[pools]]\nname = \"gateway\"\ncidrs = [\"10.1.10.1/32\"]\n");
    let unanswered = events.of("unanswered");
    assert_eq!(unanswered.len(), 1, "{unanswered:?}");
    let e = unanswered[0];
    assert_eq!((e["state"].as_str(), e["ip"].as_str()), (Some("start"), Some("10.1.10.1")));
    assert_eq!(e["severity"], "critical");
    assert_eq!(e["count"], 2);
    assert_eq!(
        (e["requester_mac"].as_str(), e["requester_ip"].as_str()),
        (Some("00:50:56:8b:cf:fa"), Some("10.1.10.100"))
    );
    assert_eq!(e["pool"], "gateway");
    assert_eq!(e["iface"], "zeek_linuxsll-arp");
    assert!(e.get("mac").is_none(), "10.1.10.1 never had an owner: {e}");
    assert_eq!(frames[2]["tpa"], "10.1.10.1");
    assert_eq!(timestamp(&e["ts"]), timestamp(&frames[2]["ts"]) + Duration::from_secs(1));
    assert_eq!(events.alarms(), ["unanswered"]);
}

// ------------------------------------------------------------ benign captures, malformed ones

#[test]
fn benign_captures_raise_no_multi_responder_owner_change_or_flapping() {
    for name in [
        WINDOWS,
        "packetlife_gratuitous_arp_hsrp.pcap",
        "packetlife_ICMP_across_dot1q.pcap",
        LINUX_SLL,
        "zeek_snap-arp.pcapng",
    ] {
        let events = replay(name);
        for kind in CONFLICTS {
            assert_eq!(events.count(kind), 0, "{name}: {kind}: {:?}", events.of(kind));
        }
        assert!(events.alarms().is_empty(), "{name}: {:?}", events.alarms());
    }
}

#[test]
fn malformed_only_captures_give_no_events_no_observations_and_count_the_frames() {
    for (name, malformed) in [
        ("zeek_snap-arp.pcapng", 4), // 802.3 + SNAP, htype 6: not Ethernet II ARP
        ("zeek_arp-leak.pcap", 6),   // hlen/plen 255
        ("tcpdump_arp-too-long-tha.pcap", 1),
    ] {
        let run = replay_run(name, None, false);
        assert_eq!(run.stdout, "", "{name}: no events");
        let raw = replay_run(name, None, true);
        assert_eq!(raw.stdout, "", "{name}: no observations");
        let summary = format!("arp=0 ndp=0 other=0 malformed={malformed} ");
        for stderr in [&run.stderr, &raw.stderr] {
            assert!(stderr.contains(&summary), "{name}: {stderr}");
        }
    }
}

#[test]
fn fuzzed_capture_learns_bindings_only_from_valid_frames() {
    let name = "tcpdump_arp-oobr_fuzzed.pcap";
    let run = replay_run(name, None, false);
    let events = Events(run.lines());
    let frames = observations(name);
    // Malformed frames are counted, never observed.
    let malformed: u64 = run
        .stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix("malformed="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no malformed count: {}", run.stderr));
    assert!(malformed > 100, "{}", run.stderr);
    assert_eq!(2282 - malformed, frames.len() as u64, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("observations={} ", frames.len())), "{}", run.stderr);
    // Each binding is the sender of an observed frame at that very moment.
    let senders: BTreeSet<(&str, &str, &str)> =
        frames.iter().map(|o| (str_of(&o["ts"]), str_of(&o["spa"]), str_of(&o["sha"]))).collect();
    let bindings = events.of("new_binding");
    assert!(!bindings.is_empty());
    for e in bindings {
        let key = (str_of(&e["ts"]), str_of(&e["ip"]), str_of(&e["mac"]));
        assert!(senders.contains(&key), "learned from no valid frame: {e}");
    }
    // Underneath the bit flips is a capture taken on one host (192.168.0.30): it sees every
    // host's broadcast request for the gateway 192.168.0.1 but only the replies sent to itself.
    // Hosts asking once each, minutes apart, are no outage of the gateway.
    let gateway_unanswered =
        events.of("unanswered").into_iter().filter(|e| e["ip"] == "192.168.0.1").count();
    assert_eq!(gateway_unanswered, 0);
}

// ------------------------------------------------------------ failures

#[test]
fn a_truncated_capture_exits_1_with_one_sentence_naming_the_file() {
    let bytes = fs::read(capture(STORM)).unwrap();
    let cut = TempFile::new(STORM, &bytes[..bytes.len() - 7]);
    let run = arpwatch(&[Path::new("replay"), &cut.0]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let named: Vec<&str> =
        run.stderr.lines().filter(|l| l.contains(&cut.0.display().to_string())).collect();
    assert_eq!(named.len(), 1, "{}", run.stderr);
    assert!(named[0].contains("truncated"), "{}", run.stderr);
    // What the file held up to the damage went through the engine.
    assert!(run.stdout.contains("new_binding"), "{}", run.stdout);
    assert_eq!(
        run.stderr.lines().last(),
        Some("arpwatch: 1 of 1 captures could not be read to their end (named above)")
    );
}

#[test]
fn a_damaged_capture_in_the_middle_is_named_and_the_captures_after_it_are_replayed() {
    let storm = fs::read(capture(STORM)).unwrap();
    let cut = TempFile::new("cut.pcap", &storm[..3000]);
    let noise = TempFile::new("noise.pcap", b"this is not a capture");
    let (first, last) = (capture(HSRP), capture(LINUX_SLL));
    let args = [
        Path::new("replay"),
        &first,
        &cut.0,
        &noise.0,
        &last,
        "--raw".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ];
    let run = arpwatch(&args);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    // Every observation of every readable file, those of the damaged one up to the damage.
    let ifaces: Vec<String> = run.lines().iter().map(|o| str_of(&o["iface"]).to_owned()).collect();
    let count = |iface: &str| ifaces.iter().filter(|i| *i == iface).count();
    assert_eq!(
        (count("packetlife_gratuitous_arp_hsrp"), count("cut"), count("zeek_linuxsll-arp")),
        (6, 39, 12),
        "{ifaces:?}"
    );
    assert_eq!(ifaces.len(), 6 + 39 + 12);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "arpwatch: {} is truncated or damaged: it ends inside the record after frame 39",
                cut.0.display()
            ),
            format!(
                "arpwatch: {} is not a pcap or pcapng capture: it starts with 74 68 69 73",
                noise.0.display()
            ),
            format!(
                "arpwatch: {}: frames=6 arp=6 ndp=0 other=0 malformed=0 unsupported_link_type=0",
                first.display()
            ),
            format!(
                "arpwatch: {}: frames=12 arp=12 ndp=0 other=0 malformed=0 unsupported_link_type=0",
                last.display()
            ),
            "arpwatch: 2 of 4 captures could not be read to their end (named above)".to_owned(),
        ]
    );
}

#[test]
fn a_missing_capture_exits_1_naming_it() {
    let missing = captures_dir().join("no-such-capture.pcap");
    let run = arpwatch(&[Path::new("replay"), &missing]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains(&missing.display().to_string()), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn an_invalid_config_exits_2_naming_the_file_and_the_key() {
    let config = TempFile::new("bad.toml", b"[thresholds]\nstorm_rate_per_mac = \"fast\"\n");
    let run = arpwatch(&[Path::new("replay"), &capture(ARPSPOOF), "--config".as_ref(), &config.0]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let stderr = run.stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&config.0.display().to_string()), "{stderr}");
    assert!(stderr.contains("thresholds.storm_rate_per_mac"), "{stderr}");
    assert_eq!(run.stdout, "", "no replay with a bad configuration");
}

#[test]
fn a_cap_out_of_its_range_exits_2_naming_the_key_never_crashes() {
    // These values once panicked (capacity overflow, exit 101) and aborted (allocation failure,
    // exit 134).
    for huge in ["9223372036854775807", "20000000000"] {
        let text = format!("[caps]\nmax_macs_per_ip = {huge}\n");
        let config = TempFile::new("caps.toml", text.as_bytes());
        let run =
            arpwatch(&[Path::new("replay"), &capture(ARPSPOOF), "--config".as_ref(), &config.0]);
        assert_eq!(run.code, Some(2), "{huge}: {}", run.stderr);
        let stderr = run.stderr.trim_end();
        assert_eq!(
            stderr,
            format!(
                "arpwatch: config {}: caps.max_macs_per_ip: {huge} is too large (at most 256)",
                config.0.display()
            )
        );
    }
}

#[test]
fn every_config_error_is_one_short_sentence_naming_the_file_and_the_key() {
    let long = "x".repeat(1_000_000);
    let cases: Vec<(String, &str)> = vec![
        (format!("[[pools]]\nname = \"{long}\"\ncidrs = [\"192.0.2.1\"]\n"), "pools[0].name"),
        (format!("[[pools]]\nname = \"a\"\ncidrs = [\"{long}\"]\n"), "pools[0].cidrs[0]"),
        (
            format!("[[pools]]\nname = \"a\"\ncidrs = [\"192.0.2.1\"]\nmacs = [\"{long}\"]\n"),
            "pools[0].macs[0]",
        ),
        (format!("[thresholds]\nreply_window = \"{long}\"\n"), "thresholds.reply_window"),
        (
            format!("[thresholds]\nstorm_rate_per_mac = \"{long}\"\n"),
            "thresholds.storm_rate_per_mac",
        ),
        (format!("[caps]\n{long} = 1\n"), "caps"),
        ("[[pools]]\nname = \"a\"\n".to_owned(), "pools[0]"),
        ("[thresholds]\nflap_count = 1000\n".to_owned(), "thresholds.flap_count"),
        ("[caps]\nmax_tracked_ips = -1\n".to_owned(), "caps.max_tracked_ips"),
        ("[thresholds\n".to_owned(), "line 1"),
        ("full_view = true\nfull_view = false\n".to_owned(), "line 2"),
        (format!("# {long}\n").repeat(3), "file"),
    ];
    for (text, key) in cases {
        let config = TempFile::new("arpwatch.toml", text.as_bytes());
        let run =
            arpwatch(&[Path::new("replay"), &capture(ARPSPOOF), "--config".as_ref(), &config.0]);
        let stderr = run.stderr.trim_end();
        assert_eq!(run.code, Some(2), "{key}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{key}: {stderr}");
        let prefix = format!("arpwatch: config {}: {key}", config.0.display());
        assert!(stderr.starts_with(&prefix), "{key}: {stderr}");
        assert!(stderr.len() < prefix.len() + 500, "{key}: {} bytes: {stderr}", stderr.len());
    }
}

// ------------------------------------------------------------ standard input

#[test]
fn a_capture_from_a_pipe_replays_as_from_its_file() {
    for name in [HSRP, WINDOWS, SANDERS] {
        let bytes = fs::read(capture(name)).unwrap();
        // Standard input is called `stdin`; a copy of that name gives the same interfaces.
        let extension = Path::new(name).extension().unwrap().to_str().unwrap();
        let copy = TempFile::new(&format!("stdin.{extension}"), &bytes);
        for raw in [false, true] {
            let mut args = vec![Path::new("replay"), &copy.0, "--format".as_ref(), "json".as_ref()];
            if raw {
                args.push("--raw".as_ref());
            }
            let from_file = arpwatch(&args);
            assert_eq!(from_file.code, Some(0), "{name}: {}", from_file.stderr);
            assert!(!from_file.stdout.is_empty(), "{name}");
            let copy_name = copy.0.display().to_string();
            for (stdin_arg, shown) in [("-", "stdin"), ("/dev/stdin", "/dev/stdin")] {
                args[1] = Path::new(stdin_arg);
                let from_pipe = arpwatch_fed(&args, bytes.clone());
                assert_eq!(from_pipe.code, Some(0), "{name} {stdin_arg}: {}", from_pipe.stderr);
                assert_eq!(from_pipe.stdout, from_file.stdout, "{name} {stdin_arg} raw={raw}");
                assert_eq!(
                    from_pipe.stderr,
                    from_file.stderr.replace(&copy_name, shown),
                    "{name} {stdin_arg}"
                );
            }
        }
    }
}

#[test]
fn a_pipe_is_replayed_as_it_arrives() {
    let bytes = fs::read(capture(HSRP)).unwrap();
    // The pcap header and the first record (its length at bytes 8..12 of the record header).
    let first_len = 24 + 16 + u32::from_le_bytes(bytes[32..36].try_into().unwrap()) as usize;
    let args = ["replay", "-", "--raw", "--format", "json"].map(Path::new);
    let mut child = arpwatch_command(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the arpwatch binary runs");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, line) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            if lines.send(l.unwrap()).is_err() {
                break;
            }
        }
    });
    stdin.write_all(&bytes[..first_len]).unwrap();
    stdin.flush().unwrap();
    let first = line.recv_timeout(Duration::from_secs(20));
    // Whatever happened, let the process finish before judging.
    stdin.write_all(&bytes[first_len..]).unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    reader.join().unwrap();
    let first = first.unwrap_or_else(|e| panic!("no line for the first frame ({e}): {stderr}"));
    assert!(first.contains("\"ts\":\"2012-05-16T14:21:03.222329Z\""), "{first}");
    assert!(status.success(), "{stderr}");
    assert_eq!(line.iter().count(), 5, "the other five frames");
}

#[test]
fn standard_input_is_read_once() {
    let run = arpwatch(&[Path::new("replay"), Path::new("-"), Path::new("-")]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_eq!(run.stderr.trim_end(), "arpwatch: replay can read standard input (-) only once");
}

/// A classic pcap (Ethernet, microseconds) of `frames`, each (seconds since the capture began,
/// bytes).
fn pcap(frames: impl IntoIterator<Item = (f64, Vec<u8>)>) -> Vec<u8> {
    const START_SECS: u64 = 1_790_000_000;
    let mut file = Vec::new();
    for field in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 1] {
        file.extend(field.to_le_bytes());
    }
    for (secs, bytes) in frames {
        let micros = (secs * 1e6).round() as u64;
        let len = bytes.len() as u32;
        for field in
            [(START_SECS + micros / 1_000_000) as u32, (micros % 1_000_000) as u32, len, len]
        {
            file.extend(field.to_le_bytes());
        }
        file.extend(bytes);
    }
    file
}

#[test]
fn a_spoofing_flood_collapses_to_its_budget_and_a_storm_while_its_anomalies_stay_one_by_one() {
    use arpwatch_core::testkit::frames::ArpFrame;
    let host = |n: u32| -> ([u8; 6], [u8; 4]) {
        let [_, a, b, c] = n.to_be_bytes();
        ([2, 0, 0, a, b, c], [10, a, b, c])
    };
    // 40 000 announcements in 2 s, each from a new MAC for a new IP (80 000 informational
    // events), with anomalies planted among them and one claim of a pool IP.
    let mut frames: Vec<(f64, Vec<u8>)> = (1..=40_000u32)
        .map(|n| {
            let (mac, ip) = host(n);
            (f64::from(n) * 0.000_05, ArpFrame::gratuitous(2, mac, ip).padded().bytes())
        })
        .collect();
    let (x, y, z) = ([2, 0, 0, 0xaa, 0, 1], [2, 0, 0, 0xaa, 0, 2], [2, 0, 0, 0xaa, 0, 3]);
    let (client, client_ip) = ([2, 0, 0, 0xcc, 0, 1], [198, 51, 100, 99]);
    let planted = [
        // X holds 192.0.2.50, then Y announces it: an owner change.
        (0.5, ArpFrame::gratuitous(2, x, [192, 0, 2, 50])),
        (1.0, ArpFrame::gratuitous(2, y, [192, 0, 2, 50])),
        // X and Y answer the client for 198.51.100.7: a multi-responder.
        (1.5, ArpFrame::reply(x, [198, 51, 100, 7], client, client_ip)),
        (1.5001, ArpFrame::reply(y, [198, 51, 100, 7], client, client_ip)),
        // Z probes 192.0.2.50, bound to Y: a probe conflict.
        (1.7, ArpFrame::request(z, [0, 0, 0, 0], [192, 0, 2, 50])),
        // Z announces an IP of the pool: never summarised.
        (1.9, ArpFrame::gratuitous(2, z, [203, 0, 113, 5])),
    ];
    frames.extend(planted.into_iter().map(|(t, f)| (t, f.padded().bytes())));
    frames.sort_by(|a, b| a.0.total_cmp(&b.0));
    let capture = TempFile::new("flood.pcap", &pcap(frames));
    let replay = |config: &str| {
        let config = TempFile::new("arpwatch.toml", config.as_bytes());
        let args = [
            Path::new("replay"),
            &capture.0,
            "--format".as_ref(),
            "json".as_ref(),
            "--config".as_ref(),
            &config.0,
        ];
        let run = arpwatch(&args);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run
    };
    let pool = "[[pools]]\nname = \"vips\"\ncidrs = [\"203.0.113.0/28\"]\n";

    let unlimited =
        Events(replay(&format!("{pool}[thresholds]\ninfo_rate_per_iface = 0\n")).lines());
    assert!(unlimited.0.len() > 80_000, "{}", unlimited.0.len());

    let run = replay(pool);
    let events = Events(run.lines());
    // The default budget: 500 at once, then 20 a second of capture time.
    let informational = events.0.iter().filter(|e| e["severity"] == "info").count();
    assert!((500..=500 + 2 * 20 + 2).contains(&informational), "{informational}");
    assert!(events.0.len() < 600, "{} lines", events.0.len());
    for kind in ["owner_change", "multi_responder", "probe_conflict"] {
        assert_eq!(events.count(kind), unlimited.count(kind), "{kind}");
        assert_eq!(events.count(kind), 1, "{kind}");
    }
    assert_eq!(events.alarms(), unlimited.alarms(), "the same anomalies, in the same order");
    let pool_ip = |kind| events.of(kind).iter().filter(|e| e["ip"] == "203.0.113.5").count();
    assert_eq!((pool_ip("new_binding"), pool_ip("gratuitous")), (1, 1));

    // The storm started when the burst was spent, and carries the summary.
    let storms = events.of("storm");
    assert_eq!(events.states("storm"), ["start"], "{storms:?}");
    let start = storms[0];
    assert_eq!((start["scope"].as_str(), start["ip"].as_str()), (Some("iface"), Some("0.0.0.0")));
    assert_eq!(start["summarised_since"], start["first_seen"]);
    // Frame 251 spent what was left of the burst: its two events are the first summarised.
    let summary = [&start["summarised_new_binding"], &start["summarised_gratuitous"]];
    assert_eq!(summary, [1, 1]);
    assert_eq!(start["sample_macs"], serde_json::json!(["02:00:00:00:00:fb"]));
    let summarised: u64 = run
        .stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix("summarised_events="))
        .expect("the engine's summary names the events summarised")
        .parse()
        .unwrap();
    assert_eq!(
        summarised as usize + informational,
        unlimited.0.iter().filter(|e| e["severity"] == "info").count()
    );
}
