//! The shareable compatibility report: what this machine is, how its devices
//! are grouped and what the checks say, so the next person knows what
//! hardware works. Markdown for forums, JSON for databases.
//!
//! Privacy: only what identifies the hardware model goes in. Serial numbers,
//! UUIDs, MAC addresses, host and user names are never read, and the kernel
//! command line is reduced to the flags that matter for passthrough.

use serde::Serialize;

use crate::config::VERSION;
use crate::i18n::{gettext, gettext_f};
use crate::readiness::{GpuCandidate, HostFacts, Readiness, Status};
use crate::topology::{RomVerdict, Topology};

/// Kernel arguments worth sharing; everything else on the command line
/// (root=UUID=…, paths, custom values) stays private.
const SHARED_ARGS: &[&str] = &[
    "intel_iommu",
    "amd_iommu",
    "iommu",
    "pcie_acs_override",
    "vfio-pci.ids",
    "vfio_iommu_type1.allow_unsafe_interrupts",
    "video",
    "nofb",
    "modprobe.blacklist",
];

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub traspaso: String,
    pub cpu: Option<String>,
    pub system: Option<String>,
    pub board: Option<String>,
    pub bios_version: Option<String>,
    pub bios_date: Option<String>,
    pub kernel: Option<String>,
    pub kernel_arguments: Vec<String>,
    pub iommu_enabled: bool,
    pub summary: String,
    pub checks: Vec<ReportCheck>,
    pub gpus: Vec<GpuCandidate>,
    pub groups: Vec<ReportGroup>,
    /// Virtual machines using devices, and whether they worked (from the VM
    /// pages once they exist; empty until then).
    pub virtual_machines: Vec<ReportVm>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportCheck {
    pub id: &'static str,
    pub status: Status,
    pub seen: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportGroup {
    pub id: u32,
    pub shared: bool,
    pub devices: Vec<ReportDevice>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportDevice {
    pub address: String,
    /// `vendor:device`, lowercase hex.
    pub ids: String,
    /// `vendor:device` of the subsystem (the card's maker), when known.
    pub subsystem: Option<String>,
    pub class: String,
    pub name: String,
    pub driver: Option<String>,
    /// Option ROM verdict: `uefi`, `legacy-only`, `shadow-copy`, `unreadable`, or none.
    pub rom: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportVm {
    pub name: String,
    pub devices: Vec<String>,
    pub worked: Option<bool>,
}

/// Build the report from what the checks and the scan found.
pub fn build(facts: &HostFacts, topology: &Topology, readiness: &Readiness) -> Report {
    let kernel_arguments = facts
        .cmdline
        .split_whitespace()
        .filter(|a| {
            let key = a.split('=').next().unwrap_or(a);
            SHARED_ARGS.contains(&key)
        })
        .map(str::to_owned)
        .collect();
    let system = match (&facts.dmi.sys_vendor, &facts.dmi.product_name) {
        (Some(v), Some(p)) => Some(format!("{v} {p}")),
        (None, Some(p)) => Some(p.clone()),
        _ => None,
    };
    let board = match (&facts.dmi.board_vendor, &facts.dmi.board_name) {
        (Some(v), Some(n)) => Some(format!("{v} {n}")),
        (None, Some(n)) => Some(n.clone()),
        _ => None,
    };
    let groups = topology
        .groups
        .iter()
        .map(|g| ReportGroup {
            id: g.id,
            shared: g.shared,
            devices: g
                .devices
                .iter()
                .filter_map(|a| topology.device(a))
                .map(|d| ReportDevice {
                    address: d.address.to_string(),
                    ids: format!("{:04x}:{:04x}", d.vendor_id, d.device_id),
                    subsystem: d
                        .subsystem_vendor_id
                        .zip(d.subsystem_device_id)
                        .filter(|ids| *ids != (0, 0))
                        .map(|(v, s)| format!("{v:04x}:{s:04x}")),
                    class: format!("{:06x}", d.class.0),
                    name: match (&d.vendor_name, &d.device_name) {
                        (Some(v), Some(n)) => format!("{v} {n}"),
                        _ => d.short_name(),
                    },
                    driver: d.driver.clone(),
                    rom: d.rom.as_ref().map(|r| match r {
                        RomVerdict::Read {
                            shadow_copy: true, ..
                        } => "shadow-copy",
                        RomVerdict::Read { has_uefi: true, .. } => "uefi",
                        RomVerdict::Read { .. } => "legacy-only",
                        RomVerdict::Unreadable { .. } => "unreadable",
                    }),
                })
                .collect(),
        })
        .collect();
    Report {
        traspaso: VERSION.to_owned(),
        cpu: facts.cpu.as_ref().map(|c| {
            c.model_name
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        }),
        system,
        board,
        bios_version: facts.dmi.bios_version.clone(),
        bios_date: facts.dmi.bios_date.clone(),
        kernel: facts.kernel_release.clone(),
        kernel_arguments,
        iommu_enabled: topology.iommu_enabled,
        summary: readiness.summary.clone(),
        checks: readiness
            .checks
            .iter()
            .map(|c| ReportCheck {
                id: c.id,
                status: c.status,
                seen: c.seen.clone(),
            })
            .collect(),
        gpus: readiness.gpus.clone(),
        groups,
        virtual_machines: Vec::new(),
    }
}

fn yes_no(v: bool) -> String {
    if v {
        gettext("yes")
    } else {
        gettext("no")
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn or_unknown(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| gettext("unknown"))
}

/// The report as Markdown, with translated headings.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# {}\n\n",
        gettext("Traspaso compatibility report")
    ));
    out.push_str(&format!("**{}**\n\n", report.summary));
    let rows = [
        (gettext("Processor"), or_unknown(&report.cpu)),
        (gettext("System"), or_unknown(&report.system)),
        (gettext("Board"), or_unknown(&report.board)),
        (
            gettext("BIOS"),
            match (&report.bios_version, &report.bios_date) {
                (Some(v), Some(d)) => format!("{v} ({d})"),
                (Some(v), None) => v.clone(),
                _ => gettext("unknown"),
            },
        ),
        (gettext("Kernel"), or_unknown(&report.kernel)),
        (
            gettext("Kernel arguments"),
            if report.kernel_arguments.is_empty() {
                gettext("none that matter for passthrough")
            } else {
                format!("`{}`", report.kernel_arguments.join(" "))
            },
        ),
        (
            gettext("IOMMU"),
            if report.iommu_enabled {
                gettext("on")
            } else {
                gettext("off")
            },
        ),
        (gettext("Traspaso"), report.traspaso.clone()),
    ];
    out.push_str("| | |\n|---|---|\n");
    for (k, v) in rows {
        out.push_str(&format!("| {} | {} |\n", cell(&k), cell(&v)));
    }

    out.push_str(&format!("\n## {}\n\n", gettext("Checks")));
    for c in &report.checks {
        out.push_str(&format!(
            "- `{}` **{}** — {}\n",
            c.id,
            c.status.as_str(),
            c.seen
        ));
    }

    out.push_str(&format!("\n## {}\n\n", gettext("Graphics cards")));
    if report.gpus.is_empty() {
        out.push_str(&format!("{}\n", gettext("None found.")));
    }
    for g in &report.gpus {
        out.push_str(&format!(
            "- {} `{}` — {}\n",
            g.name,
            g.address,
            gettext_f(
                "boot GPU: {boot}, integrated: {integrated}, group: {group}, ROM: {rom}",
                &[
                    ("boot", &yes_no(g.boot_vga)),
                    ("integrated", &yes_no(g.integrated)),
                    ("group", g.group),
                    ("rom", g.rom),
                ],
            )
        ));
    }

    out.push_str(&format!("\n## {}\n\n", gettext("IOMMU groups")));
    if report.groups.is_empty() {
        out.push_str(&format!(
            "{}\n",
            gettext("No IOMMU groups: the IOMMU is off.")
        ));
    }
    for g in &report.groups {
        let verdict = if g.shared {
            gettext("shared")
        } else {
            gettext("isolated")
        };
        out.push_str(&format!(
            "- **{}** ({verdict})\n",
            gettext_f("Group {id}", &[("id", &g.id.to_string())])
        ));
        for d in &g.devices {
            let mut line = format!("  - `{}` [{}] {}", d.address, d.ids, d.name);
            if let Some(s) = &d.subsystem {
                line.push_str(&format!(" ({} {s})", gettext("subsystem")));
            }
            if let Some(driver) = &d.driver {
                line.push_str(&format!(" — {driver}"));
            }
            if let Some(rom) = d.rom {
                line.push_str(&format!(" — ROM: {rom}"));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }

    out.push_str(&format!("\n## {}\n\n", gettext("Virtual machines")));
    if report.virtual_machines.is_empty() {
        out.push_str(&format!(
            "{}\n",
            gettext("No virtual machine has used these devices yet.")
        ));
    }
    for vm in &report.virtual_machines {
        let worked = match vm.worked {
            Some(true) => gettext("worked"),
            Some(false) => gettext("did not work"),
            None => gettext("not told"),
        };
        out.push_str(&format!(
            "- {}: {} — {worked}\n",
            vm.name,
            vm.devices.join(", ")
        ));
    }
    out
}
