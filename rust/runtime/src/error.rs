//! One error type for the runtime. Every failure that came from the kernel keeps its errno and,
//! where there is one, the path it was about, so "mount /proc: EPERM" is never reduced to "failed".
//! A cleanup failure that happens while handling an error is kept beside the original one.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq)]
pub struct Error {
    /// What we were doing ("mount proc", "write cgroup file", ...).
    pub context: String,
    /// The file or mount point concerned, if any.
    pub path: Option<PathBuf>,
    /// The errno the kernel gave, if the failure came from a syscall.
    pub errno: Option<i32>,
    /// A second failure while cleaning up after this one.
    pub cleanup: Option<Box<Error>>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn msg(context: impl Into<String>) -> Self {
        Error { context: context.into(), path: None, errno: None, cleanup: None }
    }

    pub fn sys(context: impl Into<String>, path: Option<&Path>, errno: i32) -> Self {
        Error { context: context.into(), path: path.map(Path::to_path_buf), errno: Some(errno), cleanup: None }
    }

    /// The current `errno` (call right after a failing libc call).
    pub fn last(context: impl Into<String>, path: Option<&Path>) -> Self {
        Self::sys(context, path, errno())
    }

    pub fn io(context: impl Into<String>, path: Option<&Path>, e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(n) => Self::sys(context, path, n),
            None => Error { context: format!("{}: {e}", context.into()), path: path.map(Path::to_path_buf), errno: None, cleanup: None },
        }
    }

    pub fn with_path(mut self, p: &Path) -> Self {
        self.path = Some(p.to_path_buf());
        self
    }

    pub fn with_cleanup(mut self, cleanup: Error) -> Self {
        self.cleanup = Some(Box::new(cleanup));
        self
    }

    /// Prefix the context ("create container x: " + ...).
    pub fn wrap(mut self, outer: impl fmt::Display) -> Self {
        self.context = format!("{outer}: {}", self.context);
        self
    }

    pub fn errno_is(&self, n: i32) -> bool {
        self.errno == Some(n)
    }
}

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Symbolic name of an errno, for messages a person can grep for.
pub fn errno_name(n: i32) -> &'static str {
    match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EPIPE => "EPIPE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => "",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)?;
        if let Some(p) = &self.path {
            write!(f, " {}", p.display())?;
        }
        if let Some(n) = self.errno {
            let text = std::io::Error::from_raw_os_error(n);
            // io::Error's Display appends " (os error N)"; keep the text and name the errno.
            let s = text.to_string();
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            let name = errno_name(n);
            if name.is_empty() {
                write!(f, ": {s} (errno {n})")?;
            } else {
                write!(f, ": {s} ({name})")?;
            }
        }
        if let Some(c) = &self.cleanup {
            write!(f, " (and while cleaning up: {c})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// `.ctx("read config", path)` on io results.
pub trait IoContext<T> {
    fn ctx(self, context: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(context, Some(path), e))
    }
}

/// Turn a libc return value (-1 = failure) into a Result.
pub fn check(ret: libc::c_int, context: &str, path: Option<&Path>) -> Result<libc::c_int> {
    if ret < 0 {
        Err(Error::last(context, path))
    } else {
        Ok(ret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_keeps_errno_and_path() {
        let e = Error::sys("mount proc", Some(Path::new("/x/proc")), libc::EPERM);
        let s = e.to_string();
        assert!(s.starts_with("mount proc /x/proc: "), "{s}");
        assert!(s.ends_with("(EPERM)"), "{s}");
        let e = e.with_cleanup(Error::sys("rmdir", Some(Path::new("/c")), libc::EBUSY));
        assert!(e.to_string().contains("while cleaning up: rmdir /c"));
    }
}
