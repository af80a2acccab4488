//! GUI tests: the real window under Xvfb, driven through its widgets, models
//! and actions. `harness = false`: GTK lives on the main thread.
//!
//! Without a display the binary runs itself again under
//! `xvfb-run … dbus-run-session`, and once more with `LANGUAGE=es` for the
//! Spanish checks. `TRASPASO_SCREENSHOTS=DIR` also saves the screenshots used
//! by the README (see build-aux/screenshots.sh).

mod gui_support;

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use relm4::adw::prelude::*;
use relm4::gtk::gio;
use relm4::ComponentController;
use relm4::{adw, gtk};

use gui_support::*;
use traspaso::ui::app::find_widget;
use traspaso::ui::tree::{node_of, Node, Selection};
use traspaso::ui::{AppInit, Source};

const SCENARIO: &str = "TRASPASO_GUI_SCENARIO";

fn main() -> ExitCode {
    // `cargo test -- --list` and filters: one test, named "gui".
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("gui: test");
        return ExitCode::SUCCESS;
    }
    match std::env::var(SCENARIO).ok().as_deref() {
        None => run_all(),
        Some(scenario) => {
            run_scenario(scenario);
            ExitCode::SUCCESS
        }
    }
}

/// Run each scenario in its own process (a fresh GTK, language and settings),
/// under Xvfb when there is no display.
fn run_all() -> ExitCode {
    let schemas = tempfile::tempdir().expect("temporary directory");
    let status = Command::new("glib-compile-schemas")
        .arg(format!("--targetdir={}", schemas.path().display()))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("data"))
        .status()
        .expect("glib-compile-schemas (libglib2.0-bin) is needed");
    assert!(status.success());

    let me = std::env::current_exe().expect("own path");
    let scenarios: [(&str, &[(&str, &str)]); 10] = [
        ("desktop", &[]),
        ("vms", &[]),
        ("remote", &[]),
        ("iommu-off", &[]),
        ("errors", &[]),
        ("samples", &[]),
        ("spanish", &[("LANGUAGE", "es")]),
        ("wizard", &[]),
        ("wizard-es", &[("LANGUAGE", "es")]),
        (
            "settings",
            &[
                ("GSETTINGS_BACKEND", "memory"),
                ("GSETTINGS_SCHEMA_DIR", "SCHEMAS"),
            ],
        ),
    ];
    let mut failed = Vec::new();
    for (name, env) in scenarios {
        let mut cmd = headless(&me);
        cmd.env(SCENARIO, name).env_remove("GSETTINGS_SCHEMA_DIR");
        for (k, v) in env {
            let v = if *v == "SCHEMAS" {
                schemas.path().to_str().unwrap()
            } else {
                v
            };
            cmd.env(k, v);
        }
        let started = Instant::now();
        let output = cmd.output().unwrap_or_else(|e| {
            panic!("cannot run the GUI scenario {name} (xvfb-run and dbus-run-session are needed): {e}")
        });
        let status = output.status;
        print!("{}", String::from_utf8_lossy(&output.stdout));
        if !status.success() {
            // The session bus and Xvfb are chatty: their lines only matter on failure.
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
        }
        println!(
            "scenario {name}: {} in {:.1} s",
            if status.success() { "ok" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
        if !status.success() {
            failed.push(name);
        }
    }
    if failed.is_empty() {
        println!("test result: ok. GUI scenarios passed");
        ExitCode::SUCCESS
    } else {
        println!("GUI scenarios failed: {failed:?}");
        ExitCode::FAILURE
    }
}

fn run_scenario(name: &str) {
    init_gtk();
    match name {
        "desktop" => desktop(),
        "vms" => vms(),
        "remote" => remote(),
        "iommu-off" => iommu_off(),
        "errors" => errors(),
        "samples" => samples(),
        "spanish" => spanish(),
        "settings" => settings(),
        "wizard" => wizard(false),
        "wizard-es" => wizard(true),
        other => panic!("unknown scenario {other}"),
    }
}

// -------------------------------------------------------------- scenarios

fn desktop() {
    let host = write_host("ivy-bridge-desktop");
    let w = Window::open(Source::Captured(host.path().to_owned()));
    w.wait_page("browse");

    // The groups view: ten groups, each followed by its functions.
    let rows = w.row_texts();
    let groups: Vec<&String> = rows
        .iter()
        .map(|(t, _)| t)
        .filter(|t| t.starts_with("Group "))
        .collect();
    assert_eq!(groups.len(), 10, "{rows:#?}");
    assert_eq!(rows.len(), 10 + 17, "{rows:#?}");
    let (_, shared) = rows.iter().find(|(t, _)| t == "Group 7").expect("group 7");
    assert!(
        shared.starts_with("Shared by") && shared.contains("03:00.0") && shared.contains("04:00.0"),
        "{shared}"
    );
    let (_, gpu_group) = rows.iter().find(|(t, _)| t == "Group 1").unwrap();
    assert!(gpu_group.starts_with("Isolated"), "{gpu_group}");

    // The rows on screen were bound by the factory.
    pump(Duration::from_millis(200));
    let mut shown = Vec::new();
    collect_labels(w.list().upcast_ref(), &mut shown);
    assert!(shown.iter().any(|t| t == "Group 0"), "{shown:?}");
    assert!(
        shown.iter().any(|t| t == "Boot GPU"),
        "the integrated GPU's badge shows: {shown:?}"
    );

    // Selecting the GTX 950 fills the details.
    w.select(device("01:00.0"));
    let details = w.details_text();
    for expected in [
        "0000:01:00.0",
        "nouveau",
        "Giving It to a Virtual Machine",
        "0000:01:00.1",
        "snd_hda_intel",
        "1 bridge in the group stays with the host.",
        "Option ROM",
        "Attributes",
        "Nothing to watch out for",
    ] {
        assert!(details.contains(expected), "{expected:?} in:\n{details}");
    }
    // The switch that gives the group to a VM: off, and only for this computer.
    let row =
        find_widget(&w.root(), &|x| x.widget_name() == "move-row").expect("the move switch row");
    let switch: gtk::Switch = find_widget(&row, &|x| x.is::<gtk::Switch>())
        .and_downcast()
        .unwrap();
    assert!(!switch.is_active() && !switch.is_sensitive());
    assert!(texts(&row).contains("Only the devices of this computer can move."));
    w.screenshot("main-window");

    // Open a ROM file for the selected card: the file chooser, then the verdict.
    let open: gtk::Button = find_widget(&w.root(), &|x| {
        x.downcast_ref::<gtk::Button>()
            .and_then(|b| b.label())
            .is_some_and(|l| l == "Open ROM _File…")
    })
    .and_downcast()
    .expect("the Open ROM File button");
    open.emit_clicked();
    let chooser = || {
        gtk::Window::list_toplevels()
            .into_iter()
            .find_map(|t| t.downcast::<gtk::FileChooserDialog>().ok())
    };
    assert!(pump_until(Duration::from_secs(5), || chooser().is_some()));
    let dialog = chooser().unwrap();
    let rom = Path::new("/usr/lib/ipxe/qemu/efi-e1000.rom");
    dialog
        .set_file(&gio::File::for_path(rom))
        .expect("select the ROM");
    // The chooser loads the folder before the selection holds.
    assert!(pump_until(Duration::from_secs(5), || dialog
        .file()
        .and_then(|f| f.path())
        .is_some_and(|p| p == rom)));
    dialog.response(gtk::ResponseType::Accept);
    let verdict = pump_until(Duration::from_secs(5), || {
        w.details_text().contains("efi-e1000.rom: UEFI ROM present")
    });
    assert!(verdict, "{}", w.details_text());

    // The integrated GPU explains its findings in sentences.
    w.select(device("00:02.0"));
    let details = w.details_text();
    assert!(details.contains("Boot GPU"), "{details}");
    assert!(details.contains("Integrated graphics"), "{details}");

    // A shared group shows its verdict, its devices and the finding.
    w.select(Selection::Group(7));
    let details = w.details_text();
    assert!(details.contains("Devices in This Group"), "{details}");
    assert!(details.contains("0000:03:00.0") && details.contains("0000:04:00.0"));
    assert!(details.contains("Shared group"), "{details}");
    w.screenshot("shared-group");

    // Search by id: the group and its two DeckLinks.
    w.search("bdbd:a11b");
    let rows = w.row_texts();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(rows[0].0, "Group 7");
    // The selection survives the filter.
    assert_eq!(
        w.selection()
            .selected_item()
            .and_then(|o| node_of(&o))
            .map(|n| n.selection()),
        Some(Selection::Group(7))
    );
    w.search("no such device");
    assert_eq!(w.nodes().len(), 0);
    w.search("");
    assert_eq!(w.nodes().len(), 27);

    // Graphics only: the two GPUs in their groups.
    w.action("graphics-only", None);
    let rows = w.row_texts();
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert_eq!(
        rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>()[..][0],
        "Group 1"
    );
    w.action("graphics-only", None);
    assert_eq!(w.nodes().len(), 27);

    // The PCI bus view: bridges at the root, endpoints below them.
    w.action("view-mode", Some("bus".to_variant()));
    let roots: Vec<Selection> = w.nodes().iter().map(Node::selection).collect();
    assert!(roots.contains(&device("00:01.0")));
    assert!(
        !roots.contains(&device("01:00.0")),
        "closed bridges hide their endpoints"
    );
    let position = roots.iter().position(|s| *s == device("00:01.0")).unwrap();
    let row = w
        .selection()
        .item(position as u32)
        .and_downcast::<gtk::TreeListRow>()
        .unwrap();
    row.set_expanded(true);
    let below: Vec<Selection> = w.nodes().iter().map(Node::selection).collect();
    assert_eq!(below[position + 1], device("01:00.0"));
    // A search opens the branches that lead to a match.
    w.search("nouveau");
    let found: Vec<Selection> = w.nodes().iter().map(Node::selection).collect();
    assert_eq!(found, vec![device("00:01.0"), device("01:00.0")]);
    w.search("");
    w.action("view-mode", Some("groups".to_variant()));

    // A driver changes on the host: the list follows within a few seconds.
    let link = host.path().join("sys/bus/pci/devices/0000:00:19.0/driver");
    let target = std::fs::read_link(&link).unwrap();
    let vfio = target.with_file_name("vfio-pci");
    std::fs::create_dir_all(host.path().join("sys/bus/pci/drivers/vfio-pci")).unwrap();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&vfio, &link).unwrap();
    // The kernel's uevent names the bound driver as well.
    let uevent = host.path().join("sys/bus/pci/devices/0000:00:19.0/uevent");
    let text = std::fs::read_to_string(&uevent).unwrap();
    std::fs::write(&uevent, text.replace("DRIVER=e1000e", "DRIVER=vfio-pci")).unwrap();
    let followed = pump_until(Duration::from_secs(10), || {
        w.row_texts()
            .iter()
            .any(|(_, sub)| sub.contains("00:19.0") && sub.contains("vfio-pci"))
    });
    assert!(followed, "the list did not follow the driver change");

    // The About window, the preferences and the shortcuts exist.
    assert!(w.window().help_overlay().is_some(), "a shortcuts window");
    let app = relm4::main_application();
    for (action, kind) in [
        ("about", "AdwAboutWindow"),
        ("preferences", "AdwPreferencesWindow"),
    ] {
        // The test's application is not registered: activate through the map.
        app.lookup_action(action)
            .unwrap_or_else(|| panic!("no action app.{action}"))
            .activate(None);
        let shown = pump_until(Duration::from_secs(5), || {
            gtk::Window::list_toplevels()
                .iter()
                .any(|t| t.type_().name() == kind && t.is_visible())
        });
        assert!(shown, "app.{action} shows a {kind}");
        for t in gtk::Window::list_toplevels() {
            if t.type_().name() == kind {
                t.downcast::<gtk::Window>().unwrap().destroy();
            }
        }
    }

    // Every button that shows only an icon says what it does.
    let mut unlabelled = Vec::new();
    fn walk(w: &gtk::Widget, out: &mut Vec<String>) {
        // Hidden widgets, and GTK's and libadwaita's own window and toast buttons.
        if !w.is_visible() || w.is::<gtk::WindowControls>() || w.type_().name() == "AdwToastWidget"
        {
            return;
        }
        let icon_only = match (
            w.downcast_ref::<gtk::Button>(),
            w.downcast_ref::<gtk::MenuButton>(),
        ) {
            (Some(b), _) => b.label().is_none() && b.child().is_some_and(|c| c.is::<gtk::Image>()),
            (_, Some(b)) => b.label().is_none(),
            _ => false,
        };
        if icon_only && w.tooltip_text().is_none() {
            out.push(format!(
                "{} in {:?}",
                w.type_().name(),
                w.parent().map(|p| p.type_().name())
            ));
        }
        let mut child = w.first_child();
        while let Some(c) = child {
            walk(&c, out);
            child = c.next_sibling();
        }
    }
    walk(&w.root(), &mut unlabelled);
    assert!(
        unlabelled.is_empty(),
        "icon-only buttons without a tooltip: {unlabelled:?}"
    );

    // Reload on request keeps working.
    w.action("refresh", None);
    assert!(pump_until(Duration::from_secs(10), || w.nodes().len() == 27));
    w.close();
}

fn iommu_off() {
    let host = write_host("iommu-off");
    let w = Window::open(Source::Captured(host.path().to_owned()));
    w.wait_page("iommu-off");
    let mut texts = Vec::new();
    collect_labels(&w.root(), &mut texts);
    let all = texts.join("\n");
    assert!(all.contains("The IOMMU Is Off"), "{all}");
    assert!(all.contains("intel_iommu=on"), "{all}");
    assert!(all.contains("Explore a Sample Machine"), "{all}");
    w.screenshot("iommu-off");

    // The devices are still there, on the PCI bus.
    let button: gtk::Button = find_widget(&w.root(), &|w| {
        w.downcast_ref::<gtk::Button>()
            .and_then(|b| b.label())
            .is_some_and(|l| l == "Show the Devices Anyway")
    })
    .and_downcast()
    .expect("the button");
    button.emit_clicked();
    w.wait_page("browse");
    assert!(!w.nodes().is_empty());

    // The samples are one click away.
    w.action("open-sample", Some("ivy-bridge-desktop".to_variant()));
    w.wait_page("browse");
    assert!(pump_until(Duration::from_secs(10), || w
        .row_texts()
        .iter()
        .any(|(t, _)| t == "Group 7")));
    w.close();
}

fn errors() {
    let w = Window::open(Source::Captured("/nonexistent/capture".into()));
    w.wait_page("error");
    let mut texts = Vec::new();
    collect_labels(&w.root(), &mut texts);
    let all = texts.join("\n");
    assert!(all.contains("Could Not Read the Devices"), "{all}");
    assert!(all.contains("/nonexistent/capture"), "{all}");

    // An empty directory is not a host either, and says why.
    let empty = tempfile::tempdir().unwrap();
    w.controller
        .emit(traspaso::ui::app::AppMsg::Open(Source::Captured(
            empty.path().to_owned(),
        )));
    assert!(pump_until(Duration::from_secs(10), || {
        let mut texts = Vec::new();
        collect_labels(&w.root(), &mut texts);
        w.page() == "error"
            && texts
                .iter()
                .any(|t| t.contains(&empty.path().display().to_string()))
    }));
    w.close();

    // Bad command lines: a clear message and exit code 2, before any window.
    for args in [
        &["traspaso", "--demo", "nope"][..],
        &["traspaso", "--root"],
        &["traspaso", "--root", "/x", "--demo"],
        &["traspaso", "--bogus"],
    ] {
        let r = traspaso::ui::parse_args(args.iter().map(Into::into));
        assert!(r.is_err(), "{args:?} should be refused");
    }
    let ok = traspaso::ui::parse_args(["traspaso", "--demo"].iter().map(Into::into)).unwrap();
    assert_eq!(ok.source, Source::Sample("ivy-bridge-desktop"));
}

fn samples() {
    for sample in traspaso::samples::SAMPLES {
        let w = Window::open(Source::Sample(sample.id));
        w.wait_page("browse");
        let rows = w.row_texts();
        assert!(rows.len() > 5, "{}: {rows:#?}", sample.id);
        let mut texts = Vec::new();
        collect_labels(&w.root(), &mut texts);
        assert!(
            texts.iter().any(|t| *t == sample.description()),
            "{}: the info bar explains the sample",
            sample.id
        );
        if sample.id == "amd-chipset-shared" {
            assert!(rows.iter().any(|(_, s)| s.starts_with("Shared by")));
        }
        w.close();
    }
}

fn spanish() {
    let host = write_host("ivy-bridge-desktop");
    let w = Window::open(Source::Captured(host.path().to_owned()));
    w.wait_page("browse");
    let rows = w.row_texts();
    let (_, shared) = rows
        .iter()
        .find(|(t, _)| t == "Grupo 7")
        .unwrap_or_else(|| panic!("Spanish group titles: {rows:#?}"));
    assert!(shared.starts_with("Compartido por"), "{shared}");
    w.select(device("01:00.0"));
    let details = w.details_text();
    for expected in ["Cesión a una máquina virtual", "Atributos", "ROM opcional"] {
        assert!(details.contains(expected), "{expected:?} in:\n{details}");
    }
    w.screenshot("main-window-es");
    w.select(Selection::Group(7));
    w.screenshot("shared-group-es");
    w.close();

    let host = write_host("iommu-off");
    let w = Window::open(Source::Captured(host.path().to_owned()));
    w.wait_page("iommu-off");
    let mut texts = Vec::new();
    collect_labels(&w.root(), &mut texts);
    assert!(
        texts.iter().any(|t| t == "La IOMMU está desactivada"),
        "{texts:?}"
    );
    w.screenshot("iommu-off-es");
    w.close();
}

/// The Virtual Machines window on libvirt's test driver (in this process,
/// with its VM "test" running), the groups picked from the sample desktop.
fn vms() {
    let host = write_host("ivy-bridge-desktop");
    let mut init = AppInit::new(Source::Captured(host.path().to_owned()), pci_ids());
    init.connection = Some("test:///default".into());
    let w = Window::open_with(init);
    w.wait_page("browse");
    w.action("virtual-machines", None);
    let window = || toplevel("vm-window").expect("the Virtual Machines window");
    let wait_text = |what: &str, done: &dyn Fn(&str) -> bool| {
        let ok = pump_until(Duration::from_secs(20), || {
            toplevel("vm-window").is_some_and(|v| done(&texts(v.upcast_ref())))
        });
        assert!(ok, "{what}: {}", texts(window().upcast_ref()));
    };
    let row = |name: &str| named(&window(), &format!("vm-{name}"));
    let click = |row_name: &str, button: &str| {
        let row = row(row_name).unwrap_or_else(|| panic!("no row for {row_name}"));
        named(&row, button)
            .and_downcast::<gtk::Button>()
            .unwrap_or_else(|| panic!("no {button} on {row_name}"))
            .emit_clicked();
        pump(Duration::from_millis(100));
    };
    let subtitle = |name: &str| {
        row(name)
            .and_downcast::<adw::ActionRow>()
            .and_then(|r| r.subtitle())
            .map(String::from)
            .unwrap_or_default()
    };
    let wait_subtitle = |name: &str, starts: &str| {
        let ok = pump_until(Duration::from_secs(20), || {
            subtitle(name).starts_with(starts)
        });
        assert!(ok, "{name}: {:?}, expected {starts}", subtitle(name));
    };
    wait_text("the test VM", &|t| t.contains("test"));
    wait_subtitle("test", "Running");
    click("test", "vm-shutdown");
    wait_subtitle("test", "Off");

    // Create a VM with the GPU's group.
    named(&window(), "vm-new")
        .and_downcast::<gtk::Button>()
        .expect("the New button")
        .emit_clicked();
    pump(Duration::from_millis(200));
    let dialog = toplevel("vm-create").expect("the New Virtual Machine dialog");
    assert!(
        texts(dialog.upcast_ref()).contains("not of this computer"),
        "a sample's devices are said to be another machine's"
    );
    let name = named(&dialog, "vm-name")
        .and_downcast::<adw::EntryRow>()
        .expect("the name field");
    let create = named(&dialog, "vm-create-button")
        .and_downcast::<gtk::Button>()
        .expect("the Create button");
    name.set_text("bad name");
    create.emit_clicked();
    pump(Duration::from_millis(100));
    assert!(name.has_css_class("error"), "a bad name is marked");
    assert!(toplevel("vm-create").is_some(), "and the dialog stays");
    name.set_text("ws");
    // The test driver has no "default" pool: no new disk.
    named(&dialog, "vm-disk")
        .and_downcast::<gtk::SpinButton>()
        .expect("the disk size")
        .set_value(0.0);
    named(&dialog, "group-1")
        .and_downcast::<gtk::CheckButton>()
        .expect("the GPU group")
        .set_active(true);
    create.emit_clicked();
    pump(Duration::from_millis(100));
    wait_subtitle("ws", "Off · 0000:01:00.0, 0000:01:00.1");
    screenshot(window().upcast_ref(), "virtual-machines");

    // Start it, force it off, delete it (confirmed).
    click("ws", "vm-start");
    wait_subtitle("ws", "Running");
    click("ws", "vm-destroy");
    wait_subtitle("ws", "Off");
    click("ws", "vm-delete");
    pump(Duration::from_millis(200));
    let confirm = toplevel("vm-delete-dialog")
        .and_downcast::<adw::MessageDialog>()
        .expect("a confirmation");
    confirm.response("delete");
    let gone = pump_until(Duration::from_secs(20), || row("ws").is_none());
    assert!(gone, "ws is still listed");

    // Another connection that cannot be reached: the error page says why.
    let entry = named(&window(), "connection-entry")
        .and_downcast::<gtk::Entry>()
        .expect("the connection field");
    entry.set_text("qemu:///system?socket=/nonexistent/sock");
    entry.emit_activate();
    let error = pump_until(Duration::from_secs(20), || {
        named(&window(), "vm-error").is_some_and(|e| e.is_mapped())
    });
    assert!(error, "no error page: {}", texts(window().upcast_ref()));
    assert!(
        texts(window().upcast_ref()).contains("Cannot reach libvirt"),
        "{}",
        texts(window().upcast_ref())
    );
    window().destroy();
    w.close();
}

/// A host seen only through libvirt (the test driver's node file), opened
/// from the menu's dialog, in the same tree; nothing can be moved there.
fn remote() {
    let w = Window::open(Source::Sample(traspaso::samples::SAMPLES[0].id));
    w.wait_page("browse");
    w.action("open-remote", None);
    pump(Duration::from_millis(200));
    let dialog = toplevel("remote-dialog")
        .and_downcast::<adw::MessageDialog>()
        .expect("the Open a libvirt Host dialog");
    let node = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libvirt/remote-host.xml");
    let uri = format!("test://{}", node.display());
    named(&dialog, "remote-uri")
        .and_downcast::<gtk::Entry>()
        .expect("the URI field")
        .set_text(&uri);
    dialog.response("open");
    let ok = pump_until(Duration::from_secs(20), || {
        w.page() == "browse" && w.row_texts().iter().any(|(t, _)| t == "Group 7")
    });
    assert!(ok, "the remote host's groups: {:#?}", w.row_texts());
    let rows = w.row_texts();
    let group_7 = rows.iter().find(|(t, _)| t == "Group 7").unwrap();
    assert!(group_7.1.starts_with("Shared by"), "{group_7:?}");
    assert!(
        rows.iter()
            .any(|(t, _)| t.contains("GM206 [GeForce GTX 950]")),
        "{rows:#?}"
    );
    assert!(
        texts(w.root().upcast_ref()).contains(&format!("libvirt host: {uri}")),
        "the title names the host"
    );
    w.select(device("0000:01:00.0"));
    let details = w.details_text();
    assert!(details.contains("GM206 [GeForce GTX 950]"), "{details}");
    assert!(
        details.contains("Unknown (libvirt does not report it)"),
        "{details}"
    );
    assert!(!details.contains("Option ROM\nNo"), "{details}");
    let row = named(&w.window(), "move-row")
        .and_downcast::<adw::ActionRow>()
        .expect("the move row");
    assert_eq!(
        row.subtitle().as_deref(),
        Some("Only the devices of this computer can move."),
        "nothing moves on a remote host"
    );
    w.close();
}

fn settings() {
    // With the schema installed the view is remembered across windows.
    assert!(gio::SettingsSchemaSource::default()
        .and_then(|s| s.lookup(traspaso::config::APP_ID, true))
        .is_some());
    let host = write_host("ivy-bridge-desktop");
    let w = Window::open(Source::Captured(host.path().to_owned()));
    w.wait_page("browse");
    w.action("view-mode", Some("bus".to_variant()));
    w.window().set_default_size(1000, 700);
    w.window().close();
    pump(Duration::from_millis(100));
    let saved = gio::Settings::new(traspaso::config::APP_ID);
    assert_eq!(saved.string("view"), "bus");
    assert_eq!(saved.int("window-width"), 1000);
    w.close();

    let w = Window::open(Source::Captured(host.path().to_owned()));
    w.wait_page("browse");
    assert!(
        !w.nodes()
            .iter()
            .any(|n| matches!(n.selection(), Selection::Group(_))),
        "the second window starts in the bus view"
    );
    w.close();
}

/// Walk the setup wizard page by page on the sample desktop, its kernel
/// command line without iommu=pt so the "Prepare" page has a command.
fn wizard(spanish: bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("data/samples/ivy-bridge-desktop.host"))
        .unwrap()
        .replace(" iommu=pt", "")
        .replace("quiet intel_iommu=on iommu=pt", "quiet intel_iommu=on");
    let spec = traspaso::fixture::HostSpec::parse(&text).unwrap();
    let parent = tempfile::tempdir().unwrap();
    let path = parent.path().join("ivy-bridge-desktop");
    spec.write(&path).unwrap();
    let w = Window::open(Source::Captured(path));
    w.wait_page("browse");
    w.action("wizard", None);
    let find = || {
        gtk::Window::list_toplevels()
            .into_iter()
            .filter_map(|t| t.downcast::<gtk::Window>().ok())
            .find(|t| {
                t.is_visible()
                    && find_widget(t.upcast_ref(), &|x| x.widget_name() == "wizard-pages").is_some()
            })
    };
    assert!(
        pump_until(Duration::from_secs(5), || find().is_some()),
        "the wizard opens"
    );
    let wizard = find().unwrap();
    let pages: gtk::Stack =
        find_widget(wizard.upcast_ref(), &|x| x.widget_name() == "wizard-pages")
            .and_downcast()
            .unwrap();
    let next: gtk::Button = find_widget(wizard.upcast_ref(), &|x| x.widget_name() == "wizard-next")
        .and_downcast()
        .unwrap();
    let lang = if spanish { "-es" } else { "" };
    let visible = |pages: &gtk::Stack| texts(&pages.visible_child().unwrap());
    let expect = |english: &[&str], spanish_words: &[&str]| -> Vec<String> {
        if spanish { spanish_words } else { english }
            .iter()
            .map(|s| s.to_string())
            .collect()
    };

    let steps: [(&str, Vec<String>); 5] = [
        ("welcome", expect(&["Welcome to Traspaso"], &["Bienvenido a Traspaso"])),
        (
            "hardware",
            expect(
                &["Your Hardware", "IOMMU in the firmware", "The firmware provides the DMAR table."],
                &["Su hardware", "IOMMU en el firmware"],
            ),
        ),
        (
            "gpu",
            expect(
                &["Choose the GPU for the VM", "GM206 [GeForce GTX 950]", "You can give"],
                &["GM206 [GeForce GTX 950]"],
            ),
        ),
        (
            "prepare",
            expect(
                &["Prepare the Host", "Boot configuration", "sudo sed -i 's/^GRUB_CMDLINE_LINUX_DEFAULT=\"/&iommu=pt /' /etc/default/grub && sudo update-grub"],
                &["sudo sed -i 's/^GRUB_CMDLINE_LINUX_DEFAULT=\"/&iommu=pt /' /etc/default/grub && sudo update-grub"],
            ),
        ),
        ("done", expect(&["Done", "Share What You Found", "Passthrough mode"], &["Listo"])),
    ];
    for (i, (name, words)) in steps.iter().enumerate() {
        assert!(
            pump_until(Duration::from_secs(3), || pages
                .visible_child_name()
                .as_deref()
                == Some(*name)),
            "page {i} is {name}, not {:?}",
            pages.visible_child_name()
        );
        let shown = visible(&pages);
        for word in words {
            assert!(
                shown.contains(word.as_str()),
                "{name}: {word:?} in:\n{shown}"
            );
        }
        if *name == "gpu" {
            // The GTX 950 is chosen; the integrated boot GPU cannot be.
            let radios = {
                let mut found = Vec::new();
                fn walk(w: &gtk::Widget, out: &mut Vec<gtk::CheckButton>) {
                    if let Some(b) = w.downcast_ref::<gtk::CheckButton>() {
                        out.push(b.clone());
                    }
                    let mut c = w.first_child();
                    while let Some(x) = c {
                        walk(&x, out);
                        c = x.next_sibling();
                    }
                }
                walk(&pages.visible_child().unwrap(), &mut found);
                found
            };
            assert_eq!(radios.len(), 2);
            assert_eq!(radios.iter().filter(|r| r.is_active()).count(), 1);
            assert!(
                radios.iter().any(|r| !r.is_sensitive()),
                "the boot GPU is not selectable"
            );
        }
        screenshot(&wizard, &format!("wizard-{}{lang}", i + 1));
        if *name == "done" {
            // Copy the report: the clipboard holds it.
            let copy: gtk::Button = find_widget(wizard.upcast_ref(), &|x| {
                x.downcast_ref::<gtk::Button>()
                    .and_then(|b| b.label())
                    .is_some_and(|l| {
                        l == "_Copy Report" || l == "_Copiar el informe" || l.contains("Copi")
                    })
            })
            .and_downcast()
            .expect("the copy button");
            copy.emit_clicked();
            let clipboard = gtk::gdk::Display::default().unwrap().clipboard();
            let text = std::rc::Rc::new(std::cell::RefCell::new(None::<String>));
            let slot = text.clone();
            clipboard.read_text_async(None::<&gio::Cancellable>, move |r| {
                *slot.borrow_mut() =
                    Some(r.ok().flatten().map(|s| s.to_string()).unwrap_or_default());
            });
            assert!(pump_until(Duration::from_secs(3), || text
                .borrow()
                .is_some()));
            let report = text.borrow().clone().unwrap();
            assert!(report.starts_with("# "), "{report}");
            assert!(report.contains("[10de:1402]"), "{report}");
        }
        next.emit_clicked();
    }
    // Done closes the wizard, and it will not open by itself again.
    assert!(
        pump_until(Duration::from_secs(3), || find().is_none()),
        "the wizard closes"
    );
    w.close();
}
