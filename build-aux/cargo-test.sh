#!/bin/sh
# Called by `meson test`: every cargo test target (the GUI bench as a smoke
# test too), in the same target directory as the build (CARGO_TARGET_DIR wins).
# usage: cargo-test.sh SOURCE_ROOT TARGET_DIR gui|nogui
set -eu
source_root=$1 target_dir=${CARGO_TARGET_DIR:-$2} gui=$3
features=""
[ "$gui" = gui ] || features="--no-default-features"
# shellcheck disable=SC2086
exec cargo test --manifest-path "$source_root/Cargo.toml" --target-dir "$target_dir" \
    $features --all-targets
