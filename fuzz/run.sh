#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and fails on the first crash, leak,
# timeout or out-of-memory. The corpora are seeded at run time from the shared captures
# (ARPWATCH_PCAPS, default ../../shared/pcaps relative to this directory) and the configuration
# examples of the repository, in a temporary directory: nothing is written into the repository
# except libFuzzer's crash artifacts under fuzz/artifacts/.
#
#   fuzz/run.sh 60     # CI: three targets, about four minutes with the build
set -euo pipefail

seconds=${1:-60}
case $seconds in '' | *[!0-9]*) echo "usage: $0 [SECONDS per target]" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
pcaps=${ARPWATCH_PCAPS:-$root/../shared/pcaps}
# The nightly that also builds the kernel object; cargo-fuzz needs a nightly for the sanitizers.
toolchain=nightly-2026-05-20
targets=(decode_frame capture_reader config_toml)

if ! ls "$pcaps"/*.pcap >/dev/null 2>&1; then
    echo "run.sh: no captures in $pcaps (set ARPWATCH_PCAPS)" >&2
    exit 1
fi
# arpwatch's build script embeds the kernel object: build it first if it is missing.
if [ ! -f "$root/target/bpfel-unknown-none/release/arpwatch-ebpf" ]; then
    (cd "$root" && cargo xtask build-ebpf)
fi
if ! cargo +"$toolchain" fuzz --version >/dev/null 2>&1; then
    cargo +"$toolchain" install cargo-fuzz --locked
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$here"
cargo +"$toolchain" fuzz build --release

mkdir -p "$work/capture_reader" "$work/decode_frame" "$work/config_toml"
# Whole files (pcap and pcapng) for the reader, the frames inside them for the decoders.
cp "$pcaps"/*.pcap* "$work/capture_reader/"
"$here/target/x86_64-unknown-linux-gnu/release/seed_frames" "$work/decode_frame" "$pcaps"/*.pcap*
# Every ```toml block of the configuration reference, and the example files, as seeds.
awk -v dir="$work/config_toml" '
    /^```toml/ { n++; file = dir "/doc-" n; inblock = 1; next }
    /^```/ { inblock = 0; next }
    inblock { print > file }
' "$root/docs/config.md"
find "$root/deploy" -name '*.toml' -exec cp {} "$work/config_toml/" \; 2>/dev/null || true

for target in "${targets[@]}"; do
    echo "run.sh: fuzzing $target for ${seconds}s"
    cargo +"$toolchain" fuzz run --release "$target" "$work/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
done
echo "run.sh: ${#targets[@]} targets, ${seconds}s each, no crash"
