//! `traspaso`: the GNOME app. Thin: translations first, then the Relm4 app.
fn main() -> std::process::ExitCode {
    traspaso::i18n::init();
    traspaso::ui::run()
}
