//! Resolving member paths beneath a root directory without ever leaving it.
//!
//! Every path a layer names is first normalized *lexically* ([`normalize`]): empty and `.`
//! components dropped, a leading `/` stripped (as Docker does: `/etc/passwd` in a layer means
//! `<root>/etc/passwd`), `..` popped, and a `..` that would climb above the root refused.
//! The normalized path is then walked one component at a time from a descriptor of the root
//! with `openat(O_DIRECTORY|O_NOFOLLOW)`, so a symlink at any depth, whether it came with the
//! layer, an earlier member or a lower layer, is never followed: a member whose parent path
//! goes through a symlink is refused (stricter than Docker, which follows such links inside a
//! chroot). Only the last component is then acted upon, with `*at` calls that do not follow
//! it either.
//!
//! [`Root`] caches the descriptors of the last directory chain it opened (tar streams visit one
//! directory's members together), and every operation that removes or replaces a path tells it
//! to [`forget`](Root::forget) that path, so a cached descriptor never outlives the directory
//! entry it was opened through.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{show, Error, Result};
use crate::sys;

/// Lexically normalize a member path to `a/b/c` form (no leading/trailing `/`, no `.`/`..`).
/// `None` if it climbs above the root. The root itself is the empty path.
pub fn normalize(raw: &[u8]) -> Option<Vec<u8>> {
    // Fast path: already clean (the common case in real layers, bar a trailing '/').
    let trimmed = raw.strip_suffix(b"/").unwrap_or(raw);
    if !trimmed.is_empty()
        && trimmed[0] != b'/'
        && !trimmed.split(|&b| b == b'/').any(|c| c.is_empty() || c == b"." || c == b"..")
    {
        return Some(trimmed.to_vec());
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.is_empty() {
                    return None;
                }
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Some(out)
}

/// `("a/b", "c")` for `"a/b/c"`, `("", "c")` for `"c"`.
pub fn split_parent(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (&p[..0], p),
    }
}

pub fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() {
        return b.to_vec();
    }
    let mut v = Vec::with_capacity(a.len() + 1 + b.len());
    v.extend_from_slice(a);
    v.push(b'/');
    v.extend_from_slice(b);
    v
}

/// A root directory and a cache of the last directory chain opened beneath it.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// Normalized path of the deepest cached directory.
    chain_path: Vec<u8>,
    /// Open descriptors of each component of `chain_path`, with the end offset of that
    /// component in `chain_path`.
    chain: Vec<(usize, OwnedFd)>,
    /// When set, the file systems (`st_dev`) a walk may enter: a directory on any other one (a
    /// live container's `/proc`, `/sys`, cgroup or `/dev` mounts) is refused.
    devices: Option<Vec<u64>>,
}

/// Outcome of resolving a directory.
pub enum Lookup {
    Found(RawFd),
    Missing,
}

impl Root {
    pub fn open(path: &Path) -> Result<Self> {
        let c = sys::cstring(path.as_os_str().as_encoded_bytes())
            .ok_or_else(|| Error::InvalidArgument(format!("{}: NUL in path", path.display())))?;
        let fd = sys::openat(libc::AT_FDCWD, &c, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|e| Error::io(path, e))?;
        Ok(Self { fd, path: path.to_path_buf(), chain_path: Vec::new(), chain: Vec::new(), devices: None })
    }

    /// A root that is an already-open directory descriptor (resolved once, e.g. by
    /// [`crate::inroot::open_in_root`]); `path` only names it in error messages.
    /// `devices`, when given, are the only file systems the walks beneath it may enter.
    pub fn from_fd(fd: OwnedFd, path: &Path, devices: Option<Vec<u64>>) -> Self {
        Self { fd, path: path.to_path_buf(), chain_path: Vec::new(), chain: Vec::new(), devices }
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Host path of a normalized member path, for error messages.
    pub fn host(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.path.clone()
        } else {
            self.path.join(std::ffi::OsStr::from_bytes(rel))
        }
    }

    /// The directory `dir` (normalized), walked without following symlinks. Missing components
    /// are created (mode 0755) when `create`; otherwise `Missing` is returned.
    pub fn dir(&mut self, dir: &[u8], create: bool, member: &str) -> Result<Lookup> {
        let mut keep = 0;
        for (end, _) in &self.chain {
            let end = *end;
            if dir.len() >= end
                && dir[..end] == self.chain_path[..end]
                && (dir.len() == end || dir[end] == b'/')
            {
                keep += 1;
            } else {
                break;
            }
        }
        self.chain.truncate(keep);
        self.chain_path.clear();
        self.chain_path.extend_from_slice(dir);
        let mut start = self.chain.last().map_or(0, |(end, _)| end + 1);
        while start < dir.len() {
            let end = dir[start..].iter().position(|&b| b == b'/').map_or(dir.len(), |i| start + i);
            let parent = self.chain.last().map_or(self.fd.as_raw_fd(), |(_, fd)| fd.as_raw_fd());
            match open_component(self, parent, &dir[..end], &dir[start..end], create, member)? {
                Some(fd) => self.chain.push((end, fd)),
                None => return Ok(Lookup::Missing),
            }
            start = end + 1;
        }
        Ok(Lookup::Found(self.chain.last().map_or(self.fd.as_raw_fd(), |(_, fd)| fd.as_raw_fd())))
    }

    /// Like [`dir`](Self::dir) but creating missing components, so never `Missing`.
    pub fn dir_create(&mut self, dir: &[u8], member: &str) -> Result<RawFd> {
        match self.dir(dir, true, member)? {
            Lookup::Found(fd) => Ok(fd),
            Lookup::Missing => unreachable!("created"),
        }
    }

    /// A fresh descriptor of directory `dir` (no cache involved); `None` if missing.
    pub fn open_dir(&self, dir: &[u8], member: &str) -> Result<Option<OwnedFd>> {
        let mut cur: Option<OwnedFd> = None;
        if dir.is_empty() {
            let fd = sys::openat(self.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(|e| Error::io(&self.path, e))?;
            return Ok(Some(fd));
        }
        let mut start = 0;
        while start < dir.len() {
            let end = dir[start..].iter().position(|&b| b == b'/').map_or(dir.len(), |i| start + i);
            let parent = cur.as_ref().map_or(self.fd(), |f| f.as_raw_fd());
            match open_component(self, parent, &dir[..end], &dir[start..end], false, member)? {
                Some(fd) => cur = Some(fd),
                None => return Ok(None),
            }
            start = end + 1;
        }
        Ok(cur)
    }

    /// `path` (normalized) was removed or replaced: drop cached descriptors at or below it.
    pub fn forget(&mut self, path: &[u8]) {
        if path.is_empty() {
            self.chain.clear();
            return;
        }
        if let Some(i) = self
            .chain
            .iter()
            .position(|(end, _)| *end == path.len() && self.chain_path[..*end] == *path)
        {
            self.chain.truncate(i);
        }
    }
}

/// Open `name` in `parent` as a directory, refusing symlinks; create it if asked.
fn open_component(
    root: &Root,
    parent: RawFd,
    sofar: &[u8],
    name: &[u8],
    create: bool,
    member: &str,
) -> Result<Option<OwnedFd>> {
    let c = name_cstr(name, member)?;
    loop {
        match sys::open_dir_nofollow(parent, &c) {
            Ok(fd) => {
                if let Some(devices) = &root.devices {
                    let st = sys::fstat(fd.as_raw_fd()).map_err(|e| Error::io(root.host(sofar), e))?;
                    if !devices.contains(&(st.st_dev as u64)) {
                        return Err(Error::hostile(
                            member,
                            format!("\"{}\" is another file system than the container's files", show(sofar)),
                        ));
                    }
                }
                return Ok(Some(fd));
            }
            Err(e) if sys::is_errno(&e, libc::ENOENT) => {
                if !create {
                    return Ok(None);
                }
                match sys::mkdirat(parent, &c, 0o755) {
                    Ok(()) => {
                        let fd = sys::open_dir_nofollow(parent, &c).map_err(|e| Error::io(root.host(sofar), e))?;
                        // Same mode whatever the umask, as Docker creates missing parents.
                        sys::fchmod(fd.as_raw_fd(), 0o755).map_err(|e| Error::io(root.host(sofar), e))?;
                        return Ok(Some(fd));
                    }
                    Err(e) if sys::is_errno(&e, libc::EEXIST) => continue,
                    Err(e) => return Err(Error::io(root.host(sofar), e)),
                }
            }
            Err(e) if sys::is_errno(&e, libc::ELOOP) || sys::is_errno(&e, libc::ENOTDIR) => {
                let st = sys::fstatat(parent, &c).map_err(|e| Error::io(root.host(sofar), e))?;
                return Err(if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    Error::hostile(member, format!("path goes through a symlink (\"{}\")", show(sofar)))
                } else {
                    Error::corrupt(Some(member), format!("\"{}\" is not a directory", show(sofar)))
                });
            }
            Err(e) => return Err(Error::io(root.host(sofar), e)),
        }
    }
}

pub fn name_cstr(name: &[u8], member: &str) -> Result<CString> {
    sys::cstring(name).ok_or_else(|| Error::corrupt(Some(member), "NUL byte in name"))
}

/// Remove `name` in `dir`, recursively if it is a directory, never following symlinks.
/// A missing name is not an error.
pub fn remove_all_at(dir: RawFd, name: &std::ffi::CStr) -> io::Result<()> {
    match sys::unlinkat(dir, name, 0) {
        Ok(()) => return Ok(()),
        Err(e) if sys::is_errno(&e, libc::ENOENT) => return Ok(()),
        Err(e) if sys::is_errno(&e, libc::EISDIR) || sys::is_errno(&e, libc::EPERM) => {}
        Err(e) => return Err(e),
    }
    let fd = match sys::open_dir_nofollow(dir, name) {
        Ok(fd) => fd,
        Err(e) if sys::is_errno(&e, libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_children(&fd, |_| false)?;
    drop(fd);
    match sys::unlinkat(dir, name, libc::AT_REMOVEDIR) {
        Err(e) if sys::is_errno(&e, libc::ENOENT) => Ok(()),
        r => r,
    }
}

/// Remove every child of an open directory except those for which `keep` is true.
pub fn remove_children(dir: &OwnedFd, keep: impl Fn(&[u8]) -> bool) -> io::Result<()> {
    for (child, _) in sys::read_dir(dir)? {
        if !keep(child.to_bytes()) {
            remove_all_at(dir.as_raw_fd(), &child)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizing() {
        let n = |s: &str| normalize(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(n("a/b/c").as_deref(), Some("a/b/c"));
        assert_eq!(n("./a//b/./c/").as_deref(), Some("a/b/c"));
        assert_eq!(n("/etc/passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(n("a/../b").as_deref(), Some("b"));
        assert_eq!(n("./").as_deref(), Some(""));
        assert_eq!(n("/").as_deref(), Some(""));
        assert_eq!(n("../x"), None);
        assert_eq!(n("a/../../x"), None);
        assert_eq!(n(".."), None);
        assert_eq!(n("/../x"), None);
    }

    #[test]
    fn walks_refuse_symlinks() {
        let t = crate::testutil::TempDir::new();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink("/tmp", t.path().join("a/l")).unwrap();
        std::fs::write(t.path().join("a/f"), b"").unwrap();
        let mut r = Root::open(t.path()).unwrap();
        assert!(matches!(r.dir(b"a/b", false, "m").unwrap(), Lookup::Found(_)));
        assert!(matches!(r.dir(b"a/zz", false, "m").unwrap(), Lookup::Missing));
        let e = r.dir(b"a/l/x", true, "m").err().unwrap();
        assert!(matches!(e, Error::Hostile { .. }), "{e}");
        let e = r.dir(b"a/f/x", true, "m").err().unwrap();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        // The cache must notice a directory replaced by a symlink.
        r.dir_create(b"a/b/c", "m").unwrap();
        let fd = r.dir(b"a", false, "m").ok().map(|l| match l {
            Lookup::Found(fd) => fd,
            Lookup::Missing => panic!(),
        });
        remove_all_at(fd.unwrap(), c"b").unwrap();
        r.forget(b"a/b");
        std::os::unix::fs::symlink("/tmp", t.path().join("a/b")).unwrap();
        let e = r.dir(b"a/b/c", true, "m").err().unwrap();
        assert!(matches!(e, Error::Hostile { .. }), "{e}");
        assert!(r.open_dir(b"a/b", "m").is_err());
    }
}
