//! The 512-byte header block and PAX records.

use crate::error::{show, Error, Result};

pub const BLOCK: usize = 512;

/// What a member is, after GNU/PAX extensions have been folded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Link,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

impl Kind {
    pub fn typeflag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::Link => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }

    /// Members whose header is all there is: a size field on them is ignored, as Go does.
    pub fn header_only(self) -> bool {
        !matches!(self, Kind::File)
    }
}

/// One archive member, fully decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Raw name as stored (not normalized; may hold `..`, a leading `/`, a trailing `/`).
    pub path: Vec<u8>,
    /// Link target for symlinks and hardlinks.
    pub link: Vec<u8>,
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// Bytes of data that follow the header (0 for header-only kinds).
    pub size: u64,
    pub devmajor: u32,
    pub devminor: u32,
    /// Extended attributes (PAX `SCHILY.xattr.*`), in archive order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Member {
    pub fn new(path: impl Into<Vec<u8>>, kind: Kind) -> Self {
        Self {
            path: path.into(),
            link: Vec::new(),
            kind,
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nsec: 0,
            size: 0,
            devmajor: 0,
            devminor: 0,
            xattrs: Vec::new(),
        }
    }

    pub fn name(&self) -> String {
        show(&self.path)
    }
}

/// The bytes of a NUL-terminated (or full-width) string field.
pub(crate) fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

/// A numeric field: octal (space/NUL padded) or GNU base-256 (high bit set).
pub(crate) fn number(field: &[u8]) -> Option<i128> {
    if let Some(&first) = field.first() {
        if first & 0x80 != 0 {
            // GNU base-256: big-endian two's complement; a 0xff lead byte is negative.
            let neg = first & 0x40 != 0;
            let mut v: i128 = if neg { -1 } else { 0 };
            for (i, &b) in field.iter().enumerate() {
                let b = if i == 0 && !neg { b & 0x7f } else { b };
                v = v.checked_mul(256)?.checked_add(i128::from(b))?;
            }
            return Some(v);
        }
    }
    let mut v: i128 = 0;
    let mut seen = false;
    let mut done = false;
    for &b in field {
        match b {
            b'0'..=b'7' if !done => {
                v = v.checked_mul(8)?.checked_add(i128::from(b - b'0'))?;
                seen = true;
            }
            b' ' | 0 if !seen => {}
            b' ' | 0 => done = true,
            _ if done => {}
            _ => return None,
        }
    }
    Some(v)
}

/// Header checksum: unsigned sum with the checksum field as spaces. Old tars used a signed sum;
/// both are accepted, as GNU tar does.
pub(crate) fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let Some(stored) = number(&h[148..156]) else {
        return false;
    };
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    i128::from(unsigned) == stored || i128::from(signed) == stored
}

pub(crate) fn compute_checksum(h: &[u8; BLOCK]) -> u32 {
    h.iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { u32::from(b' ') } else { u32::from(b) })
        .sum()
}

/// PAX overrides collected from an `x` header.
#[derive(Default, Debug)]
pub(crate) struct Pax {
    pub path: Option<Vec<u8>>,
    pub link: Option<Vec<u8>>,
    pub size: Option<u64>,
    pub uid: Option<u64>,
    pub gid: Option<u64>,
    pub mtime: Option<(i64, u32)>,
    pub devmajor: Option<u32>,
    pub devminor: Option<u32>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn dec_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// PAX time: `[-]SECONDS[.FRACTION]`.
pub(crate) fn pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let (neg, v) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &v[..0]),
    };
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let secs = dec_u64(int)? as i64;
    let mut ns: u32 = 0;
    for i in 0..9 {
        ns = ns * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'));
    }
    if !neg {
        return Some((secs, ns));
    }
    // -1.25 is 1.25 s before the epoch: seconds -2, nanoseconds 750_000_000.
    if ns == 0 {
        Some((-secs, 0))
    } else {
        Some((-secs - 1, 1_000_000_000 - ns))
    }
}

impl Pax {
    /// Parse `LEN KEY=VALUE\n` records; `member` names the header for errors.
    pub fn parse(&mut self, data: &[u8], member: &str) -> Result<()> {
        let bad = |why: &str| Error::corrupt(Some(member), format!("bad PAX header: {why}"));
        let mut rest = data;
        while !rest.is_empty() {
            // Some writers pad the data with NULs.
            if rest.iter().all(|&b| b == 0) {
                break;
            }
            let sp = rest.iter().position(|&b| b == b' ').ok_or_else(|| bad("no length"))?;
            let len = dec_u64(&rest[..sp]).ok_or_else(|| bad("bad length"))? as usize;
            if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
                return Err(bad("bad record length"));
            }
            let rec = &rest[sp + 1..len - 1];
            rest = &rest[len..];
            let eq = rec.iter().position(|&b| b == b'=').ok_or_else(|| bad("no '='"))?;
            let (key, val) = (&rec[..eq], &rec[eq + 1..]);
            match key {
                b"path" => self.path = (!val.is_empty()).then(|| val.to_vec()),
                b"linkpath" => self.link = (!val.is_empty()).then(|| val.to_vec()),
                b"size" => self.size = Some(dec_u64(val).ok_or_else(|| bad("bad size"))?),
                b"uid" => self.uid = Some(dec_u64(val).ok_or_else(|| bad("bad uid"))?),
                b"gid" => self.gid = Some(dec_u64(val).ok_or_else(|| bad("bad gid"))?),
                b"mtime" => self.mtime = Some(pax_time(val).ok_or_else(|| bad("bad mtime"))?),
                b"SCHILY.devmajor" => {
                    self.devmajor = Some(
                        dec_u64(val).and_then(|v| u32::try_from(v).ok()).ok_or_else(|| bad("bad devmajor"))?,
                    )
                }
                b"SCHILY.devminor" => {
                    self.devminor = Some(
                        dec_u64(val).and_then(|v| u32::try_from(v).ok()).ok_or_else(|| bad("bad devminor"))?,
                    )
                }
                _ if key.starts_with(b"SCHILY.xattr.") => {
                    let name = &key[b"SCHILY.xattr.".len()..];
                    if name.is_empty() {
                        return Err(bad("empty xattr name"));
                    }
                    self.xattrs.retain(|(n, _)| n != name);
                    self.xattrs.push((name.to_vec(), val.to_vec()));
                }
                _ if key.starts_with(b"GNU.sparse.") => {
                    return Err(Error::unsupported(member, "GNU sparse files are not supported"));
                }
                // atime, ctime, uname, gname, comment, charset, hdrcharset, vendor keys.
                _ => {}
            }
        }
        Ok(())
    }
}

/// Encode one PAX record, `LEN KEY=VALUE\n`, where LEN counts itself.
pub(crate) fn pax_record(out: &mut Vec<u8>, key: &[u8], val: &[u8]) {
    let body = key.len() + val.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    loop {
        let digits = len.to_string().len();
        if body + digits == len {
            break;
        }
        len = body + digits;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(val);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number(b"0000644\0"), Some(0o644));
        assert_eq!(number(b"  644 \0"), Some(0o644));
        assert_eq!(number(b"\0\0\0\0"), Some(0));
        assert_eq!(number(b"12x"), None);
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(number(&[0xff; 8]), Some(-1));
    }

    #[test]
    fn pax_times() {
        assert_eq!(pax_time(b"1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(pax_time(b"12"), Some((12, 0)));
        assert_eq!(pax_time(b"-1.25"), Some((-2, 750_000_000)));
        assert_eq!(pax_time(b"1.1234567891"), Some((1, 123_456_789)));
        assert_eq!(pax_time(b"x"), None);
    }

    #[test]
    fn pax_records_roundtrip() {
        for n in [1usize, 5, 90, 95, 96, 97, 990, 1000, 5000] {
            let mut out = Vec::new();
            pax_record(&mut out, b"path", &vec![b'a'; n]);
            let mut p = Pax::default();
            p.parse(&out, "m").unwrap();
            assert_eq!(p.path.unwrap().len(), n);
        }
    }

    #[test]
    fn pax_rejects_garbage() {
        let mut p = Pax::default();
        assert!(p.parse(b"99 path=x\n", "m").is_err());
        assert!(p.parse(b"abc", "m").is_err());
        let e = p.parse(b"22 GNU.sparse.major=1\n", "m").unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    }
}
