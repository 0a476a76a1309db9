//! Reading a byte range of a file: a layer may sit inside an outer archive (`docker save`,
//! OCI archive), so every reader takes an offset and an optional length.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{tag, Error, Result};

pub struct Source {
    file: File,
    path: PathBuf,
    pos: u64,
    /// End of the range, if a length was given.
    end: Option<u64>,
}

impl Source {
    pub fn new(file: File, path: &Path, offset: u64, length: Option<u64>) -> Result<Self> {
        let end = match length {
            Some(l) => Some(offset.checked_add(l).ok_or_else(|| {
                Error::InvalidArgument(format!("offset {offset} + length {l} overflows"))
            })?),
            None => None,
        };
        Ok(Self { file, path: path.to_path_buf(), pos: offset, end })
    }

    pub fn open(path: &Path, offset: u64, length: Option<u64>) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Self::new(file, path, offset, length)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the next bytes of the range; 0 at its end (or at end of file).
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize> {
        let want = match self.end {
            Some(end) => buf.len().min((end - self.pos.min(end)) as usize),
            None => buf.len(),
        };
        if want == 0 {
            return Ok(0);
        }
        loop {
            match self.file.read_at(&mut buf[..want], self.pos) {
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&self.path, e)),
            }
        }
    }

    /// After EOF: fail if a length was given and the file ended before it.
    pub fn check_complete(&self) -> Result<()> {
        match self.end {
            Some(end) if self.pos < end => Err(Error::corrupt(
                None,
                format!(
                    "{}: file ends {} bytes before the end of the layer",
                    self.path.display(),
                    end - self.pos
                ),
            )),
            _ => Ok(()),
        }
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_chunk(buf).map_err(tag)?;
        if n == 0 {
            self.check_complete().map_err(tag)?;
        }
        Ok(n)
    }
}
