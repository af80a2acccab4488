//! The preferences window.

use std::rc::Rc;

use relm4::adw::prelude::*;
use relm4::{adw, gtk};

use super::settings::Settings;
use crate::i18n::gettext;

/// Show the preferences, transient for `parent`. Changes apply at once.
pub fn show(parent: &adw::ApplicationWindow, settings: &Rc<Settings>) {
    let window = adw::PreferencesWindow::builder()
        .transient_for(parent)
        .modal(true)
        .search_enabled(false)
        .default_width(520)
        .default_height(360)
        .build();
    let page = adw::PreferencesPage::new();
    let group = adw::PreferencesGroup::new();
    group.set_title(&gettext("Device List"));

    let live = super::plain_row();
    live.set_title(&gettext("Follow Driver Changes"));
    live.set_subtitle(&gettext(
        "Check every two seconds whether a driver was bound or unbound, and update the list",
    ));
    let switch = gtk::Switch::new();
    switch.set_valign(gtk::Align::Center);
    switch.set_active(settings.boolean("live-updates", true));
    live.add_suffix(&switch);
    live.set_activatable_widget(Some(&switch));
    let s = settings.clone();
    switch.connect_active_notify(move |sw| s.set_boolean("live-updates", sw.is_active()));
    group.add(&live);

    if !settings.is_persistent() {
        let note = super::plain_row();
        note.set_title(&gettext("Settings are not saved"));
        note.set_subtitle(&gettext(
            "The settings schema is not installed, so changes last until Traspaso closes.",
        ));
        group.add(&note);
    }

    page.add(&group);
    window.add(&page);
    window.present();
}
