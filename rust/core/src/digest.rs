//! sha256 digests in the `sha256:<hex>` form used by OCI, and readers/writers that hash what
//! passes through them. `sha2` picks SHA-NI at run time when the CPU has it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::source::Source;

/// A running sha256 with a byte count.
#[derive(Clone, Default)]
pub struct Hasher {
    h: Sha256,
    n: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn update(&mut self, b: &[u8]) {
        self.h.update(b);
        self.n += b.len() as u64;
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// `sha256:<hex>` and the number of bytes hashed.
    pub fn finish(self) -> (String, u64) {
        (format!("sha256:{}", hex::encode(self.h.finalize())), self.n)
    }
}

/// A writer that hashes everything written through it.
pub struct HashWriter<W> {
    pub inner: W,
    pub hasher: Hasher,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, hasher: Hasher::new() }
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes everything read through it.
pub struct HashReader<R> {
    pub inner: R,
    pub hasher: Hasher,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, hasher: Hasher::new() }
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// `sha256:<hex>` of `length` bytes of `path` from `offset` (`None`: to end of file).
pub fn sha256_file(path: &Path, offset: u64, length: Option<u64>) -> Result<String> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut src = Source::new(file, path, offset, length)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read_chunk(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    src.check_complete()?;
    Ok(h.finish().0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        let mut h = Hasher::new();
        h.update(b"abc");
        assert_eq!(
            h.finish().0,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn file_range() {
        let dir = crate::testutil::TempDir::new();
        let p = dir.path().join("f");
        std::fs::write(&p, b"xxabcyy").unwrap();
        assert_eq!(
            sha256_file(&p, 2, Some(3)).unwrap(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // A range past the end of the file is an error, not a silent short digest.
        assert!(sha256_file(&p, 2, Some(30)).is_err());
    }
}
