//! Writing a deterministic layer tar of a directory.
//!
//! Same tree, same bytes: members are emitted depth first with each directory's entries
//! sorted bytewise by name (parents before children, each subtree contiguous), with numeric
//! owners and empty user/group names, integer-second mtimes, no atime/ctime, PAX headers only
//! when a value does not fit ustar, xattrs sorted by name, and the compressor's header fixed.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::beneath::{self, normalize, split_parent, Root};
use crate::compress::{BlobWriter, Compression};
use crate::error::{show, Error, Result};
use crate::extract::LayerInfo;
use crate::sys;
use crate::tar::{Kind, Member, Writer};

/// A change to pack, as `diff`/`changes` report them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    Add,
    Change,
    Delete,
}

impl ChangeKind {
    pub fn letter(self) -> &'static str {
        match self {
            ChangeKind::Add => "A",
            ChangeKind::Change => "C",
            ChangeKind::Delete => "D",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "A" => Ok(ChangeKind::Add),
            "C" => Ok(ChangeKind::Change),
            "D" => Ok(ChangeKind::Delete),
            _ => Err(Error::InvalidArgument(format!("unknown change kind {s:?} (expected A, C or D)"))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct PackOptions {
    pub compression: Compression,
    pub level: Option<i32>,
    /// `src` is an overlayfs upper directory: convert its whiteouts and opaque directories.
    pub upper: bool,
    /// Pack only these paths (`"/a/b"` form); `Delete` becomes a `.wh.` whiteout.
    pub changes: Option<Vec<(ChangeKind, Vec<u8>)>>,
}

impl Default for PackOptions {
    fn default() -> Self {
        Self { compression: Compression::Gzip, level: None, upper: false, changes: None }
    }
}

const OPAQUE_NAMES: [&[u8]; 2] = [b"trusted.overlay.opaque", b"user.overlay.opaque"];

/// xattrs that describe the host or overlayfs, not the image: never packed.
fn xattr_packed(name: &[u8]) -> bool {
    !(name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") || name == b"security.selinux")
}

type TarOut = Writer<BlobWriter>;

struct Packer {
    out: TarOut,
    upper: bool,
    links: HashMap<(u64, u64), Vec<u8>>,
    entries: u64,
    content_size: u64,
    buf: Vec<u8>,
    src: std::path::PathBuf,
}

/// Write a layer tar of directory `src` into the file `dest`.
pub fn pack(src: &Path, dest: &Path, opts: &PackOptions) -> Result<LayerInfo> {
    let root = Root::open(src)?;
    let blob = BlobWriter::create(dest, opts.compression, opts.level)?;
    let mut p = Packer {
        out: Writer::new(blob),
        upper: opts.upper,
        links: HashMap::new(),
        entries: 0,
        content_size: 0,
        buf: vec![0u8; 1 << 20],
        src: src.to_path_buf(),
    };
    match &opts.changes {
        None => {
            let fd = root.open_dir(b"", "")?.expect("root");
            p.walk(&fd, b"")?;
        }
        Some(changes) => p.changes(&root, changes)?,
    }
    let blob = p.out.finish().map_err(|e| untag(e, dest))?;
    let stream = blob.finish()?;
    Ok(LayerInfo { stream, entries: p.entries, content_size: p.content_size, split: None })
}

impl Packer {
    fn host(&self, rel: &[u8]) -> std::path::PathBuf {
        use std::os::unix::ffi::OsStrExt;
        self.src.join(std::ffi::OsStr::from_bytes(rel))
    }

    fn walk(&mut self, dir: &OwnedFd, rel: &[u8]) -> Result<()> {
        let mut names = sys::read_dir(dir).map_err(|e| Error::io(self.host(rel), e))?;
        names.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (name, _) in names {
            let path = beneath::join(rel, name.to_bytes());
            let st = match sys::fstatat(dir.as_raw_fd(), &name) {
                Ok(st) => st,
                // Vanished while we walked: nothing to pack.
                Err(e) if sys::is_errno(&e, libc::ENOENT) => continue,
                Err(e) => return Err(Error::io(self.host(&path), e)),
            };
            if let Some(sub) = self.entry(dir.as_raw_fd(), &name, &path, &st)? {
                self.walk(&sub, &path)?;
            }
        }
        Ok(())
    }

    /// Emit the member for `name` in `dir`; returns the open directory if it is one (and it
    /// should be walked).
    fn entry(&mut self, dir: RawFd, name: &CStr, path: &[u8], st: &libc::stat) -> Result<Option<OwnedFd>> {
        let io = |e| Error::io(self.host(path), e);
        let fmt = st.st_mode & libc::S_IFMT;
        let kind = match fmt {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFCHR => Kind::Char,
            libc::S_IFBLK => Kind::Block,
            libc::S_IFIFO => Kind::Fifo,
            // Sockets are not packed (Docker skips them too).
            _ => return Ok(None),
        };
        let mut m = Member::new(path.to_vec(), kind);
        m.mode = st.st_mode & 0o7777;
        m.uid = u64::from(st.st_uid);
        m.gid = u64::from(st.st_gid);
        m.mtime = st.st_mtime;
        if kind == Kind::Char && st.st_rdev == 0 && self.upper {
            // overlayfs whiteout -> OCI whiteout, keeping owner and time as Docker does.
            let (parent, base) = split_parent(path);
            let mut w = Member::new(beneath::join(parent, &[b".wh.", base].concat()), Kind::File);
            w.mode = 0o600;
            w.uid = m.uid;
            w.gid = m.gid;
            w.mtime = m.mtime;
            self.put(&w, None, path)?;
            return Ok(None);
        }
        let mut file = None;
        let mut dirfd = None;
        let xattrs = match kind {
            Kind::File => {
                let f = sys::openat(dir, name, libc::O_RDONLY | libc::O_NOFOLLOW, 0).map_err(io)?;
                let x = read_xattrs_fd(f.as_raw_fd()).map_err(io)?;
                file = Some(f);
                x
            }
            Kind::Dir => {
                let f = sys::open_dir_nofollow(dir, name).map_err(io)?;
                let x = read_xattrs_fd(f.as_raw_fd()).map_err(io)?;
                dirfd = Some(f);
                x
            }
            _ => read_xattrs_path(&sys::fd_path(dir, name.to_bytes())).map_err(io)?,
        };
        let opaque = self.upper
            && kind == Kind::Dir
            && xattrs.iter().any(|(k, v)| OPAQUE_NAMES.contains(&k.as_slice()) && v == b"y");
        m.xattrs = xattrs.into_iter().filter(|(k, _)| xattr_packed(k)).collect();
        match kind {
            Kind::Dir => m.path.push(b'/'),
            Kind::Symlink => m.link = sys::readlinkat(dir, name).map_err(io)?,
            Kind::Char | Kind::Block => {
                m.devmajor = sys::major(st.st_rdev);
                m.devminor = sys::minor(st.st_rdev);
            }
            Kind::File => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        m.kind = Kind::Link;
                        m.link = first.clone();
                        m.xattrs.clear();
                        file = None;
                    } else {
                        self.links.insert(key, path.to_vec());
                    }
                }
                if m.kind == Kind::File {
                    m.size = st.st_size as u64;
                }
            }
            _ => {}
        }
        self.put(&m, file.map(File::from), path)?;
        if opaque {
            let mut o = Member::new(beneath::join(path, b".wh..wh..opq"), Kind::File);
            o.mode = m.mode & 0o777;
            o.uid = m.uid;
            o.gid = m.gid;
            o.mtime = m.mtime;
            self.put(&o, None, path)?;
        }
        Ok(dirfd)
    }

    fn put(&mut self, m: &Member, file: Option<File>, path: &[u8]) -> Result<()> {
        self.entries += 1;
        match m.kind {
            Kind::File => self.content_size += m.size,
            // As in extract: Docker's layer size counts a symlink as its target's length.
            Kind::Symlink => self.content_size += m.link.len() as u64,
            _ => {}
        }
        let dest = self.out.get_ref().path().to_path_buf();
        self.out.header(m).map_err(|e| untag(e, &dest))?;
        if m.kind != Kind::File || m.size == 0 {
            return Ok(());
        }
        let mut f = file.expect("regular files come with their descriptor");
        let mut left = m.size;
        while left > 0 {
            let want = (self.buf.len() as u64).min(left) as usize;
            let n = match f.read(&mut self.buf[..want]) {
                Ok(0) => {
                    // Shrank while we read it: the header already promised m.size bytes.
                    return Err(Error::io(
                        self.host(path),
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("file shrank while being packed ({} of {} bytes)", m.size - left, m.size),
                        ),
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(self.host(path), e)),
            };
            self.out.data(&self.buf[..n]).map_err(|e| untag(e, &dest))?;
            left -= n as u64;
        }
        // A file that grew while being read is cut at the size in its header (GNU tar does the
        // same, with a warning).
        self.out.end_data(m.size).map_err(|e| untag(e, &dest))
    }

    fn changes(&mut self, root: &Root, changes: &[(ChangeKind, Vec<u8>)]) -> Result<()> {
        enum Item {
            Entry,
            Whiteout,
        }
        let mut items: BTreeMap<Vec<Vec<u8>>, Item> = BTreeMap::new();
        let comps = |p: &[u8]| -> Vec<Vec<u8>> { p.split(|&b| b == b'/').map(<[u8]>::to_vec).collect() };
        for (kind, raw) in changes {
            let path = normalize(raw).ok_or_else(|| {
                Error::InvalidArgument(format!("change path {:?} escapes the tree", show(raw)))
            })?;
            if path.is_empty() {
                continue;
            }
            let (parent, _) = split_parent(&path);
            match kind {
                // Keyed by the deleted name, so a whiteout sits where the entry would (as in
                // `upper` mode).
                ChangeKind::Delete => {
                    items.insert(comps(&path), Item::Whiteout);
                }
                _ => {
                    items.insert(comps(&path), Item::Entry);
                }
            }
            let mut p = parent;
            while !p.is_empty() {
                items.entry(comps(p)).or_insert(Item::Entry);
                p = split_parent(p).0;
            }
        }
        for (cs, item) in items {
            let path = cs.join(&b'/');
            let (parent, base) = split_parent(&path);
            match item {
                Item::Whiteout => {
                    let mut w = Member::new(beneath::join(parent, &[b".wh.", base].concat()), Kind::File);
                    w.mode = 0o600;
                    self.put(&w, None, &path)?;
                }
                Item::Entry => {
                    let pfd = root.open_dir(parent, &show(&path)).map_err(|e| match e {
                        Error::Hostile { .. } | Error::Corrupt { .. } => Error::io(
                            self.host(&path),
                            std::io::Error::from_raw_os_error(libc::ELOOP),
                        ),
                        e => e,
                    })?;
                    let Some(pfd) = pfd else { continue };
                    let c = CString::new(base).map_err(|_| Error::InvalidArgument("NUL in change path".into()))?;
                    let st = match sys::fstatat(pfd.as_raw_fd(), &c) {
                        Ok(st) => st,
                        Err(e) if sys::is_errno(&e, libc::ENOENT) => continue,
                        Err(e) => return Err(Error::io(self.host(&path), e)),
                    };
                    self.entry(pfd.as_raw_fd(), &c, &path, &st)?;
                }
            }
        }
        Ok(())
    }
}

/// An error from the blob writer: its thread's own error if it carried one, else a write
/// error on `dest`.
fn untag(e: std::io::Error, dest: &Path) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<crate::error::Tagged>()) {
        return crate::error::from_stream(e, "tar");
    }
    Error::io(dest, e)
}

fn sorted(mut v: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    v.sort();
    v
}

/// All xattrs of an open file or directory, sorted by name.
pub(crate) fn read_xattrs_fd(fd: RawFd) -> std::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match sys::flistxattr(fd) {
        Ok(n) => n,
        Err(e) if sys::is_errno(&e, libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let c = CString::new(n.clone()).expect("xattr names hold no NUL");
        match sys::fgetxattr(fd, &c) {
            Ok(v) => out.push((n, v)),
            Err(e) if sys::is_errno(&e, libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sorted(out))
}

/// All xattrs of a path, not following a final symlink, sorted by name.
pub(crate) fn read_xattrs_path(path: &CStr) -> std::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match sys::llistxattr(path) {
        Ok(n) => n,
        Err(e) if sys::is_errno(&e, libc::ENOTSUP) || sys::is_errno(&e, libc::EPERM) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let c = CString::new(n.clone()).expect("xattr names hold no NUL");
        match sys::lgetxattr(path, &c) {
            Ok(v) => out.push((n, v)),
            Err(e) if sys::is_errno(&e, libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sorted(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{extract, ExtractOptions, Whiteouts};
    use crate::tar::Reader;
    use crate::testutil::TempDir;
    use std::fs;

    fn names(p: &Path) -> Vec<String> {
        let data = fs::read(p).unwrap();
        let mut r = Reader::new(&data[..], "tar");
        let mut v = Vec::new();
        while let Some(m) = r.next_member().unwrap() {
            v.push(format!("{}{}", m.name(), if m.kind == Kind::Link { " (link)" } else { "" }));
        }
        v
    }

    #[test]
    fn deterministic_and_ordered() {
        let t = TempDir::new();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("a/b")).unwrap();
        fs::create_dir_all(src.join("a-b")).unwrap();
        fs::write(src.join("a/b/f"), b"1").unwrap();
        fs::write(src.join("z"), b"1").unwrap();
        fs::hard_link(src.join("z"), src.join("a/h")).unwrap();
        let opts = PackOptions { compression: Compression::None, ..Default::default() };
        let i1 = pack(&src, &t.path().join("1.tar"), &opts).unwrap();
        let i2 = pack(&src, &t.path().join("2.tar"), &opts).unwrap();
        assert_eq!(fs::read(t.path().join("1.tar")).unwrap(), fs::read(t.path().join("2.tar")).unwrap());
        assert_eq!(i1.stream.digest, i2.stream.digest);
        assert_eq!(names(&t.path().join("1.tar")), ["a/", "a/b/", "a/b/f", "a/h", "a-b/", "z (link)"]);
        // Round trip through extract gives the same diff ID.
        fs::create_dir(t.path().join("x")).unwrap();
        let e = extract(&t.path().join("1.tar"), &t.path().join("x"), &ExtractOptions::default()).unwrap();
        assert_eq!(e.stream.diff_id, i1.stream.diff_id);
        assert_eq!(e.entries, 6);
    }

    #[test]
    fn changes_and_upper() {
        let t = TempDir::new();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("a/b")).unwrap();
        fs::write(src.join("a/b/f"), b"1").unwrap();
        fs::write(src.join("a/other"), b"1").unwrap();
        let opts = PackOptions {
            compression: Compression::None,
            changes: Some(vec![
                (ChangeKind::Add, b"/a/b/f".to_vec()),
                (ChangeKind::Delete, b"/a/gone".to_vec()),
                (ChangeKind::Delete, b"/top".to_vec()),
            ]),
            ..Default::default()
        };
        let out = t.path().join("c.tar");
        pack(&src, &out, &opts).unwrap();
        assert_eq!(names(&out), ["a/", "a/b/", "a/b/f", "a/.wh.gone", ".wh.top"]);
        if !crate::testutil::is_root() {
            eprintln!("skipped upper part: needs root (whiteout devices, trusted.* xattrs)");
            return;
        }
        let up = t.path().join("upper");
        fs::create_dir_all(up.join("o/x")).unwrap();
        let c = sys::cstring(up.join("wh").as_os_str().as_encoded_bytes()).unwrap();
        sys::mknodat(libc::AT_FDCWD, &c, libc::S_IFCHR, 0).unwrap();
        let fd = Root::open(&up).unwrap().open_dir(b"o", "").unwrap().unwrap();
        sys::fsetxattr(fd.as_raw_fd(), c"trusted.overlay.opaque", b"y").unwrap();
        let out = t.path().join("u.tar");
        let opts = PackOptions { compression: Compression::None, upper: true, ..Default::default() };
        pack(&up, &out, &opts).unwrap();
        assert_eq!(names(&out), ["o/", "o/.wh..wh..opq", "o/x/", ".wh.wh"]);
        // And back: overlay extraction restores the device and the xattr.
        let x = t.path().join("x");
        fs::create_dir(&x).unwrap();
        let o = ExtractOptions { whiteouts: Whiteouts::Overlay, ..Default::default() };
        extract(&out, &x, &o).unwrap();
        let st = sys::fstatat(Root::open(&x).unwrap().fd(), c"wh").unwrap();
        assert_eq!((st.st_mode & libc::S_IFMT, st.st_rdev), (libc::S_IFCHR, 0));
        let fd = Root::open(&x).unwrap().open_dir(b"o", "").unwrap().unwrap();
        assert_eq!(sys::fgetxattr(fd.as_raw_fd(), c"trusted.overlay.opaque").unwrap(), b"y");
    }
}
