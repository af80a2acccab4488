#!/usr/bin/env bash
# Fuzz every target for SECONDS each (default 600: the 10-minute runs), from
# seeds made of real ROMs, captures and libvirt XML (fuzz/seed.py). Prints a
# line per target with its executions and whether it crashed; a crash leaves
# its input in fuzz/artifacts/TARGET/ and makes the script fail.
# Needs a nightly toolchain and cargo-fuzz (build-aux/traspaso-dev installs both).
# usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(rom pci_address captured_root domain_xml helper_args)
python3 seed.py
cargo +nightly fuzz build --release >/dev/null 2>&1 || cargo +nightly fuzz build --release
# The captured-root target writes a small tree per run: keep it in memory.
export TMPDIR=${TMPDIR:-/dev/shm}
status=0
for t in "${targets[@]}"; do
    log=$(mktemp)
    if cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=4096 \
        >"$log" 2>&1; then
        result=ok
    else
        result=CRASH
        status=1
        tail -40 "$log" >&2
    fi
    runs=$(grep -Eo '^Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' || echo "?")
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 || true)
    printf '%-14s %s: %s runs in %s s, %s, corpus %s\n' "$t" "$result" "$runs" "$seconds" "${cov:-cov: ?}" \
        "$(ls "corpus/$t" | wc -l)"
    rm -f "$log"
done
exit $status
