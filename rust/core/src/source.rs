//! Reading a byte range of a file: a layer may sit inside an outer archive (`docker save`,
//! OCI archive), so every reader takes an offset and an optional length.
//!
//! The source may also be a pipe or a FIFO (`/proc/self/fd/N` of a pipe that a downloader
//! feeds as bytes arrive, so a layer is extracted while it downloads): that is read in order
//! with `read(2)`, and only from offset 0.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{tag, Error, Result};

/// What a read from a pipe waits for at least (unless the stream ends first).
const STREAM_FILL: usize = 256 << 10;

pub struct Source {
    file: File,
    path: PathBuf,
    pos: u64,
    /// End of the range, if a length was given.
    end: Option<u64>,
    /// A pipe, FIFO or socket: no `pread`, bytes come in order.
    stream: bool,
}

impl Source {
    pub fn new(file: File, path: &Path, offset: u64, length: Option<u64>) -> Result<Self> {
        let end = match length {
            Some(l) => Some(offset.checked_add(l).ok_or_else(|| {
                Error::InvalidArgument(format!("offset {offset} + length {l} overflows"))
            })?),
            None => None,
        };
        let kind = file.metadata().map_err(|e| Error::io(path, e))?.file_type();
        let stream = {
            use std::os::unix::fs::FileTypeExt;
            kind.is_fifo() || kind.is_socket() || kind.is_char_device()
        };
        if stream && offset != 0 {
            return Err(Error::InvalidArgument(format!(
                "{}: a pipe is read from its start (offset {offset} asked for)",
                path.display()
            )));
        }
        Ok(Self { file, path: path.to_path_buf(), pos: offset, end, stream })
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
        if self.stream {
            // A pipe hands out what its buffer holds: read until a quarter of a MiB (or the
            // chunk, or the end) is in, so the chunks down the pipeline stay large, and no
            // further, so bytes that have arrived are not held back waiting for more.
            let fill = want.min(STREAM_FILL);
            let mut n = 0;
            while n < fill {
                match self.file.read(&mut buf[n..want]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io(&self.path, e)),
                }
            }
            self.pos += n as u64;
            return Ok(n);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::FromRawFd;

    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
    }

    #[test]
    fn a_pipe_is_read_in_order_to_its_end() {
        let (r, mut w) = pipe();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            for part in sent.chunks(70_000) {
                w.write_all(part).unwrap();
            }
        });
        let mut src = Source::new(r, Path::new("pipe"), 0, None).unwrap();
        let mut got = Vec::new();
        src.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, data);
    }

    #[test]
    fn a_pipe_cut_short_of_its_length_fails() {
        let (r, mut w) = pipe();
        w.write_all(b"abc").unwrap();
        drop(w);
        let mut src = Source::new(r, Path::new("pipe"), 0, Some(10)).unwrap();
        let mut got = Vec::new();
        assert!(src.read_to_end(&mut got).is_err());
        assert_eq!(got, b"abc");
    }

    #[test]
    fn a_pipe_has_no_offset() {
        let (r, _w) = pipe();
        assert!(matches!(Source::new(r, Path::new("pipe"), 5, None), Err(Error::InvalidArgument(_))));
    }
}
