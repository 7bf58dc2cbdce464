#!/usr/bin/env bash
# Builds the arpwatch container image: a statically linked (musl) arpwatch on scratch, with its
# man pages and bash, zsh and fish completions under /usr/share (`cargo xtask dist-docs`), with
# buildah (or podman) from Debian's packages, then checks its entrypoint, user, labels and files.
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
  # Sets image_root to the image's root filesystem, mounted through a working container (removed
  # by unmount_image).
  mount_image() { work=$(buildah --storage-driver vfs from "$1") && image_root=$(buildah --storage-driver vfs mount "$work"); }
  unmount_image() { [ -z "${work:-}" ] || buildah --storage-driver vfs rm "$work" >/dev/null; }
elif command -v podman >/dev/null; then
  build=(podman --storage-driver vfs build)
  inspect=(podman --storage-driver vfs image inspect)
  mount_image() { mounted=$1; image_root=$(podman --storage-driver vfs image mount "$1"); }
  unmount_image() { [ -z "${mounted:-}" ] || podman --storage-driver vfs image unmount "$mounted" >/dev/null; }
else
  fail "neither buildah nor podman is installed (apt-get install buildah)"
fi

# The static binary. The kernel object is embedded at build time (arpwatch/build.rs).
rustup target list --installed | grep -qx "$target" || rustup target add "$target" \
  || fail "cannot add the Rust target $target"
# ring (rustls, for the Kubernetes client) compiles C for the target: musl-gcc, Debian's musl-tools.
if ! command -v musl-gcc >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools \
    || fail "cannot install musl-tools (musl-gcc), which ring needs for $target"
fi
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
trap 'unmount_image; rm -rf "$context"' EXIT
cp "$binary" "$context/arpwatch"
# Man pages and completions, generated from the CLI definition, laid out like /usr/share.
cargo xtask dist-docs "$context/share" >/dev/null || fail "cargo xtask dist-docs failed"
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
# The files an operator reaches with `man arpwatch` and TAB, where Debian's man, bash-completion,
# zsh and fish look for them.
mount_image "$image" || fail "cannot mount the image to check its files"
for file in usr/share/man/man1/arpwatch.1 usr/share/man/man1/arpwatch-watch.1 \
  usr/share/bash-completion/completions/arpwatch usr/share/zsh/vendor-completions/_arpwatch \
  usr/share/fish/vendor_completions.d/arpwatch.fish; do
  [ -s "$image_root/$file" ] || fail "the image has no /$file"
done
pages=$(cd "$image_root/usr/share/man/man1" && ls)
echo "image: man pages $(echo $pages), completions for bash, zsh and fish"
echo "image: built $image with a static arpwatch of $(du -h "$binary" | cut -f1)"
