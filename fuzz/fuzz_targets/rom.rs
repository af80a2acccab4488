//! The option-ROM parser: any bytes give a ROM or an error, never a panic,
//! and what it reports lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rom) = traspaso::rom::parse(data) {
        for image in &rom.images {
            assert!(image.offset < data.len(), "an image past the end");
        }
        let _ = (rom.has_legacy(), rom.has_uefi());
        let _ = rom.images.iter().map(|i| i.is_uefi_for_x64()).count();
    }
});
