//! Embeds the kernel object built by `cargo xtask build-ebpf`, so the binary reads nothing from the
//! source tree at run time.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    // xtask builds the eBPF crate with `--target-dir <workspace>/target`, whatever CARGO_TARGET_DIR
    // says, so this path is fixed.
    let object = manifest.join("../target/bpfel-unknown-none/release/arpwatch-ebpf");
    println!("cargo:rerun-if-changed={}", object.display());
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("arpwatch-ebpf.o");
    if let Err(err) = std::fs::copy(&object, &out) {
        panic!(
            "the arpwatch kernel object {} is missing ({err}): build it with `cargo xtask build-ebpf` \
             (or use `cargo xtask run` / `cargo xtask test`, which build it first)",
            object.display()
        );
    }
}
