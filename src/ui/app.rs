//! The main window: the device tree on the left, the details on the right
//! (an `adw::Leaflet`, so it folds on narrow screens), status pages for
//! loading, errors and a host without IOMMU. Every host read runs in a
//! command; the main loop only renders.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use relm4::adw::prelude::*;
use relm4::gtk::{gio, glib};
use relm4::prelude::*;
use relm4::{adw, gtk};

use super::details::{Details, DetailsMsg, DetailsOutput};
use super::model::{self, Filter, ViewMode};
use super::settings::Settings;
use super::tree::{DeviceList, Selection};
use super::vms::{Vms, VmsInit, VmsMsg};
use super::wizard::{Wizard, WizardInit, WizardOutput};
use crate::assign::Direction;
use crate::dbus::{self, CallError};
use crate::host::HostRoot;
use crate::i18n::{gettext, gettext_f, ngettext_f};
use crate::pci::PciAddress;
use crate::samples::{Sample, SampleHost, SAMPLES};
use crate::topology::{self, ScanOptions, Topology};
use crate::{readiness, report};

/// What the window shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// This computer.
    Live,
    /// A captured or described host tree (`traspaso --root DIR`).
    Captured(PathBuf),
    /// A built-in sample machine, by id.
    Sample(&'static str),
    /// A host seen through libvirt (`qemu+ssh://host/system`…): its node
    /// devices, without what only sysfs knows.
    Remote(String),
}

/// How the window starts.
#[derive(Debug, Clone)]
pub struct AppInit {
    pub source: Source,
    /// A pci.ids file instead of the system's.
    pub pci_ids: Option<PathBuf>,
    /// The first scan, started before GTK (see [`Preload::start`]).
    pub preload: Preload,
    /// The libvirt connection for the Virtual Machines window (`--connect`).
    pub connection: Option<String>,
}

impl AppInit {
    pub fn new(source: Source, pci_ids: Option<PathBuf>) -> Self {
        AppInit {
            source,
            pci_ids,
            preload: Preload::default(),
            connection: None,
        }
    }
}

/// A loaded host: the scan, the driver snapshot for polling, and the
/// readiness checks (absent if the host's files could not be read).
pub struct Loaded {
    open: Arc<OpenHost>,
    topology: Topology,
    bindings: Bindings,
    assessment: Option<Arc<Assessment>>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Loaded({:?})", self.open)
    }
}

/// What the readiness checks read and concluded.
pub struct Assessment {
    pub facts: readiness::HostFacts,
    pub readiness: Arc<readiness::Readiness>,
}

type LoadResult = Result<Loaded, String>;

/// The first scan of the host, run on its own thread while GTK starts, so
/// the first frame can already show the devices.
#[derive(Clone, Default)]
pub struct Preload(Arc<std::sync::Mutex<Option<std::thread::JoinHandle<LoadResult>>>>);

impl Preload {
    /// Start scanning `source` now.
    pub fn start(source: &Source, pci_ids: Option<PathBuf>) -> Self {
        let source = source.clone();
        let handle = std::thread::Builder::new()
            .name("traspaso-preload".into())
            .spawn(move || load(source, pci_ids))
            .ok();
        Preload(Arc::new(std::sync::Mutex::new(handle)))
    }

    /// The scan's result if it has finished; `None` if it has not (or never ran).
    fn take_if_finished(&self) -> Option<LoadResult> {
        let mut slot = self.0.lock().ok()?;
        if !slot.as_ref()?.is_finished() {
            return None;
        }
        slot.take()?.join().ok()
    }

    /// Wait for the scan (off the main loop); `None` if it never ran.
    fn wait(&self) -> Option<LoadResult> {
        let handle = self.0.lock().ok()?.take()?;
        handle.join().ok()
    }
}

impl std::fmt::Debug for Preload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Preload")
    }
}

/// The opened host; a sample keeps its temporary directory alive. A
/// remote host has no files here: an empty root stands in (nothing to poll,
/// no checks to run).
pub enum OpenHost {
    Plain(HostRoot),
    Sample(SampleHost),
    Remote(tempfile::TempDir, HostRoot),
}

impl OpenHost {
    fn host(&self) -> &HostRoot {
        match self {
            OpenHost::Plain(h) | OpenHost::Remote(_, h) => h,
            OpenHost::Sample(s) => &s.host,
        }
    }
}

impl std::fmt::Debug for OpenHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenHost({})", self.host().root().display())
    }
}

type Bindings = Vec<(String, Option<String>)>;

/// Which page fills the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Loading,
    Error,
    IommuOff,
    Browse,
}

impl Page {
    fn name(self) -> &'static str {
        match self {
            Page::Loading => "loading",
            Page::Error => "error",
            Page::IommuOff => "iommu-off",
            Page::Browse => "browse",
        }
    }
}

/// The main window's state.
pub struct App {
    init: AppInit,
    source: Source,
    open_host: Option<Arc<OpenHost>>,
    topology: Option<Arc<Topology>>,
    bindings: Option<Bindings>,
    page: Page,
    error: String,
    /// The user asked to see the devices although the IOMMU is off.
    browse_anyway: bool,
    mode: ViewMode,
    search: String,
    graphics_only: bool,
    /// Each load gets a number; a slower, older load never overwrites a newer one.
    generation: u64,
    loading: bool,
    polling: bool,
    /// Functions that match the search (0 shows "No Matching Devices").
    rows: usize,
    list: DeviceList,
    details: Controller<Details>,
    settings: Rc<Settings>,
    selected_title: String,
    /// Toast when the load in flight ends: the user asked for it, or a driver changed.
    announce_load: bool,
    announce_change: bool,
    /// The open file dialog: GTK does not keep native dialogs alive.
    dialog: Option<gtk::FileChooserNative>,
    assessment: Option<Arc<Assessment>>,
    wizard: Option<Controller<Wizard>>,
    vms: Option<Controller<Vms>>,
}

#[derive(Debug)]
pub enum AppMsg {
    Refresh,
    SetMode(ViewMode),
    Search(String),
    GraphicsOnly(bool),
    /// The list's selection changed; `user` when the user did it.
    Selected(Option<Selection>, bool),
    /// Select this node (from the details pane).
    Select(Selection),
    Open(Source),
    OpenCaptureDialog,
    /// Ask for a libvirt URI and show that host's devices.
    OpenRemoteDialog,
    BrowseAnyway,
    Poll,
    Toast(String),
    NavigateBack,
    ShowPreferences,
    ShowAbout,
    ShowWizard,
    ShowVms,
    WizardFinished,
    SaveReport,
    ReportSaved(Result<String, String>),
    /// Give the group of this function to a VM (`true`) or back to the host.
    Move(PciAddress, bool),
}

#[derive(Debug)]
pub enum AppCmd {
    Loaded { generation: u64, result: LoadResult },
    Polled { generation: u64, changed: bool },
    Saved(Result<String, String>),
    Moved(bool, Result<Vec<String>, CallError>),
}

/// A remote host's devices through libvirt's node devices.
fn load_remote(uri: &str, pci_ids: Option<PathBuf>) -> LoadResult {
    let topology = crate::vm::Libvirt::connect(Some(uri))
        .and_then(|lv| lv.topology(pci_ids.as_deref()))
        .map_err(|e| e.to_string())?;
    let empty = tempfile::tempdir().map_err(|e| e.to_string())?;
    let host = HostRoot::open(empty.path()).map_err(|e| e.to_string())?;
    Ok(Loaded {
        open: Arc::new(OpenHost::Remote(empty, host)),
        topology,
        bindings: Vec::new(),
        assessment: None,
    })
}

fn load(source: Source, pci_ids: Option<PathBuf>) -> LoadResult {
    let open = match &source {
        Source::Live => OpenHost::Plain(HostRoot::live()),
        Source::Captured(dir) => OpenHost::Plain(HostRoot::open(dir).map_err(|e| e.to_string())?),
        Source::Remote(uri) => return load_remote(uri, pci_ids),
        Source::Sample(id) => {
            let sample = Sample::find(id).ok_or_else(|| {
                gettext_f("There is no sample machine called “{id}”.", &[("id", id)])
            })?;
            OpenHost::Sample(sample.open().map_err(|e| e.to_string())?)
        }
    };
    let topology = Topology::load(open.host(), pci_ids.as_deref(), ScanOptions::default())
        .map_err(|e| e.to_string())?;
    let bindings = topology::bindings(open.host()).unwrap_or_default();
    let assessment = readiness::gather(open.host()).ok().map(|facts| {
        let readiness = Arc::new(readiness::assess(&facts, &topology));
        Arc::new(Assessment { facts, readiness })
    });
    Ok(Loaded {
        open: Arc::new(open),
        topology,
        bindings,
        assessment,
    })
}

impl App {
    fn filter(&self) -> Filter {
        Filter::new(&self.search, self.graphics_only)
    }

    fn start_load(&mut self, sender: &ComponentSender<Self>) {
        self.generation += 1;
        self.loading = true;
        let generation = self.generation;
        let source = self.source.clone();
        let pci_ids = self.init.pci_ids.clone();
        // The first load may already be running since before GTK started.
        let preload = (generation == 1).then(|| self.init.preload.clone());
        sender.spawn_oneshot_command(move || {
            let result = preload
                .and_then(|p| p.wait())
                .unwrap_or_else(|| load(source, pci_ids));
            AppCmd::Loaded { generation, result }
        });
    }

    /// The outcome of a move: a toast, or a dialog with the reason; the list
    /// is read again either way.
    fn moved(
        &mut self,
        root: &adw::ApplicationWindow,
        sender: &ComponentSender<Self>,
        to_guest: bool,
        result: Result<Vec<String>, CallError>,
    ) {
        let refused = match result {
            Ok(moved) => {
                let direction = if to_guest {
                    Direction::ToGuest
                } else {
                    Direction::ToHost
                };
                toast(root, &crate::assign::outcome(direction, &moved));
                None
            }
            Err(CallError::AccessDenied(_)) => {
                toast(root, &gettext("Not authorised: nothing was moved"));
                None
            }
            Err(CallError::Refused(t)) => Some((gettext("This Group Cannot Move"), t)),
            Err(CallError::Unavailable(t)) => Some((
                gettext("The Helper Is Not Available"),
                gettext_f(
                    "Moving devices from the app needs Traspaso's helper, which comes with the distribution package (not with a Flatpak). Until then, “sudo traspasoctl device to-guest ADDRESS” does the move. ({detail})",
                    &[("detail", &t)],
                ),
            )),
            Err(CallError::InvalidArgs(t) | CallError::Failed(t)) => {
                Some((gettext("The Move Failed"), t))
            }
        };
        if let Some((heading, body)) = refused {
            let dialog = adw::MessageDialog::new(Some(root), Some(&heading), Some(&body));
            dialog.add_response("close", &gettext("_Close"));
            dialog.present();
        }
        self.start_load(sender);
    }

    /// On the first start, on this computer, the wizard opens by itself.
    fn maybe_open_wizard(&self, sender: &ComponentSender<Self>) {
        let first_start = !self.settings.boolean("wizard-done", false);
        let allowed = std::env::var_os("TRASPASO_NO_WIZARD").is_none();
        if first_start && allowed && self.source == Source::Live && self.assessment.is_some() {
            sender.input(AppMsg::ShowWizard);
        }
    }

    fn report_markdown(&self) -> Option<String> {
        let (assessment, topology) = (self.assessment.as_ref()?, self.topology.as_ref()?);
        let report = report::build(&assessment.facts, topology, &assessment.readiness);
        Some(report::markdown(&report))
    }

    /// The Virtual Machines window, on the connection given with --connect
    /// or the one used last.
    fn show_vms(&mut self, root: &adw::ApplicationWindow) {
        if let Some(vms) = &self.vms {
            vms.widget().present();
            return;
        }
        let uri = self.init.connection.clone().unwrap_or_else(|| {
            self.settings
                .string("connection", crate::vm::Libvirt::DEFAULT_URI)
        });
        let vms = Vms::builder()
            .transient_for(root)
            .launch(VmsInit {
                uri,
                settings: self.settings.clone(),
                topology: self.topology.clone(),
                elsewhere: self.elsewhere(),
            })
            .detach();
        vms.widget().set_hide_on_close(true);
        vms.widget().present();
        self.vms = Some(vms);
    }

    /// "Open a libvirt Host…": a URI (the last remote one offered), then
    /// that host's devices in the same tree.
    fn open_remote_dialog(&self, root: &adw::ApplicationWindow, sender: &ComponentSender<Self>) {
        let dialog = adw::MessageDialog::new(
            Some(root),
            Some(&gettext("Open a libvirt Host")),
            Some(&gettext("Traspaso shows the devices and IOMMU groups that libvirt reports for that host. Reset methods, option ROMs and the boot display stay unknown, and nothing can be moved from here.")),
        );
        dialog.set_widget_name("remote-dialog");
        let entry = gtk::Entry::new();
        entry.set_widget_name("remote-uri");
        entry.set_placeholder_text(Some("qemu+ssh://host/system"));
        entry.set_activates_default(true);
        let remembered = self.settings.strings("connections", &[]);
        if let Some(last) = remembered
            .iter()
            .rev()
            .find(|u| *u != crate::vm::Libvirt::DEFAULT_URI)
        {
            entry.set_text(last);
        }
        dialog.set_extra_child(Some(&entry));
        dialog.add_responses(&[("cancel", &gettext("_Cancel")), ("open", &gettext("_Open"))]);
        dialog.set_response_appearance("open", adw::ResponseAppearance::Suggested);
        dialog.set_default_response(Some("open"));
        dialog.set_close_response("cancel");
        let (s, settings) = (sender.clone(), self.settings.clone());
        dialog.connect_response(None, move |_, response| {
            let uri = entry.text().trim().to_owned();
            if response != "open" || uri.is_empty() {
                return;
            }
            let mut known = settings.strings("connections", &[crate::vm::Libvirt::DEFAULT_URI]);
            if !known.contains(&uri) {
                known.push(uri.clone());
                settings.set_strings("connections", &known);
            }
            s.input(AppMsg::Open(Source::Remote(uri)));
        });
        dialog.present();
    }

    /// When the devices shown are not this computer's: which host they are.
    fn elsewhere(&self) -> Option<String> {
        (self.source != Source::Live).then(|| self.host_label())
    }

    /// Keep the Virtual Machines window's group picker on the shown host.
    fn tell_vms(&self) {
        if let Some(vms) = &self.vms {
            vms.emit(VmsMsg::Topology(self.topology.clone(), self.elsewhere()));
        }
    }

    fn show_wizard(&mut self, root: &adw::ApplicationWindow, sender: &ComponentSender<Self>) {
        if let Some(wizard) = &self.wizard {
            wizard.widget().present();
            return;
        }
        let (Some(assessment), Some(report)) = (self.assessment.clone(), self.report_markdown())
        else {
            toast(root, &gettext("The checks could not read this host."));
            return;
        };
        let wizard = Wizard::builder()
            .transient_for(root)
            .launch(WizardInit {
                readiness: assessment.readiness.clone(),
                report,
            })
            .forward(sender.input_sender(), |out| match out {
                WizardOutput::Finished => AppMsg::WizardFinished,
                WizardOutput::Toast(t) => AppMsg::Toast(t),
                WizardOutput::SaveReport => AppMsg::SaveReport,
            });
        wizard.widget().present();
        self.wizard = Some(wizard);
    }

    /// Take a finished load: the host, the topology and the page to show.
    fn loaded(&mut self, result: LoadResult) {
        self.loading = false;
        match result {
            Ok(loaded) => {
                let iommu = loaded.topology.iommu_enabled;
                self.open_host = Some(loaded.open);
                self.bindings = Some(loaded.bindings);
                self.assessment = loaded.assessment;
                self.topology = Some(Arc::new(loaded.topology));
                self.tell_vms();
                self.details
                    .emit(DetailsMsg::CanMove(self.source == Source::Live));
                self.page = if iommu || self.browse_anyway {
                    Page::Browse
                } else {
                    Page::IommuOff
                };
                self.refill();
            }
            Err(e) => {
                self.error = e;
                self.page = Page::Error;
            }
        }
    }

    fn refill(&mut self) {
        if let Some(topology) = &self.topology {
            self.rows = self.list.show(topology.clone(), self.mode, &self.filter());
        }
    }

    fn host_label(&self) -> String {
        match &self.source {
            Source::Live => gettext("This computer"),
            Source::Captured(dir) => {
                // The folder's name: the whole path is in the tooltip.
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| dir.display().to_string());
                gettext_f("Captured host: {path}", &[("path", &name)])
            }
            Source::Sample(id) => Sample::find(id)
                .map(|s| gettext_f("Sample: {title}", &[("title", &s.title())]))
                .unwrap_or_default(),
            Source::Remote(uri) => gettext_f("libvirt host: {uri}", &[("uri", uri)]),
        }
    }

    /// The host's full name and what it holds.
    fn tooltip(&self) -> String {
        match &self.source {
            Source::Captured(dir) => format!("{}\n{}", dir.display(), self.summary()),
            _ => self.summary(),
        }
    }

    fn summary(&self) -> String {
        match &self.topology {
            Some(t) => gettext_f(
                "{devices} in {groups}",
                &[
                    (
                        "devices",
                        &ngettext_f("{n} device", "{n} devices", t.devices.len() as u32, &[]),
                    ),
                    (
                        "groups",
                        &ngettext_f(
                            "{n} IOMMU group",
                            "{n} IOMMU groups",
                            t.groups.len() as u32,
                            &[],
                        ),
                    ),
                ],
            ),
            None => String::new(),
        }
    }
}

#[relm4::component(pub)]
impl Component for App {
    type Init = AppInit;
    type Input = AppMsg;
    type Output = ();
    type CommandOutput = AppCmd;

    view! {
        #[root]
        main_window = adw::ApplicationWindow {
            set_title: Some(&gettext("Traspaso")),
            set_width_request: 360,
            set_height_request: 294,

            #[name = "toasts"]
            adw::ToastOverlay {
                #[name = "pages"]
                gtk::Stack {
                    set_transition_type: gtk::StackTransitionType::Crossfade,

                    add_named[Some("loading")] = &gtk::Box {
                        set_orientation: gtk::Orientation::Vertical,
                        adw::HeaderBar {
                            #[wrap(Some)]
                            set_title_widget = &adw::WindowTitle {
                                set_title: &gettext("Traspaso"),
                                #[watch]
                                set_subtitle: &model.host_label(),
                            },
                            pack_end = &gtk::MenuButton {
                                set_icon_name: "open-menu-symbolic",
                                set_tooltip_text: Some(&gettext("Main Menu")),
                                set_menu_model: Some(&main_menu),
                                set_primary: true,
                            },
                        },
                        adw::StatusPage {
                            set_vexpand: true,
                            set_title: &gettext("Reading the Devices"),
                            set_description: Some(&gettext("Looking at the PCI bus and the IOMMU groups…")),
                            #[wrap(Some)]
                            set_child = &gtk::Spinner {
                                set_spinning: true,
                                set_size_request: (32, 32),
                                set_halign: gtk::Align::Center,
                            },
                        },
                    },

                    add_named[Some("error")] = &gtk::Box {
                        set_orientation: gtk::Orientation::Vertical,
                        adw::HeaderBar {
                            pack_end = &gtk::MenuButton {
                                set_icon_name: "open-menu-symbolic",
                                set_tooltip_text: Some(&gettext("Main Menu")),
                                set_menu_model: Some(&main_menu),
                                set_primary: true,
                            },
                        },
                        adw::StatusPage {
                            set_vexpand: true,
                            set_icon_name: Some("dialog-error-symbolic"),
                            set_title: &gettext("Could Not Read the Devices"),
                            #[watch]
                            set_description: Some(&glib::markup_escape_text(&model.error)),
                            #[wrap(Some)]
                            set_child = &gtk::Box {
                                set_orientation: gtk::Orientation::Vertical,
                                set_spacing: 12,
                                set_halign: gtk::Align::Center,
                                gtk::Button {
                                    set_label: &gettext("Try Again"),
                                    add_css_class: "pill",
                                    add_css_class: "suggested-action",
                                    set_action_name: Some("win.refresh"),
                                },
                                gtk::Button {
                                    set_label: &gettext("Show This Computer"),
                                    add_css_class: "pill",
                                    set_action_name: Some("win.this-computer"),
                                    #[watch]
                                    set_visible: model.source != Source::Live,
                                },
                            },
                        },
                    },

                    add_named[Some("iommu-off")] = &gtk::Box {
                        set_orientation: gtk::Orientation::Vertical,
                        adw::HeaderBar {
                            #[wrap(Some)]
                            set_title_widget = &adw::WindowTitle {
                                set_title: &gettext("Traspaso"),
                                #[watch]
                                set_subtitle: &model.host_label(),
                            },
                            pack_end = &gtk::MenuButton {
                                set_icon_name: "open-menu-symbolic",
                                set_tooltip_text: Some(&gettext("Main Menu")),
                                set_menu_model: Some(&main_menu),
                                set_primary: true,
                            },
                        },
                        adw::StatusPage {
                            set_widget_name: "iommu-off",
                            set_vexpand: true,
                            set_icon_name: Some("dialog-warning-symbolic"),
                            set_title: &gettext("The IOMMU Is Off"),
                            set_description: Some(&gettext("Without an IOMMU the kernel cannot keep a virtual machine's device from reaching the rest of memory, so no device can be given to a VM yet. Turn on VT-d (Intel) or AMD-Vi / IOMMU (AMD) in the firmware setup, then start Linux with intel_iommu=on or amd_iommu=on. If the firmware has no such switch, look for a BIOS update: some boards gained it later.")),
                            #[wrap(Some)]
                            set_child = &gtk::Box {
                                set_orientation: gtk::Orientation::Vertical,
                                set_spacing: 12,
                                set_halign: gtk::Align::Center,
                                gtk::Button {
                                    set_label: &gettext("Explore a Sample Machine"),
                                    add_css_class: "pill",
                                    add_css_class: "suggested-action",
                                    set_action_name: Some("win.open-sample"),
                                    set_action_target_value: Some(&SAMPLES[0].id.to_variant()),
                                },
                                gtk::Button {
                                    set_label: &gettext("Show the Devices Anyway"),
                                    add_css_class: "pill",
                                    connect_clicked => AppMsg::BrowseAnyway,
                                },
                            },
                        },
                    },

                    #[name = "leaflet"]
                    add_named[Some("browse")] = &adw::Leaflet {
                        set_can_navigate_back: true,

                        #[name = "sidebar"]
                        gtk::Box {
                            set_orientation: gtk::Orientation::Vertical,
                            set_width_request: 340,
                            set_hexpand: false,

                            #[name = "sidebar_header"]
                            adw::HeaderBar {
                                pack_start = &gtk::ToggleButton {
                                    set_icon_name: "edit-find-symbolic",
                                    set_tooltip_text: Some(&gettext("Search")),
                                    set_action_name: Some("win.search"),
                                },
                                #[wrap(Some)]
                                set_title_widget = &adw::WindowTitle {
                                    set_title: &gettext("Traspaso"),
                                    #[watch]
                                    set_subtitle: &model.host_label(),
                                    #[watch]
                                    set_tooltip_text: Some(&model.tooltip()),
                                },
                                pack_end = &gtk::MenuButton {
                                    set_icon_name: "open-menu-symbolic",
                                    set_tooltip_text: Some(&gettext("Main Menu")),
                                    set_menu_model: Some(&main_menu),
                                    set_primary: true,
                                },
                            },

                            #[name = "search_bar"]
                            gtk::SearchBar {
                                #[name = "search_entry"]
                                #[wrap(Some)]
                                set_child = &gtk::SearchEntry {
                                    set_widget_name: "search-entry",
                                    set_hexpand: true,
                                    set_placeholder_text: Some(&gettext("Name, id, class or driver")),
                                    connect_search_changed[sender] => move |entry| {
                                        sender.input(AppMsg::Search(entry.text().into()));
                                    },
                                },
                            },

                            gtk::InfoBar {
                                #[watch]
                                set_revealed: matches!(model.source, Source::Sample(_)),
                                set_message_type: gtk::MessageType::Info,
                                add_child = &gtk::Label {
                                    set_wrap: true,
                                    set_xalign: 0.0,
                                    set_max_width_chars: 30,
                                    #[watch]
                                    set_label: &match model.source {
                                        Source::Sample(id) => Sample::find(id).map(|s| s.description()).unwrap_or_default(),
                                        _ => String::new(),
                                    },
                                },
                                add_button: (&gettext("This Computer"), gtk::ResponseType::Accept),
                                connect_response[sender] => move |_, _| {
                                    sender.input(AppMsg::Open(Source::Live));
                                },
                            },

                            gtk::Box {
                                set_orientation: gtk::Orientation::Horizontal,
                                set_spacing: 6,
                                set_margin_all: 6,
                                gtk::Box {
                                    add_css_class: "linked",
                                    set_hexpand: true,
                                    set_homogeneous: true,
                                    gtk::ToggleButton {
                                        set_label: &gettext("IOMMU Groups"),
                                        set_action_name: Some("win.view-mode"),
                                        set_action_target_value: Some(&"groups".to_variant()),
                                    },
                                    gtk::ToggleButton {
                                        set_label: &gettext("PCI Bus"),
                                        set_action_name: Some("win.view-mode"),
                                        set_action_target_value: Some(&"bus".to_variant()),
                                    },
                                },
                                gtk::ToggleButton {
                                    set_icon_name: "video-display-symbolic",
                                    set_tooltip_text: Some(&gettext("Graphics Only")),
                                    set_action_name: Some("win.graphics-only"),
                                },
                            },

                            gtk::Stack {
                                add_named[Some("nothing")] = &adw::StatusPage {
                                    set_vexpand: true,
                                    set_icon_name: Some("edit-find-symbolic"),
                                    set_title: &gettext("No Matching Devices"),
                                    set_description: Some(&gettext("Try other words, or turn off “Graphics Only”.")),
                                    add_css_class: "compact",
                                },
                                add_named[Some("list")] = &gtk::ScrolledWindow {
                                    set_hscrollbar_policy: gtk::PolicyType::Never,
                                    set_vexpand: true,
                                    set_child: Some(&model.list.view),
                                },
                                #[watch]
                                set_visible_child_name: if model.rows == 0 { "nothing" } else { "list" },
                            },
                        },

                        #[name = "separator"]
                        gtk::Separator {
                            set_orientation: gtk::Orientation::Vertical,
                        },

                        #[name = "content"]
                        gtk::Box {
                            set_orientation: gtk::Orientation::Vertical,
                            set_hexpand: true,
                            set_width_request: 360,

                            #[name = "content_header"]
                            adw::HeaderBar {
                                #[name = "back_button"]
                                pack_start = &gtk::Button {
                                    set_icon_name: "go-previous-symbolic",
                                    set_tooltip_text: Some(&gettext("Back")),
                                    connect_clicked => AppMsg::NavigateBack,
                                },
                                #[wrap(Some)]
                                set_title_widget = &adw::WindowTitle {
                                    #[watch]
                                    set_title: &model.selected_title,
                                },
                            },

                            append: model.details.widget(),
                        },
                    },

                    #[watch]
                    set_visible_child_name: model.page.name(),
                },
            },
        }
    }

    fn init(
        init: AppInit,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let settings = Rc::new(Settings::new());
        let list = {
            let sender = sender.clone();
            DeviceList::new(move |selection, user| sender.input(AppMsg::Selected(selection, user)))
        };
        let details =
            Details::builder()
                .launch(())
                .forward(sender.input_sender(), |out| match out {
                    DetailsOutput::Select(s) => AppMsg::Select(s),
                    DetailsOutput::Toast(t) => AppMsg::Toast(t),
                    DetailsOutput::Move(a, to_guest) => AppMsg::Move(a, to_guest),
                });
        let mode = ViewMode::from_setting(&settings.string("view", "groups"));
        let main_menu = main_menu();

        let mut model = App {
            source: init.source.clone(),
            init,
            open_host: None,
            topology: None,
            bindings: None,
            page: Page::Loading,
            error: String::new(),
            browse_anyway: false,
            mode,
            search: String::new(),
            graphics_only: false,
            generation: 0,
            loading: false,
            polling: false,
            rows: 0,
            list,
            details,
            settings: settings.clone(),
            selected_title: String::new(),
            announce_load: false,
            announce_change: false,
            dialog: None,
            assessment: None,
            wizard: None,
            vms: None,
        };
        let widgets = view_output!();

        // Both header bars show the window buttons only at the window's edges.
        let leaflet = &widgets.leaflet;
        leaflet.page(&widgets.separator).set_navigatable(false);
        leaflet
            .bind_property("folded", &widgets.sidebar_header, "show-end-title-buttons")
            .sync_create()
            .build();
        leaflet
            .bind_property(
                "folded",
                &widgets.content_header,
                "show-start-title-buttons",
            )
            .sync_create()
            .build();
        leaflet
            .bind_property("folded", &widgets.back_button, "visible")
            .sync_create()
            .build();
        widgets.search_bar.connect_entry(&widgets.search_entry);
        widgets.search_bar.set_key_capture_widget(Some(&root));

        super::label_icon_buttons(root.upcast_ref());
        restore_window(&root, &settings);
        {
            let settings = settings.clone();
            root.connect_close_request(move |window| {
                save_window(window, &settings);
                glib::Propagation::Proceed
            });
        }
        install_actions(&root, &widgets.search_bar, &sender, mode);
        relm4::set_global_css(include_str!("../../data/resources/style.css"));
        super::set_help_overlay(&root);

        // Light poll for driver changes; the read itself runs in a command.
        {
            let sender = sender.clone();
            glib::timeout_add_local(Duration::from_secs(2), move || {
                // Stops when the window's component is gone.
                match sender.input_sender().send(AppMsg::Poll) {
                    Ok(()) => glib::ControlFlow::Continue,
                    Err(_) => glib::ControlFlow::Break,
                }
            });
        }

        // If the scan that started with the process is done, the first frame
        // shows its result; otherwise the loading page shows until it is.
        match model.init.preload.take_if_finished() {
            Some(result) => {
                model.generation = 1;
                let ok = result.is_ok();
                model.loaded(result);
                super::first_frame_probe(&root);
                if ok {
                    model.maybe_open_wizard(&sender);
                }
            }
            None => model.start_load(&sender),
        }
        ComponentParts { model, widgets }
    }

    fn update(&mut self, msg: AppMsg, sender: ComponentSender<Self>, root: &Self::Root) {
        match msg {
            AppMsg::Refresh => {
                self.announce_load = true;
                self.start_load(&sender);
            }
            AppMsg::SetMode(mode) => {
                if mode != self.mode {
                    self.mode = mode;
                    self.settings.set_string("view", mode.as_str());
                    self.refill();
                }
            }
            AppMsg::Search(text) => {
                if text != self.search {
                    self.search = text;
                    self.refill();
                }
            }
            AppMsg::GraphicsOnly(on) => {
                if on != self.graphics_only {
                    self.graphics_only = on;
                    self.refill();
                }
            }
            AppMsg::Selected(selection, user) => {
                self.selected_title = match (&self.topology, selection) {
                    (Some(t), Some(Selection::Device(a))) => {
                        t.device(&a).map(model::device_title).unwrap_or_default()
                    }
                    (Some(t), Some(Selection::Group(g))) => {
                        t.group(g).map(model::group_title).unwrap_or_default()
                    }
                    _ => String::new(),
                };
                let shown = match (&self.topology, selection) {
                    (Some(t), Some(s)) => Some((t.clone(), s)),
                    _ => None,
                };
                self.details.emit(DetailsMsg::Show(shown));
                if user && selection.is_some() {
                    if let Some(leaflet) = find_leaflet(root) {
                        let _ = leaflet.navigate(adw::NavigationDirection::Forward);
                    }
                }
            }
            AppMsg::Select(selection) => {
                if !self.list.select(selection) {
                    // Hidden by the filter: clear it, then select.
                    self.search.clear();
                    self.graphics_only = false;
                    sync_filter_widgets(root);
                    self.refill();
                    self.list.select(selection);
                }
            }
            AppMsg::Open(source) => {
                if self.browse_anyway {
                    // The bus view was forced by a host without groups: go back
                    // to the arrangement the user chose.
                    let saved = self.settings.string("view", "groups");
                    self.mode = ViewMode::from_setting(&saved);
                    if let Some(action) = root.lookup_action("view-mode") {
                        action.change_state(&saved.to_variant());
                    }
                }
                self.source = source;
                self.browse_anyway = false;
                self.topology = None;
                self.bindings = None;
                self.open_host = None;
                self.page = Page::Loading;
                self.start_load(&sender);
            }
            AppMsg::OpenCaptureDialog => self.dialog = Some(open_capture_dialog(root, &sender)),
            AppMsg::OpenRemoteDialog => self.open_remote_dialog(root, &sender),
            AppMsg::BrowseAnyway => {
                self.browse_anyway = true;
                self.page = Page::Browse;
                self.mode = ViewMode::Bus;
                if let Some(action) = root.lookup_action("view-mode") {
                    action.change_state(&"bus".to_variant());
                }
                self.refill();
            }
            AppMsg::Poll => {
                let live_updates = self.settings.boolean("live-updates", true);
                // Samples never change; a remote host has no files to watch
                // (Reload asks libvirt again).
                let can_change = !matches!(self.source, Source::Sample(_) | Source::Remote(_));
                if self.loading || self.polling || !live_updates || !can_change {
                    return;
                }
                let (Some(open), Some(before)) = (self.open_host.clone(), self.bindings.clone())
                else {
                    return;
                };
                self.polling = true;
                let generation = self.generation;
                sender.oneshot_command(async move {
                    let now = topology::bindings(open.host()).unwrap_or_default();
                    AppCmd::Polled {
                        generation,
                        changed: now != before,
                    }
                });
            }
            AppMsg::Toast(text) => toast(root, &text),
            AppMsg::NavigateBack => {
                if let Some(leaflet) = find_leaflet(root) {
                    let _ = leaflet.navigate(adw::NavigationDirection::Back);
                }
            }
            AppMsg::ShowPreferences => super::preferences::show(root, &self.settings),
            AppMsg::ShowAbout => super::show_about(root),
            AppMsg::ShowWizard => self.show_wizard(root, &sender),
            AppMsg::ShowVms => self.show_vms(root),
            AppMsg::WizardFinished => {
                self.settings.set_boolean("wizard-done", true);
                if let Some(wizard) = self.wizard.take() {
                    wizard.widget().destroy();
                }
            }
            AppMsg::SaveReport => {
                if let Some(report) = self.report_markdown() {
                    let parent = self
                        .wizard
                        .as_ref()
                        .map(|w| w.widget().clone().upcast::<gtk::Window>())
                        .unwrap_or_else(|| root.clone().upcast());
                    self.dialog = Some(save_report_dialog(&parent, report, &sender));
                } else {
                    toast(root, &gettext("There is nothing to report yet."));
                }
            }
            AppMsg::Move(address, to_guest) => {
                self.details.emit(DetailsMsg::Busy(Some(address)));
                let direction = if to_guest {
                    Direction::ToGuest
                } else {
                    Direction::ToHost
                };
                sender.spawn_oneshot_command(move || {
                    AppCmd::Moved(to_guest, dbus::call_move(&address.to_string(), direction))
                });
            }
            AppMsg::ReportSaved(result) => match result {
                Ok(path) => toast(
                    root,
                    &gettext_f("Report saved to {path}", &[("path", &path)]),
                ),
                Err(e) => toast(root, &e),
            },
        }
    }

    fn update_cmd(&mut self, msg: AppCmd, sender: ComponentSender<Self>, root: &Self::Root) {
        match msg {
            AppCmd::Loaded { generation, result } => {
                if generation != self.generation {
                    return;
                }
                let ok = result.is_ok();
                self.loaded(result);
                if ok && self.announce_change {
                    toast(root, &gettext("A driver changed: the list is up to date"));
                } else if ok && self.announce_load {
                    toast(root, &gettext("Device list reloaded"));
                }
                self.announce_change = false;
                self.announce_load = false;
                super::first_frame_probe(root);
                if ok && generation == 1 {
                    self.maybe_open_wizard(&sender);
                }
            }
            AppCmd::Saved(result) => sender.input(AppMsg::ReportSaved(result)),
            AppCmd::Moved(to_guest, result) => {
                self.details.emit(DetailsMsg::Busy(None));
                self.moved(root, &sender, to_guest, result);
            }
            AppCmd::Polled {
                generation,
                changed,
            } => {
                self.polling = false;
                if generation == self.generation && changed && !self.loading {
                    self.announce_change = true;
                    self.start_load(&sender);
                }
            }
        }
    }
}

/// Show a short outcome at the bottom of the window.
fn toast(root: &adw::ApplicationWindow, text: &str) {
    if let Some(overlay) = root.content().and_downcast::<adw::ToastOverlay>() {
        // Toast titles are markup: outcomes carry names and paths.
        let toast = adw::Toast::new(&glib::markup_escape_text(text));
        toast.set_timeout(3);
        overlay.add_toast(toast);
    }
}

fn find_leaflet(root: &adw::ApplicationWindow) -> Option<adw::Leaflet> {
    find_widget(root.upcast_ref(), &|w| w.is::<adw::Leaflet>()).and_downcast()
}

/// The first widget under `root` (depth first) that satisfies `test`.
pub fn find_widget(root: &gtk::Widget, test: &dyn Fn(&gtk::Widget) -> bool) -> Option<gtk::Widget> {
    if test(root) {
        return Some(root.clone());
    }
    let mut child = root.first_child();
    while let Some(c) = child {
        if let Some(found) = find_widget(&c, test) {
            return Some(found);
        }
        child = c.next_sibling();
    }
    None
}

fn sync_filter_widgets(root: &adw::ApplicationWindow) {
    if let Some(entry) = find_widget(root.upcast_ref(), &|w| w.widget_name() == "search-entry")
        .and_downcast::<gtk::SearchEntry>()
    {
        entry.set_text("");
    }
    if let Some(action) = root.lookup_action("graphics-only") {
        action.change_state(&false.to_variant());
    }
}

fn main_menu() -> gio::Menu {
    let menu = gio::Menu::new();
    let setup = gio::Menu::new();
    setup.append(Some(&gettext("Set Up _Passthrough…")), Some("win.wizard"));
    setup.append(
        Some(&gettext("_Virtual Machines")),
        Some("win.virtual-machines"),
    );
    setup.append(Some(&gettext("_Share Report…")), Some("win.share-report"));
    menu.append_section(None, &setup);
    let host = gio::Menu::new();
    host.append(Some(&gettext("_Reload")), Some("win.refresh"));
    let samples = gio::Menu::new();
    for sample in SAMPLES {
        let item = gio::MenuItem::new(Some(&sample.title()), None);
        item.set_action_and_target_value(Some("win.open-sample"), Some(&sample.id.to_variant()));
        samples.append_item(&item);
    }
    host.append_submenu(Some(&gettext("_Explore a Sample Machine")), &samples);
    host.append(
        Some(&gettext("_Open Captured Host…")),
        Some("win.open-capture"),
    );
    host.append(
        Some(&gettext("Open a _libvirt Host…")),
        Some("win.open-remote"),
    );
    host.append(
        Some(&gettext("Show _This Computer")),
        Some("win.this-computer"),
    );
    menu.append_section(None, &host);
    let app = gio::Menu::new();
    app.append(Some(&gettext("_Preferences")), Some("app.preferences"));
    app.append(
        Some(&gettext("_Keyboard Shortcuts")),
        Some("win.show-help-overlay"),
    );
    app.append(Some(&gettext("_About Traspaso")), Some("app.about"));
    menu.append_section(None, &app);
    menu
}

fn install_actions(
    window: &adw::ApplicationWindow,
    search_bar: &gtk::SearchBar,
    sender: &ComponentSender<App>,
    mode: ViewMode,
) {
    let add = |action: &gio::SimpleAction| window.add_action(action);

    let refresh = gio::SimpleAction::new("refresh", None);
    let s = sender.clone();
    refresh.connect_activate(move |_, _| s.input(AppMsg::Refresh));
    add(&refresh);

    let search = gio::SimpleAction::new_stateful("search", None, &false.to_variant());
    let bar = search_bar.clone();
    search.connect_change_state(move |action, value| {
        if let Some(v) = value.and_then(|v| v.get::<bool>()) {
            bar.set_search_mode(v);
            action.set_state(&v.to_variant());
        }
    });
    let action = search.clone();
    search_bar.connect_search_mode_enabled_notify(move |bar| {
        action.set_state(&bar.is_search_mode().to_variant());
    });
    add(&search);

    let view_mode = gio::SimpleAction::new_stateful(
        "view-mode",
        Some(glib::VariantTy::STRING),
        &mode.as_str().to_variant(),
    );
    let s = sender.clone();
    view_mode.connect_change_state(move |action, value| {
        if let Some(v) = value.and_then(|v| v.get::<String>()) {
            action.set_state(&v.to_variant());
            s.input(AppMsg::SetMode(ViewMode::from_setting(&v)));
        }
    });
    add(&view_mode);

    let graphics = gio::SimpleAction::new_stateful("graphics-only", None, &false.to_variant());
    let s = sender.clone();
    graphics.connect_change_state(move |action, value| {
        if let Some(v) = value.and_then(|v| v.get::<bool>()) {
            action.set_state(&v.to_variant());
            s.input(AppMsg::GraphicsOnly(v));
        }
    });
    add(&graphics);

    let sample = gio::SimpleAction::new("open-sample", Some(glib::VariantTy::STRING));
    let s = sender.clone();
    sample.connect_activate(move |_, value| {
        if let Some(found) = value
            .and_then(|v| v.get::<String>())
            .and_then(|id| Sample::find(&id))
        {
            s.input(AppMsg::Open(Source::Sample(found.id)));
        }
    });
    add(&sample);

    let this = gio::SimpleAction::new("this-computer", None);
    let s = sender.clone();
    this.connect_activate(move |_, _| s.input(AppMsg::Open(Source::Live)));
    add(&this);

    let vms = gio::SimpleAction::new("virtual-machines", None);
    let s = sender.clone();
    vms.connect_activate(move |_, _| s.input(AppMsg::ShowVms));
    add(&vms);

    let wizard = gio::SimpleAction::new("wizard", None);
    let s = sender.clone();
    wizard.connect_activate(move |_, _| s.input(AppMsg::ShowWizard));
    add(&wizard);

    let share = gio::SimpleAction::new("share-report", None);
    let s = sender.clone();
    share.connect_activate(move |_, _| s.input(AppMsg::SaveReport));
    add(&share);

    let remote = gio::SimpleAction::new("open-remote", None);
    let s = sender.clone();
    remote.connect_activate(move |_, _| s.input(AppMsg::OpenRemoteDialog));
    add(&remote);

    let capture = gio::SimpleAction::new("open-capture", None);
    let s = sender.clone();
    capture.connect_activate(move |_, _| s.input(AppMsg::OpenCaptureDialog));
    add(&capture);

    let app = relm4::main_application();
    let preferences = gio::SimpleAction::new("preferences", None);
    let s = sender.clone();
    preferences.connect_activate(move |_, _| s.input(AppMsg::ShowPreferences));
    app.add_action(&preferences);
    let about = gio::SimpleAction::new("about", None);
    let s = sender.clone();
    about.connect_activate(move |_, _| s.input(AppMsg::ShowAbout));
    app.add_action(&about);
    let quit = gio::SimpleAction::new("quit", None);
    let w = window.clone();
    quit.connect_activate(move |_, _| w.close());
    app.add_action(&quit);

    for (action, accels) in [
        ("win.refresh", &["<Control>r", "F5"][..]),
        ("win.search", &["<Control>f"]),
        ("win.view-mode('groups')", &["<Control>1"]),
        ("win.view-mode('bus')", &["<Control>2"]),
        ("win.graphics-only", &["<Control>g"]),
        ("win.virtual-machines", &["<Control>m"]),
        ("win.open-capture", &["<Control>o"]),
        ("win.show-help-overlay", &["<Control>question"]),
        ("app.preferences", &["<Control>comma"]),
        ("app.quit", &["<Control>q"]),
    ] {
        app.set_accels_for_action(action, accels);
    }
}

fn open_capture_dialog(
    window: &adw::ApplicationWindow,
    sender: &ComponentSender<App>,
) -> gtk::FileChooserNative {
    let chooser = gtk::FileChooserNative::new(
        Some(&gettext("Open a Captured Host")),
        Some(window),
        gtk::FileChooserAction::SelectFolder,
        Some(&gettext("_Open")),
        Some(&gettext("_Cancel")),
    );
    chooser.set_modal(true);
    let s = sender.clone();
    chooser.connect_response(move |chooser, response| {
        if response == gtk::ResponseType::Accept {
            if let Some(path) = chooser.file().and_then(|f| f.path()) {
                s.input(AppMsg::Open(Source::Captured(path)));
            }
        }
        chooser.destroy();
    });
    chooser.show();
    chooser
}

fn save_report_dialog(
    parent: &gtk::Window,
    report: String,
    sender: &ComponentSender<App>,
) -> gtk::FileChooserNative {
    let chooser = gtk::FileChooserNative::new(
        Some(&gettext("Save the Report")),
        Some(parent),
        gtk::FileChooserAction::Save,
        Some(&gettext("_Save")),
        Some(&gettext("_Cancel")),
    );
    chooser.set_modal(true);
    chooser.set_current_name("traspaso-report.md");
    let s = sender.clone();
    chooser.connect_response(move |chooser, response| {
        if response == gtk::ResponseType::Accept {
            if let Some(path) = chooser.file().and_then(|f| f.path()) {
                let report = report.clone();
                s.spawn_oneshot_command(move || {
                    AppCmd::Saved(
                        std::fs::write(&path, report)
                            .map(|()| path.display().to_string())
                            .map_err(|e| {
                                gettext_f(
                                    "Could not save the report to {path}: {error}",
                                    &[
                                        ("path", &path.display().to_string()),
                                        ("error", &e.to_string()),
                                    ],
                                )
                            }),
                    )
                });
            }
        }
        chooser.destroy();
    });
    chooser.show();
    chooser
}

fn restore_window(window: &adw::ApplicationWindow, settings: &Settings) {
    let width = settings.int("window-width", 960).max(360);
    let height = settings.int("window-height", 680).max(294);
    window.set_default_size(width, height);
    if settings.boolean("window-maximized", false) {
        window.maximize();
    }
}

fn save_window(window: &adw::ApplicationWindow, settings: &Settings) {
    let (width, height) = window.default_size();
    settings.set_int("window-width", width);
    settings.set_int("window-height", height);
    settings.set_boolean("window-maximized", window.is_maximized());
}
