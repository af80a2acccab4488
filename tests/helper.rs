//! The helper on a private system bus with a real polkitd (TESTBED.md): an
//! unprivileged caller is denied without a grant and nothing is written,
//! allowed with a rules-file grant, root is allowed, malformed addresses are
//! InvalidArgs, reads need no grant, and without polkit every call fails
//! closed. The helper serves a described host (`--root`), so an authorised
//! move ends at "a captured host cannot be changed": proof that it got past
//! polkit and the safety checks, without touching this machine.
//!
//! Needs root (polkitd, mount namespaces, a second user); as another user the
//! test says so and passes without checking anything.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const USER: &str = "traspaso-test";

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn bus_has(address: &str, name: &str) -> bool {
    Command::new("busctl")
        .args(["--address", address, "status", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The system bus's own configuration, listening in `dir`, running as root,
/// reading the project's policy from `conf_d`.
fn bus_config(dir: &Path, conf_d: &Path) -> String {
    let mut text = std::fs::read_to_string("/usr/share/dbus-1/system.conf").unwrap();
    for (start, end) in [
        ("<user>", "</user>"),
        ("<servicehelper>", "</servicehelper>"),
        ("<pidfile>", "</pidfile>"),
        ("<listen>", "</listen>"),
    ] {
        if let (Some(a), Some(b)) = (text.find(start), text.find(end)) {
            text.replace_range(a..b + end.len(), "");
        }
    }
    for tag in ["<fork/>", "<standard_system_servicedirs/>", "<syslog/>"] {
        text = text.replace(tag, "");
    }
    text.replace(
        "</busconfig>",
        &format!(
            "<listen>unix:path={}/bus</listen>\n<pidfile>{}/bus.pid</pidfile>\n\
             <includedir>/usr/share/dbus-1/system.d</includedir>\n\
             <includedir>{}</includedir>\n</busconfig>",
            dir.display(),
            dir.display(),
            conf_d.display()
        ),
    )
}

fn ensure_user() {
    let exists = Command::new("id")
        .arg(USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if !exists {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .status()
            .expect("useradd");
        assert!(status.success());
    }
}

/// traspasoctl as the unprivileged test user, on the private bus.
fn ctl_as_user(bus: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid", USER, "--regid", USER, "--init-groups"])
        .arg(env!("CARGO_BIN_EXE_traspasoctl"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .env("LANGUAGE", "en")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap()
}

/// A method call with busctl, as root or as the test user.
fn busctl(bus: &str, as_user: bool, method: &str, address: &str) -> Output {
    let mut cmd = if as_user {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", USER, "--regid", USER, "--init-groups", "busctl"]);
        c
    } else {
        Command::new("busctl")
    };
    cmd.args([
        "--address",
        bus,
        "call",
        "io.github.traspaso.Helper1",
        "/io/github/traspaso/Helper1",
        "io.github.traspaso.Helper1",
        method,
        "s",
        address,
    ])
    .output()
    .unwrap()
}

fn tree_snapshot(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.push((
                    path.clone(),
                    format!("-> {}", std::fs::read_link(&path).unwrap().display()),
                ));
            } else if meta.is_dir() {
                stack.push(path);
            } else {
                out.push((
                    path.clone(),
                    std::fs::read_to_string(&path).unwrap_or_default(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// A private system bus with polkitd and the helper serving a described
/// host; everything is stopped when it drops.
struct Bed {
    bus: String,
    rules: PathBuf,
    host: tempfile::TempDir,
    children: Killed,
    _scratch: tempfile::TempDir,
}

impl Bed {
    /// `None` when this is not root (the test then checks nothing).
    fn start(helper_env: &[(&str, &str)]) -> Option<Bed> {
        if !traspaso::host::is_root() {
            eprintln!("skipped: the D-Bus/polkit test needs root");
            return None;
        }
        ensure_user();
        let scratch = tempfile::Builder::new()
            .prefix("traspaso-bus")
            .tempdir()
            .unwrap();
        let dir = scratch.path();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();

        // The bus, with the project's policy.
        let conf_d = dir.join("conf.d");
        std::fs::create_dir(&conf_d).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(
            repo.join("data/io.github.traspaso.Helper1.conf"),
            conf_d.join("io.github.traspaso.Helper1.conf"),
        )
        .unwrap();
        std::fs::write(dir.join("system.conf"), bus_config(dir, &conf_d)).unwrap();
        let mut daemon = Command::new("dbus-daemon")
            .arg(format!(
                "--config-file={}",
                dir.join("system.conf").display()
            ))
            .args(["--nofork", "--print-address"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (package dbus-daemon)");
        let mut line = String::new();
        BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let bus = line.trim().to_owned();
        assert!(bus.starts_with("unix:"), "dbus-daemon printed {line:?}");
        let mut children = Killed(vec![daemon]);

        // polkitd with the system's actions plus ours and a scratch rules.d,
        // bind-mounted in a private mount namespace.
        let actions = dir.join("actions");
        let rules = dir.join("rules.d");
        std::fs::create_dir(&actions).unwrap();
        std::fs::create_dir(&rules).unwrap();
        for entry in std::fs::read_dir("/usr/share/polkit-1/actions").unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), actions.join(entry.file_name())).unwrap();
        }
        std::fs::copy(
            repo.join("data/io.github.traspaso.policy.in"),
            actions.join("io.github.traspaso.policy"),
        )
        .unwrap();
        for d in [&actions, &rules] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let polkitd = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /usr/share/polkit-1/actions && mount --bind {} /etc/polkit-1/rules.d && exec /usr/lib/polkit-1/polkitd --no-debug",
                actions.display(),
                rules.display()
            ))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("polkitd (package polkitd)");
        children.0.push(polkitd);
        wait_for("polkitd", Duration::from_secs(10), || {
            bus_has(&bus, "org.freedesktop.PolicyKit1")
        });

        // The helper, serving the article's desktop as a described host.
        let host = host("ivy-bridge-desktop");
        let helper = Command::new(env!("CARGO_BIN_EXE_traspaso-helper"))
            .arg("--root")
            .arg(host.path())
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus)
            .env("LANGUAGE", "en")
            .envs(helper_env.iter().copied())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        children.0.push(helper);
        wait_for("the helper", Duration::from_secs(10), || {
            bus_has(&bus, "io.github.traspaso.Helper1")
        });
        Some(Bed {
            bus,
            rules,
            host,
            children,
            _scratch: scratch,
        })
    }
}

#[test]
fn the_helper_asks_polkit_and_fails_closed() {
    let Some(mut bed) = Bed::start(&[]) else {
        return;
    };
    let (bus, rules) = (bed.bus.clone(), bed.rules.clone());
    let host = &bed.host;
    let before = tree_snapshot(host.path());

    // Reading the state needs no authorisation.
    let out = busctl(&bus, true, "GetDeviceState", "0000:01:00.0");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("nouveau"), "{}", stdout(&out));

    // Denied without a grant: exit 3 from traspasoctl, AccessDenied on the bus.
    let out = ctl_as_user(&bus, &["device", "to-guest", "01:00.0"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("Not authorised"), "{}", stderr(&out));
    let out = busctl(&bus, true, "ReadRom", "0000:01:00.0");
    assert!(!out.status.success());
    // busctl words AccessDenied as strerror(EACCES).
    assert!(stderr(&out).contains("Access denied"), "{}", stderr(&out));
    assert_eq!(
        tree_snapshot(host.path()),
        before,
        "a denied call wrote something"
    );

    // Malformed addresses never reach polkit.
    for bad in ["01:00.0/../../x", "", "zz:00.0", "0000:01:00.0\n"] {
        let out = busctl(&bus, true, "AssignToGuest", bad);
        assert!(!out.status.success(), "{bad:?} accepted");
        assert!(
            stderr(&out).contains("PCI address"),
            "{bad:?}: {}",
            stderr(&out)
        );
    }
    let out = ctl_as_user(&bus, &["device", "to-guest", "0000:01:00.7"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "denied before the device is looked up: {}",
        stderr(&out)
    );

    // Root is allowed (polkit always allows uid 0): past polkit and the checks.
    let out = busctl(&bus, false, "AssignToGuest", "0000:01:00.0");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("captured host cannot be changed"),
        "{}",
        stderr(&out)
    );

    // A rules-file grant for the test user, picked up live.
    std::fs::write(
        rules.join("50-traspaso-test.rules"),
        format!(
            "polkit.addRule(function(action, subject) {{\n  if ((action.id == \"io.github.traspaso.assign-device\" || action.id == \"io.github.traspaso.read-rom\") && subject.user == \"{USER}\") return polkit.Result.YES;\n}});\n"
        ),
    )
    .unwrap();
    let mut last = String::new();
    wait_for("the grant", Duration::from_secs(10), || {
        let out = ctl_as_user(&bus, &["device", "to-guest", "01:00.0"]);
        last = stderr(&out);
        out.status.code() == Some(1) && last.contains("captured host cannot be changed")
    });
    // Refusals still apply to an authorised caller: the bridge, exit 4.
    let out = ctl_as_user(&bus, &["device", "to-guest", "00:01.0"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("bridge"), "{}", stderr(&out));
    assert_eq!(
        tree_snapshot(host.path()),
        before,
        "the described host changed"
    );

    // Without polkit every guarded call fails closed, even for root.
    let polkitd = &mut bed.children.0[1];
    let _ = polkitd.kill();
    let _ = polkitd.wait();
    wait_for("polkitd to go", Duration::from_secs(10), || {
        !bus_has(&bus, "org.freedesktop.PolicyKit1")
    });
    let out = busctl(&bus, false, "AssignToGuest", "0000:01:00.0");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Access denied"), "{}", stderr(&out));
    let out = ctl_as_user(&bus, &["device", "to-guest", "01:00.0"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

/// Three callers at once: the helper lets one move run at a time and the
/// others wait their turn. The helper is built with the fault-injection seam
/// that holds each turn and writes "begin"/"end" around it, so overlapping
/// moves would show as two "begin" lines in a row.
#[cfg(feature = "fault-injection")]
#[test]
fn concurrent_callers_are_serialised() {
    let trace_dir = tempfile::tempdir().unwrap();
    let trace = trace_dir.path().join("turns");
    let trace_text = trace.to_str().unwrap().to_owned();
    let Some(bed) = Bed::start(&[
        ("TRASPASO_MOVE_TRACE", &trace_text),
        ("TRASPASO_HOLD_MOVE_MS", "300"),
    ]) else {
        return;
    };
    let callers: Vec<_> = ["0000:01:00.0", "0000:00:19.0", "0000:01:00.1"]
        .into_iter()
        .map(|address| {
            let bus = bed.bus.clone();
            std::thread::spawn(move || busctl(&bus, false, "AssignToGuest", address))
        })
        .collect();
    for caller in callers {
        let out = caller.join().unwrap();
        // Each one waited, then got past polkit and the checks.
        assert!(
            stderr(&out).contains("captured host cannot be changed"),
            "{}",
            stderr(&out)
        );
    }
    let text = std::fs::read_to_string(&trace).unwrap();
    let events: Vec<&str> = text.lines().collect();
    assert_eq!(events.len(), 6, "{text}");
    for pair in events.chunks(2) {
        let (begin, end) = (pair[0], pair[1]);
        assert!(begin.starts_with("begin "), "moves overlapped:\n{text}");
        assert_eq!(
            end.strip_prefix("end "),
            begin.strip_prefix("begin "),
            "moves overlapped:\n{text}"
        );
    }
}

/// Call a helper method; "ok", or the D-Bus error's name and message.
fn call<B>(connection: &zbus::blocking::Connection, method: &str, body: &B) -> String
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    match connection.call_method(
        Some("io.github.traspaso.Helper1"),
        "/io/github/traspaso/Helper1",
        Some("io.github.traspaso.Helper1"),
        method,
        body,
    ) {
        Ok(_) => "ok".to_owned(),
        Err(zbus::Error::MethodError(name, detail, _)) => {
            format!("{} {}", name.as_str(), detail.unwrap_or_default())
        }
        Err(other) => format!("other {other}"),
    }
}

/// Every method with bad arguments, as root (so polkit says yes and only
/// the helper's own checks answer): the D-Bus error each one gets.
#[test]
fn every_method_refuses_bad_arguments() {
    let Some(bed) = Bed::start(&[]) else {
        return;
    };
    let connection = zbus::blocking::connection::Builder::address(bed.bus.as_str())
        .unwrap()
        .build()
        .unwrap();
    let invalid = "org.freedesktop.DBus.Error.InvalidArgs";
    let huge = "0".repeat(64 * 1024);
    let methods = ["GetDeviceState", "AssignToGuest", "ReturnToHost", "ReadRom"];
    // (argument, the error every method gives, a word of its message)
    let table: [(&str, &str, &str); 6] = [
        ("", invalid, "PCI address"),
        ("01:00.0/../../etc", invalid, "PCI address"),
        ("0000:01:00.0\n", invalid, "PCI address"),
        ("0000:01:00.8", invalid, "PCI address"),
        (&huge, invalid, "PCI address"),
        ("0000:7f:00.0", invalid, "0000:7f:00.0"),
    ];
    let mut failures = Vec::new();
    for method in methods {
        for (arg, error, says) in &table {
            let got = call(&connection, method, &(*arg,));
            if !got.starts_with(error) || !got.contains(says) {
                let shown: String = arg.chars().take(24).collect();
                failures.push(format!("{method}({shown:?}): {got}"));
            }
        }
        // A number where the address goes: zbus refuses the signature before
        // the method runs, with its own error name.
        let got = call(&connection, method, &(7u32,));
        if !got.starts_with("org.freedesktop.zbus.Error Signature mismatch") {
            failures.push(format!("{method}(7u32): {got}"));
        }
    }
    // What the described host's devices get: a bridge is refused, a good
    // group passes the checks and stops at the capture.
    for (method, arg, error) in [
        (
            "AssignToGuest",
            "0000:00:01.0",
            "io.github.traspaso.Helper1.Error.Refused",
        ),
        (
            "AssignToGuest",
            "0000:01:00.0",
            "org.freedesktop.DBus.Error.Failed",
        ),
        (
            "ReturnToHost",
            "0000:01:00.0",
            "org.freedesktop.DBus.Error.Failed",
        ),
        ("GetDeviceState", "0000:01:00.0", "ok"),
    ] {
        let got = call(&connection, method, &(arg,));
        if !got.starts_with(error) {
            failures.push(format!("{method}({arg}): {got}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
