//! Why a client's path was refused: [`OpenError`], made from what
//! `openat2` and `fstat` said, and how it reads as an `io::Error`.

use std::io;

use rustix::fs::FileType;

/// Why a request path was refused. Each says what the client got wrong.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The request named no file at all.
    #[error("empty path")]
    Empty,
    /// Nothing by that name beneath the root.
    #[error("no such file")]
    NotFound,
    /// The path climbed out of the root (`..`, an absolute or escaping symlink).
    #[error("path escapes the served root")]
    Escapes,
    /// A `/proc` magic link, or a symlink loop.
    #[error("magic link or symlink loop refused")]
    Link,
    /// The server may not read it.
    #[error("permission denied")]
    PermissionDenied,
    /// A directory, FIFO, socket or device.
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    /// A path component is too long, or a component is not a directory.
    #[error("invalid path: {0}")]
    Invalid(io::Error),
    /// Renames kept racing with the lookup of a `..` (the kernel could not
    /// be sure it stayed beneath the root), however often it was retried.
    #[error("the path kept changing while it was resolved; try again")]
    Raced,
    /// Anything else the kernel said.
    #[error("{0}")]
    Io(io::Error),
}

/// What an `openat2` failure means for the client.
pub(super) fn open_error_from_io(e: &std::io::Error) -> OpenError {
    match e.raw_os_error() {
        Some(errno) => open_error(rustix::io::Errno::from_raw_os_error(errno)),
        None => OpenError::Io(std::io::Error::new(e.kind(), e.to_string())),
    }
}

impl From<OpenError> for io::Error {
    /// For protocols that answer any failure the same way (`?`).
    fn from(e: OpenError) -> io::Error {
        let kind = match &e {
            OpenError::NotFound => io::ErrorKind::NotFound,
            OpenError::PermissionDenied | OpenError::Escapes | OpenError::Link => {
                io::ErrorKind::PermissionDenied
            }
            OpenError::Io(inner) | OpenError::Invalid(inner) => inner.kind(),
            OpenError::Raced => io::ErrorKind::WouldBlock,
            OpenError::Empty | OpenError::NotRegular(_) => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

pub(super) fn open_error(e: rustix::io::Errno) -> OpenError {
    use rustix::io::Errno;
    match e {
        Errno::NOENT => OpenError::NotFound,
        Errno::XDEV => OpenError::Escapes,
        Errno::LOOP => OpenError::Link,
        Errno::ACCESS | Errno::PERM => OpenError::PermissionDenied,
        Errno::NOTDIR | Errno::NAMETOOLONG => OpenError::Invalid(e.into()),
        Errno::NXIO | Errno::NODEV => OpenError::NotRegular("device or socket"),
        Errno::AGAIN => OpenError::Raced,
        other => OpenError::Io(other.into()),
    }
}

pub(super) fn file_type_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "directory",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Symlink => "symlink",
        _ => "unknown type",
    }
}
