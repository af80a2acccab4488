//! `traspaso-helper`: the privileged D-Bus service that moves IOMMU groups
//! between host drivers and vfio-pci. It is not part of this build yet.
use std::process::ExitCode;

use traspaso::i18n::gettext;

fn main() -> ExitCode {
    traspaso::i18n::init();
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("{}", gettext("Usage: traspaso-helper [--root DIR]"));
        println!();
        println!("{}", gettext("The privileged helper of Traspaso: it hands IOMMU groups to virtual machines and back, on the system bus, when polkit allows it."));
        println!(
            "{}",
            gettext("It is not available in this version yet: it exits with status 1.")
        );
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "traspaso-helper: {}",
        gettext("The helper is not available in this version yet.")
    );
    ExitCode::FAILURE
}
