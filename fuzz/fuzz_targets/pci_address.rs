//! The strict PCI address parser (CLI arguments, D-Bus arguments, sysfs
//! names): anything parses or is refused; what parses prints back to a form
//! that parses to the same address and can never be a path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traspaso::pci::PciAddress;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(address) = text.parse::<PciAddress>() {
        let printed = address.to_string();
        // Domains above 0xffff exist (Intel VMD): four or more hex digits.
        assert!(printed.len() >= 12, "{printed}");
        assert!(
            !printed.contains('/') && !printed.contains(".."),
            "{printed}"
        );
        assert_eq!(printed.parse::<PciAddress>().ok(), Some(address));
    }
});
