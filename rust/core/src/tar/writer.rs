//! Deterministic tar writer: ustar headers, PAX only when a value does not fit (long names,
//! big numbers, xattrs, sub-second times are never written), numeric ids, empty user/group
//! names, two zero blocks at the end.

use std::io::{self, Read, Write};

use super::header::{compute_checksum, pax_record, Kind, Member, BLOCK};

pub struct Writer<W> {
    w: W,
    /// Bytes written so far.
    pub written: u64,
}

const ZEROS: [u8; BLOCK] = [0; BLOCK];

fn put_octal(field: &mut [u8], v: u64) -> bool {
    // width-1 digits then NUL, as Go and GNU tar write.
    let digits = field.len() - 1;
    if digits < 22 && v >= 1u64 << (3 * digits) {
        return false;
    }
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

fn put_base256(field: &mut [u8], v: u64) {
    field.fill(0);
    let n = field.len();
    for (i, b) in v.to_be_bytes().iter().rev().enumerate() {
        if i < n {
            field[n - 1 - i] = *b;
        }
    }
    field[0] |= 0x80;
}

impl<W: Write> Writer<W> {
    pub fn new(w: W) -> Self {
        Self { w, written: 0 }
    }

    pub fn get_ref(&self) -> &W {
        &self.w
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let p = ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize;
        self.put(&ZEROS[..p])
    }

    /// Write a header with these raw bytes for name and link; no checks, no PAX. Used for
    /// crafted test archives too.
    #[allow(clippy::too_many_arguments)]
    pub fn raw_header(&mut self, m: &Member, typeflag: u8, name: &[u8], prefix: &[u8], link: &[u8]) -> io::Result<()> {
        let mut h = [0u8; BLOCK];
        h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        put_octal(&mut h[100..108], u64::from(m.mode & 0o7777));
        if !put_octal(&mut h[108..116], m.uid) {
            put_base256(&mut h[108..116], m.uid);
        }
        if !put_octal(&mut h[116..124], m.gid) {
            put_base256(&mut h[116..124], m.gid);
        }
        if !put_octal(&mut h[124..136], m.size) {
            put_base256(&mut h[124..136], m.size);
        }
        if !put_octal(&mut h[136..148], m.mtime.max(0) as u64) {
            put_base256(&mut h[136..148], m.mtime as u64);
        }
        h[156] = typeflag;
        h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        if !put_octal(&mut h[329..337], u64::from(m.devmajor)) {
            put_base256(&mut h[329..337], u64::from(m.devmajor));
        }
        if !put_octal(&mut h[337..345], u64::from(m.devminor)) {
            put_base256(&mut h[337..345], u64::from(m.devminor));
        }
        h[345..345 + prefix.len().min(155)].copy_from_slice(&prefix[..prefix.len().min(155)]);
        let sum = compute_checksum(&h);
        // Six octal digits, NUL, space: the traditional layout.
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.put(&h)
    }

    /// Write the header(s) of a member: a PAX header first if a value does not fit ustar.
    /// For a regular file, exactly `m.size` bytes of [`data`](Self::data) must follow, then
    /// [`end_data`](Self::end_data).
    pub fn header(&mut self, m: &Member) -> io::Result<()> {
        let mut records = Vec::new();
        let (name, prefix) = split_name(&m.path);
        if name.is_none() {
            pax_record(&mut records, b"path", &m.path);
        }
        if m.link.len() > 100 {
            pax_record(&mut records, b"linkpath", &m.link);
        }
        const MAX8: u64 = 0o7777777;
        if m.uid > MAX8 {
            pax_record(&mut records, b"uid", m.uid.to_string().as_bytes());
        }
        if m.gid > MAX8 {
            pax_record(&mut records, b"gid", m.gid.to_string().as_bytes());
        }
        if m.size > 0o77777777777 {
            pax_record(&mut records, b"size", m.size.to_string().as_bytes());
        }
        if m.mtime < 0 || m.mtime > 0o77777777777 || m.mtime_nsec != 0 {
            pax_record(&mut records, b"mtime", pax_time(m.mtime, m.mtime_nsec).as_bytes());
        }
        for (k, v) in &m.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax_record(&mut records, &key, v);
        }
        if !records.is_empty() {
            let mut ph = Member::new(&b"././@PaxHeader"[..], Kind::File);
            ph.size = records.len() as u64;
            ph.mode = 0o644;
            self.raw_header(&ph, b'x', b"././@PaxHeader", b"", b"")?;
            self.put(&records)?;
            self.pad(records.len() as u64)?;
        }
        let (name, prefix) = match name {
            Some(n) => (n, prefix),
            // PAX carries the real name; the header keeps a truncated one, as Go does.
            None => (&m.path[..m.path.len().min(100)], &b""[..]),
        };
        let link = &m.link[..m.link.len().min(100)];
        let mut hm = m.clone();
        hm.size = if m.kind == Kind::File { m.size } else { 0 };
        hm.uid = hm.uid.min(MAX8);
        hm.gid = hm.gid.min(MAX8);
        if hm.mtime < 0 {
            hm.mtime = 0;
        }
        self.raw_header(&hm, m.kind.typeflag(), name, prefix, link)
    }

    /// Content bytes of the current regular file.
    pub fn data(&mut self, b: &[u8]) -> io::Result<()> {
        self.put(b)
    }

    /// Pad the content of `size` bytes to a block boundary.
    pub fn end_data(&mut self, size: u64) -> io::Result<()> {
        self.pad(size)
    }

    /// Append a member with its content (tests, small members).
    pub fn append(&mut self, m: &Member, data: Option<&mut dyn io::Read>) -> io::Result<()> {
        self.header(m)?;
        if m.kind == Kind::File && m.size > 0 {
            let r = data.ok_or_else(|| io::Error::other("regular file without data"))?;
            let mut buf = Vec::new();
            io::Read::take(r, m.size).read_to_end(&mut buf)?;
            if buf.len() as u64 != m.size {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short member data"));
            }
            self.put(&buf)?;
            self.pad(m.size)?;
        }
        Ok(())
    }

    /// Write raw bytes (crafted test archives).
    pub fn raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.put(b)
    }

    /// Two zero blocks; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.put(&ZEROS)?;
        self.put(&ZEROS)?;
        Ok(self.w)
    }
}

/// `[-]SECONDS[.FRACTION]` with trailing zeros trimmed.
fn pax_time(sec: i64, nsec: u32) -> String {
    if nsec == 0 {
        return sec.to_string();
    }
    let (sign, whole, frac) = if sec < 0 {
        ("-", -(sec + 1), 1_000_000_000 - nsec)
    } else {
        ("", sec, nsec)
    };
    let f = format!("{frac:09}");
    format!("{sign}{whole}.{}", f.trim_end_matches('0'))
}

/// Fit a name into ustar's name (100) + prefix (155) fields, splitting at a `/`.
fn split_name(path: &[u8]) -> (Option<&[u8]>, &[u8]) {
    if path.len() <= 100 {
        return (Some(path), b"");
    }
    if path.len() > 256 {
        return (None, b"");
    }
    // The prefix must be <= 155 bytes and the rest <= 100, split at a slash.
    let start = path.len().saturating_sub(101);
    for i in start..path.len().min(156) {
        if path[i] == b'/' && i > 0 && path.len() - i - 1 <= 100 && path.len() - i - 1 > 0 {
            return (Some(&path[i + 1..]), &path[..i]);
        }
    }
    (None, b"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::Reader;

    fn roundtrip(members: &[Member]) -> Vec<Member> {
        let mut w = Writer::new(Vec::new());
        for m in members {
            let data = vec![b'x'; m.size as usize];
            w.append(m, Some(&mut &data[..])).unwrap();
        }
        let buf = w.finish().unwrap();
        let mut r = Reader::new(&buf[..], "tar");
        let mut out = Vec::new();
        while let Some(m) = r.next_member().unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn members_roundtrip() {
        let mut long = Member::new(vec![b'd'; 120].into_iter().chain(*b"/").chain(vec![b'f'; 90]).collect::<Vec<u8>>(), Kind::File);
        long.size = 3;
        let mut verylong = Member::new(vec![b'n'; 300], Kind::Symlink);
        verylong.link = vec![b'l'; 200];
        let mut big = Member::new(&b"ids"[..], Kind::Fifo);
        big.uid = 1 << 30;
        big.gid = 70000;
        big.mtime = -5;
        big.mtime_nsec = 250_000_000;
        let mut x = Member::new(&b"x/"[..], Kind::Dir);
        x.xattrs.push((b"user.a".to_vec(), b"\0\n=bin".to_vec()));
        x.mtime = 1_700_000_000;
        x.mtime_nsec = 123_456_789;
        let mut dev = Member::new(&b"dev/null"[..], Kind::Char);
        dev.devmajor = 1;
        dev.devminor = 3;
        dev.mode = 0o4755;
        let ms = vec![long, verylong, big, x, dev];
        assert_eq!(roundtrip(&ms), ms);
    }

    #[test]
    fn split() {
        assert_eq!(split_name(b"a"), (Some(&b"a"[..]), &b""[..]));
        let p: Vec<u8> = [vec![b'a'; 150], b"/".to_vec(), vec![b'b'; 100]].concat();
        assert_eq!(split_name(&p), (Some(&p[151..]), &p[..150]));
        let p: Vec<u8> = [vec![b'a'; 50], b"/".to_vec(), vec![b'b'; 101]].concat();
        assert_eq!(split_name(&p).0, None);
    }
}
