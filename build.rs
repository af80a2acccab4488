//! Compiles po/*.po into `$OUT_DIR/locale` so a development build finds its
//! translations without being installed. meson installs its own copies.
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=po");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let linguas = std::fs::read_to_string("po/LINGUAS").unwrap_or_default();
    for lang in linguas.split_whitespace().filter(|l| !l.starts_with('#')) {
        let dir = Path::new(&out)
            .join("locale")
            .join(lang)
            .join("LC_MESSAGES");
        if std::fs::create_dir_all(&dir).is_err() {
            continue;
        }
        let status = Command::new("msgfmt")
            .arg("-o")
            .arg(dir.join("traspaso.mo"))
            .arg(format!("po/{lang}.po"))
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            println!("cargo:warning=msgfmt could not compile po/{lang}.po; the {lang} translation is missing from this build");
        }
    }
}
