//! `traspaso-helper`: the privileged D-Bus system service that moves IOMMU
//! groups between host drivers and vfio-pci when polkit allows it. Started by
//! D-Bus activation or systemd; `--root DIR` is for tests only.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, Command};
use traspaso::dbus::{Helper, BUS_NAME, OBJECT_PATH};
use traspaso::i18n::{gettext, gettext_f};

fn command() -> Command {
    let command = Command::new("traspaso-helper")
        .about(gettext("The privileged helper of Traspaso: it hands IOMMU groups to virtual machines and back, on the system bus, when polkit allows it."))
        .version(traspaso::config::VERSION);
    traspaso::ctl::with_help_and_version(command).arg(
        Arg::new("root")
            .long("root")
            .value_name(gettext("DIR"))
            .value_parser(clap::value_parser!(PathBuf))
            .help(gettext("Read the host from DIR instead of / (for tests)")),
    )
}

fn main() -> ExitCode {
    traspaso::i18n::init();
    let matches = match command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let root = matches.get_one::<PathBuf>("root").cloned();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("traspaso-helper: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let helper = Helper::new(root);
        // A move interrupted by a crash is undone before anything else.
        match helper.recover() {
            Ok(Some(devices)) => eprintln!(
                "traspaso-helper: {}",
                gettext_f(
                    "An interrupted move was undone: {devices} are back on their previous drivers.",
                    &[("devices", &devices.join(", "))]
                )
            ),
            Ok(None) => {}
            Err(e) => eprintln!(
                "traspaso-helper: {}",
                zbus::DBusError::description(&e).unwrap_or_default()
            ),
        }
        let connection = zbus::connection::Builder::system()
            .and_then(|b| b.name(BUS_NAME))
            .and_then(|b| b.serve_at(OBJECT_PATH, helper));
        let connection = match connection {
            Ok(b) => b.build().await,
            Err(e) => Err(e),
        };
        match connection {
            Ok(_connection) => {
                // Serve until the bus or systemd stops us.
                std::future::pending::<()>().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "traspaso-helper: {}",
                    gettext_f(
                        "Cannot serve {name} on the system bus: {error}",
                        &[("name", BUS_NAME), ("error", &e.to_string())]
                    )
                );
                ExitCode::FAILURE
            }
        }
    })
}
