//! Streaming tar reader over any `BufRead`. Decodes headers only; the caller decides what to do
//! with each member and reads its data through [`Reader::read_data`].

use std::io::BufRead;

use super::header::{checksum_ok, cstr, number, Kind, Member, Pax, BLOCK};
use crate::error::{from_stream, show, Error, Result};
use crate::split::Recorder;

/// Largest PAX / GNU long-name payload accepted: a hostile archive must not make us allocate
/// gigabytes for a "name".
const META_MAX: u64 = 1 << 20;

pub struct Reader<R> {
    r: R,
    codec: &'static str,
    /// Data bytes of the current member not yet read, then its padding.
    remaining: u64,
    pad: u64,
    done: bool,
    current: String,
    /// Records every byte consumed (tar-split), when asked.
    split: Option<Recorder>,
}

impl<R: BufRead> Reader<R> {
    /// `codec` names the stream's compression in error messages.
    pub fn new(r: R, codec: &'static str) -> Self {
        Self { r, codec, remaining: 0, pad: 0, done: false, current: String::new(), split: None }
    }

    /// Record the stream from here on (see [`crate::split`]).
    pub fn record(&mut self, rec: Recorder) {
        self.split = Some(rec);
    }

    /// The current member's data is the contents of the file extracted at `path`: recorded as
    /// a reference to that file, not as bytes.
    pub fn data_is_file(&mut self, path: &[u8]) -> Result<()> {
        match &mut self.split {
            Some(s) => s.begin_payload(path),
            None => Ok(()),
        }
    }

    /// Read (and record) the rest of the stream, after the end of the archive, and hand back
    /// the record.
    pub fn finish_record(&mut self) -> Result<Option<Recorder>> {
        if self.split.is_none() {
            return Ok(None);
        }
        self.skip(self.remaining + self.pad)?;
        self.remaining = 0;
        self.pad = 0;
        loop {
            let b = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.err(e)),
            };
            if b.is_empty() {
                break;
            }
            let n = b.len();
            if let Some(s) = &mut self.split {
                s.literal(b)?;
            }
            self.r.consume(n);
        }
        Ok(self.split.take())
    }

    pub fn into_inner(self) -> R {
        self.r
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.r
    }

    /// Name of the member being read, for error messages.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Bytes of the current member's data not yet read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    fn err(&self, e: std::io::Error) -> Error {
        let e = from_stream(e, self.codec);
        if self.current.is_empty() {
            e
        } else {
            e.in_member(&self.current)
        }
    }

    fn truncated(&self) -> Error {
        let m = (!self.current.is_empty()).then_some(self.current.as_str());
        Error::corrupt(m, "truncated stream (unexpected end of data)")
    }

    /// Read one block; `false` on a clean end of stream exactly at a block boundary.
    fn read_block(&mut self, out: &mut [u8; BLOCK]) -> Result<bool> {
        let mut got = 0;
        while got < BLOCK {
            let b = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.err(e)),
            };
            if b.is_empty() {
                if got == 0 {
                    return Ok(false);
                }
                // The cut header's own name may be incomplete: name the member before it.
                let reason = if self.current.is_empty() {
                    "truncated stream (inside the first header)".to_owned()
                } else {
                    format!("truncated stream (inside the header after member \"{}\")", self.current)
                };
                return Err(Error::corrupt(None, reason));
            }
            let n = b.len().min(BLOCK - got);
            out[got..got + n].copy_from_slice(&b[..n]);
            self.r.consume(n);
            got += n;
        }
        if let Some(s) = &mut self.split {
            s.literal(out)?;
        }
        Ok(true)
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        while n > 0 {
            let b = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.err(e)),
            };
            if b.is_empty() {
                return Err(self.truncated());
            }
            let k = (b.len() as u64).min(n) as usize;
            if let Some(s) = &mut self.split {
                s.literal(&b[..k])?;
            }
            self.r.consume(k);
            n -= k as u64;
        }
        Ok(())
    }

    /// Hand the current member's data to `f` in chunks, as they sit in the stream's buffer.
    pub fn read_data(&mut self, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        while self.remaining > 0 {
            let b = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.err(e)),
            };
            if b.is_empty() {
                return Err(self.truncated());
            }
            let k = (b.len() as u64).min(self.remaining) as usize;
            f(&b[..k])?;
            if let Some(s) = &mut self.split {
                s.data(&b[..k])?;
            }
            self.r.consume(k);
            self.remaining -= k as u64;
        }
        Ok(())
    }

    fn read_meta(&mut self, size: u64, what: &str) -> Result<Vec<u8>> {
        if size > META_MAX {
            return Err(Error::corrupt(
                Some(&self.current),
                format!("{what} of {size} bytes is larger than the {META_MAX} allowed"),
            ));
        }
        let mut v = Vec::with_capacity(size as usize);
        self.remaining = size;
        self.read_data(|b| {
            v.extend_from_slice(b);
            Ok(())
        })?;
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.skip(pad)?;
        Ok(v)
    }

    /// The next member, or `None` at the end of the archive (a zero block, or a clean end of
    /// stream at a header boundary as Go's reader allows). Unread data of the previous member
    /// is skipped.
    pub fn next_member(&mut self) -> Result<Option<Member>> {
        if self.done {
            return Ok(None);
        }
        let rest = self.remaining + self.pad;
        self.skip(rest)?;
        self.remaining = 0;
        self.pad = 0;

        let mut pax = Pax::default();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pending = false;
        let mut h = [0u8; BLOCK];
        loop {
            if !self.read_block(&mut h)? {
                if pending {
                    return Err(self.truncated());
                }
                self.done = true;
                return Ok(None);
            }
            if h.iter().all(|&b| b == 0) {
                if pending {
                    return Err(Error::corrupt(
                        Some(&self.current),
                        "extended header not followed by a member",
                    ));
                }
                self.done = true;
                return Ok(None);
            }
            let ustar = &h[257..263] == b"ustar\0";
            let mut name = cstr(&h[..100]).to_vec();
            if ustar {
                let prefix = cstr(&h[345..500]);
                if !prefix.is_empty() {
                    let mut p = prefix.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(&name);
                    name = p;
                }
            }
            let shown = pax.path.as_deref().or(long_name.as_deref()).unwrap_or(&name);
            self.current = show(shown);
            if !checksum_ok(&h) {
                return Err(Error::corrupt(Some(&self.current), "bad header checksum"));
            }
            let size = field(&h, 124..136, "size", &self.current)?;
            let size = u64::try_from(size)
                .map_err(|_| Error::corrupt(Some(&self.current), "negative size"))?;
            let typeflag = h[156];
            match typeflag {
                b'x' => {
                    let data = self.read_meta(size, "PAX header")?;
                    let cur = self.current.clone();
                    pax.parse(&data, &cur)?;
                    pending = true;
                    continue;
                }
                b'g' => {
                    // Global headers: Docker ignores them too.
                    self.read_meta(size, "PAX global header")?;
                    continue;
                }
                b'L' => {
                    long_name = Some(cstr(&self.read_meta(size, "GNU long name")?).to_vec());
                    pending = true;
                    continue;
                }
                b'K' => {
                    long_link = Some(cstr(&self.read_meta(size, "GNU long link")?).to_vec());
                    pending = true;
                    continue;
                }
                b'V' => {
                    // Volume label: not a file.
                    self.remaining = size;
                    self.pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
                    let rest = self.remaining + self.pad;
                    self.skip(rest)?;
                    self.remaining = 0;
                    self.pad = 0;
                    continue;
                }
                _ => {}
            }
            let path = pax.path.take().or(long_name.take()).unwrap_or(name);
            let kind = match typeflag {
                b'0' | b'7' => Kind::File,
                0 if path.ends_with(b"/") => Kind::Dir,
                0 => Kind::File,
                b'1' => Kind::Link,
                b'2' => Kind::Symlink,
                b'3' => Kind::Char,
                b'4' => Kind::Block,
                b'5' => Kind::Dir,
                b'6' => Kind::Fifo,
                b'S' => {
                    return Err(Error::unsupported(&self.current, "GNU sparse files are not supported"))
                }
                b'M' | b'N' => {
                    return Err(Error::unsupported(&self.current, "multi-volume archives are not supported"))
                }
                b'D' => {
                    return Err(Error::unsupported(&self.current, "GNU dump directories are not supported"))
                }
                t => {
                    return Err(Error::unsupported(
                        &self.current,
                        format!("unknown member type {:?}", t as char),
                    ))
                }
            };
            let link = pax.link.take().or(long_link.take()).unwrap_or_else(|| cstr(&h[157..257]).to_vec());
            let cur = self.current.clone();
            let field = |r: std::ops::Range<usize>, what: &str| field(&h, r, what, &cur);
            let mode = field(100..108, "mode")?;
            let uid = match pax.uid {
                Some(v) => v,
                None => u64::try_from(field(108..116, "uid")?)
                    .map_err(|_| Error::corrupt(Some(&cur), "negative uid"))?,
            };
            let gid = match pax.gid {
                Some(v) => v,
                None => u64::try_from(field(116..124, "gid")?)
                    .map_err(|_| Error::corrupt(Some(&cur), "negative gid"))?,
            };
            let (mtime, mtime_nsec) = match pax.mtime {
                Some(t) => t,
                None => (
                    i64::try_from(field(136..148, "mtime")?)
                        .map_err(|_| Error::corrupt(Some(&cur), "mtime out of range"))?,
                    0,
                ),
            };
            let size = pax.size.unwrap_or(size);
            let dev = |r: std::ops::Range<usize>, what| -> Result<u32> {
                if !ustar && &h[257..263] != b"ustar " {
                    return Ok(0);
                }
                u32::try_from(field(r, what)?)
                    .map_err(|_| Error::corrupt(Some(&cur), format!("bad {what} field")))
            };
            let devmajor = match pax.devmajor {
                Some(v) => v,
                None => dev(329..337, "devmajor")?,
            };
            let devminor = match pax.devminor {
                Some(v) => v,
                None => dev(337..345, "devminor")?,
            };
            let size = if kind.header_only() { 0 } else { size };
            self.remaining = size;
            self.pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
            return Ok(Some(Member {
                path,
                link,
                kind,
                mode: (mode & 0o7777) as u32,
                uid,
                gid,
                mtime,
                mtime_nsec,
                size,
                devmajor,
                devminor,
                xattrs: std::mem::take(&mut pax.xattrs),
            }));
        }
    }
}

fn field(h: &[u8; BLOCK], r: std::ops::Range<usize>, what: &str, cur: &str) -> Result<i128> {
    number(&h[r]).ok_or_else(|| Error::corrupt(Some(cur), format!("bad {what} field")))
}
