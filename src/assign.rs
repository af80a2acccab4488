//! Moving an IOMMU group between its host drivers and vfio-pci: the plan, the
//! safety checks, the sysfs sequence with verification after each step, the
//! journal, rollback on any failure and recovery at start-up.
//!
//! The rules (DESIGN.md, "Moving a group"):
//! - the unit is the IOMMU group: every endpoint moves, bridges stay;
//! - refused: bridges, a disk controller with a mounted filesystem, a NIC
//!   carrying the default route, a GPU whose DRM/nvidia nodes are open
//!   (`force` overrides only this last one);
//! - to the guest, per function: `driver_override` ← vfio-pci, unbind,
//!   `drivers_probe`, wait for the driver link; back: clear the override,
//!   unbind, `drivers_probe`, wait for the original driver;
//! - before the first write the journal records every function's state; a
//!   failure puts back every function already touched; a journal found at
//!   start-up means a move was interrupted: [`Mover::recover`] finishes the
//!   rollback. Nothing is left without its driver by a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::host::{HostError, HostRoot};
use crate::i18n::{gettext, gettext_f};
use crate::pci::{sysfs_device_path, PciAddress};
use crate::topology::{PciDevice, Topology};

/// The journal of the move in progress.
pub const JOURNAL: &str = "/var/lib/traspaso/journal.json";
/// The original drivers of the functions Traspaso gave to guests.
pub const ASSIGNED: &str = "/var/lib/traspaso/assigned.json";
/// Held (flock) for the whole move: one move at a time, helper or CLI.
pub const LOCK: &str = "/run/traspaso/move.lock";

const VFIO: &str = "vfio-pci";
const DRIVERS: &str = "/sys/bus/pci/drivers";
const DRIVERS_PROBE: &str = "/sys/bus/pci/drivers_probe";

/// Which way a group moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    ToGuest,
    ToHost,
}

/// One function's state before the move, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub address: String,
    pub driver: Option<String>,
    pub driver_override: Option<String>,
    /// `vendor:device`, to tell whether the address still names this function.
    #[serde(default)]
    pub ids: Option<String>,
}

/// What is written before the first change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    pub direction: Direction,
    pub group: u32,
    pub devices: Vec<Recorded>,
    pub pid: u32,
    /// The boot the move happened in: after a reboot the drivers are fresh.
    #[serde(default)]
    pub boot_id: Option<String>,
}

/// `assigned.json`: where the functions on vfio-pci came from, in one boot.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Assigned {
    boot_id: Option<String>,
    devices: BTreeMap<String, Option<String>>,
}

/// One function of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedMove {
    pub address: PciAddress,
    pub name: String,
    /// The driver now.
    pub driver: Option<String>,
    /// The driver it should end on (`None`: any host driver, or none).
    pub target: Option<String>,
}

/// What a move will do.
#[derive(Debug, Clone, Serialize)]
pub struct MovePlan {
    pub direction: Direction,
    pub group: u32,
    /// Every endpoint of the group, in address order.
    pub devices: Vec<PlannedMove>,
    /// The group's bridges: they stay with the host.
    pub bridges: Vec<PciAddress>,
}

/// A step of the sysfs sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    LoadModule,
    Journal,
    Override,
    Unbind,
    Probe,
    Verify,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::LoadModule,
        Step::Journal,
        Step::Override,
        Step::Unbind,
        Step::Probe,
        Step::Verify,
    ];

    /// The step's name for scripts and test seams (never translated).
    pub fn id(self) -> &'static str {
        match self {
            Step::LoadModule => "load-module",
            Step::Journal => "journal",
            Step::Override => "override",
            Step::Unbind => "unbind",
            Step::Probe => "probe",
            Step::Verify => "verify",
        }
    }

    /// The step's name in a sentence (translated).
    pub fn describe(self) -> String {
        match self {
            Step::LoadModule => gettext("loading vfio-pci"),
            Step::Journal => gettext("writing the journal"),
            Step::Override => gettext("setting driver_override"),
            Step::Unbind => gettext("unbinding the driver"),
            Step::Probe => gettext("probing drivers"),
            Step::Verify => gettext("checking the driver"),
        }
    }
}

/// Why a move is refused as unsafe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Bridge(PciAddress),
    MountedDisk {
        device: String,
        mounts: Vec<String>,
    },
    DefaultRoute {
        device: String,
        interface: String,
    },
    GpuInUse {
        device: String,
        processes: Vec<String>,
    },
    /// The NIC carries the traffic of mounted network filesystems.
    NetworkFilesystem {
        device: String,
        interface: String,
        mounts: Vec<String>,
    },
    /// A process (a running VM) holds the group's /dev/vfio node.
    GroupInUse {
        group: u32,
        processes: Vec<String>,
    },
}

/// One mount, as the disk check needs it.
#[derive(Debug, Clone)]
struct Mount {
    /// `major:minor`.
    number: String,
    /// The kernel name of the source device (`sda1`, `dm-0`), or empty.
    source: String,
    point: String,
    /// For a network filesystem (NFS, SMB/CIFS, Ceph…): its server's
    /// address, from the `addr=` the kernel shows in the mount's options.
    server: Option<std::net::IpAddr>,
}

/// Block devices on one function.
#[derive(Debug, Default)]
struct BlockDevices {
    names: std::collections::BTreeSet<String>,
    numbers: std::collections::BTreeSet<String>,
}

/// Why a move did not happen, or did not finish.
#[derive(Debug)]
pub enum MoveError {
    IommuOff,
    UnknownDevice(PciAddress),
    NoGroup(PciAddress),
    Refused(Refusal),
    NotRoot,
    /// Another move holds the lock.
    Busy,
    Host(HostError),
    /// A step failed; `rolled_back` says whether every touched function was
    /// put back.
    Failed {
        step: Step,
        device: Option<PciAddress>,
        detail: String,
        rolled_back: bool,
    },
    /// The journal of an interrupted move cannot be read: nothing is guessed.
    BadJournal(String),
    /// The group could not be read.
    Scan(String),
    /// A captured host (`--root`) passed the checks; nothing is written to it.
    Captured,
}

impl From<HostError> for MoveError {
    fn from(e: HostError) -> Self {
        MoveError::Host(e)
    }
}

impl std::fmt::Display for MoveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            MoveError::IommuOff => gettext("The IOMMU is off: there are no groups to move."),
            MoveError::UnknownDevice(a) => {
                gettext_f("There is no PCI device {address}.", &[("address", &a.to_string())])
            }
            MoveError::NoGroup(a) => gettext_f(
                "{address} is in no IOMMU group, so it cannot be given to a VM.",
                &[("address", &a.to_string())],
            ),
            MoveError::Refused(r) => match r {
                Refusal::Bridge(a) => gettext_f(
                    "{address} is a bridge: bridges stay with the host. Give a device behind it instead.",
                    &[("address", &a.to_string())],
                ),
                Refusal::MountedDisk { device, mounts } => gettext_f(
                    "Refused: {device} holds mounted filesystems ({mounts}). The host would lose them.",
                    &[("device", device), ("mounts", &mounts.join(", "))],
                ),
                Refusal::DefaultRoute { device, interface } => gettext_f(
                    "Refused: {device} carries the default route ({interface}). The host would lose its network.",
                    &[("device", device), ("interface", interface)],
                ),
                Refusal::GroupInUse { group, processes } => gettext_f(
                    "Refused: IOMMU group {group} is in use by {processes}. Shut the virtual machine down first.",
                    &[("group", &group.to_string()), ("processes", &processes.join(", "))],
                ),
                Refusal::NetworkFilesystem {
                    device,
                    interface,
                    mounts,
                } => gettext_f(
                    "Refused: the network filesystems {mounts} reach their server through {interface} on {device}. The host would lose them.",
                    &[
                        ("device", device),
                        ("interface", interface),
                        ("mounts", &mounts.join(", ")),
                    ],
                ),
                Refusal::GpuInUse { device, processes } => gettext_f(
                    "Refused: {device} is in use by {processes}. Close them (or log out of the session that runs on it), or move anyway with --force.",
                    &[("device", device), ("processes", &processes.join(", "))],
                ),
            },
            MoveError::NotRoot => gettext("Moving devices needs root."),
            MoveError::Busy => gettext("Another move is in progress; try again when it is done."),
            MoveError::Host(e) => e.to_string(),
            MoveError::Failed {
                step,
                device,
                detail,
                rolled_back,
            } => {
                let at = device
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| gettext("the group"));
                let first = gettext_f(
                    "The move failed while {step} for {device}: {detail}",
                    &[("step", &step.describe()), ("device", &at), ("detail", detail)],
                );
                let second = if *rolled_back {
                    gettext("Every device is back on its previous driver.")
                } else {
                    gettext("Some devices could not be put back; the journal is kept, and the next start tries again.")
                };
                format!("{first} {second}")
            }
            MoveError::Scan(e) => e.clone(),
            MoveError::Captured => gettext(
                "A captured host cannot be changed: the checks passed, nothing was moved.",
            ),
            MoveError::BadJournal(e) => gettext_f(
                "The journal of an interrupted move cannot be read ({error}); it was left in place. Check the devices with “traspasoctl device status”, then remove {path}.",
                &[("error", e), ("path", JOURNAL)],
            ),
        };
        f.write_str(&text)
    }
}

impl std::error::Error for MoveError {}

/// The sentence that reports a finished move of these functions.
pub fn outcome(direction: Direction, moved: &[String]) -> String {
    let devices = moved.join(", ");
    match (direction, moved.is_empty()) {
        (_, true) => gettext("Nothing to do: the group is already there."),
        (Direction::ToGuest, false) => gettext_f(
            "Given to vfio-pci, ready for a VM: {devices}",
            &[("devices", &devices)],
        ),
        (Direction::ToHost, false) => gettext_f(
            "Back on the host's drivers: {devices}",
            &[("devices", &devices)],
        ),
    }
}

/// The state of one function, for `device status` and `GetDeviceState`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceState {
    pub address: String,
    pub driver: Option<String>,
    pub driver_override: Option<String>,
    pub iommu_group: Option<u32>,
    /// `/dev/vfio/N` exists for its group.
    pub vfio_node: bool,
    pub on_vfio: bool,
    /// Every function of the group with its driver.
    pub group: Vec<GroupMember>,
    /// Given to the guest by Traspaso (its original driver is recorded).
    pub assigned: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupMember {
    pub address: String,
    pub driver: Option<String>,
    pub bridge: bool,
}

/// Moves groups on one host.
pub struct Mover<'a> {
    host: &'a HostRoot,
    /// How long to wait for a driver link (and for vfio-pci to load).
    pub timeout: Duration,
    /// Test seam: make the Nth forward sysfs write fail (1-based).
    pub fail_at: Option<usize>,
    /// Test seam: sleep this long before the Nth forward write (to kill the process there).
    pub pause_at: Option<(usize, Duration)>,
    /// Test seam: a file made when the pause of `pause_at` begins, so a test
    /// knows the process is there before it kills it.
    pub pause_mark: Option<PathBuf>,
    /// Test seam: make the Nth time a step runs fail (1-based), for every
    /// step, the journal and the driver check included.
    pub fail_step: Option<(Step, usize)>,
    writes: std::cell::Cell<usize>,
    steps: std::cell::RefCell<BTreeMap<&'static str, usize>>,
}

fn device_dir(address: &PciAddress) -> PathBuf {
    sysfs_device_path(address)
}

/// The VM name in a QEMU command line (NUL-separated, as in
/// /proc/PID/cmdline): `-name guest=NAME,…` as libvirt writes it, or
/// `-name NAME`. QEMU doubles a comma inside the name.
pub fn vm_name(cmdline: &[u8]) -> Option<String> {
    let mut args = cmdline.split(|&b| b == 0);
    args.find(|a| *a == b"-name")?;
    let value = String::from_utf8_lossy(args.next()?);
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            (',', Some(',')) => {
                chars.next();
                part.push(',');
            }
            (',', _) => parts.push(std::mem::take(&mut part)),
            _ => part.push(c),
        }
    }
    parts.push(part);
    let name = match parts.iter().find_map(|p| p.strip_prefix("guest=")) {
        Some(guest) => guest.to_owned(),
        None => parts.swap_remove(0),
    };
    (!name.is_empty() && !name.contains('=')).then_some(name)
}

/// Processes with an open file whose link target satisfies `matches`: a
/// VM as "the virtual machine “NAME” (process PID)", anything else as
/// "name (pid)". Processes that vanish while being read are skipped.
fn processes_holding(
    host: &HostRoot,
    matches: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, HostError> {
    Ok(open_files(host, matches)?
        .into_iter()
        .map(|(pid, _)| process_label(host, &pid))
        .collect())
}

/// (pid, matching targets) for each process holding matching files.
fn open_files(
    host: &HostRoot,
    matches: &dyn Fn(&str) -> bool,
) -> Result<Vec<(String, Vec<String>)>, HostError> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    let mut pids: Vec<String> = host
        .read_dir_or_empty("/proc")?
        .into_iter()
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()) && *p != me)
        .collect();
    pids.sort_by_key(|p| p.parse::<u64>().unwrap_or(u64::MAX));
    for pid in pids {
        let Ok(fds) = host.read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let mut held: Vec<String> = fds
            .iter()
            .filter_map(|fd| {
                host.read_link(format!("/proc/{pid}/fd/{fd}"))
                    .ok()
                    .and_then(|t| t.to_str().map(str::to_owned))
                    .filter(|t| matches(t))
            })
            .collect();
        held.dedup();
        if !held.is_empty() {
            out.push((pid, held));
        }
    }
    Ok(out)
}

fn process_label(host: &HostRoot, pid: &str) -> String {
    let cmdline = host
        .read_bytes(format!("/proc/{pid}/cmdline"), 64 * 1024)
        .unwrap_or_default();
    if let Some(name) = vm_name(&cmdline) {
        return gettext_f(
            "the virtual machine “{name}” (process {pid})",
            &[("name", &name), ("pid", pid)],
        );
    }
    let comm = host
        .read_attr(format!("/proc/{pid}/comm"))
        .ok()
        .flatten()
        .unwrap_or_default();
    format!("{comm} ({pid})")
}

/// Who holds each IOMMU group's /dev/vfio node: the running VMs (and any
/// other process) using groups, by group number.
pub fn vfio_users(host: &HostRoot) -> Result<BTreeMap<u32, Vec<String>>, HostError> {
    // Per-device nodes (/dev/vfio/devices/vfioN) belong to a function's group.
    let mut device_nodes: BTreeMap<String, u32> = BTreeMap::new();
    for name in host.read_dir_or_empty(crate::topology::PCI_DEVICES)? {
        let Ok(address) = name.parse::<PciAddress>() else {
            continue;
        };
        let dir = device_dir(&address);
        let group = host
            .read_link(dir.join("iommu_group"))
            .ok()
            .and_then(|t| t.file_name()?.to_str()?.parse::<u32>().ok());
        if let Some(group) = group {
            for node in host.read_dir_or_empty(dir.join("vfio-dev"))? {
                device_nodes.insert(format!("/dev/vfio/devices/{node}"), group);
            }
        }
    }
    let group_of = |t: &str| {
        device_nodes.get(t).copied().or_else(|| {
            t.strip_prefix("/dev/vfio/")
                .and_then(|n| n.parse::<u32>().ok())
        })
    };
    let mut out: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (pid, targets) in open_files(host, &|t: &str| group_of(t).is_some())? {
        let label = process_label(host, &pid);
        let mut groups: Vec<u32> = targets.iter().filter_map(|t| group_of(t)).collect();
        groups.sort_unstable();
        groups.dedup();
        for group in groups {
            out.entry(group).or_default().push(label.clone());
        }
    }
    Ok(out)
}

/// The safety checks for giving groups to a VM through libvirt (which
/// moves them itself when the VM starts, with none of these checks): a
/// group with a mounted disk or the NIC with the default route is refused,
/// as a move would be. A GPU in use is not: the VM is not running yet.
pub fn check_for_vm(
    host: &HostRoot,
    topology: &Topology,
    devices: &[PciAddress],
) -> Result<(), MoveError> {
    let mover = Mover::new(host);
    for address in devices {
        let plan = mover.plan(topology, address, Direction::ToGuest)?;
        match mover.check_safety(topology, &plan, false) {
            Ok(()) | Err(MoveError::Refused(Refusal::GpuInUse { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read a function's option ROM for the helper or the CLI: never while a
/// move runs (the move lock is held for the read), never while a VM holds
/// the function's group (enabling the ROM under a running guest).
pub fn read_rom(host: &HostRoot, address: &PciAddress) -> Result<Vec<u8>, MoveError> {
    if !host.exists(device_dir(address)) {
        return Err(MoveError::UnknownDevice(*address));
    }
    let mover = Mover::new(host);
    let _lock = if host.is_live() {
        Some(mover.lock()?)
    } else {
        None
    };
    let group = host
        .read_link(device_dir(address).join("iommu_group"))
        .ok()
        .and_then(|t| t.file_name()?.to_str()?.parse::<u32>().ok());
    if let Some(group) = group {
        if let Some(users) = vfio_users(host)?.remove(&group) {
            return Err(MoveError::Refused(Refusal::GroupInUse {
                group,
                processes: users,
            }));
        }
    }
    Ok(crate::rom::read_device_rom(host, address)?)
}

/// A whole move, as the helper runs it for one call: the lock, recovery of
/// an interrupted move, the group, the plan, the safety checks and the
/// writes. Names from the PCI database are read only when a refusal needs
/// them for its message: the common case does no name lookups.
pub fn move_group(
    host: &HostRoot,
    address: &PciAddress,
    direction: Direction,
) -> Result<Vec<PciAddress>, MoveError> {
    let mover = Mover::new(host);
    let _lock = if host.is_live() {
        Some(mover.lock()?)
    } else {
        None
    };
    mover.recover()?;
    let scan_error = |e: crate::topology::ScanError| MoveError::Scan(e.to_string());
    let topology = crate::topology::scan_group(host, address).map_err(scan_error)?;
    let checked = mover
        .plan(&topology, address, direction)
        .and_then(|plan| mover.check_safety(&topology, &plan, false).map(|()| plan));
    let plan = match checked {
        Ok(plan) => plan,
        Err(_) => {
            // Again with names, for the message.
            let named = Topology::load_group(host, None, address).map_err(scan_error)?;
            let plan = mover.plan(&named, address, direction)?;
            mover.check_safety(&named, &plan, false)?;
            plan
        }
    };
    if !host.is_live() {
        return Err(MoveError::Captured);
    }
    mover.execute(&plan)
}

impl<'a> Mover<'a> {
    pub fn new(host: &'a HostRoot) -> Self {
        Mover {
            host,
            timeout: Duration::from_secs(5),
            fail_at: None,
            pause_at: None,
            fail_step: None,
            pause_mark: None,
            steps: Default::default(),
            writes: std::cell::Cell::new(0),
        }
    }

    /// The driver bound to a function now.
    pub fn driver(&self, address: &PciAddress) -> Result<Option<String>, HostError> {
        match self.host.read_link(device_dir(address).join("driver")) {
            Ok(target) => Ok(target.file_name().map(|n| n.to_string_lossy().into_owned())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn driver_override(&self, address: &PciAddress) -> Result<Option<String>, HostError> {
        Ok(self
            .host
            .read_attr(device_dir(address).join("driver_override"))?
            .filter(|v| !v.is_empty() && v != "(null)"))
    }

    /// The functions given to vfio-pci in this boot, with the driver each
    /// came from. A record from an earlier boot says nothing any more.
    fn assigned(&self) -> BTreeMap<String, Option<String>> {
        self.host
            .read_string(ASSIGNED)
            .ok()
            .and_then(|t| serde_json::from_str::<Assigned>(&t).ok())
            .filter(|a| a.boot_id.is_some() && a.boot_id == self.boot_id())
            .map(|a| a.devices)
            .unwrap_or_default()
    }

    /// The state of a function and its group.
    pub fn status(
        &self,
        topology: &Topology,
        address: &PciAddress,
    ) -> Result<DeviceState, MoveError> {
        let device = topology
            .device(address)
            .ok_or(MoveError::UnknownDevice(*address))?;
        let group = device.iommu_group.and_then(|g| topology.group(g));
        let members = group
            .map(|g| {
                g.devices
                    .iter()
                    .filter_map(|a| topology.device(a))
                    .map(|d| GroupMember {
                        address: d.address.to_string(),
                        driver: d.driver.clone(),
                        bridge: d.bridge,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let vfio_node = device
            .iommu_group
            .is_some_and(|g| self.host.exists(format!("/dev/vfio/{g}")));
        Ok(DeviceState {
            address: address.to_string(),
            driver: device.driver.clone(),
            driver_override: self.driver_override(address)?,
            iommu_group: device.iommu_group,
            vfio_node,
            on_vfio: device.on_vfio(),
            group: members,
            assigned: self.assigned().contains_key(&address.to_string()),
        })
    }

    /// What moving the group of `address` would do.
    pub fn plan(
        &self,
        topology: &Topology,
        address: &PciAddress,
        direction: Direction,
    ) -> Result<MovePlan, MoveError> {
        if !topology.iommu_enabled {
            return Err(MoveError::IommuOff);
        }
        let device = topology
            .device(address)
            .ok_or(MoveError::UnknownDevice(*address))?;
        if device.bridge {
            return Err(MoveError::Refused(Refusal::Bridge(*address)));
        }
        let group = device
            .iommu_group
            .and_then(|g| topology.group(g))
            .ok_or(MoveError::NoGroup(*address))?;
        let assigned = self.assigned();
        let devices = group
            .moves_together
            .iter()
            .filter_map(|a| topology.device(a))
            .map(|d| PlannedMove {
                address: d.address,
                name: d.label(),
                driver: d.driver.clone(),
                target: match direction {
                    Direction::ToGuest => Some(VFIO.to_owned()),
                    Direction::ToHost => assigned.get(&d.address.to_string()).cloned().flatten(),
                },
            })
            .collect();
        Ok(MovePlan {
            direction,
            group: group.id,
            devices,
            bridges: group
                .devices
                .iter()
                .copied()
                .filter(|a| !group.moves_together.contains(a))
                .collect(),
        })
    }

    /// Refuse what would take from the host something it cannot lose.
    /// `force` only overrides a GPU in use. Checks that cannot read what they
    /// need on the live system refuse (fail closed).
    pub fn check_safety(
        &self,
        topology: &Topology,
        plan: &MovePlan,
        force: bool,
    ) -> Result<(), MoveError> {
        if plan.direction == Direction::ToHost {
            // A VM (any process) still holding the group: unbinding would hang.
            // The group's node, or a member's own VFIO device node (the
            // newer per-device interface, /dev/vfio/devices/vfioN).
            let mut nodes = vec![format!("/dev/vfio/{}", plan.group)];
            for d in &plan.devices {
                for name in self
                    .host
                    .read_dir_or_empty(device_dir(&d.address).join("vfio-dev"))?
                {
                    nodes.push(format!("/dev/vfio/devices/{name}"));
                }
            }
            let users = processes_holding(self.host, &|t: &str| nodes.iter().any(|n| n == t))?;
            if !users.is_empty() {
                return Err(MoveError::Refused(Refusal::GroupInUse {
                    group: plan.group,
                    processes: users,
                }));
            }
            return Ok(());
        }
        let mounts = self.mounts()?;
        let swaps = self.swaps()?;
        let routes = self.default_route_interfaces()?;
        for planned in &plan.devices {
            let Some(device) = topology.device(&planned.address) else {
                continue;
            };
            let disks = self.block_devices_of(device)?;
            let mut held: Vec<String> = mounts
                .iter()
                .filter(|m| disks.numbers.contains(&m.number) || disks.names.contains(&m.source))
                .map(|m| m.point.clone())
                .collect();
            held.extend(
                swaps
                    .iter()
                    .filter(|s| disks.names.contains(*s))
                    .map(|s| gettext_f("swap on /dev/{device}", &[("device", s)])),
            );
            held.sort();
            held.dedup();
            if !held.is_empty() {
                return Err(MoveError::Refused(Refusal::MountedDisk {
                    device: device.label(),
                    mounts: held,
                }));
            }
            // Network filesystems reached through this function's NIC.
            let mut carried = Vec::new();
            let mut through = String::new();
            for m in &mounts {
                let Some(server) = m.server else { continue };
                if let Some(interface) = self.route_interface(server)? {
                    if self.interface_on(&interface, &device.address, 0)? {
                        carried.push(m.point.clone());
                        through = interface;
                    }
                }
            }
            if !carried.is_empty() {
                carried.sort();
                carried.dedup();
                return Err(MoveError::Refused(Refusal::NetworkFilesystem {
                    device: device.label(),
                    interface: through,
                    mounts: carried,
                }));
            }
            for interface in &routes {
                if self.interface_on(interface, &device.address, 0)? {
                    return Err(MoveError::Refused(Refusal::DefaultRoute {
                        device: device.label(),
                        interface: interface.clone(),
                    }));
                }
            }
            if !force && device.class.is_display() {
                let users = self.gpu_users(device)?;
                if !users.is_empty() {
                    return Err(MoveError::Refused(Refusal::GpuInUse {
                        device: device.label(),
                        processes: users,
                    }));
                }
            }
        }
        Ok(())
    }

    /// A file the checks must read: missing is fine in a capture, an error
    /// on the live system (the check would be blind).
    fn must_read(&self, path: &str) -> Result<Option<String>, HostError> {
        match self.host.read_string(path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.is_not_found() && !self.host.is_live() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every mount: device number, source and mount point.
    fn mounts(&self) -> Result<Vec<Mount>, HostError> {
        let Some(text) = self.must_read("/proc/self/mountinfo")? else {
            return Ok(Vec::new());
        };
        // A btrfs filesystem can span several disks; the mount names one.
        let btrfs = self.btrfs_members()?;
        let mut out = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // id parent major:minor root point options [optional…] - fstype source super
            let Some(dash) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            if fields.len() < 5 || fields.len() < dash + 3 {
                continue;
            }
            let source = fields[dash + 2];
            // /dev/sda1, /dev/nvme0n1p2, /dev/mapper/home (btrfs and friends
            // report an anonymous major:minor: the source names the disk).
            let source = match source.strip_prefix("/dev/mapper/") {
                Some(name) => self.dm_device(name)?.unwrap_or_default(),
                None => source
                    .strip_prefix("/dev/")
                    .map(str::to_owned)
                    .unwrap_or_default(),
            };
            if fields[dash + 1] == "btrfs" {
                for members in btrfs.iter().filter(|m| m.contains(&source)) {
                    for member in members.iter().filter(|m| **m != source) {
                        out.push(Mount {
                            number: fields[2].to_owned(),
                            source: member.clone(),
                            point: fields[4].to_owned(),
                            server: None,
                        });
                    }
                }
            }
            let server = fields
                .get(dash + 3)
                .and_then(|options| options.split(',').find_map(|o| o.strip_prefix("addr=")))
                .and_then(|a| a.parse().ok());
            out.push(Mount {
                number: fields[2].to_owned(),
                source,
                point: fields[4].to_owned(),
                server,
            });
        }
        Ok(out)
    }

    /// The member disks of each btrfs filesystem the kernel knows
    /// (`/sys/fs/btrfs/FSID/devices/`), by kernel name.
    fn btrfs_members(&self) -> Result<Vec<Vec<String>>, HostError> {
        let mut out = Vec::new();
        for fsid in self.host.read_dir_or_empty("/sys/fs/btrfs")? {
            let members = self
                .host
                .read_dir_or_empty(format!("/sys/fs/btrfs/{fsid}/devices"))?;
            if !members.is_empty() {
                out.push(members);
            }
        }
        Ok(out)
    }

    /// The kernel name (dm-N) of a device-mapper device by its name.
    fn dm_device(&self, name: &str) -> Result<Option<String>, HostError> {
        for dev in self.host.read_dir_or_empty("/sys/block")? {
            if dev.starts_with("dm-")
                && self
                    .host
                    .read_attr(format!("/sys/block/{dev}/dm/name"))?
                    .as_deref()
                    == Some(name)
            {
                return Ok(Some(dev));
            }
        }
        Ok(None)
    }

    /// Block devices used as swap, by kernel name.
    fn swaps(&self) -> Result<Vec<String>, HostError> {
        let Some(text) = self.must_read("/proc/swaps")? else {
            return Ok(Vec::new());
        };
        Ok(text
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|p| p.strip_prefix("/dev/"))
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
            .collect())
    }

    /// The block devices that live on this function: its disks, their
    /// partitions and whatever is stacked on them (dm, md), by name and number.
    fn block_devices_of(&self, device: &PciDevice) -> Result<BlockDevices, HostError> {
        let address = device.address.to_string();
        let mut found = BlockDevices::default();
        for disk in self.host.read_dir_or_empty("/sys/block")? {
            let Ok(target) = self.host.read_link(format!("/sys/block/{disk}")) else {
                continue;
            };
            let below = target
                .components()
                .any(|c| c.as_os_str().to_str() == Some(address.as_str()));
            if !below {
                continue;
            }
            let mut queue = vec![format!("/sys/block/{disk}")];
            let mut seen = std::collections::BTreeSet::new();
            while let Some(dir) = queue.pop() {
                if !seen.insert(dir.clone()) {
                    continue;
                }
                let name = Path::new(&dir)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                found.names.insert(name.clone());
                if let Some(dev) = self.host.read_attr(format!("{dir}/dev"))? {
                    found.numbers.insert(dev);
                }
                for entry in self.host.read_dir_or_empty(&dir)? {
                    // Partitions are subdirectories named after the disk.
                    if entry.starts_with(&name) && entry != name {
                        queue.push(format!("{dir}/{entry}"));
                    }
                }
                for holder in self.host.read_dir_or_empty(format!("{dir}/holders"))? {
                    queue.push(format!("/sys/block/{holder}"));
                }
            }
        }
        Ok(found)
    }

    /// Interfaces that carry an IPv4 or IPv6 default route.
    /// The interface the host reaches `ip` through: the most specific route
    /// (then the lowest metric) in /proc/net/route or /proc/net/ipv6_route.
    fn route_interface(&self, ip: std::net::IpAddr) -> Result<Option<String>, HostError> {
        // (prefix length, metric, interface)
        let mut best: Option<(u32, u32, String)> = None;
        let mut consider = |prefix: u32, metric: u32, iface: &str| {
            let better = match &best {
                None => true,
                Some((p, m, _)) => prefix > *p || (prefix == *p && metric < *m),
            };
            if better {
                best = Some((prefix, metric, iface.to_owned()));
            }
        };
        match ip {
            std::net::IpAddr::V4(v4) => {
                let Some(text) = self.must_read("/proc/net/route")? else {
                    return Ok(None);
                };
                // The kernel prints addresses in memory order: little-endian here.
                let ip = u32::from_le_bytes(v4.octets());
                for line in text.lines().skip(1) {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let hex = |i: usize| f.get(i).and_then(|v| u32::from_str_radix(v, 16).ok());
                    let (Some(dest), Some(metric), Some(mask)) = (hex(1), hex(6), hex(7)) else {
                        continue;
                    };
                    if ip & mask == dest {
                        consider(mask.count_ones(), metric, f[0]);
                    }
                }
            }
            std::net::IpAddr::V6(v6) => {
                let Ok(text) = self.host.read_string("/proc/net/ipv6_route") else {
                    return Ok(None);
                };
                let ip = u128::from_be_bytes(v6.octets());
                for line in text.lines() {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    if f.len() != 10 || f[9] == "lo" {
                        continue;
                    }
                    let (Ok(dest), Ok(prefix), Ok(metric)) = (
                        u128::from_str_radix(f[0], 16),
                        u32::from_str_radix(f[1], 16),
                        u32::from_str_radix(f[5], 16),
                    ) else {
                        continue;
                    };
                    let mask = u128::MAX.checked_shl(128 - prefix.min(128)).unwrap_or(0);
                    if ip & mask == dest & mask {
                        consider(prefix, metric, f[9]);
                    }
                }
            }
        }
        Ok(best.map(|(_, _, iface)| iface))
    }

    fn default_route_interfaces(&self) -> Result<Vec<String>, HostError> {
        let mut out = Vec::new();
        if let Some(text) = self.must_read("/proc/net/route")? {
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() > 7 && f[1] == "00000000" && f[7] == "00000000" {
                    out.push(f[0].to_owned());
                }
            }
        }
        // IPv6 may be disabled: then the file is missing, which is fine.
        if let Ok(text) = self.host.read_string("/proc/net/ipv6_route") {
            for line in text.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() == 10 && f[0].chars().all(|c| c == '0') && f[1] == "00" && f[9] != "lo" {
                    out.push(f[9].to_owned());
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Whether an interface sits on this function: its device path passes
    /// through it (virtio and USB NICs hang below the PCI function), or one
    /// of its lower interfaces (bridge ports, bond slaves, VLAN parents) does.
    fn interface_on(
        &self,
        interface: &str,
        address: &PciAddress,
        depth: u32,
    ) -> Result<bool, HostError> {
        if depth > 8 || interface.contains('/') || interface.starts_with('.') {
            return Ok(false);
        }
        let wanted = address.to_string();
        if let Ok(target) = self
            .host
            .read_link(format!("/sys/class/net/{interface}/device"))
        {
            if target
                .components()
                .any(|c| c.as_os_str().to_str() == Some(wanted.as_str()))
            {
                return Ok(true);
            }
        }
        for entry in self
            .host
            .read_dir_or_empty(format!("/sys/class/net/{interface}"))?
        {
            if let Some(lower) = entry.strip_prefix("lower_") {
                if self.interface_on(lower, address, depth + 1)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Processes with the function's DRM nodes (or, for nvidia, its device
    /// nodes) open: "name (pid)".
    fn gpu_users(&self, device: &PciDevice) -> Result<Vec<String>, HostError> {
        let nodes: Vec<String> = self
            .host
            .read_dir_or_empty(device_dir(&device.address).join("drm"))?
            .into_iter()
            .filter(|n| n.starts_with("card") || n.starts_with("renderD"))
            .map(|n| format!("/dev/dri/{n}"))
            .collect();
        let nvidia = device.driver.as_deref() == Some("nvidia");
        if nodes.is_empty() && !nvidia {
            return Ok(Vec::new());
        }
        processes_holding(self.host, &|t: &str| {
            nodes.iter().any(|n| n == t) || (nvidia && t.starts_with("/dev/nvidia"))
        })
    }

    /// Test seam: whether this run of `step` is the one to fail.
    fn injected(&self, step: Step) -> bool {
        let mut counts = self.steps.borrow_mut();
        let n = counts.entry(step.id()).or_insert(0);
        *n += 1;
        self.fail_step == Some((step, *n))
    }

    fn injected_failure(&self) -> String {
        gettext("injected failure (test seam)")
    }

    /// A forward write, through the test seams.
    fn write_step(&self, step: Step, path: &Path, data: &[u8]) -> Result<(), HostError> {
        if self.injected(step) {
            return Err(HostError::bad_content(
                self.host.display(path),
                self.injected_failure(),
            ));
        }
        let n = self.writes.get() + 1;
        self.writes.set(n);
        if let Some((at, pause)) = self.pause_at {
            if at == n {
                if let Some(mark) = &self.pause_mark {
                    let _ = std::fs::write(mark, n.to_string());
                }
                std::thread::sleep(pause);
            }
        }
        if self.fail_at == Some(n) {
            return Err(HostError::bad_content(
                self.host.display(path),
                gettext("injected failure (test seam)"),
            ));
        }
        self.host.write(path, data)
    }

    /// Wait until the function's driver is `want` (`None`: any driver but
    /// vfio, or none).
    fn wait_for_driver(
        &self,
        address: &PciAddress,
        want: Option<&str>,
    ) -> Result<Option<String>, String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let now = self.driver(address).map_err(|e| e.to_string())?;
            let ok = match want {
                Some(w) => now.as_deref() == Some(w),
                None => !now.as_deref().is_some_and(|d| d.starts_with("vfio")),
            };
            if ok {
                return Ok(now);
            }
            if Instant::now() >= deadline {
                return Err(match (want, now) {
                    (Some(w), Some(n)) => gettext_f(
                        "{driver} is bound instead of {wanted}",
                        &[("driver", &n), ("wanted", w)],
                    ),
                    (Some(w), None) => gettext_f(
                        "no driver bound within the time limit (expected {wanted})",
                        &[("wanted", w)],
                    ),
                    (None, n) => gettext_f(
                        "{driver} is still bound",
                        &[("driver", n.as_deref().unwrap_or("?"))],
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Make sure the vfio-pci driver exists: load the module if needed.
    fn ensure_vfio(&self) -> Result<(), MoveError> {
        let dir = Path::new(DRIVERS).join(VFIO);
        if self.host.exists(&dir) {
            return Ok(());
        }
        let fail = |detail: String| MoveError::Failed {
            step: Step::LoadModule,
            device: None,
            detail,
            rolled_back: true,
        };
        if !self.host.is_live() {
            return Err(fail(gettext(
                "vfio-pci is not loaded in this captured host",
            )));
        }
        if self.injected(Step::LoadModule) {
            return Err(fail(self.injected_failure()));
        }
        let modprobe = ["/usr/sbin/modprobe", "/sbin/modprobe"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| fail(gettext("modprobe is not installed")))?;
        let status = std::process::Command::new(modprobe)
            .arg(VFIO)
            .stdin(std::process::Stdio::null())
            .status()
            .map_err(|e| fail(e.to_string()))?;
        if !status.success() {
            return Err(fail(gettext("modprobe vfio-pci failed")));
        }
        let deadline = Instant::now() + self.timeout;
        while !self.host.exists(&dir) {
            if Instant::now() >= deadline {
                return Err(fail(gettext("the vfio-pci driver did not appear")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn record(&self, address: &PciAddress) -> Result<Recorded, HostError> {
        Ok(Recorded {
            address: address.to_string(),
            driver: self.driver(address)?,
            driver_override: self.driver_override(address)?,
            ids: self.ids(address),
        })
    }

    fn ids(&self, address: &PciAddress) -> Option<String> {
        let dir = device_dir(address);
        let vendor = self.host.read_attr(dir.join("vendor")).ok().flatten()?;
        let device = self.host.read_attr(dir.join("device")).ok().flatten()?;
        Some(format!(
            "{}:{}",
            vendor.trim_start_matches("0x"),
            device.trim_start_matches("0x")
        ))
    }

    fn boot_id(&self) -> Option<String> {
        self.host
            .read_attr("/proc/sys/kernel/random/boot_id")
            .ok()
            .flatten()
    }

    /// Move the group of a planned move. Returns the functions that changed.
    pub fn execute(&self, plan: &MovePlan) -> Result<Vec<PciAddress>, MoveError> {
        // Functions already where they should be are left alone.
        let mut todo = Vec::new();
        for d in &plan.devices {
            let now = self.driver(&d.address)?;
            let done = match plan.direction {
                Direction::ToGuest => now.as_deref() == Some(VFIO),
                Direction::ToHost => !now.as_deref().is_some_and(|n| n.starts_with("vfio")),
            };
            if !done {
                todo.push(d.clone());
            }
        }
        if todo.is_empty() {
            return Ok(Vec::new());
        }
        if plan.direction == Direction::ToGuest {
            self.ensure_vfio()?;
        }
        let mut records = Vec::new();
        for d in &todo {
            records.push(self.record(&d.address)?);
        }
        let journal = Journal {
            version: 1,
            direction: plan.direction,
            group: plan.group,
            devices: records.clone(),
            pid: std::process::id(),
            boot_id: self.boot_id(),
        };
        let text = serde_json::to_vec_pretty(&journal).unwrap_or_default();
        let written = if self.injected(Step::Journal) {
            Err(HostError::bad_content(
                self.host.display(Path::new(JOURNAL)),
                self.injected_failure(),
            ))
        } else {
            self.host.write_state(Path::new(JOURNAL), &text)
        };
        written.map_err(|e| MoveError::Failed {
            step: Step::Journal,
            device: None,
            detail: e.to_string(),
            rolled_back: true,
        })?;

        let mut touched: Vec<&Recorded> = Vec::new();
        for (d, rec) in todo.iter().zip(&records) {
            touched.push(rec);
            let result = match plan.direction {
                Direction::ToGuest => self.bind_vfio(&d.address),
                Direction::ToHost => self.release(&d.address, d.target.as_deref()),
            };
            if let Err((step, detail)) = result {
                let problems = self.restore_all(&touched);
                let rolled_back = problems.is_empty();
                if rolled_back {
                    // The failure is what the user must hear about, not this.
                    let _ = self.host.remove_state(Path::new(JOURNAL));
                }
                let detail = if rolled_back {
                    detail
                } else {
                    format!("{detail}; {}", problems.join("; "))
                };
                return Err(MoveError::Failed {
                    step,
                    device: Some(d.address),
                    detail,
                    rolled_back,
                });
            }
        }

        // Remember where the functions came from, for the way back.
        let mut assigned = self.assigned();
        for rec in &records {
            match plan.direction {
                Direction::ToGuest => {
                    assigned.insert(rec.address.clone(), rec.driver.clone());
                }
                Direction::ToHost => {
                    assigned.remove(&rec.address);
                }
            }
        }
        // The move succeeded: the journal must go even if the record of
        // original drivers cannot be kept (it only helps the way back).
        let record = Assigned {
            boot_id: self.boot_id(),
            devices: assigned,
        };
        let text = serde_json::to_vec_pretty(&record).unwrap_or_default();
        let _ = self.host.write_state(Path::new(ASSIGNED), &text);
        self.host.remove_state(Path::new(JOURNAL))?;
        Ok(todo.iter().map(|d| d.address).collect())
    }

    /// The three writes of either way: `driver_override` ← `value`, unbind
    /// (when bound), `drivers_probe`.
    fn rebind(&self, address: &PciAddress, value: &[u8]) -> Result<(), (Step, String)> {
        let dir = device_dir(address);
        let name = address.to_string();
        self.write_step(Step::Override, &dir.join("driver_override"), value)
            .map_err(|e| (Step::Override, e.to_string()))?;
        if self
            .driver(address)
            .map_err(|e| (Step::Unbind, e.to_string()))?
            .is_some()
        {
            self.write_step(Step::Unbind, &dir.join("driver/unbind"), name.as_bytes())
                .map_err(|e| (Step::Unbind, e.to_string()))?;
        }
        self.write_step(Step::Probe, Path::new(DRIVERS_PROBE), name.as_bytes())
            .map_err(|e| (Step::Probe, e.to_string()))
    }

    fn bind_vfio(&self, address: &PciAddress) -> Result<(), (Step, String)> {
        self.rebind(address, VFIO.as_bytes())?;
        self.wait_for_driver(address, Some(VFIO))
            .map(|_| ())
            .map_err(|e| (Step::Verify, e))?;
        if self.injected(Step::Verify) {
            return Err((Step::Verify, self.injected_failure()));
        }
        Ok(())
    }

    fn release(&self, address: &PciAddress, original: Option<&str>) -> Result<(), (Step, String)> {
        self.rebind(address, b"\n")?;
        match self.wait_for_driver(address, original) {
            Ok(_) if self.injected(Step::Verify) => Err((Step::Verify, self.injected_failure())),
            Ok(_) => Ok(()),
            // The kernel picked another driver or none: bind the original by name.
            Err(e) => match original {
                Some(o) => self.bind_by_name(address, o).map_err(|_| (Step::Verify, e)),
                None => Err((Step::Verify, e)),
            },
        }
    }

    fn bind_by_name(&self, address: &PciAddress, driver: &str) -> Result<(), String> {
        // The name comes from our own state files: still, never a path.
        if driver.is_empty() || driver.contains('/') || driver == "." || driver == ".." {
            return Err(gettext_f(
                "“{driver}” is not a driver name",
                &[("driver", driver)],
            ));
        }
        let name = address.to_string();
        if self.driver(address).map_err(|e| e.to_string())?.is_some() {
            self.host
                .write(device_dir(address).join("driver/unbind"), name.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        self.host
            .write(
                Path::new(DRIVERS).join(driver).join("bind"),
                name.as_bytes(),
            )
            .map_err(|e| e.to_string())?;
        self.wait_for_driver(address, Some(driver)).map(|_| ())
    }

    /// Put one function back as recorded. Never through the test seams.
    /// A function that is gone is nothing to restore.
    fn restore(&self, rec: &Recorded) -> Result<(), String> {
        let address: PciAddress = rec
            .address
            .parse()
            .map_err(|e: crate::pci::AddressError| e.to_string())?;
        let dir = device_dir(&address);
        if !self.host.exists(&dir) {
            return Ok(());
        }
        let name = address.to_string();
        let wanted_override = rec.driver_override.clone().unwrap_or_default();
        self.host
            .write(
                dir.join("driver_override"),
                format!("{wanted_override}\n").as_bytes(),
            )
            .map_err(|e| e.to_string())?;
        let now = self.driver(&address).map_err(|e| e.to_string())?;
        if now == rec.driver {
            return Ok(());
        }
        if now.is_some() {
            self.host
                .write(dir.join("driver/unbind"), name.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        let Some(original) = &rec.driver else {
            return Ok(());
        };
        // A probe that fails or picks another driver: bind the original by name.
        let probed = self
            .host
            .write(Path::new(DRIVERS_PROBE), name.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|()| self.wait_for_driver(&address, Some(original)).map(|_| ()));
        match probed {
            Ok(()) => Ok(()),
            Err(_) => self.bind_by_name(&address, original),
        }
    }

    /// Restore every touched function, last first, going on after a failure.
    /// Returns one sentence per function that could not be put back.
    fn restore_all(&self, touched: &[&Recorded]) -> Vec<String> {
        let mut problems = Vec::new();
        for rec in touched.iter().rev() {
            if let Err(e) = self.restore(rec) {
                problems.push(format!("{}: {e}", rec.address));
            }
        }
        problems
    }

    /// Finish an interrupted move, then remove the journal. `None`: nothing
    /// to do. In the same boot, a move to the guest is undone (every function
    /// back as recorded) and a move to the host is finished (a function left
    /// on vfio-pci is released: nothing must stay half given). After a reboot,
    /// or when an address now names another function, only the override is
    /// cleared: the drivers there are fresh and not ours to touch.
    pub fn recover(&self) -> Result<Option<Vec<String>>, MoveError> {
        let text = match self.host.read_string(JOURNAL) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let journal: Journal =
            serde_json::from_str(&text).map_err(|e| MoveError::BadJournal(e.to_string()))?;
        // A journal in a captured root is part of the snapshot, not a move
        // of ours: it is read (so a broken one is reported) and left alone.
        if !self.host.is_live() {
            return Ok(None);
        }
        let same_boot = journal.boot_id.is_some() && journal.boot_id == self.boot_id();
        // A VM already holds the group: whatever was left, the move to the
        // guest is in use. Undoing it now would make the unbind wait for the
        // VM (and hang whoever recovers); the journal goes, nothing changes.
        if same_boot
            && journal.direction == Direction::ToGuest
            && vfio_users(self.host)?.contains_key(&journal.group)
        {
            self.host.remove_state(Path::new(JOURNAL))?;
            return Ok(None);
        }
        let mut problems = Vec::new();
        let mut handled = Vec::new();
        for rec in journal.devices.iter().rev() {
            let Ok(address) = rec.address.parse::<PciAddress>() else {
                continue;
            };
            if !self.host.exists(device_dir(&address)) {
                continue;
            }
            let same_function = rec.ids.is_none() || rec.ids == self.ids(&address);
            let result = if !same_boot || !same_function {
                self.clear_override(&address)
            } else {
                match journal.direction {
                    Direction::ToGuest => self.restore(rec),
                    Direction::ToHost => self.finish_release(&address),
                }
            };
            match result {
                Ok(()) => handled.push(rec.address.clone()),
                Err(e) => problems.push(format!("{}: {e}", rec.address)),
            }
        }
        if !problems.is_empty() {
            return Err(MoveError::Failed {
                step: Step::Verify,
                device: None,
                detail: format!(
                    "{} ({})",
                    gettext("the interrupted move could not be undone"),
                    problems.join("; ")
                ),
                rolled_back: false,
            });
        }
        self.host.remove_state(Path::new(JOURNAL))?;
        handled.reverse();
        Ok(Some(handled))
    }

    /// Clear a vfio-pci override we set; leave any other override alone.
    fn clear_override(&self, address: &PciAddress) -> Result<(), String> {
        if self
            .driver_override(address)
            .map_err(|e| e.to_string())?
            .is_some_and(|o| o.starts_with("vfio"))
        {
            self.host
                .write(device_dir(address).join("driver_override"), b"\n")
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The rest of a move to the host: release a function still on vfio.
    fn finish_release(&self, address: &PciAddress) -> Result<(), String> {
        self.clear_override(address)?;
        let now = self.driver(address).map_err(|e| e.to_string())?;
        let name = address.to_string();
        if now.as_deref().is_some_and(|d| d.starts_with("vfio")) {
            self.host
                .write(device_dir(address).join("driver/unbind"), name.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        if self.driver(address).map_err(|e| e.to_string())?.is_none() {
            let original = self.assigned().get(&name).cloned().flatten();
            self.host
                .write(Path::new(DRIVERS_PROBE), name.as_bytes())
                .map_err(|e| e.to_string())?;
            if let Some(o) = original {
                if self.wait_for_driver(address, Some(&o)).is_err() {
                    self.bind_by_name(address, &o)?;
                }
            }
        }
        Ok(())
    }

    /// Take the move lock, or report that another move holds it.
    pub fn lock(&self) -> Result<std::fs::File, MoveError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        let path = self.host.display(Path::new(LOCK));
        let io =
            |p: &Path, e: std::io::Error| MoveError::Host(HostError::from_io(p.to_owned(), &e));
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| io(dir, e))?;
        }
        // Only root may open it: whoever can open a file can flock it, and
        // would then hold every move back.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io(&path, e))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(file),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(MoveError::Busy),
            Err(e) => Err(MoveError::Host(HostError::from_errno(path, e))),
        }
    }
}
