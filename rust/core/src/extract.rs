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
    /// Record the tar stream's tar-split (see [`crate::split`]) in this file.
    pub split: Option<&'a Path>,
    /// Writer threads for file contents: 0 writes on the calling thread, `usize::MAX` picks
    /// from the CPU count and the destination's file system
    /// ([`default_threads`](crate::writers::default_threads)).
    pub threads: usize,
}

impl Default for ExtractOptions<'_> {
    fn default() -> Self {
        Self { offset: 0, length: None, whiteouts: Whiteouts::Overlay, tee: None, split: None, threads: usize::MAX }
    }
}

/// What a pass over a layer found: digests and sizes of the stream, and its members.
#[derive(Clone, Debug, Default)]
pub struct LayerInfo {
    pub stream: StreamInfo,
    /// Archive members (extended headers not counted).
    pub entries: u64,
    /// Docker's layer size: regular file sizes plus symlink target lengths (what `lstat`
    /// reports; hardlinks count once).
    pub content_size: u64,
    /// The tar-split record asked for: its digest and size, or `None` when a member replaced
    /// or removed what an earlier one made, so that the tree cannot give the stream back (the
    /// file is then removed).
    pub split: Option<(String, u64)>,
}

/// Extract the layer in `src` (gzip, zstd or plain tar; a byte range of the file) into the
/// existing directory `dest`.
///
/// On error, `dest` may hold part of the layer (the caller removes it); nothing outside it has
/// been created, changed or removed, and no thread started here is still running.
pub fn extract(src: &Path, dest: &Path, opts: &ExtractOptions<'_>) -> Result<LayerInfo> {
    extract_root(src, Root::open(dest)?, opts)
}

/// [`extract`] into the directory open as `dest` (`name` only names it in errors): nothing is
/// resolved by path above it, so a directory that was swapped for a symlink after `dest` was
/// opened (a live container's doing) cannot redirect a single write. With `devices`, no
/// directory on another file system than those is entered (see [`Root::from_fd`]).
pub fn extract_at(
    src: &Path,
    dest: OwnedFd,
    name: &Path,
    devices: Option<Vec<u64>>,
    opts: &ExtractOptions<'_>,
) -> Result<LayerInfo> {
    let st = sys::fstat(dest.as_raw_fd()).map_err(|e| Error::io(name, e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(Error::io(name, std::io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    extract_root(src, Root::from_fd(dest, name, devices), opts)
}

fn extract_root(src: &Path, root: Root, opts: &ExtractOptions<'_>) -> Result<LayerInfo> {
    let stream = LayerStream::open(src, opts.offset, opts.length, opts.tee)?;
    let codec = match stream.compression().name() {
        "none" => "tar",
        n => n,
    };
    let mut reader = Reader::new(stream, codec);
    if let Some(p) = opts.split {
        reader.record(crate::split::Recorder::create(p)?);
    }
    let threads = if opts.threads == usize::MAX { crate::writers::default_threads(root.fd()) } else { opts.threads };
    let writers = Writers::new(threads)?;
    let mut x = Extractor::new(root, opts.whiteouts, writers)?;
    let r = x.run(&mut reader);
    // Always wait for the writers, even on error, so no thread outlives this call.
    let w = x.writers.finish();
    r?;
    w?;
    x.finish_dirs()?;
    let record = reader.finish_record()?;
    let stream = reader.into_inner().finish()?;
    let split = match (record, opts.split) {
        (Some(rec), Some(_)) if !x.replaced => Some(rec.finish()?),
        (Some(rec), Some(p)) => {
            drop(rec);
            std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
            None
        }
        _ => None,
    };
    Ok(LayerInfo { stream, entries: x.entries, content_size: x.content_size, split })
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
    /// Whether to chown at all (only root may).
    chown: bool,
    /// Our uid/gid, the owner a new file gets when `fresh`.
    ids: (u32, u32),
    /// The destination was empty and its root is not setgid: every directory a member lands
    /// in was made by us (mode 0700 until the end), so a new file is owned by `ids` and
    /// created with the mode asked for (less the umask). Lets the common case skip a chown
    /// and a chmod per file.
    fresh: bool,
    /// The process umask, when known.
    umask: Option<u32>,
    /// Directory modes and times, applied at the end.
    dirs: HashMap<Vec<u8>, DirMeta>,
    /// Apply mode: paths this layer wrote, and every ancestor of one.
    written: HashSet<Vec<u8>>,
    ancestors: HashSet<Vec<u8>>,
    entries: u64,
    content_size: u64,
    /// A member replaced or removed something this layer had made.
    replaced: bool,
}

/// xattrs a layer may not set: overlayfs reads `*.overlay.*` as instructions (redirects,
/// metacopy origins, opacity), and those must only come from whiteouts we convert ourselves.
fn xattr_allowed(name: &[u8]) -> bool {
    !(name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay."))
}

impl Extractor {
    fn new(root: Root, whiteouts: Whiteouts, writers: Writers) -> Result<Self> {
        let fresh = {
            let fd = root.open_dir(b"", "")?.expect("root");
            let st = sys::fstat(fd.as_raw_fd()).map_err(|e| Error::io(root.path(), e))?;
            st.st_mode & libc::S_ISGID == 0
                && sys::read_dir(&fd).map_err(|e| Error::io(root.path(), e))?.is_empty()
        };
        Ok(Self {
            root,
            whiteouts,
            writers,
            chown: sys::geteuid() == 0,
            ids: (sys::geteuid(), sys::getegid()),
            fresh,
            umask: sys::umask(),
            dirs: HashMap::new(),
            written: HashSet::new(),
            ancestors: HashSet::new(),
            entries: 0,
            content_size: 0,
            replaced: false,
        })
    }

    /// Owner to set on a new node, `None` when it already has it.
    fn owner(&self, m: &Member) -> Option<(u32, u32)> {
        let want = (m.uid as u32, m.gid as u32);
        (self.chown && !(self.fresh && want == self.ids)).then_some(want)
    }

    fn run<R: std::io::BufRead>(&mut self, reader: &mut Reader<R>) -> Result<()> {
        while let Some(m) = reader.next_member()? {
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
                self.mkdir(pfd, &c, &path)?;
                if m.xattrs.iter().any(|(k, _)| xattr_allowed(k)) {
                    let fd = sys::open_dir_nofollow(pfd, &c).map_err(|e| Error::io(self.root.host(&path), e))?;
                    self.dir_attrs(&fd, m, &path)?;
                } else if let Some((u, g)) = self.owner(m) {
                    sys::lchownat(pfd, &c, u, g).map_err(|e| Error::io(self.root.host(&path), e))?;
                }
                self.dirs.insert(path, DirMeta { mode: m.mode, mtime: m.mtime, nsec: m.mtime_nsec });
            }
            Kind::File => {
                let pfd = self.root.dir_create(parent, &name)?;
                let uid = self.owner(m);
                // Create with the final mode when nothing (chown, umask, special bits) would
                // change it afterwards.
                let direct = uid.is_none() && m.mode & 0o7000 == 0 && self.umask.is_some_and(|u| m.mode & u == 0);
                let cmode = if direct { m.mode } else { 0o600 };
                let fd = self.create(pfd, &path, &name, |pfd| {
                    sys::openat(pfd, &c, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW, cmode)
                })?;
                self.content_size += m.size;
                let meta = FileMeta {
                    uid,
                    mode: (!direct).then_some(m.mode),
                    mtime: m.mtime,
                    nsec: m.mtime_nsec,
                    xattrs: m.xattrs.iter().filter(|(k, _)| xattr_allowed(k)).cloned().collect(),
                };
                let host = self.root.host(&path);
                reader.data_is_file(&path)?;
                self.writers.file(fd, meta, host, m.size, reader)?;
            }
            Kind::Symlink => {
                let target = name_cstr(&m.link, &name)?;
                // Docker's layer size counts a symlink as its target's length (lstat size).
                self.content_size += m.link.len() as u64;
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
        self.replaced = true;
        self.root.forget(path);
        self.dirs.remove(path);
        beneath::remove_all_at(pfd, &c).map_err(|e| Error::io(self.root.host(path), e))?;
        make(pfd).map_err(|e| Error::io(self.root.host(path), e))
    }

    /// Make a directory or keep the one there (merging, as tar does).
    fn mkdir(&mut self, pfd: RawFd, c: &CStr, path: &[u8]) -> Result<()> {
        match sys::mkdirat(pfd, c, 0o700) {
            Ok(()) => {}
            Err(e) if sys::is_errno(&e, libc::EEXIST) => {
                let st = sys::fstatat(pfd, c).map_err(|e| Error::io(self.root.host(path), e))?;
                if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    self.replaced = true;
                    self.root.forget(path);
                    beneath::remove_all_at(pfd, c).map_err(|e| Error::io(self.root.host(path), e))?;
                    sys::mkdirat(pfd, c, 0o700).map_err(|e| Error::io(self.root.host(path), e))?;
                }
            }
            Err(e) => return Err(Error::io(self.root.host(path), e)),
        }
        Ok(())
    }

    fn dir_attrs(&mut self, fd: &OwnedFd, m: &Member, path: &[u8]) -> Result<()> {
        if self.owner(m).is_some() {
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
        if let Some((u, g)) = self.owner(m) {
            sys::lchownat(pfd, c, u, g).map_err(io)?;
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
                sys::fsetxattr(fd, sys::overlay_opaque_xattr(), b"y").map_err(|e| Error::io(self.root.host(parent), e))?;
            }
            (Whiteouts::Overlay, false) => {
                let pfd = self.root.dir_create(parent, name)?;
                let path = beneath::join(parent, target);
                let c = name_cstr(target, name)?;
                self.create(pfd, &path, name, |pfd| sys::mknodat(pfd, &c, libc::S_IFCHR, sys::makedev(0, 0)))?;
                if self.chown {
                    sys::lchownat(pfd, &c, m.uid as u32, m.gid as u32).map_err(|e| Error::io(self.root.host(&path), e))?;
                }
                // The whiteout keeps its member's mtime, so the same layer always extracts to
                // the same tree (as a plain tar extraction of the .wh. file would).
                sys::lutimensat(pfd, &c, m.mtime, m.mtime_nsec).map_err(|e| Error::io(self.root.host(&path), e))?;
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
            self.replaced = true;
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
            let (parent, base) = split_parent(&path);
            let host = self.root.host(&path);
            let io = |e| Error::io(&host, e);
            if path.is_empty() {
                sys::fchmod(self.root.fd(), meta.mode).map_err(io)?;
                sys::futimens(self.root.fd(), meta.mtime, meta.nsec).map_err(io)?;
                continue;
            }
            let pfd = match self.root.dir(parent, false, "") {
                Ok(Lookup::Found(fd)) => fd,
                // Removed or replaced by a later member.
                Ok(Lookup::Missing) | Err(Error::Hostile { .. } | Error::Corrupt { .. }) => continue,
                Err(e) => return Err(e),
            };
            let c = name_cstr(base, "")?;
            // Only a directory: fchmodat follows symlinks, so never call it on anything else.
            match sys::fstatat(pfd, &c) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
                Ok(_) => continue,
                Err(e) if sys::is_errno(&e, libc::ENOENT) => continue,
                Err(e) => return Err(io(e)),
            }
            sys::fchmodat(pfd, &c, meta.mode).map_err(io)?;
            sys::lutimensat(pfd, &c, meta.mtime, meta.nsec).map_err(io)?;
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


#[cfg(test)]
mod tests {
    use super::*;
    use crate::need_root;
    use crate::tar::Writer;
    use crate::testutil::TempDir;
    use std::collections::BTreeMap;
    use std::io::Write as _;
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;

    fn m(path: &str, kind: Kind) -> Member {
        Member::new(path.as_bytes().to_vec(), kind)
    }

    fn file(path: &str) -> (Member, Vec<u8>) {
        let data = format!("content of {path}\n").into_bytes();
        let mut x = m(path, Kind::File);
        x.size = data.len() as u64;
        (x, data)
    }

    fn link(path: &str, kind: Kind, target: &str) -> (Member, Vec<u8>) {
        let mut x = m(path, kind);
        x.link = target.as_bytes().to_vec();
        (x, Vec::new())
    }

    fn dir(path: &str) -> (Member, Vec<u8>) {
        (m(path, Kind::Dir), Vec::new())
    }

    fn tar(members: &[(Member, Vec<u8>)]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        for (x, data) in members {
            w.append(x, Some(&mut &data[..])).unwrap();
        }
        w.finish().unwrap()
    }

    /// A scratch area: `box/dest` to extract into, `outside/` with a sentinel file and dir.
    struct Scene {
        t: TempDir,
    }

    impl Scene {
        fn new() -> Self {
            let t = TempDir::new();
            std::fs::create_dir_all(t.path().join("box/dest")).unwrap();
            std::fs::create_dir_all(t.path().join("outside/dir")).unwrap();
            std::fs::write(t.path().join("outside/passwd"), b"root:x:0:0\n").unwrap();
            std::fs::write(t.path().join("outside/dir/keep"), b"keep").unwrap();
            Scene { t }
        }

        fn dest(&self) -> PathBuf {
            self.t.path().join("box/dest")
        }

        fn outside(&self) -> String {
            self.t.path().join("outside").display().to_string()
        }

        /// Everything outside `box/dest`: path -> (mode, size, mtime, content).
        fn world(&self) -> BTreeMap<PathBuf, (u32, u64, i64, i64, Vec<u8>)> {
            let mut out = BTreeMap::new();
            let mut stack = vec![self.t.path().to_path_buf()];
            while let Some(p) = stack.pop() {
                let md = std::fs::symlink_metadata(&p).unwrap();
                let content = if md.is_file() { std::fs::read(&p).unwrap() } else { Vec::new() };
                out.insert(p.clone(), (md.mode(), md.size(), md.mtime(), md.mtime_nsec(), content));
                if md.is_dir() && p != self.dest() {
                    for e in std::fs::read_dir(&p).unwrap() {
                        stack.push(e.unwrap().path());
                    }
                }
            }
            out.remove(&self.dest());
            out
        }

        fn run_bytes(&self, bytes: &[u8], w: Whiteouts) -> Result<LayerInfo> {
            let src = self.t.path().join("layer");
            std::fs::File::create(&src).unwrap().write_all(bytes).unwrap();
            let before = self.world();
            let opts = ExtractOptions { whiteouts: w, ..Default::default() };
            let r = extract(&src, &self.dest(), &opts);
            let mut after = self.world();
            // The layer file itself and box/ (dest's parent) are ours to look at, not touch.
            assert_eq!(before.len(), after.len(), "something appeared or vanished outside dest: {r:?}");
            for (k, v) in &before {
                assert_eq!(after.remove(k).as_ref(), Some(v), "{} changed: {r:?}", k.display());
            }
            r
        }

        fn run(&self, members: &[(Member, Vec<u8>)], w: Whiteouts) -> Result<LayerInfo> {
            self.run_bytes(&tar(members), w)
        }
    }

    fn hostile(r: Result<LayerInfo>, member: &str) {
        match r {
            Err(e @ Error::Hostile { .. }) => {
                assert_eq!(e.member(), Some(member), "{e}");
                assert!(e.to_string().starts_with(&format!("layer member \"{member}\": ")), "{e}");
            }
            other => panic!("expected a hostile-member error for {member:?}, got {other:?}"),
        }
    }

    fn corrupt(r: Result<LayerInfo>) -> Error {
        match r {
            Err(e @ Error::Corrupt { .. }) => e,
            other => panic!("expected a corrupt-layer error, got {other:?}"),
        }
    }

    #[test]
    fn extract_at_stays_beneath_its_descriptor() {
        let s = Scene::new();
        let src = s.t.path().join("layer");
        std::fs::File::create(&src).unwrap().write_all(&tar(&[dir("a/"), file("a/f"), file("g")])).unwrap();
        let c = sys::cstring(s.dest().as_os_str().as_encoded_bytes()).unwrap();
        let fd = sys::openat(libc::AT_FDCWD, &c, libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
        // The destination is swapped for a symlink to the outside once opened: the writes
        // follow the descriptor, never the name.
        std::fs::rename(s.dest(), s.t.path().join("box/moved")).unwrap();
        std::os::unix::fs::symlink(s.outside(), s.dest()).unwrap();
        let opts = ExtractOptions { whiteouts: Whiteouts::Apply, ..Default::default() };
        extract_at(&src, fd, &s.dest(), None, &opts).unwrap();
        assert_eq!(std::fs::read(s.t.path().join("box/moved/a/f")).unwrap(), b"content of a/f\n");
        assert!(!s.t.path().join("outside/g").exists() && !s.t.path().join("outside/a").exists());
        // A directory on a file system not allowed is not entered (nor one made there).
        std::fs::remove_file(s.dest()).unwrap();
        std::fs::create_dir(s.dest()).unwrap();
        let dev = std::fs::metadata(s.dest()).unwrap().dev();
        for (devices, ok) in [(vec![dev], true), (vec![dev ^ 1], false)] {
            let fd = sys::openat(libc::AT_FDCWD, &c, libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
            let r = extract_at(&src, fd, &s.dest(), Some(devices), &opts);
            match ok {
                true => assert!(r.is_ok(), "{r:?}"),
                false => hostile(r, "a/f"),
            }
        }
    }

    #[test]
    fn dotdot_is_refused() {
        for name in ["../x", "a/../../x", "..", "./../x", "a/b/../../../x"] {
            let s = Scene::new();
            hostile(s.run(&[dir("a/"), file(name)], Whiteouts::Overlay), name);
        }
    }

    #[test]
    fn dotdot_inside_is_resolved_lexically() {
        let s = Scene::new();
        s.run(&[dir("a/"), file("a/../b")], Whiteouts::Overlay).unwrap();
        assert!(s.dest().join("b").is_file());
    }

    #[test]
    fn absolute_paths_are_stripped() {
        let s = Scene::new();
        let abs = format!("{}/passwd", s.outside());
        s.run(&[file(&abs), file("/etc/x")], Whiteouts::Overlay).unwrap();
        assert!(s.dest().join(abs.trim_start_matches('/')).is_file());
        assert!(s.dest().join("etc/x").is_file());
    }

    #[test]
    fn no_writing_through_symlinks() {
        let out = Scene::new().outside();
        type Case<'a> = (Vec<(Member, Vec<u8>)>, &'a str);
        let cases: Vec<Case> = vec![
            // A symlink from this layer, then a file through it.
            (vec![link("link", Kind::Symlink, &out), file("link/evil")], "link/evil"),
            (vec![link("link", Kind::Symlink, "/"), file("link/etc/evil")], "link/etc/evil"),
            // A relative symlink climbing out, at depth.
            (vec![dir("a/"), link("a/up", Kind::Symlink, "../../.."), file("a/up/x")], "a/up/x"),
            // Chains of symlinks to "..".
            (vec![link("l1", Kind::Symlink, ".."), link("l1/l2", Kind::Symlink, "..")], "l1/l2"),
            // A directory replaced by a symlink between members.
            (vec![dir("d/"), file("d/ok"), link("d", Kind::Symlink, &out), file("d/evil")], "d/evil"),
            // A directory entry through a symlink.
            (vec![link("s", Kind::Symlink, &out), dir("s/sub/")], "s/sub/"),
            // Every other member kind through a symlink.
            (vec![link("s", Kind::Symlink, &out), link("s/l", Kind::Symlink, "x")], "s/l"),
            (vec![link("s", Kind::Symlink, &out), (m("s/fifo", Kind::Fifo), vec![])], "s/fifo"),
            (vec![file("f"), link("s", Kind::Symlink, &out), link("s/h", Kind::Link, "f")], "s/h"),
        ];
        for (members, bad) in cases {
            let s = Scene::new();
            let members: Vec<_> = members
                .into_iter()
                .map(|(mut x, d)| {
                    x.link = String::from_utf8(x.link).unwrap().replace(&out, &s.outside()).into_bytes();
                    (x, d)
                })
                .collect();
            hostile(s.run(&members, Whiteouts::Overlay), bad);
        }
    }

    #[test]
    fn final_symlinks_are_replaced_not_followed() {
        let s = Scene::new();
        let out = s.outside();
        let mut d = m("d/", Kind::Dir);
        d.mode = 0o700;
        let (mut f, data) = file("f");
        f.mode = 0o600;
        s.run(
            &[
                link("f", Kind::Symlink, &format!("{out}/passwd")),
                (f, data),
                link("d", Kind::Symlink, &format!("{out}/dir")),
                (d, vec![]),
                link("s", Kind::Symlink, &format!("{out}/passwd")),
                (m("s", Kind::Fifo), vec![]),
            ],
            Whiteouts::Overlay,
        )
        .unwrap();
        assert!(s.dest().join("f").symlink_metadata().unwrap().is_file());
        assert!(s.dest().join("d").symlink_metadata().unwrap().is_dir());
        // A symlink pointing out is fine to create; it is only never followed.
        s.run(&[link("out", Kind::Symlink, &out)], Whiteouts::Overlay).unwrap();
        assert_eq!(std::fs::read_link(s.dest().join("out")).unwrap(), PathBuf::from(&out));
    }

    #[test]
    fn hardlinks_stay_inside() {
        let s = Scene::new();
        hostile(s.run(&[link("h", Kind::Link, "../../outside/passwd")], Whiteouts::Overlay), "h");
        let s = Scene::new();
        let out = s.outside();
        hostile(
            s.run(&[link("s", Kind::Symlink, &out), link("h", Kind::Link, "s/passwd")], Whiteouts::Overlay),
            "h",
        );
        // Absolute targets are stripped like names: they mean the file in the layer.
        let s = Scene::new();
        let r = s.run(&[link("h", Kind::Link, &format!("{}/passwd", s.outside()))], Whiteouts::Overlay);
        corrupt(r);
        let s = Scene::new();
        s.run(&[file("etc/passwd"), link("h", Kind::Link, "/etc/passwd")], Whiteouts::Overlay).unwrap();
        let a = std::fs::metadata(s.dest().join("h")).unwrap();
        let b = std::fs::metadata(s.dest().join("etc/passwd")).unwrap();
        assert_eq!(a.ino(), b.ino());
        // A hardlink to a symlink links the symlink itself, never its target.
        let s = Scene::new();
        let out = s.outside();
        s.run(
            &[link("s", Kind::Symlink, &format!("{out}/passwd")), link("h", Kind::Link, "s"), file("h")],
            Whiteouts::Overlay,
        )
        .unwrap();
        assert!(s.dest().join("s").symlink_metadata().unwrap().file_type().is_symlink());
        // Missing targets and directories are damaged input.
        let s = Scene::new();
        corrupt(s.run(&[link("h", Kind::Link, "nope")], Whiteouts::Overlay));
        let s = Scene::new();
        corrupt(s.run(&[dir("d/"), link("h", Kind::Link, "d")], Whiteouts::Overlay));
    }

    #[test]
    fn hostile_whiteouts() {
        for w in [Whiteouts::Overlay, Whiteouts::Apply] {
            for name in ["../.wh.x", "a/../../.wh.passwd"] {
                let s = Scene::new();
                hostile(s.run(&[file(name)], w), name);
            }
            for name in [".wh...", "a/.wh..", ".wh."] {
                let s = Scene::new();
                hostile(s.run(&[dir("a/"), file(name)], w), name);
            }
            for name in ["s/.wh.passwd", "s/.wh..wh..opq", "s/dir/.wh.keep"] {
                let s = Scene::new();
                let out = s.outside();
                hostile(s.run(&[link("s", Kind::Symlink, &out), file(name)], w), name);
            }
        }
    }

    #[test]
    fn apply_whiteout_of_a_symlink_removes_only_the_link() {
        let s = Scene::new();
        let out = s.outside();
        s.run(&[link("s", Kind::Symlink, &format!("{out}/dir"))], Whiteouts::Apply).unwrap();
        s.run(&[file(".wh.s")], Whiteouts::Apply).unwrap();
        assert!(!s.dest().join("s").exists());
    }

    #[test]
    fn root_cannot_be_replaced() {
        for (mut x, _) in [link(".", Kind::Symlink, "/"), file("./"), link("/", Kind::Link, "x")] {
            x.size = 0;
            let s = Scene::new();
            let name = x.name();
            let r = s.run(&[(x, vec![])], Whiteouts::Overlay);
            assert!(r.is_err(), "{name}");
        }
        // A root directory entry sets the root's mode.
        let s = Scene::new();
        let mut d = m("./", Kind::Dir);
        d.mode = 0o751;
        s.run(&[(d, vec![])], Whiteouts::Overlay).unwrap();
        assert_eq!(std::fs::metadata(s.dest()).unwrap().mode() & 0o7777, 0o751);
    }

    #[test]
    fn damaged_streams() {
        // Bad header checksum.
        let s = Scene::new();
        let mut bytes = tar(&[file("a"), file("b")]);
        bytes[1024 + 3] ^= 1; // the second member's name ("b" -> "c" area), header 2 at 1024
        let e = corrupt(s.run_bytes(&bytes, Whiteouts::Overlay));
        assert!(e.to_string().contains("checksum"), "{e}");
        // A member larger than the stream.
        let s = Scene::new();
        let mut big = m("big", Kind::File);
        big.size = 10_000;
        let mut w = Writer::new(Vec::new());
        w.raw_header(&big, b'0', b"big", b"", b"").unwrap();
        w.raw(&[7u8; 3000]).unwrap();
        let bytes = w.get_ref().clone();
        let e = corrupt(s.run_bytes(&bytes, Whiteouts::Overlay));
        assert_eq!(e.member(), Some("big"));
        assert!(e.to_string().contains("truncated"), "{e}");
        // A stream cut inside a header.
        let s = Scene::new();
        let bytes = tar(&[file("a")]);
        corrupt(s.run_bytes(&bytes[..700], Whiteouts::Overlay));
        // Truncated and garbled gzip.
        let bytes = tar(&[file("a"), file("b"), file("c")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&bytes).unwrap();
        let gz = gz.finish().unwrap();
        let s = Scene::new();
        corrupt(s.run_bytes(&gz[..gz.len() / 2], Whiteouts::Overlay));
        let s = Scene::new();
        let mut bad = gz.clone();
        bad[20] ^= 0xff;
        bad[21] ^= 0xff;
        corrupt(s.run_bytes(&bad, Whiteouts::Overlay));
        // Truncated zstd.
        let z = zstd::encode_all(&bytes[..], 3).unwrap();
        let s = Scene::new();
        corrupt(s.run_bytes(&z[..z.len() - 5], Whiteouts::Overlay));
        // A GNU sparse member is refused clearly.
        let s = Scene::new();
        let mut w = Writer::new(Vec::new());
        w.raw_header(&m("sp", Kind::File), b'S', b"sp", b"", b"").unwrap();
        let bytes = w.finish().unwrap();
        match s.run_bytes(&bytes, Whiteouts::Overlay) {
            Err(e @ Error::Unsupported { .. }) => assert_eq!(e.member(), Some("sp")),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn pax_and_long_names_are_checked_too() {
        let s = Scene::new();
        let long = format!("{}/../../../x", "a/".repeat(60).trim_end_matches('/'));
        let dots = "../".repeat(61) + "x";
        assert!(long.len() > 100 && dots.len() > 100);
        hostile(s.run(&[file(&dots)], Whiteouts::Overlay), &dots);
        let s = Scene::new();
        s.run(&[file(&long)], Whiteouts::Overlay).unwrap();
    }

    #[test]
    fn overlay_whiteouts() {
        need_root!("mknod of whiteout devices and trusted.* xattrs");
        let s = Scene::new();
        s.run(&[dir("d/"), file("d/.wh..wh..opq"), file("d/new"), file(".wh.gone"), file("d/.wh.x")], Whiteouts::Overlay)
            .unwrap();
        let st = std::fs::symlink_metadata(s.dest().join("gone")).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(st.file_type().is_char_device() && st.rdev() == 0);
        assert!(std::fs::symlink_metadata(s.dest().join("d/x")).unwrap().file_type().is_char_device());
        let fd = Root::open(&s.dest()).unwrap().open_dir(b"d", "").unwrap().unwrap();
        assert_eq!(sys::fgetxattr(fd.as_raw_fd(), sys::overlay_opaque_xattr()).unwrap(), b"y");
        assert!(!s.dest().join("d/.wh..wh..opq").exists());
        // A layer's own trusted.overlay.* xattrs are dropped: only whiteouts make them.
        let s = Scene::new();
        let mut d = m("e/", Kind::Dir);
        d.xattrs.push((b"trusted.overlay.opaque".to_vec(), b"y".to_vec()));
        d.xattrs.push((b"trusted.overlay.redirect".to_vec(), b"/x".to_vec()));
        d.xattrs.push((b"user.fine".to_vec(), b"1".to_vec()));
        s.run(&[(d, vec![])], Whiteouts::Overlay).unwrap();
        let fd = Root::open(&s.dest()).unwrap().open_dir(b"e", "").unwrap().unwrap();
        assert!(sys::fgetxattr(fd.as_raw_fd(), sys::overlay_opaque_xattr()).is_err());
        assert_eq!(sys::fgetxattr(fd.as_raw_fd(), c"user.fine").unwrap(), b"1");
    }

    #[test]
    fn apply_whiteouts() {
        let s = Scene::new();
        s.run(
            &[dir("keep/"), file("keep/a"), dir("gone/"), file("gone/x"), dir("o/"), file("o/old"), dir("o/olddir/"), file("o/olddir/f"), file("f")],
            Whiteouts::Apply,
        )
        .unwrap();
        // The opaque marker comes *after* this layer's own file in o/: it must survive.
        s.run(
            &[file(".wh.gone"), file("o/mine"), dir("o/olddir/"), file("o/olddir/new"), file("o/.wh..wh..opq"), file(".wh.f"), file(".wh.nothing")],
            Whiteouts::Apply,
        )
        .unwrap();
        let d = s.dest();
        assert!(!d.join("gone").exists() && !d.join("f").exists());
        assert!(d.join("keep/a").exists());
        assert!(d.join("o/mine").exists() && !d.join("o/old").exists());
        assert!(d.join("o/olddir/new").exists() && !d.join("o/olddir/f").exists());
        assert!(!d.join(".wh.gone").exists() && !d.join("o/.wh..wh..opq").exists());
    }

    #[test]
    fn metadata_is_kept() {
        need_root!("chown and device nodes");
        let s = Scene::new();
        let (mut f, data) = file("f");
        f.mode = 0o4755;
        f.uid = 1234;
        f.gid = 5678;
        f.mtime = 1_000_000;
        f.mtime_nsec = 5;
        let mut c = m("null", Kind::Char);
        c.devmajor = 1;
        c.devminor = 3;
        c.mode = 0o666;
        let mut l = m("l", Kind::Symlink);
        l.link = b"f".to_vec();
        l.uid = 7;
        l.mtime = 123;
        s.run(&[(f, data), (c, vec![]), (l, vec![])], Whiteouts::Overlay).unwrap();
        let md = std::fs::metadata(s.dest().join("f")).unwrap();
        assert_eq!((md.mode() & 0o7777, md.uid(), md.gid(), md.mtime(), md.mtime_nsec()), (0o4755, 1234, 5678, 1_000_000, 5));
        let md = std::fs::symlink_metadata(s.dest().join("null")).unwrap();
        assert_eq!((md.rdev(), md.mode() & 0o7777), (sys::makedev(1, 3), 0o666));
        let md = std::fs::symlink_metadata(s.dest().join("l")).unwrap();
        assert_eq!((md.uid(), md.mtime()), (7, 123));
    }

    /// mode, uid, gid, mtime, mtime_nsec, nlink, content digest.
    type Node = (u32, u32, u32, i64, i64, u64, Vec<u8>);

    /// Everything about a tree, for comparing two extractions.
    fn tree(root: &Path) -> BTreeMap<PathBuf, Node> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(p) = stack.pop() {
            let md = std::fs::symlink_metadata(&p).unwrap();
            let content = if md.is_file() {
                std::fs::read(&p).unwrap()
            } else if md.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()
            } else {
                Vec::new()
            };
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let mut h = crate::digest::Hasher::new();
            h.update(&content);
            let content = h.finish().0.into_bytes();
            if rel.as_os_str().is_empty() {
                // The root's own times are the temp dir's.
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
                continue;
            }
            out.insert(rel, (md.mode(), md.uid(), md.gid(), md.mtime(), md.mtime_nsec(), md.nlink(), content));
            if md.is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
            }
        }
        out
    }

    #[test]
    fn writer_pool_matches_inline() {
        let mut members = vec![dir("d/")];
        for i in 0..300 {
            let (mut f, _) = file(&format!("d/f{i}"));
            // Mostly small files (written inline even with a pool), every 25th one big enough
            // to travel to a writer whole.
            let len = if i % 25 == 0 { 70_000 + i * 1000 } else { i * 37 % 5000 };
            let data: Vec<u8> = (0..len).map(|j| (j * 7 + i) as u8).collect();
            f.size = data.len() as u64;
            f.mode = [0o644, 0o755, 0o4755, 0o600, 0o444][i % 5];
            f.mtime = 1_000_000 + i as i64;
            f.mtime_nsec = i as u32;
            f.uid = (i % 3) as u64;
            f.gid = (i % 4) as u64;
            if i % 50 == 0 {
                f.xattrs.push((b"user.i".to_vec(), i.to_string().into_bytes()));
            }
            members.push((f, data));
        }
        // Multi-chunk files (the pool splits at 1 MiB), hardlinked while in flight, and one
        // replaced by a later member.
        for (name, len) in [("big", (3 << 20) + 12345), ("exact", 2 << 20), ("gone", (1 << 20) + 1)] {
            let (mut f, _) = file(name);
            let data: Vec<u8> = (0..len).map(|j: usize| (j % 251) as u8).collect();
            f.size = len as u64;
            f.mtime = 77;
            members.push((f, data));
        }
        members.push(link("big-link", Kind::Link, "big"));
        members.push(link("d/f1-link", Kind::Link, "d/f1"));
        members.push(file("gone"));
        let bytes = tar(&members);
        let mut trees = Vec::new();
        for threads in [0, 1, 3] {
            let t = TempDir::new();
            let src = t.path().join("l.tar");
            std::fs::write(&src, &bytes).unwrap();
            let dest = t.path().join("x");
            std::fs::create_dir(&dest).unwrap();
            let opts = ExtractOptions { threads, ..Default::default() };
            let info = extract(&src, &dest, &opts).unwrap();
            assert_eq!(info.entries, members.len() as u64);
            trees.push(tree(&dest));
        }
        assert_eq!(trees[0], trees[1]);
        assert_eq!(trees[0], trees[2]);
        let big = &trees[0][&PathBuf::from("big")];
        assert_eq!((big.3, big.5), (77, 2));
    }

    #[test]
    fn writer_pool_errors_stop_cleanly() {
        let (mut f, _) = file("big");
        let data = vec![1u8; 5 << 20];
        f.size = data.len() as u64;
        let bytes = tar(&[file("a"), (f, data)]);
        let cut = &bytes[..3 << 20];
        let t = TempDir::new();
        let src = t.path().join("l.tar");
        std::fs::write(&src, cut).unwrap();
        let dest = t.path().join("x");
        std::fs::create_dir(&dest).unwrap();
        let threads_before = thread_count();
        let opts = ExtractOptions { threads: 3, ..Default::default() };
        let e = extract(&src, &dest, &opts).unwrap_err();
        assert_eq!(e.member(), Some("big"), "{e}");
        // Every thread we started has been joined. Other tests run their own pipelines
        // alongside, so the count may be up for a moment; a leaked writer would keep it up.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while thread_count() > threads_before + 1 {
            assert!(std::time::Instant::now() < deadline, "a thread outlived extract()");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn thread_count() -> usize {
        std::fs::read_dir("/proc/self/task").unwrap().count()
    }
}
