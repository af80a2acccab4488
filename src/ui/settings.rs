//! GSettings, or in-memory defaults when the schema is not installed (plain
//! `cargo run`): the app must work, it just forgets on exit.

use std::cell::RefCell;
use std::collections::HashMap;

use relm4::gtk::gio;
use relm4::gtk::prelude::*;

use crate::config::APP_ID;

/// The app's settings.
pub struct Settings {
    backend: Option<gio::Settings>,
    memory: RefCell<HashMap<&'static str, Value>>,
}

#[derive(Clone)]
enum Value {
    Int(i32),
    Bool(bool),
    Str(String),
    List(Vec<String>),
}

impl Settings {
    /// The installed schema, or defaults in memory when it is missing.
    pub fn new() -> Self {
        let backend = gio::SettingsSchemaSource::default()
            .and_then(|source| source.lookup(APP_ID, true))
            .map(|_| gio::Settings::new(APP_ID));
        if backend.is_none() {
            note_missing_schema();
        }
        Settings {
            backend,
            memory: RefCell::new(HashMap::new()),
        }
    }

    /// Whether values survive a restart.
    pub fn is_persistent(&self) -> bool {
        self.backend.is_some()
    }

    pub fn int(&self, key: &'static str, default: i32) -> i32 {
        match (&self.backend, self.memory.borrow().get(key)) {
            (Some(s), _) => s.int(key),
            (None, Some(Value::Int(v))) => *v,
            _ => default,
        }
    }

    pub fn boolean(&self, key: &'static str, default: bool) -> bool {
        match (&self.backend, self.memory.borrow().get(key)) {
            (Some(s), _) => s.boolean(key),
            (None, Some(Value::Bool(v))) => *v,
            _ => default,
        }
    }

    pub fn string(&self, key: &'static str, default: &str) -> String {
        match (&self.backend, self.memory.borrow().get(key)) {
            (Some(s), _) => s.string(key).into(),
            (None, Some(Value::Str(v))) => v.clone(),
            _ => default.to_owned(),
        }
    }

    pub fn strings(&self, key: &'static str, default: &[&str]) -> Vec<String> {
        match (&self.backend, self.memory.borrow().get(key)) {
            (Some(s), _) => s.strv(key).iter().map(|v| v.to_string()).collect(),
            (None, Some(Value::List(v))) => v.clone(),
            _ => default.iter().map(|v| v.to_string()).collect(),
        }
    }

    pub fn set_strings(&self, key: &'static str, value: &[String]) {
        match &self.backend {
            Some(s) => {
                let refs: Vec<&str> = value.iter().map(String::as_str).collect();
                let _ = s.set_strv(key, refs.as_slice());
            }
            None => {
                self.memory
                    .borrow_mut()
                    .insert(key, Value::List(value.to_vec()));
            }
        }
    }

    pub fn set_int(&self, key: &'static str, value: i32) {
        match &self.backend {
            Some(s) => {
                let _ = s.set_int(key, value);
            }
            None => {
                self.memory.borrow_mut().insert(key, Value::Int(value));
            }
        }
    }

    pub fn set_boolean(&self, key: &'static str, value: bool) {
        match &self.backend {
            Some(s) => {
                let _ = s.set_boolean(key, value);
            }
            None => {
                self.memory.borrow_mut().insert(key, Value::Bool(value));
            }
        }
    }

    pub fn set_string(&self, key: &'static str, value: &str) {
        match &self.backend {
            Some(s) => {
                let _ = s.set_string(key, value);
            }
            None => {
                self.memory
                    .borrow_mut()
                    .insert(key, Value::Str(value.to_owned()));
            }
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::new()
    }
}

fn note_missing_schema() {
    if std::env::var_os("TRASPASO_QUIET").is_none() {
        eprintln!(
            "{}",
            crate::i18n::gettext("Settings schema not installed: settings will not be saved.")
        );
    }
}
