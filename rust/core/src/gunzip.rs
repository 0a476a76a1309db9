//! Gzip decompression with ISA-L (when the core was built with it; see build.rs).
//!
//! [`Gunzip`] reads a gzip stream of one or more members from a `BufRead` and yields the
//! decompressed bytes, as `flate2::bufread::MultiGzDecoder` does: every member's header is
//! parsed and its trailer (crc32 and size) checked, and bytes after a member start another.
//! Damaged data is an `InvalidData` error; input that ends inside a member, `UnexpectedEof`.

use std::ffi::{c_int, c_void};
use std::io::{self, BufRead, Read};
use std::ptr::NonNull;

extern "C" {
    fn dy_gunzip_new() -> *mut c_void;
    fn dy_gunzip_reset(s: *mut c_void);
    fn dy_gunzip_step(
        s: *mut c_void,
        input: *const u8,
        in_len: u32,
        used: *mut u32,
        out: *mut u8,
        out_len: u32,
        made: *mut u32,
        done: *mut c_int,
    ) -> c_int;
    fn dy_gunzip_free(s: *mut c_void);
}

/// Whether gzip goes through ISA-L: built with it, and not turned off with
/// `DOCKYARD_GZIP=zlib` (which tests and benchmarks use to compare the two).
pub fn available() -> bool {
    std::env::var_os("DOCKYARD_GZIP").is_none_or(|v| v != "zlib")
}

pub struct Gunzip<R> {
    inner: R,
    state: NonNull<c_void>,
    /// The current member has ended (its trailer checked).
    member_done: bool,
}

// The state is owned by this value alone and only touched through `&mut self`.
unsafe impl<R: Send> Send for Gunzip<R> {}

impl<R: BufRead> Gunzip<R> {
    pub fn new(inner: R) -> io::Result<Self> {
        let state = NonNull::new(unsafe { dy_gunzip_new() })
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "isa-l inflate state"))?;
        Ok(Self { inner, state, member_done: false })
    }

    pub fn into_inner(self) -> R {
        let me = std::mem::ManuallyDrop::new(self);
        unsafe {
            dy_gunzip_free(me.state.as_ptr());
            std::ptr::read(&me.inner)
        }
    }
}

impl<R> Drop for Gunzip<R> {
    fn drop(&mut self) {
        unsafe { dy_gunzip_free(self.state.as_ptr()) }
    }
}

fn damaged(code: c_int) -> io::Error {
    let what = match code {
        -1 => "invalid deflate block",
        -2 => "invalid deflate symbol",
        -3 => "invalid back-reference distance",
        -4 => "invalid gzip header",
        -5 => "unsupported compression method",
        -6 => "checksum or size mismatch in the gzip trailer",
        _ => "undecodable data",
    };
    io::Error::new(io::ErrorKind::InvalidData, format!("{what} (isa-l {code})"))
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let out_len = out.len().min(u32::MAX as usize) as u32;
        loop {
            let input = self.inner.fill_buf()?;
            if self.member_done {
                if input.is_empty() {
                    return Ok(0);
                }
                // More bytes after a member: the next member (or an error on its header).
                unsafe { dy_gunzip_reset(self.state.as_ptr()) };
                self.member_done = false;
            }
            let (mut used, mut made, mut done) = (0u32, 0u32, 0 as c_int);
            let in_len = input.len().min(u32::MAX as usize) as u32;
            let r = unsafe {
                dy_gunzip_step(
                    self.state.as_ptr(),
                    input.as_ptr(),
                    in_len,
                    &mut used,
                    out.as_mut_ptr(),
                    out_len,
                    &mut made,
                    &mut done,
                )
            };
            self.inner.consume(used as usize);
            if r < 0 {
                return Err(damaged(r));
            }
            self.member_done = done != 0;
            if made > 0 {
                return Ok(made as usize);
            }
            if self.member_done {
                continue;
            }
            if in_len == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "gzip stream ends inside a member"));
            }
            if used == 0 {
                // Input and room were offered and nothing moved: never loop on that.
                return Err(io::Error::new(io::ErrorKind::InvalidData, "gzip decoder made no progress"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i * 7919) % 251) as u8 ^ (i / 4096) as u8).collect()
    }

    /// Reads through a BufReader of `cap` bytes, so members and trailers straddle refills.
    fn gunzip(z: &[u8], cap: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Gunzip::new(io::BufReader::with_capacity(cap, z))?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn matches_the_input_across_buffer_sizes_and_members() {
        let (a, b) = (data(300_000), data(5));
        let mut two = gz(&a);
        two.extend(gz(&b));
        two.extend(gz(b""));
        for cap in [1, 7, 4096, 1 << 20] {
            assert_eq!(gunzip(&gz(&a), cap).unwrap(), a);
            assert_eq!(gunzip(&two, cap).unwrap(), [a.clone(), b.clone()].concat());
        }
    }

    #[test]
    fn damage_is_an_error() {
        let z = gz(&data(100_000));
        let cut = gunzip(&z[..z.len() / 2], 4096).unwrap_err();
        assert_eq!(cut.kind(), io::ErrorKind::UnexpectedEof);
        let mut crc = z.clone();
        let n = crc.len();
        crc[n - 6] ^= 1;
        assert_eq!(gunzip(&crc, 4096).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut trailing = z.clone();
        trailing.extend_from_slice(b"this is not a gzip member");
        assert_eq!(gunzip(&trailing, 4096).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // Shorter than a header: it cannot be told apart from a cut one, but it is an error.
        assert!(gunzip(&[z.as_slice(), b"junk"].concat(), 4096).is_err());
    }
}
