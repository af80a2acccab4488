//! Reading the host. Every host path (`/sys`, `/proc`, `/etc` …) is resolved
//! under a [`HostRoot`]: `/` for the running system, or a captured tree for
//! replays and tests. Nothing else in the code opens host paths.
//!
//! Under a root other than `/`, paths are resolved with `openat2(RESOLVE_IN_ROOT)`,
//! so an absolute or `..`-laden symlink in a captured tree stays inside it.

use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::i18n::gettext_f;

/// Largest attribute or text file the tool reads (sysfs attributes are a page).
pub const TEXT_LIMIT: u64 = 4 << 20;

/// What went wrong with one host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostProblem {
    NotFound,
    PermissionDenied,
    /// Too many levels of symbolic links (a loop).
    SymlinkLoop,
    NotADirectory,
    IsADirectory,
    /// A pipe, socket or device node where a file was expected (captured
    /// roots only open regular files).
    NotAFile,
    /// The file is larger than the tool accepts for it.
    TooLarge(u64),
    /// The content is not what this kind of file holds.
    BadContent(String),
    /// Reading it failed on the host a capture was made from (the reason then).
    FailedWhenCaptured(String),
    Io(i32),
}

/// An error reading or writing a host path, with the path as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    pub path: PathBuf,
    pub problem: HostProblem,
}

impl std::error::Error for HostError {}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display().to_string();
        let text = match &self.problem {
            HostProblem::NotFound => gettext_f("{path} does not exist", &[("path", &path)]),
            HostProblem::PermissionDenied => gettext_f(
                "Permission denied for {path} (some host files need root)",
                &[("path", &path)],
            ),
            HostProblem::SymlinkLoop => {
                gettext_f("{path} is part of a symbolic link loop", &[("path", &path)])
            }
            HostProblem::NotADirectory => {
                gettext_f("{path} is not a directory", &[("path", &path)])
            }
            HostProblem::IsADirectory => {
                gettext_f("{path} is a directory, not a file", &[("path", &path)])
            }
            HostProblem::NotAFile => gettext_f(
                "{path} is a pipe, socket or device, not a file: a capture holds only files",
                &[("path", &path)],
            ),
            HostProblem::TooLarge(limit) => gettext_f(
                "{path} is larger than the {limit} bytes this file may have",
                &[("path", &path), ("limit", &limit.to_string())],
            ),
            HostProblem::BadContent(what) => gettext_f(
                "{path} holds unexpected content: {what}",
                &[("path", &path), ("what", what)],
            ),
            HostProblem::FailedWhenCaptured(reason) => gettext_f(
                "{path} could not be read on the captured host: {reason}",
                &[("path", &path), ("reason", reason)],
            ),
            HostProblem::Io(errno) => gettext_f(
                "Cannot access {path}: {reason}",
                &[
                    ("path", &path),
                    (
                        "reason",
                        &std::io::Error::from_raw_os_error(*errno).to_string(),
                    ),
                ],
            ),
        };
        f.write_str(&text)
    }
}

impl HostError {
    pub(crate) fn from_errno(path: PathBuf, errno: Errno) -> Self {
        let problem = match errno {
            Errno::NOENT => HostProblem::NotFound,
            Errno::ACCESS | Errno::PERM => HostProblem::PermissionDenied,
            Errno::LOOP => HostProblem::SymlinkLoop,
            Errno::NOTDIR => HostProblem::NotADirectory,
            Errno::ISDIR => HostProblem::IsADirectory,
            Errno::NXIO => HostProblem::NotAFile,
            other => HostProblem::Io(other.raw_os_error()),
        };
        HostError { path, problem }
    }

    pub(crate) fn from_io(path: PathBuf, err: &std::io::Error) -> Self {
        match err.raw_os_error() {
            Some(code) => Self::from_errno(path, Errno::from_raw_os_error(code)),
            None => HostError {
                path,
                problem: HostProblem::Io(libc::EIO),
            },
        }
    }

    /// A file that exists but holds something this tool cannot understand.
    pub fn bad_content(path: PathBuf, what: impl Into<String>) -> Self {
        HostError {
            path,
            problem: HostProblem::BadContent(what.into()),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.problem == HostProblem::NotFound
    }
}

/// The root under which host paths are resolved.
#[derive(Debug)]
pub struct HostRoot {
    root: PathBuf,
    /// `None` for the live system (`/`).
    dir: Option<OwnedFd>,
}

impl HostRoot {
    /// The running system.
    pub fn live() -> Self {
        HostRoot {
            root: PathBuf::from("/"),
            dir: None,
        }
    }

    /// A host root at `root`; `/` is the live system.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, HostError> {
        let root = root.as_ref();
        let canonical =
            std::fs::canonicalize(root).map_err(|e| HostError::from_io(root.to_owned(), &e))?;
        if canonical == Path::new("/") {
            return Ok(Self::live());
        }
        let dir = rustix::fs::open(
            &canonical,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| HostError::from_errno(root.to_owned(), e))?;
        Ok(HostRoot {
            root: canonical,
            dir: Some(dir),
        })
    }

    /// Whether this is the running system rather than a captured tree.
    pub fn is_live(&self) -> bool {
        self.dir.is_none()
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path as the user sees it (prefixed with the root for replays).
    pub fn display(&self, path: &Path) -> PathBuf {
        match &self.dir {
            None => path.to_owned(),
            Some(_) => self.root.join(path.strip_prefix("/").unwrap_or(path)),
        }
    }

    fn open_at(&self, path: &Path, flags: OFlags) -> Result<OwnedFd, HostError> {
        let flags = flags | OFlags::CLOEXEC;
        let result = match &self.dir {
            None => rustix::fs::open(path, flags, Mode::empty()),
            Some(dir) => {
                let relative = path.strip_prefix("/").unwrap_or(path);
                let relative = if relative.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    relative
                };
                open_confined(dir, relative, flags)
            }
        };
        result.map_err(|e| HostError::from_errno(self.display(path), e))
    }

    /// Read a file, refusing files larger than `limit` bytes.
    pub fn read_bytes(&self, path: impl AsRef<Path>, limit: u64) -> Result<Vec<u8>, HostError> {
        let path = path.as_ref();
        let fd = self.open_at(path, OFlags::RDONLY)?;
        let mut file = std::fs::File::from(fd);
        let mut data = Vec::new();
        // Read one byte past the limit to tell "exactly at the limit" from "too large".
        (&mut file)
            .take(limit + 1)
            .read_to_end(&mut data)
            .map_err(|e| HostError::from_io(self.display(path), &e))?;
        if data.len() as u64 > limit {
            return Err(HostError {
                path: self.display(path),
                problem: HostProblem::TooLarge(limit),
            });
        }
        Ok(data)
    }

    /// Read a text file.
    pub fn read_string(&self, path: impl AsRef<Path>) -> Result<String, HostError> {
        let path = path.as_ref();
        let data = self.read_bytes(path, TEXT_LIMIT)?;
        String::from_utf8(data).map_err(|_| {
            HostError::bad_content(
                self.display(path),
                crate::i18n::gettext("text that is not UTF-8"),
            )
        })
    }

    /// Read a one-line attribute, trimmed; `None` when it does not exist.
    pub fn read_attr(&self, path: impl AsRef<Path>) -> Result<Option<String>, HostError> {
        match self.read_string(path) {
            Ok(s) => Ok(Some(s.trim().to_owned())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The target of a symbolic link, as stored.
    pub fn read_link(&self, path: impl AsRef<Path>) -> Result<PathBuf, HostError> {
        let path = path.as_ref();
        let (parent, name) = split(path);
        let dir = self.open_at(parent, OFlags::PATH | OFlags::DIRECTORY)?;
        let target = rustix::fs::readlinkat(&dir, name, Vec::new())
            .map_err(|e| HostError::from_errno(self.display(path), e))?;
        Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
    }

    /// The entry names of a directory, sorted; `.` and `..` left out.
    pub fn read_dir(&self, path: impl AsRef<Path>) -> Result<Vec<String>, HostError> {
        let path = path.as_ref();
        let fd = self.open_at(path, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let mut dir = rustix::fs::Dir::read_from(&fd)
            .map_err(|e| HostError::from_errno(self.display(path), e))?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| HostError::from_errno(self.display(path), e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push(String::from_utf8_lossy(name).into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Like [`read_dir`](Self::read_dir), but a missing directory is empty.
    pub fn read_dir_or_empty(&self, path: impl AsRef<Path>) -> Result<Vec<String>, HostError> {
        match self.read_dir(path) {
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            other => other,
        }
    }

    /// Whether a path exists (following links inside the root).
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        self.open_at(path.as_ref(), OFlags::PATH).is_ok()
    }

    /// Write to an existing file (a sysfs attribute): one `write` call, as the kernel expects.
    pub fn write(&self, path: impl AsRef<Path>, data: &[u8]) -> Result<(), HostError> {
        let path = path.as_ref();
        let fd = self.open_at(path, OFlags::WRONLY)?;
        let written = rustix::io::write(&fd, data)
            .map_err(|e| HostError::from_errno(self.display(path), e))?;
        if written != data.len() {
            return Err(HostError::from_errno(self.display(path), Errno::IO));
        }
        Ok(())
    }
}

impl HostRoot {
    /// Replace a state file of ours (the move journal) atomically: write a
    /// temporary file next to it, flush it to disk, rename it over the old one.
    /// Parent directories are created (mode 0700).
    pub fn write_state(&self, path: &Path, data: &[u8]) -> Result<(), HostError> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let real = self.display(path);
        let parent = real.parent().unwrap_or(Path::new("/"));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| HostError::from_io(parent.to_owned(), &e))?;
        let tmp = real.with_extension("tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| HostError::from_io(tmp.clone(), &e))?;
        file.write_all(data)
            .and_then(|()| file.sync_all())
            .map_err(|e| HostError::from_io(tmp.clone(), &e))?;
        std::fs::rename(&tmp, &real).map_err(|e| HostError::from_io(real.clone(), &e))?;
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Remove a state file of ours; a missing one is fine.
    pub fn remove_state(&self, path: &Path) -> Result<(), HostError> {
        let real = self.display(path);
        match std::fs::remove_file(&real) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(HostError::from_io(real, &e)),
        }
    }
}

/// An open directory of the host, for reading many entries of one directory
/// (a device's attributes) with one path resolution. Entries are opened
/// relative to it, confined to it in a captured root.
#[derive(Debug)]
pub struct HostDir<'a> {
    host: &'a HostRoot,
    fd: OwnedFd,
    path: PathBuf,
}

impl HostRoot {
    /// Open a directory for [`HostDir`] reads.
    pub fn open_dir(&self, path: impl AsRef<Path>) -> Result<HostDir<'_>, HostError> {
        let path = path.as_ref();
        let fd = self.open_at(path, OFlags::RDONLY | OFlags::DIRECTORY)?;
        Ok(HostDir {
            host: self,
            fd,
            path: path.to_owned(),
        })
    }
}

impl HostDir<'_> {
    fn error(&self, name: &str, errno: Errno) -> HostError {
        HostError::from_errno(self.host.display(&self.path.join(name)), errno)
    }

    fn open_entry(&self, name: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
        let flags = flags | OFlags::CLOEXEC;
        if self.host.is_live() {
            rustix::fs::openat(&self.fd, name, flags, Mode::empty())
        } else {
            open_confined(&self.fd, Path::new(name), flags)
        }
    }

    /// Read a small file with a single `read` call, as sysfs attributes are
    /// read (the kernel hands out a whole attribute at once); `None` when it
    /// does not exist. `limit` is at most a page.
    pub fn read_small(&self, name: &str, limit: usize) -> Result<Option<Vec<u8>>, HostError> {
        let fd = match self.open_entry(name, OFlags::RDONLY) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.error(name, e)),
        };
        let mut data = vec![0u8; limit + 1];
        let n = rustix::io::read(&fd, &mut data).map_err(|e| self.error(name, e))?;
        if n > limit {
            return Err(HostError {
                path: self.host.display(&self.path.join(name)),
                problem: HostProblem::TooLarge(limit as u64),
            });
        }
        data.truncate(n);
        Ok(Some(data))
    }

    /// The first `len` bytes of a file (fewer if it is shorter), in one `read`;
    /// `None` when it does not exist. For PCI config space, where every byte
    /// read is a bus access: read only what is needed.
    pub fn read_prefix(&self, name: &str, len: usize) -> Result<Option<Vec<u8>>, HostError> {
        let fd = match self.open_entry(name, OFlags::RDONLY) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.error(name, e)),
        };
        let mut data = vec![0u8; len];
        let n = rustix::io::read(&fd, &mut data).map_err(|e| self.error(name, e))?;
        data.truncate(n);
        Ok(Some(data))
    }

    /// A one-line attribute, trimmed; `None` when it does not exist.
    pub fn read_attr(&self, name: &str) -> Result<Option<String>, HostError> {
        match self.read_small(name, 4096)? {
            None => Ok(None),
            Some(data) => String::from_utf8(data)
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|_| {
                    HostError::bad_content(
                        self.host.display(&self.path.join(name)),
                        crate::i18n::gettext("text that is not UTF-8"),
                    )
                }),
        }
    }

    /// The last component of a link's target; `None` when there is no such link.
    pub fn link_name(&self, name: &str) -> Result<Option<String>, HostError> {
        match rustix::fs::readlinkat(&self.fd, name, Vec::new()) {
            Ok(target) => Ok(Path::new(OsStr::from_bytes(target.as_bytes()))
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.error(name, e)),
        }
    }

    /// The target of a link in this directory, as stored; `None` when absent.
    pub fn read_link(&self, name: &str) -> Result<Option<PathBuf>, HostError> {
        match rustix::fs::readlinkat(&self.fd, name, Vec::new()) {
            Ok(target) => Ok(Some(PathBuf::from(OsStr::from_bytes(target.as_bytes())))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.error(name, e)),
        }
    }

    /// Whether an entry exists (without following it).
    pub fn has(&self, name: &str) -> bool {
        rustix::fs::statat(&self.fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// An entry's path as the user sees it, for messages.
    pub fn display(&self, name: &str) -> PathBuf {
        self.host.display(&self.path.join(name))
    }
}

/// Open `path` below `dir` in a captured root: resolved inside it (links
/// that climb out stay in), and only a directory or a regular file. The
/// entry is first opened as a bare path and checked, then opened for real
/// through that handle: a pipe would block the reader forever, and a device
/// node would be opened by whoever runs the tool, often root. Either is
/// `ENXIO` ([`HostProblem::NotAFile`]).
fn open_confined(dir: &OwnedFd, path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    // A bare path handle or a directory opens nothing that could block or
    // act: no check needed.
    if flags.intersects(OFlags::DIRECTORY | OFlags::PATH) {
        return rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve);
    }
    let handle = rustix::fs::openat2(
        dir,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    )?;
    let stat = rustix::fs::fstat(&handle)?;
    match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
        rustix::fs::FileType::RegularFile => {}
        rustix::fs::FileType::Directory => return Err(Errno::ISDIR),
        _ => return Err(Errno::NXIO),
    }
    use std::os::fd::AsRawFd;
    rustix::fs::open(
        format!("/proc/self/fd/{}", handle.as_raw_fd()),
        flags,
        Mode::empty(),
    )
}

fn split(path: &Path) -> (&Path, &OsStr) {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or(OsStr::new("."));
    (parent, name)
}

/// Whether this process runs as root (needed for ROM reads and full config space).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_links_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/hostname"), "inside\n").unwrap();
        symlink("/etc/hostname", dir.path().join("escape")).unwrap();
        symlink("../../../../../etc/hostname", dir.path().join("dots")).unwrap();
        let root = HostRoot::open(dir.path()).unwrap();
        assert_eq!(
            root.read_attr("/escape").unwrap().as_deref(),
            Some("inside")
        );
        assert_eq!(root.read_attr("/dots").unwrap().as_deref(), Some("inside"));
    }

    #[test]
    fn loops_and_missing_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let root = HostRoot::open(dir.path()).unwrap();
        let err = root.read_string("/a").unwrap_err();
        assert_eq!(err.problem, HostProblem::SymlinkLoop);
        assert!(err.to_string().contains("loop"), "{err}");
        assert_eq!(root.read_attr("/missing").unwrap(), None);
    }

    #[test]
    fn large_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![b'x'; 100]).unwrap();
        let root = HostRoot::open(dir.path()).unwrap();
        assert_eq!(root.read_bytes("/big", 100).unwrap().len(), 100);
        let err = root.read_bytes("/big", 99).unwrap_err();
        assert_eq!(err.problem, HostProblem::TooLarge(99));
    }

    #[test]
    fn a_missing_root_is_an_error() {
        let err = HostRoot::open("/nonexistent/traspaso-root").unwrap_err();
        assert!(err.is_not_found());
    }
}
