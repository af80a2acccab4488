#!/usr/bin/env bash
# Time `traspasoctl topology --json` against `lspci -nnk` and an ls-iommu-style
# shell loop on the same generated host with 2,048 SR-IOV functions, and print
# the ratios. Needs hyperfine and pciutils (apt install hyperfine pciutils).
# usage: benches/topology.sh [FUNCTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
functions=${1:-2048}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --no-default-features --bin traspasoctl --example mkhost >/dev/null
target=${CARGO_TARGET_DIR:-target}/release
"$target/examples/mkhost" --sriov "$functions" "$work/host"
ctl="$target/traspasoctl --root $work/host topology --json"
lspci="lspci -nnk -A linux-sysfs -O sysfs.path=$work/host/sys/bus/pci"
# What the forum script does: one lspci per device, group by group.
cat > "$work/ls-iommu.sh" <<SCRIPT
for g in $work/host/sys/kernel/iommu_groups/*; do
    echo "IOMMU group \${g##*/}"
    for d in "\$g"/devices/*; do
        lspci -nns "\${d##*/}" -A linux-sysfs -O sysfs.path=$work/host/sys/bus/pci
    done
done
SCRIPT

echo "host: $functions functions ($(ls "$work/host/sys/bus/pci/devices" | wc -l) PCI devices in all)"
hyperfine --warmup 2 --min-runs 10 --export-json "$work/fast.json" -N "$ctl" "$lspci" >/dev/null
hyperfine --runs 2 --export-json "$work/loop.json" "bash $work/ls-iommu.sh" >/dev/null
python3 - "$work/fast.json" "$work/loop.json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["results"] + json.load(open(sys.argv[2]))["results"]
ctl, lspci, loop = (r["mean"] for r in runs)
sd = [r["stddev"] or 0 for r in runs]
print(f"traspasoctl topology --json  {ctl*1000:9.1f} ms ± {sd[0]*1000:.1f}")
print(f"lspci -nnk                   {lspci*1000:9.1f} ms ± {sd[1]*1000:.1f}")
print(f"ls-iommu-style shell loop    {loop*1000:9.1f} ms")
print(f"ratio traspasoctl / lspci      {ctl/lspci:.3f}  (goal ≤ 0.5)")
print(f"ratio traspasoctl / loop       {ctl/loop:.4f}")
PY
/usr/bin/time -f "traspasoctl peak memory: %M KiB" $ctl >/dev/null
