//! Bad input for every `traspasoctl` command, as one table: each case
//! prepares a host or file, runs the command (killed after 30 s, so a hang
//! fails instead of blocking), and expects an exit code, a sentence on
//! stderr and no panic. Missing, empty and huge files, pipes where files
//! should be, symlink loops and escapes in a captured root, permission
//! denied, non-UTF-8 names and arguments, addresses with path parts,
//! unknown devices, bridges, bad VM names and unreachable libvirt hosts.
//! A broken captured root is bad input (exit 2), like any file the user
//! names; exit 1 is for this computer's own failures.
//! The D-Bus methods have their table in tests/helper.rs.

mod common;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// What a case runs against.
struct Bed {
    /// The sample desktop, to spoil.
    host: tempfile::TempDir,
    /// A scratch directory for files and capture targets.
    scratch: tempfile::TempDir,
}

impl Bed {
    fn new() -> Bed {
        Bed {
            host: host("ivy-bridge-desktop"),
            scratch: tempfile::tempdir().unwrap(),
        }
    }
    fn root(&self) -> &Path {
        self.host.path()
    }
    fn file(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }
    /// The GPU's sysfs directory in the sample.
    fn gpu(&self) -> PathBuf {
        std::fs::canonicalize(self.root().join("sys/bus/pci/devices/0000:01:00.0")).unwrap()
    }
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// Run with a time limit; `None` means it had to be killed.
fn run(args: &[OsString], as_nobody: bool) -> Option<(Option<i32>, String)> {
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_traspasoctl"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_traspasoctl"))
    };
    let mut child = cmd
        .args(args)
        .env("LANG", "C.UTF-8")
        .env("LANGUAGE", "en")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some((status.code(), err));
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Case {
    name: &'static str,
    /// Spoil the bed; return the arguments.
    setup: fn(&Bed) -> Vec<OsString>,
    exit: i32,
    says: &'static str,
    as_nobody: bool,
}

fn args(parts: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_owned()).collect()
}

fn with_root(bed: &Bed, rest: &[&str]) -> Vec<OsString> {
    let mut out = args(&[&"--root", &bed.root()]);
    out.extend(rest.iter().map(OsString::from));
    out
}

const CASES: &[Case] = &[
    // ------------------------------------------------------ roots
    Case {
        name: "a root that does not exist",
        setup: |_| args(&[&"--root", &"/nonexistent/root", &"topology"]),
        exit: 2,
        says: "does not exist",
        as_nobody: false,
    },
    Case {
        name: "a root that is a file",
        setup: |b| {
            std::fs::write(b.file("plain"), "x").unwrap();
            args(&[&"--root", &b.file("plain"), &"topology"])
        },
        exit: 2,
        says: "not a directory",
        as_nobody: false,
    },
    Case {
        name: "an empty root",
        setup: |b| {
            std::fs::create_dir(b.file("empty")).unwrap();
            args(&[&"--root", &b.file("empty"), &"topology"])
        },
        exit: 2,
        says: "No PCI devices found",
        as_nobody: false,
    },
    Case {
        name: "a symlink loop for the PCI bus",
        setup: |b| {
            let bus = b.root().join("sys/bus/pci/devices");
            std::fs::remove_dir_all(&bus).unwrap();
            symlink("devices", &bus).unwrap();
            with_root(b, &["topology"])
        },
        exit: 2,
        says: "symbolic link loop",
        as_nobody: false,
    },
    Case {
        name: "a pipe where a device's uevent should be",
        setup: |b| {
            mkfifo(&b.gpu().join("uevent"));
            with_root(b, &["topology"])
        },
        exit: 2,
        says: "pipe, socket or device",
        as_nobody: false,
    },
    Case {
        name: "a huge uevent",
        setup: |b| {
            std::fs::write(b.gpu().join("uevent"), vec![b'A'; 1 << 20]).unwrap();
            with_root(b, &["topology"])
        },
        exit: 2,
        says: "larger than",
        as_nobody: false,
    },
    Case {
        name: "a device link that climbs out of the root (stays inside)",
        setup: |b| {
            let entry = b.root().join("sys/bus/pci/devices/0000:01:00.0");
            std::fs::remove_file(&entry).unwrap();
            symlink("../../../../../../../../../../etc", &entry).unwrap();
            with_root(b, &["topology"])
        },
        exit: 2,
        says: "0000:01:00.0",
        as_nobody: false,
    },
    Case {
        name: "a non-UTF-8 name on the PCI bus is skipped",
        setup: |b| {
            let name = OsStr::from_bytes(b"0000:0\xff:00.0");
            std::fs::create_dir(b.root().join("sys/bus/pci/devices").join(name)).unwrap();
            with_root(b, &["topology"])
        },
        exit: 0,
        says: "",
        as_nobody: false,
    },
    Case {
        name: "a non-UTF-8 root argument that does not exist",
        setup: |_| args(&[&"--root", &OsStr::from_bytes(b"/tmp/\xff\xfe"), &"topology"]),
        exit: 2,
        says: "does not exist",
        as_nobody: false,
    },
    Case {
        name: "a root nobody may read",
        setup: |b| {
            use std::os::unix::fs::PermissionsExt;
            let dir = b.file("locked");
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            args(&[&"--root", &dir, &"topology"])
        },
        exit: 2,
        says: "Permission denied",
        as_nobody: true,
    },
    Case {
        name: "a names file that does not exist",
        setup: |b| with_root(b, &["--pci-ids", "/nonexistent/pci.ids", "topology"]),
        exit: 2,
        says: "does not exist",
        as_nobody: false,
    },
    Case {
        name: "a names file that is a directory",
        setup: |b| with_root(b, &["--pci-ids", "/", "topology"]),
        exit: 2,
        says: "is a directory",
        as_nobody: false,
    },
    Case {
        name: "the checks on a missing root",
        setup: |_| args(&[&"--root", &"/nonexistent/root", &"check"]),
        exit: 2,
        says: "does not exist",
        as_nobody: false,
    },
    Case {
        name: "a report in an unknown format",
        setup: |b| with_root(b, &["report", "--format", "pdf"]),
        exit: 2,
        says: "pdf",
        as_nobody: false,
    },
    // ------------------------------------------------------ ROM files
    Case {
        name: "a ROM file that does not exist",
        setup: |_| args(&[&"rom", &"/nonexistent.rom"]),
        exit: 2,
        says: "does not exist",
        as_nobody: false,
    },
    Case {
        name: "an empty ROM file",
        setup: |b| {
            std::fs::write(b.file("empty.rom"), b"").unwrap();
            args(&[&"rom", &b.file("empty.rom")])
        },
        exit: 2,
        says: "empty.rom",
        as_nobody: false,
    },
    Case {
        name: "a ROM file over 64 MiB",
        setup: |b| {
            let f = std::fs::File::create(b.file("huge.rom")).unwrap();
            f.set_len((64 << 20) + 1).unwrap();
            args(&[&"rom", &b.file("huge.rom")])
        },
        exit: 2,
        says: "larger than",
        as_nobody: false,
    },
    Case {
        name: "a ROM file that is a directory",
        setup: |b| args(&[&"rom", &b.scratch.path()]),
        exit: 2,
        says: "is a directory",
        as_nobody: false,
    },
    Case {
        name: "a ROM file that is a pipe",
        setup: |b| {
            mkfifo(&b.file("pipe.rom"));
            args(&[&"rom", &b.file("pipe.rom")])
        },
        exit: 2,
        says: "pipe, socket or device",
        as_nobody: false,
    },
    Case {
        name: "a device ROM at an address with path parts",
        setup: |b| with_root(b, &["rom", "--device", "01:00.0/../../x"]),
        exit: 2,
        says: "not a PCI address",
        as_nobody: false,
    },
    Case {
        name: "the ROM of an unknown device",
        setup: |b| with_root(b, &["rom", "--device", "0000:7f:00.0"]),
        exit: 2,
        says: "There is no PCI device 0000:7f:00.0",
        as_nobody: false,
    },
    // ------------------------------------------------------ capture
    Case {
        name: "a capture into a directory that is not empty",
        setup: |b| {
            std::fs::write(b.file("keep"), "mine").unwrap();
            args(&[&"--root", &b.root(), &"capture", &b.scratch.path()])
        },
        exit: 2,
        says: "not empty",
        as_nobody: false,
    },
    Case {
        name: "a capture of a root whose links point outside writes nothing there",
        setup: |b| {
            // The device directory of the GPU is replaced by a link to a
            // directory outside both roots; recapturing must not write into it.
            let outside = b.file("outside");
            std::fs::create_dir(&outside).unwrap();
            let gpu = b.gpu();
            std::fs::remove_dir_all(&gpu).unwrap();
            symlink(&outside, &gpu).unwrap();
            args(&[&"--root", &b.root(), &"capture", &b.file("out")])
        },
        exit: -1,
        says: "",
        as_nobody: false,
    },
    // ------------------------------------------------------ devices
    Case {
        name: "a device address with path parts",
        setup: |b| with_root(b, &["device", "status", "01:00.0/../../etc"]),
        exit: 2,
        says: "not a PCI address",
        as_nobody: false,
    },
    Case {
        name: "an unknown device",
        setup: |b| with_root(b, &["device", "to-guest", "0000:7f:00.0"]),
        exit: 2,
        says: "0000:7f:00.0",
        as_nobody: false,
    },
    Case {
        name: "a bridge",
        setup: |b| with_root(b, &["device", "to-guest", "00:01.0"]),
        exit: 4,
        says: "bridge",
        as_nobody: false,
    },
    Case {
        name: "a move on a captured host",
        setup: |b| with_root(b, &["device", "to-guest", "01:00.0"]),
        exit: 2,
        says: "captured host cannot be changed",
        as_nobody: false,
    },
    Case {
        name: "an unknown device action",
        setup: |b| with_root(b, &["device", "explode", "01:00.0"]),
        exit: 2,
        says: "explode",
        as_nobody: false,
    },
    // ------------------------------------------------------ VMs
    Case {
        name: "a VM name with a space",
        setup: |_| {
            args(&[
                &"vm",
                &"create",
                &"bad name",
                &"--connect",
                &"test:///default",
            ])
        },
        exit: 2,
        says: "not a usable VM name",
        as_nobody: false,
    },
    Case {
        name: "a VM name with a slash",
        setup: |_| {
            args(&[
                &"vm",
                &"create",
                &"../etc",
                &"--connect",
                &"test:///default",
            ])
        },
        exit: 2,
        says: "not a usable VM name",
        as_nobody: false,
    },
    Case {
        name: "a VM with an unknown device",
        setup: |b| {
            with_root(
                b,
                &[
                    "vm",
                    "create",
                    "ws",
                    "--device",
                    "0000:7f:00.0",
                    "--connect",
                    "test:///default",
                ],
            )
        },
        exit: 2,
        says: "There is no PCI device 0000:7f:00.0",
        as_nobody: false,
    },
    Case {
        name: "a VM given a bridge",
        setup: |b| {
            with_root(
                b,
                &[
                    "vm",
                    "create",
                    "ws",
                    "--device",
                    "00:01.0",
                    "--connect",
                    "test:///default",
                ],
            )
        },
        exit: 4,
        says: "bridge",
        as_nobody: false,
    },
    Case {
        name: "a VM with no memory",
        setup: |_| {
            args(&[
                &"vm",
                &"create",
                &"ws",
                &"--memory",
                &"0",
                &"--connect",
                &"test:///default",
            ])
        },
        exit: 2,
        says: "0",
        as_nobody: false,
    },
    Case {
        name: "attach without a device",
        setup: |_| args(&[&"vm", &"attach", &"test", &"--connect", &"test:///default"]),
        exit: 2,
        says: "--device",
        as_nobody: false,
    },
    Case {
        name: "a VM that does not exist",
        setup: |_| args(&[&"vm", &"start", &"nope", &"--connect", &"test:///default"]),
        exit: 2,
        says: "no virtual machine called “nope”",
        as_nobody: false,
    },
    Case {
        name: "a libvirt daemon that is not there",
        setup: |_| {
            args(&[
                &"vm",
                &"list",
                &"--connect",
                &"qemu:///system?socket=/nonexistent/sock",
            ])
        },
        exit: 1,
        says: "Cannot reach libvirt",
        as_nobody: false,
    },
    Case {
        name: "a remote topology from a node file that does not exist",
        setup: |_| args(&[&"topology", &"--connect", &"test:///nonexistent/node.xml"]),
        exit: 1,
        says: "libvirt",
        as_nobody: false,
    },
];

#[test]
fn every_command_refuses_bad_input_clearly() {
    let mut failures = Vec::new();
    for case in CASES {
        if case.as_nobody && !traspaso::host::is_root() {
            eprintln!("skipped (needs root to become nobody): {}", case.name);
            continue;
        }
        let bed = Bed::new();
        let arguments = (case.setup)(&bed);
        let Some((code, err)) = run(&arguments, case.as_nobody) else {
            failures.push(format!("{}: hung (killed after 30 s)", case.name));
            continue;
        };
        if err.contains("panicked") {
            failures.push(format!("{}: panicked: {err}", case.name));
            continue;
        }
        // -1: any clear outcome; what matters is checked below.
        if case.exit >= 0 && code != Some(case.exit) {
            failures.push(format!(
                "{}: exit {code:?}, expected {} ({err})",
                case.name, case.exit
            ));
        } else if !err.contains(case.says) {
            failures.push(format!("{}: expected {:?} in: {err}", case.name, case.says));
        }
        // Nothing was ever written outside the capture.
        let outside = bed.file("outside");
        if outside.exists() {
            let written: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
            if !written.is_empty() {
                failures.push(format!("{}: wrote {written:?} outside", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
