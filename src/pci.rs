//! PCI addresses, class codes and the names database (`pci.ids`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::host::{HostError, HostRoot};
use crate::i18n::{gettext, gettext_f};

/// A PCI function address, `DDDD:BB:DD.F`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

/// The slot a function sits in: functions of one slot are one physical card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciSlot {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
}

impl PciAddress {
    pub fn slot(&self) -> PciSlot {
        PciSlot {
            domain: self.domain,
            bus: self.bus,
            device: self.device,
        }
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl fmt::Display for PciSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}",
            self.domain, self.bus, self.device
        )
    }
}

impl Serialize for PciAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a PCI address was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressProblem {
    Empty,
    /// Not of the form `DDDD:BB:DD.F` or `BB:DD.F`.
    Format,
    DeviceRange,
    FunctionRange,
}

/// A rejected PCI address, with the input as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError {
    pub input: String,
    pub problem: AddressProblem,
}

impl std::error::Error for AddressError {}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug-escape so control characters and path parts are visible.
        let shown: String = format!("{:?}", self.input).chars().take(80).collect();
        let text = match self.problem {
            AddressProblem::Empty => gettext("The PCI address is empty"),
            AddressProblem::Format => gettext_f(
                "{input} is not a PCI address: expected DDDD:BB:DD.F or BB:DD.F in hexadecimal, such as 0000:01:00.0",
                &[("input", &shown)],
            ),
            AddressProblem::DeviceRange => gettext_f(
                "{input} is not a PCI address: the device number must be between 00 and 1f",
                &[("input", &shown)],
            ),
            AddressProblem::FunctionRange => gettext_f(
                "{input} is not a PCI address: the function number must be between 0 and 7",
                &[("input", &shown)],
            ),
        };
        f.write_str(&text)
    }
}

fn hex_field(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

impl FromStr for PciAddress {
    type Err = AddressError;

    /// Strict: `DDDD:BB:DD.F`, or `BB:DD.F` for domain 0000. Hex digits in any case.
    /// A domain has exactly four digits, or more only when its value needs them
    /// (Intel VMD domains such as `10000`), so every accepted address prints back as given.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |problem| AddressError {
            input: input.to_owned(),
            problem,
        };
        if input.is_empty() {
            return Err(err(AddressProblem::Empty));
        }
        let parts: Vec<&str> = input.split(':').collect();
        let (domain, bus, rest) = match parts.as_slice() {
            [bus, rest] => (0, *bus, *rest),
            [domain, bus, rest] => {
                let value = hex_field(domain, 4, 8).ok_or_else(|| err(AddressProblem::Format))?;
                if domain.len() > 4 && (value <= 0xffff || domain.starts_with('0')) {
                    return Err(err(AddressProblem::Format));
                }
                (value, *bus, *rest)
            }
            _ => return Err(err(AddressProblem::Format)),
        };
        let bus = hex_field(bus, 2, 2).ok_or_else(|| err(AddressProblem::Format))?;
        let (device, function) = rest
            .split_once('.')
            .ok_or_else(|| err(AddressProblem::Format))?;
        let device = hex_field(device, 2, 2).ok_or_else(|| err(AddressProblem::Format))?;
        let function = hex_field(function, 1, 1).ok_or_else(|| err(AddressProblem::Format))?;
        if device > 0x1f {
            return Err(err(AddressProblem::DeviceRange));
        }
        if function > 7 {
            return Err(err(AddressProblem::FunctionRange));
        }
        Ok(PciAddress {
            domain,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

/// The sysfs directory of a function.
pub fn sysfs_device_path(address: &PciAddress) -> PathBuf {
    PathBuf::from(format!("/sys/bus/pci/devices/{address}"))
}

/// A 24-bit PCI class code (base class, subclass, programming interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciClass(pub u32);

impl PciClass {
    pub fn base(self) -> u8 {
        (self.0 >> 16) as u8
    }
    pub fn sub(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// Display controllers (VGA, 3D, other): what users call a GPU.
    pub fn is_display(self) -> bool {
        self.base() == 0x03
    }
    pub fn is_vga(self) -> bool {
        self.base() == 0x03 && self.sub() == 0x00
    }
    /// PCI-to-PCI and semi-transparent bridges (not host or ISA bridges).
    pub fn is_pci_bridge(self) -> bool {
        self.base() == 0x06 && (self.sub() == 0x04 || self.sub() == 0x09)
    }
    pub fn is_network(self) -> bool {
        self.base() == 0x02
    }
}

impl fmt::Display for PciClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06x}", self.0)
    }
}

impl Serialize for PciClass {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The ids a names lookup is needed for, collected before reading the database
/// so that only the vendors present on the host are kept.
#[derive(Debug, Default)]
pub struct WantedIds {
    pub vendors: HashSet<u16>,
}

/// Names from `pci.ids`.
#[derive(Debug, Default)]
pub struct PciNames {
    vendors: HashMap<u16, String>,
    devices: HashMap<(u16, u16), String>,
    subsystems: HashMap<(u16, u16, u16, u16), String>,
    classes: HashMap<u8, String>,
    subclasses: HashMap<(u8, u8), String>,
    /// Where the names came from, if any database was found.
    pub source: Option<PathBuf>,
}

/// Where distributions keep `pci.ids` (hwdata, then pciutils).
pub const SYSTEM_PCI_IDS: [&str; 3] = [
    "/usr/share/hwdata/pci.ids",
    "/usr/share/misc/pci.ids",
    "/usr/share/pci.ids",
];

const PCI_IDS_LIMIT: u64 = 64 << 20;

impl PciNames {
    /// Load the names for `wanted` from `explicit`, or from the first system
    /// database found. The names database is the tool's data, not the host's:
    /// it is looked up on the running system even when a captured root is shown.
    /// No database is not an error (ids are shown instead); an explicit file
    /// that cannot be read is.
    pub fn load(explicit: Option<&Path>, wanted: &WantedIds) -> Result<Self, HostError> {
        let system = HostRoot::live();
        let text = match explicit {
            Some(path) => {
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
                Some((absolute.clone(), read_ids(&system, &absolute)?))
            }
            None => SYSTEM_PCI_IDS.iter().find_map(|p| {
                read_ids(&system, Path::new(p))
                    .ok()
                    .map(|t| (PathBuf::from(p), t))
            }),
        };
        Ok(match text {
            Some((path, text)) => {
                let mut names = Self::parse(&text, wanted);
                names.source = Some(path);
                names
            }
            None => Self::default(),
        })
    }

    /// Parse the `pci.ids` format, keeping devices and subsystems of `wanted` vendors only.
    pub fn parse(text: &str, wanted: &WantedIds) -> Self {
        let mut names = PciNames::default();
        let mut vendor: Option<u16> = None;
        let mut device: Option<u16> = None;
        let mut class: Option<u8> = None;
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let depth = line.bytes().take_while(|&b| b == b'\t').count();
            let body = &line[depth..];
            if depth == 0 {
                device = None;
                if let Some(rest) = body.strip_prefix("C ") {
                    vendor = None;
                    class = parse_entry(rest, 2).map(|(id, name)| {
                        names.classes.insert(id as u8, name.to_owned());
                        id as u8
                    });
                } else {
                    class = None;
                    vendor = parse_entry(body, 4).map(|(id, name)| {
                        names.vendors.insert(id as u16, name.to_owned());
                        id as u16
                    });
                }
                continue;
            }
            if let Some(c) = class {
                // Programming interfaces (depth 2) are more detail than any view shows.
                if depth == 1 {
                    if let Some((id, name)) = parse_entry(body, 2) {
                        names.subclasses.insert((c, id as u8), name.to_owned());
                    }
                }
                continue;
            }
            let Some(v) = vendor.filter(|v| wanted.vendors.contains(v)) else {
                continue;
            };
            match depth {
                1 => {
                    device = parse_entry(body, 4).map(|(id, name)| {
                        names.devices.insert((v, id as u16), name.to_owned());
                        id as u16
                    })
                }
                2 => {
                    // "ssss dddd  name": subsystem vendor and device.
                    if let (Some(d), Some((sv, rest))) = (device, body.split_once(' ')) {
                        if let (Some(sv), Some((sd, name))) =
                            (hex_field(sv, 4, 4), parse_entry(rest, 4))
                        {
                            names
                                .subsystems
                                .insert((v, d, sv as u16, sd as u16), name.to_owned());
                        }
                    }
                }
                _ => {}
            }
        }
        names
    }

    pub fn vendor(&self, vendor: u16) -> Option<&str> {
        self.vendors.get(&vendor).map(String::as_str)
    }

    pub fn device(&self, vendor: u16, device: u16) -> Option<&str> {
        self.devices.get(&(vendor, device)).map(String::as_str)
    }

    pub fn subsystem(&self, vendor: u16, device: u16, sv: u16, sd: u16) -> Option<&str> {
        self.subsystems
            .get(&(vendor, device, sv, sd))
            .map(String::as_str)
    }

    /// The subclass name, or the class name when the subclass is unknown.
    pub fn class(&self, class: PciClass) -> Option<&str> {
        self.subclasses
            .get(&(class.base(), class.sub()))
            .or_else(|| self.classes.get(&class.base()))
            .map(String::as_str)
    }
}

fn read_ids(root: &HostRoot, path: &Path) -> Result<String, HostError> {
    let data = root.read_bytes(path, PCI_IDS_LIMIT)?;
    // pci.ids is UTF-8 today; older copies were Latin-1: keep what decodes.
    Ok(String::from_utf8(data)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// "10de  NVIDIA Corporation" → (0x10de, "NVIDIA Corporation").
fn parse_entry(body: &str, digits: usize) -> Option<(u32, &str)> {
    let id = body.get(..digits)?;
    let name = body.get(digits..)?.trim_start();
    let id = hex_field(id, digits, digits)?;
    (!name.is_empty()).then_some((id, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<PciAddress, AddressProblem> {
        s.parse::<PciAddress>().map_err(|e| e.problem)
    }

    #[test]
    fn accepts_full_and_short_forms() {
        let a = parse("0000:01:00.1").unwrap();
        assert_eq!((a.domain, a.bus, a.device, a.function), (0, 1, 0, 1));
        assert_eq!(parse("01:00.1").unwrap(), a);
        assert_eq!(parse("0000:0A:1F.7").unwrap().to_string(), "0000:0a:1f.7");
        assert_eq!(parse("10000:e0:06.0").unwrap().to_string(), "10000:e0:06.0");
    }

    #[test]
    fn rejects_everything_else() {
        use AddressProblem::*;
        for (input, problem) in [
            ("", Empty),
            ("0000:01:00", Format),
            ("0000:01:00.0/../../x", Format),
            ("../0000:01:00.0", Format),
            (" 0000:01:00.0", Format),
            ("0000:01:00.0 ", Format),
            ("0000:01:00.0\n", Format),
            ("000:01:00.0", Format),
            ("00000:01:00.0", Format),
            ("0000:1:00.0", Format),
            ("0000:001:00.0", Format),
            ("0000:01:0.0", Format),
            ("0000:01:00.00", Format),
            ("0000:0g:00.0", Format),
            ("+000:01:00.0", Format),
            ("0000:01:20.0", DeviceRange),
            ("0000:01:00.8", FunctionRange),
            ("0:0:0:0.0", Format),
        ] {
            assert_eq!(parse(input), Err(problem), "{input:?}");
        }
    }

    #[test]
    fn names_come_from_pci_ids() {
        let text = "# comment\n10de  NVIDIA Corporation\n\t1402  GM206 [GeForce GTX 950]\n\t\t1458 36c5  GV-N950WF2OC-2GD\n8086  Intel Corporation\n\t0162  Xeon E3-1200 v2/3rd Gen Core processor Graphics Controller\nC 03  Display controller\n\t00  VGA compatible controller\n\t\t00  VGA controller\n";
        let mut wanted = WantedIds::default();
        wanted.vendors.insert(0x10de);
        let names = PciNames::parse(text, &wanted);
        assert_eq!(names.vendor(0x10de), Some("NVIDIA Corporation"));
        assert_eq!(
            names.device(0x10de, 0x1402),
            Some("GM206 [GeForce GTX 950]")
        );
        assert_eq!(
            names.subsystem(0x10de, 0x1402, 0x1458, 0x36c5),
            Some("GV-N950WF2OC-2GD")
        );
        // Vendor names are always kept; device names only for wanted vendors.
        assert_eq!(names.vendor(0x8086), Some("Intel Corporation"));
        assert_eq!(names.device(0x8086, 0x0162), None);
        assert_eq!(
            names.class(PciClass(0x030000)),
            Some("VGA compatible controller")
        );
        assert_eq!(names.class(PciClass(0x038000)), Some("Display controller"));
    }
}
