#!/usr/bin/env bash
# Time a move in the lab (a real kernel under QEMU/TCG): `traspasoctl device
# to-guest` then `to-host` of the e1000e NIC (02:00.0), against the raw shell
# sequence a forum script runs (driver_override, unbind, drivers_probe, wait
# for the link; and back), with hyperfine inside the guest. Prints both and the
# ratio (goal ≤ 1.2), and the helper's work per call in one long-running
# process (examples/move_bench.rs: no program start). Needs the lab's packages and hyperfine.
# usage: benches/move.sh [RUNS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-20}
cargo build --quiet --manifest-path "$repo/Cargo.toml" --release --no-default-features \
    --bin traspasoctl --example move_bench
target=${CARGO_TARGET_DIR:-$repo/target}
share=$(mktemp -d "${TMPDIR:-/tmp}/lab-bench.XXXXXX")
trap 'rm -rf "$share"' EXIT
cat >"$share/raw.sh" <<'RAW'
# The three writes each way, and a wait for the driver link.
d=0000:02:00.0
wait_for() { until [ "$(readlink /sys/bus/pci/devices/$d/driver)" != "${1%%/*}" ] &&
    case "$(readlink /sys/bus/pci/devices/$d/driver)" in */"$1") true ;; *) false ;; esac; do :; done; }
echo vfio-pci > /sys/bus/pci/devices/$d/driver_override
echo $d > /sys/bus/pci/devices/$d/driver/unbind
echo $d > /sys/bus/pci/drivers_probe
wait_for vfio-pci
echo > /sys/bus/pci/devices/$d/driver_override
echo $d > /sys/bus/pci/devices/$d/driver/unbind
echo $d > /sys/bus/pci/drivers_probe
wait_for e1000e
RAW
# The bundle is copied to the guest's RAM first: executing it over 9p costs
# ~200 ms per start, which says nothing about either way of moving.
cat >"$share/bench.sh" <<GUEST
modprobe vfio-pci
cp -r .bundle /tmp/bundle && cp raw.sh /tmp/
/tmp/bundle/hyperfine-run -N --warmup 2 --runs $runs --export-json result.json \
  'sh -c "/tmp/bundle/traspasoctl-run device to-guest 02:00.0 >/dev/null && /tmp/bundle/traspasoctl-run device to-host 02:00.0 >/dev/null"' \
  'sh /tmp/raw.sh'
/tmp/bundle/move_bench-run 02:00.0 $runs > in-process.json
GUEST
"$repo/tests/lab/lab.sh" --mix desktop --share "$share" --bundle "$target/release/traspasoctl" \
    --bundle "$target/release/examples/move_bench" \
    --bundle "$(command -v hyperfine)" --timeout 600 --run 'sh bench.sh' >/dev/null
python3 - "$share/result.json" "$runs" "$share/in-process.json" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1]))["results"]
c = json.load(open(sys.argv[3]))
print(f"lab guest (QEMU TCG, 6.1 kernel), e1000e 02:00.0 to vfio-pci and back, {sys.argv[2]} runs")
print(f"traspasoctl to-guest + to-host   {a['mean']*1000:8.1f} ms ± {a['stddev']*1000:.1f}")
print(f"raw shell sequence, both ways    {b['mean']*1000:8.1f} ms ± {b['stddev']*1000:.1f}")
print(f"ratio                              {a['mean']/b['mean']:.2f}  (goal ≤ 1.2)")
print(f"the helper's work, in one process  {c['mean_ms']:8.1f} ms ± {c['stddev_ms']:.1f}")
print(f"ratio                              {c['mean_ms']/(b['mean']*1000):.2f}  (goal ≤ 1.2)")
PY
