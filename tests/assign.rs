//! The move's plan and safety checks on described hosts: which functions move,
//! and every refusal (bridge, mounted disk, default route, GPU in use) with its
//! exit code. Binding itself is proven in the lab (tests/lab/moves.sh), never
//! here: a fixture tree cannot bind drivers.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;
use traspaso::assign::{Direction, MoveError, Mover, Refusal, JOURNAL};
use traspaso::host::HostRoot;
use traspaso::pci::PciAddress;
use traspaso::topology::{ScanOptions, Topology};

fn load(root: &Path) -> (HostRoot, Topology) {
    let host = HostRoot::open(root).unwrap();
    let t = Topology::load(&host, None, ScanOptions::default()).unwrap();
    (host, t)
}

fn addr(s: &str) -> PciAddress {
    s.parse().unwrap()
}

fn put(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn link(root: &Path, path: &str, target: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink(target, p).unwrap();
}

/// The sysfs directory of a function in a described host.
fn device_dir(root: &Path, address: &str) -> String {
    let entry = root.join("sys/bus/pci/devices").join(address);
    let real = std::fs::canonicalize(entry).unwrap();
    format!(
        "/{}",
        real.strip_prefix(std::fs::canonicalize(root).unwrap())
            .unwrap()
            .display()
    )
}

#[test]
fn the_plan_moves_every_endpoint_and_leaves_the_bridge() {
    let root = host("ivy-bridge-desktop");
    let (host, t) = load(root.path());
    let mover = Mover::new(&host);
    let plan = mover
        .plan(&t, &addr("01:00.1"), Direction::ToGuest)
        .unwrap();
    let moved: Vec<String> = plan.devices.iter().map(|d| d.address.to_string()).collect();
    assert_eq!(moved, ["0000:01:00.0", "0000:01:00.1"]);
    assert_eq!(plan.bridges, [addr("00:01.0")]);
    assert!(plan
        .devices
        .iter()
        .all(|d| d.target.as_deref() == Some("vfio-pci")));
    assert_eq!(plan.devices[0].driver.as_deref(), Some("nouveau"));

    // The shared group behind two root ports: both DeckLinks, no root port.
    let plan = mover
        .plan(&t, &addr("03:00.0"), Direction::ToGuest)
        .unwrap();
    assert_eq!(plan.devices.len(), 2);
    assert_eq!(plan.bridges.len(), 2);

    assert!(matches!(
        mover.plan(&t, &addr("00:1c.0"), Direction::ToGuest),
        Err(MoveError::Refused(Refusal::Bridge(_)))
    ));
    assert!(matches!(
        mover.plan(&t, &addr("0a:00.0"), Direction::ToGuest),
        Err(MoveError::UnknownDevice(_))
    ));
    // Nothing stands in the way of the GTX 950 on this host.
    let plan = mover
        .plan(&t, &addr("01:00.0"), Direction::ToGuest)
        .unwrap();
    mover.check_safety(&t, &plan, false).unwrap();
}

#[test]
fn without_an_iommu_nothing_moves() {
    let root = host("iommu-off");
    let (host, t) = load(root.path());
    assert!(matches!(
        Mover::new(&host).plan(&t, &addr("00:02.0"), Direction::ToGuest),
        Err(MoveError::IommuOff)
    ));
}

#[test]
fn a_mounted_disk_is_refused_also_through_a_partition_and_device_mapper() {
    let root = host("ivy-bridge-desktop");
    let r = root.path();
    let ahci = device_dir(r, "0000:00:1f.2");
    // sda on the AHCI controller, its partition sda2 under dm-0, mounted on /home.
    link(
        r,
        "/sys/block/sda",
        &format!("../..{ahci}/ata1/host0/target0:0:0/0:0:0:0/block/sda"),
    );
    let sda = format!("{ahci}/ata1/host0/target0:0:0/0:0:0:0/block/sda");
    put(r, &format!("{sda}/dev"), "8:0\n");
    put(r, &format!("{sda}/sda1/dev"), "8:1\n");
    put(r, &format!("{sda}/sda2/dev"), "8:2\n");
    put(r, &format!("{sda}/sda2/holders/dm-0"), "");
    link(r, "/sys/block/dm-0", "../devices/virtual/block/dm-0");
    put(r, "/sys/devices/virtual/block/dm-0/dev", "254:0\n");
    put(
        r,
        "/proc/self/mountinfo",
        "22 1 254:0 / /home rw,relatime shared:1 - ext4 /dev/mapper/home rw\n\
         23 1 0:5 / /proc rw shared:2 - proc proc rw\n",
    );
    let (host, t) = load(r);
    let mover = Mover::new(&host);
    let plan = mover
        .plan(&t, &addr("00:1f.2"), Direction::ToGuest)
        .unwrap();
    match mover.check_safety(&t, &plan, true) {
        Err(MoveError::Refused(Refusal::MountedDisk { mounts, .. })) => {
            assert_eq!(mounts, ["/home"])
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The CLI says so with exit 4, even with --force.
    let out = ctl(&[
        "--root",
        r.to_str().unwrap(),
        "device",
        "to-guest",
        "00:1f.2",
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("/home"), "{}", stderr(&out));
    // A VM is not given it either (libvirt would take it when the VM starts).
    for action in ["create", "attach"] {
        let out = ctl(&[
            "--root",
            r.to_str().unwrap(),
            "vm",
            action,
            "ws",
            "--device",
            "00:1f.2",
            "--connect",
            "test:///default",
        ]);
        assert_eq!(out.status.code(), Some(4), "{action}: {}", stderr(&out));
        assert!(stderr(&out).contains("/home"), "{}", stderr(&out));
    }

    // Unmounted: the same group passes the checks.
    put(
        r,
        "/proc/self/mountinfo",
        "23 1 0:5 / /proc rw shared:2 - proc proc rw\n",
    );
    let (host, t) = load(r);
    let mover = Mover::new(&host);
    let plan = mover
        .plan(&t, &addr("00:1f.2"), Direction::ToGuest)
        .unwrap();
    mover.check_safety(&t, &plan, false).unwrap();
}

#[test]
fn the_nic_with_the_default_route_is_refused() {
    let root = host("ivy-bridge-desktop");
    let r = root.path();
    let nic = device_dir(r, "0000:00:19.0");
    link(r, "/sys/class/net/eno1/device", &format!("../../..{nic}"));
    put(
        r,
        "/proc/net/route",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         eno1\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
         eno1\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n",
    );
    let out = ctl(&[
        "--root",
        r.to_str().unwrap(),
        "device",
        "to-guest",
        "00:19.0",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("eno1"), "{}", stderr(&out));

    // An IPv6-only default route counts too.
    put(r, "/proc/net/route", "Iface\tDestination\n");
    put(
        r,
        "/proc/net/ipv6_route",
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eno1\n",
    );
    let out = ctl(&[
        "--root",
        r.to_str().unwrap(),
        "device",
        "to-guest",
        "00:19.0",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

#[test]
fn a_gpu_in_use_names_the_processes_and_force_overrides_only_that() {
    let root = host("ivy-bridge-desktop");
    let r = root.path();
    let gpu = device_dir(r, "0000:01:00.0");
    put(r, &format!("{gpu}/drm/card1/dev"), "226:1\n");
    put(r, &format!("{gpu}/drm/renderD129/dev"), "226:129\n");
    put(r, "/proc/4242/comm", "gnome-shell\n");
    link(r, "/proc/4242/fd/17", "/dev/dri/card1");
    put(r, "/proc/4343/comm", "bash\n");
    link(r, "/proc/4343/fd/0", "/dev/pts/0");
    let args = [
        "--root",
        r.to_str().unwrap(),
        "device",
        "to-guest",
        "01:00.0",
    ];
    let out = ctl(&args);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("gnome-shell (4242)") && !stderr(&out).contains("bash"),
        "{}",
        stderr(&out)
    );
    // --force passes the checks; a captured host is never changed.
    let mut forced = args.to_vec();
    forced.push("--force");
    let out = ctl(&forced);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was moved"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn status_and_bad_input() {
    let root = host("ivy-bridge-desktop");
    let r = root.path().to_str().unwrap();
    let out = ctl(&["--root", r, "--json", "device", "status", "01:00.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["driver"], "nouveau");
    assert_eq!(v["iommu_group"], 1);
    assert_eq!(v["group"].as_array().unwrap().len(), 3);
    assert_eq!(v["on_vfio"], false);

    for (args, code) in [
        (vec!["device", "status", "01:00.0/../../x"], 2),
        (vec!["device", "to-guest", "zz:00.0"], 2),
        (vec!["device", "to-guest", "0a:00.0"], 2),
        (vec!["device", "explode", "01:00.0"], 2),
        (vec!["device", "to-guest"], 2),
        (vec!["device", "to-guest", "00:1c.0"], 4),
    ] {
        let mut full = vec!["--root", r];
        full.extend(args.iter());
        let out = ctl(&full);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
    }
}

#[test]
fn a_broken_journal_is_left_alone_and_reported() {
    let root = host("ivy-bridge-desktop");
    put(root.path(), JOURNAL, "{ not json");
    let host = HostRoot::open(root.path()).unwrap();
    let err = Mover::new(&host).recover().unwrap_err();
    assert!(matches!(err, MoveError::BadJournal(_)));
    assert!(err.to_string().contains("traspasoctl device status"));
    assert!(root.path().join(JOURNAL.trim_start_matches('/')).exists());
    // No journal: nothing to recover.
    std::fs::remove_file(root.path().join(JOURNAL.trim_start_matches('/'))).unwrap();
    assert!(Mover::new(&host).recover().unwrap().is_none());
}

#[test]
fn without_root_the_cli_asks_the_helper_and_says_when_it_is_missing() {
    // No helper on this (private, absent) system bus: a clear message, exit 1.
    let run = |uid: Option<&str>| {
        let mut cmd = match uid {
            Some(u) => {
                let mut c = std::process::Command::new("setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    &format!("--regid={u}"),
                    "--clear-groups",
                ])
                .arg(env!("CARGO_BIN_EXE_traspasoctl"));
                c
            }
            None => std::process::Command::new(env!("CARGO_BIN_EXE_traspasoctl")),
        };
        cmd.args(["device", "to-guest", "00:00.0"])
            .env("LANGUAGE", "en")
            .env("LANG", "C.UTF-8")
            .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
            .output()
            .unwrap()
    };
    let out = if traspaso::host::is_root() {
        run(Some("65534"))
    } else {
        run(None)
    };
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("helper is not available"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn btrfs_sources_swap_virtio_and_bridged_nics_are_caught() {
    let root = host("ivy-bridge-desktop");
    let r = root.path();
    let ahci = device_dir(r, "0000:00:1f.2");
    let sda = format!("{ahci}/ata1/host0/target0:0:0/0:0:0:0/block/sda");
    link(
        r,
        "/sys/block/sda",
        &format!("../..{ahci}/ata1/host0/target0:0:0/0:0:0:0/block/sda"),
    );
    put(r, &format!("{sda}/dev"), "8:0\n");
    put(r, &format!("{sda}/sda1/dev"), "8:1\n");
    put(r, &format!("{sda}/sda2/dev"), "8:2\n");
    // btrfs reports an anonymous device number: the source names the disk.
    put(
        r,
        "/proc/self/mountinfo",
        "30 1 0:45 /@home /home rw shared:1 - btrfs /dev/sda2 rw,subvol=/@home\n",
    );
    put(r, "/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n");
    let refused = |r: &Path, address: &str| {
        let out = ctl(&["--root", r.to_str().unwrap(), "device", "to-guest", address]);
        (out.status.code(), stderr(&out))
    };
    let (code, err) = refused(r, "00:1f.2");
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("/home"), "{err}");
    // A btrfs spanning two disks, mounted by its member on another disk:
    // the member on this controller is found through /sys/fs/btrfs.
    put(
        r,
        "/proc/self/mountinfo",
        "31 1 0:46 / /data rw shared:2 - btrfs /dev/nvme0n1p3 rw\n",
    );
    let (code, _) = refused(r, "00:1f.2");
    assert_eq!(
        code,
        Some(2),
        "without the member list it is not this disk's"
    );
    put(r, "/sys/fs/btrfs/0b1c-fsid/devices/nvme0n1p3", "");
    put(r, "/sys/fs/btrfs/0b1c-fsid/devices/sda2", "");
    let (code, err) = refused(r, "00:1f.2");
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("/data"), "{err}");
    // Swap only.
    put(
        r,
        "/proc/self/mountinfo",
        "23 1 0:5 / /proc rw - proc proc rw\n",
    );
    put(
        r,
        "/proc/swaps",
        "Filename\tType\tSize\tUsed\tPriority\n/dev/sda1 partition 1048572 0 -2\n",
    );
    let (code, err) = refused(r, "00:1f.2");
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("swap on /dev/sda1"), "{err}");

    // A bridge whose port is the NIC carries the default route.
    let nic = device_dir(r, "0000:00:19.0");
    link(r, "/sys/class/net/eno1/device", &format!("../../..{nic}"));
    put(r, "/sys/class/net/br0/lower_eno1/.keep", "");
    put(
        r,
        "/proc/net/route",
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
         br0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
    );
    let (code, err) = refused(r, "00:19.0");
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("br0"), "{err}");

    // A virtio-style NIC below the function (…/0000:00:19.0/virtio0).
    std::fs::remove_file(r.join("sys/class/net/eno1/device")).unwrap();
    link(
        r,
        "/sys/class/net/eth0/device",
        &format!("../../..{nic}/virtio0"),
    );
    put(
        r,
        "/proc/net/route",
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
         eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
    );
    let (code, err) = refused(r, "00:19.0");
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("eth0"), "{err}");
}

#[test]
fn a_group_held_by_a_vm_does_not_go_back_to_the_host() {
    let root = host("ivy-bridge-desktop");
    let r = root.path();
    let refused_naming = |who: &str| {
        let out = ctl(&[
            "--root",
            r.to_str().unwrap(),
            "device",
            "to-host",
            "01:00.0",
        ]);
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        assert!(stderr(&out).contains(who), "{}", stderr(&out));
    };
    put(r, "/proc/777/comm", "qemu-system-x86\n");
    link(r, "/proc/777/fd/31", "/dev/vfio/1");
    refused_naming("qemu-system-x86 (777)");
    // A VM started by libvirt is named.
    put(
        r,
        "/proc/777/cmdline",
        "/usr/bin/qemu-system-x86_64\0-name\0guest=win11,debug-threads=on\0-S\0",
    );
    refused_naming("the virtual machine “win11” (process 777)");
}

#[test]
fn a_vm_holding_a_group_is_named_from_its_command_line() {
    use traspaso::assign::vm_name;
    let line = |args: &[&str]| args.join("\0").into_bytes();
    assert_eq!(
        vm_name(&line(&[
            "/usr/bin/qemu-system-x86_64",
            "-name",
            "guest=win11,debug-threads=on",
            "-S"
        ])),
        Some("win11".into())
    );
    assert_eq!(
        vm_name(&line(&["qemu", "-name", "gaming,,rig,process=q"])),
        Some("gaming,rig".into())
    );
    assert_eq!(
        vm_name(&line(&["qemu", "-name", "process=x,guest=a,,b"])),
        Some("a,b".into())
    );
    assert_eq!(vm_name(&line(&["qemu", "-name", "process=x"])), None);
    assert_eq!(vm_name(&line(&["qemu", "-name"])), None);
    assert_eq!(vm_name(&line(&["cat", "/dev/vfio/7"])), None);
    assert_eq!(vm_name(b""), None);
}

#[test]
fn the_topology_says_which_vm_uses_a_group() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/samples/ivy-bridge-desktop.host"),
    )
    .unwrap()
    .replace("driver=nouveau", "driver=vfio-pci")
    .replace(
        "driver=snd_hda_intel reset=bus",
        "driver=vfio-pci reset=bus",
    );
    let root = write(&traspaso::fixture::HostSpec::parse(&text).unwrap());
    let r = root.path();
    let json = |r: &Path| -> serde_json::Value {
        let out = ctl(&["--root", r.to_str().unwrap(), "--json", "topology"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let group_1 = |t: &serde_json::Value| {
        t["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == 1)
            .unwrap()["in_use_by"]
            .clone()
    };
    // On vfio-pci but not opened: nobody uses it.
    assert_eq!(group_1(&json(r)), serde_json::json!([]));
    put(r, "/proc/777/comm", "qemu-system-x86\n");
    put(
        r,
        "/proc/777/cmdline",
        "/usr/bin/qemu-system-x86_64\0-name\0guest=win11,debug-threads=on\0",
    );
    link(r, "/proc/777/fd/30", "/dev/vfio/vfio");
    link(r, "/proc/777/fd/31", "/dev/vfio/1");
    link(r, "/proc/900/fd/3", "/dev/vfio/1");
    put(r, "/proc/900/comm", "cat\n");
    assert_eq!(
        group_1(&json(r)),
        serde_json::json!(["the virtual machine “win11” (process 777)", "cat (900)"])
    );
    let out = ctl(&["--root", r.to_str().unwrap(), "topology"]);
    assert!(
        stdout(&out).contains("Group 1 — isolated · in use by the virtual machine “win11”"),
        "{}",
        stdout(&out)
    );

    // Through the per-device interface (/dev/vfio/devices/vfioN) only.
    std::fs::remove_file(r.join("proc/777/fd/31")).unwrap();
    std::fs::remove_file(r.join("proc/900/fd/3")).unwrap();
    let gpu = device_dir(r, "0000:01:00.0");
    std::fs::create_dir_all(r.join(gpu.trim_start_matches('/')).join("vfio-dev/vfio3")).unwrap();
    assert_eq!(group_1(&json(r)), serde_json::json!([]));
    link(r, "/proc/777/fd/32", "/dev/vfio/devices/vfio3");
    assert_eq!(
        group_1(&json(r)),
        serde_json::json!(["the virtual machine “win11” (process 777)"])
    );
    let out = ctl(&[
        "--root",
        r.to_str().unwrap(),
        "device",
        "to-host",
        "01:00.1",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("win11"), "{}", stderr(&out));
}

#[test]
fn the_lock_is_for_root_only_and_a_captured_journal_is_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    let root = host("ivy-bridge-desktop");
    let r = root.path();
    let host = HostRoot::open(r).unwrap();
    // Whoever can open the lock can flock it and hold every move back.
    let lock = Mover::new(&host).lock().unwrap();
    let mode = std::fs::metadata(r.join("run/traspaso/move.lock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(lock);
    // A valid journal in a capture is part of the snapshot: not acted on.
    let journal = serde_json::json!({
        "version": 1, "direction": "to-guest", "group": 1, "pid": 1,
        "boot_id": "x", "devices": [{"address": "0000:01:00.0", "driver": "nouveau",
        "driver_override": null, "ids": "10de:1402"}]
    });
    put(r, JOURNAL, &journal.to_string());
    assert!(Mover::new(&host).recover().unwrap().is_none());
    assert!(r.join(JOURNAL.trim_start_matches('/')).exists());
}

#[test]
fn a_nic_carrying_network_filesystems_is_refused() {
    let root = host("ivy-bridge-desktop");
    let r = root.path();
    let nic = device_dir(r, "0000:00:19.0");
    link(r, "/sys/class/net/eno1/device", &format!("../../..{nic}"));
    // The default route goes through Wi-Fi; eno1 reaches only the LAN
    // (192.168.1.0/24 and fd00:1::/64), where the file servers are.
    put(
        r,
        "/proc/net/route",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         wlan0\t00000000\t01000A0A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
         eno1\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n",
    );
    put(
        r,
        "/proc/net/ipv6_route",
        "fd000001000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eno1\n",
    );
    let to_guest = || {
        let out = ctl(&[
            "--root",
            r.to_str().unwrap(),
            "device",
            "to-guest",
            "00:19.0",
        ]);
        (out.status.code(), stderr(&out))
    };
    let mount = |options: &str| {
        put(
            r,
            "/proc/self/mountinfo",
            &format!(
                "23 1 0:5 / /proc rw - proc proc rw\n\
                 40 1 0:52 / /srv/media rw,relatime shared:9 - nfs4 nas:/media {options}\n"
            ),
        );
    };
    // A server on the LAN: refused, naming the mount and the interface.
    mount("rw,vers=4.2,rsize=1048576,proto=tcp,clientaddr=192.168.1.5,addr=192.168.1.20");
    let (code, err) = to_guest();
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("/srv/media") && err.contains("eno1"), "{err}");
    // The same over IPv6.
    mount("rw,vers=4.2,proto=tcp6,addr=fd00:1::20");
    let (code, err) = to_guest();
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("/srv/media"), "{err}");
    // A server reached through the Wi-Fi: the NIC may go.
    mount("rw,vers=4.2,proto=tcp,addr=10.10.0.9");
    let (code, err) = to_guest();
    assert_eq!(code, Some(2), "only the capture stops it: {err}");
}
