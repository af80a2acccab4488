//! Virtual machines through libvirt. This part: the domain XML of a
//! passthrough-ready VM, written and read through typed structs (serde +
//! quick-xml), never by string concatenation: q35, OVMF chosen by libvirt
//! (`firmware='efi'`, Secure Boot on or off), every endpoint of the chosen
//! IOMMU groups as a managed PCI hostdev, memory, vCPUs, an optional disk and
//! installer ISO.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::i18n::{gettext, gettext_f};
use crate::pci::PciAddress;
use crate::topology::Topology;

/// What the user asks for.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub name: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    /// `kvm` normally; `qemu` (TCG) where KVM is missing (tests).
    pub virt_type: String,
    pub secure_boot: bool,
    /// A disk image to attach (qcow2 or raw, by extension).
    pub disk: Option<PathBuf>,
    pub iso: Option<PathBuf>,
    /// Functions whose whole groups go to the VM.
    pub devices: Vec<PciAddress>,
}

/// Why a VM cannot be described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmError {
    BadName(String),
    UnknownDevice(PciAddress),
    NoGroup(PciAddress),
    Bridge(PciAddress),
    Xml(String),
}

impl std::fmt::Display for VmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            VmError::BadName(n) => gettext_f(
                "“{name}” is not a usable VM name: use letters, digits, “-”, “_” and “.”, at most 64.",
                &[("name", n)],
            ),
            VmError::UnknownDevice(a) => {
                gettext_f("There is no PCI device {address}.", &[("address", &a.to_string())])
            }
            VmError::NoGroup(a) => gettext_f(
                "{address} is in no IOMMU group, so it cannot be given to a VM.",
                &[("address", &a.to_string())],
            ),
            VmError::Bridge(a) => gettext_f(
                "{address} is a bridge: bridges stay with the host. Give a device behind it instead.",
                &[("address", &a.to_string())],
            ),
            VmError::Xml(e) => gettext_f("The domain XML cannot be read: {error}", &[("error", e)]),
        };
        f.write_str(&text)
    }
}

impl std::error::Error for VmError {}

/// A libvirt `<domain>`, as far as Traspaso writes and reads it. Unknown
/// elements of a domain read back from libvirt are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename = "domain")]
pub struct Domain {
    #[serde(rename = "@type")]
    pub virt_type: String,
    pub name: String,
    pub memory: Memory,
    pub vcpu: u32,
    pub os: Os,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    pub devices: Devices,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(rename = "@unit", default)]
    pub unit: String,
    #[serde(rename = "$text")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Os {
    #[serde(rename = "@firmware", default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    #[serde(rename = "type")]
    pub os_type: OsType,
    #[serde(rename = "firmware", default, skip_serializing_if = "Option::is_none")]
    pub firmware_features: Option<FirmwareFeatures>,
    #[serde(rename = "boot", default, skip_serializing_if = "Vec::is_empty")]
    pub boot: Vec<Boot>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OsType {
    #[serde(rename = "@arch", default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(rename = "@machine", default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    #[serde(rename = "$text")]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FirmwareFeatures {
    #[serde(rename = "feature", default)]
    pub features: Vec<FirmwareFeature>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FirmwareFeature {
    #[serde(rename = "@enabled")]
    pub enabled: String,
    #[serde(rename = "@name")]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Boot {
    #[serde(rename = "@dev")]
    pub dev: String,
}

/// An empty element (`<acpi/>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Features {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acpi: Option<Empty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apic: Option<Empty>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    #[serde(rename = "@mode")]
    pub mode: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Devices {
    #[serde(rename = "disk", default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    #[serde(rename = "hostdev", default, skip_serializing_if = "Vec::is_empty")]
    pub hostdevs: Vec<Hostdev>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    #[serde(rename = "@type")]
    pub disk_type: String,
    #[serde(rename = "@device")]
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<DiskDriver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DiskSource>,
    pub target: DiskTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly: Option<Empty>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskDriver {
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "@type")]
    pub format: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskSource {
    #[serde(rename = "@file")]
    pub file: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskTarget {
    #[serde(rename = "@dev")]
    pub dev: String,
    #[serde(rename = "@bus")]
    pub bus: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hostdev {
    #[serde(rename = "@mode")]
    pub mode: String,
    #[serde(rename = "@type")]
    pub hostdev_type: String,
    #[serde(rename = "@managed", default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<String>,
    pub source: HostdevSource,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostdevSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<PciAddressXml>,
}

/// `<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PciAddressXml {
    #[serde(rename = "@domain")]
    pub domain: String,
    #[serde(rename = "@bus")]
    pub bus: String,
    #[serde(rename = "@slot")]
    pub slot: String,
    #[serde(rename = "@function")]
    pub function: String,
}

impl Hostdev {
    /// A managed PCI hostdev: libvirt moves the function to vfio-pci when
    /// the VM starts and back when it stops.
    pub fn pci(address: &PciAddress) -> Hostdev {
        Hostdev {
            mode: "subsystem".into(),
            hostdev_type: "pci".into(),
            managed: Some("yes".into()),
            source: HostdevSource {
                address: Some(address.into()),
            },
        }
    }

    /// `<hostdev …>` on its own, for attach and detach.
    pub fn to_xml(&self) -> Result<String, VmError> {
        let mut out = String::new();
        let ser = quick_xml::se::Serializer::with_root(&mut out, Some("hostdev"))
            .map_err(|e| VmError::Xml(e.to_string()))?;
        self.serialize(ser)
            .map_err(|e| VmError::Xml(e.to_string()))?;
        Ok(out)
    }
}

impl From<&PciAddress> for PciAddressXml {
    fn from(a: &PciAddress) -> Self {
        PciAddressXml {
            domain: format!("0x{:04x}", a.domain),
            bus: format!("0x{:02x}", a.bus),
            slot: format!("0x{:02x}", a.device),
            function: format!("0x{:x}", a.function),
        }
    }
}

impl PciAddressXml {
    /// The address, through the strict parser (a slot above 31 or a
    /// function above 7 from a remote libvirt is refused).
    pub fn to_address(&self) -> Option<PciAddress> {
        let n = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok();
        format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            n(&self.domain)?,
            n(&self.bus)?,
            n(&self.slot)?,
            n(&self.function)?
        )
        .parse()
        .ok()
    }
}

/// A libvirt domain name Traspaso accepts.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Every endpoint of the groups of `devices`, in address order, without
/// repeats — never half a group.
pub fn hostdevs_for(
    topology: &Topology,
    devices: &[PciAddress],
) -> Result<Vec<PciAddress>, VmError> {
    let mut out = Vec::new();
    for address in devices {
        let device = topology
            .device(address)
            .ok_or(VmError::UnknownDevice(*address))?;
        if device.bridge {
            return Err(VmError::Bridge(*address));
        }
        let group = device
            .iommu_group
            .and_then(|g| topology.group(g))
            .ok_or(VmError::NoGroup(*address))?;
        for a in &group.moves_together {
            if !out.contains(a) {
                out.push(*a);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Domain {
    /// A passthrough-ready domain for the spec, with `hostdevs` (see [`hostdevs_for`]).
    pub fn passthrough(spec: &VmSpec, hostdevs: &[PciAddress]) -> Result<Domain, VmError> {
        if !valid_name(&spec.name) {
            return Err(VmError::BadName(spec.name.clone()));
        }
        let secure = if spec.secure_boot { "yes" } else { "no" };
        let mut disks = Vec::new();
        if let Some(disk) = &spec.disk {
            let format = if disk.extension().is_some_and(|e| e == "qcow2") {
                "qcow2"
            } else {
                "raw"
            };
            disks.push(Disk {
                disk_type: "file".into(),
                device: "disk".into(),
                driver: Some(DiskDriver {
                    name: "qemu".into(),
                    format: format.into(),
                }),
                source: Some(DiskSource {
                    file: disk.display().to_string(),
                }),
                target: DiskTarget {
                    dev: "vda".into(),
                    bus: "virtio".into(),
                },
                readonly: None,
            });
        }
        if let Some(iso) = &spec.iso {
            disks.push(Disk {
                disk_type: "file".into(),
                device: "cdrom".into(),
                driver: Some(DiskDriver {
                    name: "qemu".into(),
                    format: "raw".into(),
                }),
                source: Some(DiskSource {
                    file: iso.display().to_string(),
                }),
                target: DiskTarget {
                    dev: "sda".into(),
                    bus: "sata".into(),
                },
                readonly: Some(Empty {}),
            });
        }
        let mut boot = Vec::new();
        if spec.iso.is_some() {
            boot.push(Boot {
                dev: "cdrom".into(),
            });
        }
        boot.push(Boot { dev: "hd".into() });
        Ok(Domain {
            virt_type: spec.virt_type.clone(),
            name: spec.name.clone(),
            memory: Memory {
                unit: "MiB".into(),
                value: spec.memory_mib,
            },
            vcpu: spec.vcpus,
            os: Os {
                firmware: Some("efi".into()),
                os_type: OsType {
                    arch: Some("x86_64".into()),
                    machine: Some("q35".into()),
                    value: "hvm".into(),
                },
                firmware_features: Some(FirmwareFeatures {
                    features: vec![
                        FirmwareFeature {
                            enabled: secure.into(),
                            name: "secure-boot".into(),
                        },
                        FirmwareFeature {
                            enabled: secure.into(),
                            name: "enrolled-keys".into(),
                        },
                    ],
                }),
                boot,
            },
            // OVMF needs ACPI.
            features: Some(Features {
                acpi: Some(Empty {}),
                apic: Some(Empty {}),
            }),
            cpu: (spec.virt_type == "kvm").then(|| Cpu {
                mode: "host-passthrough".into(),
            }),
            devices: Devices {
                disks,
                hostdevs: hostdevs.iter().map(Hostdev::pci).collect(),
            },
        })
    }

    /// The domain as libvirt XML.
    pub fn to_xml(&self) -> Result<String, VmError> {
        let mut out = String::new();
        let mut ser = quick_xml::se::Serializer::new(&mut out);
        ser.indent(' ', 2);
        self.serialize(ser)
            .map_err(|e| VmError::Xml(e.to_string()))?;
        Ok(out)
    }

    /// Read a domain's XML (as libvirt returns it).
    pub fn from_xml(xml: &str) -> Result<Domain, VmError> {
        quick_xml::de::from_str(xml).map_err(|e| VmError::Xml(e.to_string()))
    }

    /// The PCI functions given to this domain.
    pub fn pci_hostdevs(&self) -> Vec<PciAddress> {
        self.devices
            .hostdevs
            .iter()
            .filter(|h| h.mode == "subsystem" && h.hostdev_type == "pci")
            .filter_map(|h| {
                h.source
                    .address
                    .as_ref()
                    .and_then(PciAddressXml::to_address)
            })
            .collect()
    }
}

/// A label for messages.
pub fn describe(domain: &Domain) -> String {
    gettext_f(
        "{name}: {memory} MiB, {vcpus} vCPUs, {devices}",
        &[
            ("name", &domain.name),
            ("memory", &domain.memory.value.to_string()),
            ("vcpus", &domain.vcpu.to_string()),
            (
                "devices",
                &if domain.devices.hostdevs.is_empty() {
                    gettext("no PCI devices")
                } else {
                    domain
                        .pci_hostdevs()
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
        ],
    )
}

/// A domain's state, in the words scripts use (never translated).
pub fn state_name(state: virt::domain::DomainState) -> &'static str {
    use virt::domain::DomainState as S;
    match state {
        S::Running => "running",
        S::Blocked => "blocked",
        S::Paused => "paused",
        S::Shutdown => "shutting-down",
        S::Shutoff => "shut-off",
        S::Crashed => "crashed",
        S::PMSuspended => "suspended",
        S::NoState => "unknown",
    }
}

/// One VM as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmInfo {
    pub name: String,
    pub state: &'static str,
    /// PCI functions given to it.
    pub hostdevs: Vec<String>,
}

/// Why a libvirt call failed, in the user's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibvirtError {
    /// The daemon is not there or not reachable.
    Unreachable(String),
    /// libvirt refused us (polkit, group membership, ACLs).
    Denied(String),
    NoSuchVm(String),
    NameTaken(String),
    /// The VM is not in a state for this (already running, not running…).
    WrongState(String),
    /// The host cannot give PCI devices to guests (no IOMMU, or no VFIO).
    NoPassthrough(String),
    /// No storage pool to make a disk in.
    NoPool(String),
    NotAttached {
        vm: String,
        device: PciAddress,
    },
    Other(String),
    Xml(VmError),
}

impl std::fmt::Display for LibvirtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            LibvirtError::Unreachable(d) => gettext_f(
                "Cannot reach libvirt ({detail}). Is the libvirt daemon installed and running?",
                &[("detail", d)],
            ),
            LibvirtError::Denied(d) => gettext_f(
                "libvirt refused access ({detail}). Add yourself to the libvirt group, or use qemu:///session.",
                &[("detail", d)],
            ),
            LibvirtError::NoSuchVm(n) => {
                gettext_f("There is no virtual machine called “{name}”.", &[("name", n)])
            }
            LibvirtError::NameTaken(n) => gettext_f(
                "A virtual machine called “{name}” already exists.",
                &[("name", n)],
            ),
            LibvirtError::WrongState(d) => gettext_f(
                "The virtual machine is not in a state for this: {detail}",
                &[("detail", d)],
            ),
            LibvirtError::NoPassthrough(d) => gettext_f(
                "This host cannot give PCI devices to a virtual machine: its IOMMU is off or VFIO is missing ({detail}). Run “traspasoctl check” to see what to turn on.",
                &[("detail", d)],
            ),
            LibvirtError::NoPool(pool) => gettext_f(
                "The host has no storage pool “{pool}” for a new disk: create one (virsh pool-define-as {pool} dir --target /var/lib/libvirt/images, then pool-start and pool-autostart), or give an existing image with --disk.",
                &[("pool", pool)],
            ),
            LibvirtError::NotAttached { vm, device } => gettext_f(
                "{device} is not attached to “{name}”.",
                &[("device", &device.to_string()), ("name", vm)],
            ),
            LibvirtError::Other(d) => gettext_f("libvirt: {detail}", &[("detail", d)]),
            LibvirtError::Xml(e) => e.to_string(),
        };
        f.write_str(&text)
    }
}

impl std::error::Error for LibvirtError {}

fn map_error(e: virt::error::Error, name: Option<&str>) -> LibvirtError {
    use virt::error::ErrorNumber as N;
    let detail = e.message().to_owned();
    if detail.contains("doesn't support passthrough") {
        return LibvirtError::NoPassthrough(detail);
    }
    // The socket is there but not for us (not in the libvirt group).
    if detail.contains("Permission denied") {
        return LibvirtError::Denied(detail);
    }
    match e.code().known() {
        Some(N::NoConnect) | Some(N::SystemError) | Some(N::Rpc) => {
            LibvirtError::Unreachable(detail)
        }
        Some(N::AuthFailed) | Some(N::AuthCancelled) | Some(N::AccessDenied) => {
            LibvirtError::Denied(detail)
        }
        Some(N::NoDomain) => LibvirtError::NoSuchVm(name.unwrap_or_default().to_owned()),
        Some(N::DomExist) => LibvirtError::NameTaken(name.unwrap_or_default().to_owned()),
        Some(N::OperationInvalid) => LibvirtError::WrongState(detail),
        _ => LibvirtError::Other(detail),
    }
}

/// A new disk image in a storage pool: `<volume>` with its size and format.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename = "volume")]
pub struct Volume {
    pub name: String,
    pub capacity: Capacity,
    pub target: VolumeTarget,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capacity {
    #[serde(rename = "@unit")]
    pub unit: String,
    #[serde(rename = "$text")]
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolumeTarget {
    pub format: VolumeFormat,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolumeFormat {
    #[serde(rename = "@type")]
    pub kind: String,
}

impl Volume {
    /// A qcow2 image of `gib` GiB (it grows as the guest writes).
    pub fn qcow2(name: &str, gib: u64) -> Volume {
        Volume {
            name: format!("{name}.qcow2"),
            capacity: Capacity {
                unit: "GiB".into(),
                value: gib,
            },
            target: VolumeTarget {
                format: VolumeFormat {
                    kind: "qcow2".into(),
                },
            },
        }
    }

    pub fn to_xml(&self) -> Result<String, VmError> {
        let mut out = String::new();
        self.serialize(quick_xml::se::Serializer::new(&mut out))
            .map_err(|e| VmError::Xml(e.to_string()))?;
        Ok(out)
    }
}

/// The persistent configuration, and the running guest when there is one.
fn affect_flags(live: bool) -> u32 {
    let config = virt::sys::VIR_DOMAIN_AFFECT_CONFIG;
    if live {
        config | virt::sys::VIR_DOMAIN_AFFECT_LIVE
    } else {
        config
    }
}

/// A connection to libvirt (`qemu:///system` by default, or any URI such as
/// `qemu+ssh://host/system`).
pub struct Libvirt {
    connection: virt::connect::Connect,
    pub uri: String,
}

impl Libvirt {
    pub const DEFAULT_URI: &'static str = "qemu:///system";

    pub fn connect(uri: Option<&str>) -> Result<Libvirt, LibvirtError> {
        // libvirt prints every error on stderr unless told not to: we report them.
        virt::error::clear_error_callback();
        let uri = uri.unwrap_or(Self::DEFAULT_URI).to_owned();
        let connection =
            virt::connect::Connect::open(Some(&uri)).map_err(|e| map_error(e, None))?;
        Ok(Libvirt { connection, uri })
    }

    fn domain(&self, name: &str) -> Result<virt::domain::Domain, LibvirtError> {
        self.connection
            .lookup_domain_by_name(name)
            .map_err(|e| map_error(e, Some(name)))
    }

    /// Every VM with its state and PCI devices.
    pub fn list(&self) -> Result<Vec<VmInfo>, LibvirtError> {
        let domains = self
            .connection
            .list_all_domains(0)
            .map_err(|e| map_error(e, None))?;
        let mut out = Vec::new();
        for d in domains {
            let name = d.name().map_err(|e| map_error(e, None))?;
            let state = d
                .state()
                .ok()
                .and_then(|(s, _)| s.known())
                .map(state_name)
                .unwrap_or("unknown");
            let hostdevs = d
                .xml_desc(0)
                .ok()
                .and_then(|x| Domain::from_xml(&x).ok())
                .map(|x| x.pci_hostdevs().iter().map(|a| a.to_string()).collect())
                .unwrap_or_default();
            out.push(VmInfo {
                name,
                state,
                hostdevs,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Define (persistently) a new VM; a taken name is refused, never replaced.
    pub fn define(&self, domain: &Domain) -> Result<(), LibvirtError> {
        if self.connection.lookup_domain_by_name(&domain.name).is_ok() {
            return Err(LibvirtError::NameTaken(domain.name.clone()));
        }
        let xml = domain.to_xml().map_err(LibvirtError::Xml)?;
        self.connection
            .define_domain_xml(&xml)
            .map(|_| ())
            .map_err(|e| map_error(e, Some(&domain.name)))
    }

    /// The VM's domain, as libvirt has it.
    pub fn read(&self, name: &str) -> Result<Domain, LibvirtError> {
        let xml = self
            .domain(name)?
            .xml_desc(0)
            .map_err(|e| map_error(e, Some(name)))?;
        Domain::from_xml(&xml).map_err(LibvirtError::Xml)
    }

    pub fn state(&self, name: &str) -> Result<&'static str, LibvirtError> {
        let (state, _) = self
            .domain(name)?
            .state()
            .map_err(|e| map_error(e, Some(name)))?;
        Ok(state.known().map(state_name).unwrap_or("unknown"))
    }

    pub fn start(&self, name: &str) -> Result<(), LibvirtError> {
        self.domain(name)?
            .create()
            .map(|_| ())
            .map_err(|e| map_error(e, Some(name)))
    }

    /// Ask the guest to shut down (ACPI).
    pub fn shutdown(&self, name: &str) -> Result<(), LibvirtError> {
        self.domain(name)?
            .shutdown()
            .map(|_| ())
            .map_err(|e| map_error(e, Some(name)))
    }

    /// Force it off.
    pub fn destroy(&self, name: &str) -> Result<(), LibvirtError> {
        self.domain(name)?
            .destroy()
            .map(|_| ())
            .map_err(|e| map_error(e, Some(name)))
    }

    /// The nodedev XML of every PCI function on the connection's host.
    pub fn pci_node_devices(&self) -> Result<Vec<String>, LibvirtError> {
        // Only PCI functions; drivers that cannot filter (the test driver)
        // list everything, and the rest is skipped when reading.
        let devices = match self
            .connection
            .list_all_node_devices(virt::sys::VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV)
        {
            Err(e) if e.message().contains("unsupported flags") => {
                self.connection.list_all_node_devices(0)
            }
            other => other,
        }
        .map_err(|e| map_error(e, None))?;
        devices
            .iter()
            .map(|d| d.xml_desc(0).map_err(|e| map_error(e, None)))
            .collect()
    }

    /// The topology of the connection's host, from its node devices: what a
    /// remote host shows. Names the host's libvirt gave are kept; the local
    /// names database fills in the rest.
    pub fn topology(&self, pci_ids: Option<&std::path::Path>) -> Result<Topology, LibvirtError> {
        let xmls = self.pci_node_devices()?;
        let mut topology = crate::nodedev::topology(&xmls, &self.uri)
            .map_err(|e| LibvirtError::Other(e.to_string()))?;
        let names = crate::pci::PciNames::load(pci_ids, &topology.wanted_ids());
        if let (Err(e), Some(_)) = (&names, pci_ids) {
            return Err(LibvirtError::Other(e.to_string()));
        }
        if let Ok(names) = names {
            let given: Vec<_> = topology
                .devices
                .iter()
                .map(|d| (d.vendor_name.clone(), d.device_name.clone()))
                .collect();
            topology.apply_names(&names);
            for (d, (vendor, device)) in topology.devices.iter_mut().zip(given) {
                d.vendor_name = vendor.or(d.vendor_name.take());
                d.device_name = device.or(d.device_name.take());
            }
        }
        topology.findings = crate::topology::analyse(&topology);
        Ok(topology)
    }

    /// The storage pool new disks go to.
    pub const DEFAULT_POOL: &'static str = "default";

    /// Make a new qcow2 disk of `gib` GiB for the VM `name` in the host's
    /// default storage pool (works for remote hosts too). Returns its path.
    pub fn create_disk(&self, name: &str, gib: u64) -> Result<PathBuf, LibvirtError> {
        let pool = self
            .connection
            .lookup_storage_pool_by_name(Self::DEFAULT_POOL)
            .map_err(|e| match e.code().known() {
                Some(virt::error::ErrorNumber::NoStoragePool) => {
                    LibvirtError::NoPool(Self::DEFAULT_POOL.to_owned())
                }
                _ => map_error(e, None),
            })?;
        let xml = Volume::qcow2(name, gib)
            .to_xml()
            .map_err(LibvirtError::Xml)?;
        let volume = virt::storage_vol::StorageVol::create_xml(&pool, &xml, 0)
            .map_err(|e| map_error(e, None))?;
        volume
            .path()
            .map(PathBuf::from)
            .map_err(|e| map_error(e, None))
    }

    /// Define a passthrough-ready VM for `spec` with `hostdevs`, first making
    /// it a new qcow2 disk of `disk_gib` GiB when asked (instead of
    /// `spec.disk`). Nothing is left half-made: a taken name is refused
    /// before the disk is made, and the disk goes again when the VM cannot
    /// be defined.
    pub fn create_vm(
        &self,
        spec: &VmSpec,
        hostdevs: &[PciAddress],
        disk_gib: Option<u64>,
    ) -> Result<Domain, LibvirtError> {
        // Checked before anything is made (a bad name or device fails here).
        let mut domain = Domain::passthrough(spec, hostdevs).map_err(LibvirtError::Xml)?;
        if self.connection.lookup_domain_by_name(&spec.name).is_ok() {
            return Err(LibvirtError::NameTaken(spec.name.clone()));
        }
        let new_disk = match disk_gib {
            Some(gib) => Some(self.create_disk(&spec.name, gib)?),
            None => None,
        };
        if let Some(path) = &new_disk {
            let with_disk = VmSpec {
                disk: Some(path.clone()),
                ..spec.clone()
            };
            domain = Domain::passthrough(&with_disk, hostdevs).map_err(LibvirtError::Xml)?;
        }
        if let Err(e) = self.define(&domain) {
            if let Some(path) = &new_disk {
                let _ = self.delete_disk(path);
            }
            return Err(e);
        }
        Ok(domain)
    }

    /// Remove a disk made by [`Libvirt::create_disk`] (when what it was made
    /// for failed).
    pub fn delete_disk(&self, path: &std::path::Path) -> Result<(), LibvirtError> {
        let path = path.display().to_string();
        self.connection
            .lookup_storage_vol_by_path(&path)
            .and_then(|v| v.delete(0))
            .map_err(|e| map_error(e, None))
    }

    /// Give `devices` (every endpoint of their groups, see [`hostdevs_for`])
    /// to the VM: in its configuration, and to the running guest too when
    /// it runs. All or nothing: when one fails, those already attached are
    /// detached again. Functions it already has are left as they are.
    /// Returns whether the running guest got them as well.
    pub fn attach(&self, name: &str, devices: &[PciAddress]) -> Result<bool, LibvirtError> {
        let domain = self.domain(name)?;
        let live = domain.is_active().map_err(|e| map_error(e, Some(name)))?;
        let flags = affect_flags(live);
        let present = self.read(name)?.pci_hostdevs();
        let mut done: Vec<String> = Vec::new();
        for address in devices.iter().filter(|a| !present.contains(a)) {
            let xml = Hostdev::pci(address).to_xml().map_err(LibvirtError::Xml)?;
            if let Err(e) = domain.attach_device_flags(&xml, flags) {
                for undo in &done {
                    let _ = domain.detach_device_flags(undo, flags);
                }
                return Err(map_error(e, Some(name)));
            }
            done.push(xml);
        }
        Ok(live)
    }

    /// Take `devices` away from the VM (configuration, and the running
    /// guest when it runs). Every one must be attached to it.
    pub fn detach(&self, name: &str, devices: &[PciAddress]) -> Result<bool, LibvirtError> {
        let domain = self.domain(name)?;
        let live = domain.is_active().map_err(|e| map_error(e, Some(name)))?;
        let present = self.read(name)?.pci_hostdevs();
        if let Some(missing) = devices.iter().find(|a| !present.contains(a)) {
            return Err(LibvirtError::NotAttached {
                vm: name.to_owned(),
                device: *missing,
            });
        }
        for address in devices {
            let xml = Hostdev::pci(address).to_xml().map_err(LibvirtError::Xml)?;
            domain
                .detach_device_flags(&xml, affect_flags(live))
                .map_err(|e| map_error(e, Some(name)))?;
        }
        Ok(live)
    }

    /// Undefine, with its NVRAM (OVMF variables). Drivers without NVRAM
    /// support (the test driver) take a plain undefine.
    pub fn delete(&self, name: &str) -> Result<(), LibvirtError> {
        let domain = self.domain(name)?;
        match domain.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM) {
            Ok(()) => Ok(()),
            Err(e) if e.message().contains("unsupported flags") => {
                domain.undefine().map_err(|e| map_error(e, Some(name)))
            }
            Err(e) => Err(map_error(e, Some(name))),
        }
    }
}
