//! `cargo xtask lint`: the style gate `.ci/run` enforces. Formatting (rustfmt.toml) of the
//! workspace and of the fuzz crate, clippy with warnings denied on every host target and feature,
//! rustdoc with warnings denied, and clippy on the kernel crate with the pinned nightly for the
//! BPF target.

use anyhow::Result;
use std::path::Path;
use std::process::Command;

use crate::{build_ebpf, cargo, check, ensure_nightly, EBPF_PACKAGE, EBPF_TARGET, NIGHTLY};

pub fn run(root: &Path) -> Result<()> {
    cargo(root, ["fmt", "--all", "--check"])?;
    // The shell embeds the kernel object, so checking it needs the object built.
    build_ebpf(root)?;
    // The fuzz crate is a workspace of its own (cargo-fuzz builds it with the nightly).
    cargo(root, ["fmt", "--manifest-path", "fuzz/Cargo.toml", "--all", "--check"])?;
    cargo(
        root,
        [
            "clippy",
            "--workspace",
            "--exclude",
            EBPF_PACKAGE,
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // Broken intra-doc links are how module docs drift from the code they describe.
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root)
        .args(["doc", "--no-deps", "--document-private-items", "-p", "arpwatch-core"])
        .args(["-p", "arpwatch", "-p", "arpwatch-common"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .status()?;
    check(status, "cargo doc with warnings denied")?;
    ensure_nightly(&["rust-src", "clippy"])?;
    let status = Command::new("rustup")
        .current_dir(root.join(EBPF_PACKAGE))
        .args(["run", NIGHTLY, "cargo", "clippy", "--release", "--target", EBPF_TARGET])
        .args(["-Z", "build-std=core", "--target-dir"])
        .arg(root.join("target"))
        .args(["--", "-D", "warnings"])
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO")
        .status()?;
    check(status, "clippy on the kernel crate")
}
