#!/usr/bin/env bash
# Boot the lab kernel with each device mix, run `traspasoctl capture` inside it
# as root, and record what the kernel itself reports (groups, drivers,
# boot_vga) next to the capture, so tests/captured.rs can check that a replay
# of the capture says the same. These captures are the trees committed in
# tests/fixtures/captured/; the test command makes fresh ones every run.
# usage: tests/lab/capture-all.sh OUTDIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:?usage: capture-all.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

cargo build --quiet --manifest-path "$repo/Cargo.toml" --no-default-features --bin traspasoctl
bin=${CARGO_TARGET_DIR:-$repo/target}/debug/traspasoctl

for case in desktop:seabios desktop:ovmf dmi:seabios; do
    mix=${case%%:*} firmware=${case##*:} name=${case/:/-}
    share=$(mktemp -d "${TMPDIR:-/tmp}/lab-capture.XXXXXX")
    # The kernel's own account, written with nothing but the shell.
    cat >"$share/kernel-view.sh" <<'GUEST'
for g in /sys/kernel/iommu_groups/*; do
    printf 'group %s:' "${g##*/}"
    for d in "$g"/devices/*; do printf ' %s' "${d##*/}"; done
    echo
done
for d in /sys/bus/pci/devices/*; do
    drv=$(readlink "$d/driver" 2>/dev/null); drv=${drv##*/}
    echo "device ${d##*/} driver=${drv:--} boot_vga=$(cat "$d/boot_vga" 2>/dev/null || echo -)"
done
GUEST
    echo "== lab: $mix with $firmware"
    "$here/lab.sh" --mix "$mix" --firmware "$firmware" --share "$share" --bundle "$bin" \
        --run './.bundle/traspasoctl-run capture out && sh kernel-view.sh > out/kernel-view.txt'
    rm -rf "${out:?}/$name"
    mv "$share/out" "$out/$name"
    rm -rf "$share"
    echo "captured into $out/$name"
done
