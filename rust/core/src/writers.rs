//! Writing regular file contents and their metadata.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::sys;
use crate::tar::Reader;

/// Metadata applied to a regular file once its content is written. Order matters: chown
/// clears setuid/setgid and `security.capability`, and writing clears the capability too, so
/// content, then owner, then mode, then xattrs, then times.
pub struct FileMeta {
    pub uid: Option<(u32, u32)>,
    pub mode: u32,
    pub mtime: i64,
    pub nsec: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl FileMeta {
    pub fn apply(&self, fd: &OwnedFd, host: &std::path::Path) -> Result<()> {
        let fd = fd.as_raw_fd();
        let io = |e| Error::io(host, e);
        if let Some((u, g)) = self.uid {
            sys::fchown(fd, u, g).map_err(io)?;
        }
        sys::fchmod(fd, self.mode).map_err(io)?;
        for (k, v) in &self.xattrs {
            let k = sys::cstring(k).ok_or_else(|| Error::corrupt(Some(&host.display().to_string()), "NUL in xattr name"))?;
            crate::extract::ignore_unsupported(sys::fsetxattr(fd, &k, v)).map_err(io)?;
        }
        sys::futimens(fd, self.mtime, self.nsec).map_err(io)
    }
}

pub struct Writers {
    _threads: usize,
}

impl Writers {
    pub fn new(threads: usize) -> Self {
        Self { _threads: threads }
    }

    /// Write `size` bytes of the current member from `reader` into `fd`, then its metadata.
    pub fn file<R: BufRead>(
        &mut self,
        fd: OwnedFd,
        meta: FileMeta,
        host: PathBuf,
        size: u64,
        reader: &mut Reader<R>,
    ) -> Result<()> {
        let _ = size;
        let mut f = File::from(fd);
        reader.read_data(|b| f.write_all(b).map_err(|e| Error::io(&host, e)))?;
        let fd = OwnedFd::from(f);
        meta.apply(&fd, &host)
    }

    pub fn check(&mut self) -> Result<()> {
        Ok(())
    }

    pub fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
