//! Domain XML as libvirt (local or a remote host) returns it, and the
//! nodedev XML of a remote host's devices: any text reads or is refused.
//! A domain that reads writes back to XML that reads to the same domain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traspaso::vm::Domain;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(domain) = Domain::from_xml(text) {
        let _ = domain.pci_hostdevs();
        if let Ok(xml) = domain.to_xml() {
            let again = Domain::from_xml(&xml).expect("our own XML reads back");
            assert_eq!(again, domain);
        }
    }
    if let Ok(topology) = traspaso::nodedev::topology(&[text.to_owned()], "test:///fuzz") {
        for group in &topology.groups {
            assert!(!group.devices.is_empty());
        }
    }
});
