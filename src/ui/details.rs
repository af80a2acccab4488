//! The details pane: everything about the selected function or group, each
//! finding as a sentence with what to do, what giving it to a VM would take,
//! and the option ROM verdict (with a ROM file the user opens).

use std::path::PathBuf;
use std::sync::Arc;

use relm4::adw::prelude::*;
use relm4::prelude::*;
use relm4::{adw, gtk};

use super::model;
use super::tree::Selection;
use crate::i18n::{gettext, gettext_f};
use crate::pci::PciAddress;
use crate::rom;
use crate::topology::{Finding, RomVerdict, Severity, Topology};

/// The pane.
pub struct Details {
    shown: Option<(Arc<Topology>, Selection)>,
    /// A ROM file opened for the shown device: its name and verdict or error.
    rom_file: Option<(PathBuf, Result<RomVerdict, String>)>,
    chooser: Option<gtk::FileChooserNative>,
    /// Devices can move: this computer (not a capture or a sample).
    can_move: bool,
    /// The function whose group is moving now.
    busy: Option<PciAddress>,
    /// The ROM read from the device through the helper: its verdict or why not.
    rom_device: Option<(PciAddress, Result<RomVerdict, String>)>,
}

#[derive(Debug)]
pub enum DetailsMsg {
    Show(Option<(Arc<Topology>, Selection)>),
    OpenRomFile,
    RomFileChosen(PathBuf),
    /// Whether moves are possible here (this computer).
    CanMove(bool),
    /// A move started (`Some`) or ended (`None`).
    Busy(Option<PciAddress>),
    /// The switch was flipped: to the VM (`true`) or back.
    Toggle(PciAddress, bool),
    /// "Read From Device" was pressed (with whether it is the boot VGA device).
    ReadRom(PciAddress, bool),
}

#[derive(Debug)]
pub enum DetailsOutput {
    /// The user picked a group mate or a group's function.
    Select(Selection),
    /// A short outcome for a toast.
    Toast(String),
    /// Move the group of this function: to the guest (`true`) or back.
    Move(PciAddress, bool),
}

#[derive(Debug)]
pub enum DetailsCmd {
    RomRead(PathBuf, Result<RomVerdict, String>),
    RomFromDevice(PciAddress, Result<RomVerdict, String>),
}

pub struct DetailsWidgets {
    stack: gtk::Stack,
    content: gtk::Box,
}

impl Component for Details {
    type Init = ();
    type Input = DetailsMsg;
    type Output = DetailsOutput;
    type CommandOutput = DetailsCmd;
    type Root = gtk::Stack;
    type Widgets = DetailsWidgets;

    fn init_root() -> gtk::Stack {
        let stack = gtk::Stack::new();
        stack.set_widget_name("details");
        stack.set_vexpand(true);
        stack.set_hexpand(true);
        stack
    }

    fn init(_: (), stack: gtk::Stack, _sender: ComponentSender<Self>) -> ComponentParts<Self> {
        let empty = adw::StatusPage::builder()
            .icon_name("view-list-symbolic")
            .title(gettext("No Device Selected"))
            .description(gettext("Select a group or a device to see what it is, what to watch out for, and what giving it to a virtual machine would take."))
            .build();
        stack.add_named(&empty, Some("empty"));

        let content = gtk::Box::new(gtk::Orientation::Vertical, 24);
        content.set_margin_top(24);
        content.set_margin_bottom(24);
        content.set_margin_start(12);
        content.set_margin_end(12);
        let clamp = adw::Clamp::builder()
            .maximum_size(720)
            .child(&content)
            .build();
        let scrolled = gtk::ScrolledWindow::builder()
            .hscrollbar_policy(gtk::PolicyType::Never)
            .child(&clamp)
            .build();
        stack.add_named(&scrolled, Some("content"));
        stack.set_visible_child_name("empty");

        let model = Details {
            shown: None,
            rom_file: None,
            chooser: None,
            can_move: false,
            busy: None,
            rom_device: None,
        };
        ComponentParts {
            model,
            widgets: DetailsWidgets { stack, content },
        }
    }

    fn update(&mut self, msg: DetailsMsg, sender: ComponentSender<Self>, root: &gtk::Stack) {
        match msg {
            DetailsMsg::Show(shown) => {
                let same_device = match (&self.shown, &shown) {
                    (Some((_, a)), Some((_, b))) => a == b,
                    _ => false,
                };
                if !same_device {
                    self.rom_file = None;
                }
                self.shown = shown;
            }
            DetailsMsg::OpenRomFile => {
                let window = root.root().and_downcast::<gtk::Window>();
                let chooser = gtk::FileChooserNative::new(
                    Some(&gettext("Open a ROM File")),
                    window.as_ref(),
                    gtk::FileChooserAction::Open,
                    Some(&gettext("_Open")),
                    Some(&gettext("_Cancel")),
                );
                chooser.set_modal(true);
                let filter = gtk::FileFilter::new();
                filter.set_name(Some(&gettext("ROM files")));
                filter.add_suffix("rom");
                filter.add_suffix("bin");
                chooser.add_filter(&filter);
                let all = gtk::FileFilter::new();
                all.set_name(Some(&gettext("All files")));
                all.add_pattern("*");
                chooser.add_filter(&all);
                let input = sender.input_sender().clone();
                chooser.connect_response(move |chooser, response| {
                    if response == gtk::ResponseType::Accept {
                        if let Some(path) = chooser.file().and_then(|f| f.path()) {
                            input.emit(DetailsMsg::RomFileChosen(path));
                        }
                    }
                    chooser.destroy();
                });
                chooser.show();
                self.chooser = Some(chooser);
            }
            DetailsMsg::CanMove(can) => self.can_move = can,
            DetailsMsg::ReadRom(address, boot_vga) => {
                // A blocking D-Bus call: on the blocking pool, not the main loop.
                sender.spawn_oneshot_command(move || {
                    DetailsCmd::RomFromDevice(address, rom_via_helper(address, boot_vga))
                });
            }
            DetailsMsg::Busy(busy) => self.busy = busy,
            DetailsMsg::Toggle(address, to_guest) => {
                if self.busy.is_none() {
                    let _ = sender.output(DetailsOutput::Move(address, to_guest));
                }
            }
            DetailsMsg::RomFileChosen(path) => {
                sender.oneshot_command(async move {
                    let result = read_rom_verdict(&path);
                    DetailsCmd::RomRead(path, result)
                });
            }
        }
    }

    fn update_cmd(&mut self, msg: DetailsCmd, sender: ComponentSender<Self>, _: &gtk::Stack) {
        let (path, result) = match msg {
            DetailsCmd::RomRead(path, result) => (path, result),
            DetailsCmd::RomFromDevice(address, result) => {
                let _ = sender.output(DetailsOutput::Toast(match &result {
                    Ok(verdict) => model::rom_text(Some(verdict), true).0,
                    Err(e) => e.clone(),
                }));
                self.rom_device = Some((address, result));
                return;
            }
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let toast = match &result {
            Ok(verdict) => {
                let (title, _) = model::rom_text(Some(verdict), true);
                gettext_f("{file}: {verdict}", &[("file", &name), ("verdict", &title)])
            }
            Err(_) => gettext_f("Could not read {file}", &[("file", &name)]),
        };
        let _ = sender.output(DetailsOutput::Toast(toast));
        self.rom_file = Some((path, result));
    }

    fn update_view(&self, widgets: &mut DetailsWidgets, sender: ComponentSender<Self>) {
        let content = &widgets.content;
        while let Some(child) = content.first_child() {
            content.remove(&child);
        }
        let Some((topology, selection)) = &self.shown else {
            widgets.stack.set_visible_child_name("empty");
            return;
        };
        match selection {
            Selection::Device(address) => match topology.device(address) {
                Some(_) => self.fill_device(content, topology, address, &sender),
                None => {
                    widgets.stack.set_visible_child_name("empty");
                    return;
                }
            },
            Selection::Group(id) => fill_group(content, topology, *id, &sender),
        }
        widgets.stack.set_visible_child_name("content");
    }
}

/// The device's ROM through the helper (a blocking D-Bus call), judged.
fn rom_via_helper(address: PciAddress, boot_vga: bool) -> Result<RomVerdict, String> {
    use crate::dbus::CallError;
    let data = crate::dbus::call_read_rom(&address.to_string()).map_err(|e| match e {
        CallError::Unavailable(_) => {
            gettext("Traspaso's helper is not available: it comes with the distribution package.")
        }
        CallError::AccessDenied(_) => gettext("Not authorised to read the ROM."),
        CallError::InvalidArgs(t) | CallError::Refused(t) | CallError::Failed(t) => t,
    })?;
    let parsed = rom::parse(&data).map_err(|e| e.to_string())?;
    Ok(RomVerdict::of(&parsed, boot_vga))
}

fn read_rom_verdict(path: &std::path::Path) -> Result<RomVerdict, String> {
    let data = rom::read_rom_file(path).map_err(|e| e.to_string())?;
    let parsed = rom::parse(&data).map_err(|e| e.to_string())?;
    Ok(RomVerdict::of(&parsed, false))
}

impl Details {
    fn fill_device(
        &self,
        content: &gtk::Box,
        topology: &Topology,
        address: &PciAddress,
        sender: &ComponentSender<Self>,
    ) {
        let Some(device) = topology.device(address) else {
            return;
        };
        content.append(&header(
            model::class_icon(device),
            &model::device_title(device),
            &model::device_subtitle(device),
        ));

        let findings: Vec<&Finding> = topology.findings_for(address).collect();
        content.append(&findings_group(&findings));

        // What giving it to a VM takes, with its group mates one click away.
        let plan = model::move_plan(topology, device);
        let move_group = adw::PreferencesGroup::new();
        move_group.set_title(&gettext("Giving It to a Virtual Machine"));
        if let Some((first, rest)) = plan.split_first() {
            move_group.set_description(Some(first));
            for line in rest {
                let row = super::plain_row();
                row.set_title(line);
                move_group.add(&row);
            }
        }
        if let Some(group) = device.iommu_group.and_then(|g| topology.group(g)) {
            let row = super::plain_row();
            row.set_title(&model::group_title(group));
            row.set_subtitle(&model::group_verdict(topology, group));
            row.set_activatable(true);
            row.add_suffix(&gtk::Image::from_icon_name("go-next-symbolic"));
            let id = group.id;
            let out = sender.output_sender().clone();
            row.connect_activated(move |_| out.emit(DetailsOutput::Select(Selection::Group(id))));
            move_group.add(&row);
        }
        if let Some(group) = device.iommu_group.and_then(|g| topology.group(g)) {
            if !device.bridge && !group.moves_together.is_empty() {
                move_group.add(&self.switch_row(topology, group, address, sender));
            }
        }
        content.append(&move_group);

        // Option ROMs are read through sysfs: not for a host seen through libvirt.
        let sysfs = topology.libvirt_uri.is_none();
        if sysfs && (device.class.is_display() || device.has_rom || device.rom.is_some()) {
            content.append(&self.rom_group(device, sender));
        }

        let attributes = adw::PreferencesGroup::new();
        attributes.set_title(&gettext("Attributes"));
        for a in model::attributes(device, sysfs) {
            let row = super::plain_row();
            row.set_title(&a.name);
            let value = gtk::Label::builder()
                .label(&a.value)
                .selectable(true)
                .wrap(true)
                .xalign(1.0)
                .justify(gtk::Justification::Right)
                .css_classes(["dim-label"])
                .build();
            row.add_suffix(&value);
            attributes.add(&row);
        }
        content.append(&attributes);
    }

    /// The switch that gives the group to a VM and takes it back.
    fn switch_row(
        &self,
        topology: &Topology,
        group: &crate::topology::IommuGroup,
        address: &PciAddress,
        sender: &ComponentSender<Self>,
    ) -> adw::ActionRow {
        let on_vfio = group
            .moves_together
            .iter()
            .filter_map(|a| topology.device(a))
            .all(|d| d.on_vfio());
        let row = super::plain_row();
        row.set_widget_name("move-row");
        row.set_title(&gettext("Given to a Virtual Machine"));
        let busy = self.busy.is_some();
        let in_use = !group.in_use_by.is_empty();
        row.set_subtitle(&if busy {
            gettext("Moving…")
        } else if !self.can_move {
            gettext("Only the devices of this computer can move.")
        } else if in_use {
            gettext_f(
                "In use by {users}: shut the virtual machine down to take the group back.",
                &[("users", &group.in_use_by.join(", "))],
            )
        } else if on_vfio {
            gettext("On vfio-pci: a virtual machine can use the group.")
        } else {
            gettext("On the host's drivers.")
        });
        if busy {
            let spinner = gtk::Spinner::new();
            spinner.start();
            row.add_suffix(&spinner);
        }
        let switch = gtk::Switch::new();
        switch.set_valign(gtk::Align::Center);
        switch.set_active(on_vfio);
        switch.set_sensitive(self.can_move && !busy && !in_use);
        super::set_accessible_label(&switch, &gettext("Given to a Virtual Machine"));
        let input = sender.input_sender().clone();
        let address = *address;
        // The switch flips when the move is done (the view is rebuilt then).
        switch.connect_state_set(move |_, wanted| {
            input.emit(DetailsMsg::Toggle(address, wanted));
            gtk::glib::Propagation::Stop
        });
        row.add_suffix(&switch);
        row.set_activatable_widget(Some(&switch));
        row
    }

    fn rom_group(
        &self,
        device: &crate::topology::PciDevice,
        sender: &ComponentSender<Self>,
    ) -> adw::PreferencesGroup {
        let group = adw::PreferencesGroup::new();
        group.set_title(&gettext("Option ROM"));
        let open = gtk::Button::with_mnemonic(&gettext("Open ROM _File…"));
        open.set_valign(gtk::Align::Center);
        open.set_tooltip_text(Some(&gettext("Check a ROM file saved from this card")));
        let input = sender.input_sender().clone();
        open.connect_clicked(move |_| input.emit(DetailsMsg::OpenRomFile));
        group.set_header_suffix(Some(&open));

        let (title, text) = model::rom_summary(device);
        let row = super::plain_row();
        row.set_title(&title);
        row.set_subtitle(&text);
        if self.can_move && device.has_rom {
            let read = gtk::Button::with_mnemonic(&gettext("_Read From Device"));
            read.set_valign(gtk::Align::Center);
            read.set_tooltip_text(Some(&gettext("Read the ROM through Traspaso's helper")));
            let input = sender.input_sender().clone();
            let address = device.address;
            let boot_vga = device.boot_vga;
            read.connect_clicked(move |_| input.emit(DetailsMsg::ReadRom(address, boot_vga)));
            row.add_suffix(&read);
        }
        group.add(&row);
        if let Some((address, result)) = &self.rom_device {
            if *address == device.address {
                let row = super::plain_row();
                match result {
                    Ok(verdict) => {
                        let (title, text) = model::rom_text(Some(verdict), true);
                        row.set_title(&gettext_f(
                            "From the device: {verdict}",
                            &[("verdict", &title)],
                        ));
                        row.set_subtitle(&text);
                    }
                    Err(e) => {
                        row.set_title(&gettext("Could not read the device's ROM"));
                        row.set_subtitle(e);
                    }
                }
                group.add(&row);
            }
        }
        if let Some((path, result)) = &self.rom_file {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let row = super::plain_row();
            match result {
                Ok(verdict) => {
                    let (title, text) = model::rom_text(Some(verdict), true);
                    row.set_title(&gettext_f(
                        "{file}: {verdict}",
                        &[("file", &name), ("verdict", &title)],
                    ));
                    row.set_subtitle(&text);
                }
                Err(e) => {
                    row.set_title(&gettext_f("Could not read {file}", &[("file", &name)]));
                    row.set_subtitle(e);
                }
            }
            row.add_prefix(&gtk::Image::from_icon_name("document-open-symbolic"));
            group.add(&row);
        }
        group
    }
}

fn fill_group(content: &gtk::Box, topology: &Topology, id: u32, sender: &ComponentSender<Details>) {
    let Some(group) = topology.group(id) else {
        return;
    };
    content.append(&header(
        if group.shared {
            "dialog-warning-symbolic"
        } else {
            "emblem-ok-symbolic"
        },
        &model::group_title(group),
        &model::group_verdict(topology, group),
    ));
    let findings: Vec<&Finding> = topology
        .findings
        .iter()
        .filter(|f| f.group == Some(id))
        .collect();
    content.append(&findings_group(&findings));

    let devices = adw::PreferencesGroup::new();
    devices.set_title(&gettext("Devices in This Group"));
    if let Some(first) = group
        .moves_together
        .first()
        .and_then(|a| topology.device(a))
    {
        if let Some(line) = model::move_plan(topology, first).first() {
            devices.set_description(Some(line));
        }
    }
    for address in &group.devices {
        let Some(d) = topology.device(address) else {
            continue;
        };
        let row = super::plain_row();
        row.set_title(&model::device_title(d));
        row.set_subtitle(&model::device_subtitle(d));
        row.add_prefix(&gtk::Image::from_icon_name(model::class_icon(d)));
        row.add_suffix(&gtk::Image::from_icon_name("go-next-symbolic"));
        row.set_activatable(true);
        let out = sender.output_sender().clone();
        let address = *address;
        row.connect_activated(move |_| out.emit(DetailsOutput::Select(Selection::Device(address))));
        devices.add(&row);
    }
    content.append(&devices);
}

fn header(icon: &str, title: &str, subtitle: &str) -> gtk::Box {
    let image = gtk::Image::from_icon_name(icon);
    image.set_pixel_size(48);
    let title = gtk::Label::builder()
        .label(title)
        .wrap(true)
        .xalign(0.0)
        .css_classes(["title-2"])
        .build();
    let subtitle = gtk::Label::builder()
        .label(subtitle)
        .wrap(true)
        .xalign(0.0)
        .css_classes(["dim-label"])
        .build();
    let labels = gtk::Box::new(gtk::Orientation::Vertical, 4);
    labels.set_valign(gtk::Align::Center);
    labels.append(&title);
    labels.append(&subtitle);
    let header = gtk::Box::new(gtk::Orientation::Horizontal, 12);
    header.append(&image);
    header.append(&labels);
    header
}

/// Each finding as a row: what it means as the title, what to do below.
fn findings_group(findings: &[&Finding]) -> adw::PreferencesGroup {
    let group = adw::PreferencesGroup::new();
    group.set_title(&gettext("Findings"));
    if findings.is_empty() {
        let row = super::plain_row();
        row.set_title(&gettext("Nothing to watch out for"));
        let icon = gtk::Image::from_icon_name("emblem-ok-symbolic");
        icon.add_css_class("success");
        row.add_prefix(&icon);
        group.add(&row);
        return group;
    }
    let mut sorted = findings.to_vec();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in sorted {
        let row = super::plain_row();
        row.set_title(&f.message);
        row.set_subtitle(&f.advice);
        let (icon, class, label) = match f.severity {
            Severity::Error => ("dialog-error-symbolic", "error", gettext("Problem")),
            Severity::Warning => ("dialog-warning-symbolic", "warning", gettext("Warning")),
            Severity::Info => ("dialog-information-symbolic", "accent", gettext("Note")),
        };
        let image = gtk::Image::from_icon_name(icon);
        image.add_css_class(class);
        image.set_tooltip_text(Some(&label));
        super::set_accessible_label(&image, &label);
        row.add_prefix(&image);
        let badge = gtk::Label::new(Some(&model::badge_label(f.code)));
        badge.add_css_class("badge");
        badge.add_css_class(class);
        badge.set_valign(gtk::Align::Center);
        row.add_suffix(&badge);
        group.add(&row);
    }
    group
}
