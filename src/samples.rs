//! Sample machines built into the app, so a user without an IOMMU (or without
//! a second GPU) can see what a good and a bad topology look like. Each is a
//! host description (see [`crate::fixture`]) written into a private temporary
//! root and read through the same scan as a real machine.

use std::path::Path;

use crate::fixture::{HostSpec, SpecError};
use crate::host::{HostError, HostRoot};
use crate::i18n::gettext;

/// One built-in sample machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Stable id, used on the command line (`traspaso --demo ID`).
    pub id: &'static str,
    spec: &'static str,
}

/// Every sample, in the order the menu shows them.
pub const SAMPLES: [Sample; 3] = [
    Sample {
        id: "ivy-bridge-desktop",
        spec: include_str!("../data/samples/ivy-bridge-desktop.host"),
    },
    Sample {
        id: "amd-chipset-shared",
        spec: include_str!("../data/samples/amd-chipset-shared.host"),
    },
    Sample {
        id: "hybrid-laptop",
        spec: include_str!("../data/samples/hybrid-laptop.host"),
    },
];

impl Sample {
    /// The sample with this id.
    pub fn find(id: &str) -> Option<Sample> {
        SAMPLES.iter().copied().find(|s| s.id == id)
    }

    /// A short title for menus and the window subtitle (translated).
    pub fn title(&self) -> String {
        match self.id {
            "ivy-bridge-desktop" => gettext("Desktop with a GeForce GTX 950"),
            "amd-chipset-shared" => gettext("AMD desktop with a shared chipset group"),
            _ => gettext("Laptop with integrated and discrete graphics"),
        }
    }

    /// One sentence on what the sample shows (translated).
    pub fn description(&self) -> String {
        match self.id {
            "ivy-bridge-desktop" => gettext("Core i7-3770 on an ASUS P8Z68-V: the GTX 950 and its HDMI audio can go to a VM while Intel HD Graphics 4000 stays with the host; two DeckLink capture cards share a group."),
            "amd-chipset-shared" => gettext("A Ryzen on a B450 board: the GPU in the CPU's slot is isolated, but a second GPU in a chipset slot shares a group with the chipset's devices."),
            _ => gettext("Intel graphics drive the panel; the NVIDIA 3D controller has no option ROM of its own."),
        }
    }

    /// Write the sample into a new temporary directory and open it as a host.
    /// The directory goes away when the returned value is dropped.
    pub fn open(&self) -> Result<SampleHost, SampleError> {
        let spec = HostSpec::parse(self.spec).map_err(SampleError::Spec)?;
        let dir = tempfile::Builder::new()
            .prefix("traspaso-sample-")
            .tempdir()
            .map_err(|e| SampleError::Io(e.to_string()))?;
        spec.write(dir.path())
            .map_err(|e| SampleError::Io(e.to_string()))?;
        let host = HostRoot::open(dir.path()).map_err(SampleError::Host)?;
        Ok(SampleHost { host, _dir: dir })
    }
}

/// A sample written to disk: the host and the directory that backs it.
#[derive(Debug)]
pub struct SampleHost {
    pub host: HostRoot,
    _dir: tempfile::TempDir,
}

impl SampleHost {
    /// The temporary root.
    pub fn root(&self) -> &Path {
        self.host.root()
    }
}

/// Why a sample could not be opened.
#[derive(Debug)]
pub enum SampleError {
    Spec(SpecError),
    Io(String),
    Host(HostError),
}

impl std::fmt::Display for SampleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SampleError::Spec(e) => write!(f, "{e}"),
            SampleError::Io(e) => write!(
                f,
                "{}",
                crate::i18n::gettext_f(
                    "Could not write the sample machine to a temporary folder: {error}",
                    &[("error", e)]
                )
            ),
            SampleError::Host(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SampleError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{ScanOptions, Topology};

    #[test]
    fn every_sample_parses_and_scans() {
        for sample in SAMPLES {
            let opened = sample.open().expect(sample.id);
            let topology = Topology::load(&opened.host, None, ScanOptions::default()).unwrap();
            assert!(topology.iommu_enabled, "{}", sample.id);
            assert!(
                topology
                    .devices
                    .iter()
                    .filter(|d| d.class.is_display())
                    .count()
                    >= 2,
                "{} should have two GPUs",
                sample.id
            );
            assert_eq!(Sample::find(sample.id), Some(sample));
        }
        assert_eq!(Sample::find("nope"), None);
    }

    #[test]
    fn the_temporary_root_goes_away() {
        let opened = SAMPLES[0].open().unwrap();
        let root = opened.root().to_path_buf();
        assert!(root.join("sys/bus/pci/devices").is_dir());
        drop(opened);
        assert!(!root.exists());
    }
}
