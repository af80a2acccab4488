//! Trees captured from a real Linux kernel with an emulated Intel IOMMU (the
//! lab, tests/lab/capture-all.sh). Each capture carries `kernel-view.txt`, the
//! kernel's own account of groups, drivers and boot_vga written by a shell in
//! the guest; a replay must say the same, and the relations the product
//! relies on must hold. Runs on the committed captures, and on fresh ones when
//! `TRASPASO_CAPTURES` names a directory of them (the test command does).
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use traspaso::host::HostRoot;
use traspaso::topology::{FindingCode, RomVerdict, ScanOptions, Topology};

fn captures() -> PathBuf {
    std::env::var_os("TRASPASO_CAPTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures().join("captured"))
}

fn load(name: &str) -> (Topology, PathBuf) {
    let root = captures().join(name);
    let host = HostRoot::open(&root).unwrap_or_else(|e| panic!("{name}: {e}"));
    let t = Topology::load(&host, pci_ids().as_deref(), ScanOptions::default()).unwrap();
    (t, root)
}

/// Devices with these vendor:device ids.
fn with_ids(t: &Topology, vendor: u16, device: u16) -> Vec<String> {
    t.devices
        .iter()
        .filter(|d| d.vendor_id == vendor && d.device_id == device)
        .map(|d| d.address.to_string())
        .collect()
}

fn group_members(t: &Topology, address: &str) -> Vec<String> {
    let d = t.device(&address.parse().unwrap()).unwrap();
    let g = t.group(d.iommu_group.expect("in a group")).unwrap();
    g.devices.iter().map(|a| a.to_string()).collect()
}

fn has(t: &Topology, address: &str, code: FindingCode) -> bool {
    let a = address.parse().unwrap();
    let found = t.findings_for(&a).any(|f| f.code == code);
    found
}

fn check_against_the_kernel(t: &Topology, root: &Path) {
    let view = std::fs::read_to_string(root.join("kernel-view.txt")).expect("kernel-view.txt");
    let mut groups: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut devices = 0;
    for line in view.lines() {
        if let Some(rest) = line.strip_prefix("group ") {
            let (id, members) = rest.split_once(':').unwrap();
            groups.insert(
                id.parse().unwrap(),
                members.split_whitespace().map(str::to_owned).collect(),
            );
        } else if let Some(rest) = line.strip_prefix("device ") {
            let mut words = rest.split_whitespace();
            let address = words.next().unwrap();
            let d = t
                .device(&address.parse().unwrap())
                .unwrap_or_else(|| panic!("{address} missing"));
            for word in words {
                match word.split_once('=').unwrap() {
                    ("driver", "-") => assert_eq!(d.driver, None, "{address}"),
                    ("driver", name) => assert_eq!(d.driver.as_deref(), Some(name), "{address}"),
                    ("boot_vga", v) => assert_eq!(d.boot_vga, v == "1", "{address}"),
                    _ => {}
                }
            }
            devices += 1;
        }
    }
    assert_eq!(devices, t.devices.len());
    let ours: BTreeMap<u32, Vec<String>> = t
        .groups
        .iter()
        .map(|g| (g.id, g.devices.iter().map(|a| a.to_string()).collect()))
        .collect();
    assert_eq!(ours, groups);
    assert!(t.iommu_enabled);
}

fn check_desktop(name: &str) -> Topology {
    let (t, root) = load(name);
    check_against_the_kernel(&t, &root);
    // The GPU and its audio function: one group, both move, no shared-group.
    let vga = with_ids(&t, 0x1234, 0x1111)
        .into_iter()
        .find(|a| t.device(&a.parse().unwrap()).unwrap().class.is_vga())
        .unwrap();
    let audio = with_ids(&t, 0x8086, 0x293e);
    assert_eq!(audio.len(), 1);
    let members = group_members(&t, &vga);
    assert_eq!(members, [vga.clone(), audio[0].clone()]);
    assert!(!has(&t, &vga, FindingCode::SharedGroup));
    assert!(t.device(&vga.parse().unwrap()).unwrap().boot_vga);
    assert!(has(&t, &vga, FindingCode::BootVga));
    // Two e1000 behind the PCIe-to-PCI bridge: one group with the bridge, shared.
    let e1000 = with_ids(&t, 0x8086, 0x100e);
    assert_eq!(e1000.len(), 2);
    let members = group_members(&t, &e1000[0]);
    assert!(members.contains(&e1000[1]));
    assert_eq!(members.len(), 3, "the bridge is in the group: {members:?}");
    let f = t
        .findings
        .iter()
        .find(|f| f.code == FindingCode::SharedGroup)
        .expect("shared-group");
    let named: Vec<String> = f.devices.iter().map(|a| a.to_string()).collect();
    assert_eq!(named, e1000, "the bridge does not count");
    // The e1000e: alone in its group, its ROM read as root in the guest has an EFI image.
    let e1000e = with_ids(&t, 0x8086, 0x10d3);
    assert_eq!(group_members(&t, &e1000e[0]), e1000e);
    let nic = t.device(&e1000e[0].parse().unwrap()).unwrap();
    assert!(
        matches!(
            nic.rom,
            Some(RomVerdict::Read {
                has_uefi: true,
                has_legacy: true,
                ..
            })
        ),
        "{:?}",
        nic.rom
    );
    // The second VGA device (virtio-vga): isolated, not the boot GPU, reset by FLR.
    let virtio_vga = with_ids(&t, 0x1af4, 0x1050);
    let second = t.device(&virtio_vga[0].parse().unwrap()).unwrap();
    assert_eq!(group_members(&t, &virtio_vga[0]), virtio_vga);
    assert!(!second.boot_vga);
    assert!(second.reset_methods.contains(&"flr".to_owned()));
    // Its ROM (vgabios-virtio) has no EFI image: a real "no UEFI" verdict.
    assert!(has(&t, &virtio_vga[0], FindingCode::NoUefiRom));
    // bochs-display on the root bus: a display controller of class 0x0380.
    let bochs = with_ids(&t, 0x1234, 0x1111)
        .into_iter()
        .find(|a| t.device(&a.parse().unwrap()).unwrap().class.0 == 0x038000);
    assert!(bochs.is_some());
    t
}

#[test]
fn desktop_under_seabios_matches_the_kernel() {
    let t = check_desktop("desktop-seabios");
    // SeaBIOS: the boot GPU's ROM reads as the firmware's shadow copy; no false "no UEFI".
    let vga = t.devices.iter().find(|d| d.boot_vga).unwrap();
    assert!(
        matches!(
            vga.rom,
            Some(RomVerdict::Read {
                shadow_copy: true,
                ..
            })
        ),
        "{:?}",
        vga.rom
    );
    assert!(has(
        &t,
        &vga.address.to_string(),
        FindingCode::RomUnreadable
    ));
    assert!(!has(&t, &vga.address.to_string(), FindingCode::NoUefiRom));
}

#[test]
fn desktop_under_ovmf_matches_the_kernel() {
    let t = check_desktop("desktop-ovmf");
    // OVMF: reading the boot GPU's ROM failed with EIO on the captured host.
    let vga = t.devices.iter().find(|d| d.boot_vga).unwrap();
    match &vga.rom {
        Some(RomVerdict::Unreadable { reason }) => {
            assert!(reason.contains("Input/output error"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(has(
        &t,
        &vga.address.to_string(),
        FindingCode::RomUnreadable
    ));
}

#[test]
fn dmi_bridge_group_of_five_matches_the_kernel() {
    let (t, root) = load("dmi-seabios");
    check_against_the_kernel(&t, &root);
    let dmi = with_ids(&t, 0x8086, 0x244e);
    let members = group_members(&t, &dmi[0]);
    assert_eq!(members.len(), 5, "{members:?}");
    let g = t
        .group(
            t.device(&dmi[0].parse().unwrap())
                .unwrap()
                .iommu_group
                .unwrap(),
        )
        .unwrap();
    assert!(g.shared);
    assert_eq!(g.moves_together.len(), 3, "two bridges stay");
    assert!(t
        .findings
        .iter()
        .any(|f| f.code == FindingCode::SharedGroup && f.group == Some(g.id)));
}

#[test]
fn a_replay_through_the_cli_is_the_same_as_the_library() {
    let root = captures().join("desktop-seabios");
    let json = topology_json(&root);
    let (t, _) = load("desktop-seabios");
    assert_eq!(json["devices"].as_array().unwrap().len(), t.devices.len());
    assert_eq!(json["iommu_enabled"], true);
}
