//! The ROM parser on the real option ROMs Debian ships (ipxe-qemu, seabios),
//! on cut and damaged copies of them, and through `traspasoctl rom`.
mod common;

use std::path::PathBuf;

use common::*;
use traspaso::rom::{self, RomError, CODE_TYPE_EFI, CODE_TYPE_LEGACY, EFI_MACHINE_X64};

fn files(dir: &str, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e} (install ipxe-qemu and seabios)"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {prefix}* in {dir}");
    v
}

#[test]
fn ipxe_efi_roms_have_a_legacy_and_an_x64_efi_image() {
    for path in files("/usr/lib/ipxe/qemu", "efi-") {
        let data = std::fs::read(&path).unwrap();
        let parsed = rom::parse(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(parsed.has_legacy(), "{}", path.display());
        assert!(parsed.has_uefi(), "{}", path.display());
        assert!(!parsed.unterminated, "{}", path.display());
        assert!(parsed.images.last().unwrap().last);
        let legacy = &parsed.images[0];
        assert_eq!(legacy.code_type, CODE_TYPE_LEGACY);
        assert_eq!(legacy.offset, 0);
        assert_eq!(legacy.checksum_valid, Some(true), "{}", path.display());
        let efi = parsed
            .images
            .iter()
            .find(|i| i.code_type == CODE_TYPE_EFI)
            .unwrap();
        let header = efi.efi.as_ref().unwrap();
        assert!(header.signature_valid);
        assert_eq!(header.machine, EFI_MACHINE_X64);
        assert_eq!(header.subsystem, 0x0b, "a boot-service driver");
        // Images are consecutive and inside the file.
        for pair in parsed.images.windows(2) {
            assert_eq!(pair[0].offset + pair[0].length, pair[1].offset);
        }
        assert!(efi.offset + efi.length <= data.len());
    }
}

#[test]
fn ipxe_e1000e_rom_is_for_the_intel_82574() {
    let data = std::fs::read("/usr/lib/ipxe/qemu/efi-e1000e.rom").unwrap();
    let parsed = rom::parse(&data).unwrap();
    assert_eq!(
        (parsed.images[0].vendor_id, parsed.images[0].device_id),
        (0x8086, 0x10d3)
    );
    assert_eq!(parsed.images[0].class.0, 0x020000);
}

#[test]
fn ipxe_pxe_roms_are_legacy_only() {
    for path in files("/usr/lib/ipxe/qemu", "pxe-") {
        let parsed = rom::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert!(
            parsed.has_legacy() && !parsed.has_uefi(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn seabios_vga_roms_are_legacy_only() {
    for path in files("/usr/share/seabios", "vgabios") {
        let name = path.file_name().unwrap().to_str().unwrap();
        if ["vgabios.bin", "vgabios-isavga.bin", "vgabios-ramfb.bin"].contains(&name) {
            // BIOSes of ISA and platform display devices: 55 AA, but no PCI data structure.
            let data = std::fs::read(&path).unwrap();
            assert_eq!(rom::parse(&data), Err(RomError::BadPcir { offset: 0 }));
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let parsed = rom::parse(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(parsed.has_legacy(), "{}", path.display());
        assert!(!parsed.has_uefi(), "{}", path.display());
        assert_eq!(parsed.images[0].class.base(), 0x03, "{}", path.display());
    }
}

#[test]
fn every_cut_of_a_real_rom_is_an_error_or_a_whole_prefix() {
    let data = std::fs::read("/usr/lib/ipxe/qemu/efi-virtio.rom").unwrap();
    let whole = rom::parse(&data).unwrap();
    let boundaries: Vec<usize> = whole.images.iter().map(|i| i.offset + i.length).collect();
    let mut step = 0;
    while step < data.len() {
        match rom::parse(&data[..step]) {
            Ok(parsed) => {
                // Only a cut exactly after a whole image parses, and it says so.
                assert!(
                    boundaries.contains(&step) || step >= *boundaries.last().unwrap(),
                    "cut at {step}"
                );
                assert!(parsed.unterminated || step >= *boundaries.last().unwrap());
            }
            Err(e) => assert!(
                step == 0 || matches!(e, RomError::Truncated { .. }),
                "cut at {step}: {e:?}"
            ),
        }
        step += 97;
    }
}

#[test]
fn damaged_real_roms_never_panic() {
    let data = std::fs::read("/usr/lib/ipxe/qemu/efi-e1000.rom").unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..3000 {
        let mut copy = data.clone();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % copy.len();
            copy[at] = (state >> 32) as u8;
        }
        let _ = rom::parse(&copy);
    }
}

#[test]
fn rom_command_prints_the_contract_json() {
    let out = ctl(&["rom", "/usr/lib/ipxe/qemu/efi-e1000e.rom", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["has_legacy"], true);
    assert_eq!(v["has_uefi"], true);
    let first = &v["images"][0];
    assert_eq!(first["offset"], 0);
    assert_eq!(first["code_type"], 0);
    assert_eq!(first["vendor_id"], "8086");
    assert_eq!(first["device_id"], "10d3");
    assert_eq!(first["last"], false);
    assert!(first["efi_machine"].is_null());
    let efi = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["code_type"] == 3)
        .unwrap();
    assert_eq!(efi["efi_machine"], "8664");
    assert!(first["length"].as_u64().unwrap() > 0);
}

#[test]
fn rom_command_human_output_gives_the_verdict() {
    let out = ctl(&["rom", "/usr/share/seabios/vgabios-stdvga.bin"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("x86 BIOS (legacy)"), "{text}");
    assert!(text.contains("UEFI image for x86-64: no"), "{text}");
    assert!(text.contains("checksum valid"), "{text}");
}
