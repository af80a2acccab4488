//! The helper's D-Bus interface: the service side (in `traspaso-helper`) and
//! the client side (for `traspasoctl` and the app), from one set of names.
//!
//! Every call that changes or reads the hardware is checked with polkit, the
//! subject being the caller's bus name, and fails closed: no answer from
//! polkit is a denial. No method takes a path; a malformed address is
//! `InvalidArgs`. One move at a time: later callers wait their turn.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use zbus::message::Header;
use zbus::names::ErrorName;
use zbus::zvariant::{OwnedValue, Value};
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

use crate::assign::{Direction, MoveError, Mover};
use crate::host::HostRoot;
use crate::i18n::gettext;
use crate::pci::PciAddress;

/// Bus name and interface.
pub const BUS_NAME: &str = "io.github.traspaso.Helper1";
pub const INTERFACE: &str = "io.github.traspaso.Helper1";
pub const OBJECT_PATH: &str = "/io/github/traspaso/Helper1";

/// polkit actions, one per kind of call (bolt's bouncer: one table).
pub const ACTION_ASSIGN: &str = "io.github.traspaso.assign-device";
pub const ACTION_READ_ROM: &str = "io.github.traspaso.read-rom";
pub const ACTION_CONFIGURE: &str = "io.github.traspaso.configure-host";

/// Error names beyond the standard ones.
pub const ERROR_REFUSED: &str = "io.github.traspaso.Helper1.Error.Refused";
pub const ERROR_BUSY: &str = "io.github.traspaso.Helper1.Error.Busy";
const ERROR_ACCESS_DENIED: &str = "org.freedesktop.DBus.Error.AccessDenied";
const ERROR_INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";
const ERROR_FAILED: &str = "org.freedesktop.DBus.Error.Failed";

/// What a helper method can answer instead of a result.
#[derive(Debug)]
pub enum HelperError {
    AccessDenied(String),
    InvalidArgs(String),
    /// Refused as unsafe (a mounted disk, a bridge…).
    Refused(String),
    Busy(String),
    Failed(String),
}

impl HelperError {
    fn text(&self) -> &str {
        match self {
            HelperError::AccessDenied(t)
            | HelperError::InvalidArgs(t)
            | HelperError::Refused(t)
            | HelperError::Busy(t)
            | HelperError::Failed(t) => t,
        }
    }
}

impl zbus::DBusError for HelperError {
    fn create_reply(&self, msg: &Header<'_>) -> zbus::Result<zbus::Message> {
        zbus::Message::error(msg, self.name())?.build(&(self.text(),))
    }

    fn name(&self) -> ErrorName<'_> {
        ErrorName::from_static_str_unchecked(match self {
            HelperError::AccessDenied(_) => ERROR_ACCESS_DENIED,
            HelperError::InvalidArgs(_) => ERROR_INVALID_ARGS,
            HelperError::Refused(_) => ERROR_REFUSED,
            HelperError::Busy(_) => ERROR_BUSY,
            HelperError::Failed(_) => ERROR_FAILED,
        })
    }

    fn description(&self) -> Option<&str> {
        Some(self.text())
    }
}

impl From<zbus::Error> for HelperError {
    fn from(e: zbus::Error) -> Self {
        HelperError::Failed(e.to_string())
    }
}

impl From<MoveError> for HelperError {
    fn from(e: MoveError) -> Self {
        let text = e.to_string();
        match e {
            MoveError::Refused(_) | MoveError::IommuOff | MoveError::NoGroup(_) => {
                HelperError::Refused(text)
            }
            MoveError::UnknownDevice(_) => HelperError::InvalidArgs(text),
            MoveError::NotRoot => HelperError::AccessDenied(text),
            MoveError::Busy => HelperError::Busy(text),
            MoveError::Host(_)
            | MoveError::Failed { .. }
            | MoveError::BadJournal(_)
            | MoveError::Scan(_)
            | MoveError::Captured => HelperError::Failed(text),
        }
    }
}

/// A method's address argument: strict, no paths (InvalidArgs otherwise).
pub fn parse_address(address: &str) -> Result<PciAddress, HelperError> {
    address
        .parse()
        .map_err(|e: crate::pci::AddressError| HelperError::InvalidArgs(e.to_string()))
}

/// Ask polkit whether the caller of this message may do `action`. Anything
/// but a clear yes is a no.
async fn authorize(
    connection: &zbus::Connection,
    header: &Header<'_>,
    action: &str,
) -> Result<(), HelperError> {
    let denied = |detail: String| {
        HelperError::AccessDenied(format!(
            "{} ({detail})",
            gettext("Not authorised: polkit did not allow this")
        ))
    };
    let authority = AuthorityProxy::new(connection)
        .await
        .map_err(|e| denied(e.to_string()))?;
    let subject = Subject::new_for_message_header(header).map_err(|e| denied(e.to_string()))?;
    let result = authority
        .check_authorization(
            &subject,
            action,
            &HashMap::new(),
            CheckAuthorizationFlags::AllowUserInteraction.into(),
            "",
        )
        .await
        .map_err(|e| denied(e.to_string()))?;
    if result.is_authorized {
        Ok(())
    } else {
        Err(denied(action.to_owned()))
    }
}

/// The service object.
pub struct Helper {
    /// `None`: the live system. Set only by whoever starts the helper (tests).
    root: Option<PathBuf>,
    /// One move at a time; later callers wait here.
    moves: Arc<tokio::sync::Mutex<()>>,
    /// GetDeviceState needs no authorisation: at most two run at once, so
    /// a flood of calls queues instead of keeping every core on scans.
    reads: Arc<tokio::sync::Semaphore>,
}

impl Helper {
    pub fn new(root: Option<PathBuf>) -> Self {
        Helper {
            root,
            moves: Arc::new(tokio::sync::Mutex::new(())),
            reads: Arc::new(tokio::sync::Semaphore::new(2)),
        }
    }

    fn host(root: &Option<PathBuf>) -> Result<HostRoot, HelperError> {
        match root {
            None => Ok(HostRoot::live()),
            Some(dir) => HostRoot::open(dir).map_err(|e| HelperError::Failed(e.to_string())),
        }
    }

    /// A move asked for on the bus: a well-formed address, then polkit,
    /// then the move in its turn.
    async fn authorized_move(
        &self,
        connection: &zbus::Connection,
        header: &Header<'_>,
        address: &str,
        direction: Direction,
    ) -> Result<Vec<String>, HelperError> {
        let address = parse_address(address)?;
        authorize(connection, header, ACTION_ASSIGN).await?;
        self.run_move(address, direction).await
    }

    async fn run_move(
        &self,
        address: PciAddress,
        direction: Direction,
    ) -> Result<Vec<String>, HelperError> {
        let _turn = self.moves.lock().await;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            turn_seam("begin", &address);
            let result = Self::host(&root).and_then(|host| {
                Ok(crate::assign::move_group(&host, &address, direction)?
                    .iter()
                    .map(|a| a.to_string())
                    .collect())
            });
            turn_seam("end", &address);
            result
        })
        .await
        .map_err(|e| HelperError::Failed(e.to_string()))?
    }

    /// Finish a move interrupted by a crash or a power cut (at start-up).
    pub fn recover(&self) -> Result<Option<Vec<String>>, HelperError> {
        let host = Self::host(&self.root)?;
        let mover = Mover::new(&host);
        let _lock = if host.is_live() {
            Some(mover.lock()?)
        } else {
            None
        };
        Ok(mover.recover()?)
    }
}

/// Test seam (fault-injection builds only): write "begin ADDR" / "end ADDR"
/// to `TRASPASO_MOVE_TRACE` around each move, holding the turn for
/// `TRASPASO_HOLD_MOVE_MS` after "begin", so a test can see that moves never
/// overlap.
#[cfg(feature = "fault-injection")]
fn turn_seam(event: &str, address: &PciAddress) {
    use std::io::Write;
    if let Some(path) = std::env::var_os("TRASPASO_MOVE_TRACE") {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{event} {address}");
        }
    }
    let hold = std::env::var("TRASPASO_HOLD_MOVE_MS").ok();
    if let (true, Some(ms)) = (event == "begin", hold.and_then(|v| v.parse().ok())) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

#[cfg(not(feature = "fault-injection"))]
fn turn_seam(_: &str, _: &PciAddress) {}

fn value(v: Value<'_>) -> OwnedValue {
    // Plain values (strings, integers, booleans, string arrays) always convert.
    OwnedValue::try_from(v).unwrap_or_else(|_| OwnedValue::from(false))
}

#[zbus::interface(name = "io.github.traspaso.Helper1")]
impl Helper {
    /// The state of a function and its group. Needs no authorisation.
    async fn get_device_state(
        &self,
        address: &str,
    ) -> Result<HashMap<String, OwnedValue>, HelperError> {
        let address = parse_address(address)?;
        let _turn = self
            .reads
            .acquire()
            .await
            .map_err(|e| HelperError::Failed(e.to_string()))?;
        let root = self.root.clone();
        let state = tokio::task::spawn_blocking(move || {
            let host = Self::host(&root)?;
            // No names database: the state holds addresses and drivers only.
            let topology = crate::topology::scan_group(&host, &address)
                .map_err(|e| HelperError::Failed(e.to_string()))?;
            Ok::<_, HelperError>(Mover::new(&host).status(&topology, &address)?)
        })
        .await
        .map_err(|e| HelperError::Failed(e.to_string()))??;
        let mut out = HashMap::new();
        out.insert("address".into(), value(Value::from(state.address)));
        out.insert(
            "driver".into(),
            value(Value::from(state.driver.unwrap_or_default())),
        );
        out.insert(
            "driver-override".into(),
            value(Value::from(state.driver_override.unwrap_or_default())),
        );
        out.insert(
            "iommu-group".into(),
            value(Value::from(state.iommu_group.map_or(-1, i64::from))),
        );
        out.insert("on-vfio".into(), value(Value::from(state.on_vfio)));
        out.insert("vfio-node".into(), value(Value::from(state.vfio_node)));
        out.insert("assigned".into(), value(Value::from(state.assigned)));
        let members: Vec<String> = state.group.iter().map(|m| m.address.clone()).collect();
        let drivers: Vec<String> = state
            .group
            .iter()
            .map(|m| m.driver.clone().unwrap_or_default())
            .collect();
        out.insert("group".into(), value(Value::from(members)));
        out.insert("group-drivers".into(), value(Value::from(drivers)));
        Ok(out)
    }

    /// Give the function's whole group to vfio-pci. Returns what moved.
    async fn assign_to_guest(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
        address: &str,
    ) -> Result<Vec<String>, HelperError> {
        self.authorized_move(connection, &header, address, Direction::ToGuest)
            .await
    }

    /// Give the function's whole group back to its host drivers.
    async fn return_to_host(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
        address: &str,
    ) -> Result<Vec<String>, HelperError> {
        self.authorized_move(connection, &header, address, Direction::ToHost)
            .await
    }

    /// The function's option ROM, read through sysfs.
    async fn read_rom(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
        address: &str,
    ) -> Result<Vec<u8>, HelperError> {
        let address = parse_address(address)?;
        authorize(connection, &header, ACTION_READ_ROM).await?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let host = Self::host(&root)?;
            Ok(crate::assign::read_rom(&host, &address)?)
        })
        .await
        .map_err(|e| HelperError::Failed(e.to_string()))?
    }
}

/// The client side.
#[zbus::proxy(
    interface = "io.github.traspaso.Helper1",
    default_service = "io.github.traspaso.Helper1",
    default_path = "/io/github/traspaso/Helper1"
)]
pub trait Helper1 {
    fn get_device_state(&self, address: &str) -> zbus::Result<HashMap<String, OwnedValue>>;
    fn assign_to_guest(&self, address: &str) -> zbus::Result<Vec<String>>;
    fn return_to_host(&self, address: &str) -> zbus::Result<Vec<String>>;
    fn read_rom(&self, address: &str) -> zbus::Result<Vec<u8>>;
}

/// How a call to the helper ended, for the CLI's exit codes.
#[derive(Debug)]
pub enum CallError {
    /// The helper is not installed or not running.
    Unavailable(String),
    AccessDenied(String),
    InvalidArgs(String),
    Refused(String),
    Failed(String),
}

impl From<zbus::Error> for CallError {
    fn from(e: zbus::Error) -> Self {
        match &e {
            zbus::Error::MethodError(name, detail, _) => {
                let text = detail.clone().unwrap_or_else(|| name.to_string());
                match name.as_str() {
                    ERROR_ACCESS_DENIED => CallError::AccessDenied(text),
                    ERROR_INVALID_ARGS => CallError::InvalidArgs(text),
                    ERROR_REFUSED => CallError::Refused(text),
                    "org.freedesktop.DBus.Error.ServiceUnknown"
                    | "org.freedesktop.DBus.Error.NameHasNoOwner" => CallError::Unavailable(text),
                    _ => CallError::Failed(text),
                }
            }
            zbus::Error::FDO(fdo) => match fdo.as_ref() {
                zbus::fdo::Error::AccessDenied(t) => CallError::AccessDenied(t.clone()),
                zbus::fdo::Error::InvalidArgs(t) => CallError::InvalidArgs(t.clone()),
                zbus::fdo::Error::ServiceUnknown(t) | zbus::fdo::Error::NameHasNoOwner(t) => {
                    CallError::Unavailable(t.clone())
                }
                other => CallError::Failed(other.to_string()),
            },
            _ => CallError::Unavailable(e.to_string()),
        }
    }
}

/// Call the helper on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` is honoured).
pub fn call_move(address: &str, direction: Direction) -> Result<Vec<String>, CallError> {
    let connection = zbus::blocking::Connection::system()?;
    let proxy = Helper1ProxyBlocking::new(&connection)?;
    Ok(match direction {
        Direction::ToGuest => proxy.assign_to_guest(address)?,
        Direction::ToHost => proxy.return_to_host(address)?,
    })
}

/// Read a function's option ROM through the helper.
pub fn call_read_rom(address: &str) -> Result<Vec<u8>, CallError> {
    let connection = zbus::blocking::Connection::system()?;
    let proxy = Helper1ProxyBlocking::new(&connection)?;
    Ok(proxy.read_rom(address)?)
}
