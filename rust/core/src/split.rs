//! Tar-split: keep what it takes to rebuild a layer's exact tar stream from its extracted tree,
//! instead of a copy of the layer.
//!
//! While a layer is extracted, every byte of the tar stream is recorded except the contents of
//! regular files: headers, extended headers, padding, the end-of-archive blocks and whatever
//! follows them go in as literal bytes, and a file's contents as a reference to the extracted
//! file (its path in the layer and how many bytes). [`assemble`] replays the record, reading the
//! files back, and yields the same bytes, so the same diff ID. Docker keeps the same kind of
//! record (`tar-split.json.gz`) for `docker save` and `docker push`.
//!
//! A record holds only if the tree still has every recorded file as it was written, so the
//! extractor drops it when a later member replaced or removed anything (a path given twice, a
//! whiteout of a file of the same layer): the caller keeps the layer's bytes instead.
//! [`assemble`]'s result is checked against the diff ID by the caller all the same.
//!
//! Format, zstd-compressed: the magic line, then records: `L` u32 length, bytes (literal); `F`
//! u64 length, u32 path length, path (file contents); `E` (end). Integers are little-endian.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::beneath::{name_cstr, split_parent, Lookup, Root};
use crate::compress::{BlobWriter, Compression, StreamInfo};
use crate::digest::HashWriter;
use crate::error::{show, Error, Result};
use crate::sys;

const MAGIC: &[u8] = b"dockyard-tar-split 1\n";
/// Literal bytes are gathered up to this before a record is written.
const LIT_MAX: usize = 64 << 10;
/// A literal record is never longer (a damaged record must not make us allocate gigabytes).
const LIT_LIMIT: u32 = 1 << 20;

/// Records a tar stream as it is read (see the module docs). Fed by the tar
/// [`Reader`](crate::tar::reader::Reader).
pub struct Recorder {
    out: zstd::stream::write::Encoder<'static, HashWriter<BufWriter<File>>>,
    path: PathBuf,
    lit: Vec<u8>,
    /// The file whose contents are being read, and how many bytes so far.
    payload: Option<(Vec<u8>, u64)>,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        let hw = HashWriter::new(BufWriter::with_capacity(256 << 10, f));
        let mut out = zstd::stream::write::Encoder::new(hw, 3).map_err(|e| Error::io(path, e))?;
        out.write_all(MAGIC).map_err(|e| Error::io(path, e))?;
        Ok(Self { out, path: path.to_path_buf(), lit: Vec::with_capacity(LIT_MAX), payload: None })
    }

    fn io(&self, e: io::Error) -> Error {
        Error::io(&self.path, e)
    }

    fn flush_literal(&mut self) -> Result<()> {
        for piece in self.lit.chunks(LIT_LIMIT as usize) {
            let r = self
                .out
                .write_all(b"L")
                .and_then(|_| self.out.write_all(&(piece.len() as u32).to_le_bytes()))
                .and_then(|_| self.out.write_all(piece));
            r.map_err(|e| self.io(e))?;
        }
        self.lit.clear();
        Ok(())
    }

    /// Bytes of the stream that are not file contents.
    #[inline]
    pub fn literal(&mut self, b: &[u8]) -> Result<()> {
        self.end_payload()?;
        self.lit.extend_from_slice(b);
        if self.lit.len() >= LIT_MAX {
            self.flush_literal()?;
        }
        Ok(())
    }

    /// The data that follows is the contents of the file at `path` (normalized, relative to
    /// the layer root).
    pub fn begin_payload(&mut self, path: &[u8]) -> Result<()> {
        self.end_payload()?;
        self.payload = Some((path.to_vec(), 0));
        Ok(())
    }

    /// Member data was read: counted as the current file's contents, if there is one, else
    /// kept as literal bytes.
    #[inline]
    pub fn data(&mut self, b: &[u8]) -> Result<()> {
        match &mut self.payload {
            Some((_, count)) => {
                *count += b.len() as u64;
                Ok(())
            }
            None => self.literal(b),
        }
    }

    /// The current file's contents are over (what was not read follows as literal bytes).
    pub fn end_payload(&mut self) -> Result<()> {
        let Some((path, n)) = self.payload.take() else { return Ok(()) };
        if n == 0 {
            return Ok(());
        }
        self.flush_literal()?;
        let r = self
            .out
            .write_all(b"F")
            .and_then(|_| self.out.write_all(&n.to_le_bytes()))
            .and_then(|_| self.out.write_all(&(path.len() as u32).to_le_bytes()))
            .and_then(|_| self.out.write_all(&path));
        r.map_err(|e| self.io(e))
    }

    /// Close the record; returns the digest and size of the file written.
    pub fn finish(mut self) -> Result<(String, u64)> {
        self.end_payload()?;
        self.flush_literal()?;
        self.out.write_all(b"E").map_err(|e| self.io(e))?;
        let path = self.path;
        let mut hw = self.out.finish().map_err(|e| Error::io(&path, e))?;
        hw.flush().map_err(|e| Error::io(&path, e))?;
        Ok(hw.hasher.finish())
    }
}

/// Rebuild the tar stream recorded in `split` from the extracted layer `layer`, into `dest`
/// with `compression`. Returns both digests (the diff ID is the caller's check that the tree
/// still matches).
pub fn assemble(split: &Path, layer: &Path, dest: &Path, compression: Compression, level: Option<i32>) -> Result<StreamInfo> {
    let f = File::open(split).map_err(|e| Error::io(split, e))?;
    let mut r = zstd::stream::read::Decoder::new(f).map_err(|e| Error::io(split, e))?;
    let bad = |what: &str| Error::corrupt(None, format!("tar-split record {}: {what}", split.display()));
    let mut magic = [0u8; MAGIC.len()];
    r.read_exact(&mut magic).map_err(|_| bad("not a tar-split record"))?;
    if magic != MAGIC {
        return Err(bad("not a tar-split record"));
    }
    let mut root = Root::open(layer)?;
    let mut out = BlobWriter::create(dest, compression, level)?;
    let mut buf = vec![0u8; crate::compress::BUF];
    let werr = |e: io::Error| Error::io(dest, e);
    loop {
        let mut tag = [0u8; 1];
        r.read_exact(&mut tag).map_err(|_| bad("cut short"))?;
        match tag[0] {
            b'L' => {
                let n = read_u32(&mut r).map_err(|_| bad("cut short"))?;
                if n > LIT_LIMIT {
                    return Err(bad("literal record too long"));
                }
                let piece = &mut buf[..n as usize];
                r.read_exact(piece).map_err(|_| bad("cut short"))?;
                out.write_all(piece).map_err(werr)?;
            }
            b'F' => {
                let mut n8 = [0u8; 8];
                r.read_exact(&mut n8).map_err(|_| bad("cut short"))?;
                let mut left = u64::from_le_bytes(n8);
                let plen = read_u32(&mut r).map_err(|_| bad("cut short"))?;
                if plen as usize > 64 << 10 {
                    return Err(bad("path too long"));
                }
                let mut path = vec![0u8; plen as usize];
                r.read_exact(&mut path).map_err(|_| bad("cut short"))?;
                let shown = show(&path);
                let gone = || Error::corrupt(None, format!("layer {}: \"{shown}\" no longer matches the layer's tar", layer.display()));
                let (parent, base) = split_parent(&path);
                let pfd = match root.dir(parent, false, &shown) {
                    Ok(Lookup::Found(fd)) => fd,
                    Ok(Lookup::Missing) => return Err(gone()),
                    Err(e) if e.is_layer_error() => return Err(gone()),
                    Err(e) => return Err(e),
                };
                let c = name_cstr(base, &shown)?;
                let fd = match sys::openat(pfd, &c, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0) {
                    Ok(fd) => fd,
                    Err(e) if sys::is_errno(&e, libc::ENOENT) || sys::is_errno(&e, libc::ELOOP) => return Err(gone()),
                    Err(e) => return Err(Error::io(root.host(&path), e)),
                };
                let mut file = File::from(fd);
                if sys::fstat(file.as_raw_fd()).map_err(|e| Error::io(root.host(&path), e))?.st_mode & libc::S_IFMT
                    != libc::S_IFREG
                {
                    return Err(gone());
                }
                while left > 0 {
                    let want = (left.min(buf.len() as u64)) as usize;
                    let got = file.read(&mut buf[..want]).map_err(|e| Error::io(root.host(&path), e))?;
                    if got == 0 {
                        return Err(gone());
                    }
                    out.write_all(&buf[..got]).map_err(werr)?;
                    left -= got as u64;
                }
            }
            b'E' => break,
            _ => return Err(bad("unknown record")),
        }
    }
    // Nothing may follow the end record.
    let mut rest = BufReader::new(r);
    if !rest.fill_buf().map_err(|_| bad("damaged"))?.is_empty() {
        return Err(bad("data after the end record"));
    }
    out.finish()
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{extract, ExtractOptions};
    use crate::tar::{Kind, Member, Writer};
    use crate::testutil::TempDir;

    fn member(path: &str, kind: Kind, data: &[u8]) -> (Member, Vec<u8>) {
        let mut m = Member::new(path.as_bytes().to_vec(), kind);
        m.size = data.len() as u64;
        m.mode = 0o644;
        (m, data.to_vec())
    }

    /// A layer with every kind of member, long (PAX) names, an empty file, a big file, and junk
    /// after the end-of-archive blocks (which is part of the diff ID too).
    fn layer() -> Vec<u8> {
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut link = Member::new(b"hard".to_vec(), Kind::Link);
        link.link = b"dir/small".to_vec();
        let mut sym = Member::new(b"sym".to_vec(), Kind::Symlink);
        sym.link = b"dir/small".to_vec();
        let long = format!("dir/{}", "n".repeat(150));
        let members = vec![
            member("dir/", Kind::Dir, b""),
            member("dir/small", Kind::File, b"hello\n"),
            member("dir/empty", Kind::File, b""),
            member(&long, Kind::File, b"long name"),
            member("big", Kind::File, &big),
            (link, Vec::new()),
            (sym, Vec::new()),
            member("dir/.wh.gone", Kind::File, b""),
            member(".wh..wh..opq", Kind::File, b""),
        ];
        let mut w = Writer::new(Vec::new());
        for (m, data) in &members {
            w.append(m, Some(&mut &data[..])).unwrap();
        }
        let mut out = w.finish().unwrap();
        out.extend_from_slice(&[0u8; 4096]);
        out.extend_from_slice(b"trailing junk");
        out
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    struct Done {
        t: TempDir,
        info: crate::extract::LayerInfo,
    }

    fn extract_recorded(bytes: &[u8]) -> Done {
        let t = TempDir::new();
        std::fs::write(t.path().join("layer"), bytes).unwrap();
        std::fs::create_dir(t.path().join("tree")).unwrap();
        let split = t.path().join("split");
        let opts = ExtractOptions { split: Some(&split), ..Default::default() };
        let info = extract(&t.path().join("layer"), &t.path().join("tree"), &opts).unwrap();
        Done { t, info }
    }

    #[test]
    fn rebuilds_the_exact_stream() {
        let tar = layer();
        for input in [tar.clone(), gzip(&tar)] {
            let d = extract_recorded(&input);
            let (digest, size) = d.info.split.clone().expect("a record");
            let split = d.t.path().join("split");
            assert_eq!(size, std::fs::metadata(&split).unwrap().len());
            assert_eq!(digest, crate::sha256_file(&split, 0, None).unwrap());
            // Much smaller than the layer: file contents are not in it.
            assert!(size < 4096, "record of {size} bytes");
            let out = d.t.path().join("out.tar");
            let info = assemble(&split, &d.t.path().join("tree"), &out, Compression::None, None).unwrap();
            assert_eq!(std::fs::read(&out).unwrap(), tar);
            assert_eq!(info.diff_id, d.info.stream.diff_id);
            let gz = d.t.path().join("out.tar.gz");
            let info = assemble(&split, &d.t.path().join("tree"), &gz, Compression::Gzip, None).unwrap();
            assert_eq!(info.diff_id, d.info.stream.diff_id);
            assert_eq!(info.digest, crate::sha256_file(&gz, 0, None).unwrap());
            let back = d.t.path().join("back.tar");
            assert_eq!(crate::decompress(&gz, &back, 0, None).unwrap().diff_id, d.info.stream.diff_id);
        }
    }

    #[test]
    fn no_record_when_a_member_replaces_another() {
        for second in [member("a", Kind::File, b"two"), member("a", Kind::Dir, b""), member(".wh.a", Kind::File, b"")] {
            let mut w = Writer::new(Vec::new());
            for (m, data) in [member("a", Kind::File, b"one"), second] {
                w.append(&m, Some(&mut &data[..])).unwrap();
            }
            let d = extract_recorded(&w.finish().unwrap());
            assert!(d.info.split.is_none());
            assert!(!d.t.path().join("split").exists(), "the useless record is removed");
        }
    }

    #[test]
    fn a_changed_tree_is_refused() {
        let tar = layer();
        let d = extract_recorded(&tar);
        let split = d.t.path().join("split");
        let tree = d.t.path().join("tree");
        let out = d.t.path().join("out.tar");
        // Shorter: cannot give the recorded bytes back.
        std::fs::write(tree.join("big"), b"short").unwrap();
        let e = assemble(&split, &tree, &out, Compression::None, None).unwrap_err().to_string();
        assert!(e.contains("\"big\" no longer matches"), "{e}");
        // A symlink in its place is not followed.
        std::fs::remove_file(tree.join("big")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tree.join("big")).unwrap();
        let e = assemble(&split, &tree, &out, Compression::None, None).unwrap_err().to_string();
        assert!(e.contains("\"big\" no longer matches"), "{e}");
        // Nor is a symlinked parent directory.
        std::fs::rename(tree.join("dir"), d.t.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(d.t.path().join("moved"), tree.join("dir")).unwrap();
        std::fs::remove_file(tree.join("big")).unwrap();
        let e = assemble(&split, &tree, &out, Compression::None, None).unwrap_err().to_string();
        assert!(e.contains("no longer matches"), "{e}");
    }

    #[test]
    fn damaged_records_are_refused() {
        let d = extract_recorded(&layer());
        let split = d.t.path().join("split");
        let tree = d.t.path().join("tree");
        let out = d.t.path().join("out.tar");
        let mut plain = Vec::new();
        zstd::stream::read::Decoder::new(File::open(&split).unwrap()).unwrap().read_to_end(&mut plain).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not zstd at all".to_vec(), ""),
            (zstd::encode_all(&b"something else\n"[..], 1).unwrap(), "not a tar-split record"),
            (zstd::encode_all(&plain[..plain.len() - 1], 1).unwrap(), "cut short"),
            (zstd::encode_all(&[&plain[..], b"X"].concat()[..], 1).unwrap(), "data after the end record"),
            (zstd::encode_all(&[MAGIC, b"Q"].concat()[..], 1).unwrap(), "unknown record"),
            (zstd::encode_all(&[MAGIC, b"L", &u32::MAX.to_le_bytes()].concat()[..], 1).unwrap(), "too long"),
        ];
        for (bytes, want) in cases {
            std::fs::write(&split, &bytes).unwrap();
            let e = assemble(&split, &tree, &out, Compression::None, None).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
    }
}
