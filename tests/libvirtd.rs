//! `traspasoctl vm` against a real libvirtd with TCG guests (TESTBED.md):
//! virtlogd and libvirtd run in a private mount namespace over scratch
//! copies of /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt
//! and /var/cache/libvirt, so the host's own libvirt is never touched.
//!
//! Create, start (no hostdevs), read the state, ACPI shutdown, force off,
//! undefine with NVRAM; create with a hostdev group and read the XML back;
//! attach and detach a group (all or nothing on a running guest); a new
//! qcow2 disk in the default storage pool; the errors a user meets (no
//! IOMMU for a hostdev, a taken name, no storage pool, no permission for the
//! socket, a daemon that is down), in English and Spanish.
//!
//! Needs root and libvirtd (package libvirt-daemon-system). Without them the
//! test says so and checks nothing, unless TRASPASO_REQUIRE_LIBVIRTD=1 (set by
//! the project's test command) makes that a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Every VM this test defines has a name with this prefix, so the guard can
/// find any QEMU left behind by a failed assertion.
const PREFIX: &str = "tlv-";

struct Daemon {
    scratch: tempfile::TempDir,
    libvirtd: Child,
    uri: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Guests first (libvirtd does not stop them when it goes), then the
        // daemons.
        for pid in processes_matching(&format!("guest={PREFIX}")) {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
        let _ = self.libvirtd.kill();
        let _ = self.libvirtd.wait();
        let pidfile = self.scratch.path().join("run/virtlogd.pid");
        if let Ok(pid) = std::fs::read_to_string(pidfile) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn processes_matching(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            out.push(pid);
        }
    }
    out
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Daemon {
    fn start() -> Option<Daemon> {
        let required = std::env::var_os("TRASPASO_REQUIRE_LIBVIRTD").is_some();
        let libvirtd = Path::new("/usr/sbin/libvirtd");
        if !traspaso::host::is_root() || !libvirtd.exists() {
            assert!(
                !required,
                "the libvirtd test needs root and libvirtd (package libvirt-daemon-system)"
            );
            eprintln!("skipped: the libvirtd test needs root and libvirtd");
            return None;
        }
        let scratch = tempfile::Builder::new()
            .prefix("traspaso-libvirtd")
            .tempdir()
            .unwrap();
        let dir = scratch.path();
        let mounts = [
            ("etc", "/etc/libvirt"),
            ("run", "/run/libvirt"),
            ("lib", "/var/lib/libvirt"),
            ("log", "/var/log/libvirt"),
            ("cache", "/var/cache/libvirt"),
        ];
        let mut script = String::from("set -e\n");
        for (name, target) in mounts {
            std::fs::create_dir(dir.join(name)).unwrap();
            std::fs::create_dir_all(target).unwrap();
            script.push_str(&format!(
                "mount --bind {} {target}\n",
                dir.join(name).display()
            ));
        }
        // The package's configuration, with guests running as root and no
        // security driver: the scratch files belong to root.
        let status = Command::new("cp")
            .args(["-a", "/etc/libvirt/.", dir.join("etc").to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        let qemu_conf = dir.join("etc/qemu.conf");
        let mut conf = std::fs::read_to_string(&qemu_conf).unwrap_or_default();
        conf.push_str("\nuser = \"root\"\ngroup = \"root\"\nsecurity_driver = \"none\"\n");
        std::fs::write(&qemu_conf, conf).unwrap();
        // Access by the socket's permissions, as on systems without polkit:
        // root and the socket's group (root here) may connect, nobody else.
        let daemon_conf = dir.join("etc/libvirtd.conf");
        let mut conf = std::fs::read_to_string(&daemon_conf).unwrap_or_default();
        conf.push_str(
            "\nunix_sock_group = \"root\"\nunix_sock_rw_perms = \"0770\"\nauth_unix_rw = \"none\"\n",
        );
        std::fs::write(&daemon_conf, conf).unwrap();
        // No networks or other autostarted objects from the host.
        let _ = std::fs::remove_dir_all(dir.join("etc/qemu/networks"));
        script.push_str(
            "/usr/sbin/virtlogd --pid-file /run/libvirt/virtlogd.pid &\n\
             exec /usr/sbin/libvirtd --pid-file /run/libvirt/libvirtd.pid\n",
        );
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare");
        let socket = dir.join("run/libvirt-sock");
        let daemon = Daemon {
            uri: format!("qemu:///system?socket={}", socket.display()),
            libvirtd: child,
            scratch,
        };
        wait_for("libvirtd's socket", Duration::from_secs(20), || {
            socket.exists()
        });
        Some(daemon)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.scratch.path().join(rel)
    }
}

fn ctl_in(lang: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_traspasoctl"))
        .args(args)
        .env("LANGUAGE", lang)
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap()
}

fn vm(d: &Daemon, args: &[&str]) -> Output {
    let mut all = vec!["vm"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--connect", &d.uri]);
    ctl_in("en", &all)
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn state(d: &Daemon, name: &str) -> String {
    let list = json_of(&ctl_in(
        "en",
        &["--json", "vm", "list", "--connect", &d.uri],
    ));
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .map(|v| v["state"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "absent".into())
}

fn hostdevs(d: &Daemon, name: &str) -> serde_json::Value {
    let list = json_of(&ctl_in(
        "en",
        &["--json", "vm", "list", "--connect", &d.uri],
    ));
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .map(|v| v["hostdevs"].clone())
        .unwrap_or_default()
}

#[test]
fn vms_on_a_real_libvirtd() {
    let Some(d) = Daemon::start() else {
        return;
    };
    let desktop = host("ivy-bridge-desktop");
    let root = desktop.path().to_str().unwrap();
    let plain = &format!("{PREFIX}plain");
    let gpu = &format!("{PREFIX}gpu");

    // A plain VM: defined, started, asked to shut down, forced off.
    let out = vm(
        &d,
        &[
            "create", plain, "--type", "qemu", "--memory", "256", "--vcpus", "1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("256 MiB"), "{}", stdout(&out));
    assert_eq!(state(&d, plain), "shut-off");
    // libvirt chose OVMF for firmware='efi' and made the VM its NVRAM.
    let out = vm(&d, &["start", plain]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Started"), "{}", stdout(&out));
    assert_eq!(state(&d, plain), "running");
    let nvram = d.path(&format!("lib/qemu/nvram/{plain}_VARS.fd"));
    assert!(nvram.exists(), "no NVRAM at {}", nvram.display());
    let out = vm(&d, &["start", plain]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));
    // ACPI shutdown is a request: the firmware may or may not act on it.
    let out = vm(&d, &["shutdown", plain]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Asked"), "{}", stdout(&out));
    let out = vm(&d, &["destroy", plain]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(state(&d, plain), "shut-off");

    // Attach a group to the shut-off VM: both functions, in its
    // configuration; again is a no-op; detach takes both away.
    let out = ctl_in(
        "en",
        &[
            "--root",
            root,
            "--json",
            "vm",
            "attach",
            plain,
            "--device",
            "01:00.1",
            "--connect",
            &d.uri,
        ],
    );
    let v = json_of(&out);
    assert_eq!(v["live"], false);
    let pair = serde_json::json!(["0000:01:00.0", "0000:01:00.1"]);
    assert_eq!(hostdevs(&d, plain), pair);
    let attach_again = [
        "--root",
        root,
        "vm",
        "attach",
        plain,
        "--device",
        "01:00.0",
        "--connect",
        &d.uri,
    ];
    assert!(ctl_in("en", &attach_again).status.success());
    assert_eq!(hostdevs(&d, plain), pair);
    let detach = [
        "--root",
        root,
        "vm",
        "detach",
        plain,
        "--device",
        "01:00.0",
        "--connect",
        &d.uri,
    ];
    let out = ctl_in("en", &detach);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Detached from"), "{}", stdout(&out));
    assert_eq!(hostdevs(&d, plain), serde_json::json!([]));
    let out = ctl_in("en", &detach);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not attached"), "{}", stderr(&out));

    // On a running guest the live attach fails here (no IOMMU on this
    // host): a clear message, and the configuration is left as it was.
    assert!(vm(&d, &["start", plain]).status.success());
    let out = ctl_in("en", &attach_again);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(hostdevs(&d, plain), serde_json::json!([]), "half attached");
    assert!(vm(&d, &["destroy", plain]).status.success());

    // Delete: the definition and its NVRAM go.
    let out = vm(&d, &["delete", plain]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(state(&d, plain), "absent");
    assert!(!nvram.exists(), "the NVRAM was left");

    // A VM with the GPU group: the XML libvirt keeps has both functions as
    // managed hostdevs; starting it on a host without an IOMMU says so.
    let out = ctl_in(
        "en",
        &[
            "--root",
            root,
            "vm",
            "create",
            gpu,
            "--type",
            "qemu",
            "--memory",
            "256",
            "--device",
            "01:00.0",
            "--connect",
            &d.uri,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let xml = Command::new("virsh")
        .args(["--connect", &d.uri, "dumpxml", gpu])
        .output()
        .unwrap();
    let domain = traspaso::vm::Domain::from_xml(&stdout(&xml)).unwrap();
    assert_eq!(
        domain
            .pci_hostdevs()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["0000:01:00.0", "0000:01:00.1"]
    );
    assert!(domain
        .devices
        .hostdevs
        .iter()
        .all(|h| h.managed.as_deref() == Some("yes")));
    assert_eq!(domain.os.firmware.as_deref(), Some("efi"));
    let no_iommu = !Path::new("/dev/vfio/vfio").exists();
    for (lang, says) in [
        ("en", "cannot give PCI devices to a virtual machine"),
        ("es", "no puede ceder dispositivos PCI"),
    ] {
        let out = ctl_in(lang, &["vm", "start", gpu, "--connect", &d.uri]);
        if no_iommu {
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            assert!(stderr(&out).contains(says), "{lang}: {}", stderr(&out));
        }
    }
    assert_eq!(state(&d, gpu), "shut-off");

    // A taken name is refused, and the VM is not replaced.
    let out = vm(&d, &["create", gpu, "--type", "qemu"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(
        hostdevs(&d, gpu),
        serde_json::json!(["0000:01:00.0", "0000:01:00.1"])
    );
    assert!(vm(&d, &["delete", gpu]).status.success());

    // A new disk: refused while the host has no default storage pool, then
    // made there as qcow2 once it has one; a taken name makes no disk.
    let with_disk = [
        "create",
        plain.as_str(),
        "--type",
        "qemu",
        "--memory",
        "256",
        "--disk-size",
        "1",
    ];
    let out = vm(&d, &with_disk);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no storage pool “default”"),
        "{}",
        stderr(&out)
    );
    assert_eq!(state(&d, plain), "absent", "no VM without its disk");
    let images = d.path("images");
    std::fs::create_dir(&images).unwrap();
    for args in [
        vec![
            "pool-define-as",
            "default",
            "dir",
            "--target",
            images.to_str().unwrap(),
        ],
        vec!["pool-start", "default"],
    ] {
        let out = Command::new("virsh")
            .args(["--connect", &d.uri])
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let out = vm(&d, &with_disk);
    assert!(out.status.success(), "{}", stderr(&out));
    let image = images.join(format!("{plain}.qcow2"));
    assert!(image.exists(), "no {}", image.display());
    let xml = Command::new("virsh")
        .args(["--connect", &d.uri, "dumpxml", plain])
        .output()
        .unwrap();
    let domain = traspaso::vm::Domain::from_xml(&stdout(&xml)).unwrap();
    let disk = &domain.devices.disks[0];
    assert_eq!(disk.source.as_ref().unwrap().file, image.to_str().unwrap());
    assert_eq!(disk.driver.as_ref().unwrap().format, "qcow2");
    let out = vm(&d, &["create", plain, "--type", "qemu", "--disk-size", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&images).unwrap().count(), 1);
    assert!(vm(&d, &["delete", plain]).status.success());

    // Someone who may not use the daemon's socket: exit 3, and what to do.
    let out = Command::new("setpriv")
        .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_traspasoctl"))
        .args(["vm", "list", "--connect", &d.uri])
        .env("LANGUAGE", "en")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("libvirt group"), "{}", stderr(&out));

    // The daemon gone: a clear error, exit 1.
    let uri = d.uri.clone();
    drop(d);
    let out = ctl_in("en", &["vm", "list", "--connect", &uri]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Is the libvirt daemon installed and running?"),
        "{}",
        stderr(&out)
    );
}
