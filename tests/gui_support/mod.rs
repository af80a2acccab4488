//! What the GUI tests and the GUI benchmark share: opening the real window,
//! running the main loop, reading rows and labels, and running under Xvfb.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use relm4::adw::prelude::*;
use relm4::gtk::glib;
use relm4::prelude::*;
use relm4::{adw, gtk};

use traspaso::fixture::HostSpec;
use traspaso::ui::app::find_widget;
use traspaso::ui::tree::{node_of, Node, Selection};
use traspaso::ui::{App, AppInit, Source};

/// A command that runs `program` under Xvfb and a private session bus when
/// there is no display (TESTBED.md: dbus-run-session inside xvfb-run).
pub fn headless(program: &Path) -> Command {
    let mut cmd = if std::env::var_os("DISPLAY").is_none() {
        let mut c = Command::new("xvfb-run");
        c.args([
            "-a",
            "-s",
            "-screen 0 1280x800x24",
            "dbus-run-session",
            "--",
        ]);
        c.arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.env("GSK_RENDERER", "cairo")
        .env("LANG", "C.UTF-8")
        .env("LANGUAGE", "en")
        .env("NO_AT_BRIDGE", "1")
        .env("TRASPASO_QUIET", "1");
    cmd
}

/// Set up translations, GTK and libadwaita in this process, animations off.
pub fn init_gtk() {
    traspaso::i18n::init();
    glib::set_application_name("Traspaso");
    gtk::init().expect("GTK needs a display");
    adw::init().expect("libadwaita");
    if let Some(settings) = gtk::Settings::default() {
        settings.set_gtk_enable_animations(false);
    }
}

pub struct Window {
    pub controller: Controller<App>,
}

impl Window {
    pub fn open(source: Source) -> Self {
        Self::open_with(AppInit::new(source, pci_ids()))
    }

    pub fn open_with(init: AppInit) -> Self {
        let controller = App::builder().launch(init).detach();
        controller.widget().present();
        Window { controller }
    }

    pub fn root(&self) -> gtk::Widget {
        self.controller.widget().clone().upcast()
    }

    pub fn window(&self) -> adw::ApplicationWindow {
        self.controller.widget().clone()
    }

    pub fn page(&self) -> String {
        let pages = self
            .window()
            .content()
            .and_downcast::<adw::ToastOverlay>()
            .and_then(|o| o.child())
            .and_downcast::<gtk::Stack>()
            .expect("the page stack");
        pages
            .visible_child_name()
            .map(Into::into)
            .unwrap_or_default()
    }

    pub fn wait_page(&self, page: &str) {
        let ok = pump_until(Duration::from_secs(20), || self.page() == page);
        assert!(ok, "expected page {page}, got {}", self.page());
    }

    pub fn list(&self) -> gtk::ListView {
        find_widget(&self.root(), &|w| w.widget_name() == "device-list")
            .and_downcast()
            .expect("the device list")
    }

    pub fn selection(&self) -> gtk::SingleSelection {
        self.list()
            .model()
            .and_downcast()
            .expect("a single selection")
    }

    pub fn nodes(&self) -> Vec<Node> {
        let model = self.selection();
        (0..model.n_items())
            .filter_map(|i| model.item(i).and_then(|o| node_of(&o)))
            .collect()
    }

    pub fn row_texts(&self) -> Vec<(String, String)> {
        self.nodes().iter().map(Node::texts).collect()
    }

    pub fn select(&self, wanted: Selection) {
        let position = self
            .nodes()
            .iter()
            .position(|n| n.selection() == wanted)
            .unwrap_or_else(|| panic!("no row for {wanted:?}"));
        self.selection().set_selected(position as u32);
        pump(Duration::from_millis(100));
    }

    pub fn details_text(&self) -> String {
        let details =
            find_widget(&self.root(), &|w| w.widget_name() == "details").expect("the details pane");
        let mut texts = Vec::new();
        collect_labels(&details, &mut texts);
        texts.join("\n")
    }

    pub fn action(&self, name: &str, target: Option<glib::Variant>) {
        let window = self.window();
        let action = window
            .lookup_action(name)
            .unwrap_or_else(|| panic!("no action win.{name}"));
        match (target, action.state()) {
            (Some(t), Some(_)) => action.change_state(&t),
            (None, Some(state)) => {
                let on = state.get::<bool>().unwrap_or(false);
                action.change_state(&(!on).to_variant());
            }
            (t, None) => action.activate(t.as_ref()),
        }
        pump(Duration::from_millis(100));
    }

    pub fn search(&self, text: &str) {
        let entry: gtk::SearchEntry =
            find_widget(&self.root(), &|w| w.widget_name() == "search-entry")
                .and_downcast()
                .expect("the search entry");
        entry.set_text(text);
        // The entry waits a moment before it reports a change.
        pump(Duration::from_millis(400));
    }

    pub fn screenshot(&self, name: &str) {
        screenshot(self.window().upcast_ref(), name);
    }

    pub fn close(self) {
        // Destroy the window before the controller goes (TESTBED.md).
        self.controller.widget().destroy();
        pump(Duration::from_millis(50));
        drop(self.controller);
    }
}

pub fn collect_labels(widget: &gtk::Widget, out: &mut Vec<String>) {
    if let Some(label) = widget.downcast_ref::<gtk::Label>() {
        if label.is_child_visible() {
            out.push(label.label().into());
        }
    }
    let mut child = widget.first_child();
    while let Some(c) = child {
        if c.is_visible() {
            collect_labels(&c, out);
        }
        child = c.next_sibling();
    }
}

pub fn pump(duration: Duration) {
    pump_until(duration, || false);
}

/// Run the main loop until `done` or the time is up; returns `done()`.
pub fn pump_until(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let context = glib::MainContext::default();
    let start = Instant::now();
    loop {
        while context.iteration(false) {}
        if done() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn pci_ids() -> Option<PathBuf> {
    ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Write a described host into `TEMP/NAME` (the window shows the folder's name).
pub fn write_host(name: &str) -> HostDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root
        .join("tests/fixtures/hosts")
        .join(format!("{name}.host"));
    let path = if fixture.exists() {
        fixture
    } else {
        root.join("data/samples").join(format!("{name}.host"))
    };
    let spec = HostSpec::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let parent = tempfile::tempdir().unwrap();
    let path = parent.path().join(name);
    spec.write(&path).unwrap();
    HostDir {
        _parent: parent,
        path,
    }
}

pub struct HostDir {
    _parent: tempfile::TempDir,
    path: PathBuf,
}

impl HostDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub fn device(a: &str) -> Selection {
    Selection::Device(a.parse().unwrap())
}

/// Save a window as `TRASPASO_SCREENSHOTS/NAME.png`, when that is set.
pub fn screenshot(window: &gtk::Window, name: &str) {
    let Some(dir) = std::env::var_os("TRASPASO_SCREENSHOTS") else {
        return;
    };
    pump(Duration::from_millis(300));
    let (w, h) = (window.width(), window.height());
    let paintable = gtk::WidgetPaintable::new(Some(window));
    let snapshot = gtk::Snapshot::new();
    paintable.snapshot(&snapshot, w as f64, h as f64);
    let node = snapshot.to_node().expect("something was drawn");
    let renderer = window
        .native()
        .and_then(|n| n.renderer())
        .expect("a renderer");
    let texture = renderer.render_texture(
        &node,
        Some(&gtk::graphene::Rect::new(0.0, 0.0, w as f32, h as f32)),
    );
    let path = PathBuf::from(dir).join(format!("{name}.png"));
    texture.save_to_png(&path).expect("save the screenshot");
    println!("saved {}", path.display());
}

/// Every label under `widget` that is showing, joined by newlines.
pub fn texts(widget: &gtk::Widget) -> String {
    let mut out = Vec::new();
    collect_labels(widget, &mut out);
    out.join("\n")
}

/// The open toplevel window with this widget name.
pub fn toplevel(name: &str) -> Option<gtk::Window> {
    let list = gtk::Window::toplevels();
    (0..list.n_items())
        .filter_map(|i| list.item(i).and_downcast::<gtk::Window>())
        .find(|w| w.widget_name() == name && w.is_visible())
}

/// The widget named `name` inside `root`.
pub fn named(root: &impl IsA<gtk::Widget>, name: &str) -> Option<gtk::Widget> {
    find_widget(root.upcast_ref(), &|w| w.widget_name() == name)
}
