//! Synthetic host trees for tests and benchmarks, made from a compact
//! description. They mirror the kernel's sysfs layout (device directories
//! under `/sys/devices/pci…`, relative links from `/sys/bus/pci/devices`,
//! `driver` and `iommu_group` links, group member links), so the scan reads
//! them exactly as it reads a live host. They prove analysis, never binding:
//! binding is tested on a real kernel in the lab.
//!
//! The description has one item per line; `#` starts a comment:
//!
//! ```text
//! cmdline intel_iommu=on iommu=pt
//! file /proc/cpuinfo vendor_id\t: GenuineIntel\n
//! dev 0000:00:01.0 8086:0151 class=060400 group=1 driver=pcieport acs=001f:001d
//! dev 0000:01:00.0 10de:1402 class=030000 group=1 parent=00:01.0 subsys=1458:36c5
//!     driver=nouveau boot_vga=1 reset=bus rom=/usr/share/seabios/vgabios-stdvga.bin
//! ```
//!
//! Device keys: `class`, `group`, `parent`, `subsys`, `rev`, `driver`,
//! `boot_vga` (VGA functions only), `reset` (comma list, or `none`), `rom`
//! (flag for an empty, uncaptured ROM, or `rom=FILE` for its content),
//! `physfn`, `vfio-dev`, `acs=CAP:CTRL` (full config space with that ACS
//! capability; `acs=none` full config space without), `link=SPEED:WIDTH`.
//! `file PATH TEXT` writes TEXT (with `\n` and `\t` escapes) at PATH.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::pci::{PciAddress, PciClass};

/// One function of a synthetic host.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub address: PciAddress,
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    pub subsystem: Option<(u16, u16)>,
    pub revision: u8,
    pub driver: Option<String>,
    pub group: Option<u32>,
    pub parent: Option<PciAddress>,
    pub boot_vga: Option<bool>,
    /// `None`: no reset attribute at all.
    pub reset: Option<Vec<String>>,
    pub rom: Option<RomSpec>,
    pub physfn: Option<PciAddress>,
    pub vfio_dev: bool,
    /// `Some(None)`: full config space without ACS; `Some(Some((cap, ctrl)))` with it.
    pub acs: Option<Option<(u16, u16)>>,
    pub link: Option<(String, u32)>,
}

/// The content of a synthetic `rom` attribute.
#[derive(Debug, Clone)]
pub enum RomSpec {
    /// Present but not captured (a capture made without root).
    Empty,
    File(PathBuf),
}

impl DeviceSpec {
    pub fn new(address: PciAddress, vendor: u16, device: u16, class: u32) -> Self {
        DeviceSpec {
            address,
            vendor,
            device,
            class,
            subsystem: None,
            revision: 0,
            driver: None,
            group: None,
            parent: None,
            boot_vga: None,
            reset: Some(vec!["bus".into()]),
            rom: None,
            physfn: None,
            vfio_dev: false,
            acs: None,
            link: None,
        }
    }
}

/// A whole synthetic host.
#[derive(Debug, Clone, Default)]
pub struct HostSpec {
    pub devices: Vec<DeviceSpec>,
    /// Extra files: host path → content.
    pub files: BTreeMap<String, String>,
    pub group_type: Option<String>,
}

/// A line of a description that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for SpecError {}

fn hex(s: &str, line: usize) -> Result<u32, SpecError> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|_| SpecError {
        line,
        message: format!("not a hexadecimal number: {s:?}"),
    })
}

fn pair(s: &str, line: usize) -> Result<(u16, u16), SpecError> {
    let (a, b) = s.split_once(':').ok_or(SpecError {
        line,
        message: format!("expected XXXX:XXXX, found {s:?}"),
    })?;
    Ok((hex(a, line)? as u16, hex(b, line)? as u16))
}

fn address(s: &str, line: usize) -> Result<PciAddress, SpecError> {
    s.parse().map_err(|e: crate::pci::AddressError| SpecError {
        line,
        message: e.to_string(),
    })
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

impl HostSpec {
    /// Parse a description. Lines starting with whitespace continue the previous item.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let mut spec = HostSpec::default();
        let mut items: Vec<(usize, String)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split(" #").next().unwrap_or("");
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            match items.last_mut() {
                Some((_, item)) if line.starts_with([' ', '\t']) => {
                    item.push(' ');
                    item.push_str(line.trim());
                }
                _ => items.push((i + 1, line.trim().to_owned())),
            }
        }
        for (line, item) in items {
            let (word, rest) = item.split_once(' ').unwrap_or((&item, ""));
            match word {
                "cmdline" => {
                    spec.files
                        .insert("/proc/cmdline".into(), format!("{rest}\n"));
                }
                "file" => {
                    let (path, text) = rest.split_once(' ').unwrap_or((rest, ""));
                    spec.files.insert(path.to_owned(), unescape(text));
                }
                "group-type" => spec.group_type = Some(rest.to_owned()),
                "dev" => spec.devices.push(Self::parse_device(rest, line)?),
                other => {
                    return Err(SpecError {
                        line,
                        message: format!("unknown item {other:?}"),
                    })
                }
            }
        }
        Ok(spec)
    }

    fn parse_device(rest: &str, line: usize) -> Result<DeviceSpec, SpecError> {
        let mut words = rest.split_whitespace();
        let addr = address(words.next().unwrap_or(""), line)?;
        let (vendor, device) = pair(words.next().unwrap_or(""), line)?;
        let mut dev = DeviceSpec::new(addr, vendor, device, 0);
        for word in words {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            match key {
                "class" => dev.class = hex(value, line)?,
                "group" => {
                    dev.group = Some(value.parse().map_err(|_| SpecError {
                        line,
                        message: format!("bad group {value:?}"),
                    })?)
                }
                "parent" => dev.parent = Some(address(value, line)?),
                "physfn" => dev.physfn = Some(address(value, line)?),
                "subsys" => dev.subsystem = Some(pair(value, line)?),
                "rev" => dev.revision = hex(value, line)? as u8,
                "driver" => dev.driver = Some(value.to_owned()),
                "boot_vga" => dev.boot_vga = Some(value == "1"),
                "reset" if value == "none" => dev.reset = None,
                "reset" => dev.reset = Some(value.split(',').map(str::to_owned).collect()),
                "rom" if value.is_empty() => dev.rom = Some(RomSpec::Empty),
                "rom" => dev.rom = Some(RomSpec::File(value.into())),
                "vfio-dev" => dev.vfio_dev = true,
                "acs" if value == "none" => dev.acs = Some(None),
                "acs" => dev.acs = Some(Some(pair(value, line)?)),
                "link" => {
                    let (speed, width) = value.split_once(':').unwrap_or((value, "0"));
                    dev.link = Some((speed.replace('_', " "), width.parse().unwrap_or(0)));
                }
                other => {
                    return Err(SpecError {
                        line,
                        message: format!("unknown device key {other:?}"),
                    })
                }
            }
        }
        Ok(dev)
    }

    /// A host with `functions` SR-IOV functions: root ports, each with a
    /// physical function and up to 255 virtual functions on its bus, every
    /// function in its own group (ACS on the ports), as on a large server NIC.
    pub fn sriov(functions: usize) -> Self {
        let mut spec = HostSpec::default();
        spec.files.insert(
            "/proc/cmdline".into(),
            "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on iommu=pt\n".into(),
        );
        let mut group = 0u32;
        let mut next_group = || {
            group += 1;
            group - 1
        };
        let mut host_bridge = DeviceSpec::new(
            "0000:00:00.0".parse().expect("valid"),
            0x8086,
            0x3e30,
            0x060000,
        );
        host_bridge.group = Some(next_group());
        host_bridge.reset = None;
        spec.devices.push(host_bridge);
        let mut made = 0usize;
        let mut port = 1u8;
        while made < functions && port < 0x20 {
            let port_addr = PciAddress {
                domain: 0,
                bus: 0,
                device: port,
                function: 0,
            };
            let mut root_port = DeviceSpec::new(port_addr, 0x8086, 0x1901, 0x060400);
            root_port.group = Some(next_group());
            root_port.driver = Some("pcieport".into());
            root_port.acs = Some(Some((0x001f, 0x001d)));
            spec.devices.push(root_port);
            let bus = port;
            let pf = PciAddress {
                domain: 0,
                bus,
                device: 0,
                function: 0,
            };
            for n in 0..256usize {
                if made == functions {
                    break;
                }
                let address = PciAddress {
                    domain: 0,
                    bus,
                    device: (n / 8) as u8,
                    function: (n % 8) as u8,
                };
                let (device, driver) = if n == 0 {
                    (0x1593, "ice")
                } else {
                    (0x1889, "iavf")
                };
                let mut f = DeviceSpec::new(address, 0x8086, device, 0x020000);
                f.subsystem = Some((0x8086, 0x0002));
                f.driver = Some(driver.into());
                f.group = Some(next_group());
                f.parent = Some(port_addr);
                f.reset = Some(vec!["flr".into()]);
                f.link = Some(("16.0 GT/s PCIe".into(), 8));
                if n > 0 {
                    f.physfn = Some(pf);
                }
                spec.devices.push(f);
                made += 1;
            }
            port += 1;
        }
        spec
    }

    /// Write the tree under `root` (which may exist).
    pub fn write(&self, root: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::symlink;
        let by_address: BTreeMap<PciAddress, &DeviceSpec> =
            self.devices.iter().map(|d| (d.address, d)).collect();
        // The device path follows the parent chain: /sys/devices/pciDDDD:BB/…/ADDR.
        let device_dir = |d: &DeviceSpec| -> PathBuf {
            let mut chain = vec![d.address];
            let mut cursor = d.parent;
            while let Some(p) = cursor {
                if chain.contains(&p) {
                    break;
                }
                chain.push(p);
                cursor = by_address.get(&p).and_then(|pd| pd.parent);
            }
            let top = chain.last().copied().unwrap_or(d.address);
            let mut path =
                PathBuf::from(format!("sys/devices/pci{:04x}:{:02x}", top.domain, top.bus));
            for a in chain.iter().rev() {
                path.push(a.to_string());
            }
            path
        };
        let up = |from: &Path| -> String { "../".repeat(from.components().count() - 1) };

        for dir in [
            "sys/bus/pci/devices",
            "sys/bus/pci/drivers",
            "sys/kernel/iommu_groups",
            "proc",
        ] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        for d in &self.devices {
            let rel = device_dir(d);
            let dir = root.join(&rel);
            std::fs::create_dir_all(&dir)?;
            let write = |name: &str, text: String| std::fs::write(dir.join(name), text);
            write("vendor", format!("0x{:04x}\n", d.vendor))?;
            write("device", format!("0x{:04x}\n", d.device))?;
            write("class", format!("0x{:06x}\n", d.class))?;
            write("revision", format!("0x{:02x}\n", d.revision))?;
            let (sv, sd) = d.subsystem.unwrap_or((0, 0));
            write("subsystem_vendor", format!("0x{sv:04x}\n"))?;
            write("subsystem_device", format!("0x{sd:04x}\n"))?;
            write("driver_override", "(null)\n".into())?;
            let mut uevent = String::new();
            if let Some(driver) = &d.driver {
                uevent.push_str(&format!("DRIVER={driver}\n"));
            }
            uevent.push_str(&format!(
                "PCI_CLASS={:X}\nPCI_ID={:04X}:{:04X}\nPCI_SUBSYS_ID={sv:04X}:{sd:04X}\nPCI_SLOT_NAME={}\n",
                d.class, d.vendor, d.device, d.address
            ));
            write("uevent", uevent)?;
            std::fs::write(dir.join("config"), self.config(d))?;
            if PciClass(d.class).is_vga() {
                let boot = d.boot_vga.unwrap_or(false);
                write("boot_vga", format!("{}\n", u8::from(boot)))?;
            }
            if let Some(methods) = &d.reset {
                write("reset_method", format!("{}\n", methods.join(" ")))?;
                write("reset", String::new())?;
            }
            match &d.rom {
                Some(RomSpec::Empty) => write("rom", String::new())?,
                Some(RomSpec::File(path)) => {
                    std::fs::copy(path, dir.join("rom"))?;
                }
                None => {}
            }
            if let Some((speed, width)) = &d.link {
                for prefix in ["current", "max"] {
                    write(&format!("{prefix}_link_speed"), format!("{speed}\n"))?;
                    write(&format!("{prefix}_link_width"), format!("{width}\n"))?;
                }
            }
            if d.vfio_dev {
                std::fs::create_dir_all(dir.join("vfio-dev"))?;
            }
            let back = up(&rel);
            if let Some(driver) = &d.driver {
                std::fs::create_dir_all(root.join("sys/bus/pci/drivers").join(driver))?;
                symlink(
                    format!("{back}bus/pci/drivers/{driver}"),
                    dir.join("driver"),
                )?;
            }
            if let Some(pf) = d.physfn.and_then(|p| by_address.get(&p)) {
                let pf_rel = device_dir(pf);
                let pf_inside = pf_rel.strip_prefix("sys").unwrap_or(&pf_rel);
                symlink(format!("{back}{}", pf_inside.display()), dir.join("physfn"))?;
            }
            let inside = rel
                .strip_prefix("sys")
                .unwrap_or(&rel)
                .display()
                .to_string();
            symlink(
                format!("../../../{inside}"),
                root.join("sys/bus/pci/devices").join(d.address.to_string()),
            )?;
            if let Some(g) = d.group {
                let gdir = root.join(format!("sys/kernel/iommu_groups/{g}"));
                std::fs::create_dir_all(gdir.join("devices"))?;
                let kind = self.group_type.clone().unwrap_or_else(|| "DMA".into());
                std::fs::write(gdir.join("type"), format!("{kind}\n"))?;
                symlink(
                    format!("{back}kernel/iommu_groups/{g}"),
                    dir.join("iommu_group"),
                )?;
                symlink(
                    format!("../../../../{inside}"),
                    gdir.join("devices").join(d.address.to_string()),
                )?;
            }
        }
        for (path, text) in &self.files {
            let target = root.join(path.trim_start_matches('/'));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(target, text)?;
        }
        Ok(())
    }

    /// Config space: 64 bytes as an unprivileged reader sees it, or 4 KiB
    /// with a PCI Express capability and optional ACS when `acs` is set.
    fn config(&self, d: &DeviceSpec) -> Vec<u8> {
        let full = d.acs.is_some();
        let mut c = vec![0u8; if full { 4096 } else { 64 }];
        c[0..2].copy_from_slice(&d.vendor.to_le_bytes());
        c[2..4].copy_from_slice(&d.device.to_le_bytes());
        c[8] = d.revision;
        c[9..12].copy_from_slice(&d.class.to_le_bytes()[..3]);
        let bridge = PciClass(d.class).is_pci_bridge();
        c[0x0E] = u8::from(bridge);
        if !bridge {
            let (sv, sd) = d.subsystem.unwrap_or((0, 0));
            c[0x2C..0x2E].copy_from_slice(&sv.to_le_bytes());
            c[0x2E..0x30].copy_from_slice(&sd.to_le_bytes());
        }
        if full {
            // Capabilities list → PCI Express capability at 0x40 (root port or endpoint).
            c[0x06] = 0x10;
            c[0x34] = 0x40;
            c[0x40] = 0x10;
            let port_type: u16 = if bridge { 0x4 } else { 0x0 };
            c[0x42..0x44].copy_from_slice(&((port_type << 4) | 2).to_le_bytes());
            if let Some(Some((cap, ctrl))) = d.acs {
                // Extended capability 0x000D (ACS), version 1, last in the list.
                c[0x100..0x104].copy_from_slice(&(0x000D_u32 | (1 << 16)).to_le_bytes());
                c[0x104..0x106].copy_from_slice(&cap.to_le_bytes());
                c[0x106..0x108].copy_from_slice(&ctrl.to_le_bytes());
            }
        }
        c
    }
}
