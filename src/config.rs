//! Build-time settings. meson sets these through the environment of `cargo build`;
//! plain `cargo build` / `cargo test` get development defaults.

/// The application id, as in the desktop file, metainfo and gschema.
pub const APP_ID: &str = match option_env!("APP_ID") {
    Some(id) => id,
    None => "io.github.traspaso.Traspaso",
};

/// The gettext domain.
pub const GETTEXT_PACKAGE: &str = "traspaso";

/// The program version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where compiled translations live. meson passes the installed location; a
/// development build uses the catalogs that `build.rs` compiled from `po/`.
pub const LOCALEDIR: &str = match option_env!("LOCALEDIR") {
    Some(dir) => dir,
    None => concat!(env!("OUT_DIR"), "/locale"),
};
