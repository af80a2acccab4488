#!/bin/sh
# Every catalog in po/ compiles cleanly and is 100% translated (no
# untranslated or fuzzy messages). usage: check-po.sh [PO_FILE...]
set -eu
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- po/*.po
status=0
for po in "$@"; do
    stats=$(msgfmt --check --statistics -o /dev/null "$po" 2>&1) || { echo "$po: $stats" >&2; status=1; continue; }
    echo "$po: $stats"
    case "$stats" in *untranslated*|*fuzzy*) echo "$po is not complete" >&2; status=1 ;; esac
done
exit $status
