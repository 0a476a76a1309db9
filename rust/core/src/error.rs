//! One error type for the whole core.
//!
//! The split matters at the Python boundary: [`Error::Io`] is *our* side failing (a full disk, a
//! missing source file) and keeps errno and path so it can become the matching `OSError`;
//! every other variant is about the *input* (a damaged or hostile layer) and becomes
//! `dockyard.errors.LayerError` naming the member at fault (quoted and escaped, so a
//! garbage name cannot break the one-line message).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed on a file we own (source, destination, tee). Keeps errno and path.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A member tried to create, change or remove something outside the layer root.
    #[error("layer member {member:?}: {reason}")]
    Hostile { member: String, reason: String },
    /// Damaged input: a bad checksum, a truncated stream, bad compressed data. `member` is the
    /// member being read when the damage was found, if any.
    #[error("{}", Member(member.as_deref(), reason))]
    Corrupt { member: Option<String>, reason: String },
    /// Valid tar that dockyard does not handle (GNU sparse files, multi-volume archives...).
    #[error("layer member {member:?}: unsupported: {reason}")]
    Unsupported { member: String, reason: String },
    /// The caller passed something meaningless (an unknown compression name, a bad change kind).
    #[error("{0}")]
    InvalidArgument(String),
}

struct Member<'a>(Option<&'a str>, &'a String);

impl fmt::Display for Member<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(m) => write!(f, "layer member {m:?}: {}", self.1),
            None => write!(f, "layer: {}", self.1),
        }
    }
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }

    pub fn hostile(member: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Hostile { member: member.into(), reason: reason.into() }
    }

    pub fn corrupt(member: Option<&str>, reason: impl Into<String>) -> Self {
        Error::Corrupt { member: member.map(str::to_owned), reason: reason.into() }
    }

    pub fn unsupported(member: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unsupported { member: member.into(), reason: reason.into() }
    }

    /// The member this error is about, for `LayerError.member`.
    pub fn member(&self) -> Option<&str> {
        match self {
            Error::Hostile { member, .. } | Error::Unsupported { member, .. } => Some(member),
            Error::Corrupt { member, .. } => member.as_deref(),
            _ => None,
        }
    }

    /// True for errors about the layer's content (as opposed to our own I/O or arguments).
    pub fn is_layer_error(&self) -> bool {
        matches!(self, Error::Hostile { .. } | Error::Corrupt { .. } | Error::Unsupported { .. })
    }

    /// Attach `member` to a `Corrupt` error found while reading it, if it has none yet.
    pub(crate) fn in_member(self, name: &str) -> Self {
        match self {
            Error::Corrupt { member: None, reason } => {
                Error::Corrupt { member: Some(name.to_owned()), reason }
            }
            e => e,
        }
    }
}

/// An [`Error`] smuggled through an `io::Error`, so that failures of *our* reads and writes
/// (the source file, the tee) survive the trip through a decompressor's `Read` impl and are not
/// mistaken for damaged compressed data.
#[derive(Debug)]
pub(crate) struct Tagged(pub Error);

impl fmt::Display for Tagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Tagged {}

pub(crate) fn tag(e: Error) -> io::Error {
    io::Error::other(Tagged(e))
}

/// Turn an `io::Error` that came out of the decompressing stream into an [`Error`]: our own
/// tagged failures come back as they were, an early EOF is a truncated layer, anything else is
/// damaged compressed data (`what` names the codec).
pub(crate) fn from_stream(e: io::Error, what: &str) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Tagged>()) {
        let inner = e.into_inner().expect("checked above");
        return inner.downcast::<Tagged>().expect("checked above").0;
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return Error::corrupt(None, "truncated stream (unexpected end of data)");
    }
    Error::corrupt(None, format!("bad {what} data: {e}"))
}

/// Lossy, printable form of a member name for messages.
pub(crate) fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}
