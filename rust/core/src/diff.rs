//! Docker-style change lists: [`diff`] compares two trees, [`changes`] reads an overlayfs
//! upper directory against its lower directories. Both return `(kind, "/path")` sorted
//! bytewise by path, like `docker diff`.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::beneath::{self, Root};
use crate::error::{Error, Result};
use crate::pack::{read_xattrs_path, ChangeKind};
use crate::sys;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute form, `/a/b`.
    pub path: Vec<u8>,
}

fn abs(rel: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(rel.len() + 1);
    v.push(b'/');
    v.extend_from_slice(rel);
    v
}

fn finish(mut v: Vec<Change>) -> Vec<Change> {
    v.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    v
}

struct Tree<'a> {
    root: &'a Path,
}

impl Tree<'_> {
    fn io(&self, rel: &[u8], e: std::io::Error) -> Error {
        use std::os::unix::ffi::OsStrExt;
        Error::io(self.root.join(std::ffi::OsStr::from_bytes(rel)), e)
    }

    fn list(&self, dir: &OwnedFd, rel: &[u8]) -> Result<Vec<std::ffi::CString>> {
        let mut v: Vec<_> = sys::read_dir(dir).map_err(|e| self.io(rel, e))?.into_iter().map(|(n, _)| n).collect();
        v.sort_unstable();
        Ok(v)
    }

    /// xattrs of `name` in `dir`, by a path the kernel resolves through the directory fd
    /// (no open of the file itself: works for devices, fifos, symlinks and mode-000 files).
    fn xattrs(&self, dir: RawFd, name: &CStr, rel: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        read_xattrs_path(&sys::fd_path(dir, name.to_bytes())).map_err(|e| self.io(rel, e))
    }
}

/// Compare trees `old` and `new`.
///
/// A path only in `new` is `A` (with everything below it), only in `old` is `D` (its children
/// are not listed), in both but different (type, mode, owner, size for non-directories, mtime
/// to the nanosecond, symlink target, device number, xattrs) is `C`; a directory whose
/// children changed is `C` as well.
pub fn diff(old: &Path, new: &Path) -> Result<Vec<Change>> {
    let ofd = Root::open(old)?.open_dir(b"", "")?.expect("root");
    let nfd = Root::open(new)?.open_dir(b"", "")?.expect("root");
    let mut out = Vec::new();
    diff_dir(&Tree { root: old }, &Tree { root: new }, &ofd, &nfd, b"", &mut out)?;
    Ok(finish(out))
}

fn diff_dir(ot: &Tree, nt: &Tree, ofd: &OwnedFd, nfd: &OwnedFd, rel: &[u8], out: &mut Vec<Change>) -> Result<bool> {
    let olist = ot.list(ofd, rel)?;
    let nlist = nt.list(nfd, rel)?;
    let (mut i, mut j) = (0, 0);
    let mut changed = false;
    while i < olist.len() || j < nlist.len() {
        let ord = match (olist.get(i), nlist.get(j)) {
            (Some(a), Some(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                out.push(Change { kind: ChangeKind::Delete, path: abs(&beneath::join(rel, olist[i].to_bytes())) });
                changed = true;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let name = &nlist[j];
                let p = beneath::join(rel, name.to_bytes());
                added(nt, nfd.as_raw_fd(), name, &p, out)?;
                changed = true;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let name = &olist[i];
                let p = beneath::join(rel, name.to_bytes());
                let ost = sys::fstatat(ofd.as_raw_fd(), name).map_err(|e| ot.io(&p, e))?;
                let nst = sys::fstatat(nfd.as_raw_fd(), name).map_err(|e| nt.io(&p, e))?;
                let odir = ost.st_mode & libc::S_IFMT == libc::S_IFDIR;
                let ndir = nst.st_mode & libc::S_IFMT == libc::S_IFDIR;
                let mut c = ost.st_mode != nst.st_mode
                    || ost.st_uid != nst.st_uid
                    || ost.st_gid != nst.st_gid
                    || ost.st_rdev != nst.st_rdev
                    || ost.st_mtime != nst.st_mtime
                    || ost.st_mtime_nsec != nst.st_mtime_nsec
                    || (!ndir && ost.st_size != nst.st_size);
                if !c && nst.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    c = sys::readlinkat(ofd.as_raw_fd(), name).map_err(|e| ot.io(&p, e))?
                        != sys::readlinkat(nfd.as_raw_fd(), name).map_err(|e| nt.io(&p, e))?;
                }
                if !c {
                    c = ot.xattrs(ofd.as_raw_fd(), name, &p)? != nt.xattrs(nfd.as_raw_fd(), name, &p)?;
                }
                let mut sub = false;
                if ndir {
                    let n2 = sys::open_dir_nofollow(nfd.as_raw_fd(), name).map_err(|e| nt.io(&p, e))?;
                    if odir {
                        let o2 = sys::open_dir_nofollow(ofd.as_raw_fd(), name).map_err(|e| ot.io(&p, e))?;
                        sub = diff_dir(ot, nt, &o2, &n2, &p, out)?;
                    } else {
                        // A file became a directory: everything in it is new.
                        for child in nt.list(&n2, &p)? {
                            let cp = beneath::join(&p, child.to_bytes());
                            added(nt, n2.as_raw_fd(), &child, &cp, out)?;
                        }
                    }
                }
                if c || sub {
                    out.push(Change { kind: ChangeKind::Change, path: abs(&p) });
                    changed = true;
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(changed)
}

/// `name` in `dir` is new: report it and, for a directory, everything below it.
fn added(t: &Tree, dir: RawFd, name: &CStr, rel: &[u8], out: &mut Vec<Change>) -> Result<()> {
    out.push(Change { kind: ChangeKind::Add, path: abs(rel) });
    match sys::open_dir_nofollow(dir, name) {
        Ok(fd) => {
            for child in t.list(&fd, rel)? {
                let p = beneath::join(rel, child.to_bytes());
                added(t, fd.as_raw_fd(), &child, &p, out)?;
            }
            Ok(())
        }
        Err(e) if sys::is_errno(&e, libc::ENOTDIR) || sys::is_errno(&e, libc::ELOOP) => Ok(()),
        Err(e) => Err(t.io(rel, e)),
    }
}

fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

fn is_opaque(fd: RawFd) -> bool {
    [c"trusted.overlay.opaque", c"user.overlay.opaque"]
        .iter()
        .any(|n| sys::fgetxattr(fd, n).is_ok_and(|v| v == b"y"))
}

/// Changes recorded in an overlayfs upper directory, given its lower directories (topmost
/// first).
///
/// A whiteout (0/0 character device) is `D`; a path present in some lower directory is `C`,
/// otherwise `A`; an opaque directory is `C` (`A` if no lower has it) and everything below it
/// `A`. Lookups in the lower directories honour their own whiteouts and opaque directories
/// (an opaque directory in lower *n* hides the same directory in lowers below *n*).
pub fn changes(upper: &Path, lowers: &[impl AsRef<Path>]) -> Result<Vec<Change>> {
    let ufd = Root::open(upper)?.open_dir(b"", "")?.expect("root");
    let mut lfds = Vec::with_capacity(lowers.len());
    for l in lowers {
        lfds.push(Some(Root::open(l.as_ref())?.open_dir(b"", "")?.expect("root")));
    }
    let mut out = Vec::new();
    changes_dir(&Tree { root: upper }, &ufd, &lfds, b"", &mut out)?;
    Ok(finish(out))
}

fn changes_dir(t: &Tree, dir: &OwnedFd, lowers: &[Option<OwnedFd>], rel: &[u8], out: &mut Vec<Change>) -> Result<()> {
    for name in t.list(dir, rel)? {
        let p = beneath::join(rel, name.to_bytes());
        let st = sys::fstatat(dir.as_raw_fd(), &name).map_err(|e| t.io(&p, e))?;
        if is_whiteout(&st) {
            out.push(Change { kind: ChangeKind::Delete, path: abs(&p) });
            continue;
        }
        // Is it in a lower, and the lower directories to look in below it.
        let mut present = false;
        let mut sub: Vec<Option<OwnedFd>> = Vec::with_capacity(lowers.len());
        let mut hidden = false;
        for l in lowers {
            let Some(l) = l.as_ref().filter(|_| !hidden) else {
                sub.push(None);
                continue;
            };
            match sys::fstatat(l.as_raw_fd(), &name) {
                Ok(lst) if is_whiteout(&lst) => {
                    hidden = true;
                    sub.push(None);
                }
                Ok(lst) => {
                    present = true;
                    if lst.st_mode & libc::S_IFMT == libc::S_IFDIR {
                        let fd = sys::open_dir_nofollow(l.as_raw_fd(), &name).ok();
                        if fd.as_ref().is_some_and(|f| is_opaque(f.as_raw_fd())) {
                            hidden = true;
                        }
                        sub.push(fd);
                    } else {
                        // A non-directory hides whatever the lowers below have here.
                        hidden = true;
                        sub.push(None);
                    }
                }
                Err(_) => sub.push(None),
            }
        }
        let isdir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let kind = if present { ChangeKind::Change } else { ChangeKind::Add };
        out.push(Change { kind, path: abs(&p) });
        if isdir {
            let fd = sys::open_dir_nofollow(dir.as_raw_fd(), &name).map_err(|e| t.io(&p, e))?;
            if !present {
                changes_dir(t, &fd, &[], &p, out)?;
            } else if is_opaque(fd.as_raw_fd()) {
                for child in t.list(&fd, &p)? {
                    let cp = beneath::join(&p, child.to_bytes());
                    let cst = sys::fstatat(fd.as_raw_fd(), &child).map_err(|e| t.io(&cp, e))?;
                    if is_whiteout(&cst) {
                        continue;
                    }
                    added(t, fd.as_raw_fd(), &child, &cp, out)?;
                }
            } else {
                changes_dir(t, &fd, &sub, &p, out)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn show(v: &[Change]) -> Vec<String> {
        v.iter().map(|c| format!("{} {}", c.kind.letter(), String::from_utf8_lossy(&c.path))).collect()
    }

    #[test]
    fn tree_diff() {
        let t = TempDir::new();
        let (old, new) = (t.path().join("old"), t.path().join("new"));
        for r in [&old, &new] {
            fs::create_dir_all(r.join("same/deep")).unwrap();
            fs::create_dir_all(r.join("gone/sub")).unwrap();
            fs::create_dir_all(r.join("mod")).unwrap();
            fs::write(r.join("same/deep/f"), b"x").unwrap();
            fs::write(r.join("mod/f"), b"x").unwrap();
            fs::write(r.join("mod/chmod"), b"x").unwrap();
            symlink("a", r.join("link")).unwrap();
            fs::write(r.join("became-dir"), b"x").unwrap();
        }
        fs::remove_dir_all(new.join("gone")).unwrap();
        fs::write(new.join("mod/f"), b"xy").unwrap();
        fs::set_permissions(new.join("mod/chmod"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        fs::remove_file(new.join("link")).unwrap();
        symlink("b", new.join("link")).unwrap();
        fs::create_dir_all(new.join("added/sub")).unwrap();
        fs::write(new.join("added/sub/f"), b"x").unwrap();
        fs::remove_file(new.join("became-dir")).unwrap();
        fs::create_dir(new.join("became-dir")).unwrap();
        fs::write(new.join("became-dir/in"), b"x").unwrap();
        // Same content and mtime everywhere else: copy times from old to new.
        for p in ["same", "same/deep", "same/deep/f", "mod"] {
            let md = fs::metadata(old.join(p)).unwrap();
            let f = fs::File::open(new.join(p)).unwrap();
            f.set_times(fs::FileTimes::new().set_modified(md.modified().unwrap())).unwrap();
        }
        let mut got = show(&diff(&old, &new).unwrap());
        got.retain(|s| s != "C /mod"); // (its mtime moved when we rewrote mod/f on some fs)
        assert_eq!(
            got,
            [
                "A /added",
                "A /added/sub",
                "A /added/sub/f",
                "C /became-dir",
                "A /became-dir/in",
                "D /gone",
                "C /link",
                "C /mod/chmod",
                "C /mod/f",
            ]
        );
        assert!(diff(&old, &old).unwrap().is_empty());
    }

    #[test]
    fn overlay_changes() {
        crate::need_root!("whiteout devices and trusted.* xattrs");
        let t = TempDir::new();
        let (upper, low1, low2) = (t.path().join("u"), t.path().join("l1"), t.path().join("l2"));
        fs::create_dir_all(low2.join("etc")).unwrap();
        fs::write(low2.join("etc/passwd"), b"x").unwrap();
        fs::write(low2.join("etc/hidden"), b"x").unwrap();
        fs::create_dir_all(low2.join("opq/old")).unwrap();
        fs::create_dir_all(&low1).unwrap();
        sys::mknodat(libc::AT_FDCWD, &sys::cstring(low1.join("etc-gone").as_os_str().as_encoded_bytes()).unwrap(), libc::S_IFCHR, 0).unwrap();
        fs::create_dir_all(low1.join("etc")).unwrap();
        sys::mknodat(libc::AT_FDCWD, &sys::cstring(low1.join("etc/hidden").as_os_str().as_encoded_bytes()).unwrap(), libc::S_IFCHR, 0).unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/passwd"), b"y").unwrap();
        fs::write(upper.join("etc/hidden"), b"y").unwrap();
        fs::write(upper.join("etc/new"), b"y").unwrap();
        sys::mknodat(libc::AT_FDCWD, &sys::cstring(upper.join("etc/del").as_os_str().as_encoded_bytes()).unwrap(), libc::S_IFCHR, 0).unwrap();
        fs::create_dir_all(upper.join("opq/n")).unwrap();
        let fd = Root::open(&upper).unwrap().open_dir(b"opq", "").unwrap().unwrap();
        sys::fsetxattr(fd.as_raw_fd(), c"trusted.overlay.opaque", b"y").unwrap();
        let got = show(&changes(&upper, &[&low1, &low2]).unwrap());
        assert_eq!(
            got,
            ["C /etc", "D /etc/del", "A /etc/hidden", "A /etc/new", "C /etc/passwd", "C /opq", "A /opq/n"]
        );
    }
}
