//! Project tasks: build the kernel object with the pinned nightly, build and run arpwatch, run the
//! tests. On a fresh machine it installs what the kernel build needs (the nightly with rust-src and
//! bpf-linker) and refuses to go on when the nightly's LLVM and the linker's LLVM differ.

mod bench;
mod demo;
mod lint;
mod replay_bench;
mod storm;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// The nightly that builds the kernel crate: rustc 1.97 with LLVM 22. A newer nightly carries
/// LLVM 23, which bpf-linker 0.10 cannot link.
const NIGHTLY: &str = "nightly-2026-05-20";
/// bpf-linker 0.10.x loads the invoking rustc's own libLLVM 22; later releases want an external
/// LLVM 23.
const BPF_LINKER_VERSION: &str = "0.10.3";
const BPF_LINKER_LLVM_MAJOR: u32 = 22;
const EBPF_PACKAGE: &str = "arpwatch-ebpf";
const EBPF_TARGET: &str = "bpfel-unknown-none";
/// The cargo feature that turns on the test targets needing root (arpwatch/Cargo.toml).
const PRIVILEGED_TESTS_FEATURE: &str = "arpwatch/privileged-tests";

#[derive(Parser)]
#[command(about = "arpwatch project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the eBPF object (target/bpfel-unknown-none/release/arpwatch-ebpf).
    BuildEbpf,
    /// Build the kernel object and the arpwatch binary (release), then run it with ARGS.
    Run {
        /// Arguments for arpwatch, after `--`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run every benchmark (kernel per-packet cost, storm against Debian's arpwatch, engine
    /// throughput, memory) and write docs/benchmarks.md and target/bench/results.json. Root.
    Bench,
    /// Run only the replay benchmark of `bench` (three generated million-frame captures replayed
    /// by the release binary, and tcpdump) and print its table; docs/benchmarks.md is left alone.
    BenchReplay,
    /// Run only the storm benchmark of `bench` (a switching loop and a spoofing flood through a
    /// veth pair, arpwatch against Debian's arpwatch, which it installs when missing) and print its
    /// table; docs/benchmarks.md is left alone. Root; a minute or two.
    BenchStorm {
        /// Only this flood profile (repeatable; all when absent).
        #[arg(long = "profile", value_enum)]
        profiles: Vec<storm::Profile>,
        /// Only this observer (repeatable; all when absent).
        #[arg(long = "observer", value_enum)]
        observers: Vec<storm::Observer>,
    },
    /// Reproduce the incidents arpwatch is about (IPVS without strictARP, a node answering on two
    /// NICs, a clean failover, flapping, a dead speaker, a foreign device, and the IPv6 ones) in a
    /// namespace lab, one after another, and print what arpwatch reports about each. Builds the
    /// kernel object and the binary first. Root; about a minute; exit status 1 when a scenario did
    /// not report its expected event.
    Demo {
        /// For CI: one verdict line per scenario, and everything arpwatch printed for a failing one.
        #[arg(long)]
        check: bool,
        /// Run only this scenario (repeatable).
        #[arg(long = "scenario", value_name = "NAME",
              value_parser = clap::builder::PossibleValuesParser::new(demo::scenario_names()))]
        scenarios: Vec<String>,
    },
    /// Write the man pages (arpwatch.1, arpwatch-SUBCOMMAND.1) and the bash, zsh and fish
    /// completions, generated from the command line's definition, into OUTDIR laid out like
    /// /usr/share: man/man1/, bash-completion/completions/, zsh/vendor-completions/,
    /// fish/vendor_completions.d/.
    DistDocs {
        /// The directory to write into (created if missing).
        outdir: PathBuf,
    },
    /// Check formatting and run clippy (warnings denied) on every crate, the kernel crate included.
    Lint,
    /// Build everything and run every test: the pure ones (unit, capture replays, metrics over
    /// HTTP) and the privileged ones (kernel programs, namespace labs), with the feature
    /// `arpwatch/privileged-tests`. Root; refuses to start without it.
    Test {
        /// Extra arguments for `cargo test`, after `--` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("xtask: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = workspace_root();
    match cli.task {
        Task::BuildEbpf => build_ebpf(&root),
        Task::Run { args } => {
            let bin = build_arpwatch(&root)?;
            let status = Command::new(&bin)
                .args(&args)
                .status()
                .with_context(|| format!("could not start {}", bin.display()))?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Task::Demo { check, scenarios } => {
            // SAFETY: geteuid has no preconditions and cannot fail.
            if unsafe { libc::geteuid() } != 0 {
                bail!("cargo xtask demo needs root: it builds network namespaces and loads XDP programs");
            }
            let bin = build_arpwatch(&root)?;
            demo::run(&bin, &scenarios, check)
        }
        Task::DistDocs { outdir } => {
            // The library embeds the kernel object, so the generator needs it built.
            build_ebpf(&root)?;
            let outdir = std::env::current_dir()?.join(outdir);
            let mut args: Vec<OsString> =
                ["run", "--quiet", "--package", "arpwatch"].into_iter().map(Into::into).collect();
            args.extend(["--example".into(), "dist-docs".into(), "--".into(), outdir.into()]);
            cargo(&root, args)
        }
        Task::Lint => lint::run(&root),
        Task::Bench => {
            build_ebpf(&root)?;
            bench::run(&root)
        }
        Task::BenchReplay => {
            build_ebpf(&root)?;
            bench::run_replay(&root)
        }
        Task::BenchStorm { profiles, observers } => {
            build_ebpf(&root)?;
            bench::run_storm(&root, &storm::Selection { profiles, observers })
        }
        Task::Test { args } => {
            require_root()?;
            build_ebpf(&root)?;
            let mut test_args: Vec<OsString> = vec!["test".into(), "--workspace".into()];
            test_args.extend(["--exclude".into(), EBPF_PACKAGE.into()]);
            test_args.extend(["--features".into(), PRIVILEGED_TESTS_FEATURE.into()]);
            if !args.is_empty() {
                test_args.push("--".into());
                test_args.extend(args);
            }
            cargo(&root, test_args)
        }
    }
}

/// Builds the kernel object and the release binary (cargo builds only what changed); returns the
/// binary's path.
fn build_arpwatch(root: &Path) -> Result<PathBuf> {
    build_ebpf(root)?;
    cargo(root, ["build", "--release", "--package", "arpwatch"])?;
    Ok(root.join("target/release/arpwatch"))
}

/// Checked before anything is built: the privileged tests would fail one by one, minutes later.
fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "cargo xtask test needs root: the kernel tests load XDP programs (and the labs build \
             network namespaces). Run it as root, or run the pure tests alone with `cargo test`"
        );
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn check(status: ExitStatus, what: &str) -> Result<()> {
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn cargo<I, S>(root: &Path, args: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root)
        .args(&args)
        .status()
        .context("could not start cargo")?;
    check(status, &format!("cargo {}", display_args(&args)))
}

fn display_args(args: &[OsString]) -> String {
    args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
}

/// Output of a command, or `None` if it could not run or failed.
fn output_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn build_ebpf(root: &Path) -> Result<()> {
    ensure_nightly(&["rust-src"])?;
    ensure_bpf_linker()?;
    check_llvm_majors()?;
    // Program BTF lets the verifier's log point at Rust source lines. bpf-linker's default
    // `--bpf-expand-memcpy-in-order` turns every memset (a zeroed field, even 6 bytes) into a
    // call to a byte loop; without it LLVM writes the bytes inline, as it does for memcpy.
    let rustflags =
        ["-Cdebuginfo=2", "-Clink-arg=--btf", "-Clink-arg=--disable-expand-memcpy-in-order"]
            .join("\x1f");
    let status = Command::new("rustup")
        .current_dir(root.join(EBPF_PACKAGE))
        .args(["run", NIGHTLY, "cargo", "build", "--release", "--target", EBPF_TARGET])
        .args(["-Z", "build-std=core", "--target-dir"])
        .arg(root.join("target"))
        // The outer `cargo xtask` sets these for the stable toolchain; the nightly build must not
        // inherit them.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .status()
        .context("could not start rustup")?;
    check(status, "building the eBPF object")
}

/// Installs the pinned nightly with `components` (`rust-src` for the kernel build, `clippy` for
/// the lint) unless they are all there.
fn ensure_nightly(components: &[&str]) -> Result<()> {
    let installed = output_of(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))
    .unwrap_or_default();
    // Listed as `rust-src`, or with the host triple: `clippy-x86_64-unknown-linux-gnu`.
    let has = |c: &str| {
        installed.lines().map(str::trim).any(|l| l == c || l.starts_with(&format!("{c}-")))
    };
    if components.iter().all(|c| has(c)) {
        return Ok(());
    }
    let list = components.join(", ");
    eprintln!("xtask: installing {NIGHTLY} with {list} (needed for the kernel crate)");
    let mut args = vec!["toolchain", "install", NIGHTLY, "--profile", "minimal"];
    for c in components {
        args.extend(["--component", c]);
    }
    let status = Command::new("rustup")
        .args(&args)
        .status()
        .context("could not start rustup; install rustup first")?;
    check(status, &format!("rustup toolchain install {NIGHTLY}"))
}

/// The installed bpf-linker's version, e.g. `0.10.3`.
fn bpf_linker_version() -> Option<String> {
    let out = output_of(Command::new("bpf-linker").arg("--version"))?;
    out.split_whitespace().nth(1).map(str::to_owned)
}

fn ensure_bpf_linker() -> Result<()> {
    let wanted_line = release_line(BPF_LINKER_VERSION);
    if bpf_linker_version().is_some_and(|v| release_line(&v) == wanted_line) {
        return Ok(());
    }
    eprintln!("xtask: installing bpf-linker {BPF_LINKER_VERSION} (about a minute)");
    let status = Command::new("cargo")
        .args(["install", &format!("bpf-linker@{BPF_LINKER_VERSION}"), "--locked", "--force"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .status()
        .context("could not start cargo install")?;
    check(status, "cargo install bpf-linker")?;
    if bpf_linker_version().is_none() {
        bail!("bpf-linker was installed but is not on PATH: add ~/.cargo/bin to PATH");
    }
    Ok(())
}

/// `0.10.3` -> `0.10`: releases of one line link with the same LLVM.
fn release_line(version: &str) -> String {
    version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".")
}

fn check_llvm_majors() -> Result<()> {
    let verbose = output_of(Command::new("rustup").args(["run", NIGHTLY, "rustc", "-vV"]))
        .with_context(|| format!("could not run rustc from {NIGHTLY}"))?;
    let rustc_major = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse::<u32>().ok())
        .with_context(|| format!("rustc from {NIGHTLY} did not report its LLVM version"))?;
    let linker = bpf_linker_version().unwrap_or_default();
    if release_line(&linker) != release_line(BPF_LINKER_VERSION) {
        bail!(
            "bpf-linker {linker} is installed, but arpwatch needs the {} line (LLVM {BPF_LINKER_LLVM_MAJOR}): \
             run `cargo install bpf-linker@{BPF_LINKER_VERSION} --locked --force`",
            release_line(BPF_LINKER_VERSION)
        );
    }
    if rustc_major != BPF_LINKER_LLVM_MAJOR {
        bail!(
            "{NIGHTLY} uses LLVM {rustc_major} but bpf-linker {linker} links with LLVM \
             {BPF_LINKER_LLVM_MAJOR}: the kernel object cannot be linked; pin a nightly with LLVM \
             {BPF_LINKER_LLVM_MAJOR} or a bpf-linker for LLVM {rustc_major}"
        );
    }
    Ok(())
}
