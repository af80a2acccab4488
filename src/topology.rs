//! The host's PCI devices and IOMMU groups: the scan, and the analysis that
//! turns it into findings with stable codes.
//!
//! The scan reads sysfs through a [`HostRoot`]; names come from [`PciNames`];
//! [`analyse`] is pure and works on what the scan found.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::host::{HostDir, HostError, HostProblem, HostRoot};
use crate::i18n::{gettext, gettext_f, ngettext_f};
use crate::pci::{sysfs_device_path, PciAddress, PciClass, PciNames, WantedIds};
use crate::rom;

pub const PCI_DEVICES: &str = "/sys/bus/pci/devices";
pub const IOMMU_GROUPS: &str = "/sys/kernel/iommu_groups";
pub const CMDLINE: &str = "/proc/cmdline";

/// Config space is 256 bytes (PCI) or 4 KiB (PCIe).
const CONFIG_STANDARD: usize = 256;
const CONFIG_EXTENDED: usize = 4096;

fn hex16<S: Serializer>(v: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:04x}"))
}

fn opt_hex16<S: Serializer>(v: &Option<u16>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => hex16(v, s),
        None => s.serialize_none(),
    }
}

/// The PCI Express link of a function, from sysfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PcieLink {
    pub current_speed: Option<String>,
    pub current_width: Option<u32>,
    pub max_speed: Option<String>,
    pub max_width: Option<u32>,
}

/// Access Control Services of a bridge or port, when config space was readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Acs {
    /// Only the first 64 bytes of config space were readable (not root).
    Unknown,
    /// No ACS capability: devices below may reach each other.
    Absent,
    Present {
        capability: u16,
        control: u16,
        /// Control has Source Validation, Request and Completion Redirect and Upstream Forwarding on.
        isolating: bool,
    },
}

/// What reading a function's option ROM showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum RomVerdict {
    Read {
        has_legacy: bool,
        has_uefi: bool,
        images: usize,
        /// The boot VGA device: the kernel hands out the firmware's shadow copy,
        /// which says nothing about the card's own UEFI support.
        shadow_copy: bool,
    },
    Unreadable {
        reason: String,
    },
}

impl RomVerdict {
    /// The verdict on a parsed ROM; `shadow_copy` for the boot VGA device's.
    pub fn of(rom: &rom::Rom, shadow_copy: bool) -> Self {
        RomVerdict::Read {
            has_legacy: rom.has_legacy(),
            has_uefi: rom.has_uefi(),
            images: rom.images.len(),
            shadow_copy,
        }
    }
}

/// One PCI function.
#[derive(Debug, Clone, Serialize)]
pub struct PciDevice {
    pub address: PciAddress,
    #[serde(serialize_with = "hex16")]
    pub vendor_id: u16,
    #[serde(serialize_with = "hex16")]
    pub device_id: u16,
    #[serde(serialize_with = "opt_hex16")]
    pub subsystem_vendor_id: Option<u16>,
    #[serde(serialize_with = "opt_hex16")]
    pub subsystem_device_id: Option<u16>,
    pub class: PciClass,
    pub revision: Option<u8>,
    pub vendor_name: Option<String>,
    pub device_name: Option<String>,
    pub subsystem_name: Option<String>,
    pub class_name: Option<String>,
    pub driver: Option<String>,
    pub iommu_group: Option<u32>,
    pub boot_vga: bool,
    pub reset_methods: Vec<String>,
    /// The kernel knows a way to reset it (`reset_method`, or `reset` on older kernels).
    pub can_reset: bool,
    pub has_rom: bool,
    pub rom: Option<RomVerdict>,
    pub bridge: bool,
    /// The upstream bridge or port; `None` on a root bus.
    pub parent: Option<PciAddress>,
    /// For an SR-IOV virtual function, its physical function.
    pub physfn: Option<PciAddress>,
    /// PCIe device/port type, from the PCI Express capability (needs full config space).
    pub pcie_type: Option<&'static str>,
    pub link: Option<PcieLink>,
    pub acs: Option<Acs>,
}

impl PciDevice {
    /// A function known only by its address, ids and class; everything else
    /// empty (filled in by whoever knows more).
    pub fn unknown(address: PciAddress, vendor_id: u16, device_id: u16, class: PciClass) -> Self {
        PciDevice {
            address,
            vendor_id,
            device_id,
            subsystem_vendor_id: None,
            subsystem_device_id: None,
            class,
            revision: None,
            vendor_name: None,
            device_name: None,
            subsystem_name: None,
            class_name: None,
            driver: None,
            iommu_group: None,
            boot_vga: false,
            reset_methods: Vec::new(),
            can_reset: false,
            has_rom: false,
            rom: None,
            bridge: false,
            parent: None,
            physfn: None,
            pcie_type: None,
            link: None,
            acs: None,
        }
    }

    /// A short name for sentences: the device name, or its ids.
    pub fn short_name(&self) -> String {
        match &self.device_name {
            Some(name) => name.clone(),
            None => format!("[{:04x}:{:04x}]", self.vendor_id, self.device_id),
        }
    }

    /// Name and address, for sentences that must be unambiguous.
    pub fn label(&self) -> String {
        format!("{} ({})", self.short_name(), self.address)
    }

    /// Bound to vfio-pci or a vfio variant driver.
    pub fn on_vfio(&self) -> bool {
        self.driver
            .as_deref()
            .is_some_and(|d| d.starts_with("vfio"))
    }

    /// Whether the kernel lets a VM use this function's group while this
    /// function sits where it is: no driver, vfio, or a driver that does no DMA
    /// of its own (REFERENCE: the kernel's viability rule).
    pub fn viable_for_vfio(&self) -> bool {
        match self.driver.as_deref() {
            None => true,
            Some(d) => d.starts_with("vfio") || d == "pci-stub" || (self.bridge && d == "pcieport"),
        }
    }

    /// Intel display controller on the root bus: integrated graphics.
    pub fn is_integrated_graphics(&self) -> bool {
        self.vendor_id == 0x8086 && self.class.is_display() && self.address.bus == 0
    }
}

/// An IOMMU group: the smallest set of devices the IOMMU can tell apart.
#[derive(Debug, Clone, Serialize)]
pub struct IommuGroup {
    pub id: u32,
    pub devices: Vec<PciAddress>,
    /// Every endpoint: what has to move to a VM together. Bridges stay.
    pub moves_together: Vec<PciAddress>,
    /// Endpoints of more than one slot share the group.
    pub shared: bool,
    /// Who holds the group's /dev/vfio node: a running VM, named when its
    /// QEMU command line says (only read when a member is on vfio).
    pub in_use_by: Vec<String>,
}

/// Severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// Stable finding codes: tests, scripts and the UI rely on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    IommuDisabled,
    SharedGroup,
    NoUefiRom,
    RomUnreadable,
    BootVga,
    IntegratedGraphics,
    NoReset,
    NotIsolated,
    AcsOverride,
}

impl FindingCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::IommuDisabled => "iommu-disabled",
            FindingCode::SharedGroup => "shared-group",
            FindingCode::NoUefiRom => "no-uefi-rom",
            FindingCode::RomUnreadable => "rom-unreadable",
            FindingCode::BootVga => "boot-vga",
            FindingCode::IntegratedGraphics => "integrated-graphics",
            FindingCode::NoReset => "no-reset",
            FindingCode::NotIsolated => "not-isolated",
            FindingCode::AcsOverride => "acs-override",
        }
    }
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a user should know about a device or group, with what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub code: FindingCode,
    pub severity: Severity,
    pub group: Option<u32>,
    pub devices: Vec<PciAddress>,
    /// What it means (translated).
    pub message: String,
    /// What to do (translated).
    pub advice: String,
}

/// The scanned host.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    pub iommu_enabled: bool,
    pub groups: Vec<IommuGroup>,
    pub devices: Vec<PciDevice>,
    pub findings: Vec<Finding>,
    /// `pcie_acs_override=` from the kernel command line, if set.
    pub acs_override: Option<String>,
    /// Where the names came from.
    pub names_source: Option<PathBuf>,
    /// Read from this libvirt connection's node devices, not from sysfs:
    /// reset methods, ROMs, the boot VGA flag and ACS are unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub libvirt_uri: Option<String>,
}

/// What the scan may do beyond reading.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanOptions {
    /// On the live system, read the option ROMs of display devices (root only;
    /// enables each ROM through sysfs for the read). Captured ROMs are always read.
    pub read_roms: bool,
}

/// Why a scan failed.
#[derive(Debug)]
pub enum ScanError {
    /// The root has no PCI bus at all: not a Linux host or capture.
    NoPciBus(PathBuf),
    Host(HostError),
    /// The names database given with `--pci-ids` could not be read.
    Names(HostError),
}

impl std::error::Error for ScanError {}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::NoPciBus(path) => f.write_str(&gettext_f(
                "No PCI devices found: {path} does not exist. Is this the root of a Linux system or of a capture?",
                &[("path", &path.display().to_string())],
            )),
            ScanError::Host(e) | ScanError::Names(e) => e.fmt(f),
        }
    }
}

impl From<HostError> for ScanError {
    fn from(e: HostError) -> Self {
        ScanError::Host(e)
    }
}

impl Topology {
    /// Scan, name and analyse the host: what every front end calls.
    pub fn load(
        host: &HostRoot,
        pci_ids: Option<&Path>,
        options: ScanOptions,
    ) -> Result<Topology, ScanError> {
        let mut topology = scan(host, options)?;
        let names = PciNames::load(pci_ids, &topology.wanted_ids()).map_err(ScanError::Names)?;
        topology.apply_names(&names);
        topology.findings = analyse(&topology);
        topology.note_vfio_users(host);
        Ok(topology)
    }

    /// Fill in who uses each group handed to vfio (running VMs). Reading
    /// /proc is skipped when no function is on vfio, and a failure to read
    /// it leaves the groups as they are.
    pub fn note_vfio_users(&mut self, host: &HostRoot) {
        if !self.devices.iter().any(PciDevice::on_vfio) {
            return;
        }
        let Ok(users) = crate::assign::vfio_users(host) else {
            return;
        };
        for g in &mut self.groups {
            g.in_use_by = users.get(&g.id).cloned().unwrap_or_default();
        }
    }

    pub fn device(&self, address: &PciAddress) -> Option<&PciDevice> {
        self.devices
            .binary_search_by(|d| d.address.cmp(address))
            .ok()
            .map(|i| &self.devices[i])
    }

    pub fn group(&self, id: u32) -> Option<&IommuGroup> {
        self.groups
            .binary_search_by(|g| g.id.cmp(&id))
            .ok()
            .map(|i| &self.groups[i])
    }

    /// Scan and name one function's group (no analysis): for moves.
    pub fn load_group(
        host: &HostRoot,
        pci_ids: Option<&Path>,
        address: &PciAddress,
    ) -> Result<Topology, ScanError> {
        let mut topology = scan_group(host, address)?;
        let names = PciNames::load(pci_ids, &topology.wanted_ids()).map_err(ScanError::Names)?;
        topology.apply_names(&names);
        Ok(topology)
    }

    /// The vendors whose names a view needs.
    pub fn wanted_ids(&self) -> WantedIds {
        let mut wanted = WantedIds::default();
        for d in &self.devices {
            wanted.vendors.insert(d.vendor_id);
            if let Some(sv) = d.subsystem_vendor_id {
                wanted.vendors.insert(sv);
            }
        }
        wanted
    }

    pub fn apply_names(&mut self, names: &PciNames) {
        for d in &mut self.devices {
            d.vendor_name = names.vendor(d.vendor_id).map(str::to_owned);
            d.device_name = names.device(d.vendor_id, d.device_id).map(str::to_owned);
            d.subsystem_name = match (d.subsystem_vendor_id, d.subsystem_device_id) {
                (Some(sv), Some(sd)) => names
                    .subsystem(d.vendor_id, d.device_id, sv, sd)
                    .map(str::to_owned),
                _ => None,
            };
            d.class_name = names.class(d.class).map(str::to_owned);
        }
        self.names_source = names.source.clone();
    }

    /// The findings that concern one device (its own and its group's).
    pub fn findings_for<'a>(
        &'a self,
        address: &'a PciAddress,
    ) -> impl Iterator<Item = &'a Finding> {
        self.findings
            .iter()
            .filter(move |f| f.devices.contains(address))
    }
}

/// Read devices and groups from sysfs.
pub fn scan(host: &HostRoot, options: ScanOptions) -> Result<Topology, ScanError> {
    let entries = match host.read_dir(PCI_DEVICES) {
        Ok(entries) => entries,
        Err(e) if e.is_not_found() => {
            return Err(ScanError::NoPciBus(host.display(Path::new(PCI_DEVICES))))
        }
        Err(e) => return Err(e.into()),
    };
    let bus = host.open_dir(PCI_DEVICES)?;
    let mut devices = Vec::with_capacity(entries.len());
    for name in &entries {
        // The kernel names these entries; anything else is debris in a capture.
        let Ok(address) = name.parse::<PciAddress>() else {
            continue;
        };
        devices.push(scan_device(host, &bus, name, address, options)?);
    }
    assemble(host, devices)
}

/// Scan only the IOMMU group of one function (or the function alone when it
/// has none): what a move needs, without reading the whole bus.
pub fn scan_group(host: &HostRoot, address: &PciAddress) -> Result<Topology, ScanError> {
    let name = address.to_string();
    let bus = match host.open_dir(PCI_DEVICES) {
        Ok(bus) => bus,
        Err(e) if e.is_not_found() => {
            return Err(ScanError::NoPciBus(host.display(Path::new(PCI_DEVICES))))
        }
        Err(e) => return Err(e.into()),
    };
    let group = host
        .open_dir(sysfs_device_path(address))
        .ok()
        .and_then(|dir| dir.link_name("iommu_group").ok().flatten());
    let members = match &group {
        Some(g) => host.read_dir(Path::new(IOMMU_GROUPS).join(g).join("devices"))?,
        None if host.exists(sysfs_device_path(address)) => vec![name],
        None => Vec::new(),
    };
    let mut devices = Vec::with_capacity(members.len());
    for member in &members {
        let Ok(a) = member.parse::<PciAddress>() else {
            continue;
        };
        devices.push(scan_device(host, &bus, member, a, ScanOptions::default())?);
    }
    let mut topology = assemble(host, devices)?;
    // Other groups are not read: the IOMMU is on if any group exists.
    topology.iommu_enabled = !host.read_dir_or_empty(IOMMU_GROUPS)?.is_empty();
    Ok(topology)
}

/// Groups and command-line facts around scanned functions.
fn assemble(host: &HostRoot, devices: Vec<PciDevice>) -> Result<Topology, ScanError> {
    let mut topology = from_devices(devices, None);
    let cmdline = host.read_attr(CMDLINE)?.unwrap_or_default();
    topology.acs_override = cmdline
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix("pcie_acs_override="))
        .map(str::to_owned);
    Ok(topology)
}

/// The groups around functions read elsewhere (libvirt's node devices), or
/// scanned here. Names and findings are added by the caller.
pub fn from_devices(mut devices: Vec<PciDevice>, libvirt_uri: Option<String>) -> Topology {
    devices.sort_by_key(|d| d.address);

    let mut members: BTreeMap<u32, Vec<PciAddress>> = BTreeMap::new();
    for d in &devices {
        if let Some(g) = d.iommu_group {
            members.entry(g).or_default().push(d.address);
        }
    }
    let by_address: HashMap<PciAddress, &PciDevice> =
        devices.iter().map(|d| (d.address, d)).collect();
    let mut groups = Vec::with_capacity(members.len());
    for (id, devs) in members {
        let moves_together: Vec<PciAddress> = devs
            .iter()
            .copied()
            .filter(|a| !by_address[a].bridge)
            .collect();
        let slots: BTreeSet<_> = moves_together.iter().map(PciAddress::slot).collect();
        groups.push(IommuGroup {
            id,
            shared: slots.len() > 1,
            devices: devs,
            moves_together,
            in_use_by: Vec::new(),
        });
    }

    Topology {
        iommu_enabled: !groups.is_empty(),
        groups,
        devices,
        findings: Vec::new(),
        acs_override: None,
        names_source: None,
        libvirt_uri,
    }
}

/// Every PCI function with the driver it is bound to, in sysfs order: a cheap
/// reading (one directory listing and one link per function) that changes
/// when a driver binds or unbinds or a device comes or goes, so a viewer can
/// poll it and rescan only when it changes.
pub fn bindings(host: &HostRoot) -> Result<Vec<(String, Option<String>)>, HostError> {
    let mut entries = host.read_dir(PCI_DEVICES)?;
    entries.sort();
    let mut out = Vec::with_capacity(entries.len());
    for name in entries {
        // Through the host, so a captured root's links cannot lead outside it.
        let driver = host
            .open_dir(Path::new(PCI_DEVICES).join(&name))?
            .link_name("driver")?;
        out.push((name, driver));
    }
    Ok(out)
}

fn bad_number(dir: &HostDir, name: &str, value: &str) -> HostError {
    HostError::bad_content(
        dir.display(name),
        gettext_f(
            "expected a hexadecimal number, found {value}",
            &[("value", &format!("{value:?}"))],
        ),
    )
}

/// "0x10de" (attributes) or "10DE" (uevent) → 0x10de.
fn parse_hex(text: &str, max: u32) -> Option<u32> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    u32::from_str_radix(digits, 16).ok().filter(|v| *v <= max)
}

/// What identifies a function: from `uevent` in one read, or from the
/// separate attributes when a capture has no `uevent`.
struct Identity {
    vendor_id: u16,
    device_id: u16,
    class: u32,
    subsystem: Option<(u16, u16)>,
    driver: Option<String>,
}

fn identity_from_uevent(dir: &HostDir, text: &str) -> Result<Identity, HostError> {
    let mut id = None;
    let mut class = None;
    let mut subsystem = None;
    let mut driver = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let pair = |v: &str| -> Result<(u16, u16), HostError> {
            let (a, b) = v
                .split_once(':')
                .ok_or_else(|| bad_number(dir, "uevent", v))?;
            match (parse_hex(a, 0xffff), parse_hex(b, 0xffff)) {
                (Some(a), Some(b)) => Ok((a as u16, b as u16)),
                _ => Err(bad_number(dir, "uevent", v)),
            }
        };
        match key {
            "PCI_ID" => id = Some(pair(value)?),
            "PCI_SUBSYS_ID" => subsystem = Some(pair(value)?),
            "PCI_CLASS" => {
                class = Some(
                    parse_hex(value, 0xff_ffff).ok_or_else(|| bad_number(dir, "uevent", value))?,
                )
            }
            "DRIVER" => driver = Some(value.to_owned()),
            _ => {}
        }
    }
    let missing = |what: &str| {
        HostError::bad_content(
            dir.display("uevent"),
            gettext_f("{key} is missing", &[("key", what)]),
        )
    };
    let (vendor_id, device_id) = id.ok_or_else(|| missing("PCI_ID"))?;
    Ok(Identity {
        vendor_id,
        device_id,
        class: class.ok_or_else(|| missing("PCI_CLASS"))?,
        subsystem,
        driver,
    })
}

fn identity_from_attributes(dir: &HostDir) -> Result<Identity, HostError> {
    let hex = |name: &str, max: u32| -> Result<Option<u32>, HostError> {
        match dir.read_attr(name)? {
            None => Ok(None),
            Some(v) => parse_hex(&v, max)
                .map(Some)
                .ok_or_else(|| bad_number(dir, name, &v)),
        }
    };
    let required = |name: &str, max: u32| -> Result<u32, HostError> {
        hex(name, max)?.ok_or_else(|| {
            HostError::bad_content(dir.display(name), gettext("the attribute is missing"))
        })
    };
    let vendor_id = required("vendor", 0xffff)? as u16;
    let device_id = required("device", 0xffff)? as u16;
    let class = required("class", 0xff_ffff)?;
    let subsystem = match (
        hex("subsystem_vendor", 0xffff)?,
        hex("subsystem_device", 0xffff)?,
    ) {
        (Some(v), Some(d)) => Some((v as u16, d as u16)),
        _ => None,
    };
    Ok(Identity {
        vendor_id,
        device_id,
        class,
        subsystem,
        driver: dir.link_name("driver")?,
    })
}

/// One function. Every read is relative to the open device directory, and
/// optional attributes are simply tried: a scan of thousands of functions is
/// dominated by system calls, so each one counts.
fn scan_device(
    host: &HostRoot,
    bus: &HostDir,
    name: &str,
    address: PciAddress,
    options: ScanOptions,
) -> Result<PciDevice, HostError> {
    let dir = host.open_dir(sysfs_device_path(&address))?;
    let identity = match dir.read_attr("uevent")? {
        Some(text) if text.contains("PCI_ID=") => identity_from_uevent(&dir, &text)?,
        _ => identity_from_attributes(&dir)?,
    };
    let class = PciClass(identity.class);

    // Every config byte read is a bus access (slow on real hardware, slower in
    // a VM): the standard header and capabilities (256 bytes) for everyone,
    // the extended space (ACS) only for bridges.
    let wanted = if class.is_pci_bridge() {
        CONFIG_EXTENDED
    } else {
        CONFIG_STANDARD
    };
    let config = match dir.read_prefix("config", wanted) {
        Ok(c) => c.unwrap_or_default(),
        Err(e) if e.problem == HostProblem::PermissionDenied => Vec::new(),
        Err(e) => return Err(e),
    };
    let revision = match config.get(0x08) {
        Some(r) => Some(*r),
        None => dir
            .read_attr("revision")?
            .and_then(|v| parse_hex(&v, 0xff))
            .map(|v| v as u8),
    };
    let header_type = config.get(0x0E).map(|h| h & 0x7f);
    let bridge = match header_type {
        Some(t) => t == 1 || t == 2,
        None => class.is_pci_bridge(),
    };

    let boot_vga = class.is_vga() && dir.read_attr("boot_vga")?.as_deref() == Some("1");
    let reset_methods: Vec<String> = dir
        .read_attr("reset_method")?
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    // Kernels before 5.15 have only `reset`, present when a reset is possible.
    let can_reset = !reset_methods.is_empty() || dir.has("reset");
    let has_rom = dir.has("rom");
    let physfn = dir.link_name("physfn")?.and_then(|n| n.parse().ok());
    let iommu_group = dir.link_name("iommu_group")?.and_then(|n| n.parse().ok());
    let parent = parent_of(bus, name)?;
    // A virtual function's link is its physical function's: not read again.
    let current_speed = match physfn {
        None => dir.read_attr("current_link_speed")?,
        Some(_) => None,
    };
    let link = match current_speed {
        Some(current_speed) => {
            let width = |name: &str| -> Result<Option<u32>, HostError> {
                Ok(dir.read_attr(name)?.and_then(|v| v.parse().ok()))
            };
            Some(PcieLink {
                current_speed: Some(current_speed),
                current_width: width("current_link_width")?,
                max_speed: dir.read_attr("max_link_speed")?,
                max_width: width("max_link_width")?,
            })
        }
        None => None,
    };
    let acs = bridge.then(|| acs_from_config(&config));
    let pcie_type = pcie_type_from_config(&config);
    let (subsystem_vendor_id, subsystem_device_id) = identity.subsystem.unzip();

    let mut device = PciDevice {
        address,
        vendor_id: identity.vendor_id,
        device_id: identity.device_id,
        subsystem_vendor_id,
        subsystem_device_id,
        class,
        revision,
        vendor_name: None,
        device_name: None,
        subsystem_name: None,
        class_name: None,
        driver: identity.driver,
        iommu_group,
        boot_vga,
        reset_methods,
        can_reset,
        has_rom,
        rom: None,
        bridge,
        parent,
        physfn,
        pcie_type,
        link,
        acs,
    };
    if has_rom && (!host.is_live() || (options.read_roms && class.is_display())) {
        device.rom = rom_verdict(host, &device);
    }
    Ok(device)
}

/// The function above this one: the previous component of the device path
/// that `/sys/bus/pci/devices/NAME` links to, if it is a PCI function.
fn parent_of(bus: &HostDir, name: &str) -> Result<Option<PciAddress>, HostError> {
    let target = match bus.read_link(name) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        // A capture may hold real directories instead of links: no parent known.
        Err(e) if matches!(e.problem, HostProblem::Io(libc::EINVAL)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut components = target.components().rev();
    components.next();
    Ok(components
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .and_then(|s| s.parse().ok()))
}

fn rom_verdict(host: &HostRoot, device: &PciDevice) -> Option<RomVerdict> {
    match rom::read_device_rom(host, &device.address) {
        Ok(data) => Some(match rom::parse(&data) {
            Ok(parsed) => RomVerdict::of(&parsed, device.boot_vga),
            Err(e) => RomVerdict::Unreadable {
                reason: e.to_string(),
            },
        }),
        // A capture made without root holds an empty ROM file: simply not read.
        Err(e)
            if !host.is_live() && matches!(e.problem, crate::host::HostProblem::BadContent(_)) =>
        {
            None
        }
        Err(e) => Some(RomVerdict::Unreadable {
            reason: e.to_string(),
        }),
    }
}

fn config_u16(config: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(config.get(at..at + 2)?.try_into().ok()?))
}

fn config_u32(config: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(config.get(at..at + 4)?.try_into().ok()?))
}

/// Walk the extended capabilities (PCIe config space above 0x100) for ACS.
fn acs_from_config(config: &[u8]) -> Acs {
    if config.len() < 0x104 {
        return Acs::Unknown;
    }
    let mut at = 0x100usize;
    // A malformed list could loop: there is room for at most ~960 capabilities.
    for _ in 0..1024 {
        let Some(header) = config_u32(config, at) else {
            break;
        };
        if header == 0 || header == 0xffff_ffff {
            break;
        }
        if header & 0xffff == 0x000D {
            let capability = config_u16(config, at + 4).unwrap_or(0);
            let control = config_u16(config, at + 6).unwrap_or(0);
            // SV | RR | CR | UF
            const NEEDED: u16 = 0x01 | 0x04 | 0x08 | 0x10;
            return Acs::Present {
                capability,
                control,
                isolating: control & NEEDED == NEEDED,
            };
        }
        let next = ((header >> 20) & 0xffc) as usize;
        if next < 0x100 {
            break;
        }
        at = next;
    }
    Acs::Absent
}

/// The device/port type from the PCI Express capability, when config space is readable.
fn pcie_type_from_config(config: &[u8]) -> Option<&'static str> {
    let status = config_u16(config, 0x06)?;
    if status & 0x10 == 0 {
        return None;
    }
    let mut at = usize::from(*config.get(0x34)? & 0xfc);
    for _ in 0..64 {
        if at < 0x40 {
            return None;
        }
        let id = *config.get(at)?;
        if id == 0x10 {
            let flags = config_u16(config, at + 2)?;
            return Some(match (flags >> 4) & 0xf {
                0x0 => "endpoint",
                0x1 => "legacy-endpoint",
                0x4 => "root-port",
                0x5 => "upstream-port",
                0x6 => "downstream-port",
                0x7 => "pcie-to-pci-bridge",
                0x8 => "pci-to-pcie-bridge",
                0x9 => "root-complex-integrated-endpoint",
                0xa => "root-complex-event-collector",
                _ => "unknown",
            });
        }
        at = usize::from(*config.get(at + 1)? & 0xfc);
    }
    None
}

fn labels(topology: &Topology, addresses: &[PciAddress]) -> String {
    addresses
        .iter()
        .map(|a| match topology.device(a) {
            Some(d) => d.label(),
            None => a.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Turn a scan into findings. Pure: the same scan gives the same findings.
pub fn analyse(topology: &Topology) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !topology.iommu_enabled {
        findings.push(Finding {
            code: FindingCode::IommuDisabled,
            severity: Severity::Error,
            group: None,
            devices: Vec::new(),
            message: gettext("The IOMMU is off: the kernel made no IOMMU groups, so no device can be given to a virtual machine."),
            advice: gettext("Turn on VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup, and on Intel add intel_iommu=on to the kernel command line. If the firmware has no such option, look for a firmware (BIOS) update."),
        });
    }
    if let Some(value) = &topology.acs_override {
        findings.push(Finding {
            code: FindingCode::AcsOverride,
            severity: Severity::Warning,
            group: None,
            devices: Vec::new(),
            message: gettext_f(
                "The kernel splits IOMMU groups with the ACS override (pcie_acs_override={value}): the groups look isolated, but the devices are not — they can still reach each other's memory.",
                &[("value", value)],
            ),
            advice: gettext("Use the override only if you accept that risk; a slot wired to the processor, or a board with real ACS support, isolates devices for real."),
        });
    }

    for group in &topology.groups {
        if group.shared {
            let slots: BTreeSet<_> = group.moves_together.iter().map(PciAddress::slot).collect();
            findings.push(Finding {
                code: FindingCode::SharedGroup,
                severity: Severity::Warning,
                group: Some(group.id),
                devices: group.moves_together.clone(),
                message: ngettext_f(
                    "IOMMU group {group} holds devices of {n} slot: {devices}.",
                    "IOMMU group {group} holds devices of {n} different slots: {devices}. A virtual machine can only have them all together.",
                    slots.len() as u32,
                    &[
                        ("group", &group.id.to_string()),
                        ("devices", &labels(topology, &group.moves_together)),
                    ],
                ),
                advice: gettext("Give the whole group to the virtual machine, or move the card to a slot wired to the processor. Check for a firmware update: some add ACS support."),
            });
        }
        let members: Vec<&PciDevice> = group
            .devices
            .iter()
            .filter_map(|a| topology.device(a))
            .collect();
        let on_vfio: Vec<PciAddress> = members
            .iter()
            .filter(|d| d.on_vfio())
            .map(|d| d.address)
            .collect();
        let host_used: Vec<PciAddress> = members
            .iter()
            .filter(|d| !d.viable_for_vfio())
            .map(|d| d.address)
            .collect();
        if !on_vfio.is_empty() && !host_used.is_empty() {
            findings.push(Finding {
                code: FindingCode::NotIsolated,
                severity: Severity::Error,
                group: Some(group.id),
                devices: on_vfio.iter().chain(&host_used).copied().collect(),
                message: gettext_f(
                    "IOMMU group {group} is only partly handed over: {guest} is on vfio-pci, but the host still uses {host}. A virtual machine with this group will not start (\"group is not viable\").",
                    &[
                        ("group", &group.id.to_string()),
                        ("guest", &labels(topology, &on_vfio)),
                        ("host", &labels(topology, &host_used)),
                    ],
                ),
                advice: gettext("Hand the whole group to the virtual machine, or give it back to the host."),
            });
        }
    }

    for d in &topology.devices {
        let one = || vec![d.address];
        if d.boot_vga {
            findings.push(Finding {
                code: FindingCode::BootVga,
                severity: Severity::Warning,
                group: d.iommu_group,
                devices: one(),
                message: gettext_f(
                    "{device} is the boot GPU: the firmware and the host's console show on it.",
                    &[("device", &d.label())],
                ),
                advice: gettext("Keep it for the host if you can. Giving it to a virtual machine leaves the host without a screen, and its ROM as read by the kernel is only a shadow copy."),
            });
        }
        if d.is_integrated_graphics() {
            findings.push(Finding {
                code: FindingCode::IntegratedGraphics,
                severity: Severity::Warning,
                group: d.iommu_group,
                devices: one(),
                message: gettext_f(
                    "{device} is Intel integrated graphics: it cannot be handed to a virtual machine the way a graphics card can.",
                    &[("device", &d.label())],
                ),
                advice: gettext("Keep it for the host and give the virtual machine a separate graphics card."),
            });
        }
        // Memory, bridges, system peripherals and SMBus controllers are never handed over.
        let never_passed = matches!(d.class.base(), 0x05 | 0x06 | 0x08)
            || (d.class.base() == 0x0c && d.class.sub() == 0x05);
        // Reset methods are known only from sysfs.
        let reset_known = topology.libvirt_uri.is_none();
        if !d.bridge && !d.can_reset && !never_passed && reset_known {
            findings.push(Finding {
                code: FindingCode::NoReset,
                severity: Severity::Warning,
                group: d.iommu_group,
                devices: one(),
                message: gettext_f(
                    "{device} has no reset method the kernel knows: after a virtual machine stops, it may stay in a bad state until the host restarts.",
                    &[("device", &d.label())],
                ),
                advice: gettext("Expect to restart the host between uses, or use a device that supports function-level reset."),
            });
        }
        if !d.class.is_display() {
            continue;
        }
        match &d.rom {
            Some(RomVerdict::Read {
                has_uefi: false,
                shadow_copy: false,
                ..
            }) => findings.push(Finding {
                code: FindingCode::NoUefiRom,
                severity: Severity::Warning,
                group: d.iommu_group,
                devices: one(),
                message: gettext_f(
                    "The ROM of {device} has no UEFI image: a UEFI (OVMF) virtual machine shows no picture on it until the guest's driver loads.",
                    &[("device", &d.label())],
                ),
                advice: gettext("Look for a firmware update for the card with UEFI (GOP) support, or give the virtual machine a card that has it."),
            }),
            Some(RomVerdict::Read {
                has_uefi: false,
                shadow_copy: true,
                ..
            }) => findings.push(Finding {
                code: FindingCode::RomUnreadable,
                severity: Severity::Info,
                group: d.iommu_group,
                devices: one(),
                message: gettext_f(
                    "{device} is the boot GPU, so the kernel hands out the firmware's shadow copy of its ROM. That copy says nothing about the card's UEFI support.",
                    &[("device", &d.label())],
                ),
                advice: gettext("To judge the card, read its ROM while another GPU is the boot GPU, or look up the card's specification."),
            }),
            Some(RomVerdict::Unreadable { reason }) => findings.push(Finding {
                code: FindingCode::RomUnreadable,
                severity: Severity::Info,
                group: d.iommu_group,
                devices: one(),
                message: gettext_f(
                    "The ROM of {device} could not be read: {reason}",
                    &[("device", &d.label()), ("reason", reason)],
                ),
                advice: gettext("Boot GPUs often refuse ROM reads under UEFI firmware. Read it while another GPU is the boot GPU, or look up the card's specification."),
            }),
            _ => {}
        }
    }
    findings
}
