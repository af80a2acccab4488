//! The readiness checks and the report on described hosts, one per branch:
//! Intel with and without DMAR, the i7-2600K and the i7-3770, a Core i3, AMD
//! with IVRS, the IOMMU off in the kernel, ACS override, each boot loader,
//! guest firmware and vfio-pci in every state, and what a report must not say.

mod common;

use std::collections::HashMap;

use common::*;
use traspaso::fixture::HostSpec;
use traspaso::host::HostRoot;
use traspaso::readiness::{self, Readiness, Status};
use traspaso::report;
use traspaso::topology::{ScanOptions, Topology};

/// A CPU line block for /proc/cpuinfo.
fn cpuinfo(vendor: &str, family: u32, model: u32, name: &str, flags: &str) -> String {
    format!(
        "file /proc/cpuinfo processor\\t: 0\\nvendor_id\\t: {vendor}\\ncpu family\\t: {family}\\nmodel\\t\\t: {model}\\nmodel name\\t: {name}\\nflags\\t\\t: {flags}\\n\\n\n"
    )
}

const I7_3770: (&str, u32, u32, &str) = (
    "GenuineIntel",
    6,
    58,
    "Intel(R) Core(TM) i7-3770 CPU @ 3.40GHz",
);
const I7_2600K: (&str, u32, u32, &str) = (
    "GenuineIntel",
    6,
    42,
    "Intel(R) Core(TM) i7-2600K CPU @ 3.40GHz",
);

/// A desktop: a boot GPU on the CPU's root port, a second GPU alone in its
/// group, a NIC; IOMMU groups only when `groups`.
fn desktop(groups: bool) -> String {
    let g = |n: u32| {
        if groups {
            format!(" group={n}")
        } else {
            String::new()
        }
    };
    format!(
        "dev 0000:00:00.0 8086:0150 class=060000{} reset=none\n\
         dev 0000:00:02.0 8086:0162 class=030000{} driver=i915 boot_vga=1 reset=flr\n\
         dev 0000:00:01.0 8086:0151 class=060400{} driver=pcieport\n\
         dev 0000:01:00.0 10de:1402 class=030000{} parent=00:01.0 driver=nouveau boot_vga=0 reset=bus rom\n\
         dev 0000:01:00.1 10de:0fba class=040300{} parent=00:01.0 driver=snd_hda_intel reset=bus\n\
         dev 0000:00:19.0 8086:1503 class=020000{} driver=e1000e reset=flr\n\
         file /sys/class/dmi/id/board_vendor ASUSTeK Computer INC.\\n\n\
         file /sys/class/dmi/id/board_name P8Z68-V\\n\n\
         file /sys/class/dmi/id/bios_version 0501\\n\n\
         file /sys/class/dmi/id/bios_date 05/11/2011\\n\n\
         file /proc/sys/kernel/osrelease 6.1.0-13-amd64\\n\n",
        g(0),
        g(1),
        g(2),
        g(2),
        g(2),
        g(3)
    )
}

const DMAR: &str = "file /sys/firmware/acpi/tables/DMAR x\nfile /sys/firmware/acpi/tables/APIC x\nfile /sys/class/iommu/dmar0/uevent x\n";
const NO_DMAR: &str =
    "file /sys/firmware/acpi/tables/APIC x\nfile /sys/firmware/acpi/tables/FACP x\n";
const VFIO_MODULE: &str =
    "file /lib/modules/6.1.0-13-amd64/kernel/drivers/vfio/pci/vfio-pci.ko x\n";
const OVMF_DESCRIPTOR: &str = "file /usr/share/qemu/firmware/60-edk2-x86_64.json {\"interface-types\": [\"uefi\"], \"targets\": [{\"architecture\": \"x86_64\"}], \"features\": [\"secure-boot\"]}\n";
const GRUB: &str = "file /etc/default/grub GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\\n\n";

fn assess(description: &str) -> (Readiness, HostRoot, tempfile::TempDir) {
    let spec = HostSpec::parse(description).expect("a valid description");
    let dir = write(&spec);
    let host = HostRoot::open(dir.path()).unwrap();
    let topology = Topology::load(&host, pci_ids().as_deref(), ScanOptions::default()).unwrap();
    let facts = readiness::gather(&host).unwrap();
    (readiness::assess(&facts, &topology), host, dir)
}

fn statuses(r: &Readiness) -> HashMap<&'static str, Status> {
    r.checks.iter().map(|c| (c.id, c.status)).collect()
}

#[test]
fn every_check_is_there_once_in_order() {
    let (r, _, _) = assess(&desktop(true));
    let ids: Vec<&str> = r.checks.iter().map(|c| c.id).collect();
    assert_eq!(ids, readiness::CHECK_IDS.to_vec());
}

#[test]
fn i7_3770_with_dmar_and_flags_is_ready() {
    let (v, f, m, n) = I7_3770;
    let text = format!(
        "cmdline ro quiet intel_iommu=on iommu=pt\n{}{}{DMAR}{VFIO_MODULE}{OVMF_DESCRIPTOR}{GRUB}\
         file /proc/interrupts  0: 20 IR-IO-APIC 2-edge timer\\n\n",
        desktop(true),
        cpuinfo(v, f, m, n, "fpu vmx sse4_2")
    );
    let (r, _, _) = assess(&text);
    let s = statuses(&r);
    for id in [
        "cpu-virtualization",
        "cpu-iommu-support",
        "cpu-iommu-slowdown",
        "firmware-iommu",
        "kernel-iommu",
        "kernel-passthrough-mode",
        "acs-override",
        "interrupt-remapping",
        "vfio-modules",
        "guest-firmware",
        "gpu-candidates",
        "bootloader",
    ] {
        assert_eq!(s[id], Status::Pass, "{id}: {:#?}", r.check(id));
    }
    // A capture cannot tell whether daemons answer.
    assert_eq!(s["libvirt"], Status::Unknown);
    assert_eq!(s["helper"], Status::Unknown);
    let gpu = r.check("gpu-candidates").unwrap();
    assert!(
        gpu.next.contains("0000:01:00.0") && gpu.next.contains("0000:00:02.0"),
        "names the GPU for the VM and the one the host keeps: {}",
        gpu.next
    );
    assert!(r
        .check("guest-firmware")
        .unwrap()
        .seen
        .contains("Secure Boot"));
    assert_eq!(r.gpus.len(), 2);
    assert!(r
        .gpus
        .iter()
        .any(|g| g.candidate && g.address == "0000:01:00.0"));
    assert!(r
        .gpus
        .iter()
        .any(|g| !g.candidate && g.boot_vga && g.integrated));
    assert!(r.summary.starts_with("Ready"), "{}", r.summary);
}

#[test]
fn i7_2600k_without_dmar_names_the_board_and_bios() {
    let (v, f, m, n) = I7_2600K;
    let text = format!(
        "cmdline ro quiet\n{}{}{NO_DMAR}{GRUB}",
        desktop(false),
        cpuinfo(v, f, m, n, "fpu vmx")
    );
    let (r, _, _) = assess(&text);
    let s = statuses(&r);
    assert_eq!(s["cpu-virtualization"], Status::Pass);
    assert_eq!(s["cpu-iommu-support"], Status::Fail);
    assert_eq!(s["cpu-iommu-slowdown"], Status::Warn);
    assert_eq!(s["firmware-iommu"], Status::Fail);
    assert_eq!(s["kernel-iommu"], Status::Fail);
    assert_eq!(s["gpu-candidates"], Status::Unknown);
    let fw = r.check("firmware-iommu").unwrap();
    assert!(fw.seen.contains("DMAR"), "{}", fw.seen);
    assert!(
        fw.next.contains("VT-d")
            && fw.next.contains("ASUSTeK Computer INC. P8Z68-V")
            && fw.next.contains("0501 (05/11/2011)"),
        "{}",
        fw.next
    );
    assert!(r
        .check("cpu-iommu-support")
        .unwrap()
        .seen
        .contains("Intel Core i7-2600K"));
    assert!(r.summary.starts_with("Not ready yet"), "{}", r.summary);
}

#[test]
fn dmar_present_but_the_kernel_flag_missing() {
    let (v, f, m, n) = I7_3770;
    let text = format!(
        "cmdline ro quiet\n{}{}{DMAR}{GRUB}",
        desktop(false),
        cpuinfo(v, f, m, n, "fpu vmx")
    );
    let (r, _, _) = assess(&text);
    let s = statuses(&r);
    assert_eq!(s["firmware-iommu"], Status::Pass);
    assert_eq!(s["kernel-iommu"], Status::Fail);
    assert!(r
        .check("kernel-iommu")
        .unwrap()
        .next
        .contains("intel_iommu=on"));
    let boot = r.check("bootloader").unwrap();
    assert_eq!(boot.status, Status::Warn);
    assert!(boot.seen.contains("GRUB"), "{}", boot.seen);
    assert!(
        boot.next
            .contains("GRUB_CMDLINE_LINUX_DEFAULT=\"/&intel_iommu=on iommu=pt /")
            && boot.next.contains("update-grub"),
        "{}",
        boot.next
    );

    // Switched off on purpose: say so.
    let off = text.replace("cmdline ro quiet", "cmdline ro quiet intel_iommu=off");
    let (r, _, _) = assess(&off);
    assert!(r
        .check("kernel-iommu")
        .unwrap()
        .seen
        .contains("intel_iommu=off"));
}

#[test]
fn core_i3_warns_and_no_vmx_fails() {
    let text = format!(
        "cmdline ro\n{}{}",
        desktop(false),
        cpuinfo(
            "GenuineIntel",
            6,
            42,
            "Intel(R) Core(TM) i3-2100 CPU @ 3.10GHz",
            "fpu sse"
        )
    );
    let (r, _, _) = assess(&text);
    let s = statuses(&r);
    assert_eq!(s["cpu-iommu-support"], Status::Warn);
    assert!(r.check("cpu-iommu-support").unwrap().next.contains("ARK"));
    assert_eq!(s["cpu-virtualization"], Status::Fail);
    assert!(r
        .check("cpu-virtualization")
        .unwrap()
        .next
        .contains("firmware setup"));

    // Inside a VM the advice is nested virtualization.
    let nested = text.replace("fpu sse", "fpu sse hypervisor");
    let (r, _, _) = assess(&nested);
    assert!(r
        .check("cpu-virtualization")
        .unwrap()
        .next
        .contains("nested"));
}

#[test]
fn amd_with_ivrs_and_a_shared_chipset_group() {
    let text = format!(
        "{}{}file /sys/firmware/acpi/tables/IVRS x\nfile /sys/class/iommu/ivhd0/uevent x\n",
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("data/samples/amd-chipset-shared.host")
        )
        .unwrap(),
        cpuinfo(
            "AuthenticAMD",
            23,
            113,
            "AMD Ryzen 7 3700X 8-Core Processor",
            "fpu svm"
        )
    );
    let (r, _, _) = assess(&text);
    let s = statuses(&r);
    assert_eq!(s["cpu-virtualization"], Status::Pass);
    assert!(r.check("cpu-virtualization").unwrap().seen.contains("svm"));
    assert_eq!(s["firmware-iommu"], Status::Pass);
    assert!(r.check("firmware-iommu").unwrap().seen.contains("IVRS"));
    assert_eq!(s["cpu-iommu-slowdown"], Status::Pass);
    // The second GPU can go, but its chipset group is shared; the isolated
    // one is the boot GPU: say both.
    let gpu = r.check("gpu-candidates").unwrap();
    assert_eq!(gpu.status, Status::Warn, "{gpu:#?}");
    assert!(
        gpu.next.contains("0000:06:00.0") && gpu.next.contains("shared"),
        "{}",
        gpu.next
    );
    assert!(gpu.next.contains("(0000:07:00.0) instead"), "{}", gpu.next);
    // AMD needs no amd_iommu=on: only iommu=pt is missing here… or set.
    let boot = r.check("bootloader").unwrap();
    assert!(!boot.next.contains("amd_iommu"), "{}", boot.next);
}

#[test]
fn acs_override_is_a_warning() {
    let (v, f, m, n) = I7_3770;
    let text = format!(
        "cmdline ro intel_iommu=on iommu=pt pcie_acs_override=downstream,multifunction\n{}{}{DMAR}",
        desktop(true),
        cpuinfo(v, f, m, n, "vmx")
    );
    let (r, _, _) = assess(&text);
    let acs = r.check("acs-override").unwrap();
    assert_eq!(acs.status, Status::Warn);
    assert!(acs.seen.contains("downstream,multifunction"));
}

#[test]
fn each_boot_loader_gets_its_command() {
    let (v, f, m, n) = I7_3770;
    let base = format!(
        "cmdline ro quiet\n{}{}{DMAR}",
        desktop(false),
        cpuinfo(v, f, m, n, "vmx")
    );
    let cases = [
        (GRUB, "GRUB", "update-grub"),
        (
            "file /boot/loader/entries/debian.conf title Debian\\noptions root=UUID=0 ro\\n\n",
            "systemd-boot",
            "/boot/loader/entries/*.conf",
        ),
        (
            "file /etc/kernel/cmdline root=UUID=0 ro\\n\n",
            "kernel-install",
            "kernel-install add",
        ),
        (
            "file /etc/kernelstub/configuration {}\n",
            "kernelstub",
            "kernelstub --add-options \"intel_iommu=on iommu=pt\"",
        ),
        (
            "file /usr/sbin/grubby x\n",
            "grubby",
            "grubby --update-kernel=ALL --args=\"intel_iommu=on iommu=pt\"",
        ),
        (
            "file /run/ostree-booted x\n",
            "rpm-ostree",
            "rpm-ostree kargs --append=intel_iommu=on --append=iommu=pt",
        ),
    ];
    for (extra, loader, command) in cases {
        let (r, _, _) = assess(&format!("{base}{extra}"));
        let boot = r.check("bootloader").unwrap();
        assert_eq!(boot.status, Status::Warn, "{loader}");
        assert!(boot.seen.starts_with(loader), "{loader}: {}", boot.seen);
        assert!(boot.next.contains(command), "{loader}: {}", boot.next);
    }
    // None known: the flags, without a command.
    let (r, _, _) = assess(&base);
    let boot = r.check("bootloader").unwrap();
    assert_eq!(boot.status, Status::Unknown);
    assert!(boot.next.contains("intel_iommu=on iommu=pt"));
}

#[test]
fn guest_firmware_and_vfio_in_every_state() {
    let (v, f, m, n) = I7_3770;
    let base = format!(
        "cmdline ro intel_iommu=on iommu=pt\n{}{}{DMAR}",
        desktop(true),
        cpuinfo(v, f, m, n, "vmx")
    );
    let status = |extra: &str, id: &str| {
        let (r, _, _) = assess(&format!("{base}{extra}"));
        let c = r.check(id).unwrap().clone();
        (c.status, c.seen)
    };
    assert_eq!(status(OVMF_DESCRIPTOR, "guest-firmware").0, Status::Pass);
    assert_eq!(
        status("file /usr/share/OVMF/OVMF_CODE.fd x\n", "guest-firmware").0,
        Status::Warn
    );
    assert_eq!(status("", "guest-firmware").0, Status::Fail);
    // A broken descriptor is skipped, not fatal.
    assert_eq!(
        status(
            "file /usr/share/qemu/firmware/99-broken.json {not json\n",
            "guest-firmware"
        )
        .0,
        Status::Fail
    );

    let (s, seen) = status(
        "file /lib/modules/6.1.0-13-amd64/modules.builtin kernel/drivers/vfio/pci/vfio-pci.ko\\n\n",
        "vfio-modules",
    );
    assert_eq!(s, Status::Pass);
    assert!(seen.contains("built into"), "{seen}");
    let (s, seen) = status("file /sys/module/vfio_pci/refcnt 0\\n\n", "vfio-modules");
    assert_eq!(s, Status::Pass);
    assert!(seen.contains("loaded"), "{seen}");
    let (s, seen) = status(VFIO_MODULE, "vfio-modules");
    assert_eq!(s, Status::Pass);
    assert!(seen.contains("installed"), "{seen}");
    assert_eq!(status("", "vfio-modules").0, Status::Fail);

    let (s, _) = status(
        "file /sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts Y\\n\nfile /proc/interrupts  0: 20 IO-APIC 2-edge timer\\n\n",
        "interrupt-remapping",
    );
    assert_eq!(s, Status::Warn);
}

#[test]
fn one_gpu_or_only_integrated_graphics_fail() {
    let (v, f, m, n) = I7_3770;
    let text = format!(
        "cmdline ro intel_iommu=on\n{}{DMAR}\
         dev 0000:00:00.0 8086:0150 class=060000 group=0\n\
         dev 0000:00:02.0 8086:0162 class=030000 group=1 driver=i915 boot_vga=1\n",
        cpuinfo(v, f, m, n, "vmx")
    );
    let (r, _, _) = assess(&text);
    let gpu = r.check("gpu-candidates").unwrap();
    assert_eq!(gpu.status, Status::Fail);
    assert!(
        gpu.next.contains("Integrated Intel graphics"),
        "{}",
        gpu.next
    );
}

#[test]
fn the_report_carries_the_hardware_and_nothing_private() {
    let (v, f, m, n) = I7_3770;
    let secrets = [
        "SERIAL-4471-XYZ",
        "0f1e2d3c-aaaa-bbbb-cccc-123456789abc",
        "secret-hostname",
        "de:ad:be:ef:00:01",
        "/home/alice",
    ];
    let text = format!(
        "cmdline BOOT_IMAGE=/home/alice/vmlinuz root=UUID={uuid} ro intel_iommu=on iommu=pt\n{}{}{DMAR}\
         file /sys/class/dmi/id/product_serial {serial}\\n\n\
         file /sys/class/dmi/id/board_serial {serial}\\n\n\
         file /sys/class/dmi/id/product_uuid {uuid}\\n\n\
         file /etc/hostname {host}\\n\n\
         file /proc/sys/kernel/hostname {host}\\n\n\
         file /sys/class/net/eth0/address {mac}\\n\n",
        desktop(true),
        cpuinfo(v, f, m, n, "vmx"),
        serial = secrets[0],
        uuid = secrets[1],
        host = secrets[2],
        mac = secrets[3],
    );
    let spec = HostSpec::parse(&text).unwrap();
    let dir = write(&spec);
    let host = HostRoot::open(dir.path()).unwrap();
    let topology = Topology::load(&host, pci_ids().as_deref(), ScanOptions::default()).unwrap();
    let facts = readiness::gather(&host).unwrap();
    let r = readiness::assess(&facts, &topology);
    let built = report::build(&facts, &topology, &r);
    let markdown = report::markdown(&built);
    let json = serde_json::to_string(&built).unwrap();
    for secret in secrets {
        assert!(
            !markdown.contains(secret),
            "{secret} leaked into:\n{markdown}"
        );
        assert!(!json.contains(secret), "{secret} leaked into the JSON");
    }
    for expected in [
        "Intel(R) Core(TM) i7-3770",
        "ASUSTeK Computer INC. P8Z68-V",
        "0501 (05/11/2011)",
        "6.1.0-13-amd64",
        "`intel_iommu=on iommu=pt`",
        "[10de:1402]",
        "Group 2",
    ] {
        assert!(markdown.contains(expected), "{expected} in:\n{markdown}");
    }
    assert_eq!(built.kernel_arguments, vec!["intel_iommu=on", "iommu=pt"]);

    // The same through traspasoctl, in both formats.
    let root = dir.path().to_str().unwrap();
    for args in [
        vec!["--root", root, "report"],
        vec!["--root", root, "report", "--format", "json"],
        vec!["--root", root, "--json", "report"],
    ] {
        let out = ctl(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} leaked: {args:?}");
        }
        if args.contains(&"json") || args.contains(&"--json") {
            let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(v["iommu_enabled"], true);
            assert_eq!(v["groups"].as_array().unwrap().len(), 4);
        }
    }
}

#[test]
fn check_on_the_command_line_in_json_english_and_spanish() {
    let (v, f, m, n) = I7_2600K;
    let text = format!(
        "cmdline ro quiet\n{}{}{NO_DMAR}{GRUB}",
        desktop(false),
        cpuinfo(v, f, m, n, "vmx")
    );
    let spec = HostSpec::parse(&text).unwrap();
    let dir = write(&spec);
    let root = dir.path().to_str().unwrap();

    let out = ctl(&["--root", root, "check", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), readiness::CHECK_IDS.len());
    let status = |id: &str| {
        checks
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(status("firmware-iommu"), "fail");
    assert_eq!(status("cpu-iommu-slowdown"), "warn");
    for c in checks {
        for key in ["seen", "why", "next"] {
            assert!(c[key].is_string(), "{c}");
        }
    }
    assert!(v["summary"].as_str().unwrap().starts_with("Not ready yet"));

    let out = ctl(&["--root", root, "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("✘ IOMMU in the firmware"), "{text}");
    assert!(text.contains("→ Turn on “VT-d”"), "{text}");

    let out = ctl_lang(&["--root", root, "check"], Some("es"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Todavía no") || text.contains("Aún no"),
        "{text}"
    );
    assert!(!text.contains("Not ready yet"), "{text}");
}

#[test]
fn the_sample_desktop_is_ready() {
    let root = host("ivy-bridge-desktop");
    let out = ctl(&["--root", root.path().to_str().unwrap(), "check", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for c in v["checks"].as_array().unwrap() {
        assert!(
            c["status"] == "pass" || c["status"] == "unknown",
            "the article's desktop should pass: {c}"
        );
    }
}
