//! Traspaso: hand a GPU to a virtual machine through VFIO, and take it back.
//!
//! The library holds everything that is not user interface, so the app, the
//! command line and the privileged helper stay thin:
//!
//! - [`host`]: the host root under which every host path is resolved.
//! - [`pci`]: PCI addresses, device attributes and the `pci.ids` names database.
//! - [`topology`]: the scan of devices and IOMMU groups and its analysis into findings.
//! - [`rom`]: the PCI expansion ROM parser.
//! - [`capture`]: copying what the tool reads from a host, so `--root` replays it.
//! - [`fixture`]: synthetic sysfs trees from a compact description (tests, benchmarks).
//! - [`ctl`]: the `traspasoctl` command line.
//! - [`i18n`] and [`config`]: translations and build-time settings.

pub mod assign;
pub mod capture;
pub mod config;
pub mod ctl;
pub mod dbus;
pub mod fixture;
pub mod host;
pub mod i18n;
pub mod nodedev;
pub mod pci;
pub mod readiness;
pub mod report;
pub mod rom;
pub mod samples;
pub mod topology;
#[cfg(feature = "gui")]
pub mod ui;
pub mod vm;
