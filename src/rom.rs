//! PCI expansion ROM parser: the chain of images, their code types and, for
//! EFI images, the machine type — enough to tell whether a GPU can show a
//! picture under OVMF (a UEFI guest) when the host keeps another GPU.
//!
//! The parser walks the chain by each image's length until the last-image bit;
//! it never scans for `55 AA` and never reads past the buffer.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::host::{HostError, HostProblem, HostRoot};
use crate::i18n::{gettext, gettext_f};
use crate::pci::{sysfs_device_path, PciAddress, PciClass};

/// Largest ROM the tool reads: the ROM BAR is at most 16 MiB.
pub const ROM_LIMIT: u64 = 16 << 20;

/// Code types of the PCI Data Structure.
pub const CODE_TYPE_LEGACY: u8 = 0x00;
pub const CODE_TYPE_EFI: u8 = 0x03;

/// The EFI image signature at +0x04 of an EFI image.
pub const EFI_SIGNATURE: u32 = 0x0EF1;

/// EFI machine types (PE/COFF).
pub const EFI_MACHINE_X64: u16 = 0x8664;
pub const EFI_MACHINE_IA32: u16 = 0x014C;
pub const EFI_MACHINE_EBC: u16 = 0x0EBC;
pub const EFI_MACHINE_AARCH64: u16 = 0xAA64;

/// The header of an EFI image (code type 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EfiHeader {
    /// Whether +0x04 holds `0x0EF1`.
    pub signature_valid: bool,
    /// 0x0B boot-service driver, 0x0C runtime driver.
    pub subsystem: u16,
    pub machine: u16,
    pub compressed: bool,
}

/// One image of a ROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RomImage {
    pub offset: usize,
    pub length: usize,
    pub code_type: u8,
    pub vendor_id: u16,
    pub device_id: u16,
    pub class: PciClass,
    pub last: bool,
    pub efi: Option<EfiHeader>,
    /// For legacy images: whether all bytes sum to 0 mod 256.
    pub checksum_valid: Option<bool>,
}

impl RomImage {
    /// An EFI driver that x86-64 OVMF can run (x64 or EFI byte code).
    pub fn is_uefi_for_x64(&self) -> bool {
        self.efi.as_ref().is_some_and(|efi| {
            efi.signature_valid && matches!(efi.machine, EFI_MACHINE_X64 | EFI_MACHINE_EBC)
        })
    }
}

/// A parsed ROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rom {
    pub images: Vec<RomImage>,
    /// No image carried the last-image bit; the walk stopped where no further image began.
    pub unterminated: bool,
    /// Bytes after the last image (padding in dumps).
    pub trailing_bytes: usize,
}

impl Rom {
    pub fn has_legacy(&self) -> bool {
        self.images.iter().any(|i| i.code_type == CODE_TYPE_LEGACY)
    }

    /// A UEFI GOP driver an x86-64 UEFI guest can use.
    pub fn has_uefi(&self) -> bool {
        self.images.iter().any(RomImage::is_uefi_for_x64)
    }
}

/// Why a buffer is not a usable ROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RomError {
    Empty,
    /// The buffer does not start with `55 AA`.
    NotRom,
    /// An image or structure runs past the end of the data.
    Truncated {
        offset: usize,
    },
    /// The pointer at +0x18 does not lead to a `PCIR` structure.
    BadPcir {
        offset: usize,
    },
    /// An image declares a length of zero.
    ZeroLength {
        offset: usize,
    },
}

impl std::error::Error for RomError {}

impl fmt::Display for RomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            RomError::Empty => gettext("The ROM is empty"),
            RomError::NotRom => {
                gettext("This is not a PCI option ROM: it does not start with the signature 55 AA")
            }
            RomError::Truncated { offset } => gettext_f(
                "The ROM is truncated: the image at offset {offset} runs past the end of the data",
                &[("offset", &format!("{offset:#x}"))],
            ),
            RomError::BadPcir { offset } => gettext_f(
                "The image at offset {offset} has no valid PCI data structure (PCIR)",
                &[("offset", &format!("{offset:#x}"))],
            ),
            RomError::ZeroLength { offset } => gettext_f(
                "The image at offset {offset} declares a length of zero",
                &[("offset", &format!("{offset:#x}"))],
            ),
        };
        f.write_str(&text)
    }
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        buf.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        buf.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Parse a ROM image chain.
pub fn parse(buf: &[u8]) -> Result<Rom, RomError> {
    if buf.is_empty() {
        return Err(RomError::Empty);
    }
    let mut images = Vec::new();
    let mut offset = 0usize;
    loop {
        let truncated = RomError::Truncated { offset };
        if offset >= buf.len() || buf.get(offset..offset + 2) != Some(&[0x55, 0xAA][..]) {
            if images.is_empty() {
                return Err(if buf.len() < 2 {
                    truncated
                } else {
                    RomError::NotRom
                });
            }
            if buf.get(offset..) == Some(&[0x55][..]) {
                return Err(truncated);
            }
            // The previous image lacked the last-image bit and no image follows it.
            return Ok(Rom {
                images,
                unterminated: true,
                trailing_bytes: buf.len().saturating_sub(offset),
            });
        }
        let pcir_pointer = u16_at(buf, offset + 0x18).ok_or(truncated.clone())? as usize;
        let pcir = offset + pcir_pointer;
        let pcir_data = buf.get(pcir..pcir + 0x18).ok_or(truncated.clone())?;
        if &pcir_data[0..4] != b"PCIR" {
            return Err(RomError::BadPcir { offset });
        }
        let length = usize::from(u16::from_le_bytes([pcir_data[0x10], pcir_data[0x11]])) * 512;
        if length == 0 {
            return Err(RomError::ZeroLength { offset });
        }
        if pcir_pointer + 0x18 > length {
            return Err(RomError::BadPcir { offset });
        }
        let image = buf.get(offset..offset + length).ok_or(truncated)?;
        let code_type = pcir_data[0x14];
        let last = pcir_data[0x15] & 0x80 != 0;
        let efi = (code_type == CODE_TYPE_EFI).then(|| EfiHeader {
            signature_valid: u32_at(image, 0x04) == Some(EFI_SIGNATURE),
            subsystem: u16_at(image, 0x08).unwrap_or(0),
            machine: u16_at(image, 0x0A).unwrap_or(0),
            compressed: u16_at(image, 0x0C).unwrap_or(0) != 0,
        });
        let checksum_valid = (code_type == CODE_TYPE_LEGACY)
            .then(|| image.iter().fold(0u8, |sum, b| sum.wrapping_add(*b)) == 0);
        images.push(RomImage {
            offset,
            length,
            code_type,
            vendor_id: u16::from_le_bytes([pcir_data[4], pcir_data[5]]),
            device_id: u16::from_le_bytes([pcir_data[6], pcir_data[7]]),
            class: PciClass(u32::from_le_bytes([
                pcir_data[0x0D],
                pcir_data[0x0E],
                pcir_data[0x0F],
                0,
            ])),
            last,
            efi,
            checksum_valid,
        });
        offset += length;
        if last {
            return Ok(Rom {
                images,
                unterminated: false,
                trailing_bytes: buf.len() - offset,
            });
        }
    }
}

/// A translated name for a code type.
pub fn code_type_name(code_type: u8) -> String {
    match code_type {
        CODE_TYPE_LEGACY => gettext("x86 BIOS (legacy)"),
        0x01 => gettext("Open Firmware"),
        0x02 => gettext("PA-RISC"),
        CODE_TYPE_EFI => gettext("UEFI"),
        other => gettext_f(
            "vendor-specific ({code})",
            &[("code", &format!("{other:#04x}"))],
        ),
    }
}

/// A name for an EFI machine type.
pub fn efi_machine_name(machine: u16) -> String {
    match machine {
        EFI_MACHINE_X64 => "x86-64".to_owned(),
        EFI_MACHINE_IA32 => "IA-32".to_owned(),
        // Translators: EFI Byte Code, a processor-independent EFI driver format.
        EFI_MACHINE_EBC => gettext("EFI byte code"),
        EFI_MACHINE_AARCH64 => "AArch64".to_owned(),
        0x0200 => "Itanium".to_owned(),
        0x5064 => "RISC-V 64".to_owned(),
        0x6264 => "LoongArch 64".to_owned(),
        other => format!("{other:#06x}"),
    }
}

/// A ROM file the user chose (not a host path): read whole, up to [`ROM_LIMIT`].
pub fn read_rom_file(path: &Path) -> Result<Vec<u8>, HostError> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    // A pipe would block the reader; a device could be endless or act.
    if let Ok(meta) = std::fs::metadata(&absolute) {
        if !meta.is_file() && !meta.is_dir() {
            return Err(HostError {
                path: absolute,
                problem: HostProblem::NotAFile,
            });
        }
    }
    HostRoot::live().read_bytes(&absolute, ROM_LIMIT)
}

/// Read a function's ROM. On the live system this enables the ROM through
/// sysfs (`1`), reads it and disables it again (`0`) whatever happened, which
/// needs root. In a captured root the file holds the ROM as captured.
pub fn read_device_rom(host: &HostRoot, address: &PciAddress) -> Result<Vec<u8>, HostError> {
    let path = sysfs_device_path(address).join("rom");
    if !host.is_live() {
        let data = host.read_bytes(&path, ROM_LIMIT)?;
        if data.is_empty() {
            if let Some(reason) = captured_rom_error(host, address) {
                return Err(HostError {
                    path: host.display(&path),
                    problem: HostProblem::FailedWhenCaptured(reason),
                });
            }
            return Err(HostError::bad_content(
                host.display(&path),
                gettext("the ROM was not captured (capture as root to include it)"),
            ));
        }
        return Ok(data);
    }
    host.write(&path, b"1")?;
    let data = host.read_bytes(&path, ROM_LIMIT);
    let disabled = host.write(&path, b"0");
    let data = data?;
    disabled?;
    Ok(data)
}

/// Why reading this ROM failed on the host a capture came from, if it did.
fn captured_rom_error(host: &HostRoot, address: &PciAddress) -> Option<String> {
    let text = host
        .read_string(format!("/{}", crate::capture::MANIFEST))
        .ok()?;
    let summary: crate::capture::CaptureSummary = serde_json::from_str(&text).ok()?;
    summary.rom_errors.get(&address.to_string()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal image: header, PCIR at 0x1c, `blocks` × 512 bytes.
    fn image(code_type: u8, blocks: u16, last: bool) -> Vec<u8> {
        let mut img = vec![0u8; usize::from(blocks) * 512];
        img[0] = 0x55;
        img[1] = 0xAA;
        img[0x18] = 0x1c;
        img[0x1c..0x20].copy_from_slice(b"PCIR");
        img[0x20..0x22].copy_from_slice(&0x8086u16.to_le_bytes());
        img[0x22..0x24].copy_from_slice(&0x100eu16.to_le_bytes());
        img[0x29..0x2c].copy_from_slice(&[0x00, 0x00, 0x02]);
        img[0x2c..0x2e].copy_from_slice(&blocks.to_le_bytes());
        img[0x30] = code_type;
        img[0x31] = if last { 0x80 } else { 0 };
        if code_type == CODE_TYPE_EFI {
            img[4..8].copy_from_slice(&EFI_SIGNATURE.to_le_bytes());
            img[8..10].copy_from_slice(&0x0bu16.to_le_bytes());
            img[10..12].copy_from_slice(&EFI_MACHINE_X64.to_le_bytes());
        } else {
            let sum = img.iter().fold(0u8, |s, b| s.wrapping_add(*b));
            img[6] = 0u8.wrapping_sub(sum);
        }
        img
    }

    #[test]
    fn walks_a_legacy_and_efi_chain() {
        let mut rom = image(CODE_TYPE_LEGACY, 2, false);
        rom.extend(image(CODE_TYPE_EFI, 3, true));
        rom.extend([0xff; 100]);
        let parsed = parse(&rom).unwrap();
        assert_eq!(parsed.images.len(), 2);
        assert_eq!(parsed.images[1].offset, 1024);
        assert_eq!(parsed.images[1].length, 1536);
        assert_eq!(parsed.images[0].checksum_valid, Some(true));
        assert_eq!(parsed.images[0].class, PciClass(0x020000));
        assert!(parsed.has_legacy() && parsed.has_uefi());
        assert_eq!(parsed.trailing_bytes, 100);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut rom = image(CODE_TYPE_LEGACY, 2, false);
        rom.extend(image(CODE_TYPE_EFI, 3, true));
        for len in 0..rom.len() {
            let result = parse(&rom[..len]);
            if len == 1024 {
                // Cut exactly between images: the first image is whole.
                assert!(result.unwrap().unterminated);
            } else {
                assert!(result.is_err(), "length {len}");
            }
        }
    }

    #[test]
    fn rejects_non_roms_and_zero_lengths() {
        assert_eq!(parse(b"hello world, not a rom"), Err(RomError::NotRom));
        assert_eq!(parse(&[]), Err(RomError::Empty));
        let mut zero = image(CODE_TYPE_LEGACY, 1, true);
        zero[0x2c] = 0;
        assert_eq!(parse(&zero), Err(RomError::ZeroLength { offset: 0 }));
        let mut bad = image(CODE_TYPE_LEGACY, 1, true);
        bad[0x18] = 0x00;
        bad[0x19] = 0x01;
        assert_eq!(parse(&bad), Err(RomError::BadPcir { offset: 0 }));
    }

    #[test]
    fn pseudo_random_input_never_panics() {
        // A xorshift stream, so the test is repeatable without a dependency.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..2000 {
            let len = (round * 37) % 3000;
            let mut buf: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            if buf.len() > 0x40 && round % 2 == 0 {
                buf[0] = 0x55;
                buf[1] = 0xAA;
                buf[0x18] = 0x1c;
                buf[0x1c..0x20].copy_from_slice(b"PCIR");
            }
            let _ = parse(&buf);
        }
    }
}
