//! Copy the parts of a host that Traspaso reads into a directory, so that
//! `--root DIR` replays that host: sysfs attributes, symbolic links kept as
//! links, config space, the kernel command line, DMI ids and the names of the
//! ACPI tables. Nothing that identifies a person or a machine (serial numbers,
//! MAC addresses, host names) is copied.

use std::fmt;
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

/// What a capture must not carry, masked: the PCI Express Device Serial
/// Number in config space (on NICs often the MAC), and UUIDs (of disks and
/// filesystems) in kernel command lines and boot loader settings. The
/// layout stays, so the capture still reads the same.
pub fn private(host_path: &Path, mut data: Vec<u8>) -> Vec<u8> {
    if host_path.file_name().is_some_and(|n| n == "config") {
        mask_serial_number(&mut data);
        return data;
    }
    let text_file = host_path.starts_with("/proc/cmdline")
        || host_path.starts_with("/etc")
        || host_path.starts_with("/boot");
    if text_file {
        mask_uuids(&mut data);
    }
    data
}

/// Zero the Device Serial Number extended capability (id 3) of a config
/// space, following the extended capability list from 0x100.
fn mask_serial_number(config: &mut [u8]) {
    let mut at = 0x100usize;
    for _ in 0..64 {
        let Some(header) = config.get(at..at + 4) else {
            return;
        };
        let header = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if header == 0 || header == u32::MAX {
            return;
        }
        if header & 0xffff == 0x0003 {
            if let Some(serial) = config.get_mut(at + 4..at + 12) {
                serial.fill(0);
            }
        }
        let next = ((header >> 20) & 0xffc) as usize;
        if next < 0x100 || next <= at {
            return;
        }
        at = next;
    }
}

/// Replace every UUID (8-4-4-4-12 hex digits) by zeros.
fn mask_uuids(text: &mut [u8]) {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    let len = 36;
    let mut i = 0;
    while i + len <= text.len() {
        let candidate = &text[i..i + len];
        let mut pos = 0;
        let mut ok = true;
        for (n, group) in SHAPE.iter().enumerate() {
            ok &= candidate[pos..pos + group]
                .iter()
                .all(u8::is_ascii_hexdigit);
            pos += group;
            if n < 4 {
                ok &= candidate[pos] == b'-';
                pos += 1;
            }
        }
        let boundary = |b: Option<&u8>| b.is_none_or(|b| !b.is_ascii_alphanumeric());
        if ok && boundary(i.checked_sub(1).and_then(|j| text.get(j))) && boundary(text.get(i + len))
        {
            for b in &mut text[i..i + len] {
                if *b != b'-' {
                    *b = b'0';
                }
            }
            i += len;
        } else {
            i += 1;
        }
    }
}

struct Copier<'a> {
    host: &'a HostRoot,
    dest: &'a Path,
    options: CaptureOptions,
    summary: CaptureSummary,
}

/// The capture's own directory: every write goes through directory handles
/// opened without following any symbolic link, because the capture holds
/// links copied from the host (or from a hostile capture being recaptured),
/// and writing through one would land outside it.
fn relative(host_path: &Path) -> PathBuf {
    host_path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn errno(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

impl Copier<'_> {
    fn target(&self, host_path: &Path) -> PathBuf {
        self.dest.join(relative(host_path))
    }

    /// The capture's directory for `host_path`, made if missing, reached
    /// through no symbolic link.
    fn dir_fd(&self, host_path: &Path) -> Result<rustix::fd::OwnedFd, CaptureError> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let fail = |e: rustix::io::Errno| CaptureError::Write(self.target(host_path), errno(e));
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut dir = rustix::fs::open(self.dest, flags, Mode::empty()).map_err(fail)?;
        for part in relative(host_path).iter() {
            match rustix::fs::mkdirat(&dir, part, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(fail(e)),
            }
            dir = rustix::fs::openat2(&dir, part, flags, Mode::empty(), resolve).map_err(fail)?;
        }
        Ok(dir)
    }

    fn mkdir(&self, host_path: &Path) -> Result<(), CaptureError> {
        self.dir_fd(host_path).map(|_| ())
    }

    fn put(&self, host_path: &Path, data: &[u8]) -> Result<(), CaptureError> {
        use rustix::fs::{Mode, OFlags};
        let parent = self.dir_fd(host_path.parent().unwrap_or(Path::new("/")))?;
        let name = host_path.file_name().unwrap_or_default();
        let fail = |e: std::io::Error| CaptureError::Write(self.target(host_path), e);
        let fd = rustix::fs::openat(
            &parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| fail(errno(e)))?;
        use std::io::Write;
        std::fs::File::from(fd).write_all(data).map_err(fail)
    }

    /// Make a link in the capture (never followed while capturing).
    fn put_link(&self, host_path: &Path, target: &Path) -> Result<(), CaptureError> {
        let parent = self.dir_fd(host_path.parent().unwrap_or(Path::new("/")))?;
        let name = host_path.file_name().unwrap_or_default();
        match rustix::fs::symlinkat(target, &parent, name) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
            Err(e) => Err(CaptureError::Write(self.target(host_path), errno(e))),
        }
    }

    /// Copy a file if it exists; unreadable files are noted, not fatal.
    /// Identifiers are masked on the way (see [`private`]).
    fn copy_file(&mut self, host_path: &Path) -> Result<bool, CaptureError> {
        match self.host.read_bytes(host_path, TEXT_LIMIT) {
            Ok(data) => {
                self.put(host_path, &private(host_path, data))?;
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
        self.put_link(host_path, &target)?;
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
    let manifest = serde_json::to_vec_pretty(&copier.summary).unwrap_or_default();
    copier.put(Path::new(MANIFEST), &manifest)?;
    Ok(copier.summary)
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

    #[test]
    fn uuids_and_serial_numbers_are_masked() {
        let line = b"root=UUID=3f1c2a9e-1b2c-4d5e-8f90-a1b2c3d4e5f6 ro quiet resume=UUID=ABCDEF01-2345-6789-abcd-ef0123456789x".to_vec();
        let out = private(Path::new("/proc/cmdline"), line);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "root=UUID=00000000-0000-0000-0000-000000000000 ro quiet resume=UUID=ABCDEF01-2345-6789-abcd-ef0123456789x"
        );
        // A DSN capability at 0x100 after another at 0x140 … in list order.
        let mut config = vec![0u8; 4096];
        config[0x100..0x104].copy_from_slice(&(0x0001u32 | (0x140 << 20)).to_le_bytes());
        config[0x140..0x144].copy_from_slice(&(0x0003u32 | (1 << 16)).to_le_bytes());
        config[0x144..0x14c].copy_from_slice(&[0x11, 0x22, 0x33, 0xff, 0xfe, 0x44, 0x55, 0x66]);
        let out = private(
            Path::new("/sys/devices/pci0000:00/0000:00:19.0/config"),
            config.clone(),
        );
        assert!(out[0x144..0x14c].iter().all(|&b| b == 0));
        assert_eq!(out[..0x144], config[..0x144]);
        // A looping or short list ends quietly.
        let mut looping = vec![0u8; 0x104];
        looping[0x100..0x104].copy_from_slice(&(0x0001u32 | (0x100 << 20)).to_le_bytes());
        assert_eq!(private(Path::new("/x/config"), looping.clone()), looping);
    }
}
