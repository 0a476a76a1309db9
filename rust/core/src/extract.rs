//! Applying a layer tar to a directory.
//!
//! One streaming pass ([`LayerStream`]) reads, hashes, decompresses and hashes again; the tar
//! [`Reader`] decodes members; this module turns each member into file system changes beneath
//! the destination, through [`Root`], which never follows a symlink. Regular file contents go to
//! a [`Writers`] pool; everything that has to happen in archive order (creating names, links,
//! whiteouts) happens on the calling thread. Directory modes and mtimes are applied last,
//! children before parents, once every write has landed.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::beneath::{self, name_cstr, normalize, split_parent, Lookup, Root};
use crate::compress::{LayerStream, StreamInfo};
use crate::error::{Error, Result};
use crate::sys;
use crate::tar::{Kind, Member, Reader};
use crate::writers::{FileMeta, Writers};

/// What to do with OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    /// Write them the way overlayfs reads them: `.wh.NAME` becomes a 0/0 character device
    /// `NAME`, and `D/.wh..wh..opq` sets `trusted.overlay.opaque=y` on `D`. For layers that
    /// will be stacked as overlay lower directories.
    Overlay,
    /// Apply them to what is already in the destination (flattening layers onto one tree):
    /// `.wh.NAME` deletes `NAME`; `D/.wh..wh..opq` deletes every child of `D` that this same
    /// layer did not write, wherever the marker sits in the archive.
    Apply,
}

impl Whiteouts {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "overlay" => Ok(Whiteouts::Overlay),
            "apply" => Ok(Whiteouts::Apply),
            _ => Err(Error::InvalidArgument(format!(
                "unknown whiteout mode {s:?} (expected \"overlay\" or \"apply\")"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ExtractOptions<'a> {
    pub offset: u64,
    pub length: Option<u64>,
    pub whiteouts: Whiteouts,
    /// Also write the raw (compressed) bytes to this file.
    pub tee: Option<&'a Path>,
    /// Writer threads for file contents (0: pick from the CPU count).
    pub threads: usize,
}

impl Default for ExtractOptions<'_> {
    fn default() -> Self {
        Self { offset: 0, length: None, whiteouts: Whiteouts::Overlay, tee: None, threads: 0 }
    }
}

/// What a pass over a layer found: digests and sizes of the stream, and its members.
#[derive(Clone, Debug, Default)]
pub struct LayerInfo {
    pub stream: StreamInfo,
    /// Archive members (extended headers not counted).
    pub entries: u64,
    /// Sum of regular file sizes.
    pub content_size: u64,
}

/// Extract the layer in `src` (gzip, zstd or plain tar; a byte range of the file) into the
/// existing directory `dest`.
///
/// On error, `dest` may hold part of the layer (the caller removes it); nothing outside it has
/// been created, changed or removed, and no thread started here is still running.
pub fn extract(src: &Path, dest: &Path, opts: &ExtractOptions<'_>) -> Result<LayerInfo> {
    let root = Root::open(dest)?;
    let stream = LayerStream::open(src, opts.offset, opts.length, opts.tee)?;
    let codec = match stream.compression().name() {
        "none" => "tar",
        n => n,
    };
    let mut reader = Reader::new(stream, codec);
    let writers = Writers::new(opts.threads);
    let mut x = Extractor::new(root, opts.whiteouts, writers);
    let r = x.run(&mut reader);
    // Always wait for the writers, even on error, so no thread outlives this call.
    let w = x.writers.finish();
    r?;
    w?;
    x.finish_dirs()?;
    let stream = reader.into_inner().finish()?;
    Ok(LayerInfo { stream, entries: x.entries, content_size: x.content_size })
}

struct DirMeta {
    mode: u32,
    mtime: i64,
    nsec: u32,
}

struct Extractor {
    root: Root,
    whiteouts: Whiteouts,
    writers: Writers,
    chown: bool,
    /// Directory modes and times, applied at the end.
    dirs: HashMap<Vec<u8>, DirMeta>,
    /// Apply mode: paths this layer wrote, and every ancestor of one.
    written: HashSet<Vec<u8>>,
    ancestors: HashSet<Vec<u8>>,
    entries: u64,
    content_size: u64,
}

const OPAQUE: &CStr = c"trusted.overlay.opaque";

/// xattrs a layer may not set: overlayfs reads `*.overlay.*` as instructions (redirects,
/// metacopy origins, opacity), and those must only come from whiteouts we convert ourselves.
fn xattr_allowed(name: &[u8]) -> bool {
    !(name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay."))
}

impl Extractor {
    fn new(root: Root, whiteouts: Whiteouts, writers: Writers) -> Self {
        Self {
            root,
            whiteouts,
            writers,
            chown: sys::geteuid() == 0,
            dirs: HashMap::new(),
            written: HashSet::new(),
            ancestors: HashSet::new(),
            entries: 0,
            content_size: 0,
        }
    }

    fn run<R: std::io::BufRead>(&mut self, reader: &mut Reader<R>) -> Result<()> {
        while let Some(m) = reader.next()? {
            self.entries += 1;
            self.member(&m, reader)?;
            // Surface a writer failure early instead of at the end of a long stream.
            self.writers.check()?;
        }
        Ok(())
    }

    fn member<R: std::io::BufRead>(&mut self, m: &Member, reader: &mut Reader<R>) -> Result<()> {
        let name = m.name();
        let path = normalize(&m.path).ok_or_else(|| Error::hostile(&name, "path escapes the layer root"))?;
        let (parent, base) = split_parent(&path);
        if let Some(target) = base.strip_prefix(b".wh.") {
            return self.whiteout(m, &name, parent, target);
        }
        if path.is_empty() {
            if m.kind != Kind::Dir {
                return Err(Error::hostile(&name, "only a directory may replace the layer root"));
            }
            let fd = self.root.open_dir(b"", &name)?.expect("root exists");
            self.dir_attrs(&fd, m, &path)?;
            self.dirs.insert(path, DirMeta { mode: m.mode, mtime: m.mtime, nsec: m.mtime_nsec });
            return Ok(());
        }
        if self.whiteouts == Whiteouts::Apply {
            self.mark_written(&path);
        }
        let c = name_cstr(base, &name)?;
        match m.kind {
            Kind::Dir => {
                let pfd = self.root.dir_create(parent, &name)?;
                let fd = self.mkdir(pfd, &c, &path, &name)?;
                self.dir_attrs(&fd, m, &path)?;
                self.dirs.insert(path, DirMeta { mode: m.mode, mtime: m.mtime, nsec: m.mtime_nsec });
            }
            Kind::File => {
                let pfd = self.root.dir_create(parent, &name)?;
                let fd = self.create(pfd, &path, &name, |pfd| {
                    sys::openat(pfd, &c, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW, 0o600)
                })?;
                self.content_size += m.size;
                let meta = FileMeta {
                    uid: self.chown.then_some((m.uid as u32, m.gid as u32)),
                    mode: m.mode,
                    mtime: m.mtime,
                    nsec: m.mtime_nsec,
                    xattrs: m.xattrs.iter().filter(|(k, _)| xattr_allowed(k)).cloned().collect(),
                };
                let host = self.root.host(&path);
                self.writers.file(fd, meta, host, m.size, reader)?;
            }
            Kind::Symlink => {
                let target = name_cstr(&m.link, &name)?;
                let pfd = self.root.dir_create(parent, &name)?;
                self.create(pfd, &path, &name, |pfd| sys::symlinkat(&target, pfd, &c))?;
                self.node_attrs(pfd, &c, m, &path, false)?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let fmt = match m.kind {
                    Kind::Char => libc::S_IFCHR,
                    Kind::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = sys::makedev(m.devmajor, m.devminor);
                let pfd = self.root.dir_create(parent, &name)?;
                self.create(pfd, &path, &name, |pfd| sys::mknodat(pfd, &c, fmt | 0o600, dev))?;
                self.node_attrs(pfd, &c, m, &path, true)?;
            }
            Kind::Link => self.hardlink(m, &name, &path, parent, &c)?,
        }
        Ok(())
    }

    /// Create a non-directory at `path` with `make`, replacing whatever is there (as tar does).
    fn create<T>(
        &mut self,
        pfd: RawFd,
        path: &[u8],
        member: &str,
        mut make: impl FnMut(RawFd) -> std::io::Result<T>,
    ) -> Result<T> {
        match make(pfd) {
            Ok(t) => return Ok(t),
            Err(e) if sys::is_errno(&e, libc::EEXIST) => {}
            Err(e) => return Err(Error::io(self.root.host(path), e)),
        }
        let (_, base) = split_parent(path);
        let c = name_cstr(base, member)?;
        self.root.forget(path);
        self.dirs.remove(path);
        beneath::remove_all_at(pfd, &c).map_err(|e| Error::io(self.root.host(path), e))?;
        make(pfd).map_err(|e| Error::io(self.root.host(path), e))
    }

    /// Make a directory or keep the one there (merging, as tar does); returns an open fd.
    fn mkdir(&mut self, pfd: RawFd, c: &CStr, path: &[u8], member: &str) -> Result<OwnedFd> {
        match sys::mkdirat(pfd, c, 0o700) {
            Ok(()) => {}
            Err(e) if sys::is_errno(&e, libc::EEXIST) => {
                let st = sys::fstatat(pfd, c).map_err(|e| Error::io(self.root.host(path), e))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    self.root.forget(path);
                    beneath::remove_all_at(pfd, c).map_err(|e| Error::io(self.root.host(path), e))?;
                    sys::mkdirat(pfd, c, 0o700).map_err(|e| Error::io(self.root.host(path), e))?;
                }
            }
            Err(e) => return Err(Error::io(self.root.host(path), e)),
        }
        let _ = member;
        sys::open_dir_nofollow(pfd, c).map_err(|e| Error::io(self.root.host(path), e))
    }

    fn dir_attrs(&mut self, fd: &OwnedFd, m: &Member, path: &[u8]) -> Result<()> {
        if self.chown {
            sys::fchown(fd.as_raw_fd(), m.uid as u32, m.gid as u32).map_err(|e| Error::io(self.root.host(path), e))?;
        }
        for (k, v) in &m.xattrs {
            if xattr_allowed(k) {
                let k = name_cstr(k, &m.name())?;
                ignore_unsupported(sys::fsetxattr(fd.as_raw_fd(), &k, v)).map_err(|e| Error::io(self.root.host(path), e))?;
            }
        }
        Ok(())
    }

    /// Owner, mode (not for symlinks), xattrs and times of a symlink or device node.
    fn node_attrs(&mut self, pfd: RawFd, c: &CStr, m: &Member, path: &[u8], chmod: bool) -> Result<()> {
        let io = |e| Error::io(self.root.host(path), e);
        if self.chown {
            sys::lchownat(pfd, c, m.uid as u32, m.gid as u32).map_err(io)?;
        }
        if chmod {
            sys::fchmodat(pfd, c, m.mode).map_err(io)?;
        }
        if m.xattrs.iter().any(|(k, _)| xattr_allowed(k)) {
            let p = sys::fd_path(pfd, c.to_bytes());
            for (k, v) in &m.xattrs {
                if xattr_allowed(k) {
                    let k = name_cstr(k, &m.name())?;
                    ignore_unsupported(sys::lsetxattr(&p, &k, v)).map_err(io)?;
                }
            }
        }
        sys::lutimensat(pfd, c, m.mtime, m.mtime_nsec).map_err(io)?;
        Ok(())
    }

    fn hardlink(&mut self, m: &Member, name: &str, path: &[u8], parent: &[u8], c: &CStr) -> Result<()> {
        let target = normalize(&m.link).ok_or_else(|| Error::hostile(name, "hardlink target escapes the layer root"))?;
        if target.is_empty() || target == path {
            return Err(Error::corrupt(Some(name), "hardlink to itself or to the layer root"));
        }
        let (tparent, tbase) = split_parent(&target);
        let tc = name_cstr(tbase, name)?;
        let not_found = || Error::corrupt(Some(name), format!("hardlink target \"{}\" not found", crate::error::show(&m.link)));
        let tdir = match self.root.open_dir(tparent, name) {
            Ok(Some(fd)) => fd,
            Ok(None) => return Err(not_found()),
            Err(Error::Hostile { .. }) => {
                return Err(Error::hostile(name, "hardlink target is reached through a symlink"))
            }
            Err(e) => return Err(e),
        };
        match sys::fstatat(tdir.as_raw_fd(), &tc) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                return Err(Error::corrupt(Some(name), "hardlink target is a directory"))
            }
            Ok(_) => {}
            Err(e) if sys::is_errno(&e, libc::ENOENT) => return Err(not_found()),
            Err(e) => return Err(Error::io(self.root.host(&target), e)),
        }
        let pfd = self.root.dir_create(parent, name)?;
        self.create(pfd, path, name, |pfd| sys::linkat(tdir.as_raw_fd(), &tc, pfd, c))?;
        Ok(())
    }

    fn mark_written(&mut self, path: &[u8]) {
        self.written.insert(path.to_vec());
        let mut p = path;
        while let Some(i) = p.iter().rposition(|&b| b == b'/') {
            p = &p[..i];
            if !self.ancestors.insert(p.to_vec()) {
                break;
            }
        }
    }

    fn whiteout(&mut self, m: &Member, name: &str, parent: &[u8], target: &[u8]) -> Result<()> {
        let opaque = target == b".wh..opq";
        if !opaque && target.starts_with(b".wh.") {
            // Other `.wh..wh.*` names are aufs bookkeeping; Docker skips them too.
            return Ok(());
        }
        if !opaque && (target.is_empty() || target == b"." || target == b"..") {
            return Err(Error::hostile(name, "whiteout names no file in its directory"));
        }
        match (self.whiteouts, opaque) {
            (Whiteouts::Overlay, true) => {
                let fd = self.root.dir_create(parent, name)?;
                sys::fsetxattr(fd, OPAQUE, b"y").map_err(|e| Error::io(self.root.host(parent), e))?;
            }
            (Whiteouts::Overlay, false) => {
                let pfd = self.root.dir_create(parent, name)?;
                let path = beneath::join(parent, target);
                let c = name_cstr(target, name)?;
                self.create(pfd, &path, name, |pfd| sys::mknodat(pfd, &c, libc::S_IFCHR, sys::makedev(0, 0)))?;
                if self.chown {
                    sys::lchownat(pfd, &c, m.uid as u32, m.gid as u32).map_err(|e| Error::io(self.root.host(&path), e))?;
                }
            }
            (Whiteouts::Apply, true) => {
                let Some(fd) = self.root.open_dir(parent, name)? else { return Ok(()) };
                for (child, _) in sys::read_dir(&fd).map_err(|e| Error::io(self.root.host(parent), e))? {
                    let p = beneath::join(parent, child.to_bytes());
                    self.prune(fd.as_raw_fd(), &child, &p)?;
                }
            }
            (Whiteouts::Apply, false) => {
                let Some(fd) = self.root.open_dir(parent, name)? else { return Ok(()) };
                let c = name_cstr(target, name)?;
                let p = beneath::join(parent, target);
                self.prune(fd.as_raw_fd(), &c, &p)?;
            }
        }
        Ok(())
    }

    /// Apply mode: remove `path` (`name` in `dir`) unless this layer wrote it; for a directory
    /// this layer wrote into, prune its children instead.
    fn prune(&mut self, dir: RawFd, name: &CStr, path: &[u8]) -> Result<()> {
        let host = self.root.host(path);
        let io = |e| Error::io(&host, e);
        let written = self.written.contains(path);
        let has_written_children = self.ancestors.contains(path);
        if !written && !has_written_children {
            self.root.forget(path);
            self.dirs.remove(path);
            return beneath::remove_all_at(dir, name).map_err(io);
        }
        if !has_written_children {
            return Ok(());
        }
        let fd = match sys::open_dir_nofollow(dir, name) {
            Ok(fd) => fd,
            Err(e) if sys::is_errno(&e, libc::ENOTDIR) || sys::is_errno(&e, libc::ELOOP) => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        for (child, _) in sys::read_dir(&fd).map_err(io)? {
            let p = beneath::join(path, child.to_bytes());
            self.prune(fd.as_raw_fd(), &child, &p)?;
        }
        Ok(())
    }

    /// Directory modes and times, deepest first, after all content is in place.
    fn finish_dirs(&mut self) -> Result<()> {
        let mut dirs: Vec<_> = std::mem::take(&mut self.dirs).into_iter().collect();
        dirs.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        for (path, meta) in dirs {
            let fd = match self.root.open_dir(&path, "") {
                Ok(Some(fd)) => fd,
                // Removed or replaced by a later member.
                Ok(None) | Err(Error::Hostile { .. } | Error::Corrupt { .. }) => continue,
                Err(e) => return Err(e),
            };
            let io = |e| Error::io(self.root.host(&path), e);
            sys::fchmod(fd.as_raw_fd(), meta.mode).map_err(io)?;
            sys::futimens(fd.as_raw_fd(), meta.mtime, meta.nsec).map_err(io)?;
        }
        Ok(())
    }
}

/// Like Docker, a file system that cannot hold an xattr (ENOTSUP), or a namespace we may not
/// write (EPERM: `trusted.*` without CAP_SYS_ADMIN), is not a reason to fail the layer.
pub(crate) fn ignore_unsupported(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if sys::is_errno(&e, libc::ENOTSUP) || sys::is_errno(&e, libc::EPERM) => Ok(()),
        r => r,
    }
}

#[allow(dead_code)]
fn lookup_found(l: Lookup) -> Option<RawFd> {
    match l {
        Lookup::Found(fd) => Some(fd),
        Lookup::Missing => None,
    }
}
