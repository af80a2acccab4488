//! The topology engine on synthetic hosts (analysis only: binding is proven in the lab).
mod common;

use common::*;
use traspaso::fixture::{DeviceSpec, HostSpec, RomSpec};
use traspaso::host::HostRoot;
use traspaso::topology::{Acs, FindingCode, RomVerdict, ScanOptions, Topology};

fn load(root: &std::path::Path) -> Topology {
    let host = HostRoot::open(root).unwrap();
    Topology::load(&host, pci_ids().as_deref(), ScanOptions::default()).unwrap()
}

fn codes(t: &Topology, address: &str) -> Vec<FindingCode> {
    let a = address.parse().unwrap();
    t.findings_for(&a).map(|f| f.code).collect()
}

#[test]
fn gpu_and_its_audio_move_together_without_a_shared_group_warning() {
    let root = host("ivy-bridge-desktop");
    let t = load(root.path());
    assert!(t.iommu_enabled);
    let gpu = t.device(&"01:00.0".parse().unwrap()).unwrap();
    let group = t.group(gpu.iommu_group.unwrap()).unwrap();
    // The root port is in the group but stays with the host.
    assert_eq!(group.devices.len(), 3);
    let together: Vec<String> = group.moves_together.iter().map(|a| a.to_string()).collect();
    assert_eq!(together, ["0000:01:00.0", "0000:01:00.1"]);
    assert!(!group.shared);
    assert!(!codes(&t, "01:00.0").contains(&FindingCode::SharedGroup));
    assert_eq!(gpu.parent.unwrap().to_string(), "0000:00:01.0");
    assert!(t.device(&"00:01.0".parse().unwrap()).unwrap().bridge);
}

#[test]
fn devices_of_several_slots_in_one_group_are_a_shared_group_naming_them() {
    let root = host("ivy-bridge-desktop");
    let t = load(root.path());
    let shared: Vec<_> = t
        .findings
        .iter()
        .filter(|f| f.code == FindingCode::SharedGroup)
        .collect();
    assert_eq!(shared.len(), 1, "{shared:#?}");
    let f = shared[0];
    let devices: Vec<String> = f.devices.iter().map(|a| a.to_string()).collect();
    // Both capture cards, not the chipset root ports.
    assert_eq!(devices, ["0000:03:00.0", "0000:04:00.0"]);
    assert!(f.message.contains("0000:03:00.0") && f.message.contains("0000:04:00.0"));
    assert_eq!(f.group, Some(7));
}

#[test]
fn the_host_display_and_integrated_graphics_are_flagged() {
    let root = host("ivy-bridge-desktop");
    let t = load(root.path());
    let igpu = codes(&t, "00:02.0");
    assert!(igpu.contains(&FindingCode::BootVga), "{igpu:?}");
    assert!(igpu.contains(&FindingCode::IntegratedGraphics), "{igpu:?}");
    let gtx = codes(&t, "01:00.0");
    assert!(!gtx.contains(&FindingCode::BootVga));
    assert!(!gtx.contains(&FindingCode::IntegratedGraphics));
    // The GTX 950's ROM exists but was not captured: no verdict, no finding.
    assert!(t.device(&"01:00.0".parse().unwrap()).unwrap().has_rom);
    assert!(!gtx.contains(&FindingCode::NoUefiRom) && !gtx.contains(&FindingCode::RomUnreadable));
    // The NVIDIA GPU on an AMD board is neither integrated nor Intel.
    let amd = host("amd-chipset-shared");
    let t = load(amd.path());
    assert!(!codes(&t, "07:00.0").contains(&FindingCode::IntegratedGraphics));
    assert!(codes(&t, "07:00.0").contains(&FindingCode::BootVga));
}

#[test]
fn missing_reset_is_flagged_for_endpoints_only() {
    let root = host("ivy-bridge-desktop");
    let t = load(root.path());
    assert!(codes(&t, "00:1a.0").contains(&FindingCode::NoReset));
    assert!(
        !codes(&t, "00:00.0").contains(&FindingCode::NoReset),
        "host bridges are not passed"
    );
    assert!(!codes(&t, "00:1b.0").contains(&FindingCode::NoReset));
    let dev = t.device(&"00:02.0".parse().unwrap()).unwrap();
    assert_eq!(dev.reset_methods, ["flr", "bus"]);
}

#[test]
fn amd_chipset_group_is_shared_and_lists_every_endpoint() {
    let root = host("amd-chipset-shared");
    let t = load(root.path());
    let g = t.group(3).unwrap();
    assert!(g.shared);
    let together: Vec<String> = g.moves_together.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        together,
        [
            "0000:02:00.0",
            "0000:02:00.1",
            "0000:05:00.0",
            "0000:06:00.0",
            "0000:06:00.1"
        ]
    );
    // The isolated main GPU: four functions of one card, one group, no warning.
    let main = t.group(4).unwrap();
    assert!(!main.shared);
    assert_eq!(main.moves_together.len(), 4);
    // ACS of the ports, read from full config space.
    let port = t.device(&"00:01.1".parse().unwrap()).unwrap();
    assert_eq!(
        port.acs,
        Some(Acs::Present {
            capability: 0x1f,
            control: 0x1d,
            isolating: true
        })
    );
    assert_eq!(port.pcie_type, Some("root-port"));
    assert_eq!(
        t.device(&"00:01.3".parse().unwrap()).unwrap().acs,
        Some(Acs::Absent)
    );
    // Bridges below a chipset bridge: parents follow the device path.
    let nic = t.device(&"05:00.0".parse().unwrap()).unwrap();
    assert_eq!(nic.parent.unwrap().to_string(), "0000:03:00.0");
}

#[test]
fn no_groups_means_the_iommu_is_off() {
    let root = host("iommu-off");
    let t = load(root.path());
    assert!(!t.iommu_enabled);
    assert!(t.groups.is_empty());
    let off: Vec<_> = t
        .findings
        .iter()
        .filter(|f| f.code == FindingCode::IommuDisabled)
        .collect();
    assert_eq!(off.len(), 1);
    assert!(t.devices.iter().all(|d| d.iommu_group.is_none()));
    let json = topology_json(root.path());
    assert_eq!(json["iommu_enabled"], false);
    assert!(json["devices"][0]["iommu_group"].is_null());
}

#[test]
fn a_half_moved_group_is_not_isolated_and_the_acs_override_is_reported() {
    let root = host("half-moved");
    let t = load(root.path());
    let f: Vec<_> = t
        .findings
        .iter()
        .filter(|f| f.code == FindingCode::NotIsolated)
        .collect();
    assert_eq!(f.len(), 1);
    let devices: Vec<String> = f[0].devices.iter().map(|a| a.to_string()).collect();
    assert_eq!(devices, ["0000:0b:00.0", "0000:0b:00.1"]);
    assert!(f[0].message.contains("0000:0b:00.1"));
    assert_eq!(t.acs_override.as_deref(), Some("downstream,multifunction"));
    assert!(t
        .findings
        .iter()
        .any(|f| f.code == FindingCode::AcsOverride));
    // The same group fully on vfio-pci is fine.
    let mut spec = HostSpec::parse(
        &std::fs::read_to_string(fixtures().join("hosts/half-moved.host")).unwrap(),
    )
    .unwrap();
    for d in &mut spec.devices {
        if d.address.bus == 0x0b {
            d.driver = Some("vfio-pci".into());
        }
    }
    let root = write(&spec);
    let t = load(root.path());
    assert!(!t
        .findings
        .iter()
        .any(|f| f.code == FindingCode::NotIsolated));
}

fn gpu_with_rom(boot_vga: bool, rom: &str) -> HostSpec {
    let mut spec = HostSpec::default();
    let mut port = DeviceSpec::new("00:01.0".parse().unwrap(), 0x8086, 0x0151, 0x060400);
    port.group = Some(1);
    port.driver = Some("pcieport".into());
    let mut gpu = DeviceSpec::new("01:00.0".parse().unwrap(), 0x1234, 0x1111, 0x030000);
    gpu.group = Some(1);
    gpu.parent = Some(port.address);
    gpu.boot_vga = Some(boot_vga);
    gpu.rom = Some(RomSpec::File(rom.into()));
    spec.devices = vec![port, gpu];
    spec
}

#[test]
fn rom_verdicts_come_from_captured_roms() {
    let legacy_only = "/usr/share/seabios/vgabios-stdvga.bin";
    let with_efi = "/usr/lib/ipxe/qemu/efi-e1000e.rom";
    // A second GPU whose ROM has no EFI image.
    let root = write(&gpu_with_rom(false, legacy_only));
    let t = load(root.path());
    let gpu = t.device(&"01:00.0".parse().unwrap()).unwrap();
    assert!(matches!(
        gpu.rom,
        Some(RomVerdict::Read {
            has_uefi: false,
            has_legacy: true,
            ..
        })
    ));
    assert!(codes(&t, "01:00.0").contains(&FindingCode::NoUefiRom));
    // The boot GPU: the same bytes are the firmware's shadow copy, no false "no UEFI".
    let root = write(&gpu_with_rom(true, legacy_only));
    let t = load(root.path());
    let c = codes(&t, "01:00.0");
    assert!(
        c.contains(&FindingCode::RomUnreadable) && !c.contains(&FindingCode::NoUefiRom),
        "{c:?}"
    );
    let f = t
        .findings
        .iter()
        .find(|f| f.code == FindingCode::RomUnreadable)
        .unwrap();
    assert!(f.message.contains("shadow copy"), "{}", f.message);
    // A ROM with an x86-64 EFI image: no finding.
    let root = write(&gpu_with_rom(false, with_efi));
    let t = load(root.path());
    let c = codes(&t, "01:00.0");
    assert!(!c.contains(&FindingCode::NoUefiRom) && !c.contains(&FindingCode::RomUnreadable));
}

#[test]
fn json_carries_the_fields_of_the_contract() {
    let root = host("ivy-bridge-desktop");
    let t = topology_json(root.path());
    let gpu = device(&t, "0000:01:00.0");
    for (key, value) in [
        ("vendor_id", "10de"),
        ("device_id", "1402"),
        ("subsystem_vendor_id", "1458"),
        ("subsystem_device_id", "36c5"),
        ("class", "030000"),
        ("driver", "nouveau"),
        ("parent", "0000:00:01.0"),
    ] {
        assert_eq!(gpu[key], value, "{key}");
    }
    assert_eq!(gpu["iommu_group"], 1);
    assert_eq!(gpu["boot_vga"], false);
    assert_eq!(gpu["has_rom"], true);
    assert_eq!(gpu["bridge"], false);
    assert_eq!(strings(&gpu["reset_methods"]), ["bus"]);
    if pci_ids().is_some() {
        assert_eq!(gpu["vendor_name"], "NVIDIA Corporation");
        assert_eq!(gpu["device_name"], "GM206 [GeForce GTX 950]");
    }
    let group = t["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == 1)
        .unwrap();
    assert_eq!(
        strings(&group["devices"]),
        ["0000:00:01.0", "0000:01:00.0", "0000:01:00.1"]
    );
    let f = &findings(&t, "shared-group")[0];
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["group"], 7);
    assert!(f["message"].as_str().unwrap().len() > 20);
}

#[test]
fn without_a_names_database_ids_are_shown_and_nothing_fails() {
    let root = host("ivy-bridge-desktop");
    let empty = tempfile::NamedTempFile::new().unwrap();
    let out = ctl(&[
        "--root",
        root.path().to_str().unwrap(),
        "--pci-ids",
        empty.path().to_str().unwrap(),
        "topology",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("[10de:1402]"), "{text}");
    assert!(!text.contains("GeForce"));
}

#[test]
fn human_output_is_a_tree_with_group_verdicts() {
    let root = host("ivy-bridge-desktop");
    let out = ctl(&["--root", root.path().to_str().unwrap(), "topology"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains("IOMMU: on · 10 groups · 17 devices"),
        "{text}"
    );
    assert!(text.contains("Group 1 — isolated"), "{text}");
    assert!(text.contains("Group 7 — shared"), "{text}");
    assert!(text.contains("└─ 0000:01:00.1"), "{text}");
    assert!(text.contains("[shared-group]"));
}

#[test]
fn a_generated_sriov_host_has_every_function() {
    let spec = HostSpec::sriov(2048);
    let root = write(&spec);
    let t = load(root.path());
    let vfs = t.devices.iter().filter(|d| d.physfn.is_some()).count();
    let nics = t.devices.iter().filter(|d| d.class.is_network()).count();
    assert_eq!(nics, 2048);
    assert_eq!(vfs, 2048 - 8);
    assert!(t.groups.iter().all(|g| !g.shared));
    assert!(!t
        .findings
        .iter()
        .any(|f| f.code == FindingCode::SharedGroup));
}
