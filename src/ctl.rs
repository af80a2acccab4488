//! `traspasoctl`: the command line over the library. Human output is a
//! translated, readable tree; `--json` gives the contracts of DESIGN.md.
//!
//! Exit codes: 0 done · 1 operation failed · 2 bad usage or bad input ·
//! 3 not authorised · 4 refused as unsafe.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ArgMatches, Command};
use serde::Serialize;

use crate::assign::{Direction, MoveError, Mover};
use crate::capture::{self, CaptureOptions};
use crate::dbus::CallError;
use crate::host::{is_root, HostRoot};
use crate::i18n::{gettext, gettext_f, ngettext_f};
use crate::pci::PciAddress;
use crate::readiness::{self, HostFacts, Readiness};
use crate::report;
use crate::rom::{self, Rom};
use crate::topology::{Finding, PciDevice, ScanError, ScanOptions, Severity, Topology};
use crate::vm::{self, LibvirtError, VmError, VmSpec};

/// Exit codes of `traspasoctl` (DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Done = 0,
    Failed = 1,
    BadInput = 2,
    NotAuthorised = 3,
    Refused = 4,
}

/// An error on its way to the user: a translated sentence and an exit code.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    fn new(exit: Exit, message: impl Into<String>) -> Self {
        CliError {
            exit,
            message: message.into(),
        }
    }
}

type CliResult = Result<(), CliError>;

struct Globals {
    root: PathBuf,
    pci_ids: Option<PathBuf>,
    json: bool,
}

/// `-h`/`--help`, described in the user's language.
pub fn help_arg() -> Arg {
    Arg::new("help")
        .short('h')
        .long("help")
        .action(ArgAction::Help)
        .help(gettext("Show this help"))
}

/// Replace clap's English `-h` and `-V` with translated ones (all three programs).
pub fn with_help_and_version(command: Command) -> Command {
    command
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(help_arg())
        .arg(
            Arg::new("version")
                .short('V')
                .long("version")
                .action(ArgAction::Version)
                .help(gettext("Show the version")),
        )
}

fn command() -> Command {
    let template = format!(
        "{{about}}\n\n{}: {{usage}}\n\n{}:\n{{subcommands}}\n\n{}:\n{{options}}\n\n{{after-help}}\n",
        gettext("Usage"),
        gettext("Commands"),
        gettext("Options")
    );
    let sub_template = format!(
        "{{about}}\n\n{}: {{usage}}\n\n{}:\n{{all-args}}\n",
        gettext("Usage"),
        gettext("Arguments and options")
    );
    let sub = |name: &'static str, about: String| {
        Command::new(name)
            .about(about)
            .help_template(sub_template.clone())
            .disable_help_flag(true)
            .arg(help_arg())
    };
    let command = Command::new("traspasoctl")
        .about(gettext("Traspaso from the command line: IOMMU groups, option ROMs, host captures."))
        .version(crate::config::VERSION)
        .override_usage(format!(
            "traspasoctl [{}] <{}>",
            gettext("OPTIONS"),
            gettext("COMMAND")
        ))
        .help_template(template)
        .disable_help_subcommand(true)
        .subcommand_required(true)
        .after_help(gettext("Exit codes: 0 done, 1 operation failed, 2 bad usage or bad input, 3 not authorised, 4 refused as unsafe."));
    with_help_and_version(command)
        .arg(
            Arg::new("root")
                .long("root")
                .global(true)
                .value_name(gettext("DIR"))
                .value_parser(clap::value_parser!(PathBuf))
                .help(gettext("Read the host from DIR instead of / (a capture)")),
        )
        .arg(
            Arg::new("pci-ids")
                .long("pci-ids")
                .global(true)
                .value_name(gettext("FILE"))
                .value_parser(clap::value_parser!(PathBuf))
                .help(gettext("Take device names from this pci.ids file")),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .global(true)
                .action(ArgAction::SetTrue)
                .help(gettext("Print JSON for scripts")),
        )
        .subcommand(
            sub("topology", gettext("Show PCI devices by IOMMU group, with findings"))
                .arg(
                    Arg::new("read-roms")
                        .long("read-roms")
                        .action(ArgAction::SetTrue)
                        .help(gettext("Read the option ROMs of graphics devices (needs root)")),
                )
                .arg(
                    Arg::new("connect")
                        .long("connect")
                        .value_name(gettext("URI"))
                        .conflicts_with("read-roms")
                        .help(gettext("The devices of this libvirt host (such as qemu+ssh://host/system), from its node devices")),
                ),
        )
        .subcommand(
            sub("rom", gettext("Inspect an option ROM: from a file or from a device"))
                .arg(
                    Arg::new("file")
                        .value_name(gettext("FILE"))
                        .value_parser(clap::value_parser!(PathBuf))
                        .required_unless_present("device")
                        .conflicts_with("device")
                        .help(gettext("A ROM file")),
                )
                .arg(
                    Arg::new("device")
                        .long("device")
                        .value_name(gettext("ADDRESS"))
                        .help(gettext("Read the ROM of this PCI function (needs root)")),
                ),
        )
        .subcommand(
            sub("device", gettext("A device's IOMMU group: its state, or move it to a VM and back"))
                .arg(
                    Arg::new("action")
                        .value_name(gettext("ACTION"))
                        .value_parser(["status", "to-guest", "to-host"])
                        .required(true)
                        .help(gettext("status, to-guest (to vfio-pci) or to-host (back to its drivers)")),
                )
                .arg(
                    Arg::new("address")
                        .value_name(gettext("ADDRESS"))
                        .required(true)
                        .help(gettext("A PCI address such as 01:00.0 or 0000:01:00.0")),
                )
                .arg(
                    Arg::new("force")
                        .long("force")
                        .action(ArgAction::SetTrue)
                        .help(gettext("Move a GPU even while programs use it (never overrides other refusals)")),
                ),
        )
        .subcommand(
            sub("vm", gettext("Virtual machines through libvirt: list, create, start, stop, delete, attach and detach groups"))
                .arg(
                    Arg::new("action")
                        .value_name(gettext("ACTION"))
                        .value_parser([
                            "list", "create", "start", "shutdown", "destroy", "delete", "attach", "detach",
                        ])
                        .required(true)
                        .help(gettext("list, create, start, shutdown (ACPI), destroy (force off), delete (with its NVRAM), attach or detach (a group, with --device)")),
                )
                .arg(
                    Arg::new("name")
                        .value_name(gettext("NAME"))
                        .required_if_eq_any([
                            ("action", "create"),
                            ("action", "start"),
                            ("action", "shutdown"),
                            ("action", "destroy"),
                            ("action", "delete"),
                            ("action", "attach"),
                            ("action", "detach"),
                        ])
                        .help(gettext("The virtual machine")),
                )
                .arg(
                    Arg::new("connect")
                        .long("connect")
                        .value_name(gettext("URI"))
                        .help(gettext("The libvirt connection (default qemu:///system)")),
                )
                .arg(
                    Arg::new("memory")
                        .long("memory")
                        .value_name(gettext("MiB"))
                        .value_parser(clap::value_parser!(u64).range(128..))
                        .default_value("8192")
                        .help(gettext("Memory for a new VM, in MiB")),
                )
                .arg(
                    Arg::new("vcpus")
                        .long("vcpus")
                        .value_name(gettext("N"))
                        .value_parser(clap::value_parser!(u32).range(1..=1024))
                        .default_value("4")
                        .help(gettext("Virtual processors for a new VM")),
                )
                .arg(
                    Arg::new("device")
                        .long("device")
                        .value_name(gettext("ADDRESS"))
                        .action(ArgAction::Append)
                        .help(gettext("This device's whole IOMMU group: for a new VM, or to attach or detach (repeatable)")),
                )
                .arg(
                    Arg::new("disk")
                        .long("disk")
                        .value_name(gettext("PATH"))
                        .value_parser(clap::value_parser!(PathBuf))
                        .help(gettext("A disk image for the new VM")),
                )
                .arg(
                    Arg::new("disk-size")
                        .long("disk-size")
                        .value_name(gettext("GiB"))
                        .value_parser(clap::value_parser!(u64).range(1..=65536))
                        .conflicts_with("disk")
                        .help(gettext("A new qcow2 disk of this size for the new VM, in libvirt's default storage pool")),
                )
                .arg(
                    Arg::new("iso")
                        .long("iso")
                        .value_name(gettext("PATH"))
                        .value_parser(clap::value_parser!(PathBuf))
                        .help(gettext("An installer ISO for the new VM")),
                )
                .arg(
                    Arg::new("secure-boot")
                        .long("secure-boot")
                        .action(ArgAction::SetTrue)
                        .help(gettext("Turn Secure Boot on in the VM's firmware")),
                )
                .arg(
                    Arg::new("type")
                        .long("type")
                        .value_parser(["kvm", "qemu"])
                        .default_value("kvm")
                        .help(gettext("kvm, or qemu where KVM is missing (slow, for tests)")),
                ),
        )
        .subcommand(sub(
            "check",
            gettext("Check whether this computer can give a GPU to a virtual machine"),
        ))
        .subcommand(
            sub("report", gettext("A compatibility report to share: hardware, groups, checks"))
                .arg(
                    Arg::new("format")
                        .long("format")
                        .value_name(gettext("FORMAT"))
                        .value_parser(["markdown", "json"])
                        .default_value("markdown")
                        .help(gettext("markdown (default) or json")),
                ),
        )
        .subcommand(
            sub("capture", gettext("Copy what Traspaso reads from this host into a directory"))
                .arg(
                    Arg::new("dir")
                        .value_name(gettext("DIR"))
                        .value_parser(clap::value_parser!(PathBuf))
                        .required(true)
                        .help(gettext("A new or empty directory")),
                )
                .arg(
                    Arg::new("no-roms")
                        .long("no-roms")
                        .action(ArgAction::SetTrue)
                        .help(gettext("Do not read option ROMs")),
                ),
        )
}

fn context(err: &clap::Error, kind: ContextKind) -> String {
    match err.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(", "),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// A clap error in the user's language.
pub(crate) fn usage_message(err: &clap::Error) -> String {
    let arg = context(err, ContextKind::InvalidArg);
    match err.kind() {
        ErrorKind::UnknownArgument => gettext_f("Unknown option {arg}", &[("arg", &arg)]),
        ErrorKind::InvalidSubcommand => gettext_f(
            "Unknown command {command}",
            &[("command", &context(err, ContextKind::InvalidSubcommand))],
        ),
        ErrorKind::MissingRequiredArgument => {
            gettext_f("Missing argument: {arg}", &[("arg", &arg)])
        }
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            gettext("A command is needed")
        }
        ErrorKind::ArgumentConflict => gettext_f(
            "{arg} cannot be used together with {other}",
            &[
                ("arg", &arg),
                ("other", &context(err, ContextKind::PriorArg)),
            ],
        ),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8 => gettext_f(
            "Invalid value {value} for {arg}",
            &[
                ("value", &context(err, ContextKind::InvalidValue)),
                ("arg", &arg),
            ],
        ),
        ErrorKind::TooManyValues | ErrorKind::WrongNumberOfValues | ErrorKind::TooFewValues => {
            gettext_f("Wrong number of values for {arg}", &[("arg", &arg)])
        }
        ErrorKind::NoEquals => gettext_f("{arg} needs a value", &[("arg", &arg)]),
        _ => gettext("Invalid command line"),
    }
}

/// Run `traspasoctl` with these arguments; returns the process exit code.
pub fn run<I: IntoIterator<Item = OsString>>(args: I) -> ExitCode {
    let matches = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(err) => {
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) {
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            eprintln!("traspasoctl: {}", usage_message(&err));
            eprintln!(
                "{}",
                gettext("Try “traspasoctl --help” for more information.")
            );
            return ExitCode::from(Exit::BadInput as u8);
        }
    };
    let (name, sub) = matches.subcommand().expect("a subcommand is required");
    let globals = Globals {
        root: sub
            .get_one::<PathBuf>("root")
            .cloned()
            .unwrap_or_else(|| PathBuf::from("/")),
        pci_ids: sub.get_one::<PathBuf>("pci-ids").cloned(),
        json: sub.get_flag("json"),
    };
    let result = match name {
        "topology" => topology(&globals, sub),
        "rom" => rom_command(&globals, sub),
        "capture" => capture_command(&globals, sub),
        "check" => check_command(&globals),
        "device" => device_command(&globals, sub),
        "vm" => vm_command(&globals, sub),
        "report" => report_command(&globals, sub),
        _ => Err(CliError::new(Exit::BadInput, gettext("Unknown command"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("traspasoctl: {}", printable(&err.message));
            if globals.json {
                let body = serde_json::json!({
                    "error": { "message": err.message, "exit_code": err.exit as u8 }
                });
                print_out(&body.to_string());
            }
            ExitCode::from(err.exit as u8)
        }
    }
}

/// Print to stdout; a closed pipe (`| head`) is not an error worth a panic.
/// Text for a terminal: names come from pci.ids, captures and remote
/// libvirt hosts, so control characters (an escape sequence could rewrite
/// the screen) are shown as U+FFFD. Newlines and tabs stay.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", printable(text));
}

fn print_json<T: Serialize>(value: &T) -> CliResult {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(Exit::Failed, e.to_string()))?;
    print_out(&text);
    Ok(())
}

fn open_root(globals: &Globals) -> Result<HostRoot, CliError> {
    HostRoot::open(&globals.root).map_err(|e| {
        CliError::new(
            Exit::BadInput,
            gettext_f(
                "Cannot use {root} as the host root: {reason}",
                &[
                    ("root", &globals.root.display().to_string()),
                    ("reason", &e.to_string()),
                ],
            ),
        )
    })
}

/// Failures reading a live host are operation failures; a bad capture is bad input.
fn read_failure(host: &HostRoot, message: String) -> CliError {
    CliError::new(
        if host.is_live() {
            Exit::Failed
        } else {
            Exit::BadInput
        },
        message,
    )
}

fn load_topology(globals: &Globals, read_roms: bool) -> Result<(HostRoot, Topology), CliError> {
    let host = open_root(globals)?;
    if read_roms && host.is_live() && !is_root() {
        return Err(CliError::new(
            Exit::NotAuthorised,
            gettext("Reading option ROMs needs root: run this command with sudo."),
        ));
    }
    let topology = Topology::load(&host, globals.pci_ids.as_deref(), ScanOptions { read_roms })
        .map_err(|e| match e {
            // A names file the user named and that cannot be read is bad input.
            ScanError::Names(_) => CliError::new(Exit::BadInput, e.to_string()),
            _ => read_failure(&host, e.to_string()),
        })?;
    Ok((host, topology))
}

fn topology(globals: &Globals, args: &ArgMatches) -> CliResult {
    let topology = match args.get_one::<String>("connect") {
        Some(uri) => vm::Libvirt::connect(Some(uri))
            .and_then(|lv| lv.topology(globals.pci_ids.as_deref()))
            .map_err(libvirt_error)?,
        None => load_topology(globals, args.get_flag("read-roms"))?.1,
    };
    if globals.json {
        return print_json(&topology);
    }
    print_out(&render_topology(&topology));
    Ok(())
}

fn move_error(e: MoveError) -> CliError {
    let exit = match &e {
        MoveError::Refused(_) | MoveError::IommuOff | MoveError::NoGroup(_) => Exit::Refused,
        MoveError::UnknownDevice(_) => Exit::BadInput,
        MoveError::NotRoot => Exit::NotAuthorised,
        MoveError::Captured => Exit::BadInput,
        MoveError::Busy
        | MoveError::Host(_)
        | MoveError::Failed { .. }
        | MoveError::BadJournal(_)
        | MoveError::Scan(_) => Exit::Failed,
    };
    CliError::new(exit, e.to_string())
}

/// The test seams of `assign`, only in builds made for fault injection.
#[cfg(feature = "fault-injection")]
fn seams(mover: &mut Mover) {
    let number = |name: &str| std::env::var(name).ok();
    mover.fail_at = number("TRASPASO_FAIL_AT_WRITE").and_then(|v| v.parse().ok());
    mover.pause_mark = std::env::var_os("TRASPASO_PAUSE_MARK").map(std::path::PathBuf::from);
    mover.fail_step = number("TRASPASO_FAIL_STEP").and_then(|v| {
        let (step, n) = v.split_once(':')?;
        let step = crate::assign::Step::ALL
            .into_iter()
            .find(|s| s.id() == step)?;
        Some((step, n.parse().ok()?))
    });
    mover.pause_at = number("TRASPASO_PAUSE_AT_WRITE").and_then(|v| {
        let (n, ms) = v.split_once(':')?;
        Some((
            n.parse().ok()?,
            std::time::Duration::from_millis(ms.parse().ok()?),
        ))
    });
}

#[cfg(not(feature = "fault-injection"))]
fn seams(_: &mut Mover) {}

fn device_command(globals: &Globals, args: &ArgMatches) -> CliResult {
    let action = args
        .get_one::<String>("action")
        .map(String::as_str)
        .unwrap_or("status");
    let text = args
        .get_one::<String>("address")
        .map(String::as_str)
        .unwrap_or("");
    let address: PciAddress = text
        .parse()
        .map_err(|e: crate::pci::AddressError| CliError::new(Exit::BadInput, e.to_string()))?;
    let host = open_root(globals)?;
    let changes = action != "status";
    if changes && host.is_live() && !is_root() {
        // Not root: the helper does it, if polkit allows.
        return through_helper(globals, &address, action);
    }
    let mut mover = Mover::new(&host);
    seams(&mut mover);
    // One move at a time, and an interrupted one is finished first.
    // `status` never fails because of them: it reports and goes on.
    let _lock = if host.is_live() && is_root() {
        match mover.lock() {
            Ok(lock) => {
                match mover.recover() {
                    Ok(Some(restored)) => eprintln!(
                        "{}",
                        gettext_f(
                            "An interrupted move was undone: {devices} are back on their previous drivers.",
                            &[("devices", &restored.join(", "))]
                        )
                    ),
                    Ok(None) => {}
                    Err(e) if !changes => eprintln!("traspasoctl: {e}"),
                    Err(e) => return Err(move_error(e)),
                }
                Some(lock)
            }
            Err(MoveError::Busy) if !changes => None,
            Err(e) => return Err(move_error(e)),
        }
    } else {
        None
    };
    // Only the device's group is read: a move never needs the whole bus.
    let topology =
        Topology::load_group(&host, globals.pci_ids.as_deref(), &address).map_err(|e| match e {
            ScanError::Names(_) => CliError::new(Exit::BadInput, e.to_string()),
            _ => read_failure(&host, e.to_string()),
        })?;
    if !changes {
        let state = mover.status(&topology, &address).map_err(move_error)?;
        if globals.json {
            return print_json(&state);
        }
        let mut out = format!(
            "{}: {}\n",
            state.address,
            state.driver.clone().unwrap_or_else(|| gettext("no driver"))
        );
        match state.iommu_group {
            Some(g) => out.push_str(&gettext_f(
                "IOMMU group {group}:",
                &[("group", &g.to_string())],
            )),
            None => out.push_str(&gettext("No IOMMU group.")),
        }
        out.push('\n');
        for m in &state.group {
            out.push_str(&format!(
                "  {} {}{}\n",
                m.address,
                m.driver.clone().unwrap_or_else(|| gettext("no driver")),
                if m.bridge {
                    format!(" ({})", gettext("bridge"))
                } else {
                    String::new()
                }
            ));
        }
        if state.vfio_node {
            out.push_str(&gettext_f(
                "/dev/vfio/{group} is ready for a VM.",
                &[("group", &state.iommu_group.unwrap_or(0).to_string())],
            ));
        }
        print_out(out.trim_end());
        return Ok(());
    }
    let direction = if action == "to-guest" {
        Direction::ToGuest
    } else {
        Direction::ToHost
    };
    let plan = mover
        .plan(&topology, &address, direction)
        .map_err(move_error)?;
    mover
        .check_safety(&topology, &plan, args.get_flag("force"))
        .map_err(move_error)?;
    if !host.is_live() {
        return Err(move_error(MoveError::Captured));
    }
    let moved = mover.execute(&plan).map_err(move_error)?;
    if globals.json {
        let body = serde_json::json!({
            "direction": plan.direction,
            "group": plan.group,
            "moved": moved.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        });
        return print_json(&body);
    }
    let names: Vec<String> = plan
        .devices
        .iter()
        .filter(|d| moved.contains(&d.address))
        .map(|d| d.name.clone())
        .collect();
    print_out(&crate::assign::outcome(direction, &names));
    Ok(())
}

fn through_helper(globals: &Globals, address: &PciAddress, action: &str) -> CliResult {
    let direction = if action == "to-guest" {
        Direction::ToGuest
    } else {
        Direction::ToHost
    };
    let moved = crate::dbus::call_move(&address.to_string(), direction).map_err(|e| match e {
        CallError::Unavailable(detail) => CliError::new(
            Exit::Failed,
            gettext_f(
                "The Traspaso helper is not available ({detail}). Install Traspaso's package, or run this command with sudo.",
                &[("detail", &detail)],
            ),
        ),
        CallError::AccessDenied(t) => CliError::new(Exit::NotAuthorised, t),
        CallError::InvalidArgs(t) => CliError::new(Exit::BadInput, t),
        CallError::Refused(t) => CliError::new(Exit::Refused, t),
        CallError::Failed(t) => CliError::new(Exit::Failed, t),
    })?;
    if globals.json {
        let body = serde_json::json!({ "direction": direction, "moved": moved });
        return print_json(&body);
    }
    print_out(&crate::assign::outcome(direction, &moved));
    Ok(())
}

fn libvirt_error(e: LibvirtError) -> CliError {
    let exit = match &e {
        LibvirtError::Denied(_) => Exit::NotAuthorised,
        LibvirtError::NoSuchVm(_)
        | LibvirtError::NameTaken(_)
        | LibvirtError::Xml(_)
        | LibvirtError::NotAttached { .. } => Exit::BadInput,
        LibvirtError::Unreachable(_)
        | LibvirtError::WrongState(_)
        | LibvirtError::NoPassthrough(_)
        | LibvirtError::NoPool(_)
        | LibvirtError::Other(_) => Exit::Failed,
    };
    CliError::new(exit, e.to_string())
}

fn vm_command(globals: &Globals, args: &ArgMatches) -> CliResult {
    let action = args
        .get_one::<String>("action")
        .map(String::as_str)
        .unwrap_or("list");
    let name = args.get_one::<String>("name").cloned().unwrap_or_default();
    let uri = args.get_one::<String>("connect").map(String::as_str);
    if action == "create" && !vm::valid_name(&name) {
        return Err(CliError::new(
            Exit::BadInput,
            VmError::BadName(name).to_string(),
        ));
    }
    let mut devices = Vec::new();
    if matches!(action, "attach" | "detach") && args.get_many::<String>("device").is_none() {
        return Err(CliError::new(
            Exit::BadInput,
            gettext("Say which group with --device ADDRESS."),
        ));
    }
    for text in args.get_many::<String>("device").into_iter().flatten() {
        devices.push(
            text.parse::<PciAddress>()
                .map_err(|e| CliError::new(Exit::BadInput, e.to_string()))?,
        );
    }
    // The groups come from this host (or --root) before libvirt is asked anything.
    let hostdevs = if devices.is_empty() {
        Vec::new()
    } else {
        let (host, topology) = load_topology(globals, false)?;
        let hostdevs = vm::hostdevs_for(&topology, &devices).map_err(|e| {
            let exit = match e {
                VmError::UnknownDevice(_) | VmError::BadName(_) | VmError::Xml(_) => Exit::BadInput,
                VmError::Bridge(_) | VmError::NoGroup(_) => Exit::Refused,
            };
            CliError::new(exit, e.to_string())
        })?;
        // Taking a group away from a VM needs no check; giving one does.
        if action != "detach" {
            crate::assign::check_for_vm(&host, &topology, &devices).map_err(move_error)?;
        }
        hostdevs
    };
    let lv = vm::Libvirt::connect(uri).map_err(libvirt_error)?;
    match action {
        "list" => {
            let vms = lv.list().map_err(libvirt_error)?;
            if globals.json {
                return print_json(&vms);
            }
            let mut out = String::new();
            for v in &vms {
                out.push_str(&format!(
                    "{}\t{}\t{}\n",
                    v.name,
                    v.state,
                    if v.hostdevs.is_empty() {
                        "-".to_owned()
                    } else {
                        v.hostdevs.join(",")
                    }
                ));
            }
            print_out(out.trim_end());
        }
        "create" => {
            let spec = VmSpec {
                name: name.clone(),
                memory_mib: *args.get_one::<u64>("memory").unwrap_or(&8192),
                vcpus: *args.get_one::<u32>("vcpus").unwrap_or(&4),
                virt_type: args
                    .get_one::<String>("type")
                    .cloned()
                    .unwrap_or_else(|| "kvm".into()),
                secure_boot: args.get_flag("secure-boot"),
                disk: args.get_one::<PathBuf>("disk").cloned(),
                iso: args.get_one::<PathBuf>("iso").cloned(),
                devices,
            };
            let domain = lv
                .create_vm(&spec, &hostdevs, args.get_one::<u64>("disk-size").copied())
                .map_err(|e| match e {
                    LibvirtError::Xml(e) => CliError::new(Exit::BadInput, e.to_string()),
                    other => libvirt_error(other),
                })?;
            if globals.json {
                return print_json(&serde_json::json!({
                    "name": domain.name,
                    "hostdevs": domain.pci_hostdevs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                }));
            }
            print_out(&gettext_f(
                "Defined {vm}",
                &[("vm", &vm::describe(&domain))],
            ));
        }
        "attach" | "detach" => {
            let live = if action == "attach" {
                lv.attach(&name, &hostdevs)
            } else {
                lv.detach(&name, &hostdevs)
            }
            .map_err(libvirt_error)?;
            let list: Vec<String> = hostdevs.iter().map(|a| a.to_string()).collect();
            if globals.json {
                return print_json(&serde_json::json!({
                    "name": name, "action": action, "hostdevs": list, "live": live,
                }));
            }
            let devices = list.join(", ");
            let args = [("name", name.as_str()), ("devices", devices.as_str())];
            print_out(&match (action, live) {
                ("attach", false) => gettext_f("Attached to “{name}”: {devices}", &args),
                ("attach", true) => gettext_f(
                    "Attached to “{name}”, in its configuration and in the running guest: {devices}",
                    &args,
                ),
                (_, false) => gettext_f("Detached from “{name}”: {devices}", &args),
                (_, true) => gettext_f(
                    "Detached from “{name}”, in its configuration and in the running guest: {devices}",
                    &args,
                ),
            });
        }
        "start" | "shutdown" | "destroy" | "delete" => {
            match action {
                "start" => lv.start(&name),
                "shutdown" => lv.shutdown(&name),
                "destroy" => lv.destroy(&name),
                _ => lv.delete(&name),
            }
            .map_err(libvirt_error)?;
            let state = if action == "delete" {
                "deleted"
            } else {
                lv.state(&name).map_err(libvirt_error)?
            };
            if globals.json {
                return print_json(&serde_json::json!({ "name": name, "state": state }));
            }
            let args = [("name", name.as_str())];
            print_out(&match action {
                "start" => gettext_f("Started “{name}”.", &args),
                "shutdown" => gettext_f("Asked “{name}” to shut down.", &args),
                "destroy" => gettext_f("Turned “{name}” off.", &args),
                _ => gettext_f("Deleted “{name}” and its firmware variables.", &args),
            });
        }
        _ => return Err(CliError::new(Exit::BadInput, gettext("Unknown command"))),
    }
    Ok(())
}

/// Scan and check the host.
fn assess_host(globals: &Globals) -> Result<(HostFacts, Topology, Readiness), CliError> {
    let (host, topology) = load_topology(globals, false)?;
    let facts = readiness::gather(&host).map_err(|e| read_failure(&host, e.to_string()))?;
    let result = readiness::assess(&facts, &topology);
    Ok((facts, topology, result))
}

fn check_command(globals: &Globals) -> CliResult {
    let (_, _, result) = assess_host(globals)?;
    if globals.json {
        return print_json(&result);
    }
    print_out(&render_checks(&result));
    Ok(())
}

fn status_mark(status: readiness::Status) -> &'static str {
    match status {
        readiness::Status::Pass => "✔",
        readiness::Status::Warn => "!",
        readiness::Status::Fail => "✘",
        readiness::Status::Unknown => "?",
    }
}

/// The checks for people: a mark, the title and what was seen; why and what
/// to do for anything that is not a pass.
pub fn render_checks(result: &Readiness) -> String {
    let mut out = String::new();
    for c in &result.checks {
        out.push_str(&format!(
            "{} {}: {}\n",
            status_mark(c.status),
            readiness::title(c.id),
            c.seen
        ));
        if c.status != readiness::Status::Pass {
            out.push_str(&format!("    {}\n", c.why));
        }
        if !c.next.is_empty() {
            out.push_str(&format!("    → {}\n", c.next));
        }
    }
    out.push('\n');
    out.push_str(&result.summary);
    out
}

fn report_command(globals: &Globals, args: &ArgMatches) -> CliResult {
    let (facts, topology, result) = assess_host(globals)?;
    let report = report::build(&facts, &topology, &result);
    let json = globals.json || args.get_one::<String>("format").map(String::as_str) == Some("json");
    if json {
        return print_json(&report);
    }
    print_out(report::markdown(&report).trim_end());
    Ok(())
}

fn severity_mark(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "✖",
        Severity::Warning => "⚠",
        Severity::Info => "ℹ",
    }
}

fn device_line(d: &PciDevice) -> String {
    let vendor = d.vendor_name.clone().unwrap_or_default();
    let name = match &d.device_name {
        Some(n) if vendor.is_empty() => n.clone(),
        Some(n) => format!("{vendor} {n}"),
        None if vendor.is_empty() => gettext("Unknown device"),
        None => vendor,
    };
    let class = d
        .class_name
        .clone()
        .unwrap_or_else(|| gettext_f("class {class}", &[("class", &d.class.to_string())]));
    let driver = match &d.driver {
        Some(drv) => gettext_f("driver {driver}", &[("driver", drv)]),
        None => gettext("no driver"),
    };
    format!(
        "{}  {} [{:04x}:{:04x}] · {} · {}",
        d.address, name, d.vendor_id, d.device_id, class, driver
    )
}

fn finding_codes<'a>(findings: impl Iterator<Item = &'a Finding>) -> String {
    let codes: Vec<&str> = findings.map(|f| f.code.as_str()).collect();
    if codes.is_empty() {
        String::new()
    } else {
        format!("  [{}]", codes.join(", "))
    }
}

/// The human view: a summary line, then each group as a small tree, then findings.
pub fn render_topology(t: &Topology) -> String {
    let mut out = String::new();
    let state = if t.iommu_enabled {
        gettext("IOMMU: on")
    } else {
        gettext("IOMMU: off")
    };
    out.push_str(&format!(
        "{state} · {} · {}\n",
        ngettext_f("{n} group", "{n} groups", t.groups.len() as u32, &[]),
        ngettext_f("{n} device", "{n} devices", t.devices.len() as u32, &[])
    ));
    for g in &t.groups {
        let verdict = if g.shared {
            gettext("shared: its devices can only go to a virtual machine together")
        } else if g.moves_together.is_empty() {
            gettext("bridges only")
        } else {
            gettext("isolated")
        };
        let in_use = if g.in_use_by.is_empty() {
            String::new()
        } else {
            format!(
                " · {}",
                gettext_f("in use by {users}", &[("users", &g.in_use_by.join(", "))])
            )
        };
        out.push_str(&format!(
            "\n{} — {verdict}{in_use}\n",
            gettext_f("Group {group}", &[("group", &g.id.to_string())])
        ));
        for (i, address) in g.devices.iter().enumerate() {
            let Some(d) = t.device(address) else { continue };
            let branch = if i + 1 == g.devices.len() {
                "└─"
            } else {
                "├─"
            };
            let codes = finding_codes(
                t.findings_for(address)
                    .filter(|f| f.group.is_none() || f.devices.len() == 1),
            );
            out.push_str(&format!("{branch} {}{codes}\n", device_line(d)));
        }
    }
    let orphans: Vec<&PciDevice> = t
        .devices
        .iter()
        .filter(|d| d.iommu_group.is_none())
        .collect();
    if !orphans.is_empty() {
        out.push_str(&format!(
            "\n{}\n",
            gettext("Devices without an IOMMU group")
        ));
        for d in orphans {
            out.push_str(&format!("   {}\n", device_line(d)));
        }
    }
    if !t.findings.is_empty() {
        out.push_str(&format!("\n{}\n", gettext("Findings")));
        for f in &t.findings {
            out.push_str(&format!(
                "{} [{}] {}\n   → {}\n",
                severity_mark(f.severity),
                f.code,
                f.message,
                f.advice
            ));
        }
    }
    if let Some(uri) = &t.libvirt_uri {
        out.push_str(&format!(
            "\n{}\n",
            gettext_f(
                "Read from {uri} through libvirt: reset methods, option ROMs, the boot display and ACS are unknown.",
                &[("uri", uri)]
            )
        ));
    }
    if t.names_source.is_none() {
        out.push_str(&format!(
            "\n{}\n",
            gettext("No pci.ids database was found: devices are shown by their ids. Install the pci.ids or hwdata package, or pass --pci-ids FILE.")
        ));
    }
    out
}

#[derive(Serialize)]
struct RomImageJson {
    offset: usize,
    length: usize,
    code_type: u8,
    code_type_name: String,
    vendor_id: String,
    device_id: String,
    class: String,
    last: bool,
    efi_machine: Option<String>,
    efi_subsystem: Option<u16>,
    efi_signature_valid: Option<bool>,
    efi_compressed: Option<bool>,
    checksum_valid: Option<bool>,
}

#[derive(Serialize)]
struct RomJson {
    size: usize,
    images: Vec<RomImageJson>,
    has_legacy: bool,
    has_uefi: bool,
    unterminated: bool,
    trailing_bytes: usize,
}

fn rom_json(size: usize, rom: &Rom) -> RomJson {
    RomJson {
        size,
        images: rom
            .images
            .iter()
            .map(|i| RomImageJson {
                offset: i.offset,
                length: i.length,
                code_type: i.code_type,
                code_type_name: rom::code_type_name(i.code_type),
                vendor_id: format!("{:04x}", i.vendor_id),
                device_id: format!("{:04x}", i.device_id),
                class: i.class.to_string(),
                last: i.last,
                efi_machine: i.efi.as_ref().map(|e| format!("{:04x}", e.machine)),
                efi_subsystem: i.efi.as_ref().map(|e| e.subsystem),
                efi_signature_valid: i.efi.as_ref().map(|e| e.signature_valid),
                efi_compressed: i.efi.as_ref().map(|e| e.compressed),
                checksum_valid: i.checksum_valid,
            })
            .collect(),
        has_legacy: rom.has_legacy(),
        has_uefi: rom.has_uefi(),
        unterminated: rom.unterminated,
        trailing_bytes: rom.trailing_bytes,
    }
}

fn yes_no(v: bool) -> String {
    if v {
        gettext("yes")
    } else {
        gettext("no")
    }
}

/// The human view of a ROM.
pub fn render_rom(source: &str, size: usize, rom: &Rom) -> String {
    let mut out = gettext_f(
        "{source}: {size} bytes, {images}\n",
        &[
            ("source", source),
            ("size", &size.to_string()),
            (
                "images",
                &ngettext_f("{n} image", "{n} images", rom.images.len() as u32, &[]),
            ),
        ],
    );
    for (n, i) in rom.images.iter().enumerate() {
        out.push_str(&format!(
            "  {} {} · {} · {:04x}:{:04x} · {} · {}\n",
            gettext_f(
                "Image {n} at {offset}:",
                &[
                    ("n", &(n + 1).to_string()),
                    ("offset", &format!("{:#x}", i.offset))
                ]
            ),
            rom::code_type_name(i.code_type),
            gettext_f("{length} bytes", &[("length", &i.length.to_string())]),
            i.vendor_id,
            i.device_id,
            gettext_f("class {class}", &[("class", &i.class.to_string())]),
            if i.last {
                gettext("last image")
            } else {
                gettext("more images follow")
            }
        ));
        if let Some(efi) = &i.efi {
            let subsystem = match efi.subsystem {
                0x0B => gettext("boot-service driver"),
                0x0C => gettext("runtime driver"),
                0x0A => gettext("application"),
                other => format!("{other:#x}"),
            };
            out.push_str(&format!(
                "      {} · {} · {}{}\n",
                gettext_f(
                    "EFI for {machine}",
                    &[("machine", &rom::efi_machine_name(efi.machine))]
                ),
                subsystem,
                if efi.compressed {
                    gettext("compressed")
                } else {
                    gettext("not compressed")
                },
                if efi.signature_valid {
                    String::new()
                } else {
                    format!(" · {}", gettext("EFI signature missing"))
                }
            ));
        }
        if let Some(valid) = i.checksum_valid {
            out.push_str(&format!(
                "      {}\n",
                if valid {
                    gettext("checksum valid")
                } else {
                    gettext("checksum invalid")
                }
            ));
        }
    }
    if rom.unterminated {
        out.push_str(&format!("  {}\n", gettext("No image carries the last-image mark; the walk stopped where no further image begins.")));
    }
    out.push_str(&format!(
        "{} {} · {} {}\n",
        gettext("Legacy BIOS image:"),
        yes_no(rom.has_legacy()),
        gettext("UEFI image for x86-64:"),
        yes_no(rom.has_uefi())
    ));
    out.push_str(&if rom.has_uefi() {
        gettext("A UEFI (OVMF) virtual machine can show a picture through this ROM from power-on.")
    } else {
        gettext("Without a UEFI image, a UEFI (OVMF) virtual machine shows no picture on this device until the guest's driver loads.")
    });
    out
}

fn rom_command(globals: &Globals, args: &ArgMatches) -> CliResult {
    let (source, data, boot_vga) = if let Some(address) = args.get_one::<String>("device") {
        let address: PciAddress = address
            .parse()
            .map_err(|e: crate::pci::AddressError| CliError::new(Exit::BadInput, e.to_string()))?;
        let host = open_root(globals)?;
        let dir = crate::pci::sysfs_device_path(&address);
        if !host.exists(&dir) {
            return Err(CliError::new(
                Exit::BadInput,
                gettext_f(
                    "There is no PCI device {address} on this host",
                    &[("address", &address.to_string())],
                ),
            ));
        }
        if !host.exists(dir.join("rom")) {
            return Err(CliError::new(
                Exit::Failed,
                gettext_f(
                    "{address} has no option ROM",
                    &[("address", &address.to_string())],
                ),
            ));
        }
        if host.is_live() && !is_root() {
            return Err(CliError::new(
                Exit::NotAuthorised,
                gettext("Reading a device's ROM needs root: run this command with sudo."),
            ));
        }
        let data = crate::assign::read_rom(&host, &address).map_err(|e| match e {
            MoveError::Host(e) => read_failure(&host, e.to_string()),
            other => move_error(other),
        })?;
        let boot_vga = host
            .read_attr(dir.join("boot_vga"))
            .ok()
            .flatten()
            .as_deref()
            == Some("1");
        (address.to_string(), data, boot_vga)
    } else {
        let file = args
            .get_one::<PathBuf>("file")
            .expect("clap requires FILE or --device");
        let data = read_user_file(file)?;
        (file.display().to_string(), data, false)
    };
    let parsed = rom::parse(&data).map_err(|e| {
        CliError::new(
            Exit::BadInput,
            gettext_f(
                "{source}: {reason}",
                &[("source", &source), ("reason", &e.to_string())],
            ),
        )
    })?;
    if globals.json {
        return print_json(&rom_json(data.len(), &parsed));
    }
    let mut text = render_rom(&source, data.len(), &parsed);
    if boot_vga {
        text.push('\n');
        text.push_str(&gettext("This is the boot GPU: the kernel hands out the firmware's shadow copy of its ROM, which says nothing about the card's own UEFI support."));
    }
    print_out(&text);
    Ok(())
}

/// A file named by the user on the command line (not a host path).
fn read_user_file(path: &Path) -> Result<Vec<u8>, CliError> {
    rom::read_rom_file(path).map_err(|e| CliError::new(Exit::BadInput, e.to_string()))
}

fn capture_command(globals: &Globals, args: &ArgMatches) -> CliResult {
    let host = open_root(globals)?;
    let dir = args.get_one::<PathBuf>("dir").expect("clap requires DIR");
    let options = CaptureOptions {
        roms: !args.get_flag("no-roms"),
    };
    let summary = capture::capture(&host, dir, options).map_err(|e| {
        let exit = match e {
            capture::CaptureError::NotEmpty(_) => Exit::BadInput,
            _ if !host.is_live() => Exit::BadInput,
            _ => Exit::Failed,
        };
        CliError::new(exit, e.to_string())
    })?;
    if globals.json {
        return print_json(&summary);
    }
    print_out(&gettext_f(
        "Captured {devices} and {groups} into {dir} ({roms}).",
        &[
            (
                "devices",
                &ngettext_f("{n} device", "{n} devices", summary.devices as u32, &[]),
            ),
            (
                "groups",
                &ngettext_f("{n} group", "{n} groups", summary.groups as u32, &[]),
            ),
            ("dir", &dir.display().to_string()),
            (
                "roms",
                &ngettext_f(
                    "{n} option ROM",
                    "{n} option ROMs",
                    summary.roms as u32,
                    &[],
                ),
            ),
        ],
    ));
    if !summary.as_root && host.is_live() {
        print_out(&gettext("Not run as root: option ROMs and the config space past its first 64 bytes were left out."));
    }
    print_out(&gettext_f(
        "Replay it with: traspasoctl --root {dir} topology",
        &[("dir", &dir.display().to_string())],
    ));
    Ok(())
}
