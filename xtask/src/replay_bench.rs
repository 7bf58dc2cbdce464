//! The replay benchmark of `cargo xtask bench`: three million-frame pcaps generated here with the
//! testkit's frame builders (a healthy busy segment, a spoofing flood, a million distinct
//! claims), each replayed by the release `arpwatch replay`, the flood also with `--raw`, side by
//! side with `tcpdump -nr` of the healthy one. Wall and user+system CPU time, best of
//! [`RUNS`], output to /dev/null.
//!
//! tcpdump reads only the healthy capture: it resolves every MAC through a name cache that is
//! quadratic in distinct MACs, so a million of them would take it hours.

use anyhow::{bail, Context, Result};
use arpwatch_core::testkit::frames::ArpFrame;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::storm::wait_with_rusage;

/// Frames per capture.
const FRAMES: u32 = 1_000_000;
/// Hosts of the healthy segment.
const HOSTS: u32 = 1000;
/// Each replay is timed this many times; the best counts.
const RUNS: usize = 3;
/// The captures' first timestamp (2026-11-21T10:00:00Z); frames follow 1 µs apart.
const START_SECS: u32 = 1_795_255_200;

/// What a generated capture holds.
#[derive(Clone, Copy)]
enum Capture {
    /// `HOSTS` hosts asking for each other (50 %), answering (45 %) and announcing themselves
    /// with a gratuitous reply (5 %).
    Healthy,
    /// Every frame a gratuitous reply from a new MAC for a new IP.
    Flood,
    /// Every frame a reply claiming a new IP, from one of `HOSTS` MACs.
    Claims,
}

impl Capture {
    fn name(self) -> &'static str {
        match self {
            Capture::Healthy => "healthy",
            Capture::Flood => "flood",
            Capture::Claims => "claims",
        }
    }

    fn frame(self, i: u32, random: &mut SplitMix) -> ArpFrame {
        match self {
            Capture::Healthy => {
                let (h, o) = (random.below(HOSTS), random.below(HOSTS));
                match random.below(100) {
                    0..50 => ArpFrame::request(mac(h), host_ip(h), host_ip(o)),
                    50..95 => ArpFrame::reply(mac(o), host_ip(o), mac(h), host_ip(h)),
                    _ => ArpFrame::gratuitous(2, mac(h), host_ip(h)),
                }
            }
            // Multiplying by an odd number permutes 24-bit values: every IP is new, in no order.
            Capture::Flood => {
                ArpFrame::gratuitous(2, mac(i), host_ip(i.wrapping_mul(0x9e_3779) & 0xff_ffff))
            }
            Capture::Claims => {
                // Claimed IPs from 10.128.0.0 on, apart from the hosts' own.
                let (h, asker) = (i % HOSTS, (i + 1) % HOSTS);
                ArpFrame::reply(mac(h), host_ip(i | 1 << 23), mac(asker), host_ip(asker))
            }
        }
        .padded()
    }
}

/// A locally administered MAC per number.
fn mac(n: u32) -> [u8; 6] {
    let [_, a, b, c] = n.to_be_bytes();
    [0x02, 0, 0xbe, a, b, c]
}

/// Host `n`'s IPv4 address (or the `n`th claimed one), in 10.0.0.0/8: the documentation ranges
/// hold too few, and these addresses exist only in the file.
fn host_ip(n: u32) -> [u8; 4] {
    let [_, a, b, c] = n.to_be_bytes();
    [10, a, b, c]
}

/// A small deterministic generator (SplitMix64): the same captures on every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u32) -> u32 {
        (((self.next() >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// Writes the capture as a classic microsecond pcap (Ethernet).
fn generate(capture: Capture, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    // Magic, version 2.4, zone, sigfigs, snapshot length, link type 1 (Ethernet).
    for field in [0xa1b2_c3d4, 0x0004_0002, 0, 0, 65_535, 1u32] {
        out.write_all(&field.to_le_bytes())?;
    }
    let mut random = SplitMix(u64::from(FRAMES));
    let mut frame = [0u8; 64];
    for i in 0..FRAMES {
        let len = capture.frame(i, &mut random).write_to(&mut frame) as u32;
        for field in [START_SECS + i / 1_000_000, i % 1_000_000, len, len] {
            out.write_all(&field.to_le_bytes())?;
        }
        out.write_all(&frame[..len as usize])?;
    }
    out.flush()?;
    Ok(())
}

/// The wall and CPU seconds of one run of `program args`, output to /dev/null.
fn time(program: &Path, args: &[OsString]) -> Result<(f64, f64)> {
    let started = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("could not start {}", program.display()))?;
    let (status, cpu_s, _) = wait_with_rusage(child.id())?;
    let elapsed = started.elapsed().as_secs_f64();
    if status != 0 {
        bail!("{} {args:?} failed (wait status {status})", program.display());
    }
    Ok((elapsed, cpu_s))
}

/// tcpdump, installed from Debian when missing.
fn ensure_tcpdump() -> Result<PathBuf> {
    let found = ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"].map(PathBuf::from);
    if let Some(path) = found.iter().find(|p| p.exists()) {
        return Ok(path.clone());
    }
    eprintln!("xtask: installing tcpdump (the anchor of the replay benchmark)");
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "tcpdump"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("could not start apt-get")?;
    match found.into_iter().find(|p| p.exists()) {
        Some(path) if status.success() => Ok(path),
        _ => bail!("apt-get install tcpdump failed ({status})"),
    }
}

/// Generates the captures into `dir` and times every replay and tcpdump, best of [`RUNS`]
/// rounds, each round running every one of them once (so a slow spell of the machine hits all
/// alike).
pub fn run(arpwatch_bin: &Path, dir: &Path) -> Result<Value> {
    let tcpdump = ensure_tcpdump()?;
    std::fs::create_dir_all(dir)?;
    // What to time: the capture, whether `--raw`, the program and its arguments.
    let mut jobs: Vec<(Capture, bool, &Path, Vec<OsString>)> = Vec::new();
    for capture in [Capture::Healthy, Capture::Flood, Capture::Claims] {
        let path = dir.join(format!("replay-{}.pcap", capture.name()));
        eprintln!("xtask: replay: generating {}", path.display());
        generate(capture, &path)?;
        jobs.push((capture, false, arpwatch_bin, vec!["replay".into(), path.clone().into()]));
        if let Capture::Flood = capture {
            let args = vec!["replay".into(), "--raw".into(), path.clone().into()];
            jobs.push((capture, true, arpwatch_bin, args));
        }
        if let Capture::Healthy = capture {
            jobs.push((capture, false, &tcpdump, vec!["-nr".into(), path.into()]));
        }
    }
    let mut best = vec![(f64::INFINITY, f64::INFINITY); jobs.len()];
    for round in 1..=RUNS {
        eprintln!("xtask: replay: round {round} of {RUNS}");
        for ((_, _, program, args), best) in jobs.iter().zip(best.iter_mut()) {
            let (wall, cpu) = time(program, args)?;
            *best = (best.0.min(wall), best.1.min(cpu));
        }
    }
    let mut replays = Vec::new();
    let mut tcpdump_time = Value::Null;
    for ((capture, raw, program, _), (wall, cpu)) in jobs.iter().zip(best) {
        let timing = json!({ "wall_s": wall, "cpu_s": cpu });
        if *program == tcpdump.as_path() {
            tcpdump_time = timing;
        } else {
            let mut timing = timing;
            timing["capture"] = json!(capture.name());
            timing["raw"] = json!(raw);
            replays.push(timing);
        }
    }
    Ok(
        json!({ "frames": FRAMES, "runs": RUNS, "replays": replays, "tcpdump_healthy": tcpdump_time }),
    )
}

/// The generated table: each replay's time and its ratio to the healthy replay, and tcpdump's.
pub fn render(r: &Value) -> String {
    let seconds = |v: &Value| v.as_f64().map_or_else(|| "–".into(), |x| format!("{x:.3}"));
    let ratio = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    };
    let replays = r["replays"].as_array().cloned().unwrap_or_default();
    let base = replays
        .iter()
        .find(|t| t["capture"] == "healthy" && t["raw"] == false)
        .cloned()
        .unwrap_or_default();
    let mut md = String::from("\n### Replay of generated captures, side by side with tcpdump\n\n");
    md += &format!(
        "Method: {} frames per pcap, generated by xtask with the testkit's frame builders: \
         `healthy` ({HOSTS} hosts asking for each other, answering, 5 % announcing themselves), \
         `flood` (every frame a gratuitous reply from a new MAC for a new IP), `claims` (every \
         frame a reply claiming a new IP). `arpwatch replay` (release build) and `tcpdump -nr` \
         write to /dev/null; best of {} interleaved rounds (each runs every one once), wall time and user+system CPU (wait4). tcpdump reads \
         only the healthy capture (its MAC name cache is quadratic in distinct MACs). Ratios are \
         to the healthy replay's wall time (the issue's targets: flood <= 2, flood `--raw` <= \
         1.5, tcpdump >= 10).\n\n",
        r["frames"], r["runs"]
    );
    md += "| run | wall s | CPU s | wall / healthy replay |\n|---|---:|---:|---:|\n";
    for t in &replays {
        let raw = if t["raw"] == true { " --raw" } else { "" };
        md += &format!(
            "| `arpwatch replay{raw}` {} | {} | {} | {} |\n",
            t["capture"].as_str().unwrap_or("?"),
            seconds(&t["wall_s"]),
            seconds(&t["cpu_s"]),
            ratio(&t["wall_s"], &base["wall_s"])
        );
    }
    let td = &r["tcpdump_healthy"];
    md += &format!(
        "| `tcpdump -nr` healthy | {} | {} | {} |\n",
        seconds(&td["wall_s"]),
        seconds(&td["cpu_s"]),
        ratio(&td["wall_s"], &base["wall_s"])
    );
    md
}
