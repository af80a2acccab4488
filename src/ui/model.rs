//! What the app shows, computed from a [`Topology`] without GTK: the rows of
//! both trees after filtering, the badges of a function, the verdict of a
//! group, the attributes and the move plan of the details pane. The widgets
//! only render these answers.

use std::collections::HashMap;

use crate::i18n::{gettext, gettext_f, ngettext_f};
use crate::pci::PciAddress;
use crate::topology::{Acs, FindingCode, IommuGroup, PciDevice, RomVerdict, Severity, Topology};

/// How the list is arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewMode {
    /// IOMMU groups, each with its functions.
    #[default]
    Groups,
    /// The PCI hierarchy: root bus, bridges, endpoints.
    Bus,
}

impl ViewMode {
    /// The value stored in GSettings and used as action target.
    pub fn as_str(self) -> &'static str {
        match self {
            ViewMode::Groups => "groups",
            ViewMode::Bus => "bus",
        }
    }

    pub fn from_setting(s: &str) -> ViewMode {
        if s == "bus" {
            ViewMode::Bus
        } else {
            ViewMode::Groups
        }
    }
}

/// The search text and the "Graphics only" switch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    terms: Vec<String>,
    pub graphics_only: bool,
}

impl Filter {
    pub fn new(text: &str, graphics_only: bool) -> Self {
        Filter {
            terms: text.split_whitespace().map(str::to_lowercase).collect(),
            graphics_only,
        }
    }

    /// No search text and no switch: everything shows.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty() && !self.graphics_only
    }

    /// Every search word appears in the address, the ids, a name, the class or
    /// the driver, and the function is a display device if asked.
    pub fn matches(&self, device: &PciDevice) -> bool {
        if self.graphics_only && !device.class.is_display() {
            return false;
        }
        if self.terms.is_empty() {
            return true;
        }
        let haystack = [
            device.address.to_string(),
            format!("{:04x}:{:04x}", device.vendor_id, device.device_id),
            format!("{:06x}", device.class.0),
            device.vendor_name.clone().unwrap_or_default(),
            device.device_name.clone().unwrap_or_default(),
            device.subsystem_name.clone().unwrap_or_default(),
            device.class_name.clone().unwrap_or_default(),
            device.driver.clone().unwrap_or_default(),
        ]
        .join("\n")
        .to_lowercase();
        self.terms.iter().all(|t| haystack.contains(t.as_str()))
    }
}

/// A node of either tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// An IOMMU group, by id.
    Group(u32),
    /// A function, by index into [`Topology::devices`].
    Device(usize),
}

/// The filtered shape of both trees for one topology.
#[derive(Debug)]
pub struct TreeShape {
    /// Groups with at least one matching function, in id order.
    pub groups: Vec<u32>,
    /// Per group: the matching functions.
    group_children: HashMap<u32, Vec<usize>>,
    /// Functions on a root bus (no parent bridge) that show in the bus view.
    pub bus_roots: Vec<usize>,
    /// Per function: its children that show in the bus view.
    bus_children: HashMap<usize, Vec<usize>>,
    /// Per function: it matches the filter.
    matching: Vec<bool>,
    /// Per function: it shows in the bus view (a match, or on the way to one).
    shown: Vec<bool>,
}

impl TreeShape {
    /// Filter the topology. In the bus view a bridge stays when anything below
    /// it matches, so a match is never shown without its path.
    pub fn new(topology: &Topology, filter: &Filter) -> Self {
        let index: HashMap<PciAddress, usize> = topology
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.address, i))
            .collect();
        let matching: Vec<bool> = topology.devices.iter().map(|d| filter.matches(d)).collect();

        let mut groups = Vec::new();
        let mut group_children = HashMap::new();
        for group in &topology.groups {
            let children: Vec<usize> = group
                .devices
                .iter()
                .filter_map(|a| index.get(a).copied())
                .filter(|&i| matching[i])
                .collect();
            if !children.is_empty() {
                groups.push(group.id);
                group_children.insert(group.id, children);
            }
        }

        // Children lists of the whole bus tree, then keep what matches or leads to a match.
        let mut all_children: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
        for (i, d) in topology.devices.iter().enumerate() {
            let parent = d.parent.and_then(|p| index.get(&p).copied());
            all_children.entry(parent).or_default().push(i);
        }
        let mut shown = matching.clone();
        // Devices are sorted by address and a bridge's secondary bus numbers
        // are higher than its own, but do not rely on it: propagate to a fixpoint.
        loop {
            let mut changed = false;
            for (i, d) in topology.devices.iter().enumerate() {
                if shown[i] {
                    if let Some(p) = d.parent.and_then(|p| index.get(&p).copied()) {
                        if !shown[p] {
                            shown[p] = true;
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let keep = |list: &Vec<usize>| -> Vec<usize> {
            list.iter().copied().filter(|&i| shown[i]).collect()
        };
        let bus_roots = all_children.get(&None).map(keep).unwrap_or_default();
        let bus_children = all_children
            .iter()
            .filter_map(|(k, v)| k.map(|p| (p, keep(v))))
            .filter(|(_, v): &(usize, Vec<usize>)| !v.is_empty())
            .collect();
        TreeShape {
            groups,
            group_children,
            bus_roots,
            bus_children,
            matching,
            shown,
        }
    }

    /// Whether a node shows in a view under this shape's filter.
    pub fn visible(&self, mode: ViewMode, node: NodeKind) -> bool {
        match (mode, node) {
            (ViewMode::Groups, NodeKind::Group(g)) => self.group_children.contains_key(&g),
            (ViewMode::Groups, NodeKind::Device(i)) => self.matching.get(i) == Some(&true),
            (ViewMode::Bus, NodeKind::Device(i)) => self.shown.get(i) == Some(&true),
            (ViewMode::Bus, NodeKind::Group(_)) => false,
        }
    }

    /// The top-level nodes of a view.
    pub fn roots(&self, mode: ViewMode) -> Vec<NodeKind> {
        match mode {
            ViewMode::Groups => self.groups.iter().map(|&g| NodeKind::Group(g)).collect(),
            ViewMode::Bus => self
                .bus_roots
                .iter()
                .map(|&i| NodeKind::Device(i))
                .collect(),
        }
    }

    /// The children of a node in a view; empty for a leaf.
    pub fn children(&self, mode: ViewMode, node: NodeKind) -> Vec<NodeKind> {
        let list = match (mode, node) {
            (ViewMode::Groups, NodeKind::Group(g)) => self.group_children.get(&g),
            (ViewMode::Bus, NodeKind::Device(i)) => self.bus_children.get(&i),
            _ => None,
        };
        list.map(|l| l.iter().map(|&i| NodeKind::Device(i)).collect())
            .unwrap_or_default()
    }

    /// Number of functions that match the filter.
    pub fn matches(&self) -> usize {
        self.matching.iter().filter(|m| **m).count()
    }

    /// Number of functions that show in the groups view.
    pub fn visible_functions(&self) -> usize {
        self.group_children.values().map(Vec::len).sum()
    }
}

/// A short label on a function's row for one of its findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    pub code: FindingCode,
    pub severity: Severity,
    pub label: String,
}

/// The short, translated name of a finding, for badges.
pub fn badge_label(code: FindingCode) -> String {
    match code {
        FindingCode::IommuDisabled => gettext("IOMMU off"),
        FindingCode::SharedGroup => gettext("Shared group"),
        FindingCode::NoUefiRom => gettext("No UEFI ROM"),
        FindingCode::RomUnreadable => gettext("ROM unreadable"),
        FindingCode::BootVga => gettext("Boot GPU"),
        FindingCode::IntegratedGraphics => gettext("Integrated graphics"),
        FindingCode::NoReset => gettext("No reset"),
        FindingCode::NotIsolated => gettext("Not isolated"),
        FindingCode::AcsOverride => gettext("ACS override"),
    }
}

/// The badges of one function, one per finding code, most severe first.
pub fn badges(topology: &Topology, address: &PciAddress) -> Vec<Badge> {
    let device = topology.device(address);
    let group = device.and_then(|d| d.iommu_group);
    let mut out: Vec<Badge> = Vec::new();
    for f in &topology.findings {
        // Group-wide findings without device list (e.g. not-isolated names the
        // offenders) count for the devices they name; shared-group for every endpoint.
        let concerns = f.devices.contains(address)
            || (f.code == FindingCode::SharedGroup
                && f.group.is_some()
                && f.group == group
                && device.is_some_and(|d| !d.bridge));
        if concerns && !out.iter().any(|b| b.code == f.code) {
            out.push(Badge {
                code: f.code,
                severity: f.severity,
                label: badge_label(f.code),
            });
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.severity));
    out
}

/// The title of a group row.
pub fn group_title(group: &IommuGroup) -> String {
    gettext_f("Group {id}", &[("id", &group.id.to_string())])
}

/// The verdict of a group row: isolated, or shared by which slots; and
/// which running VM uses it.
pub fn group_verdict(topology: &Topology, group: &IommuGroup) -> String {
    let verdict = isolation_verdict(topology, group);
    if group.in_use_by.is_empty() {
        return verdict;
    }
    format!(
        "{verdict} · {}",
        gettext_f(
            "in use by {users}",
            &[("users", &group.in_use_by.join(", "))]
        )
    )
}

fn isolation_verdict(topology: &Topology, group: &IommuGroup) -> String {
    if group.moves_together.is_empty() {
        return gettext("Bridges only: nothing to give to a VM");
    }
    if !group.shared {
        let n = group.moves_together.len() as u32;
        return ngettext_f(
            "Isolated: {n} function",
            "Isolated: its {n} functions move together",
            n,
            &[],
        );
    }
    // One name per slot: the first function of each.
    let mut slots = Vec::new();
    let mut names = Vec::new();
    for a in &group.moves_together {
        if !slots.contains(&a.slot()) {
            slots.push(a.slot());
            names.push(
                topology
                    .device(a)
                    .map(PciDevice::label)
                    .unwrap_or_else(|| a.to_string()),
            );
        }
    }
    gettext_f("Shared by {devices}", &[("devices", &names.join(", "))])
}

/// The title and subtitle of a function row.
pub fn device_title(device: &PciDevice) -> String {
    device.short_name()
}

pub fn device_subtitle(device: &PciDevice) -> String {
    let vendor = device
        .vendor_name
        .clone()
        .unwrap_or_else(|| format!("{:04x}", device.vendor_id));
    let driver = device
        .driver
        .clone()
        .unwrap_or_else(|| gettext("no driver"));
    // Translators: a device row's subtitle: PCI address, vendor, driver in use.
    gettext_f(
        "{address} · {vendor} · {driver}",
        &[
            ("address", &device.address.to_string()),
            ("vendor", &vendor),
            ("driver", &driver),
        ],
    )
}

/// A themed icon name for a function's class.
pub fn class_icon(device: &PciDevice) -> &'static str {
    match (device.class.base(), device.class.sub()) {
        (0x03, _) => "video-display-symbolic",
        (0x01, _) => "drive-harddisk-symbolic",
        (0x02, 0x80) => "network-wireless-symbolic",
        (0x02, _) => "network-wired-symbolic",
        (0x04, 0x01) | (0x04, 0x03) => "audio-card-symbolic",
        (0x04, _) => "camera-video-symbolic",
        (0x0c, 0x03) => "media-removable-symbolic",
        (0x06, _) => "network-workgroup-symbolic",
        (0x0d, _) => "bluetooth-symbolic",
        _ => "computer-symbolic",
    }
}

/// One attribute of the details pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: String,
}

fn attr(name: String, value: String) -> Attribute {
    Attribute { name, value }
}

fn yes_no(v: bool) -> String {
    if v {
        gettext("Yes")
    } else {
        gettext("No")
    }
}

fn named_id(name: &Option<String>, id: String) -> String {
    match name {
        Some(n) => format!("{n} [{id}]"),
        None => id,
    }
}

/// Every attribute the scan knows about a function, translated. Without
/// sysfs (a host read through libvirt) what only sysfs tells is unknown.
pub fn attributes(device: &PciDevice, sysfs: bool) -> Vec<Attribute> {
    let unknown = || gettext("Unknown (libvirt does not report it)");
    let mut out = vec![
        attr(gettext("Address"), device.address.to_string()),
        attr(
            gettext("Vendor"),
            named_id(&device.vendor_name, format!("{:04x}", device.vendor_id)),
        ),
        attr(
            gettext("Device"),
            named_id(
                &device.device_name,
                format!("{:04x}:{:04x}", device.vendor_id, device.device_id),
            ),
        ),
    ];
    if let (Some(sv), Some(sd)) = (device.subsystem_vendor_id, device.subsystem_device_id) {
        out.push(attr(
            gettext("Subsystem"),
            named_id(&device.subsystem_name, format!("{sv:04x}:{sd:04x}")),
        ));
    }
    out.push(attr(
        gettext("Class"),
        named_id(&device.class_name, format!("{:06x}", device.class.0)),
    ));
    if let Some(rev) = device.revision {
        out.push(attr(gettext("Revision"), format!("{rev:02x}")));
    }
    out.push(attr(
        gettext("Driver"),
        device.driver.clone().unwrap_or_else(|| gettext("None")),
    ));
    out.push(attr(
        gettext("IOMMU group"),
        device
            .iommu_group
            .map(|g| g.to_string())
            .unwrap_or_else(|| gettext("None")),
    ));
    if device.class.is_vga() {
        let boot = if sysfs {
            yes_no(device.boot_vga)
        } else {
            unknown()
        };
        out.push(attr(gettext("Boot display"), boot));
    }
    out.push(attr(
        gettext("Reset methods"),
        if !sysfs {
            unknown()
        } else if device.reset_methods.is_empty() {
            gettext("None")
        } else {
            device.reset_methods.join(", ")
        },
    ));
    let rom = if sysfs {
        yes_no(device.has_rom)
    } else {
        unknown()
    };
    out.push(attr(gettext("Option ROM"), rom));
    if let Some(parent) = device.parent {
        out.push(attr(gettext("Parent bridge"), parent.to_string()));
    }
    if let Some(pf) = device.physfn {
        out.push(attr(gettext("Physical function"), pf.to_string()));
    }
    if let Some(kind) = device.pcie_type {
        out.push(attr(gettext("PCI Express port type"), kind.to_owned()));
    }
    if let Some(link) = &device.link {
        let part = |speed: &Option<String>, width: Option<u32>| match (speed, width) {
            (Some(s), Some(w)) => format!("{s} x{w}"),
            (Some(s), None) => s.clone(),
            (None, Some(w)) => format!("x{w}"),
            (None, None) => gettext("Unknown"),
        };
        out.push(attr(
            gettext("Link"),
            gettext_f(
                "{current} (up to {max})",
                &[
                    ("current", &part(&link.current_speed, link.current_width)),
                    ("max", &part(&link.max_speed, link.max_width)),
                ],
            ),
        ));
    }
    if let Some(acs) = &device.acs {
        let value = match acs {
            Acs::Unknown => gettext("Unknown (needs root to read)"),
            Acs::Absent => gettext("Absent: devices below can reach each other"),
            Acs::Present {
                isolating: true, ..
            } => gettext("Present and isolating"),
            Acs::Present { .. } => gettext("Present but not fully enabled"),
        };
        out.push(attr(gettext("Access Control Services"), value));
    }
    out
}

/// The option ROM verdict as a title and an explanation.
pub fn rom_summary(device: &PciDevice) -> (String, String) {
    rom_text(device.rom.as_ref(), device.has_rom)
}

/// A ROM verdict (from the device or from a file) as a title and an explanation.
pub fn rom_text(verdict: Option<&RomVerdict>, has_rom: bool) -> (String, String) {
    match verdict {
        None if !has_rom => (
            gettext("No option ROM"),
            gettext("The device exposes no ROM. A GPU without one needs a ROM file passed to the VM, unless the host's firmware has initialised it."),
        ),
        None => (
            gettext("Not read yet"),
            gettext("Reading a ROM from the device needs root. Open a ROM file saved from this card to check it."),
        ),
        Some(RomVerdict::Read {
            shadow_copy: true, ..
        }) => (
            gettext("Firmware's shadow copy"),
            gettext("This is the boot GPU: the kernel returns the copy the firmware ran, which says nothing about the card's own UEFI support."),
        ),
        Some(RomVerdict::Read {
            has_uefi: true,
            has_legacy,
            ..
        }) => (
            gettext("UEFI ROM present"),
            if *has_legacy {
                gettext("The ROM has a legacy BIOS image and a UEFI image: OVMF can start this card.")
            } else {
                gettext("The ROM has a UEFI image: OVMF can start this card.")
            },
        ),
        Some(RomVerdict::Read { has_legacy, .. }) => (
            gettext("No UEFI image"),
            if *has_legacy {
                gettext("The ROM only has a legacy BIOS image: OVMF cannot show a picture on this card. Look for a firmware update from the card's maker, or use a UEFI ROM file.")
            } else {
                gettext("The ROM has no image the VM's firmware can run.")
            },
        ),
        Some(RomVerdict::Unreadable { reason }) => (gettext("ROM unreadable"), reason.clone()),
    }
}

/// What giving this function to a VM takes: the whole group's endpoints, with
/// the drivers they leave, and the bridges that stay.
pub fn move_plan(topology: &Topology, device: &PciDevice) -> Vec<String> {
    let Some(group) = device.iommu_group.and_then(|g| topology.group(g)) else {
        return vec![gettext(
            "Without an IOMMU group this function cannot be given to a VM.",
        )];
    };
    if device.bridge {
        return vec![gettext(
            "Bridges stay with the host; the devices behind them can go to a VM.",
        )];
    }
    let mut out = Vec::new();
    let n = group.moves_together.len() as u32;
    out.push(ngettext_f(
        "Giving it to a VM moves {n} function to vfio-pci:",
        "Giving it to a VM moves these {n} functions to vfio-pci together:",
        n,
        &[],
    ));
    for a in &group.moves_together {
        let Some(d) = topology.device(a) else {
            continue;
        };
        let line = match &d.driver {
            Some(drv) if d.on_vfio() => gettext_f(
                "{device}: already on {driver}",
                &[("device", &d.label()), ("driver", drv)],
            ),
            Some(drv) => gettext_f(
                "{device}: leaves {driver}",
                &[("device", &d.label()), ("driver", drv)],
            ),
            None => gettext_f("{device}: has no driver", &[("device", &d.label())]),
        };
        out.push(line);
    }
    let bridges = group.devices.len() - group.moves_together.len();
    if bridges > 0 {
        out.push(ngettext_f(
            "{n} bridge in the group stays with the host.",
            "{n} bridges in the group stay with the host.",
            bridges as u32,
            &[],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::Sample;
    use crate::topology::ScanOptions;

    fn desktop() -> Topology {
        let s = Sample::find("ivy-bridge-desktop").unwrap().open().unwrap();
        Topology::load(&s.host, None, ScanOptions::default()).unwrap()
    }

    fn index(t: &Topology, a: &str) -> usize {
        let a: PciAddress = a.parse().unwrap();
        t.devices.iter().position(|d| d.address == a).unwrap()
    }

    #[test]
    fn groups_view_lists_every_group_and_function() {
        let t = desktop();
        let shape = TreeShape::new(&t, &Filter::default());
        assert_eq!(shape.groups.len(), t.groups.len());
        assert_eq!(shape.visible_functions(), t.devices.len());
        let g1 = shape.children(ViewMode::Groups, NodeKind::Group(1));
        assert_eq!(
            g1,
            vec![
                NodeKind::Device(index(&t, "00:01.0")),
                NodeKind::Device(index(&t, "01:00.0")),
                NodeKind::Device(index(&t, "01:00.1")),
            ]
        );
    }

    #[test]
    fn bus_view_nests_endpoints_under_their_bridge() {
        let t = desktop();
        let shape = TreeShape::new(&t, &Filter::default());
        let roots = shape.roots(ViewMode::Bus);
        assert!(roots.contains(&NodeKind::Device(index(&t, "00:01.0"))));
        assert!(!roots.contains(&NodeKind::Device(index(&t, "01:00.0"))));
        let below = shape.children(ViewMode::Bus, NodeKind::Device(index(&t, "00:1c.4")));
        assert_eq!(below, vec![NodeKind::Device(index(&t, "04:00.0"))]);
    }

    #[test]
    fn a_filter_keeps_the_path_to_a_match() {
        let t = desktop();
        let shape = TreeShape::new(&t, &Filter::new("bdbd:a11b", false));
        assert_eq!(shape.groups, vec![7]);
        assert_eq!(shape.visible_functions(), 2);
        let roots = shape.roots(ViewMode::Bus);
        assert_eq!(
            roots,
            vec![
                NodeKind::Device(index(&t, "00:1c.0")),
                NodeKind::Device(index(&t, "00:1c.4"))
            ]
        );
        let graphics = TreeShape::new(&t, &Filter::new("", true));
        assert_eq!(graphics.groups, vec![1, 2]);
        assert_eq!(graphics.visible_functions(), 2);
        let none = TreeShape::new(&t, &Filter::new("no-such-thing", false));
        assert!(none.groups.is_empty() && none.bus_roots.is_empty());
    }

    #[test]
    fn filter_words_match_names_ids_class_and_driver() {
        let t = desktop();
        let gpu = &t.devices[index(&t, "01:00.0")];
        assert!(Filter::new("10de:1402", false).matches(gpu));
        assert!(Filter::new("NOUVEAU 01:00", false).matches(gpu));
        assert!(Filter::new("030000", true).matches(gpu));
        assert!(!Filter::new("nouveau e1000e", false).matches(gpu));
        if gpu.device_name.is_some() {
            assert!(Filter::new("gtx 950", false).matches(gpu));
        }
    }

    #[test]
    fn badges_and_verdicts() {
        let t = desktop();
        let igpu: PciAddress = "00:02.0".parse().unwrap();
        let codes: Vec<_> = badges(&t, &igpu).iter().map(|b| b.code).collect();
        assert!(codes.contains(&FindingCode::BootVga), "{codes:?}");
        assert!(
            codes.contains(&FindingCode::IntegratedGraphics),
            "{codes:?}"
        );
        let decklink: PciAddress = "03:00.0".parse().unwrap();
        let codes: Vec<_> = badges(&t, &decklink).iter().map(|b| b.code).collect();
        assert!(codes.contains(&FindingCode::SharedGroup), "{codes:?}");
        let bridge: PciAddress = "00:1c.0".parse().unwrap();
        assert!(!badges(&t, &bridge)
            .iter()
            .any(|b| b.code == FindingCode::SharedGroup));

        let shared = group_verdict(&t, t.group(7).unwrap());
        assert!(shared.starts_with("Shared by "), "{shared}");
        assert!(
            shared.contains("03:00.0") && shared.contains("04:00.0"),
            "{shared}"
        );
        let gpu = group_verdict(&t, t.group(1).unwrap());
        assert!(gpu.starts_with("Isolated"), "{gpu}");
        assert!(!gpu.contains("in use"), "{gpu}");
        let mut running = t.group(1).unwrap().clone();
        running.in_use_by = vec!["the virtual machine “win11” (process 7)".into()];
        let gpu = group_verdict(&t, &running);
        assert!(
            gpu.starts_with("Isolated")
                && gpu.ends_with("in use by the virtual machine “win11” (process 7)"),
            "{gpu}"
        );
    }

    #[test]
    fn move_plan_names_every_function_and_the_bridge() {
        let t = desktop();
        let gpu = &t.devices[index(&t, "01:00.0")];
        let plan = move_plan(&t, gpu);
        assert_eq!(plan.len(), 4, "{plan:?}");
        assert!(plan[1].contains("01:00.0") && plan[1].contains("nouveau"));
        assert!(plan[2].contains("01:00.1") && plan[2].contains("snd_hda_intel"));
        assert!(plan[3].contains("1 bridge"));
        let attrs = attributes(gpu, true);
        assert!(attrs
            .iter()
            .any(|a| a.name == "Driver" && a.value == "nouveau"));
        assert!(attrs
            .iter()
            .any(|a| a.name == "Boot display" && a.value == "No"));
    }
}
