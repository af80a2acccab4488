//! The captured-root loader: a small described host (a root port and a GPU
//! with its audio function), then the fuzzer's records overwrite its files,
//! add files with any name (non-UTF-8 too) and plant symlinks with any
//! target (escapes, loops, dangling). The scan, the driver snapshot and the
//! readiness checks must read it or refuse it, never panic, never read
//! outside the root.
//!
//! Records: [kind u8][slot u8][len u16 LE][len bytes]. Kind 0 writes a file
//! from the table below, kind 1 makes that entry a symlink to the bytes,
//! kind 2 writes a file named by the bytes up to the first NUL (the rest is
//! the content) in the GPU's directory. Files are written before any symlink
//! is planted, and through no symlink, so nothing escapes while building.
#![no_main]

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use traspaso::fixture::HostSpec;
use traspaso::host::HostRoot;
use traspaso::topology::{ScanOptions, Topology};

const BASE: &str = "cmdline intel_iommu=on iommu=pt
dev 0000:00:01.0 8086:0151 class=060400 group=1 driver=pcieport acs=none
dev 0000:01:00.0 10de:1402 class=030000 group=1 parent=00:01.0 subsys=1458:36c5 driver=nouveau boot_vga=0 reset=bus rom
dev 0000:01:00.1 10de:0fba class=040300 group=1 parent=00:01.0 driver=snd_hda_intel reset=bus
";

/// Entries in the GPU's directory, then entries from the root.
const DEVICE: &[&str] = &[
    "uevent",
    "config",
    "class",
    "vendor",
    "device",
    "subsystem_vendor",
    "subsystem_device",
    "revision",
    "reset_method",
    "boot_vga",
    "rom",
    "driver_override",
    "iommu_group",
    "driver",
    "physfn",
    "reset",
    "enable",
    "vfio-dev",
];
const ROOT: &[&str] = &[
    "proc/cmdline",
    "proc/cpuinfo",
    "proc/interrupts",
    "proc/self/mountinfo",
    "proc/net/route",
    "traspaso-capture.json",
    "sys/firmware/acpi/tables/DMAR",
    "sys/firmware/acpi/tables/IVRS",
    "sys/class/dmi/id/board_name",
    "sys/kernel/iommu_groups/1/devices/0000:01:00.0",
    "sys/kernel/iommu_groups/1/type",
    "sys/bus/pci/devices/0000:01:00.1",
    "sys/module/vfio_pci/parameters/ids",
    "etc/default/grub",
    "usr/share/qemu/firmware/50-edk2-ovmf.json",
    "lib/modules/6.1.0/modules.builtin",
];

fn entry(root: &Path, device: &Path, slot: u8) -> PathBuf {
    let slot = slot as usize % (DEVICE.len() + ROOT.len());
    match DEVICE.get(slot) {
        Some(name) => device.join(name),
        None => root.join(ROOT[slot - DEVICE.len()]),
    }
}

/// Write `content` at `path` (replacing a file or link, never following one).
fn write(path: &Path, content: &[u8]) {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.is_dir() {
            return;
        }
        let _ = std::fs::remove_file(path);
    }
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(path, content);
}

/// A names database of two lines: the system's would cost more than the
/// scan itself on every run.
fn pci_ids() -> &'static Path {
    static IDS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    IDS.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("traspaso-fuzz-{}.ids", std::process::id()));
        let _ = std::fs::write(
            &path,
            "10de  NVIDIA Corporation\n\t1402  GM206 [GeForce GTX 950]\n",
        );
        path
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let root = dir.path();
    let Ok(spec) = HostSpec::parse(BASE) else {
        return;
    };
    if spec.write(root).is_err() {
        return;
    }
    let Ok(device) = std::fs::canonicalize(root.join("sys/bus/pci/devices/0000:01:00.0")) else {
        return;
    };

    let mut records = Vec::new();
    let mut rest = data;
    while rest.len() >= 4 {
        let (kind, slot) = (rest[0] % 3, rest[1]);
        let len = u16::from_le_bytes([rest[2], rest[3]]) as usize;
        let end = (4 + len).min(rest.len());
        records.push((kind, slot, &rest[4..end]));
        rest = &rest[end..];
    }
    // Files first, then names, then links.
    for (kind, slot, bytes) in &records {
        match kind {
            0 => write(&entry(root, &device, *slot), bytes),
            2 => {
                let (name, content) = match bytes.iter().position(|&b| b == 0) {
                    Some(i) => (&bytes[..i], &bytes[i + 1..]),
                    None => (&bytes[..], &[][..]),
                };
                let name = std::ffi::OsStr::from_bytes(name);
                let path = device.join(name);
                // Only plain names inside the device's directory.
                if path.parent() == Some(device.as_path()) && !name.is_empty() {
                    write(&path, content);
                }
            }
            _ => {}
        }
    }
    for (kind, slot, bytes) in &records {
        if *kind == 1 {
            let path = entry(root, &device, *slot);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let _ = std::fs::remove_file(&path);
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(bytes), &path);
        }
    }

    let Ok(host) = HostRoot::open(root) else {
        return;
    };
    if let Ok(topology) = Topology::load(&host, Some(pci_ids()), ScanOptions::default()) {
        for d in &topology.devices {
            let _ = (d.label(), d.on_vfio(), d.viable_for_vfio());
        }
        if let Ok(facts) = traspaso::readiness::gather(&host) {
            let _ = traspaso::readiness::assess(&facts, &topology);
        }
    }
    let _ = traspaso::topology::bindings(&host);
});
