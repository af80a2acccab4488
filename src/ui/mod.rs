//! The GTK 4 + libadwaita app, built with Relm4. Components only: every host
//! read runs off the main loop in a command and comes back as a message.

use relm4::adw::prelude::*;
use relm4::prelude::*;
use relm4::{adw, gtk};

use crate::host::HostRoot;
use crate::i18n::{gettext, gettext_f, ngettext_f};
use crate::topology::{ScanOptions, Topology};

/// The main window.
pub struct App {
    summary: String,
}

#[derive(Debug)]
pub enum AppMsg {}

#[derive(Debug)]
pub enum AppCmd {
    Loaded(Result<(usize, usize, bool), String>),
}

#[relm4::component(pub)]
impl Component for App {
    type Init = ();
    type Input = AppMsg;
    type Output = ();
    type CommandOutput = AppCmd;

    view! {
        adw::ApplicationWindow {
            set_title: Some(&gettext("Traspaso")),
            set_default_size: (900, 640),

            gtk::Box {
                set_orientation: gtk::Orientation::Vertical,

                adw::HeaderBar {},

                adw::StatusPage {
                    set_vexpand: true,
                    set_icon_name: Some("video-display-symbolic"),
                    set_title: &gettext("Traspaso"),
                    #[watch]
                    set_description: Some(&model.summary),
                },
            }
        }
    }

    fn init(_: (), root: Self::Root, sender: ComponentSender<Self>) -> ComponentParts<Self> {
        let model = App {
            summary: gettext("Reading this computer's devices…"),
        };
        let widgets = view_output!();
        sender.oneshot_command(async {
            let result = HostRoot::open("/")
                .map_err(|e| e.to_string())
                .and_then(|host| {
                    Topology::load(&host, None, ScanOptions::default()).map_err(|e| e.to_string())
                })
                .map(|t| (t.groups.len(), t.devices.len(), t.iommu_enabled));
            AppCmd::Loaded(result)
        });
        ComponentParts { model, widgets }
    }

    fn update_cmd(&mut self, msg: AppCmd, _: ComponentSender<Self>, _: &Self::Root) {
        let AppCmd::Loaded(result) = msg;
        self.summary = match result {
            Ok((_, devices, false)) => gettext_f(
                "The IOMMU is off: {devices} found, but none can be given to a virtual machine yet.",
                &[("devices", &ngettext_f("{n} device", "{n} devices", devices as u32, &[]))],
            ),
            Ok((groups, devices, true)) => gettext_f(
                "{devices} in {groups}.",
                &[
                    ("devices", &ngettext_f("{n} device", "{n} devices", devices as u32, &[])),
                    ("groups", &ngettext_f("{n} IOMMU group", "{n} IOMMU groups", groups as u32, &[])),
                ],
            ),
            Err(e) => e,
        };
    }
}

/// Start the app.
pub fn run() {
    let app = RelmApp::new(crate::config::APP_ID).with_args(Vec::new());
    app.run::<App>(());
}
