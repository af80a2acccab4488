//! `traspasoctl`: the command line. See [`traspaso::ctl`].
fn main() -> std::process::ExitCode {
    traspaso::i18n::init();
    traspaso::ctl::run(std::env::args_os())
}
