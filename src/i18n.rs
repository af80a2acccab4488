//! Translations. Every user-visible string goes through gettext.
//!
//! Conventions (bookworm's xgettext has no Rust parser, it reads our sources as C):
//! one call per line, literal msgids only, named placeholders in braces
//! filled by [`gettext_f`], and a `// Translators:` comment where a word is ambiguous.

use crate::config;

pub use gettextrs::{gettext, ngettext};

/// Set up the locale and bind the text domain. Call once, first thing in `main`.
pub fn init() {
    gettextrs::setlocale(gettextrs::LocaleCategory::LcAll, "");
    let dir = std::env::var("TRASPASO_LOCALEDIR").unwrap_or_else(|_| config::LOCALEDIR.to_owned());
    // Without a catalog gettext returns the English msgid: nothing to report.
    let _ = gettextrs::bindtextdomain(config::GETTEXT_PACKAGE, dir);
    let _ = gettextrs::bind_textdomain_codeset(config::GETTEXT_PACKAGE, "UTF-8");
    let _ = gettextrs::textdomain(config::GETTEXT_PACKAGE);
}

/// Translate `msgid` and fill its `{name}` placeholders.
pub fn gettext_f(msgid: &str, args: &[(&str, &str)]) -> String {
    fill(gettext(msgid), args)
}

/// Plural form of [`gettext_f`]; `{n}` is filled with `n` as well.
pub fn ngettext_f(msgid: &str, plural: &str, n: u32, args: &[(&str, &str)]) -> String {
    let count = n.to_string();
    let mut all: Vec<(&str, &str)> = vec![("n", count.as_str())];
    all.extend_from_slice(args);
    fill(ngettext(msgid, plural, n), &all)
}

fn fill(mut text: String, args: &[(&str, &str)]) -> String {
    for (name, value) in args {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_by_name() {
        let s = fill("{a} and {b}, {a}".into(), &[("a", "x"), ("b", "y")]);
        assert_eq!(s, "x and y, x");
    }
}
