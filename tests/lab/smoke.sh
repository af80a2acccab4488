#!/usr/bin/env bash
# Smoke proof for the lab: boots each mix/firmware once and checks the group
# relations the project's tests rely on. Prints what it saw; exits 1 on a
# failed check, 125 when the lab itself failed. Takes about a minute.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/lab-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
fails=0

# Runs in the guest: one line per PCI function, then the ROM of each function that has one.
cat >"$work/facts.sh" <<'EOF'
for d in /sys/bus/pci/devices/*; do
    drv=$(readlink "$d/driver" 2>/dev/null); drv=${drv##*/}
    grp=$(readlink "$d/iommu_group"); grp=${grp##*/}
    rst=$(cat "$d/reset_method" 2>/dev/null | tr ' ' ,)
    echo "${d##*/} class=$(cat "$d/class") group=${grp:--} driver=${drv:--} boot_vga=$(cat "$d/boot_vga" 2>/dev/null || echo -) reset=${rst:--}"
done >facts.txt
for d in /sys/bus/pci/devices/*; do
    [ -e "$d/rom" ] || continue
    echo 1 >"$d/rom"
    if cat "$d/rom" >rom.bin 2>/dev/null; then r="$(wc -c <rom.bin) bytes, starts $(od -An -tx1 -N2 rom.bin | tr -d ' ')"; else r="read failed (EIO)"; fi
    echo 0 >"$d/rom"
    echo "${d##*/} rom: $r"
done >roms.txt
rm -f rom.bin
EOF

lab() { # lab SHARE ARGS...: run the lab, stop everything on a lab failure
    local share=$1 rc=0
    shift
    mkdir -p "$share"
    cp "$work/facts.sh" "$share/"
    "$here/lab.sh" --share "$share" "$@" >"$share/out.txt" 2>"$share/err.txt" || rc=$?
    if [ "$rc" -ne 0 ]; then
        cat "$share/err.txt" >&2
        echo "smoke: lab.sh $* exited $rc" >&2
        exit 125
    fi
}
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then echo "  ok   $what"; else echo "  FAIL $what"; fails=$((fails + 1)); fi
}
group_of() { awk -v a="$2" '$1 == a { sub("group=", "", $3); print $3 }' "$1/facts.txt"; }
members() { awk -v g="group=$2" '$3 == g { print $1 }' "$1/facts.txt" | sort | tr '\n' ' '; }
same_members() { [ "$(members "$1" "$(group_of "$1" "$2")")" = "$3" ]; }
field() { awk -v a="$2" -v f="$3=" '$1 == a { for (i = 2; i <= NF; i++) if (index($i, f) == 1) print substr($i, length(f) + 1) }' "$1/facts.txt"; }

probe='ls -l /sys/kernel/iommu_groups/*/devices/ > groups.txt
for d in /sys/bus/pci/devices/*; do echo "$d $(basename $(readlink $d/driver 2>/dev/null) 2>/dev/null)"; done > drivers.txt
sh facts.sh'

for fw in seabios ovmf; do
    s=$work/desktop-$fw
    start=$(date +%s)
    if [ "$fw" = seabios ]; then
        lab "$s" --mix desktop --firmware "$fw" --bundle lspci --run "$probe
cd /sys/bus/pci/devices/0000:02:00.0 && echo 1 > rom && cat rom > /mnt/share/x && echo 0 > rom
cd /mnt/share && ./.bundle/lspci-run -nnk > lspci.txt"
    else
        lab "$s" --mix desktop --firmware "$fw" --run "$probe"
    fi
    echo "desktop/$fw ($(($(date +%s) - start)) s):"
    sed 's/^/    /' "$s/facts.txt" "$s/roms.txt"
    check "IOMMU groups exist" test -s "$s/groups.txt"
    check "VGA 01:00.0 and HDA 01:00.1 share a group, alone" same_members "$s" 0000:01:00.0 "0000:01:00.0 0000:01:00.1 "
    check "pcie-pci-bridge 03:00.0 + two e1000 share a group, alone" same_members "$s" 0000:03:00.0 "0000:03:00.0 0000:04:01.0 0000:04:02.0 "
    check "e1000e 02:00.0 alone in its group" same_members "$s" 0000:02:00.0 "0000:02:00.0 "
    check "virtio-vga 05:00.0 alone in its group" same_members "$s" 0000:05:00.0 "0000:05:00.0 "
    check "01:00.0 is the boot VGA" test "$(field "$s" 0000:01:00.0 boot_vga)" = 1
    check "bochs-display 00:07.0 has class 0x038000" test "$(field "$s" 0000:00:07.0 class)" = 0x038000
    check "e1000e bound to e1000e" test "$(field "$s" 0000:02:00.0 driver)" = e1000e
    if [ "$fw" = seabios ]; then
        check "e1000e ROM (echo 1 > rom; cat rom; echo 0 > rom) starts with 55 aa" \
            test "$(od -An -tx1 -N2 "$s/x" | tr -d ' ')" = 55aa
        check "bundled lspci -nnk runs in the guest" grep -q 'Kernel driver in use: e1000e' "$s/lspci.txt"
    fi
done

s=$work/dmi
start=$(date +%s)
lab "$s" --mix dmi --run "$probe"
echo "dmi/seabios ($(($(date +%s) - start)) s):"
sed 's/^/    /' "$s/facts.txt" "$s/roms.txt"
check "DMI bridge group holds five functions" same_members "$s" 0000:00:1e.0 \
    "0000:00:1e.0 0000:02:01.0 0000:02:02.0 0000:03:01.0 0000:03:02.0 "
check "virtio-vga 01:00.0 alone in its group" same_members "$s" 0000:01:00.0 "0000:01:00.0 "

if [ "$fails" -gt 0 ]; then
    echo "smoke: $fails check(s) failed"
    exit 1
fi
echo "smoke: all checks passed"
