//! Copy the parts of a host that Traspaso reads into a directory, so that
//! `--root DIR` replays that host: sysfs attributes, symbolic links kept as
//! links, config space, the kernel command line, DMI ids and the names of the
//! ACPI tables. Nothing that identifies a person or a machine (serial numbers,
//! MAC addresses, host names) is copied.

use std::fmt;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::host::{is_root, HostError, HostProblem, HostRoot, TEXT_LIMIT};
use crate::i18n::gettext_f;
use crate::pci::PciAddress;
use crate::rom;
use crate::topology::{IOMMU_GROUPS, PCI_DEVICES};

/// Attributes copied for every PCI function (when present).
const DEVICE_ATTRIBUTES: &[&str] = &[
    "uevent",
    "vendor",
    "device",
    "subsystem_vendor",
    "subsystem_device",
    "class",
    "revision",
    "driver_override",
    "boot_vga",
    "reset_method",
    "current_link_speed",
    "current_link_width",
    "max_link_speed",
    "max_link_width",
    "numa_node",
    "modalias",
    "sriov_totalvfs",
    "sriov_numvfs",
];

/// Links copied for every PCI function (when present).
const DEVICE_LINKS: &[&str] = &["driver", "iommu_group", "physfn"];

/// Single host files copied when present.
const HOST_FILES: &[&str] = &[
    "/proc/cmdline",
    "/proc/cpuinfo",
    "/proc/sys/kernel/osrelease",
    "/sys/class/dmi/id/sys_vendor",
    "/sys/class/dmi/id/product_name",
    "/sys/class/dmi/id/product_version",
    "/sys/class/dmi/id/board_vendor",
    "/sys/class/dmi/id/board_name",
    "/sys/class/dmi/id/board_version",
    "/sys/class/dmi/id/bios_vendor",
    "/sys/class/dmi/id/bios_version",
    "/sys/class/dmi/id/bios_date",
    "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
    "/etc/default/grub",
    "/etc/kernel/cmdline",
];

/// Directories whose entry names (not contents) are copied.
const NAME_ONLY_DIRS: &[&str] = &[
    "/sys/firmware/acpi/tables",
    "/sys/bus/pci/drivers",
    "/dev/vfio",
];

/// Kernel modules whose presence is recorded.
const MODULES: &[&str] = &[
    "vfio",
    "vfio_pci",
    "vfio_pci_core",
    "vfio_iommu_type1",
    "pci_stub",
    "kvm",
    "kvm_intel",
    "kvm_amd",
];

/// The manifest written next to the copy.
pub const MANIFEST: &str = "traspaso-capture.json";

/// What a capture did.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct CaptureSummary {
    pub tool: String,
    pub as_root: bool,
    pub devices: usize,
    pub groups: usize,
    pub roms: usize,
    /// Files that existed but could not be read (e.g. without root).
    pub unreadable: Vec<String>,
    /// Option ROM reads that failed on the captured host, by address: a
    /// replay reports them as the host did (e.g. the boot GPU under UEFI).
    pub rom_errors: std::collections::BTreeMap<String, String>,
}

/// Options of a capture.
#[derive(Debug, Clone, Copy)]
pub struct CaptureOptions {
    /// Read option ROMs (root on a live host: enables each ROM for the read).
    pub roms: bool,
}

/// Why a capture failed.
#[derive(Debug)]
pub enum CaptureError {
    /// The destination exists and is not an empty directory.
    NotEmpty(PathBuf),
    Write(PathBuf, std::io::Error),
    Host(HostError),
}

impl std::error::Error for CaptureError {}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::NotEmpty(p) => f.write_str(&gettext_f(
                "{path} already exists and is not empty: choose a new directory for the capture",
                &[("path", &p.display().to_string())],
            )),
            CaptureError::Write(p, e) => f.write_str(&gettext_f(
                "Cannot write {path}: {reason}",
                &[
                    ("path", &p.display().to_string()),
                    ("reason", &e.to_string()),
                ],
            )),
            CaptureError::Host(e) => e.fmt(f),
        }
    }
}

impl From<HostError> for CaptureError {
    fn from(e: HostError) -> Self {
        CaptureError::Host(e)
    }
}

/// Resolve `target` as a link found in `dir` would, without touching the disk.
fn resolve_lexically(dir: &Path, target: &Path) -> PathBuf {
    let mut out = if target.is_absolute() {
        PathBuf::from("/")
    } else {
        dir.to_owned()
    };
    for c in target.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

struct Copier<'a> {
    host: &'a HostRoot,
    dest: &'a Path,
    options: CaptureOptions,
    summary: CaptureSummary,
}

impl Copier<'_> {
    fn target(&self, host_path: &Path) -> PathBuf {
        self.dest
            .join(host_path.strip_prefix("/").unwrap_or(host_path))
    }

    fn mkdir(&self, host_path: &Path) -> Result<(), CaptureError> {
        let t = self.target(host_path);
        std::fs::create_dir_all(&t).map_err(|e| CaptureError::Write(t, e))
    }

    fn put(&self, host_path: &Path, data: &[u8]) -> Result<(), CaptureError> {
        if let Some(parent) = host_path.parent() {
            self.mkdir(parent)?;
        }
        let t = self.target(host_path);
        std::fs::write(&t, data).map_err(|e| CaptureError::Write(t, e))
    }

    /// Copy a file if it exists; unreadable files are noted, not fatal.
    fn copy_file(&mut self, host_path: &Path) -> Result<bool, CaptureError> {
        match self.host.read_bytes(host_path, TEXT_LIMIT) {
            Ok(data) => {
                self.put(host_path, &data)?;
                Ok(true)
            }
            Err(e) if e.is_not_found() => Ok(false),
            Err(e)
                if matches!(
                    e.problem,
                    HostProblem::PermissionDenied | HostProblem::Io(_)
                ) =>
            {
                // Keep the file's presence; its content needs root.
                self.put(host_path, b"")?;
                self.summary
                    .unreadable
                    .push(host_path.display().to_string());
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Recreate a link with the same target; returns the target resolved on the host.
    fn copy_link(&self, host_path: &Path) -> Result<Option<PathBuf>, CaptureError> {
        let target = match self.host.read_link(host_path) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if let Some(parent) = host_path.parent() {
            self.mkdir(parent)?;
        }
        let t = self.target(host_path);
        match symlink(&target, &t) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(CaptureError::Write(t, e)),
        }
        let dir = host_path.parent().unwrap_or(Path::new("/"));
        Ok(Some(resolve_lexically(dir, &target)))
    }

    fn copy_device(&mut self, name: &str) -> Result<(), CaptureError> {
        let entry = Path::new(PCI_DEVICES).join(name);
        // The entry is a link into /sys/devices; a capture may hold the directory itself.
        let dir = match self.copy_link(&entry) {
            Ok(Some(dir)) => dir,
            Ok(None) => return Ok(()),
            Err(CaptureError::Host(e)) if matches!(e.problem, HostProblem::Io(libc::EINVAL)) => {
                entry.clone()
            }
            Err(e) => return Err(e),
        };
        self.mkdir(&dir)?;
        let entries = self.host.read_dir(&entry)?;
        let has = |n: &str| entries.iter().any(|e| e == n);
        for attr in DEVICE_ATTRIBUTES.iter().filter(|a| has(a)) {
            self.copy_file(&dir.join(attr))?;
        }
        if has("config") {
            self.copy_file(&dir.join("config"))?;
        }
        for link in DEVICE_LINKS.iter().filter(|l| has(l)) {
            if let Some(resolved) = self.copy_link(&dir.join(link))? {
                if *link == "driver" {
                    self.mkdir(&resolved)?;
                }
            }
        }
        for virtfn in entries.iter().filter(|e| e.starts_with("virtfn")) {
            self.copy_link(&dir.join(virtfn))?;
        }
        // `reset` is write-only: only its presence matters.
        if has("reset") {
            self.put(&dir.join("reset"), b"")?;
        }
        if has("vfio-dev") {
            self.mkdir(&dir.join("vfio-dev"))?;
            for child in self.host.read_dir_or_empty(dir.join("vfio-dev"))? {
                self.mkdir(&dir.join("vfio-dev").join(child))?;
            }
        }
        if has("rom") {
            let content = self.read_rom(name, &dir);
            self.put(&dir.join("rom"), &content)?;
        }
        self.summary.devices += 1;
        Ok(())
    }

    fn read_rom(&mut self, name: &str, dir: &Path) -> Vec<u8> {
        let Ok(address) = name.parse::<PciAddress>() else {
            return Vec::new();
        };
        if self.host.is_live() && !(self.summary.as_root && self.options.roms) {
            return Vec::new();
        }
        match rom::read_device_rom(self.host, &address) {
            Ok(data) => {
                self.summary.roms += 1;
                data
            }
            Err(e) => {
                self.summary
                    .unreadable
                    .push(dir.join("rom").display().to_string());
                // A ROM a source capture never had is simply absent, not a failure.
                if !matches!(e.problem, HostProblem::BadContent(_)) {
                    self.summary
                        .rom_errors
                        .insert(address.to_string(), e.to_string());
                }
                Vec::new()
            }
        }
    }
}

/// Copy what Traspaso reads from `host` into `dest`.
pub fn capture(
    host: &HostRoot,
    dest: &Path,
    options: CaptureOptions,
) -> Result<CaptureSummary, CaptureError> {
    match std::fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(CaptureError::NotEmpty(dest.to_owned()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dest).map_err(|e| CaptureError::Write(dest.to_owned(), e))?;
        }
        Err(e) => return Err(CaptureError::Write(dest.to_owned(), e)),
    }
    let mut copier = Copier {
        host,
        dest,
        options,
        summary: CaptureSummary {
            tool: format!("traspaso {}", crate::config::VERSION),
            as_root: is_root(),
            ..Default::default()
        },
    };

    copier.mkdir(Path::new(PCI_DEVICES))?;
    for name in host.read_dir(PCI_DEVICES)? {
        copier.copy_device(&name)?;
    }
    for group in host.read_dir_or_empty(IOMMU_GROUPS)? {
        let gdir = Path::new(IOMMU_GROUPS).join(&group);
        copier.mkdir(&gdir.join("devices"))?;
        for member in host.read_dir_or_empty(gdir.join("devices"))? {
            copier.copy_link(&gdir.join("devices").join(member))?;
        }
        copier.copy_file(&gdir.join("type"))?;
        copier.summary.groups += 1;
    }
    for file in HOST_FILES {
        copier.copy_file(Path::new(file))?;
    }
    if let Some(release) = host.read_attr("/proc/sys/kernel/osrelease")? {
        // The release comes from the host: keep it to one path component.
        if !release.is_empty() && !release.contains('/') && release != ".." {
            copier.copy_file(
                &Path::new("/lib/modules")
                    .join(&release)
                    .join("modules.builtin"),
            )?;
        }
    }
    for dir in NAME_ONLY_DIRS {
        for name in host.read_dir_or_empty(dir)? {
            let path = Path::new(dir).join(&name);
            if host.read_dir(&path).is_ok() {
                copier.mkdir(&path)?;
            } else {
                copier.put(&path, b"")?;
            }
        }
    }
    for name in host.read_dir_or_empty("/sys/class/iommu")? {
        let entry = Path::new("/sys/class/iommu").join(name);
        match copier.copy_link(&entry) {
            Ok(Some(resolved)) => copier.mkdir(&resolved)?,
            Ok(None) => {}
            // A capture (or a described host) may hold a directory, not a link.
            Err(CaptureError::Host(e)) if matches!(e.problem, HostProblem::Io(libc::EINVAL)) => {
                copier.mkdir(&entry)?
            }
            Err(e) => return Err(e),
        }
    }
    for module in MODULES {
        let path = Path::new("/sys/module").join(module);
        if host.exists(&path) {
            copier.mkdir(&path)?;
        }
    }
    let summary = copier.summary;
    let manifest = serde_json::to_vec_pretty(&summary).unwrap_or_default();
    let path = dest.join(MANIFEST);
    std::fs::write(&path, manifest).map_err(|e| CaptureError::Write(path, e))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_resolution_stays_at_the_root() {
        let dir = Path::new("/sys/bus/pci/devices");
        assert_eq!(
            resolve_lexically(dir, Path::new("../../../devices/pci0000:00/0000:00:02.0")),
            PathBuf::from("/sys/devices/pci0000:00/0000:00:02.0")
        );
        assert_eq!(
            resolve_lexically(dir, Path::new("../../../../../../../etc")),
            PathBuf::from("/etc")
        );
    }
}
