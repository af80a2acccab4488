//! The GTK 4 + libadwaita app, built with Relm4. Components only: every host
//! read runs off the main loop in a command and comes back as a message.
//!
//! - [`app`]: the window (tree, details, status pages, actions, settings)
//! - [`tree`]: the device list over a `TreeListModel`
//! - [`details`]: the details pane
//! - [`model`]: what to show, computed without GTK
//! - [`preferences`], [`settings`]: the preferences window and GSettings

pub mod app;
pub mod details;
pub mod model;
pub mod preferences;
pub mod settings;
pub mod tree;
pub mod vms;
pub mod wizard;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, Command};
use relm4::adw::prelude::*;
use relm4::gtk::glib;
use relm4::{adw, gtk, RelmApp};

pub use app::{App, AppInit, Source};

use crate::config;
use crate::i18n::gettext;
use crate::samples::{Sample, SAMPLES};

fn command() -> Command {
    let ids: Vec<&str> = SAMPLES.iter().map(|s| s.id).collect();
    let command = Command::new("traspaso")
        .about(gettext(
            "See which devices of this computer can be given to a virtual machine.",
        ))
        .version(config::VERSION)
        .help_template(format!(
            "{{about}}\n\n{}: {{usage}}\n\n{}:\n{{options}}\n",
            gettext("Usage"),
            gettext("Options")
        ))
        .override_usage(format!("traspaso [{}]", gettext("OPTIONS")));
    crate::ctl::with_help_and_version(command)
        .arg(
            Arg::new("root")
                .long("root")
                .value_name(gettext("DIR"))
                .value_parser(clap::value_parser!(PathBuf))
                .conflicts_with("demo")
                .help(gettext(
                    "Show the host captured in DIR instead of this computer",
                )),
        )
        .arg(
            Arg::new("demo")
                .long("demo")
                .value_name(gettext("SAMPLE"))
                .num_args(0..=1)
                .default_missing_value(SAMPLES[0].id)
                .value_parser(ids)
                .help(gettext("Show a built-in sample machine")),
        )
        .arg(
            Arg::new("pci-ids")
                .long("pci-ids")
                .value_name(gettext("FILE"))
                .value_parser(clap::value_parser!(PathBuf))
                .help(gettext("Take device names from this pci.ids file")),
        )
        .arg(
            Arg::new("connect")
                .long("connect")
                .value_name(gettext("URI"))
                .help(gettext(
                    "Show the virtual machines of this libvirt connection (default: the last one used)",
                )),
        )
}

/// Parse the command line into how the window starts.
pub fn parse_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<AppInit, ExitCode> {
    let matches = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) {
                let _ = err.print();
                return Err(ExitCode::SUCCESS);
            }
            eprintln!("traspaso: {}", crate::ctl::usage_message(&err));
            eprintln!("{}", gettext("Try “traspaso --help” for more information."));
            return Err(ExitCode::from(2));
        }
    };
    let source = if let Some(dir) = matches.get_one::<PathBuf>("root") {
        Source::Captured(dir.clone())
    } else if let Some(id) = matches.get_one::<String>("demo") {
        Source::Sample(Sample::find(id).map(|s| s.id).unwrap_or(SAMPLES[0].id))
    } else {
        Source::Live
    };
    let mut init = AppInit::new(source, matches.get_one::<PathBuf>("pci-ids").cloned());
    init.connection = matches.get_one::<String>("connect").cloned();
    Ok(init)
}

/// A row whose title and subtitle are plain text, never Pango markup:
/// device names, paths and libvirt's words go into rows as they are (an
/// "&" or "<" in them must show, not break the row).
pub fn plain_row() -> adw::ActionRow {
    let row = adw::ActionRow::new();
    row.set_use_markup(false);
    row
}

/// Start the app with the process's arguments.
pub fn run() -> ExitCode {
    let init = match parse_args(std::env::args_os()) {
        Ok(init) => init,
        Err(code) => return code,
    };
    // Scan while GTK starts: the first frame can then show the devices.
    let init = AppInit {
        preload: app::Preload::start(&init.source, init.pci_ids.clone()),
        ..init
    };
    glib::set_application_name(&gettext("Traspaso"));
    let app = RelmApp::new(config::APP_ID).with_args(Vec::new());
    app.run::<App>(init);
    ExitCode::SUCCESS
}

/// Attach the keyboard shortcuts window (Ctrl+?) to the main window.
pub fn set_help_overlay(window: &adw::ApplicationWindow) {
    let builder = gtk::Builder::new();
    builder.set_translation_domain(Some(config::GETTEXT_PACKAGE));
    match builder.add_from_string(include_str!("../../data/resources/shortcuts.ui")) {
        Ok(()) => {
            let overlay = builder.object::<gtk::ShortcutsWindow>("help_overlay");
            window.set_help_overlay(overlay.as_ref());
        }
        // A broken built-in file is a bug: say so, and run without the window.
        Err(e) => glib::g_warning!("traspaso", "shortcuts.ui: {e}"),
    }
}

/// The About window.
pub fn show_about(parent: &adw::ApplicationWindow) {
    let about = adw::AboutWindow::builder()
        .transient_for(parent)
        .modal(true)
        .application_name(gettext("Traspaso"))
        .application_icon(config::APP_ID)
        .version(config::VERSION)
        .developer_name(gettext("The Traspaso developers"))
        .website("https://github.com/traspaso/traspaso")
        .issue_url("https://github.com/traspaso/traspaso/issues")
        .license_type(gtk::License::Gpl30)
        .comments(gettext("Turn a Linux PC into a virtual workstation: see which devices can be given to a virtual machine, and give a GPU to one."))
        // Translators: your names, one per line, as they should appear in the About window.
        .translator_credits(gettext("translator-credits"))
        .build();
    about.present();
}

/// For the first-frame benchmark (`benches/first-frame.sh`): with
/// `TRASPASO_EXIT_AFTER_FIRST_FRAME` set, quit once the first frame that shows
/// the loaded topology has been painted, printing the time since
/// `TRASPASO_LAUNCHED_AT_NS` (the launcher's wall clock) when given.
pub fn first_frame_probe(window: &adw::ApplicationWindow) {
    if std::env::var_os("TRASPASO_EXIT_AFTER_FIRST_FRAME").is_none() {
        return;
    }
    fn after_next_paint(window: &adw::ApplicationWindow) {
        let Some(clock) = window.frame_clock() else {
            return;
        };
        let done = std::cell::Cell::new(false);
        clock.connect_after_paint(move |_| {
            if !done.replace(true) {
                // The script passes its clock at launch: print launch to this frame.
                let launched = std::env::var("TRASPASO_LAUNCHED_AT_NS")
                    .ok()
                    .and_then(|v| v.parse::<u128>().ok());
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                match launched {
                    Some(t) => println!("first-frame {} us", now.saturating_sub(t) / 1000),
                    None => println!("first-frame"),
                }
                relm4::main_application().quit();
            }
        });
        window.queue_draw();
    }
    if window.is_realized() {
        after_next_paint(window);
    } else {
        // Shown in the very first frame: wait until the window exists.
        window.connect_realize(after_next_paint);
    }
}

/// Every button under `root` that shows only an icon gets its tooltip as
/// accessible label, so a screen reader says what it does.
pub fn label_icon_buttons(root: &gtk::Widget) {
    let icon_only = |w: &gtk::Widget| -> Option<String> {
        let tooltip = w.tooltip_text()?;
        let has_label = if let Some(b) = w.downcast_ref::<gtk::Button>() {
            b.label().is_some()
        } else if let Some(b) = w.downcast_ref::<gtk::MenuButton>() {
            b.label().is_some()
        } else {
            return None;
        };
        (!has_label).then(|| tooltip.to_string())
    };
    if let Some(label) = icon_only(root) {
        set_accessible_label(root, &label);
    }
    let mut child = root.first_child();
    while let Some(c) = child {
        label_icon_buttons(&c);
        child = c.next_sibling();
    }
}

/// Give a widget an accessible label (what a screen reader says for it).
/// gtk-rs binds GtkAccessible only from GTK 4.10, but the C function exists
/// since 4.0, so it is declared here.
pub fn set_accessible_label(widget: &impl IsA<gtk::Widget>, label: &str) {
    use glib::translate::ToGlibPtr;
    extern "C" {
        fn gtk_accessible_update_property_value(
            accessible: *mut gtk::ffi::GtkWidget,
            n_properties: std::ffi::c_int,
            properties: *mut std::ffi::c_int,
            values: *const glib::gobject_ffi::GValue,
        );
    }
    // GTK_ACCESSIBLE_PROPERTY_LABEL in GtkAccessibleProperty.
    let mut property: std::ffi::c_int = 4;
    let value = glib::Value::from(label);
    // SAFETY: every GtkWidget is a GtkAccessible; one property and one GValue
    // holding a string, as the C API expects; GTK copies the value.
    unsafe {
        gtk_accessible_update_property_value(
            widget.as_ref().to_glib_none().0,
            1,
            &mut property,
            value.to_glib_none().0,
        );
    }
}
