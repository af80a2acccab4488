//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use traspaso::fixture::HostSpec;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Write the named description from tests/fixtures/hosts (or the app's
/// sample machines in data/samples) into a new temporary root.
pub fn host(name: &str) -> tempfile::TempDir {
    let file = format!("{name}.host");
    let fixture = fixtures().join("hosts").join(&file);
    let path = if fixture.exists() {
        fixture
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/samples")
            .join(&file)
    };
    let text = std::fs::read_to_string(path).expect("fixture description");
    let spec = HostSpec::parse(&text).expect("valid description");
    write(&spec)
}

pub fn write(spec: &HostSpec) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    spec.write(dir.path()).expect("write fixture tree");
    dir
}

/// The system's pci.ids, so names in tests match what users see.
pub fn pci_ids() -> Option<PathBuf> {
    ["/usr/share/hwdata/pci.ids", "/usr/share/misc/pci.ids"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Run traspasoctl in English with these arguments.
pub fn ctl(args: &[&str]) -> Output {
    ctl_lang(args, None)
}

pub fn ctl_lang(args: &[&str], language: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_traspasoctl"));
    cmd.args(args)
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES");
    match language {
        Some(l) => cmd.env("LANGUAGE", l),
        None => cmd.env("LANGUAGE", "en"),
    };
    cmd.output().expect("run traspasoctl")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `topology --json` of a root, parsed.
pub fn topology_json(root: &Path) -> serde_json::Value {
    let out = ctl(&["--root", root.to_str().unwrap(), "topology", "--json"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

/// The findings with this code.
pub fn findings<'a>(t: &'a serde_json::Value, code: &str) -> Vec<&'a serde_json::Value> {
    t["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .collect()
}

pub fn device<'a>(t: &'a serde_json::Value, address: &str) -> &'a serde_json::Value {
    t["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["address"] == address)
        .unwrap_or_else(|| panic!("no device {address}"))
}

/// The group id holding `address`.
pub fn group_of(t: &serde_json::Value, address: &str) -> Option<u64> {
    device(t, address)["iommu_group"].as_u64()
}

pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}
