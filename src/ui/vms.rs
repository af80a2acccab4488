//! The Virtual Machines window: the VMs of a libvirt connection with their
//! state and the PCI devices given to them; start, shut down, force off and
//! delete; create a passthrough-ready VM with a group picker; attach and
//! detach groups; a connection switcher that remembers URIs. Every libvirt
//! call runs on the blocking pool, and the list follows state changes by
//! polling every two seconds while the window is open.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relm4::adw::prelude::*;
use relm4::gtk::glib;
use relm4::prelude::*;
use relm4::{adw, gtk};

use super::model;
use super::settings::Settings;
use crate::i18n::{gettext, gettext_f};
use crate::pci::PciAddress;
use crate::topology::Topology;
use crate::vm::{self, Libvirt, VmInfo, VmSpec};

/// What the window is opened with.
pub struct VmsInit {
    /// The connection to show (from `--connect`, or the remembered one).
    pub uri: String,
    pub settings: Rc<Settings>,
    /// The devices whose groups can be given to a VM: the host the main
    /// window shows.
    pub topology: Option<Arc<Topology>>,
    /// `Some(label)` when that host is not this computer (a capture or a
    /// sample): the picker says so.
    pub elsewhere: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmAction {
    Start,
    Shutdown,
    Destroy,
    Delete,
}

/// A VM to create, as the dialog collected it.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub name: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub secure_boot: bool,
    pub iso: Option<PathBuf>,
    /// A new disk of this many GiB in libvirt's default storage pool (0: none).
    pub disk_gib: u64,
    /// One function of each chosen group.
    pub devices: Vec<PciAddress>,
}

#[derive(Debug)]
pub enum VmsMsg {
    Refresh,
    Poll,
    Connect(String),
    Forget(String),
    Act(String, VmAction),
    AskDelete(String),
    ShowCreate,
    Create(CreateRequest),
    ShowAttach(String),
    Attach(String, PciAddress),
    Detach(String, Vec<PciAddress>),
    Topology(Option<Arc<Topology>>, Option<String>),
}

#[derive(Debug)]
pub enum VmsCmd {
    /// A listing for the connection of this generation.
    Listed(u64, Result<Vec<VmInfo>, String>),
    /// An action ended: a sentence for a toast, or the error.
    Done(Result<String, String>),
}

enum Listing {
    Loading,
    Failed(String),
    Ready(Vec<VmInfo>),
}

pub struct Vms {
    settings: Rc<Settings>,
    uri: String,
    connections: Vec<String>,
    listing: Listing,
    /// The VM an action is running on ("" while creating).
    busy: Option<String>,
    topology: Option<Arc<Topology>>,
    elsewhere: Option<String>,
    /// One connection, reused by every call on the blocking pool.
    libvirt: Arc<Mutex<Option<Libvirt>>>,
    /// Changes with the connection: a late listing of the old one is dropped.
    generation: u64,
    listing_in_flight: bool,
    /// Toasts waiting for the view.
    toasts: std::cell::RefCell<Vec<String>>,
    /// What the list and the connection menu show now: they are rebuilt
    /// only when it changes, so an open menu survives a poll.
    shown: std::cell::RefCell<Option<(Vec<VmInfo>, Option<String>)>>,
    shown_connections: std::cell::RefCell<Option<(Vec<String>, String)>>,
}

pub struct VmsWidgets {
    title: adw::WindowTitle,
    toasts: adw::ToastOverlay,
    stack: gtk::Stack,
    error: adw::StatusPage,
    list: gtk::Box,
    connections: gtk::Box,
}

/// Run `f` on the shared connection, connecting (again) when needed. A
/// connection that failed is dropped so the next call reconnects.
fn with_libvirt<T>(
    cell: &Mutex<Option<Libvirt>>,
    uri: &str,
    f: impl FnOnce(&Libvirt) -> Result<T, vm::LibvirtError>,
) -> Result<T, String> {
    let mut guard = cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if guard.as_ref().is_none_or(|lv| lv.uri != uri) {
        *guard = Some(Libvirt::connect(Some(uri)).map_err(|e| e.to_string())?);
    }
    let Some(lv) = guard.as_ref() else {
        return Err(gettext("Not connected"));
    };
    let result = f(lv);
    if matches!(result, Err(vm::LibvirtError::Unreachable(_))) {
        *guard = None;
    }
    result.map_err(|e| e.to_string())
}

/// The state as people read it.
pub fn state_label(state: &str) -> String {
    match state {
        "running" => gettext("Running"),
        "paused" => gettext("Paused"),
        "shutting-down" => gettext("Shutting down"),
        "shut-off" => gettext("Off"),
        "crashed" => gettext("Crashed"),
        "suspended" => gettext("Suspended"),
        "blocked" => gettext("Running (blocked)"),
        _ => gettext("Unknown state"),
    }
}

/// Whether guests on this connection can use KVM: a remote host is assumed
/// to; this computer only when /dev/kvm exists.
fn virt_type(uri: &str) -> &'static str {
    let local = uri.starts_with("qemu:///");
    if local && !std::path::Path::new("/dev/kvm").exists() {
        "qemu"
    } else {
        "kvm"
    }
}

impl Vms {
    fn remember(&mut self, uri: &str) {
        if !self.connections.iter().any(|c| c == uri) {
            self.connections.push(uri.to_owned());
            self.settings.set_strings("connections", &self.connections);
        }
        self.settings.set_string("connection", uri);
    }

    fn list(&mut self, sender: &ComponentSender<Self>) {
        if self.listing_in_flight {
            return;
        }
        self.listing_in_flight = true;
        let (cell, uri, generation) = (self.libvirt.clone(), self.uri.clone(), self.generation);
        sender.spawn_oneshot_command(move || {
            VmsCmd::Listed(generation, with_libvirt(&cell, &uri, |lv| lv.list()))
        });
    }

    /// Run an action on the blocking pool; the list is read again after it.
    fn run(
        &mut self,
        busy: &str,
        sender: &ComponentSender<Self>,
        action: impl FnOnce(&Libvirt) -> Result<String, vm::LibvirtError> + Send + 'static,
    ) {
        self.run_checked(busy, sender, None, action);
    }

    /// The same, after the safety checks for giving `devices` to a VM when
    /// they are this computer's (a mounted disk, the default route).
    fn run_checked(
        &mut self,
        busy: &str,
        sender: &ComponentSender<Self>,
        devices: Option<Vec<PciAddress>>,
        action: impl FnOnce(&Libvirt) -> Result<String, vm::LibvirtError> + Send + 'static,
    ) {
        if self.busy.is_some() {
            return;
        }
        self.busy = Some(busy.to_owned());
        let (cell, uri) = (self.libvirt.clone(), self.uri.clone());
        let check = match (devices, &self.topology, &self.elsewhere) {
            (Some(devices), Some(topology), None) => Some((topology.clone(), devices)),
            _ => None,
        };
        sender.spawn_oneshot_command(move || {
            if let Some((topology, devices)) = check {
                let host = crate::host::HostRoot::live();
                if let Err(e) = crate::assign::check_for_vm(&host, &topology, &devices) {
                    return VmsCmd::Done(Err(e.to_string()));
                }
            }
            VmsCmd::Done(with_libvirt(&cell, &uri, action))
        });
    }

    /// The groups of `devices` in this computer's topology.
    fn hostdevs(&self, devices: &[PciAddress]) -> Result<Vec<PciAddress>, String> {
        let Some(topology) = &self.topology else {
            return Err(gettext("The devices are not loaded yet."));
        };
        vm::hostdevs_for(topology, devices).map_err(|e| e.to_string())
    }

    fn vm_row(&self, info: &VmInfo, sender: &ComponentSender<Self>) -> adw::ActionRow {
        let row = super::plain_row();
        row.set_widget_name(&format!("vm-{}", info.name));
        row.set_title(&info.name);
        let devices = if info.hostdevs.is_empty() {
            gettext("no PCI devices")
        } else {
            info.hostdevs.join(", ")
        };
        row.set_subtitle(&format!("{} · {devices}", state_label(info.state)));
        let icon = gtk::Image::from_icon_name("computer-symbolic");
        row.add_prefix(&icon);
        let busy = self.busy.as_deref() == Some(info.name.as_str());
        if busy {
            let spinner = gtk::Spinner::new();
            spinner.start();
            row.add_suffix(&spinner);
        }
        let running = matches!(info.state, "running" | "paused" | "blocked");
        let (icon, tip, action, name) = if running {
            (
                "system-shutdown-symbolic",
                gettext("Shut Down"),
                VmAction::Shutdown,
                "vm-shutdown",
            )
        } else {
            (
                "media-playback-start-symbolic",
                gettext("Start"),
                VmAction::Start,
                "vm-start",
            )
        };
        let button = gtk::Button::from_icon_name(icon);
        button.set_widget_name(name);
        button.set_tooltip_text(Some(&tip));
        super::set_accessible_label(&button, &tip);
        button.set_valign(gtk::Align::Center);
        button.add_css_class("flat");
        button.set_sensitive(self.busy.is_none());
        let input = sender.input_sender().clone();
        let vm_name = info.name.clone();
        button.connect_clicked(move |_| input.emit(VmsMsg::Act(vm_name.clone(), action)));
        row.add_suffix(&button);

        // More: force off, attach, detach each group, delete.
        let menu = gtk::Box::new(gtk::Orientation::Vertical, 0);
        let popover = gtk::Popover::new();
        let item = |label: &str, widget_name: &str, msg: VmsMsg| {
            let b = gtk::Button::with_mnemonic(label);
            b.set_widget_name(widget_name);
            b.add_css_class("flat");
            if let Some(child) = b.child().and_downcast::<gtk::Label>() {
                child.set_xalign(0.0);
            }
            let input = sender.input_sender().clone();
            let popover = popover.clone();
            let msg = std::cell::RefCell::new(Some(msg));
            b.connect_clicked(move |_| {
                popover.popdown();
                if let Some(m) = msg.borrow_mut().take() {
                    input.emit(m);
                }
            });
            menu.append(&b);
            b
        };
        let off = item(
            &gettext("_Force Off"),
            "vm-destroy",
            VmsMsg::Act(info.name.clone(), VmAction::Destroy),
        );
        off.set_sensitive(running);
        item(
            &gettext("_Attach a Group…"),
            "vm-attach",
            VmsMsg::ShowAttach(info.name.clone()),
        );
        for (label, members) in self.attached_groups(info) {
            item(
                &gettext_f("_Detach {group}", &[("group", &label)]),
                "vm-detach",
                VmsMsg::Detach(info.name.clone(), members),
            );
        }
        let delete = item(
            &gettext("_Delete…"),
            "vm-delete",
            VmsMsg::AskDelete(info.name.clone()),
        );
        delete.add_css_class("destructive-action");
        delete.set_sensitive(!running);
        popover.set_child(Some(&menu));
        let more = gtk::MenuButton::new();
        more.set_widget_name("vm-more");
        more.set_icon_name("view-more-symbolic");
        more.set_tooltip_text(Some(&gettext("More")));
        more.add_css_class("flat");
        more.set_valign(gtk::Align::Center);
        more.set_popover(Some(&popover));
        more.set_sensitive(self.busy.is_none());
        row.add_suffix(&more);
        row
    }

    /// The VM's PCI devices grouped by IOMMU group (from this computer's
    /// topology; devices it does not know go one by one): a label and the
    /// addresses.
    fn attached_groups(&self, info: &VmInfo) -> Vec<(String, Vec<PciAddress>)> {
        let mut out: Vec<(String, Vec<PciAddress>)> = Vec::new();
        for text in &info.hostdevs {
            let Ok(address) = text.parse::<PciAddress>() else {
                continue;
            };
            let group = self
                .topology
                .as_ref()
                .and_then(|t| t.device(&address))
                .and_then(|d| d.iommu_group);
            let label = match group {
                Some(g) => gettext_f("Group {id}", &[("id", &g.to_string())]),
                None => address.to_string(),
            };
            match out.iter_mut().find(|(l, _)| *l == label) {
                Some((_, members)) => members.push(address),
                None => out.push((label, vec![address])),
            }
        }
        out
    }

    fn rebuild_connections(&self, widgets: &VmsWidgets, sender: &ComponentSender<Self>) {
        let now = Some((self.connections.clone(), self.uri.clone()));
        if *self.shown_connections.borrow() == now {
            return;
        }
        *self.shown_connections.borrow_mut() = now;
        let list = &widgets.connections;
        let mut leader: Option<gtk::CheckButton> = None;
        while let Some(child) = list.first_child() {
            list.remove(&child);
        }
        for uri in &self.connections {
            let line = gtk::Box::new(gtk::Orientation::Horizontal, 6);
            let b = gtk::CheckButton::with_label(uri);
            match &leader {
                Some(l) => b.set_group(Some(l)),
                None => leader = Some(b.clone()),
            }
            b.set_active(*uri == self.uri);
            b.set_hexpand(true);
            let input = sender.input_sender().clone();
            let target = uri.clone();
            b.connect_toggled(move |b| {
                if b.is_active() {
                    input.emit(VmsMsg::Connect(target.clone()));
                }
            });
            line.append(&b);
            if *uri != self.uri && uri != Libvirt::DEFAULT_URI {
                let forget = gtk::Button::from_icon_name("edit-delete-symbolic");
                forget.add_css_class("flat");
                let tip = gettext("Forget This Connection");
                forget.set_tooltip_text(Some(&tip));
                super::set_accessible_label(&forget, &tip);
                let input = sender.input_sender().clone();
                let target = uri.clone();
                forget.connect_clicked(move |_| input.emit(VmsMsg::Forget(target.clone())));
                line.append(&forget);
            }
            list.append(&line);
        }
    }
}

impl Component for Vms {
    type Init = VmsInit;
    type Input = VmsMsg;
    type Output = ();
    type CommandOutput = VmsCmd;
    type Root = adw::Window;
    type Widgets = VmsWidgets;

    fn init_root() -> adw::Window {
        adw::Window::builder()
            .title(gettext("Virtual Machines"))
            .default_width(640)
            .default_height(560)
            .build()
    }

    fn init(
        init: VmsInit,
        window: adw::Window,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        window.set_widget_name("vm-window");
        let outer = gtk::Box::new(gtk::Orientation::Vertical, 0);
        let header = adw::HeaderBar::new();
        let title = adw::WindowTitle::new(&gettext("Virtual Machines"), &init.uri);
        header.set_title_widget(Some(&title));

        // The connection switcher: remembered URIs, and a field for a new one.
        let popover_box = gtk::Box::new(gtk::Orientation::Vertical, 6);
        popover_box.set_margin_top(6);
        popover_box.set_margin_bottom(6);
        popover_box.set_margin_start(6);
        popover_box.set_margin_end(6);
        let heading = gtk::Label::new(Some(&gettext("Connection")));
        heading.add_css_class("heading");
        heading.set_xalign(0.0);
        popover_box.append(&heading);
        let connection_list = gtk::Box::new(gtk::Orientation::Vertical, 0);
        popover_box.append(&connection_list);
        let entry = gtk::Entry::new();
        entry.set_widget_name("connection-entry");
        entry.set_placeholder_text(Some("qemu+ssh://host/system"));
        entry.set_width_chars(28);
        let connect = gtk::Button::with_mnemonic(&gettext("_Connect"));
        connect.add_css_class("suggested-action");
        let line = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        line.append(&entry);
        line.append(&connect);
        popover_box.append(&line);
        let popover = gtk::Popover::new();
        popover.set_child(Some(&popover_box));
        let submit = {
            let input = sender.input_sender().clone();
            let entry = entry.clone();
            let popover = popover.clone();
            move || {
                let text = entry.text().trim().to_owned();
                if !text.is_empty() {
                    popover.popdown();
                    entry.set_text("");
                    input.emit(VmsMsg::Connect(text));
                }
            }
        };
        let s = submit.clone();
        entry.connect_activate(move |_| s());
        connect.connect_clicked(move |_| submit());
        let switcher = gtk::MenuButton::new();
        switcher.set_icon_name("network-server-symbolic");
        let tip = gettext("Connection");
        switcher.set_tooltip_text(Some(&tip));
        super::set_accessible_label(&switcher, &tip);
        switcher.set_popover(Some(&popover));
        header.pack_start(&switcher);

        let add = gtk::Button::from_icon_name("list-add-symbolic");
        add.set_widget_name("vm-new");
        let tip = gettext("New Virtual Machine");
        add.set_tooltip_text(Some(&tip));
        super::set_accessible_label(&add, &tip);
        let input = sender.input_sender().clone();
        add.connect_clicked(move |_| input.emit(VmsMsg::ShowCreate));
        header.pack_end(&add);
        let refresh = gtk::Button::from_icon_name("view-refresh-symbolic");
        let tip = gettext("Reload");
        refresh.set_tooltip_text(Some(&tip));
        super::set_accessible_label(&refresh, &tip);
        let input = sender.input_sender().clone();
        refresh.connect_clicked(move |_| input.emit(VmsMsg::Refresh));
        header.pack_end(&refresh);
        outer.append(&header);

        let stack = gtk::Stack::new();
        stack.set_vexpand(true);
        let spinner = gtk::Spinner::new();
        spinner.set_spinning(true);
        spinner.set_size_request(32, 32);
        spinner.set_halign(gtk::Align::Center);
        let loading = adw::StatusPage::builder()
            .title(gettext("Asking libvirt"))
            .child(&spinner)
            .build();
        stack.add_named(&loading, Some("loading"));
        let retry = gtk::Button::with_mnemonic(&gettext("_Try Again"));
        retry.add_css_class("pill");
        retry.set_halign(gtk::Align::Center);
        let input = sender.input_sender().clone();
        retry.connect_clicked(move |_| input.emit(VmsMsg::Refresh));
        let error = adw::StatusPage::builder()
            .icon_name("dialog-error-symbolic")
            .title(gettext("Could Not Reach libvirt"))
            .child(&retry)
            .build();
        error.set_widget_name("vm-error");
        stack.add_named(&error, Some("error"));
        let create = gtk::Button::with_mnemonic(&gettext("_New Virtual Machine…"));
        create.add_css_class("pill");
        create.add_css_class("suggested-action");
        create.set_halign(gtk::Align::Center);
        let input = sender.input_sender().clone();
        create.connect_clicked(move |_| input.emit(VmsMsg::ShowCreate));
        let empty = adw::StatusPage::builder()
            .icon_name("computer-symbolic")
            .title(gettext("No Virtual Machines"))
            .description(gettext(
                "Create one that gets a graphics card of this computer, with UEFI firmware ready for passthrough.",
            ))
            .child(&create)
            .build();
        stack.add_named(&empty, Some("empty"));
        let list = gtk::Box::new(gtk::Orientation::Vertical, 12);
        list.set_widget_name("vm-list");
        list.set_margin_top(24);
        list.set_margin_bottom(24);
        list.set_margin_start(12);
        list.set_margin_end(12);
        let clamp = adw::Clamp::builder().maximum_size(720).child(&list).build();
        let scrolled = gtk::ScrolledWindow::builder()
            .hscrollbar_policy(gtk::PolicyType::Never)
            .child(&clamp)
            .build();
        stack.add_named(&scrolled, Some("list"));
        let toasts = adw::ToastOverlay::new();
        toasts.set_child(Some(&stack));
        outer.append(&toasts);
        window.set_content(Some(&outer));

        // Follow state changes while the window is open.
        let input = sender.input_sender().clone();
        let weak = window.downgrade();
        glib::timeout_add_local(Duration::from_secs(2), move || match weak.upgrade() {
            Some(w) => {
                if w.is_visible() {
                    input.emit(VmsMsg::Poll);
                }
                glib::ControlFlow::Continue
            }
            None => glib::ControlFlow::Break,
        });

        let mut connections = init
            .settings
            .strings("connections", &[Libvirt::DEFAULT_URI]);
        if !connections.contains(&init.uri) {
            connections.push(init.uri.clone());
        }
        let mut model = Vms {
            settings: init.settings,
            uri: init.uri,
            connections,
            listing: Listing::Loading,
            busy: None,
            topology: init.topology,
            elsewhere: init.elsewhere,
            libvirt: Arc::new(Mutex::new(None)),
            generation: 0,
            listing_in_flight: false,
            toasts: Default::default(),
            shown: Default::default(),
            shown_connections: Default::default(),
        };
        model.list(&sender);
        let widgets = VmsWidgets {
            title,
            toasts,
            stack,
            error,
            list,
            connections: connection_list,
        };
        model.rebuild_connections(&widgets, &sender);
        ComponentParts { model, widgets }
    }

    fn update(&mut self, msg: VmsMsg, sender: ComponentSender<Self>, root: &adw::Window) {
        match msg {
            VmsMsg::Refresh => {
                self.listing = Listing::Loading;
                self.list(&sender);
            }
            VmsMsg::Poll => self.list(&sender),
            VmsMsg::Connect(uri) => {
                if uri != self.uri {
                    self.uri = uri.clone();
                    self.generation += 1;
                    self.listing = Listing::Loading;
                    self.listing_in_flight = false;
                    self.busy = None;
                }
                self.remember(&uri);
                self.list(&sender);
            }
            VmsMsg::Forget(uri) => {
                self.connections.retain(|c| *c != uri);
                self.settings.set_strings("connections", &self.connections);
            }
            VmsMsg::Act(name, action) => {
                let vm_name = name.clone();
                self.run(&name, &sender, move |lv| {
                    let args = [("name", vm_name.as_str())];
                    Ok(match action {
                        VmAction::Start => {
                            lv.start(&vm_name)?;
                            gettext_f("Started “{name}”.", &args)
                        }
                        VmAction::Shutdown => {
                            lv.shutdown(&vm_name)?;
                            gettext_f("Asked “{name}” to shut down.", &args)
                        }
                        VmAction::Destroy => {
                            lv.destroy(&vm_name)?;
                            gettext_f("Turned “{name}” off.", &args)
                        }
                        VmAction::Delete => {
                            lv.delete(&vm_name)?;
                            gettext_f("Deleted “{name}” and its firmware variables.", &args)
                        }
                    })
                });
            }
            VmsMsg::AskDelete(name) => {
                let dialog = adw::MessageDialog::new(
                    Some(root),
                    Some(&gettext_f("Delete “{name}”?", &[("name", &name)])),
                    Some(&gettext(
                        "Its definition and its firmware variables (NVRAM) are removed. Disk images stay where they are.",
                    )),
                );
                dialog.set_widget_name("vm-delete-dialog");
                dialog.add_responses(&[
                    ("cancel", &gettext("_Cancel")),
                    ("delete", &gettext("_Delete")),
                ]);
                dialog.set_response_appearance("delete", adw::ResponseAppearance::Destructive);
                dialog.set_default_response(Some("cancel"));
                dialog.set_close_response("cancel");
                let input = sender.input_sender().clone();
                dialog.connect_response(None, move |_, response| {
                    if response == "delete" {
                        input.emit(VmsMsg::Act(name.clone(), VmAction::Delete));
                    }
                });
                dialog.present();
            }
            VmsMsg::ShowCreate => {
                let dialog = create_dialog(
                    root,
                    self.topology.as_deref(),
                    self.elsewhere.as_deref(),
                    &self.uri,
                    &sender,
                );
                dialog.present();
            }
            VmsMsg::Create(request) => {
                let hostdevs = match self.hostdevs(&request.devices) {
                    Ok(h) => h,
                    Err(e) => {
                        self.toasts.borrow_mut().push(e);
                        return;
                    }
                };
                let spec = VmSpec {
                    name: request.name.clone(),
                    memory_mib: request.memory_mib,
                    vcpus: request.vcpus,
                    virt_type: virt_type(&self.uri).to_owned(),
                    secure_boot: request.secure_boot,
                    disk: None,
                    iso: request.iso.clone(),
                    devices: request.devices.clone(),
                };
                let disk = (request.disk_gib > 0).then_some(request.disk_gib);
                self.run_checked("", &sender, Some(request.devices.clone()), move |lv| {
                    let domain = lv.create_vm(&spec, &hostdevs, disk)?;
                    Ok(gettext_f("Defined {vm}", &[("vm", &vm::describe(&domain))]))
                });
            }
            VmsMsg::ShowAttach(name) => {
                let dialog = attach_dialog(root, self.topology.as_deref(), &name, &sender);
                dialog.present();
            }
            VmsMsg::Attach(name, device) => {
                let hostdevs = match self.hostdevs(&[device]) {
                    Ok(h) => h,
                    Err(e) => {
                        self.toasts.borrow_mut().push(e);
                        return;
                    }
                };
                let vm_name = name.clone();
                self.run_checked(&name, &sender, Some(vec![device]), move |lv| {
                    lv.attach(&vm_name, &hostdevs)?;
                    let list: Vec<String> = hostdevs.iter().map(|a| a.to_string()).collect();
                    Ok(gettext_f(
                        "Attached to “{name}”: {devices}",
                        &[("name", &vm_name), ("devices", &list.join(", "))],
                    ))
                });
            }
            VmsMsg::Detach(name, devices) => {
                let vm_name = name.clone();
                self.run(&name, &sender, move |lv| {
                    lv.detach(&vm_name, &devices)?;
                    let list: Vec<String> = devices.iter().map(|a| a.to_string()).collect();
                    Ok(gettext_f(
                        "Detached from “{name}”: {devices}",
                        &[("name", &vm_name), ("devices", &list.join(", "))],
                    ))
                });
            }
            VmsMsg::Topology(topology, elsewhere) => {
                self.topology = topology;
                self.elsewhere = elsewhere;
            }
        }
    }

    fn update_cmd(&mut self, msg: VmsCmd, sender: ComponentSender<Self>, _: &adw::Window) {
        match msg {
            VmsCmd::Listed(generation, result) => {
                if generation != self.generation {
                    return;
                }
                self.listing_in_flight = false;
                self.listing = match result {
                    Ok(vms) => Listing::Ready(vms),
                    Err(e) => Listing::Failed(e),
                };
            }
            VmsCmd::Done(result) => {
                self.busy = None;
                self.toasts.borrow_mut().push(match result {
                    Ok(text) | Err(text) => text,
                });
                self.list(&sender);
            }
        }
    }

    fn update_view(&self, widgets: &mut VmsWidgets, sender: ComponentSender<Self>) {
        widgets.title.set_subtitle(&self.uri);
        self.rebuild_connections(widgets, &sender);
        for text in self.toasts.borrow_mut().drain(..) {
            let toast = adw::Toast::new(&glib::markup_escape_text(&text));
            toast.set_timeout(5);
            widgets.toasts.add_toast(toast);
        }
        match &self.listing {
            Listing::Loading => widgets.stack.set_visible_child_name("loading"),
            Listing::Failed(e) => {
                widgets
                    .error
                    .set_description(Some(&glib::markup_escape_text(e)));
                widgets.stack.set_visible_child_name("error");
            }
            Listing::Ready(vms) if vms.is_empty() => widgets.stack.set_visible_child_name("empty"),
            Listing::Ready(vms) => {
                widgets.stack.set_visible_child_name("list");
                let now = Some((vms.clone(), self.busy.clone()));
                if *self.shown.borrow() == now {
                    return;
                }
                *self.shown.borrow_mut() = now;
                let list = &widgets.list;
                while let Some(child) = list.first_child() {
                    list.remove(&child);
                }
                let group = adw::PreferencesGroup::new();
                group.set_title(&gettext("Virtual Machines"));
                group.set_description(Some(&gettext(
                    "A VM gets its PCI devices when it starts: libvirt moves them to vfio-pci and back.",
                )));
                for info in vms {
                    group.add(&self.vm_row(info, &sender));
                }
                list.append(&group);
            }
        }
    }
}

/// Rows to pick groups from: every group with something to give, its
/// devices named, the boot display marked.
fn group_rows(topology: &Topology) -> Vec<(u32, PciAddress, String, String)> {
    topology
        .groups
        .iter()
        .filter_map(|g| {
            let first = *g.moves_together.first()?;
            let names: Vec<String> = g
                .moves_together
                .iter()
                .filter_map(|a| topology.device(a))
                .map(|d| d.short_name())
                .collect();
            let boot = g
                .moves_together
                .iter()
                .filter_map(|a| topology.device(a))
                .any(|d| d.boot_vga);
            let mut subtitle = model::group_verdict(topology, g);
            if boot {
                subtitle = format!("{subtitle} · {}", gettext("shows the host's boot screen"));
            }
            Some((
                g.id,
                first,
                format!("{} — {}", model::group_title(g), names.join(", ")),
                subtitle,
            ))
        })
        .collect()
}

/// A modal dialog with Cancel and a suggested action in its header bar:
/// the window, its content box (the header bar in it) and the action button.
fn modal_dialog(
    parent: &adw::Window,
    title: &str,
    (name, (width, height)): (&str, (i32, i32)),
    (action, action_name): (&str, &str),
) -> (adw::Window, gtk::Box, gtk::Button) {
    let dialog = adw::Window::builder()
        .title(title)
        .transient_for(parent)
        .modal(true)
        .default_width(width)
        .default_height(height)
        .build();
    dialog.set_widget_name(name);
    let outer = gtk::Box::new(gtk::Orientation::Vertical, 0);
    let header = adw::HeaderBar::new();
    header.set_show_end_title_buttons(false);
    let cancel = gtk::Button::with_mnemonic(&gettext("_Cancel"));
    let d = dialog.clone();
    cancel.connect_clicked(move |_| d.close());
    let button = gtk::Button::with_mnemonic(action);
    button.set_widget_name(action_name);
    button.add_css_class("suggested-action");
    header.pack_start(&cancel);
    header.pack_end(&button);
    outer.append(&header);
    (dialog, outer, button)
}

/// The "New Virtual Machine" dialog.
fn create_dialog(
    parent: &adw::Window,
    topology: Option<&Topology>,
    elsewhere: Option<&str>,
    uri: &str,
    sender: &ComponentSender<Vms>,
) -> adw::Window {
    let (dialog, outer, create) = modal_dialog(
        parent,
        &gettext("New Virtual Machine"),
        ("vm-create", (560, 640)),
        (&gettext("C_reate"), "vm-create-button"),
    );

    let page = adw::PreferencesPage::new();
    let basics = adw::PreferencesGroup::new();
    basics.set_title(&gettext("Virtual Machine"));
    basics.set_description(Some(&gettext_f(
        "On {uri}: a q35 machine with UEFI firmware (OVMF), chosen by libvirt.",
        &[("uri", uri)],
    )));
    let name = adw::EntryRow::new();
    name.set_widget_name("vm-name");
    name.set_title(&gettext("Name"));
    basics.add(&name);
    let spin_row = |title: &str, subtitle: &str, min: f64, max: f64, value: f64, step: f64| {
        let row = super::plain_row();
        row.set_title(title);
        row.set_subtitle(subtitle);
        let spin = gtk::SpinButton::with_range(min, max, step);
        spin.set_value(value);
        spin.set_valign(gtk::Align::Center);
        row.add_suffix(&spin);
        row.set_activatable_widget(Some(&spin));
        basics.add(&row);
        spin
    };
    let memory = spin_row(
        &gettext("Memory"),
        &gettext("MiB"),
        256.0,
        1_048_576.0,
        8192.0,
        256.0,
    );
    memory.set_widget_name("vm-memory");
    let vcpus = spin_row(
        &gettext("Processors"),
        &gettext("Virtual CPUs"),
        1.0,
        1024.0,
        4.0,
        1.0,
    );
    vcpus.set_widget_name("vm-vcpus");
    let disk = spin_row(
        &gettext("New Disk"),
        &gettext("GiB, in libvirt's default storage pool; 0 for none"),
        0.0,
        65536.0,
        64.0,
        8.0,
    );
    disk.set_widget_name("vm-disk");
    let secure = super::plain_row();
    secure.set_title(&gettext("Secure Boot"));
    secure.set_subtitle(&gettext(
        "Windows 11 asks for it; some Linux installers do not start with it",
    ));
    let secure_switch = gtk::Switch::new();
    secure_switch.set_valign(gtk::Align::Center);
    secure.add_suffix(&secure_switch);
    secure.set_activatable_widget(Some(&secure_switch));
    basics.add(&secure);

    let iso_path: Rc<std::cell::RefCell<Option<PathBuf>>> = Rc::default();
    let iso = super::plain_row();
    iso.set_title(&gettext("Installer"));
    iso.set_subtitle(&gettext("No ISO image chosen"));
    let choose = gtk::Button::with_mnemonic(&gettext("_Choose…"));
    choose.set_valign(gtk::Align::Center);
    iso.add_suffix(&choose);
    basics.add(&iso);
    let chooser_slot: Rc<std::cell::RefCell<Option<gtk::FileChooserNative>>> = Rc::default();
    {
        let (dialog, iso, iso_path, slot) = (
            dialog.clone(),
            iso.clone(),
            iso_path.clone(),
            chooser_slot.clone(),
        );
        choose.connect_clicked(move |_| {
            let chooser = gtk::FileChooserNative::new(
                Some(&gettext("Choose an Installer ISO")),
                Some(&dialog),
                gtk::FileChooserAction::Open,
                Some(&gettext("_Open")),
                Some(&gettext("_Cancel")),
            );
            let filter = gtk::FileFilter::new();
            filter.set_name(Some(&gettext("Disc images")));
            filter.add_suffix("iso");
            chooser.add_filter(&filter);
            let (iso, iso_path) = (iso.clone(), iso_path.clone());
            chooser.connect_response(move |c, response| {
                if response == gtk::ResponseType::Accept {
                    if let Some(path) = c.file().and_then(|f| f.path()) {
                        iso.set_subtitle(&path.display().to_string());
                        *iso_path.borrow_mut() = Some(path);
                    }
                }
            });
            chooser.show();
            *slot.borrow_mut() = Some(chooser);
        });
    }
    page.add(&basics);

    let devices = adw::PreferencesGroup::new();
    devices.set_title(&gettext("Devices to Give"));
    let mut about = gettext(
        "Every function of a chosen IOMMU group goes to the VM together; bridges stay with the host.",
    );
    if let Some(host) = elsewhere {
        about = format!(
            "{about} {}",
            gettext_f(
                "These are the devices of {host}, not of this computer: use them only with a connection to that machine.",
                &[("host", host)]
            )
        );
    }
    devices.set_description(Some(&about));
    let mut checks: Vec<(PciAddress, gtk::CheckButton)> = Vec::new();
    match topology {
        Some(t) => {
            for (id, first, title, subtitle) in group_rows(t) {
                let row = super::plain_row();
                row.set_title(&title);
                row.set_subtitle(&subtitle);
                let check = gtk::CheckButton::new();
                check.set_widget_name(&format!("group-{id}"));
                row.add_prefix(&check);
                row.set_activatable_widget(Some(&check));
                devices.add(&row);
                checks.push((first, check));
            }
        }
        None => {
            let row = super::plain_row();
            row.set_title(&gettext("The devices of this computer are not loaded"));
            devices.add(&row);
        }
    }
    page.add(&devices);
    outer.append(&page);
    dialog.set_content(Some(&outer));

    let input = sender.input_sender().clone();
    let d = dialog.clone();
    let keep = chooser_slot;
    create.connect_clicked(move |_| {
        let _ = &keep;
        let text = name.text().trim().to_owned();
        if !vm::valid_name(&text) {
            name.add_css_class("error");
            name.grab_focus();
            return;
        }
        input.emit(VmsMsg::Create(CreateRequest {
            name: text,
            memory_mib: memory.value() as u64,
            vcpus: vcpus.value() as u32,
            secure_boot: secure_switch.is_active(),
            iso: iso_path.borrow().clone(),
            disk_gib: disk.value() as u64,
            devices: checks
                .iter()
                .filter(|(_, c)| c.is_active())
                .map(|(a, _)| *a)
                .collect(),
        }));
        d.close();
    });
    dialog
}

/// "Attach a Group": pick one group for a VM.
fn attach_dialog(
    parent: &adw::Window,
    topology: Option<&Topology>,
    vm_name: &str,
    sender: &ComponentSender<Vms>,
) -> adw::Window {
    let (dialog, outer, attach) = modal_dialog(
        parent,
        &gettext_f("Attach a Group to “{name}”", &[("name", vm_name)]),
        ("vm-attach-dialog", (520, 520)),
        (&gettext("_Attach"), "vm-attach-button"),
    );
    attach.set_sensitive(false);
    let page = adw::PreferencesPage::new();
    let group = adw::PreferencesGroup::new();
    group.set_description(Some(&gettext(
        "Into its configuration, and into the running guest too when it runs. The whole group goes.",
    )));
    let chosen: Rc<std::cell::Cell<Option<PciAddress>>> = Rc::default();
    let mut leader: Option<gtk::CheckButton> = None;
    for (id, first, title, subtitle) in topology.map(group_rows).unwrap_or_default() {
        let row = super::plain_row();
        row.set_title(&title);
        row.set_subtitle(&subtitle);
        let check = gtk::CheckButton::new();
        check.set_widget_name(&format!("group-{id}"));
        if let Some(l) = &leader {
            check.set_group(Some(l));
        } else {
            leader = Some(check.clone());
        }
        let (chosen, attach) = (chosen.clone(), attach.clone());
        check.connect_toggled(move |c| {
            if c.is_active() {
                chosen.set(Some(first));
                attach.set_sensitive(true);
            }
        });
        row.add_prefix(&check);
        row.set_activatable_widget(Some(&check));
        group.add(&row);
    }
    page.add(&group);
    outer.append(&page);
    dialog.set_content(Some(&outer));
    let (d, input, name) = (
        dialog.clone(),
        sender.input_sender().clone(),
        vm_name.to_owned(),
    );
    attach.connect_clicked(move |_| {
        if let Some(address) = chosen.get() {
            input.emit(VmsMsg::Attach(name.clone(), address));
        }
        d.close();
    });
    dialog
}
