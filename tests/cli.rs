//! Bad input everywhere gives a clear message and a non-zero exit, never a panic.
mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;

/// Run, and check the exit code and that stderr explains without a panic.
fn expect(args: &[&str], code: i32, needle: &str) {
    let out = ctl(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: stderr {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
}

fn root_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn usage_errors_exit_2() {
    expect(&[], 2, "A command is needed");
    expect(&["frobnicate"], 2, "Unknown command frobnicate");
    expect(&["topology", "--bogus"], 2, "Unknown option --bogus");
    expect(&["rom"], 2, "Missing argument");
    expect(
        &["rom", "a.rom", "--device", "01:00.0"],
        2,
        "cannot be used together",
    );
    expect(&["capture"], 2, "Missing argument");
    let help = ctl(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("topology"));
}

#[test]
fn bad_addresses_are_rejected_before_anything_is_read() {
    let root = host("ivy-bridge-desktop");
    let r = root_arg(root.path());
    for bad in [
        "0000:01:00.0/../../../etc",
        "../01:00.0",
        "01:00",
        "0000:01:20.0",
        "0000:01:00.8",
        " 01:00.0",
        "zz:zz.z",
        "",
    ] {
        let out = ctl(&["--root", r, "rom", "--device", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(
            stderr(&out).contains("PCI address"),
            "{bad:?}: {}",
            stderr(&out)
        );
    }
    expect(
        &["--root", r, "rom", "--device", "0000:09:00.0"],
        2,
        "There is no PCI device 0000:09:00.0",
    );
    expect(
        &["--root", r, "rom", "--device", "00:1f.3"],
        1,
        "has no option ROM",
    );
    // The GTX 950's ROM exists but was captured without root.
    expect(
        &["--root", r, "rom", "--device", "01:00.0"],
        2,
        "was not captured",
    );
}

#[test]
fn bad_roots_exit_2() {
    expect(
        &["--root", "/nonexistent/traspaso", "topology"],
        2,
        "does not exist",
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    expect(
        &["--root", file.path().to_str().unwrap(), "topology"],
        2,
        "not a directory",
    );
    let empty = tempfile::tempdir().unwrap();
    expect(
        &["--root", root_arg(empty.path()), "topology"],
        2,
        "No PCI devices found",
    );
}

/// The file the scan reads a function's ids from.
fn uevent_of(root: &Path, address: &str) -> std::path::PathBuf {
    let dev = std::fs::canonicalize(root.join("sys/bus/pci/devices").join(address)).unwrap();
    dev.join("uevent")
}

#[test]
fn damaged_captures_exit_2_naming_the_file() {
    type Damage = fn(&Path);
    let cases: [(&str, Damage, &str); 6] = [
        (
            "empty file",
            |p| std::fs::write(p, "PCI_ID=10de:1402\n").unwrap(),
            "PCI_CLASS is missing",
        ),
        (
            "garbage",
            |p| std::fs::write(p, "PCI_CLASS=30000\nPCI_ID=zz:1\n").unwrap(),
            "expected a hexadecimal number",
        ),
        (
            "out of range",
            |p| std::fs::write(p, "PCI_CLASS=1000000\nPCI_ID=10de:1402\n").unwrap(),
            "expected a hexadecimal number",
        ),
        (
            "huge",
            |p| std::fs::write(p, vec![b'x'; 100_000]).unwrap(),
            "larger than",
        ),
        (
            "directory",
            |p| {
                std::fs::remove_file(p).unwrap();
                std::fs::create_dir(p).unwrap()
            },
            "is a directory",
        ),
        (
            "symlink loop",
            |p| {
                std::fs::remove_file(p).unwrap();
                symlink("uevent", p).unwrap()
            },
            "symbolic link loop",
        ),
    ];
    for (what, damage, needle) in cases {
        let root = host("ivy-bridge-desktop");
        let uevent = uevent_of(root.path(), "0000:01:00.0");
        damage(&uevent);
        let out = ctl(&["--root", root_arg(root.path()), "topology"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(needle), "{what}: {err}");
        assert!(
            err.contains("0000:01:00.0/uevent"),
            "{what}: the path is named: {err}"
        );
    }
    // A capture without uevent: the attributes are read, and checked as strictly.
    let root = host("ivy-bridge-desktop");
    let uevent = uevent_of(root.path(), "0000:01:00.0");
    std::fs::remove_file(&uevent).unwrap();
    std::fs::write(uevent.with_file_name("vendor"), "").unwrap();
    let out = ctl(&["--root", root_arg(root.path()), "topology"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("0000:01:00.0/vendor"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("expected a hexadecimal number"),
        "{}",
        stderr(&out)
    );
    // A broken link where the device should be.
    let root = host("ivy-bridge-desktop");
    let entry = root.path().join("sys/bus/pci/devices/0000:01:00.0");
    std::fs::remove_file(&entry).unwrap();
    symlink("../../../devices/nowhere", &entry).unwrap();
    expect(
        &["--root", root_arg(root.path()), "topology"],
        2,
        "does not exist",
    );
    // A link that points out of the capture is resolved inside it.
    let root = host("ivy-bridge-desktop");
    let cmdline = root.path().join("proc/cmdline");
    std::fs::remove_file(&cmdline).unwrap();
    symlink("/etc/passwd", &cmdline).unwrap();
    let out = ctl(&["--root", root_arg(root.path()), "topology", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn unreadable_files_exit_2() {
    use std::os::unix::fs::PermissionsExt;
    let root = host("ivy-bridge-desktop");
    let uevent = uevent_of(root.path(), "0000:01:00.0");
    std::fs::set_permissions(&uevent, std::fs::Permissions::from_mode(0o000)).unwrap();
    let bin = env!("CARGO_BIN_EXE_traspasoctl");
    let args = ["--root", root_arg(root.path()), "topology"];
    let mut cmd = if traspaso::host::is_root() {
        // root reads anything: run as nobody, through directories nobody may enter.
        let mut dir = root.path();
        while let Some(parent) = dir.parent().filter(|p| *p != Path::new("/")) {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            dir = parent;
        }
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        std::process::Command::new(bin)
    };
    let out = cmd
        .args(args)
        .env("LANGUAGE", "en")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(err.contains("0000:01:00.0/uevent"), "{err}");
}

#[test]
fn bad_rom_files_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    std::fs::write(path("empty.rom"), b"").unwrap();
    std::fs::write(path("text.rom"), b"this is not a rom at all").unwrap();
    let real = std::fs::read("/usr/lib/ipxe/qemu/efi-e1000e.rom").unwrap();
    std::fs::write(path("cut.rom"), &real[..5000]).unwrap();
    let huge = std::fs::File::create(path("huge.rom")).unwrap();
    huge.set_len(64 << 20).unwrap();
    expect(&["rom", &path("missing.rom")], 2, "does not exist");
    expect(&["rom", &path("empty.rom")], 2, "The ROM is empty");
    expect(&["rom", &path("text.rom")], 2, "not a PCI option ROM");
    expect(&["rom", &path("cut.rom")], 2, "truncated");
    expect(&["rom", &path("huge.rom")], 2, "larger than");
    expect(&["rom", dir.path().to_str().unwrap()], 2, "is a directory");
}

#[test]
fn a_missing_names_file_is_bad_input() {
    let root = host("ivy-bridge-desktop");
    expect(
        &[
            "--root",
            root_arg(root.path()),
            "--pci-ids",
            "/nonexistent/pci.ids",
            "topology",
        ],
        2,
        "does not exist",
    );
}

#[test]
fn capture_of_a_capture_replays_the_same_topology() {
    let root = host("amd-chipset-shared");
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("copy");
    let out = ctl(&[
        "--root",
        root_arg(root.path()),
        "capture",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Captured 18 devices and 5 groups"),
        "{}",
        stdout(&out)
    );
    let a = topology_json(root.path());
    let b = topology_json(&dest);
    assert_eq!(a["groups"], b["groups"]);
    assert_eq!(a["devices"], b["devices"]);
    assert_eq!(a["findings"], b["findings"]);
    // Links stay links.
    let link = dest.join("sys/bus/pci/devices/0000:06:00.0");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(dest.join("traspaso-capture.json").exists());
    // A second capture into the same directory is refused, and nothing is changed.
    expect(
        &[
            "--root",
            root_arg(root.path()),
            "capture",
            dest.to_str().unwrap(),
        ],
        2,
        "not empty",
    );
}

#[test]
fn errors_in_json_mode_are_json_too() {
    let out = ctl(&["--root", "/nonexistent/traspaso", "topology", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["exit_code"], 2);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
}

#[test]
fn spanish_follows_the_language() {
    let root = host("ivy-bridge-desktop");
    let out = ctl_lang(&["--root", root_arg(root.path()), "topology"], Some("es"));
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.contains("IOMMU: activada · 10 grupos · 17 dispositivos"),
        "{text}"
    );
    assert!(text.contains("Grupo 7"), "{text}");
    // Codes stay as they are, in every language.
    assert!(text.contains("[shared-group]"), "{text}");
    let out = ctl_lang(&["rom", "--device", "01:00"], Some("es"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no es una dirección PCI"),
        "{}",
        stderr(&out)
    );
    let out = ctl_lang(&["--bogus"], Some("es"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Opción desconocida: --bogus"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn control_characters_from_names_never_reach_the_terminal() {
    // A names database (as a capture or a remote host could carry) with an
    // escape sequence in a device name.
    let root = host("ivy-bridge-desktop");
    let ids = root.path().join("evil.ids");
    std::fs::write(
        &ids,
        "10de  NVIDIA Corporation\n\t1402  GTX\x1b[2J\x1b]0;pwned\x07 950\n",
    )
    .unwrap();
    let out = ctl(&[
        "--root",
        root_arg(root.path()),
        "--pci-ids",
        ids.to_str().unwrap(),
        "topology",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(text.contains("GTX\u{FFFD}[2J"), "{text}");
}
