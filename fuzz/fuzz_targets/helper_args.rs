//! The helper's argument decoding: a method call's body (signature "s", as
//! zbus decodes it for AssignToGuest, ReturnToHost, ReadRom and
//! GetDeviceState) in either byte order, then the address check. Anything is
//! decoded or refused; a refused address is InvalidArgs, never a path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traspaso::dbus::{parse_address, HelperError};
use zvariant::serialized::{Context, Data};
use zvariant::{BE, LE};

fuzz_target!(|data: &[u8]| {
    let Some((&order, body)) = data.split_first() else {
        return;
    };
    let context = if order & 1 == 0 {
        Context::new_dbus(LE, 0)
    } else {
        Context::new_dbus(BE, 0)
    };
    let decoded: Result<(String,), _> = Data::new(body, context).deserialize().map(|(v, _)| v);
    let Ok((address,)) = decoded else {
        return;
    };
    match parse_address(&address) {
        Ok(a) => assert!(!a.to_string().contains('/')),
        Err(HelperError::InvalidArgs(_)) => {}
        Err(other) => panic!("a bad address gave {other:?}"),
    }
});
