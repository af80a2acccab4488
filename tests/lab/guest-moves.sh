#!/bin/sh
# Runs inside the lab guest (desktop mix), as root, from the shared directory:
# moves groups with traspasoctl and checks the kernel's own account after each
# step. Prints one line per check; exits 1 if any failed.
#   01:00.0 VGA (bochs-drm, boot VGA) + 01:00.1 HD audio: one group
#   02:00.0 e1000e alone
#   03:00.0 PCIe-to-PCI bridge with 04:01.0 and 04:02.0 (e1000): one group
#   06:00.0 virtio-blk (/dev/vda)
# Run from the guest's RAM: starting a program over 9p costs a lot under TCG.
cp -r .bundle /tmp/bundle
ctl="/tmp/bundle/traspasoctl-run"
failed=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; failed=1; }
drv() {
    link=$(readlink "/sys/bus/pci/devices/0000:$1/driver" 2>/dev/null) || { echo none; return; }
    echo "${link##*/}"
}
group() { link=$(readlink "/sys/bus/pci/devices/0000:$1/iommu_group"); echo "${link##*/}"; }
expect() { # expect DESCRIPTION ADDRESS DRIVER
    d=$(drv "$2")
    if [ "$d" = "$3" ]; then ok "$1: $2 on $3"; else bad "$1: $2 on $d, expected $3"; fi
}
run() { # run EXPECTED-EXIT DESCRIPTION ARGS... (stdout+stderr to moves.log)
    want=$1 what=$2
    shift 2
    "$ctl" "$@" >>moves.log 2>&1
    got=$?
    if [ "$got" = "$want" ]; then ok "$what: exit $got"; else bad "$what: exit $got, expected $want"; fi
}
# wait_until DESCRIPTION COMMAND...: poll (up to 60 s) until COMMAND succeeds.
wait_until() {
    what=$1
    shift
    i=0
    until "$@"; do
        i=$((i + 1))
        if [ $i -gt 600 ]; then bad "timed out waiting: $what"; return 1; fi
        sleep 0.1
    done
}
on() { [ "$(drv "$1")" = "$2" ]; }
override_is() { [ "$(cat "/sys/bus/pci/devices/0000:$1/driver_override")" = "$2" ]; }
no_journal() {
    if [ -e /var/lib/traspaso/journal.json ]; then bad "$1: the journal is left"; else ok "$1: no journal left"; fi
}

mkdir -p /var/lib /run
modprobe -r vfio-pci 2>/dev/null
gpu=$(drv 01:00.0) audio=$(drv 01:00.1) nic=$(drv 02:00.0) e1=$(drv 04:01.0) e2=$(drv 04:02.0)
echo "before: 01:00.0=$gpu 01:00.1=$audio 02:00.0=$nic 04:01.0=$e1 04:02.0=$e2"

# The NIC's option ROM (QEMU's iPXE) read through sysfs on a real kernel:
# enabled, read and disabled again.
"$ctl" rom --device 02:00.0 >rom.log 2>&1
got=$?
cat rom.log >>moves.log
[ "$got" = 0 ] && ok "the NIC's ROM reads: exit 0" || bad "the NIC's ROM: exit $got"
grep -q "UEFI" rom.log && ok "its ROM has a UEFI image" || bad "no UEFI image in: $(cat rom.log)"
[ "$(cat /sys/bus/pci/devices/0000:02:00.0/rom 2>/dev/null | head -c 1 | wc -c)" = 0 ] \
    && ok "the ROM is switched off again" || bad "the ROM was left switched on"

# The NIC alone; vfio-pci is loaded on the way.
run 0 "NIC to the guest" device to-guest 02:00.0
expect "NIC to the guest" 02:00.0 vfio-pci
if [ -e "/dev/vfio/$(group 02:00.0)" ]; then ok "/dev/vfio/$(group 02:00.0) exists"; else bad "no /dev/vfio node"; fi
run 0 "NIC status" device status 02:00.0
# A VM holding the group's node (a process with QEMU's -name): going back is
# refused, names the VM, and changes nothing; once it is gone, the NIC goes back.
grp=$(group 02:00.0)
# shellcheck disable=SC2016 # $0 is expanded by the inner shell
sh -c 'exec 3<>"/dev/vfio/$0"; while :; do sleep 1; done' "$grp" -name guest=labvm &
holder=$!
wait_until "the VM holds /dev/vfio/$grp" sh -c "[ \"\$(readlink /proc/$holder/fd/3)\" = /dev/vfio/$grp ]"
run 4 "a group held by a VM stays" device to-host 02:00.0
expect "a group held by a VM stays" 02:00.0 vfio-pci
grep -q "labvm" moves.log && ok "the refusal names the VM" || bad "the refusal does not name the VM"
# Its option ROM is not switched on under the VM either.
run 4 "no ROM read while a VM holds the group" rom --device 02:00.0
kill "$holder"
wait "$holder" 2>/dev/null
run 0 "NIC back" device to-host 02:00.0
expect "NIC back" 02:00.0 "$nic"

# The GPU and its audio function move together.
run 0 "GPU to the guest" device to-guest 01:00.0
expect "GPU to the guest" 01:00.0 vfio-pci
expect "GPU to the guest" 01:00.1 vfio-pci
run 0 "GPU to the guest again (nothing to do)" device to-guest 01:00.1
run 0 "GPU back" device to-host 01:00.1
expect "GPU back" 01:00.0 "$gpu"
expect "GPU back" 01:00.1 "$audio"

# The group behind the PCIe-to-PCI bridge: both NICs move, the bridge stays.
bridge=$(drv 03:00.0)
run 0 "bridge group to the guest" device to-guest 04:02.0
expect "bridge group to the guest" 04:01.0 vfio-pci
expect "bridge group to the guest" 04:02.0 vfio-pci
expect "bridge group to the guest" 03:00.0 "$bridge"
run 0 "bridge group back" device to-host 04:01.0
expect "bridge group back" 04:01.0 "$e1"
expect "bridge group back" 04:02.0 "$e2"

# Refusals: the bridge itself, a disk with a mounted filesystem.
run 4 "the bridge is refused" device to-guest 03:00.0
expect "the bridge is refused" 03:00.0 "$bridge"
mkdir -p /mnt/disk
if mount /dev/vda /mnt/disk 2>/dev/null; then
    blk=$(drv 06:00.0)
    run 4 "mounted disk refused" device to-guest 06:00.0
    expect "mounted disk refused" 06:00.0 "$blk"
    ls /mnt/disk >/dev/null 2>&1 && ok "the filesystem is still there" || bad "the filesystem went away"
    umount /mnt/disk
else
    bad "could not mount /dev/vda"
fi
run 2 "a malformed address" device to-guest 01:00.0/../x

# A failure at every write of the GPU pair's move (3 writes per function):
# every function ends on its driver, and no journal is left.
n=1
while [ $n -le 6 ]; do
    TRASPASO_FAIL_AT_WRITE=$n "$ctl" device to-guest 01:00.0 >>moves.log 2>&1
    got=$?
    [ "$got" = 1 ] && ok "fail at write $n: exit 1" || bad "fail at write $n: exit $got"
    expect "fail at write $n" 01:00.0 "$gpu"
    expect "fail at write $n" 01:00.1 "$audio"
    no_journal "fail at write $n"
    n=$((n + 1))
done
grep -q "injected failure" moves.log && ok "the error names the failure" || bad "no failure message"

# Killed in the middle (after the first function moved): the next start undoes it.
TRASPASO_PAUSE_AT_WRITE=4:20000 "$ctl" device to-guest 01:00.0 >>moves.log 2>&1 &
pid=$!
wait_until "the first function on vfio-pci" on 01:00.0 vfio-pci
kill -9 $pid
wait $pid 2>/dev/null
if [ -e /var/lib/traspaso/journal.json ]; then ok "killed: the journal is there"; else bad "killed: no journal"; fi
expect "killed mid-move" 01:00.0 vfio-pci
"$ctl" device status 01:00.0 >recover.log 2>&1
grep -q "interrupted move was undone" recover.log && ok "the next start reports the recovery" || bad "no recovery message: $(cat recover.log)"
expect "after recovery" 01:00.0 "$gpu"
expect "after recovery" 01:00.1 "$audio"
no_journal "after recovery"

# The way back fails at each write: the group stays on vfio-pci (as before
# that move), then a clean move brings it home.
run 0 "GPU to the guest for the return tests" device to-guest 01:00.0
n=1
while [ $n -le 6 ]; do
    TRASPASO_FAIL_AT_WRITE=$n "$ctl" device to-host 01:00.0 >>moves.log 2>&1
    got=$?
    [ "$got" = 1 ] && ok "return fails at write $n: exit 1" || bad "return fails at write $n: exit $got"
    expect "return fails at write $n" 01:00.0 vfio-pci
    expect "return fails at write $n" 01:00.1 vfio-pci
    no_journal "return fails at write $n"
    n=$((n + 1))
done

# A failure at every step (the journal, each function's override, unbind,
# probe and driver check) in both directions: everything ends where it was
# before that move, no journal is left, and the error names the step.
step_text() {
    case $1 in
    journal) echo "writing the journal" ;; override) echo "setting driver_override" ;;
    unbind) echo "unbinding the driver" ;; probe) echo "probing drivers" ;;
    verify) echo "checking the driver" ;; load-module) echo "loading vfio-pci" ;;
    esac
}
fail_step() { # fail_step DIRECTION STEP:N EXPECTED-DRIVER-01:00.0 EXPECTED-01:00.1
    TRASPASO_FAIL_STEP=$2 "$ctl" device "$1" 01:00.0 >step.log 2>&1
    got=$?
    cat step.log >>moves.log
    [ "$got" = 1 ] && ok "$1 fails at $2: exit 1" || bad "$1 fails at $2: exit $got"
    expect "$1 fails at $2" 01:00.0 "$3"
    expect "$1 fails at $2" 01:00.1 "$4"
    no_journal "$1 fails at $2"
    if grep -q "while $(step_text "${2%%:*}")" step.log; then ok "$1 fails at $2: the error names the step"
    else bad "$1 fails at $2: the step is not named: $(cat step.log)"; fi
}
for s in journal:1 override:1 override:2 unbind:1 unbind:2 probe:1 probe:2 verify:1 verify:2; do
    fail_step to-host "$s" vfio-pci vfio-pci
done
run 0 "GPU back for the step tests" device to-host 01:00.0
for s in journal:1 override:1 override:2 unbind:1 unbind:2 probe:1 probe:2 verify:1 verify:2; do
    fail_step to-guest "$s" "$gpu" "$audio"
done
# Loading vfio-pci fails (the module is taken out first).
# (modprobe -r also tries vfio_pci's dependencies and can report their
# "in use": what counts is that the driver is gone.)
modprobe -r vfio-pci 2>/dev/null
if [ ! -e /sys/bus/pci/drivers/vfio-pci ]; then
    fail_step to-guest load-module:1 "$gpu" "$audio"
else
    bad "vfio-pci could not be unloaded for the load-module test: $(modprobe -r vfio-pci 2>&1); $(ls /sys/bus/pci/drivers/vfio-pci 2>&1 | tr '\n' ' '); $(grep vfio /proc/modules)"
fi
run 0 "GPU to the guest again (vfio-pci loads)" device to-guest 01:00.0

# Killed (SIGKILL) just before each write, both ways: the next start puts
# everything back where it was before that move (to the guest) or finishes
# it (to the host), and no journal is left.
kill_at() { # kill_at DIRECTION N
    rm -f /tmp/paused
    TRASPASO_PAUSE_AT_WRITE=$2:20000 TRASPASO_PAUSE_MARK=/tmp/paused "$ctl" device "$1" 01:00.0 >>moves.log 2>&1 &
    pid=$!
    wait_until "$1 paused before write $2" test -e /tmp/paused
    kill -9 $pid
    wait $pid 2>/dev/null
    "$ctl" device status 01:00.0 >recover.log 2>&1
    cat recover.log >>moves.log
    no_journal "$1 killed before write $2, then recovered"
}
n=1
while [ $n -le 6 ]; do
    kill_at to-host $n
    expect "to-host killed before write $n" 01:00.0 "$gpu"
    expect "to-host killed before write $n" 01:00.1 "$audio"
    run 0 "GPU to the guest again" device to-guest 01:00.0
    n=$((n + 1))
done
run 0 "GPU back for the kill tests" device to-host 01:00.0
n=1
while [ $n -le 6 ]; do
    kill_at to-guest $n
    expect "to-guest killed before write $n" 01:00.0 "$gpu"
    expect "to-guest killed before write $n" 01:00.1 "$audio"
    n=$((n + 1))
done
run 0 "GPU to the guest for the last return test" device to-guest 01:00.0

# Killed half-way back: the next start finishes the return.
TRASPASO_PAUSE_AT_WRITE=4:20000 "$ctl" device to-host 01:00.0 >>moves.log 2>&1 &
pid=$!
wait_until "the first function back on $gpu" on 01:00.0 "$gpu"
kill -9 $pid
wait $pid 2>/dev/null
expect "killed on the way back" 01:00.0 "$gpu"
expect "killed on the way back" 01:00.1 vfio-pci
"$ctl" device status 01:00.1 >recover.log 2>&1
grep -q "interrupted move was undone" recover.log && ok "the next start finishes the return" || bad "no recovery on the way back: $(cat recover.log)"
expect "return finished" 01:00.0 "$gpu"
expect "return finished" 01:00.1 "$audio"
no_journal "return finished"

# One move at a time: while one holds the lock, another caller is told so
# and changes nothing; the first then finishes normally.
TRASPASO_PAUSE_AT_WRITE=2:8000 "$ctl" device to-guest 02:00.0 >>moves.log 2>&1 &
pid=$!
wait_until "the first move under way" override_is 02:00.0 vfio-pci
run 1 "a second move while one runs is refused" device to-guest 01:00.0
grep -q "Another move is in progress" moves.log && ok "it says another move is in progress" || bad "no busy message"
expect "the second move changed nothing" 01:00.0 "$gpu"
wait $pid
got=$?
[ "$got" = 0 ] && ok "the first move finished: exit 0" || bad "the first move: exit $got"
expect "the first move finished" 02:00.0 vfio-pci
run 0 "NIC back after the concurrency test" device to-host 02:00.0
expect "NIC back after the concurrency test" 02:00.0 "$nic"

echo "--- traspasoctl output"
cat moves.log
exit $failed
