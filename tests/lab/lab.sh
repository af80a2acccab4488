#!/usr/bin/env bash
# The lab: boot the host's stock Debian kernel in QEMU (TCG) on q35 with an
# emulated Intel IOMMU, so real IOMMU groups, drivers, ROMs and vfio-pci can be
# exercised on a machine without a passthrough-capable host. See README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: tests/lab/lab.sh --mix NAME [--firmware seabios|ovmf] --share DIR --run 'COMMAND'
                        [--bundle BIN]... [--modules 'MOD ...'] [--timeout SECONDS] [--log FILE]

  --mix NAME        device mix: desktop | dmi
  --firmware F      seabios (default) or ovmf
  --share DIR       host directory mounted at /mnt/share in the guest (created if missing)
  --run COMMAND     run as root with `sh -c` in /mnt/share; its stdout/stderr are
                    replayed on lab.sh's stdout/stderr (also kept in DIR/.lab-stdout, .lab-stderr)
  --bundle BIN      copy BIN and its shared libraries to DIR/.bundle/, with a wrapper
                    DIR/.bundle/NAME-run (repeatable)
  --modules LIST    extra kernel modules to load at boot (e.g. 'vfio-pci'); every module in
                    the initramfs can also be loaded later with modprobe inside COMMAND
  --timeout S       kill QEMU after S seconds (default 240)
  --log FILE        serial console + QEMU messages (default DIR/.lab-serial.log)

Exit status: that of COMMAND, or 125 when the lab itself failed.
Environment: LAB_CACHE (default <repo>/target/lab), LAB_KERNEL (default newest /boot/vmlinuz-*),
             LAB_MACHINE (default pc-q35-7.2).
EOF
}

die() { echo "lab: $*" >&2; exit 125; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${LAB_CACHE:-$repo/target/lab}

mix='' firmware=seabios share='' run='' timeout=240 log='' extra_mods=''
bundles=()
while [ $# -gt 0 ]; do
    case $1 in
        --mix) mix=${2:?}; shift 2 ;;
        --firmware) firmware=${2:?}; shift 2 ;;
        --share) share=${2:?}; shift 2 ;;
        --run) run=${2?}; shift 2 ;;
        --bundle) bundles+=("${2:?}"); shift 2 ;;
        --modules) extra_mods=${2?}; shift 2 ;;
        --timeout) timeout=${2:?}; shift 2 ;;
        --log) log=${2:?}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
if [ -z "$mix" ] || [ -z "$share" ] || [ -z "$run" ]; then
    usage >&2
    die "--mix, --share and --run are required"
fi
[[ $timeout =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds"

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
command -v busybox >/dev/null || die "busybox missing (apt-get install busybox-static)"
busybox_bin=$(command -v busybox)
ldd "$busybox_bin" >/dev/null 2>&1 && die "$busybox_bin is dynamic; install busybox-static"
kmod_bin=$(command -v kmod || true)
[ -n "$kmod_bin" ] || die "kmod missing (apt-get install kmod)"

# The kernel: newest /boot/vmlinuz-* unless told otherwise; modules must match.
kernel=${LAB_KERNEL:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
[ -r "$kernel" ] || die "no readable kernel under /boot (apt-get install linux-image-amd64)"
kver=${kernel##*/vmlinuz-}
moddir=/lib/modules/$kver
[ -d "$moddir" ] || die "no modules for $kver in $moddir"

mkdir -p "$cache" "$share"
cache=$(cd "$cache" && pwd)
share=$(cd "$share" && pwd)
log=${log:-$share/.lab-serial.log}
mkdir -p "$(dirname "$log")"

# QEMU option values are comma-separated: a comma inside a path must be doubled.
q() { printf '%s' "${1//,/,,}"; }

# Pin the machine type so the topology and firmware tables do not drift with QEMU upgrades.
machine=${LAB_MACHINE:-pc-q35-7.2}
if ! qemu-system-x86_64 -machine help | awk '{print $1}' | grep -qx "$machine"; then
    newest=$(qemu-system-x86_64 -machine help | awk '$1 ~ /^pc-q35-[0-9.]+$/ {print $1}' | sort -V | tail -n 1)
    [ -n "$newest" ] || die "QEMU knows no pc-q35 machine type"
    echo "lab: machine $machine unknown to this QEMU, using $newest" >&2
    machine=$newest
fi

# ---------------------------------------------------------------------------
# Modules. The initramfs always carries all of these (one image for every mix);
# each mix only says which ones /init loads at boot. Missing ones are skipped,
# built-in ones need no file.
all_mods="virtio_pci 9pnet_virtio 9p e1000 e1000e vfio vfio_iommu_type1 vfio_pci_core vfio_pci
          irqbypass pci_stub snd_hda_intel snd_hda_codec_generic bochs virtio_gpu virtio_blk ext4
          crc32c_generic crc32c_intel lpc_ich i2c_i801 ahci"
# The share, plus drivers for q35's own 00:1f.x functions as a real chipset would have.
base_mods="virtio_pci 9pnet_virtio 9p lpc_ich i2c_i801 ahci"

# ---------------------------------------------------------------------------
# Mixes. Every device sits behind its own pcie-root-port unless noted; bus,
# addr, chassis and slot are pinned so addresses and groups repeat run to run.
# The 9p share is always 0000:00:10.0 on pcie.0: do not hand it to vfio-pci.
disk_img=$cache/disk-ext4-16M.img
need_disk=no
rp() { # rp ID PCIE0_SLOT CHASSIS
    printf '%s\n' -device "pcie-root-port,id=$1,bus=pcie.0,addr=$2,chassis=$3,slot=$3"
}
devs=() extra_cmdline="" # a mix may add kernel parameters
case $mix in
    desktop)
        # 00:07.0 bochs-display straight on the root bus: display class 0x0380, no VGA.
        #   Not at 00:01.0: OVMF puts its framebuffer on the first display it scans, and
        #   with efifb on bochs-display but boot_vga on 01:00.0, kernel 6.1 oopses in
        #   sysfb_disable() when bochs probes both. Scanned after rp1, efifb lands on the GPU.
        # rp1 -> GPU (VGA, fn 0) + HDMI-audio-like HDA (fn 1): one group, the boot VGA.
        # rp2 -> e1000e with an iPXE legacy+EFI option ROM, alone in its group.
        # rp3 -> pcie-pci-bridge with two e1000: conventional PCI, so one group with the bridge.
        # rp4 -> virtio-vga: a second VGA device, isolated.
        # rp5 -> virtio-blk on a scratch ext4 image (writes are discarded: snapshot=on).
        mapfile -t devs < <(
            printf '%s\n' -device "bochs-display,id=disp,bus=pcie.0,addr=0x7"
            rp rp1 0x2 1
            printf '%s\n' -device "VGA,id=gpu,bus=rp1,addr=0x0,multifunction=on,romfile=/usr/share/seabios/vgabios-stdvga.bin"
            printf '%s\n' -device "ich9-intel-hda,id=hda,bus=rp1,addr=0x0.0x1"
            printf '%s\n' -device "hda-duplex,bus=hda.0,audiodev=snd0"
            rp rp2 0x3 2
            printf '%s\n' -device "e1000e,id=nic0,bus=rp2,addr=0x0,mac=52:54:00:4c:41:01,romfile=/usr/lib/ipxe/qemu/efi-e1000e.rom"
            rp rp3 0x4 3
            printf '%s\n' -device "pcie-pci-bridge,id=pcibr,bus=rp3,addr=0x0"
            printf '%s\n' -device "e1000,id=nic1,bus=pcibr,addr=0x1,mac=52:54:00:4c:41:02"
            printf '%s\n' -device "e1000,id=nic2,bus=pcibr,addr=0x2,mac=52:54:00:4c:41:03"
            rp rp4 0x5 4
            printf '%s\n' -device "virtio-vga,id=gpu2,bus=rp4,addr=0x0"
            rp rp5 0x6 5
            printf '%s\n' -drive "if=none,id=disk0,format=raw,snapshot=on,file=$(q "$disk_img")"
            printf '%s\n' -device "virtio-blk-pci,id=blk0,drive=disk0,bus=rp5,addr=0x0"
        )
        need_disk=yes
        boot_mods="e1000 e1000e snd_hda_intel snd_hda_codec_generic bochs virtio_gpu virtio_blk ext4"
        ;;
    dmi)
        # 00:1e.0 i82801b11-bridge (where real ICH chipsets put their DMI-to-PCI bridge)
        # with a pci-bridge, an e1000 and an HDA behind it, and one more e1000 beside the
        # pci-bridge: all five share one group, as on older desktop chipsets.
        # rp1 -> virtio-vga, isolated (the only VGA, so the boot VGA).
        mapfile -t devs < <(
            rp rp1 0x2 1
            printf '%s\n' -device "virtio-vga,id=gpu,bus=rp1,addr=0x0"
            printf '%s\n' -device "i82801b11-bridge,id=dmi,bus=pcie.0,addr=0x1e"
            printf '%s\n' -device "pci-bridge,id=pcib,bus=dmi,addr=0x1,chassis_nr=10,shpc=off"
            printf '%s\n' -device "e1000,id=nic1,bus=pcib,addr=0x1,mac=52:54:00:4c:42:01"
            printf '%s\n' -device "ich9-intel-hda,id=hda,bus=pcib,addr=0x2"
            printf '%s\n' -device "hda-duplex,bus=hda.0,audiodev=snd0"
            printf '%s\n' -device "e1000,id=nic2,bus=dmi,addr=0x2,mac=52:54:00:4c:42:02"
        )
        boot_mods="e1000 snd_hda_intel snd_hda_codec_generic virtio_gpu"
        ;;
    *) die "unknown mix '$mix' (desktop, dmi)" ;;
esac

for f in /usr/share/seabios/vgabios-stdvga.bin /usr/lib/ipxe/qemu/efi-e1000e.rom; do
    [ -r "$f" ] || die "$f missing (apt-get install seabios ipxe-qemu)"
done

# ---------------------------------------------------------------------------
# The guest's /init. Kept in this file so the cache key (hash of lab.sh) covers it.
read -r -d '' init_script <<'INIT' || true
#!/bin/sh
# PID 1 of the lab guest: load drivers, mount the share, run the command, power off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run /tmp /root /mnt/share /mnt/disk
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/mounts /etc/mtab

halt() { sync; poweroff -f; sleep 10; }

mods=$(sed -n 's/.*lab\.mods=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
for m in $mods; do
    modprobe "$m" || echo "lab-init: modprobe $m failed" >/dev/console
done

if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 share /mnt/share; then
    echo "lab-init: cannot mount the 9p share" >/dev/console
    halt
fi
# Bundled binaries look for pci.ids where the host keeps it.
if [ -f /mnt/share/.bundle/pci.ids ]; then
    mkdir -p /usr/share/misc /usr/share/hwdata
    ln -sf /mnt/share/.bundle/pci.ids /usr/share/misc/pci.ids
    ln -sf /mnt/share/.bundle/pci.ids /usr/share/hwdata/pci.ids
fi

cd /mnt/share || halt
echo "lab-init: running command" >/dev/console
sh -c "$(cat /mnt/share/.lab-cmd)" </dev/null >/mnt/share/.lab-stdout 2>/mnt/share/.lab-stderr
rc=$?
echo "$rc" >/mnt/share/.lab-exit.tmp && mv /mnt/share/.lab-exit.tmp /mnt/share/.lab-exit
echo "lab-init: command exited $rc" >/dev/console
cd /
sync
umount /mnt/share 2>/dev/null
halt
INIT

# ---------------------------------------------------------------------------
# initramfs, cached per kernel version and hash of this script. Built in a
# scratch dir and renamed into place, so parallel runs never see half a file.
script_hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
initrd=$cache/initramfs-$kver-$script_hash.cpio

copy_with_libs() { # copy_with_libs ROOT BINARY: same absolute paths inside ROOT
    local root=$1 bin=$2 lib
    mkdir -p "$root$(dirname "$bin")"
    cp -L "$bin" "$root$bin"
    ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
        while read -r lib; do
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done
}

build_initramfs() {
    local tmp root m f dep
    tmp=$(mktemp -d "$cache/build.XXXXXX")
    root=$tmp/root
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,lib,lib64,mnt} "$root$moddir"

    cp "$busybox_bin" "$root/bin/busybox"
    busybox --list-full | grep -vx bin/busybox | while read -r f; do
        mkdir -p "$root/$(dirname "$f")"
        ln -sf /bin/busybox "$root/$f"
    done
    # kmod instead of busybox's modutils: it honours softdeps and compressed modules
    # the way the host's modprobe does, and the kernel calls /sbin/modprobe itself.
    copy_with_libs "$root" "$kmod_bin"
    for f in modprobe insmod rmmod lsmod modinfo depmod; do
        ln -sf "$kmod_bin" "$root/sbin/$f"
    done
    printf '%s\n' "$init_script" >"$root/init"
    chmod 755 "$root/init"
    echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
    echo "root:x:0:" >"$root/etc/group"

    # Modules plus their hard and soft dependencies, as the kernel tree names them.
    declare -A seen=()
    add_mod() {
        local name=$1 file deps soft
        while read -r file; do
            case $file in /*) ;; *) continue ;; esac # built in (or unknown)
            [ -z "${seen[$file]:-}" ] || continue
            seen[$file]=1
            mkdir -p "$root$(dirname "$file")"
            cp "$file" "$root$file"
            deps=$(modinfo -k "$kver" -F depends "$file" | tr , ' ')
            soft=$(modinfo -k "$kver" -F softdep "$file" | tr ' ' '\n' | grep -v -e ':$' -e '^$' || true)
            for dep in $deps $soft; do add_mod "$dep"; done
        done < <(modinfo -k "$kver" -n "$name" 2>/dev/null || true)
    }
    for m in $all_mods; do add_mod "$m"; done
    for f in modules.order modules.builtin modules.builtin.modinfo; do
        [ -e "$moddir/$f" ] && cp "$moddir/$f" "$root$moddir/"
    done
    depmod -b "$root" "$kver"

    (cd "$root" && find . -print0 | LC_ALL=C sort -z |
        cpio --null -o -H newc --quiet -R 0:0) >"$tmp/initramfs.cpio"
    mv -f "$tmp/initramfs.cpio" "$initrd"
    rm -rf "$tmp"
    # Images for older versions of this script are dead weight.
    find "$cache" -maxdepth 1 -name "initramfs-$kver-*.cpio" ! -name "${initrd##*/}" -delete
}

if [ ! -s "$initrd" ]; then
    command -v cpio >/dev/null || die "cpio missing (apt-get install cpio)"
    echo "lab: building initramfs for $kver in $initrd" >&2
    build_initramfs
fi

# A small ext4 image for tests about mounted disks; the guest sees it as /dev/vda.
if [ "$need_disk" = yes ] && [ ! -s "$disk_img" ]; then
    tmpimg=$(mktemp "$cache/disk.XXXXXX")
    truncate -s 16M "$tmpimg"
    if command -v mkfs.ext4 >/dev/null; then
        mkfs.ext4 -q -F -L labdisk "$tmpimg"
    else
        busybox mke2fs -q -L labdisk "$tmpimg" >/dev/null # ext2, mounted by the ext4 driver
    fi
    mv -f "$tmpimg" "$disk_img"
fi

# Boot modules: keep those this kernel has (as a module or built in).
load=""
for m in $base_mods $boot_mods ${extra_mods//,/ }; do
    if modinfo -k "$kver" -n "$m" >/dev/null 2>&1; then load+="${load:+,}$m"
    else echo "lab: module $m not in kernel $kver, skipped" >&2; fi
done

# ---------------------------------------------------------------------------
# Bundles: host binaries with their libraries, run through the copied loader.
bundle_one() {
    local bin name dst interp lib
    bin=$(command -v "$1") || die "--bundle: $1 not found"
    bin=$(readlink -f "$bin")
    name=$(basename "$1")
    dst=$share/.bundle
    mkdir -p "$dst/lib"
    cp -f "$bin" "$dst/$name"
    interp=""
    if ldd "$bin" >/dev/null 2>&1; then
        while read -r lib; do
            cp -fL "$lib" "$dst/lib/"
            case $lib in */ld-linux*) interp=$(basename "$lib") ;; esac
        done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
    fi
    if [ -n "$interp" ]; then
        cat >"$dst/$name-run" <<EOF
#!/bin/sh
# Runs $name with the libraries copied from the host, whatever the guest has.
here=\$(dirname "\$0")
exec "\$here/lib/$interp" --library-path "\$here/lib" "\$here/$name" "\$@"
EOF
    else
        printf '#!/bin/sh\nexec "$(dirname "$0")/%s" "$@"\n' "$name" >"$dst/$name-run"
    fi
    chmod 755 "$dst/$name-run"
}
if [ ${#bundles[@]} -gt 0 ]; then
    for b in "${bundles[@]}"; do bundle_one "$b"; done
    [ -r /usr/share/misc/pci.ids ] && cp -f /usr/share/misc/pci.ids "$share/.bundle/pci.ids"
fi

# ---------------------------------------------------------------------------
run_dir=$(mktemp -d "$cache/run.XXXXXX")
qpid=""
# shellcheck disable=SC2317 # called from the trap
cleanup() { [ -n "$qpid" ] && kill "$qpid" 2>/dev/null; rm -rf "$run_dir"; }
trap cleanup EXIT
trap 'exit 125' INT TERM

fw=()
case $firmware in
    seabios) ;; # QEMU's default
    ovmf)
        code="" vars=""
        for pair in OVMF_CODE.fd:OVMF_VARS.fd OVMF_CODE_4M.fd:OVMF_VARS_4M.fd; do
            if [ -r "/usr/share/OVMF/${pair%%:*}" ] && [ -r "/usr/share/OVMF/${pair##*:}" ]; then
                code=/usr/share/OVMF/${pair%%:*} vars=/usr/share/OVMF/${pair##*:}
                break
            fi
        done
        [ -n "$code" ] || die "no OVMF under /usr/share/OVMF (apt-get install ovmf)"
        cp "$vars" "$run_dir/vars.fd"
        fw=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$(q "$code")"
            -drive "if=pflash,format=raw,unit=1,file=$(q "$run_dir/vars.fd")")
        ;;
    *) die "unknown firmware '$firmware' (seabios, ovmf)" ;;
esac

rm -f "$share/.lab-exit" "$share/.lab-exit.tmp" "$share/.lab-stdout" "$share/.lab-stderr"
printf '%s\n' "$run" >"$share/.lab-cmd"

cmdline="console=ttyS0 panic=-1 intel_iommu=on iommu=pt quiet lab.mods=$load $extra_cmdline ${LAB_APPEND:-}"

start=$(date +%s)
# No -netdev anywhere: the NICs have no backend, so nothing can leave the machine.
qemu-system-x86_64 \
    -accel tcg -machine "$machine,kernel-irqchip=split" \
    -device intel-iommu,intremap=on,caching-mode=on \
    -m 1024 -nodefaults -display none -no-reboot -serial stdio \
    "${fw[@]}" \
    -audiodev none,id=snd0 \
    -kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
    -fsdev "local,id=fs0,security_model=none,path=$(q "$share")" \
    -device virtio-9p-pci,id=share,fsdev=fs0,mount_tag=share,bus=pcie.0,addr=0x10 \
    "${devs[@]}" \
    </dev/null >"$log" 2>&1 &
qpid=$!

# Watch QEMU ourselves: a guest that hangs in poweroff after the command has
# reported its exit code should cost seconds, not the whole timeout.
grace=20 done_at="" why=""
while kill -0 "$qpid" 2>/dev/null; do
    now=$(date +%s)
    if [ -z "$done_at" ] && [ -f "$share/.lab-exit" ]; then done_at=$now; fi
    if [ -n "$done_at" ] && [ $((now - done_at)) -ge $grace ]; then why=hung; break; fi
    if [ $((now - start)) -ge "$timeout" ]; then why=timeout; break; fi
    sleep 0.5
done
if [ -n "$why" ]; then
    kill "$qpid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qpid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$qpid" 2>/dev/null || true
fi
qrc=0
wait "$qpid" || qrc=$?
qpid=""
elapsed=$(( $(date +%s) - start ))

[ -f "$share/.lab-stdout" ] && cat "$share/.lab-stdout"
[ -f "$share/.lab-stderr" ] && cat "$share/.lab-stderr" >&2

rc=$(cat "$share/.lab-exit" 2>/dev/null || true)
if [ "$why" = timeout ] || ! [[ $rc =~ ^[0-9]+$ ]]; then
    if [ "$why" = timeout ]; then
        echo "lab: timed out after ${timeout}s (mix $mix, $firmware), QEMU killed; serial log tail ($log):" >&2
    else
        echo "lab: no exit code from the guest (QEMU status $qrc after ${elapsed}s); serial log tail ($log):" >&2
    fi
    tail -n 40 "$log" >&2
    exit 125
fi
if [ "$why" = hung ]; then
    echo "lab: warning: the guest did not power off within ${grace}s of the command's end; QEMU killed (see $log)" >&2
fi
echo "lab: mix $mix, $firmware, kernel $kver: command exited $rc after ${elapsed}s" >&2
exit "$rc"
