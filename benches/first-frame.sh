#!/usr/bin/env bash
# Time from launch to the first frame of `traspaso` and of virt-manager under
# Xvfb on this machine, and print both and the ratio (goal ≤ 0.5).
#
# - traspaso: started with TRASPASO_EXIT_AFTER_FIRST_FRAME=1, it prints the
#   time from launch to the first painted frame that shows the loaded topology,
#   and quits. Measured on this computer (/), on the sample desktop and on a
#   generated host with 2,048 SR-IOV functions.
# - virt-manager (Debian package): launch until its main window is mapped and
#   viewable, polled with xdotool every 5 ms. The same poll is also run on
#   traspaso's window, so both programs are measured the same way once.
#
# Needs: apt install xvfb xauth dbus-daemon xdotool virt-manager
# usage: benches/first-frame.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}

if [ -z "${FIRST_FRAME_INNER:-}" ]; then
    cargo build --release --bin traspaso --example mkhost >/dev/null
    export FIRST_FRAME_INNER=1
    exec xvfb-run -a -s '-screen 0 1280x800x24' dbus-run-session -- "$0" "$@"
fi

export GSK_RENDERER=cairo NO_AT_BRIDGE=1 TRASPASO_QUIET=1 TRASPASO_NO_WIZARD=1
target=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$target/examples/mkhost" --sriov 2048 "$work/sriov" >/dev/null

now() { date +%s%N; }

# Launch to the first painted frame with the topology, as traspaso reports it
# (it gets the launch time and prints the difference when that frame is done).
probe() {
    TRASPASO_LAUNCHED_AT_NS=$(now) TRASPASO_EXIT_AFTER_FIRST_FRAME=1 \
        "$target/traspaso" "$@" 2>/dev/null | sed -n 's/^first-frame \([0-9]*\) us$/\1/p'
}

# Launch until a window with this title is viewable, then stop the program.
mapped() {
    local title=$1 start end pid
    shift
    start=$(now)
    "$@" >/dev/null 2>&1 &
    pid=$!
    until xdotool search --onlyvisible --name "^$title\$" >/dev/null 2>&1; do
        sleep 0.005
        kill -0 "$pid" 2>/dev/null || { echo "$title: the program exited" >&2; return 1; }
    done
    end=$(now)
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo $(((end - start) / 1000))
}

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1000}'; }

series() {
    local label=$1 i
    shift
    "$@" >/dev/null # warm the page cache
    for i in $(seq "$runs"); do "$@"; done | median >"$work/result-$label"
}

series live probe
series demo probe --demo
series sriov probe --root "$work/sriov"
series traspaso-mapped mapped Traspaso "$target/traspaso" --demo
series virt-manager mapped "Virtual Machine Manager" virt-manager --no-fork

ms() { cat "$work/result-$1"; }
echo "runs: $runs (median), $(nproc) cores, GSK_RENDERER=cairo, Xvfb"
printf 'traspaso, this computer (/), first frame with topology  %8s ms\n' "$(ms live)"
printf 'traspaso --demo, first frame with topology              %8s ms\n' "$(ms demo)"
printf 'traspaso, 2,048-function host, first frame with topology %7s ms\n' "$(ms sriov)"
printf 'traspaso --demo, window mapped (xdotool poll)          %8s ms\n' "$(ms traspaso-mapped)"
printf 'virt-manager, main window mapped (xdotool poll)        %8s ms\n' "$(ms virt-manager)"
python3 - "$(ms live)" "$(ms sriov)" "$(ms traspaso-mapped)" "$(ms virt-manager)" <<'PY'
import sys
live, sriov, mapped, vm = map(float, sys.argv[1:])
print(f"ratio traspaso (this computer, topology shown) / virt-manager  {live/vm:.2f}  (goal ≤ 0.5)")
print(f"ratio traspaso (2,048 functions, topology shown) / virt-manager {sriov/vm:.2f}")
print(f"ratio traspaso / virt-manager, both measured by window map      {mapped/vm:.2f}")
PY
