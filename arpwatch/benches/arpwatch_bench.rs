//! The in-process measurements of `cargo xtask bench`, one per invocation so each runs in a
//! process of its own (memory figures are the process's): `kernel`, `engine`, `memory-million`
//! (which runs its IPv6 half, `memory-million-ipv6`, in a child process of its own),
//! `memory-flood`. Each prints one JSON object on stdout; `cargo xtask bench` collects them.
//!
//! Run one by hand with `cargo bench -p arpwatch --bench arpwatch_bench -- kernel` (root for
//! `kernel`).

use anyhow::{bail, Context, Result};
use arpwatch::drain_ring;
use arpwatch::{KernelProbe, DEFAULT_DEDUP_INTERVAL, EBPF_OBJECT};
use arpwatch_common::programs;
use arpwatch_core::config::EngineConfig;
use arpwatch_core::engine::Engine;
use arpwatch_core::observation::NaFlags;
use arpwatch_core::observation::{Observation, Timestamp};
use arpwatch_core::testkit::frames::{
    ipv4_tcp_frame, ipv6_bytes, ipv6_tcp_frame, padded, ArpFrame, NdFrame, BROADCAST, TPID_8021Q,
};
use arpwatch_core::testkit::observations::Frame;
use aya::programs::{TestRun, TestRunOptions, Xdp};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

fn main() {
    // `cargo bench` adds `--bench`; the mode is the first other argument.
    let mode = std::env::args().skip(1).find(|a| !a.starts_with("--")).unwrap_or_default();
    let result = match mode.as_str() {
        "kernel" => kernel(),
        "engine" => engine_throughput(),
        "memory-million" => memory_million(),
        "memory-million-ipv6" => million_tracked(Family::Ipv6, Raised::Ips),
        "memory-million-senders" => million_tracked(Family::Ipv4, Raised::IpsAndSenders),
        "memory-million-senders-ipv6" => million_tracked(Family::Ipv6, Raised::IpsAndSenders),
        "memory-flood" => memory_flood(),
        other => Err(anyhow::anyhow!(
            "unknown mode {other:?}: kernel, engine, memory-million or memory-flood"
        )),
    };
    match result {
        Ok(value) => println!("{value}"),
        Err(err) => {
            eprintln!("arpwatch_bench {mode}: {err:#}");
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-packet kernel cost (BPF_PROG_TEST_RUN)

/// Rounds of the interleaved measurement; the median of them is reported.
const KERNEL_ROUNDS: usize = 7;
/// Runs per test-run call for the floor and the non-ARP path: about half a second per call, so
/// the wall clock's granularity and the syscall's own cost stay far below 1 %.
const REPEAT_NON_ARP: u32 = 20_000_000;
/// Runs per call for suppressed ARP repeats (about 140 ns each here).
const REPEAT_ARP_QUIET: u32 = 2_000_000;
/// Runs per call for paths that emit a record each time: bounded by the ring (128 MiB holds
/// 1 118 481 records of 120 bytes: 112 and the ring's 8-byte header).
const REPEAT_EMITTING: u32 = 1_000_000;
const EMIT_RING_BYTES: u32 = 128 << 20;
/// The ring of the programs that only suppress (never filled).
const QUIET_RING_BYTES: u32 = 1 << 20;
/// Runs of the call that measures what a test run costs besides its runs: with more than one
/// run the kernel swaps the program into the XDP dispatcher and back, each time waiting for an
/// RCU grace period (10-20 ms a call here, in steps of a tick), which the wall clock of every
/// call includes and the kernel's own figure does not.
const REPEAT_CALL_COST: u32 = 2;

fn mac(last: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, last]
}

/// One program and frame to time.
struct KernelCase {
    name: &'static str,
    what: &'static str,
    program: usize,
    /// The index of the floor case this one is compared with: the empty program on an IPv4 or an
    /// IPv6 frame.
    floor: usize,
    frame: Vec<u8>,
    repeat: u32,
    /// Per-round figures: the wall-clock ns of the whole call, and the kernel's own (integer)
    /// average per run.
    wall_ns: Vec<f64>,
    kernel_ns: Vec<f64>,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn kernel() -> Result<Value> {
    // The floor: the empty program of the same object, loaded on its own.
    let mut floor_object =
        aya::EbpfLoader::new().load(EBPF_OBJECT).context("load the kernel object (root?)")?;
    let floor: &mut Xdp =
        floor_object.program_mut(programs::XDP_FLOOR).context("no floor program")?.try_into()?;
    floor.load()?;
    // Repeats of one frame within the interval: the steady state of a storm of identical frames.
    let suppressing = KernelProbe::load_with_dedup(QUIET_RING_BYTES, DEFAULT_DEDUP_INTERVAL)?;
    // A 1 ns interval expires between runs: every run emits a record and does the full
    // de-duplication bookkeeping, the cost of a frame that is not a repeat.
    let mut emitting = KernelProbe::load_with_dedup(EMIT_RING_BYTES, Duration::from_nanos(1))?;
    let mut emit_ring = emitting.take_ring()?;
    let floor: &Xdp =
        floor_object.program(programs::XDP_FLOOR).context("no floor program")?.try_into()?;
    let programs: [&Xdp; 3] = [floor, suppressing.xdp(), emitting.xdp()];
    const FLOOR: usize = 0;
    const SUPPRESSING: usize = 1;
    const EMITTING: usize = 2;

    // Padded to the Ethernet minimum, as frames are on the wire.
    let request = ArpFrame::request(mac(0x0a), [192, 0, 2, 1], [192, 0, 2, 10]).padded().bytes();
    let reply = ArpFrame::reply(mac(0x0b), [192, 0, 2, 10], mac(0x0a), [192, 0, 2, 1]).padded();
    let tagged = reply.clone().tagged(&[(TPID_8021Q, 100)]).bytes();
    let reply = reply.bytes();
    let ns = NdFrame::solicitation(mac(0x0a), ipv6_bytes("fe80::a"), ipv6_bytes("2001:db8::10"));
    let na = NdFrame::advertisement(
        mac(0x0b),
        ipv6_bytes("2001:db8::10"),
        mac(0x0a),
        ipv6_bytes("fe80::a"),
    );
    let (ns, na) = (ns.bytes(), na.bytes());
    const FLOOR_IPV4: usize = 0;
    const FLOOR_IPV6: usize = 2;
    let case = |name, what, program, floor, frame: &Vec<u8>, repeat| KernelCase {
        name,
        what,
        program,
        floor,
        frame: frame.clone(),
        repeat,
        wall_ns: Vec::new(),
        kernel_ns: Vec::new(),
    };
    let tcp = padded(ipv4_tcp_frame(mac(1), mac(2)));
    let tcp6 = ipv6_tcp_frame(mac(1), mac(2));
    let mut cases = [
        case(
            "floor_ipv4_tcp",
            "empty XDP_PASS program, IPv4 TCP frame",
            FLOOR,
            FLOOR_IPV4,
            &tcp,
            REPEAT_NON_ARP,
        ),
        case(
            "ipv4_tcp",
            "arpwatch XDP, IPv4 TCP frame (non-ARP path)",
            SUPPRESSING,
            FLOOR_IPV4,
            &tcp,
            REPEAT_NON_ARP,
        ),
        case(
            "floor_ipv6_tcp",
            "empty XDP_PASS program, IPv6 TCP frame",
            FLOOR,
            FLOOR_IPV6,
            &tcp6,
            REPEAT_NON_ARP,
        ),
        case(
            "ipv6_tcp",
            "arpwatch XDP, IPv6 TCP frame (IPv6 non-ND path)",
            SUPPRESSING,
            FLOOR_IPV6,
            &tcp6,
            REPEAT_NON_ARP,
        ),
        case(
            "arp_request_repeat",
            "arpwatch XDP, ARP request, repeat suppressed",
            SUPPRESSING,
            FLOOR_IPV4,
            &request,
            REPEAT_ARP_QUIET,
        ),
        case(
            "arp_reply_repeat",
            "arpwatch XDP, ARP reply, repeat suppressed",
            SUPPRESSING,
            FLOOR_IPV4,
            &reply,
            REPEAT_ARP_QUIET,
        ),
        case(
            "arp_vlan_repeat",
            "arpwatch XDP, 802.1Q-tagged ARP reply, repeat suppressed",
            SUPPRESSING,
            FLOOR_IPV4,
            &tagged,
            REPEAT_ARP_QUIET,
        ),
        case(
            "arp_request_emit",
            "arpwatch XDP, ARP request, emitted to the ring",
            EMITTING,
            FLOOR_IPV4,
            &request,
            REPEAT_EMITTING,
        ),
        case(
            "arp_reply_emit",
            "arpwatch XDP, ARP reply, emitted to the ring",
            EMITTING,
            FLOOR_IPV4,
            &reply,
            REPEAT_EMITTING,
        ),
        case(
            "arp_vlan_emit",
            "arpwatch XDP, 802.1Q-tagged ARP reply, emitted to the ring",
            EMITTING,
            FLOOR_IPV4,
            &tagged,
            REPEAT_EMITTING,
        ),
        case(
            "nd_ns_repeat",
            "arpwatch XDP, Neighbor Solicitation with SLLA, repeat suppressed",
            SUPPRESSING,
            FLOOR_IPV6,
            &ns,
            REPEAT_ARP_QUIET,
        ),
        case(
            "nd_na_repeat",
            "arpwatch XDP, Neighbor Advertisement with TLLA, repeat suppressed",
            SUPPRESSING,
            FLOOR_IPV6,
            &na,
            REPEAT_ARP_QUIET,
        ),
        case(
            "nd_ns_emit",
            "arpwatch XDP, Neighbor Solicitation with SLLA, emitted to the ring",
            EMITTING,
            FLOOR_IPV6,
            &ns,
            REPEAT_EMITTING,
        ),
        case(
            "nd_na_emit",
            "arpwatch XDP, Neighbor Advertisement with TLLA, emitted to the ring",
            EMITTING,
            FLOOR_IPV6,
            &na,
            REPEAT_EMITTING,
        ),
    ];

    // Warm up every path once, then interleave: each round runs every case once, so slow drifts
    // (frequency, other load) hit all cases alike.
    let mut call_cost_ns = Vec::new();
    for round in 0..=KERNEL_ROUNDS {
        let opts = TestRunOptions {
            data_in: Some(&cases[FLOOR_IPV4].frame),
            repeat: REPEAT_CALL_COST,
            ..Default::default()
        };
        let start = Instant::now();
        programs[FLOOR].test_run(opts).context("test run of the call cost")?;
        if round > 0 {
            call_cost_ns.push(start.elapsed().as_nanos() as f64);
        }
        for case in cases.iter_mut() {
            let opts = TestRunOptions {
                data_in: Some(&case.frame),
                repeat: case.repeat,
                ..Default::default()
            };
            let start = Instant::now();
            let result = programs[case.program]
                .test_run(opts)
                .with_context(|| format!("test run {}", case.name))?;
            let wall = start.elapsed();
            if result.return_value != 2 {
                bail!("{} returned {} instead of XDP_PASS", case.name, result.return_value);
            }
            if case.program == EMITTING {
                let drained = drain_ring(&mut emit_ring, |_| Ok::<_, ()>(())).expect("drain");
                if drained.records != case.repeat as usize {
                    bail!(
                        "{}: {} records for {} runs: the ring overflowed",
                        case.name,
                        drained.records,
                        case.repeat
                    );
                }
            }
            if round > 0 {
                case.wall_ns.push(wall.as_nanos() as f64);
                case.kernel_ns.push(result.duration.as_nanos() as f64);
            }
        }
    }
    // Per frame: the wall clock of a call without what the call itself costs, over its runs.
    let call_cost = median(&call_cost_ns);
    let per_frame = |c: &KernelCase| (median(&c.wall_ns) - call_cost) / c.repeat as f64;
    let rows: Vec<Value> = cases
        .iter()
        .map(|c| {
            let wall = per_frame(c);
            let kernel = median(&c.kernel_ns);
            let floor_wall = per_frame(&cases[c.floor]);
            let floor_kernel = median(&cases[c.floor].kernel_ns);
            json!({
                "name": c.name,
                "what": c.what,
                "floor": cases[c.floor].name,
                "repeat": c.repeat,
                "ns_per_frame": wall,
                "ratio_to_floor": wall / floor_wall,
                "kernel_reported_ns": kernel,
                "kernel_reported_ratio": kernel / floor_kernel,
                "rounds_call_wall_ns": c.wall_ns,
            })
        })
        .collect();
    // The programs as the kernel holds them after verification (dead branches removed: what a
    // read-only global turns off at load is not counted) and as JIT-compiled: as measured above,
    // with the kernel's debug log off (no logger here), then loaded again with it on.
    let mut sizes = Vec::new();
    let sizes_of = |probe: &KernelProbe, log: &str, sizes: &mut Vec<Value>| -> Result<()> {
        for (name, info) in [
            ("arpwatch_xdp", probe.xdp().info()?),
            ("arpwatch_tc_egress", probe.tc_egress().info()?),
            ("arpwatch_tc_ingress", probe.tc_ingress().info()?),
        ] {
            sizes.push(json!({
                "program": name,
                "kernel_log": log,
                "xlated_insns": info.size_translated().map(|bytes| bytes / 8),
                "jited_bytes": info.size_jitted(),
            }));
        }
        Ok(())
    };
    sizes_of(&suppressing, "off", &mut sizes)?;
    env_logger::Builder::new()
        .filter_module(arpwatch::KERNEL_LOG_TARGET, log::LevelFilter::Debug)
        .try_init()
        .context("a logger for the kernel's debug log")?;
    let logging = KernelProbe::load_with_dedup(QUIET_RING_BYTES, DEFAULT_DEDUP_INTERVAL)?;
    sizes_of(&logging, "debug", &mut sizes)?;
    Ok(json!({
        "programs": sizes,
        "method": format!(
            "BPF_PROG_TEST_RUN on XDP, {KERNEL_ROUNDS} interleaved rounds after one warm-up, median; \
             ns/frame = (wall-clock time of the test-run syscall − the median cost of a call \
             itself) / repeat (fractional ns), kernel_reported_ns = the kernel's own integer \
             average; a call itself (a test run of {REPEAT_CALL_COST} runs of the empty program) \
             cost {:.1} ms: with more than one run the kernel swaps the program into the XDP \
             dispatcher and back, each time waiting for an RCU grace period",
            call_cost / 1e6
        ),
        "call_cost_ns": call_cost,
        "cases": rows,
    }))
}

// ---------------------------------------------------------------------------------------------
// Engine throughput

/// A small deterministic generator: benchmark inputs must be the same from run to run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn host_mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0x42, b[0], b[1], b[2], b[3]]
}

/// IPv4 address number `n` of 10.0.0.0/8 (in-memory only: these never touch a network).
fn host_ip(n: u32) -> [u8; 4] {
    (0x0a00_0000 | (n & 0x00ff_ffff)).to_be_bytes()
}

/// A steady segment: 1000 hosts and 50 VIPs; clients ask for VIPs and hosts, owners reply, a
/// gratuitous ARP now and then. One observation per microsecond of capture time.
fn realistic_mix(count: usize) -> Vec<Observation> {
    let mut rng = XorShift(0x5eed_0001);
    (0..count)
        .map(|i| {
            let seen = Frame::at(
                Timestamp::from_secs(1_800_000_000).saturating_add(Duration::from_micros(i as u64)),
            );
            let client = (rng.next() % 1000) as u32;
            let target = (rng.next() % 1050) as u32;
            let (target_mac, target_ip) = (host_mac(target), host_ip(target));
            match i % 10 {
                0..=5 => seen.request(host_mac(client), host_ip(client)).asking(target_ip),
                6..=8 => seen.reply(target_mac, target_ip).to(host_mac(client), host_ip(client)),
                _ => seen.reply(target_mac, target_ip).to(BROADCAST, target_ip),
            }
            .build()
        })
        .collect()
}

/// Spoofed random senders: every frame a new MAC and a random IP. Made as they are consumed, so
/// that a memory measurement counts the engine, not its input.
fn random_flood(count: usize, seed: u64) -> impl Iterator<Item = Observation> {
    let mut rng = XorShift(seed);
    (0..count).map(move |i| {
        let seen = Frame::at(
            Timestamp::from_secs(1_800_000_000).saturating_add(Duration::from_micros(i as u64)),
        );
        let bits = rng.next();
        let sha = host_mac(bits as u32);
        let spa = host_ip((bits >> 32) as u32);
        let tpa = host_ip((bits >> 8) as u32);
        // Replies to nobody: a zero target MAC, also as the Ethernet destination.
        if bits & 1 == 0 {
            seen.request(sha, spa).asking(tpa)
        } else {
            seen.reply(sha, spa).to([0; 6], tpa)
        }
        .build()
    })
}

/// Observations per second through a fresh engine, best of `runs` (the least disturbed).
fn throughput(observations: &[Observation], runs: usize) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut events = 0;
    for _ in 0..runs {
        let mut engine = Engine::new(&EngineConfig::default());
        let mut out = Vec::new();
        let mut emitted = 0u64;
        let start = Instant::now();
        for obs in observations {
            engine.observe(obs, &mut out);
            emitted += out.len() as u64;
            out.clear();
        }
        best = best.min(start.elapsed().as_secs_f64());
        events = emitted;
    }
    (observations.len() as f64 / best, events)
}

fn engine_throughput() -> Result<Value> {
    const COUNT: usize = 1_000_000;
    const RUNS: usize = 3;
    let (mix_rate, mix_events) = throughput(&realistic_mix(COUNT), RUNS);
    let flood: Vec<Observation> = random_flood(COUNT, 0x5eed_0002).collect();
    let (flood_rate, flood_events) = throughput(&flood, RUNS);
    Ok(json!({
        "method": format!(
            "{COUNT} pre-built observations through a fresh Engine (default configuration) on one \
             thread, best of {RUNS} runs, std::time::Instant"
        ),
        "realistic_mix_obs_per_s": mix_rate,
        "realistic_mix_events": mix_events,
        "random_flood_obs_per_s": flood_rate,
        "random_flood_events": flood_events,
    }))
}

// ---------------------------------------------------------------------------------------------
// Memory

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[derive(Clone, Copy)]
enum Family {
    Ipv4,
    Ipv6,
}

/// Which caps a million-IP run raises to 1M.
#[derive(Clone, Copy)]
enum Raised {
    /// Only `max_tracked_ips`, as an operator who wants more IPs tracked does: the senders stay
    /// at their default cap. The per tracked IP figure.
    Ips,
    /// `max_tracked_senders` too, and every IP announced twice, so that its MAC is also a tracked
    /// sender (a MAC is tracked from its second frame).
    IpsAndSenders,
}

/// The IPv4 run with only the IP cap raised; under `ipv6` the IPv6 one, and under
/// `with_senders` both again with the sender cap raised too (its IPv6 run under its own
/// `ipv6`). Each other run is a child process, so that none counts memory another left to the
/// allocator.
fn memory_million() -> Result<Value> {
    let mut result = million_tracked(Family::Ipv4, Raised::Ips)?;
    result["ipv6"] = child_run("memory-million-ipv6")?;
    let mut with_senders = child_run("memory-million-senders")?;
    with_senders["ipv6"] = child_run("memory-million-senders-ipv6")?;
    result["with_senders"] = with_senders;
    Ok(result)
}

/// The JSON of this bench run in a child process in `mode`.
fn child_run(mode: &str) -> Result<Value> {
    let child = std::process::Command::new(std::env::current_exe()?)
        .arg(mode)
        .output()
        .with_context(|| format!("running {mode}"))?;
    if !child.status.success() {
        bail!("{mode}: {}", String::from_utf8_lossy(&child.stderr));
    }
    Ok(serde_json::from_slice(&child.stdout)?)
}

/// Address number `n` of 2001:db8::/32.
fn host_ipv6(n: u32) -> IpAddr {
    Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(n)).into()
}

fn million_tracked(family: Family, raised: Raised) -> Result<Value> {
    const IPS: u32 = 1_000_000;
    let mut config = EngineConfig::default();
    // Room for every IP and its one MAC (and, raised too, its sender), so no IP is evicted.
    config.caps.max_tracked_ips = IPS as usize + 1;
    if let Raised::IpsAndSenders = raised {
        config.caps.max_tracked_senders = IPS as usize + 1;
    }
    let (baseline, _) = rss_kib();
    let mut engine = Engine::new(&config);
    let mut out = Vec::new();
    let start = Instant::now();
    for n in 0..IPS {
        let ts =
            Timestamp::from_secs(1_800_000_000).saturating_add(Duration::from_micros(n as u64));
        // Each IP announces itself once from its own MAC: a binding and an owner per IP.
        let announcement = match family {
            Family::Ipv4 => Frame::at(ts).reply(host_mac(n), host_ip(n)).to(BROADCAST, host_ip(n)),
            Family::Ipv6 => {
                let unsolicited = NaFlags { override_: true, ..NaFlags::default() };
                Frame::at(ts).advertise(host_mac(n), host_ipv6(n), unsolicited)
            }
        };
        engine.observe(&announcement, &mut out);
        if let Raised::IpsAndSenders = raised {
            engine.observe(&announcement, &mut out);
        }
        out.clear();
    }
    let elapsed = start.elapsed();
    let (rss, hwm) = rss_kib();
    let stats = engine.stats();
    if stats.tracked_ips < IPS as usize {
        bail!("only {} IPs tracked of {IPS}", stats.tracked_ips);
    }
    let frames = match family {
        Family::Ipv4 => "one gratuitous reply per IP (10.0.0.0/8)",
        Family::Ipv6 => "one unsolicited Neighbor Advertisement (override) per IP (2001:db8::/32)",
    };
    let caps = match raised {
        Raised::Ips => "max_tracked_ips raised to 1M (the senders at their default cap)",
        Raised::IpsAndSenders => {
            "max_tracked_ips and max_tracked_senders raised to 1M, each frame sent twice (a MAC is \
             tracked as a sender from its second frame)"
        }
    };
    Ok(json!({
        "method": format!(
            "{frames} from its own MAC into an engine with {caps}; VmRSS from /proc/self/status"
        ),
        "tracked_ips": stats.tracked_ips,
        "tracked_macs": stats.tracked_macs,
        "tracked_senders": stats.tracked_senders,
        "baseline_rss_kib": baseline,
        "rss_kib": rss,
        "hwm_kib": hwm,
        "bytes_per_ip": (rss.saturating_sub(baseline)) as f64 * 1024.0 / IPS as f64,
        "fill_seconds": elapsed.as_secs_f64(),
    }))
}

fn memory_flood() -> Result<Value> {
    const BATCH: usize = 250_000;
    const BATCHES: usize = 16;
    let config = EngineConfig::default();
    let mut engine = Engine::new(&config);
    let mut out = Vec::new();
    let mut samples = Vec::new();
    let (baseline, _) = rss_kib();
    for b in 0..BATCHES {
        for obs in random_flood(BATCH, 0x5eed_1000 + b as u64) {
            engine.observe(&obs, &mut out);
            out.clear();
        }
        let (rss, _) = rss_kib();
        let stats = engine.stats();
        samples.push(json!({
            "observations": (b + 1) * BATCH,
            "rss_kib": rss,
            "tracked_ips": stats.tracked_ips,
            "tracked_macs": stats.tracked_macs,
            "tracked_senders": stats.tracked_senders,
            "evicted_ips": stats.evictions.ips,
            "pending_requests": stats.pending_requests,
            "active_conditions": stats.active_conditions,
        }));
    }
    let rss_at = |i: usize| samples[i]["rss_kib"].as_u64().unwrap_or(0);
    // Flat means: once the caps are reached (by the middle of the run), RSS stops growing.
    let middle = rss_at(BATCHES / 2 - 1);
    let end = rss_at(BATCHES - 1);
    Ok(json!({
        "method": format!(
            "{} random spoofed observations (new MAC each, random IP and target) into an engine \
             with the default caps ({} IPs, {} senders); VmRSS sampled every {BATCH}",
            BATCH * BATCHES,
            config.caps.max_tracked_ips,
            config.caps.max_tracked_senders
        ),
        "baseline_rss_kib": baseline,
        "samples": samples,
        "growth_second_half_percent": (end as f64 - middle as f64) * 100.0 / middle.max(1) as f64,
    }))
}
