#!/usr/bin/env bash
# Builds the arpwatch container image: a statically linked (musl) arpwatch on scratch, with
# buildah (or podman) from Debian's packages, then checks its entrypoint, user and labels.
#   deploy/image.sh            -> image localhost/arpwatch:<version>
# Environment: IMAGE (name, default arpwatch), CARGO_TARGET_DIR (as cargo).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "image: $*" >&2; exit 1; }

target=x86_64-unknown-linux-musl
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || fail "cannot read the workspace version from Cargo.toml"
image="${IMAGE:-arpwatch}:$version"
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)

if command -v buildah >/dev/null; then
  build=(buildah bud --storage-driver vfs --isolation chroot)
  inspect=(buildah --storage-driver vfs inspect --type image)
elif command -v podman >/dev/null; then
  build=(podman --storage-driver vfs build)
  inspect=(podman --storage-driver vfs image inspect)
else
  fail "neither buildah nor podman is installed (apt-get install buildah)"
fi

# The static binary. The kernel object is embedded at build time (arpwatch/build.rs).
rustup target list --installed | grep -qx "$target" || rustup target add "$target" \
  || fail "cannot add the Rust target $target"
[ -f target/bpfel-unknown-none/release/arpwatch-ebpf ] || cargo xtask build-ebpf
cargo build --release --locked --package arpwatch --target "$target"
binary="${CARGO_TARGET_DIR:-target}/$target/release/arpwatch"
[ -x "$binary" ] || fail "cargo did not produce $binary"
# Statically linked: no program interpreter, no shared libraries (scratch has none).
if readelf --program-headers "$binary" | grep -q INTERP || readelf --dynamic "$binary" | grep -q NEEDED; then
  fail "$binary is not statically linked"
fi
"$binary" --version >/dev/null || fail "$binary does not run"

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/arpwatch"
"${build[@]}" --file Containerfile --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  --tag "$image" "$context"

# buildah prints the image with its OCI config under "OCIv1", podman a list of images with "Config".
"${inspect[@]}" "$image" >"$context/image.json"
python3 - "$version" "$context/image.json" <<'PY' || fail "the image does not have the expected entrypoint, user and labels"
import json, sys

version, path = sys.argv[1], sys.argv[2]
image = json.load(open(path))
config = image[0]["Config"] if isinstance(image, list) else image["OCIv1"]["config"]
entrypoint, user = config.get("Entrypoint"), config.get("User")
labels = config.get("Labels") or {}
problems = []
if entrypoint != ["/arpwatch"]:
    problems.append(f"entrypoint is {entrypoint}, expected ['/arpwatch']")
if user != "0:0":
    problems.append(f"user is {user!r}, expected 0:0 (root with only the pod's capabilities)")
for name in ("title", "description", "version", "revision", "licenses", "source", "documentation"):
    if not labels.get("org.opencontainers.image." + name):
        problems.append(f"label org.opencontainers.image.{name} is missing")
if labels.get("org.opencontainers.image.version") != version:
    problems.append(f"label org.opencontainers.image.version is not {version}")
if problems:
    sys.exit("image: " + "; ".join(problems))
print(f"image: entrypoint {entrypoint}, user {user}, labels {sorted(labels)}")
PY
echo "image: built $image with a static arpwatch of $(du -h "$binary" | cut -f1)"
