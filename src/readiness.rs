//! Can this machine do passthrough? The host checks behind the setup wizard
//! and `traspasoctl check`: each with a stable id, a status, what was seen,
//! why it matters and the exact next step.
//!
//! [`gather`] reads the host (through [`HostRoot`], so captured hosts work)
//! into [`HostFacts`]; [`assess`] is pure and turns facts plus the scanned
//! [`Topology`] into [`Readiness`].

use std::path::Path;

use serde::Serialize;

use crate::host::{HostError, HostRoot};
use crate::i18n::{gettext, gettext_f};
use crate::topology::{PciDevice, RomVerdict, Topology};

/// The outcome of one check. Never translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Unknown,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Unknown => "unknown",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check: stable id and status, translated sentences.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    /// What was seen on this host.
    pub seen: String,
    /// Why it matters.
    pub why: String,
    /// The exact next step (empty when there is nothing to do).
    pub next: String,
    /// A shell command that does the next step, to copy (boot configuration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// A display device as the GPU check sees it.
#[derive(Debug, Clone, Serialize)]
pub struct GpuCandidate {
    pub address: String,
    pub name: String,
    pub boot_vga: bool,
    pub integrated: bool,
    /// `uefi`, `legacy-only`, `shadow-copy`, `unreadable`, `not-read`, `none`.
    pub rom: &'static str,
    /// `isolated`, `shared`, `no-group`.
    pub group: &'static str,
    /// Can go to a VM while the host keeps another GPU.
    pub candidate: bool,
}

/// Every check and a one-sentence summary.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub checks: Vec<Check>,
    pub summary: String,
    pub gpus: Vec<GpuCandidate>,
}

impl Readiness {
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The worst status of all checks.
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Unknown)
    }
}

/// Every check id, in the order they are shown.
pub const CHECK_IDS: [&str; 14] = [
    "cpu-virtualization",
    "cpu-iommu-support",
    "cpu-iommu-slowdown",
    "firmware-iommu",
    "kernel-iommu",
    "kernel-passthrough-mode",
    "acs-override",
    "interrupt-remapping",
    "vfio-modules",
    "guest-firmware",
    "libvirt",
    "helper",
    "gpu-candidates",
    "bootloader",
];

/// A check's title, for people (translated).
pub fn title(id: &str) -> String {
    match id {
        "cpu-virtualization" => gettext("Processor virtualization"),
        "cpu-iommu-support" => gettext("Processor IOMMU support"),
        "cpu-iommu-slowdown" => gettext("IOMMU performance"),
        "firmware-iommu" => gettext("IOMMU in the firmware"),
        "kernel-iommu" => gettext("IOMMU in the kernel"),
        "kernel-passthrough-mode" => gettext("Passthrough mode"),
        "acs-override" => gettext("ACS override"),
        "interrupt-remapping" => gettext("Interrupt remapping"),
        "vfio-modules" => gettext("VFIO driver"),
        "guest-firmware" => gettext("UEFI firmware for guests"),
        "libvirt" => gettext("libvirt"),
        "helper" => gettext("Traspaso helper"),
        "gpu-candidates" => gettext("Graphics cards"),
        "bootloader" => gettext("Boot configuration"),
        _ => id.to_owned(),
    }
}

/// The processor, from the first block of `/proc/cpuinfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpu {
    pub vendor: String,
    pub family: Option<u32>,
    pub model: Option<u32>,
    pub model_name: String,
    pub flags: Vec<String>,
}

impl Cpu {
    pub fn parse(text: &str) -> Option<Cpu> {
        let mut cpu = Cpu::default();
        let mut seen_any = false;
        for line in text.lines() {
            if line.trim().is_empty() {
                if seen_any {
                    break;
                }
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            seen_any = true;
            let value = value.trim();
            match key.trim() {
                "vendor_id" => cpu.vendor = value.to_owned(),
                "cpu family" => cpu.family = value.parse().ok(),
                "model" => cpu.model = value.parse().ok(),
                "model name" => cpu.model_name = value.to_owned(),
                "flags" => cpu.flags = value.split_whitespace().map(str::to_owned).collect(),
                _ => {}
            }
        }
        seen_any.then_some(cpu)
    }

    pub fn is_intel(&self) -> bool {
        self.vendor == "GenuineIntel"
    }

    pub fn is_amd(&self) -> bool {
        self.vendor == "AuthenticAMD" || self.vendor == "HygonGenuine"
    }

    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Sandy Bridge: family 6, model 42 (desktop/mobile) or 45 (E/EP).
    pub fn is_sandy_bridge(&self) -> bool {
        self.is_intel() && self.family == Some(6) && matches!(self.model, Some(42 | 45))
    }

    /// "Intel Core i7-3770" from "Intel(R) Core(TM) i7-3770 CPU @ 3.40GHz".
    pub fn label(&self) -> String {
        if self.model_name.is_empty() {
            return self.vendor.clone();
        }
        let mut name = self.model_name.clone();
        for mark in ["(R)", "(r)", "(TM)", "(tm)"] {
            name = name.replace(mark, "");
        }
        if let Some(at) = name.find(" @ ") {
            name.truncate(at);
        }
        let name = name
            .trim_end()
            .strip_suffix(" CPU")
            .unwrap_or(name.trim_end());
        name.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Intel models known to lack VT-d (the Sandy Bridge unlocked K parts).
const NO_VTD_MODELS: &[&str] = &["i5-2500K", "i5-2550K", "i7-2600K", "i7-2700K"];

/// How the VFIO driver is present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VfioModule {
    pub built_in: bool,
    pub loaded: bool,
    pub available: bool,
}

/// A QEMU firmware descriptor (what libvirt uses for `firmware='efi'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareDescriptor {
    pub file: String,
    pub uefi: bool,
    pub x86_64: bool,
    pub secure_boot: bool,
}

/// A way the kernel command line is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootloader {
    RpmOstree,
    Kernelstub,
    Grubby,
    KernelInstall,
    SystemdBoot,
    Grub,
}

impl Bootloader {
    pub fn name(self) -> &'static str {
        match self {
            Bootloader::RpmOstree => "rpm-ostree",
            Bootloader::Kernelstub => "kernelstub",
            Bootloader::Grubby => "grubby",
            Bootloader::KernelInstall => "kernel-install",
            Bootloader::SystemdBoot => "systemd-boot",
            Bootloader::Grub => "GRUB",
        }
    }

    /// The command that adds `flags` to the kernel command line for good.
    pub fn command(self, flags: &[String]) -> String {
        let joined = flags.join(" ");
        match self {
            Bootloader::RpmOstree => format!(
                "sudo rpm-ostree kargs {}",
                flags
                    .iter()
                    .map(|f| format!("--append={f}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Bootloader::Kernelstub => format!("sudo kernelstub --add-options \"{joined}\""),
            Bootloader::Grubby => format!("sudo grubby --update-kernel=ALL --args=\"{joined}\""),
            Bootloader::KernelInstall => format!(
                "echo \"$(cat /etc/kernel/cmdline) {joined}\" | sudo tee /etc/kernel/cmdline && sudo kernel-install add \"$(uname -r)\" \"/lib/modules/$(uname -r)/vmlinuz\""
            ),
            Bootloader::SystemdBoot => format!(
                "sudo sed -i '/^options/ s/$/ {joined}/' /boot/loader/entries/*.conf"
            ),
            Bootloader::Grub => format!(
                "sudo sed -i 's/^GRUB_CMDLINE_LINUX_DEFAULT=\"/&{joined} /' /etc/default/grub && sudo update-grub"
            ),
        }
    }
}

/// Whether something answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Service {
    /// Installed and answering.
    Answering,
    /// Installed (or its socket exists), but it did not answer.
    Installed,
    Missing,
    /// Not knowable from a captured host.
    #[default]
    Unknown,
}

/// Board and firmware, for advice and reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dmi {
    pub sys_vendor: Option<String>,
    pub product_name: Option<String>,
    pub board_vendor: Option<String>,
    pub board_name: Option<String>,
    pub bios_version: Option<String>,
    pub bios_date: Option<String>,
}

impl Dmi {
    /// "ASUSTeK Computer INC. P8Z68-V", or the product when the board is unnamed.
    pub fn board(&self) -> Option<String> {
        match (&self.board_vendor, &self.board_name) {
            (Some(v), Some(n)) => Some(format!("{v} {n}")),
            (None, Some(n)) => Some(n.clone()),
            _ => match (&self.sys_vendor, &self.product_name) {
                (Some(v), Some(n)) => Some(format!("{v} {n}")),
                _ => None,
            },
        }
    }
}

/// Everything the checks need, read from the host.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub cpu: Option<Cpu>,
    /// ACPI table names; `None` when the directory could not be read.
    pub acpi_tables: Option<Vec<String>>,
    /// `/sys/class/iommu` entries: the kernel enabled an IOMMU.
    pub iommu_units: Vec<String>,
    pub cmdline: String,
    pub kernel_release: Option<String>,
    pub vfio: VfioModule,
    /// `allow_unsafe_interrupts` of vfio_iommu_type1, when loaded.
    pub unsafe_interrupts: Option<bool>,
    /// From `/proc/interrupts`: `IR-` chips mean remapping is on.
    pub interrupt_remapping: Option<bool>,
    /// The `type` of each IOMMU group (`identity` under iommu=pt).
    pub group_types: Vec<String>,
    pub firmware: Vec<FirmwareDescriptor>,
    pub ovmf_files: Vec<String>,
    pub libvirt: Service,
    pub helper: Service,
    pub bootloaders: Vec<Bootloader>,
    pub dmi: Dmi,
}

fn attr(host: &HostRoot, path: &str) -> Result<Option<String>, HostError> {
    Ok(host.read_attr(path)?.filter(|s| !s.is_empty()))
}

/// Read everything the checks need. Missing files are facts, not errors;
/// an error is a file that exists and cannot be read as it should.
pub fn gather(host: &HostRoot) -> Result<HostFacts, HostError> {
    let mut facts = HostFacts::default();
    match host.read_bytes("/proc/cpuinfo", 16 << 20) {
        Ok(data) => facts.cpu = Cpu::parse(&String::from_utf8_lossy(&data)),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    facts.acpi_tables = match host.read_dir("/sys/firmware/acpi/tables") {
        Ok(names) => Some(names),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    facts.iommu_units = host.read_dir_or_empty("/sys/class/iommu")?;
    facts.cmdline = host.read_attr("/proc/cmdline")?.unwrap_or_default();
    facts.kernel_release =
        attr(host, "/proc/sys/kernel/osrelease")?.filter(|r| !r.contains('/') && r != "..");

    facts.vfio.loaded = host.exists("/sys/module/vfio_pci");
    if let Some(release) = &facts.kernel_release {
        let modules = Path::new("/lib/modules").join(release);
        if let Some(list) = host.read_attr(modules.join("modules.builtin"))? {
            facts.vfio.built_in = list
                .lines()
                .any(|l| l.trim().ends_with("/vfio-pci.ko") || l.trim() == "vfio-pci.ko");
        }
        let dir = modules.join("kernel/drivers/vfio/pci");
        facts.vfio.available = host
            .read_dir_or_empty(&dir)?
            .iter()
            .any(|n| n.starts_with("vfio-pci.ko"));
    }
    facts.vfio.available |= facts.vfio.loaded || facts.vfio.built_in;
    facts.unsafe_interrupts = attr(
        host,
        "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
    )?
    .map(|v| v == "Y" || v == "1");
    facts.interrupt_remapping = match host.read_bytes("/proc/interrupts", 16 << 20) {
        Ok(data) => Some(String::from_utf8_lossy(&data).contains(" IR-")),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    for group in host.read_dir_or_empty("/sys/kernel/iommu_groups")? {
        let path = Path::new("/sys/kernel/iommu_groups")
            .join(&group)
            .join("type");
        if let Some(t) = host.read_attr(&path)? {
            facts.group_types.push(t);
        }
    }

    let descriptors = "/usr/share/qemu/firmware";
    let mut names = host.read_dir_or_empty(descriptors)?;
    names.sort();
    for name in names.iter().filter(|n| n.ends_with(".json")) {
        let path = Path::new(descriptors).join(name);
        // A broken descriptor is not ours to judge: skip it as libvirt would.
        let Ok(text) = host.read_string(&path) else {
            continue;
        };
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            let strings = |key: &str| -> Vec<String> {
                value[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let targets = value["targets"].as_array().cloned().unwrap_or_default();
            facts.firmware.push(FirmwareDescriptor {
                file: name.clone(),
                uefi: strings("interface-types").iter().any(|t| t == "uefi"),
                x86_64: targets
                    .iter()
                    .any(|t| t["architecture"].as_str() == Some("x86_64")),
                secure_boot: strings("features").iter().any(|f| f == "secure-boot"),
            });
        }
    }
    for dir in [
        "/usr/share/OVMF",
        "/usr/share/edk2/ovmf",
        "/usr/share/edk2/x64",
    ] {
        for name in host.read_dir_or_empty(dir)? {
            if name.ends_with(".fd") {
                facts.ovmf_files.push(format!("{dir}/{name}"));
            }
        }
    }

    facts.libvirt = service(
        host,
        &["/run/libvirt/virtqemud-sock", "/run/libvirt/libvirt-sock"],
    );
    let installed =
        host.exists("/usr/share/dbus-1/system-services/io.github.traspaso.Helper1.service");
    facts.helper = match (installed, host.is_live()) {
        (_, true) if helper_on_bus() => Service::Answering,
        (true, _) => Service::Installed,
        (false, true) => Service::Missing,
        (false, false) => Service::Unknown,
    };

    let has = |p: &str| host.exists(p);
    if has("/run/ostree-booted") {
        facts.bootloaders.push(Bootloader::RpmOstree);
    }
    if has("/etc/kernelstub/configuration") {
        facts.bootloaders.push(Bootloader::Kernelstub);
    }
    if has("/usr/sbin/grubby") || has("/sbin/grubby") {
        facts.bootloaders.push(Bootloader::Grubby);
    }
    if has("/etc/kernel/cmdline") {
        facts.bootloaders.push(Bootloader::KernelInstall);
    }
    if !host.read_dir_or_empty("/boot/loader/entries")?.is_empty()
        || !host.read_dir_or_empty("/efi/loader/entries")?.is_empty()
    {
        facts.bootloaders.push(Bootloader::SystemdBoot);
    }
    if has("/etc/default/grub") {
        facts.bootloaders.push(Bootloader::Grub);
    }

    facts.dmi = Dmi {
        sys_vendor: attr(host, "/sys/class/dmi/id/sys_vendor")?,
        product_name: attr(host, "/sys/class/dmi/id/product_name")?,
        board_vendor: attr(host, "/sys/class/dmi/id/board_vendor")?,
        board_name: attr(host, "/sys/class/dmi/id/board_name")?,
        bios_version: attr(host, "/sys/class/dmi/id/bios_version")?,
        bios_date: attr(host, "/sys/class/dmi/id/bios_date")?,
    };
    Ok(facts)
}

/// Whether the helper runs now or the system bus can start it.
fn helper_on_bus() -> bool {
    let Ok(connection) = zbus::blocking::Connection::system() else {
        return false;
    };
    let Ok(bus) = zbus::blocking::fdo::DBusProxy::new(&connection) else {
        return false;
    };
    let name = zbus::names::BusName::from(zbus::names::WellKnownName::from_static_str_unchecked(
        crate::dbus::BUS_NAME,
    ));
    bus.name_has_owner(name).unwrap_or(false)
        || bus
            .list_activatable_names()
            .is_ok_and(|names| names.iter().any(|n| n.as_str() == crate::dbus::BUS_NAME))
}

/// A daemon's sockets: on the live host, try to connect; in a capture, only
/// whether the socket file was there.
fn service(host: &HostRoot, sockets: &[&str]) -> Service {
    let present: Vec<&&str> = sockets.iter().filter(|s| host.exists(s)).collect();
    if present.is_empty() {
        return if host.is_live() {
            Service::Missing
        } else {
            Service::Unknown
        };
    }
    if !host.is_live() {
        return Service::Installed;
    }
    if present
        .iter()
        .any(|s| std::os::unix::net::UnixStream::connect(s).is_ok())
    {
        Service::Answering
    } else {
        Service::Installed
    }
}

fn check(id: &'static str, status: Status, seen: String, why: String, next: String) -> Check {
    Check {
        id,
        status,
        seen,
        why,
        next,
        command: None,
    }
}

fn has_arg(cmdline: &str, arg: &str) -> bool {
    cmdline.split_whitespace().any(|a| a == arg)
}

fn arg_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|a| a.strip_prefix(key)?.strip_prefix('='))
}

/// Turn the facts and the topology into checks.
pub fn assess(facts: &HostFacts, topology: &Topology) -> Readiness {
    let cpu = facts.cpu.as_ref();
    let cpu_label = cpu
        .map(Cpu::label)
        .unwrap_or_else(|| gettext("unknown processor"));
    let firmware_table = facts
        .acpi_tables
        .as_ref()
        .map(|tables| tables.iter().any(|t| t == "DMAR" || t == "IVRS"));
    let mut checks = Vec::new();

    // cpu-virtualization
    checks.push(match cpu {
        None => check(
            "cpu-virtualization",
            Status::Unknown,
            gettext("/proc/cpuinfo could not be read."),
            gettext("A virtual machine needs the processor's virtualization extensions (Intel VT-x or AMD-V)."),
            String::new(),
        ),
        Some(c) if c.has("vmx") || c.has("svm") => check(
            "cpu-virtualization",
            Status::Pass,
            gettext_f(
                "{cpu} has {flag}.",
                &[("cpu", &cpu_label), ("flag", if c.has("vmx") { "VT-x (vmx)" } else { "AMD-V (svm)" })],
            ),
            gettext("A virtual machine needs the processor's virtualization extensions (Intel VT-x or AMD-V)."),
            String::new(),
        ),
        Some(c) => check(
            "cpu-virtualization",
            Status::Fail,
            gettext_f("{cpu} shows neither vmx nor svm.", &[("cpu", &cpu_label)]),
            gettext("A virtual machine needs the processor's virtualization extensions (Intel VT-x or AMD-V)."),
            if c.has("hypervisor") {
                gettext("This system is itself a virtual machine: turn on nested virtualization on its host.")
            } else {
                gettext("Turn on Intel Virtualization Technology (VT-x) or SVM Mode (AMD) in the firmware setup; the flag stays hidden while it is off.")
            },
        ),
    });

    // cpu-iommu-support
    let why_vtd = gettext("The IOMMU (Intel VT-d, AMD-Vi) is what lets a virtual machine own a device safely; it needs the processor, the chipset and the firmware.");
    checks.push(match cpu {
        None => check("cpu-iommu-support", Status::Unknown, gettext("/proc/cpuinfo could not be read."), why_vtd, String::new()),
        Some(c) if c.is_intel() && NO_VTD_MODELS.iter().any(|m| c.model_name.contains(m)) => check(
            "cpu-iommu-support",
            if firmware_table == Some(true) { Status::Warn } else { Status::Fail },
            gettext_f("{cpu} is a Sandy Bridge unlocked “K” model: these have no VT-d.", &[("cpu", &cpu_label)]),
            why_vtd,
            gettext("Passthrough needs another processor: the non-K models of the same generation (such as the i7-2600) and later ones such as the i7-3770 have VT-d."),
        ),
        Some(c) if c.is_intel() && c.model_name.contains("i3-") && firmware_table != Some(true) => check(
            "cpu-iommu-support",
            Status::Warn,
            gettext_f("{cpu} is a Core i3: most of them have no VT-d.", &[("cpu", &cpu_label)]),
            why_vtd,
            gettext("Look the exact model up on Intel's ARK site (“Intel Virtualization Technology for Directed I/O”)."),
        ),
        Some(_) if firmware_table == Some(true) => check(
            "cpu-iommu-support",
            Status::Pass,
            gettext_f("{cpu}: the firmware describes an IOMMU, so the processor has one.", &[("cpu", &cpu_label)]),
            why_vtd,
            String::new(),
        ),
        Some(_) => check(
            "cpu-iommu-support",
            Status::Pass,
            gettext_f("{cpu}: no known limitation; IOMMU support is likely.", &[("cpu", &cpu_label)]),
            why_vtd,
            String::new(),
        ),
    });

    // cpu-iommu-slowdown
    checks.push(match cpu {
        Some(c) if c.is_sandy_bridge() => check(
            "cpu-iommu-slowdown",
            Status::Warn,
            gettext_f("{cpu} is a Sandy Bridge processor.", &[("cpu", &cpu_label)]),
            gettext("With the IOMMU on, Sandy Bridge systems can lose noticeable performance, even on the host."),
            gettext("Use iommu=pt, and compare before and after; if the host suffers, keep the IOMMU off until you need the VM."),
        ),
        Some(_) => check(
            "cpu-iommu-slowdown",
            Status::Pass,
            gettext_f("{cpu}: no known slowdown with the IOMMU on.", &[("cpu", &cpu_label)]),
            gettext("Some older processors (Sandy Bridge) lose performance with the IOMMU on."),
            String::new(),
        ),
        None => check(
            "cpu-iommu-slowdown",
            Status::Unknown,
            gettext("/proc/cpuinfo could not be read."),
            gettext("Some older processors (Sandy Bridge) lose performance with the IOMMU on."),
            String::new(),
        ),
    });

    // firmware-iommu
    let board = facts.dmi.board();
    let bios = match (&facts.dmi.bios_version, &facts.dmi.bios_date) {
        (Some(v), Some(d)) => Some(format!("{v} ({d})")),
        (Some(v), None) => Some(v.clone()),
        _ => None,
    };
    let is_amd = cpu.is_some_and(Cpu::is_amd);
    let table_name = if is_amd { "IVRS" } else { "DMAR" };
    let why_fw = gettext("The firmware describes the IOMMU to the kernel in an ACPI table (DMAR on Intel, IVRS on AMD); without it the kernel cannot use one.");
    checks.push(match firmware_table {
        None => check("firmware-iommu", Status::Unknown, gettext("The ACPI tables could not be listed."), why_fw, String::new()),
        Some(true) => check(
            "firmware-iommu",
            Status::Pass,
            gettext_f("The firmware provides the {table} table.", &[("table", if facts.acpi_tables.as_ref().is_some_and(|t| t.iter().any(|n| n == "IVRS")) { "IVRS" } else { "DMAR" })]),
            why_fw,
            String::new(),
        ),
        Some(false) => {
            let switch = if is_amd {
                gettext("Turn on “IOMMU” (and “SVM Mode”) in the firmware setup")
            } else {
                gettext("Turn on “VT-d” (sometimes “Intel Virtualization Technology for Directed I/O”) in the firmware setup")
            };
            let update = match (&board, &bios) {
                (Some(b), Some(v)) => gettext_f(
                    "If there is no such switch, look for a BIOS update for the {board}: this one has BIOS {bios}, and some boards gained the switch in a later version.",
                    &[("board", b), ("bios", v)],
                ),
                _ => gettext("If there is no such switch, look for a BIOS update for the board: some boards gained it in a later version."),
            };
            check(
                "firmware-iommu",
                Status::Fail,
                gettext_f("There is no {table} table: the firmware does not offer an IOMMU.", &[("table", table_name)]),
                why_fw,
                format!("{switch}. {update}"),
            )
        }
    });

    // kernel-iommu
    let groups = topology.groups.len();
    let flag = if is_amd {
        "amd_iommu=on"
    } else {
        "intel_iommu=on"
    };
    let why_kernel = gettext("The kernel must turn the IOMMU on and sort devices into IOMMU groups before any can be given to a VM.");
    checks.push(if topology.iommu_enabled {
        check(
            "kernel-iommu",
            Status::Pass,
            gettext_f("The kernel has put the devices in {n} IOMMU groups.", &[("n", &groups.to_string())]),
            why_kernel,
            String::new(),
        )
    } else if firmware_table == Some(false) {
        check(
            "kernel-iommu",
            Status::Fail,
            gettext("There are no IOMMU groups, and the firmware offers no IOMMU."),
            why_kernel,
            gettext("Turn the IOMMU on in the firmware first (see “IOMMU in the firmware”)."),
        )
    } else {
        let off = arg_value(&facts.cmdline, if is_amd { "amd_iommu" } else { "intel_iommu" }) == Some("off");
        check(
            "kernel-iommu",
            Status::Fail,
            if off {
                gettext_f("There are no IOMMU groups: the kernel was started with {flag}.", &[("flag", if is_amd { "amd_iommu=off" } else { "intel_iommu=off" })])
            } else {
                gettext("There are no IOMMU groups: the kernel has not turned the IOMMU on.")
            },
            why_kernel,
            gettext_f("Start Linux with {flag} (see “Boot configuration” for the exact command), then restart.", &[("flag", flag)]),
        )
    });

    // kernel-passthrough-mode
    let pt = arg_value(&facts.cmdline, "iommu") == Some("pt")
        || (!facts.group_types.is_empty() && facts.group_types.iter().all(|t| t == "identity"));
    checks.push(check(
        "kernel-passthrough-mode",
        if pt { Status::Pass } else { Status::Warn },
        if pt {
            gettext("The host's own devices skip IOMMU translation (iommu=pt).")
        } else {
            gettext("iommu=pt is not set: every host device goes through IOMMU translation.")
        },
        gettext("With iommu=pt only the devices given to VMs are translated, which spares the host's own devices the cost."),
        if pt { String::new() } else { gettext("Add iommu=pt to the kernel command line (see “Boot configuration”).") },
    ));

    // acs-override
    checks.push(match &topology.acs_override {
        Some(value) => check(
            "acs-override",
            Status::Warn,
            gettext_f("The kernel runs with pcie_acs_override={value}.", &[("value", value)]),
            gettext("The ACS override patch makes groups look split without isolating the devices: a VM could still reach its group mates' memory."),
            gettext("Prefer a slot whose group is isolated without the override; if you keep it, know that the split groups are not a security boundary."),
        ),
        None => check(
            "acs-override",
            Status::Pass,
            gettext("No ACS override: the groups are what the hardware isolates."),
            gettext("The ACS override patch makes groups look split without isolating the devices."),
            String::new(),
        ),
    });

    // interrupt-remapping
    let why_ir = gettext("Interrupt remapping keeps a VM's device from sending interrupts the host did not give it; without it VFIO refuses devices unless unsafe interrupts are allowed.");
    checks.push(match (facts.interrupt_remapping, facts.unsafe_interrupts) {
        (Some(true), _) => check("interrupt-remapping", Status::Pass, gettext("Interrupt remapping is on (IR- interrupt chips)."), why_ir, String::new()),
        (_, Some(true)) => check(
            "interrupt-remapping",
            Status::Warn,
            gettext("vfio_iommu_type1 allows unsafe interrupts."),
            why_ir,
            gettext("Turn on interrupt remapping in the firmware if it has the option, and remove allow_unsafe_interrupts."),
        ),
        (Some(false), _) if topology.iommu_enabled => check(
            "interrupt-remapping",
            Status::Warn,
            gettext("No remapped interrupts were seen."),
            why_ir,
            gettext("Check the kernel log for “DMAR-IR: Enabled IRQ remapping” or “AMD-Vi: Interrupt remapping enabled”; if it is missing, look for a firmware option or update."),
        ),
        _ if topology.iommu_enabled => check("interrupt-remapping", Status::Unknown, gettext("/proc/interrupts could not be read."), why_ir, String::new()),
        _ => check("interrupt-remapping", Status::Unknown, gettext("Not known until the IOMMU is on."), why_ir, String::new()),
    });

    // vfio-modules
    let why_vfio = gettext("vfio-pci is the driver that holds a device for a virtual machine.");
    checks.push(if facts.vfio.built_in {
        check("vfio-modules", Status::Pass, gettext("vfio-pci is built into the kernel."), why_vfio, String::new())
    } else if facts.vfio.loaded {
        check("vfio-modules", Status::Pass, gettext("vfio-pci is loaded."), why_vfio, String::new())
    } else if facts.vfio.available {
        check("vfio-modules", Status::Pass, gettext("vfio-pci is installed; it is loaded when a device moves."), why_vfio, String::new())
    } else if facts.kernel_release.is_none() {
        check("vfio-modules", Status::Unknown, gettext("The kernel release could not be read."), why_vfio, String::new())
    } else {
        check(
            "vfio-modules",
            Status::Fail,
            gettext("vfio-pci is neither built in nor installed for this kernel."),
            why_vfio,
            gettext("Install your distribution's kernel modules package for the running kernel (for example linux-modules-extra on Ubuntu)."),
        )
    });

    // guest-firmware
    let why_ovmf = gettext("A GPU given to a VM is started by the VM's UEFI firmware (OVMF).");
    let uefi: Vec<&FirmwareDescriptor> = facts
        .firmware
        .iter()
        .filter(|d| d.uefi && d.x86_64)
        .collect();
    checks.push(if !uefi.is_empty() {
        let secure = uefi.iter().any(|d| d.secure_boot);
        check(
            "guest-firmware",
            Status::Pass,
            if secure {
                crate::i18n::ngettext_f("{n} UEFI firmware for x86-64, with Secure Boot.", "{n} UEFI firmwares for x86-64, with Secure Boot.", uefi.len() as u32, &[])
            } else {
                crate::i18n::ngettext_f("{n} UEFI firmware for x86-64.", "{n} UEFI firmwares for x86-64.", uefi.len() as u32, &[])
            },
            why_ovmf,
            String::new(),
        )
    } else if !facts.ovmf_files.is_empty() {
        check(
            "guest-firmware",
            Status::Warn,
            gettext_f("OVMF is installed ({file}) but QEMU has no firmware descriptor for it.", &[("file", &facts.ovmf_files[0])]),
            why_ovmf,
            gettext("libvirt picks firmware through /usr/share/qemu/firmware: reinstall the OVMF package, or name the OVMF files in the VM's XML."),
        )
    } else {
        check(
            "guest-firmware",
            Status::Fail,
            gettext("No UEFI firmware for virtual machines is installed."),
            why_ovmf,
            gettext("Install OVMF: “sudo apt install ovmf” (Debian, Ubuntu) or “sudo dnf install edk2-ovmf” (Fedora)."),
        )
    });

    // libvirt
    let why_libvirt = gettext("Traspaso creates and runs the virtual machines through libvirt.");
    checks.push(match facts.libvirt {
        Service::Answering => check("libvirt", Status::Pass, gettext("The libvirt daemon is answering."), why_libvirt, String::new()),
        Service::Installed => check(
            "libvirt",
            Status::Warn,
            gettext("libvirt's socket is there but nothing answered."),
            why_libvirt,
            gettext("Start it: “sudo systemctl enable --now libvirtd” (or virtqemud.socket)."),
        ),
        Service::Missing => check(
            "libvirt",
            Status::Fail,
            gettext("libvirt is not running on this computer."),
            why_libvirt,
            gettext("Install it: “sudo apt install libvirt-daemon-system” (Debian, Ubuntu) or “sudo dnf install libvirt-daemon-kvm” (Fedora); then add yourself to the libvirt group."),
        ),
        Service::Unknown => check("libvirt", Status::Unknown, gettext("Not known for a captured host."), why_libvirt, String::new()),
    });

    // helper
    let why_helper = gettext("The helper moves devices between the host and vfio-pci when you allow it, so the app never runs as root.");
    checks.push(match facts.helper {
        Service::Answering => check("helper", Status::Pass, gettext("The Traspaso helper is on the system bus."), why_helper, String::new()),
        Service::Installed => check(
            "helper",
            Status::Warn,
            gettext("The Traspaso helper is installed, but the system bus cannot reach it."),
            why_helper,
            gettext("Check that the system bus runs and that the helper's D-Bus files are installed: “systemctl status traspaso-helper” tells why it does not start."),
        ),
        Service::Missing => check(
            "helper",
            Status::Warn,
            gettext("The Traspaso helper is not installed."),
            why_helper,
            gettext("Install Traspaso from your distribution's package (a Flatpak cannot install the helper); until then, “sudo traspasoctl device to-guest ADDRESS” does the move."),
        ),
        Service::Unknown => check("helper", Status::Unknown, gettext("Not known for a captured host."), why_helper, String::new()),
    });

    // gpu-candidates
    let (gpu_check, gpus) = gpu_check(topology);
    checks.push(gpu_check);

    // bootloader
    let mut flags = Vec::new();
    if !topology.iommu_enabled
        && cpu.is_some_and(Cpu::is_intel)
        && !has_arg(&facts.cmdline, "intel_iommu=on")
    {
        flags.push("intel_iommu=on".to_owned());
    }
    if !pt {
        flags.push("iommu=pt".to_owned());
    }
    let why_boot = gettext("Kernel flags are set where the boot loader keeps the kernel command line; a change applies at the next start.");
    checks.push(match (flags.is_empty(), facts.bootloaders.first()) {
        (true, loader) => check(
            "bootloader",
            Status::Pass,
            match loader {
                Some(l) => gettext_f("{loader}: the kernel command line needs no change.", &[("loader", l.name())]),
                None => gettext("The kernel command line needs no change."),
            },
            why_boot,
            String::new(),
        ),
        (false, Some(loader)) => Check {
            command: Some(loader.command(&flags)),
            ..check(
                "bootloader",
                Status::Warn,
                gettext_f("{loader} sets the kernel command line; it lacks {flags}.", &[("loader", loader.name()), ("flags", &flags.join(" "))]),
                why_boot,
                gettext_f("Run this, then restart: {command}", &[("command", &loader.command(&flags))]),
            )
        },
        (false, None) => check(
            "bootloader",
            Status::Unknown,
            gettext_f("No known boot loader configuration was found; the kernel command line lacks {flags}.", &[("flags", &flags.join(" "))]),
            why_boot,
            gettext_f("Add {flags} to your boot loader's kernel command line, then restart.", &[("flags", &flags.join(" "))]),
        ),
    });

    let fails = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warns = checks.iter().filter(|c| c.status == Status::Warn).count();
    let summary = if fails > 0 {
        let first = checks
            .iter()
            .find(|c| c.status == Status::Fail)
            .map(|c| title(c.id))
            .unwrap_or_default();
        crate::i18n::ngettext_f(
            "Not ready yet: {n} problem to solve, starting with “{first}”.",
            "Not ready yet: {n} problems to solve, starting with “{first}”.",
            fails as u32,
            &[("first", &first)],
        )
    } else if warns > 0 {
        crate::i18n::ngettext_f(
            "Ready, with {n} thing to look at.",
            "Ready, with {n} things to look at.",
            warns as u32,
            &[],
        )
    } else if checks.iter().any(|c| c.status == Status::Unknown) {
        gettext("Ready as far as can be seen; some things could not be checked.")
    } else {
        gettext("Ready for passthrough.")
    };
    Readiness {
        checks,
        summary,
        gpus,
    }
}

fn rom_kind(d: &PciDevice) -> &'static str {
    match &d.rom {
        Some(RomVerdict::Read {
            shadow_copy: true, ..
        }) => "shadow-copy",
        Some(RomVerdict::Read { has_uefi: true, .. }) => "uefi",
        Some(RomVerdict::Read { .. }) => "legacy-only",
        Some(RomVerdict::Unreadable { .. }) => "unreadable",
        None if d.has_rom => "not-read",
        None => "none",
    }
}

fn gpu_check(topology: &Topology) -> (Check, Vec<GpuCandidate>) {
    let why = gettext("Giving a GPU to a VM while the host keeps its own display needs a second GPU in an isolated group, with a UEFI option ROM for OVMF.");
    let displays: Vec<&PciDevice> = topology
        .devices
        .iter()
        .filter(|d| d.class.is_display())
        .collect();
    let group_kind = |d: &PciDevice| match d.iommu_group.and_then(|g| topology.group(g)) {
        None => "no-group",
        Some(g) if g.shared => "shared",
        Some(_) => "isolated",
    };
    let gpus: Vec<GpuCandidate> = displays
        .iter()
        .map(|d| {
            let integrated = d.is_integrated_graphics();
            GpuCandidate {
                address: d.address.to_string(),
                name: d.short_name(),
                boot_vga: d.boot_vga,
                integrated,
                rom: rom_kind(d),
                group: group_kind(d),
                candidate: !d.boot_vga && !integrated && d.iommu_group.is_some(),
            }
        })
        .collect();
    let seen_list = gpus
        .iter()
        .map(|g| {
            let mut notes = Vec::new();
            if g.boot_vga {
                notes.push(gettext("boot GPU"));
            }
            if g.integrated {
                notes.push(gettext("integrated"));
            }
            notes.push(match g.group {
                "isolated" => gettext("isolated group"),
                "shared" => gettext("shared group"),
                _ => gettext("no IOMMU group"),
            });
            notes.push(match g.rom {
                "uefi" => gettext("UEFI ROM"),
                "legacy-only" => gettext("no UEFI image in its ROM"),
                "shadow-copy" | "not-read" => gettext("ROM not checked"),
                "unreadable" => gettext("ROM unreadable"),
                _ => gettext("no ROM"),
            });
            format!("{} ({}): {}", g.name, g.address, notes.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    let seen = if gpus.is_empty() {
        gettext("No graphics card was found.")
    } else {
        seen_list
    };
    let label = |g: &GpuCandidate| format!("{} ({})", g.name, g.address);
    let host_keeps = gpus
        .iter()
        .find(|g| g.boot_vga)
        .or_else(|| gpus.iter().find(|g| !g.candidate));
    // The best candidate: isolated, with a UEFI ROM, in that order.
    let best = gpus.iter().filter(|g| g.candidate).min_by_key(|g| {
        (
            g.group != "isolated",
            match g.rom {
                "uefi" => 0,
                "not-read" | "shadow-copy" | "unreadable" => 1,
                "none" => 2,
                _ => 3,
            },
        )
    });
    let check = match (best, host_keeps) {
        _ if !topology.iommu_enabled => check(
            "gpu-candidates",
            Status::Unknown,
            seen,
            why,
            gettext("Which GPU can go to a VM is known once the IOMMU is on."),
        ),
        (None, _) if gpus.len() <= 1 => check(
            "gpu-candidates",
            Status::Fail,
            seen,
            why,
            if gpus.iter().any(|g| g.integrated) {
                gettext("Integrated Intel graphics cannot be given to a VM: add a discrete graphics card for the VM, and keep the integrated one for the host.")
            } else {
                gettext("With a single GPU the host would lose its display: add a second graphics card (an integrated GPU for the host is enough).")
            },
        ),
        (None, _) => check(
            "gpu-candidates",
            Status::Fail,
            seen,
            why,
            gettext(
                "No graphics card can go to a VM: the host uses them, or they have no IOMMU group.",
            ),
        ),
        (Some(b), keeps) => {
            let keeps_label = keeps.map(label).unwrap_or_else(|| gettext("another GPU"));
            let sentence = gettext_f(
                "You can give {gpu} to a VM while the host keeps {host}.",
                &[("gpu", &label(b)), ("host", &keeps_label)],
            );
            if b.group != "isolated" {
                // A discrete boot GPU alone in its group is the better one to give:
                // the firmware can be told to start on the other card.
                let swap = gpus
                    .iter()
                    .find(|g| g.boot_vga && !g.integrated && g.group == "isolated")
                    .map(|g| {
                        gettext_f(
                            "Or make the other card the boot GPU (the firmware's primary display setting) and give {gpu} instead: its group is isolated.",
                            &[("gpu", &label(g))],
                        )
                    })
                    .unwrap_or_default();
                check(
                    "gpu-candidates",
                    Status::Warn,
                    seen,
                    why,
                    format!(
                        "{sentence} {} {swap}",
                        gettext("Its group is shared: everything in it moves with it. Try another slot, ideally one wired to the processor.")
                    )
                    .trim_end()
                    .to_owned(),
                )
            } else if b.rom == "none" {
                check(
                    "gpu-candidates",
                    Status::Warn,
                    seen,
                    why,
                    format!(
                        "{sentence} {}",
                        gettext("It has no option ROM of its own, as is common for laptop GPUs: the VM needs the card's ROM as a file, usually taken from the system firmware.")
                    ),
                )
            } else if b.rom == "legacy-only" {
                check(
                    "gpu-candidates",
                    Status::Warn,
                    seen,
                    why,
                    format!(
                        "{sentence} {}",
                        gettext("Its ROM has no UEFI image: OVMF will show nothing on it until you give the VM a UEFI ROM file or update the card's firmware.")
                    ),
                )
            } else {
                check("gpu-candidates", Status::Pass, seen, why, sentence)
            }
        }
    };
    (check, gpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_first_block() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 42\nmodel name\t: Intel(R) Core(TM) i7-2600K CPU @ 3.40GHz\nflags\t\t: fpu vmx sse\n\nprocessor\t: 1\nvendor_id\t: Other\n";
        let cpu = Cpu::parse(text).unwrap();
        assert!(cpu.is_intel() && cpu.is_sandy_bridge());
        assert!(cpu.has("vmx") && !cpu.has("svm"));
        assert_eq!(cpu.label(), "Intel Core i7-2600K");
        assert_eq!(Cpu::parse(""), None);
        assert_eq!(Cpu::parse("\n\n"), None);
    }

    #[test]
    fn kernel_arguments() {
        let c = "ro quiet intel_iommu=off iommu=pt intel_iommu=on";
        assert_eq!(arg_value(c, "intel_iommu"), Some("on"));
        assert_eq!(arg_value(c, "iommu"), Some("pt"));
        assert_eq!(arg_value(c, "amd_iommu"), None);
        assert!(has_arg(c, "quiet"));
    }

    #[test]
    fn commands_for_each_boot_loader() {
        let flags = vec!["intel_iommu=on".to_owned(), "iommu=pt".to_owned()];
        assert_eq!(
            Bootloader::Grubby.command(&flags),
            "sudo grubby --update-kernel=ALL --args=\"intel_iommu=on iommu=pt\""
        );
        assert_eq!(
            Bootloader::RpmOstree.command(&flags),
            "sudo rpm-ostree kargs --append=intel_iommu=on --append=iommu=pt"
        );
        assert!(Bootloader::Grub
            .command(&flags)
            .contains("GRUB_CMDLINE_LINUX_DEFAULT=\"/&intel_iommu=on iommu=pt /"));
    }
}
