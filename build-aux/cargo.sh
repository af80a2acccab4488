#!/bin/sh
# Called by meson: build with cargo, then copy the programs into meson's build directory.
# usage: cargo.sh SOURCE_ROOT TARGET_DIR PROFILE gui|nogui OUTDIR PROGRAM...
set -eu
source_root=$1 target_dir=${CARGO_TARGET_DIR:-$2} profile=$3 gui=$4 outdir=$5
shift 5
features=""
[ "$gui" = gui ] || features="--no-default-features"
# shellcheck disable=SC2086
cargo build --manifest-path "$source_root/Cargo.toml" --target-dir "$target_dir" \
    --profile "$profile" $features --bins
case $profile in dev) dir=debug ;; *) dir=$profile ;; esac
for program in "$@"; do
    cp "$target_dir/$dir/$program" "$outdir/$program"
done
