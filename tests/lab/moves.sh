#!/usr/bin/env bash
# The move test on a real kernel: boot the lab (desktop mix, SeaBIOS) and run
# tests/lab/guest-moves.sh inside it with a traspasoctl built with the
# fault-injection seams. Exit status: the guest script's (0: every check passed).
# usage: tests/lab/moves.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}/fault-injection
cargo build --quiet --manifest-path "$repo/Cargo.toml" --target-dir "$target" \
    --no-default-features --features fault-injection --bin traspasoctl
share=$(mktemp -d "${TMPDIR:-/tmp}/lab-moves.XXXXXX")
trap 'rm -rf "$share"' EXIT
cp "$here/guest-moves.sh" "$share/"
echo "== lab: moves on desktop with seabios"
"$here/lab.sh" --mix desktop --share "$share" --bundle "$target/debug/traspasoctl" \
    --timeout 400 --run 'sh guest-moves.sh'
