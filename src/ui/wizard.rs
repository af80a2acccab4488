//! The first-time setup wizard: Welcome → Your hardware → Choose the GPU for
//! the VM → Prepare the host → Done. Everything it shows comes from the
//! readiness checks the window already ran; it reads nothing itself.

use std::sync::Arc;

use relm4::adw::prelude::*;
use relm4::prelude::*;
use relm4::{adw, gtk};

use crate::i18n::{gettext, gettext_f};
use crate::readiness::{self, Readiness, Status};

/// The pages, in order.
pub const PAGES: [&str; 5] = ["welcome", "hardware", "gpu", "prepare", "done"];

/// What the wizard shows.
#[derive(Debug, Clone)]
pub struct WizardInit {
    pub readiness: Arc<Readiness>,
    /// The report in Markdown, for "Copy Report".
    pub report: String,
}

pub struct Wizard {
    page: usize,
    readiness: Arc<Readiness>,
    report: String,
    /// The GPU chosen for the VM (its address).
    pub chosen: Option<String>,
}

#[derive(Debug)]
pub enum WizardMsg {
    Next,
    Back,
    Choose(String),
    CopyReport,
    CopyCommand(String),
}

#[derive(Debug)]
pub enum WizardOutput {
    /// The user reached the end (or closed it): do not open by itself again.
    Finished,
    Toast(String),
    /// Save the report to a file (the window owns the file dialog).
    SaveReport,
}

#[relm4::component(pub)]
impl SimpleComponent for Wizard {
    type Init = WizardInit;
    type Input = WizardMsg;
    type Output = WizardOutput;

    view! {
        #[root]
        adw::Window {
            set_title: Some(&gettext("Set Up Passthrough")),
            set_default_size: (640, 620),
            set_modal: true,
            set_hide_on_close: false,
            connect_close_request[sender] => move |_| {
                let _ = sender.output(WizardOutput::Finished);
                gtk::glib::Propagation::Proceed
            },

            gtk::Box {
                set_orientation: gtk::Orientation::Vertical,

                adw::HeaderBar {
                    set_show_end_title_buttons: true,
                    pack_start = &gtk::Button {
                        set_label: &gettext("Back"),
                        #[watch]
                        set_visible: model.page > 0,
                        connect_clicked => WizardMsg::Back,
                    },
                    pack_end = &gtk::Button {
                        set_widget_name: "wizard-next",
                        add_css_class: "suggested-action",
                        #[watch]
                        set_label: &if model.page + 1 == PAGES.len() { gettext("Done") } else { gettext("Next") },
                        connect_clicked => WizardMsg::Next,
                    },
                },

                #[name = "pages"]
                gtk::Stack {
                    set_widget_name: "wizard-pages",
                    set_vexpand: true,
                    set_transition_type: gtk::StackTransitionType::SlideLeftRight,
                },
            }
        }
    }

    fn init(
        init: WizardInit,
        root: Self::Root,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let model = Wizard {
            page: 0,
            chosen: init
                .readiness
                .gpus
                .iter()
                .find(|g| g.candidate)
                .map(|g| g.address.clone()),
            readiness: init.readiness,
            report: init.report,
        };
        let widgets = view_output!();
        let r = &model.readiness;
        widgets.pages.add_named(&welcome(r), Some(PAGES[0]));
        widgets
            .pages
            .add_named(&scrolled(hardware(r)), Some(PAGES[1]));
        widgets.pages.add_named(
            &scrolled(gpus(r, model.chosen.as_deref(), &sender)),
            Some(PAGES[2]),
        );
        widgets
            .pages
            .add_named(&scrolled(prepare(r, &sender)), Some(PAGES[3]));
        widgets
            .pages
            .add_named(&scrolled(done(r, &sender)), Some(PAGES[4]));
        widgets.pages.set_visible_child_name(PAGES[0]);
        super::label_icon_buttons(root.upcast_ref());
        ComponentParts { model, widgets }
    }

    fn update(&mut self, msg: WizardMsg, sender: ComponentSender<Self>) {
        match msg {
            WizardMsg::Next if self.page + 1 < PAGES.len() => self.page += 1,
            WizardMsg::Next => {
                let _ = sender.output(WizardOutput::Finished);
            }
            WizardMsg::Back => self.page = self.page.saturating_sub(1),
            WizardMsg::Choose(address) => self.chosen = Some(address),
            WizardMsg::CopyReport => {
                copy(&self.report);
                let _ = sender.output(WizardOutput::Toast(gettext("Report copied")));
            }
            WizardMsg::CopyCommand(command) => {
                copy(&command);
                let _ = sender.output(WizardOutput::Toast(gettext("Command copied")));
            }
        }
    }

    fn post_view() {
        pages.set_visible_child_name(PAGES[model.page]);
    }
}

fn copy(text: &str) {
    if let Some(display) = gtk::gdk::Display::default() {
        display.clipboard().set_text(text);
    }
}

fn scrolled(content: gtk::Box) -> gtk::ScrolledWindow {
    content.set_margin_top(24);
    content.set_margin_bottom(24);
    content.set_margin_start(12);
    content.set_margin_end(12);
    let clamp = adw::Clamp::builder()
        .maximum_size(560)
        .child(&content)
        .build();
    gtk::ScrolledWindow::builder()
        .hscrollbar_policy(gtk::PolicyType::Never)
        .child(&clamp)
        .build()
}

fn page(title: &str, description: &str) -> gtk::Box {
    let page = gtk::Box::new(gtk::Orientation::Vertical, 18);
    let heading = gtk::Label::builder()
        .label(title)
        .wrap(true)
        .xalign(0.0)
        .css_classes(["title-1"])
        .build();
    let text = gtk::Label::builder()
        .label(description)
        .wrap(true)
        .xalign(0.0)
        .build();
    page.append(&heading);
    page.append(&text);
    page
}

fn status_icon(status: Status) -> gtk::Image {
    let (icon, class, label) = match status {
        Status::Pass => ("emblem-ok-symbolic", "success", gettext("Passed")),
        Status::Warn => ("dialog-warning-symbolic", "warning", gettext("Warning")),
        Status::Fail => ("dialog-error-symbolic", "error", gettext("Problem")),
        Status::Unknown => ("dialog-question-symbolic", "dim-label", gettext("Unknown")),
    };
    let image = gtk::Image::from_icon_name(icon);
    image.add_css_class(class);
    image.set_tooltip_text(Some(&label));
    super::set_accessible_label(&image, &label);
    image
}

fn welcome(r: &Readiness) -> adw::StatusPage {
    let page = adw::StatusPage::builder()
        .icon_name(crate::config::APP_ID)
        .title(gettext("Welcome to Traspaso"))
        .description(gettext("In a few steps: whether this computer can give a graphics card to a virtual machine, which card, and what to change on the host. Nothing is changed without you."))
        .vexpand(true)
        .build();
    let summary = gtk::Label::builder()
        .label(&r.summary)
        .wrap(true)
        .justify(gtk::Justification::Center)
        .css_classes(["heading"])
        .build();
    page.set_child(Some(&summary));
    page
}

fn hardware(r: &Readiness) -> gtk::Box {
    let content = page(
        &gettext("Your Hardware"),
        &gettext("Each check says what was seen, why it matters and what to do next."),
    );
    let group = adw::PreferencesGroup::new();
    for c in &r.checks {
        if c.id == "gpu-candidates" || c.id == "bootloader" {
            continue;
        }
        group.add(&check_row(c));
    }
    content.append(&group);
    content
}

fn check_row(c: &readiness::Check) -> gtk::Widget {
    if c.status == Status::Pass || (c.next.is_empty() && c.status == Status::Unknown) {
        let row = super::plain_row();
        row.set_title(&readiness::title(c.id));
        row.set_subtitle(&c.seen);
        row.add_prefix(&status_icon(c.status));
        return row.upcast();
    }
    let row = adw::ExpanderRow::new();
    row.set_title(&readiness::title(c.id));
    row.set_subtitle(&c.seen);
    row.add_prefix(&status_icon(c.status));
    row.set_expanded(c.status == Status::Fail);
    let why = super::plain_row();
    why.set_title(&gettext("Why it matters"));
    why.set_subtitle(&c.why);
    row.add_row(&why);
    if !c.next.is_empty() {
        let next = super::plain_row();
        next.set_title(&gettext("What to do"));
        next.set_subtitle(&c.next);
        row.add_row(&next);
    }
    row.upcast()
}

fn gpus(r: &Readiness, chosen: Option<&str>, sender: &ComponentSender<Wizard>) -> gtk::Box {
    let check = r.check("gpu-candidates");
    let content = page(
        &gettext("Choose the GPU for the VM"),
        &check.map(|c| c.next.clone()).unwrap_or_default(),
    );
    let group = adw::PreferencesGroup::new();
    if r.gpus.is_empty() {
        let row = super::plain_row();
        row.set_title(&gettext("No graphics card was found."));
        group.add(&row);
    }
    let mut first: Option<gtk::CheckButton> = None;
    for g in &r.gpus {
        let row = super::plain_row();
        row.set_title(&g.name);
        let mut notes = vec![g.address.clone()];
        if g.boot_vga {
            notes.push(gettext("boot GPU: the host shows its console on it"));
        }
        if g.integrated {
            notes.push(gettext("integrated graphics stay with the host"));
        }
        notes.push(match g.group {
            "isolated" => gettext("isolated group"),
            "shared" => gettext("shared group: its group mates move with it"),
            _ => gettext("no IOMMU group"),
        });
        if g.rom == "legacy-only" {
            notes.push(gettext("no UEFI image in its ROM"));
        }
        row.set_subtitle(&notes.join(" · "));
        let radio = gtk::CheckButton::new();
        radio.set_valign(gtk::Align::Center);
        radio.set_sensitive(g.candidate);
        if let Some(f) = &first {
            radio.set_group(Some(f));
        } else {
            first = Some(radio.clone());
        }
        radio.set_active(chosen == Some(g.address.as_str()));
        let input = sender.input_sender().clone();
        let address = g.address.clone();
        radio.connect_toggled(move |b| {
            if b.is_active() {
                input.emit(WizardMsg::Choose(address.clone()));
            }
        });
        row.add_prefix(&radio);
        row.set_activatable_widget(Some(&radio));
        row.set_sensitive(g.candidate);
        group.add(&row);
    }
    content.append(&group);
    content
}

fn prepare(r: &Readiness, sender: &ComponentSender<Wizard>) -> gtk::Box {
    let content = page(
        &gettext("Prepare the Host"),
        &gettext("These are the exact changes this computer needs. Run them in a terminal; Traspaso will offer to apply them itself once its helper can."),
    );
    let group = adw::PreferencesGroup::new();
    let mut any = false;
    for c in &r.checks {
        let Some(command) = &c.command else {
            continue;
        };
        any = true;
        let row = super::plain_row();
        row.set_title(&readiness::title(c.id));
        row.set_subtitle(&c.seen);
        group.add(&row);
        let code = gtk::Label::builder()
            .label(command)
            .selectable(true)
            .wrap(true)
            .wrap_mode(gtk::pango::WrapMode::Char)
            .xalign(0.0)
            .css_classes(["monospace"])
            .margin_top(8)
            .margin_bottom(8)
            .margin_start(12)
            .margin_end(12)
            .hexpand(true)
            .build();
        let copy = gtk::Button::from_icon_name("edit-copy-symbolic");
        copy.set_tooltip_text(Some(&gettext("Copy the command")));
        copy.set_valign(gtk::Align::Center);
        copy.add_css_class("flat");
        let input = sender.input_sender().clone();
        let text = command.clone();
        copy.connect_clicked(move |_| input.emit(WizardMsg::CopyCommand(text.clone())));
        let line = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        line.add_css_class("card");
        line.append(&code);
        line.append(&copy);
        let holder = adw::PreferencesGroup::new();
        holder.add(&line);
        group.add(&holder);
    }
    if !any {
        let row = super::plain_row();
        row.set_title(&gettext("Nothing to change"));
        row.set_subtitle(&gettext(
            "The kernel command line already has what passthrough needs.",
        ));
        row.add_prefix(&status_icon(Status::Pass));
        group.add(&row);
    }
    content.append(&group);
    content
}

fn done(r: &Readiness, sender: &ComponentSender<Wizard>) -> gtk::Box {
    let remaining: Vec<&readiness::Check> = r
        .checks
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Warn) && !c.next.is_empty())
        .collect();
    let content = page(
        &gettext("Done"),
        &if remaining.is_empty() {
            gettext("Nothing remains: this computer is ready to give its GPU to a virtual machine.")
        } else {
            gettext_f("{summary} What remains:", &[("summary", &r.summary)])
        },
    );
    if !remaining.is_empty() {
        let group = adw::PreferencesGroup::new();
        for c in remaining {
            let row = super::plain_row();
            row.set_title(&readiness::title(c.id));
            row.set_subtitle(&c.next);
            row.add_prefix(&status_icon(c.status));
            group.add(&row);
        }
        content.append(&group);
    }
    let share = adw::PreferencesGroup::new();
    share.set_title(&gettext("Share What You Found"));
    share.set_description(Some(&gettext("A report of this hardware and its groups helps the next person choose what to buy. It holds no serial numbers, network addresses or names.")));
    let buttons = gtk::Box::new(gtk::Orientation::Horizontal, 12);
    let save = gtk::Button::with_mnemonic(&gettext("_Save Report…"));
    save.add_css_class("pill");
    let out = sender.output_sender().clone();
    save.connect_clicked(move |_| out.emit(WizardOutput::SaveReport));
    let copy = gtk::Button::with_mnemonic(&gettext("_Copy Report"));
    copy.add_css_class("pill");
    let input = sender.input_sender().clone();
    copy.connect_clicked(move |_| input.emit(WizardMsg::CopyReport));
    buttons.append(&save);
    buttons.append(&copy);
    buttons.set_halign(gtk::Align::Center);
    share.add(&buttons);
    content.append(&share);
    content
}
