//! The syscall seam. Rootfs and namespace logic talks to the kernel only through [`Syscall`],
//! so it can be unit-tested without root against [`Recorder`], which records every call and
//! answers file-type questions from a small in-memory model. The real implementation is
//! [`Linux`]. The seam is passed explicitly (`&dyn Syscall`), never chosen by `cfg!(test)`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What kind of file a path names (without following a final symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Missing,
    Dir,
    File,
    Symlink,
    Other,
}

pub trait Syscall {
    fn mount(&self, source: Option<&str>, target: &Path, fstype: Option<&str>, flags: u64, data: Option<&str>) -> Result<()>;
    fn umount2(&self, target: &Path, flags: i32) -> Result<()>;
    /// `pivot_root(".", ".")` after `chdir(new_root)`; the old root stays stacked under the new one.
    fn pivot_root(&self, new_root: &Path) -> Result<()>;
    fn chdir(&self, path: &Path) -> Result<()>;
    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()>;
    /// Create an empty file if nothing is there (a bind-mount target).
    fn touch(&self, path: &Path) -> Result<()>;
    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> Result<()>;
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()>;
    fn symlink(&self, target: &str, link: &Path) -> Result<()>;
    fn readlink(&self, path: &Path) -> Result<PathBuf>;
    fn kind(&self, path: &Path) -> Kind;
    /// The mount flags (`MS_*` subset: RDONLY, NOSUID, NODEV, NOEXEC, atime flags) of the mount holding `path`.
    fn mount_flags(&self, path: &Path) -> Result<u64>;
    fn sethostname(&self, name: &str) -> Result<()>;
    fn write_file(&self, path: &Path, data: &str) -> Result<()>;
    fn remove(&self, path: &Path) -> Result<()>;
    /// The text of /proc/self/mountinfo.
    fn mountinfo(&self) -> Result<String>;
    /// Mount an overlay on `target` ([`crate::overlay`]).
    fn mount_overlay(&self, target: &Path, o: &crate::overlay::Overlay) -> Result<()>;
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::msg("path contains NUL").with_path(p))
}

fn cs(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::msg(format!("string contains NUL: {s:?}")))
}

/// The real kernel.
pub struct Linux;

impl Syscall for Linux {
    fn mount(&self, source: Option<&str>, target: &Path, fstype: Option<&str>, flags: u64, data: Option<&str>) -> Result<()> {
        let src = source.map(cs).transpose()?;
        let t = cstr(target)?;
        let ty = fstype.map(cs).transpose()?;
        let d = data.filter(|d| !d.is_empty()).map(cs).transpose()?;
        let r = unsafe {
            libc::mount(
                src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                t.as_ptr(),
                ty.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                flags as libc::c_ulong,
                d.as_ref().map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void),
            )
        };
        if r < 0 {
            let what = format!("mount {} (type {}, flags {:#x}, data {:?}) on", source.unwrap_or("none"), fstype.unwrap_or("none"), flags, data.unwrap_or(""));
            return Err(Error::last(what, Some(target)));
        }
        Ok(())
    }

    fn umount2(&self, target: &Path, flags: i32) -> Result<()> {
        let t = cstr(target)?;
        if unsafe { libc::umount2(t.as_ptr(), flags) } < 0 {
            return Err(Error::last("umount", Some(target)));
        }
        Ok(())
    }

    fn pivot_root(&self, new_root: &Path) -> Result<()> {
        self.chdir(new_root)?;
        let dot = cs(".")?;
        if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } < 0 {
            return Err(Error::last("pivot_root", Some(new_root)));
        }
        Ok(())
    }

    fn chdir(&self, path: &Path) -> Result<()> {
        let p = cstr(path)?;
        if unsafe { libc::chdir(p.as_ptr()) } < 0 {
            return Err(Error::last("chdir", Some(path)));
        }
        Ok(())
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(mode).create(path).map_err(|e| Error::io("mkdir", Some(path), e))
    }

    fn touch(&self, path: &Path) -> Result<()> {
        if self.kind(path) != Kind::Missing {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            self.mkdir_all(parent, 0o755)?;
        }
        std::fs::OpenOptions::new().create(true).write(true).truncate(false).open(path).map(drop).map_err(|e| Error::io("create mount target", Some(path), e))
    }

    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> Result<()> {
        let p = cstr(path)?;
        if unsafe { libc::mknod(p.as_ptr(), mode as libc::mode_t, dev as libc::dev_t) } < 0 {
            return Err(Error::last("mknod", Some(path)));
        }
        Ok(())
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        let p = cstr(path)?;
        if unsafe { libc::lchown(p.as_ptr(), uid, gid) } < 0 {
            return Err(Error::last("chown", Some(path)));
        }
        Ok(())
    }

    fn symlink(&self, target: &str, link: &Path) -> Result<()> {
        match std::os::unix::fs::symlink(target, link) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(Error::io(format!("symlink -> {target}"), Some(link), e)),
        }
    }

    fn readlink(&self, path: &Path) -> Result<PathBuf> {
        std::fs::read_link(path).map_err(|e| Error::io("readlink", Some(path), e))
    }

    fn kind(&self, path: &Path) -> Kind {
        match std::fs::symlink_metadata(path) {
            Err(_) => Kind::Missing,
            Ok(m) if m.file_type().is_symlink() => Kind::Symlink,
            Ok(m) if m.is_dir() => Kind::Dir,
            Ok(m) if m.is_file() => Kind::File,
            Ok(_) => Kind::Other,
        }
    }

    fn mount_flags(&self, path: &Path) -> Result<u64> {
        let p = cstr(path)?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(p.as_ptr(), &mut st) } < 0 {
            return Err(Error::last("statvfs", Some(path)));
        }
        let f = st.f_flag;
        let mut out = 0u64;
        for (st_flag, ms) in [
            (libc::ST_RDONLY, libc::MS_RDONLY),
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
        ] {
            if f & st_flag != 0 {
                out |= ms as u64;
            }
        }
        Ok(out)
    }

    fn sethostname(&self, name: &str) -> Result<()> {
        if unsafe { libc::sethostname(name.as_ptr() as *const libc::c_char, name.len()) } < 0 {
            return Err(Error::last(format!("sethostname {name:?}"), None));
        }
        Ok(())
    }

    fn write_file(&self, path: &Path, data: &str) -> Result<()> {
        std::fs::write(path, data).map_err(|e| Error::io("write", Some(path), e))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(Error::io("remove", Some(path), e)),
            _ => Ok(()),
        }
    }

    fn mountinfo(&self) -> Result<String> {
        let p = Path::new("/proc/self/mountinfo");
        std::fs::read_to_string(p).map_err(|e| Error::io("read", Some(p), e))
    }

    fn mount_overlay(&self, target: &Path, o: &crate::overlay::Overlay) -> Result<()> {
        crate::overlay::mount(target, o)
    }
}

/// Recording test double: every mutating call is appended to `calls` as one readable line;
/// `kind` answers from `files` (paths added by the test or created through the seam).
#[derive(Default)]
pub struct Recorder {
    pub calls: std::cell::RefCell<Vec<String>>,
    pub files: std::cell::RefCell<std::collections::BTreeMap<PathBuf, Kind>>,
    pub links: std::cell::RefCell<std::collections::BTreeMap<PathBuf, PathBuf>>,
    /// Paths whose mount reports these flags (default 0).
    pub flags: std::cell::RefCell<std::collections::BTreeMap<PathBuf, u64>>,
    pub mountinfo_text: std::cell::RefCell<String>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&self, p: &str, k: Kind) {
        self.files.borrow_mut().insert(PathBuf::from(p), k);
    }
    pub fn add_link(&self, p: &str, target: &str) {
        self.files.borrow_mut().insert(PathBuf::from(p), Kind::Symlink);
        self.links.borrow_mut().insert(PathBuf::from(p), PathBuf::from(target));
    }
    fn rec(&self, s: String) {
        self.calls.borrow_mut().push(s);
    }
    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

impl Syscall for Recorder {
    fn mount(&self, source: Option<&str>, target: &Path, fstype: Option<&str>, flags: u64, data: Option<&str>) -> Result<()> {
        self.rec(format!("mount {} {} {} {} {}", source.unwrap_or("-"), target.display(), fstype.unwrap_or("-"), crate::mounts::flags_to_string(flags), data.filter(|d| !d.is_empty()).unwrap_or("-")));
        Ok(())
    }
    fn umount2(&self, target: &Path, flags: i32) -> Result<()> {
        self.rec(format!("umount2 {} {flags}", target.display()));
        Ok(())
    }
    fn pivot_root(&self, new_root: &Path) -> Result<()> {
        self.rec(format!("pivot_root {}", new_root.display()));
        Ok(())
    }
    fn chdir(&self, path: &Path) -> Result<()> {
        self.rec(format!("chdir {}", path.display()));
        Ok(())
    }
    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()> {
        self.rec(format!("mkdir {} {mode:o}", path.display()));
        let mut f = self.files.borrow_mut();
        for a in path.ancestors() {
            f.entry(a.to_path_buf()).or_insert(Kind::Dir);
        }
        Ok(())
    }
    fn touch(&self, path: &Path) -> Result<()> {
        if self.kind(path) == Kind::Missing {
            self.rec(format!("touch {}", path.display()));
            self.files.borrow_mut().insert(path.to_path_buf(), Kind::File);
        }
        Ok(())
    }
    fn mknod(&self, path: &Path, mode: u32, dev: u64) -> Result<()> {
        self.rec(format!("mknod {} {mode:o} {}:{}", path.display(), libc::major(dev as libc::dev_t), libc::minor(dev as libc::dev_t)));
        self.files.borrow_mut().insert(path.to_path_buf(), Kind::Other);
        Ok(())
    }
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        self.rec(format!("chown {} {uid}:{gid}", path.display()));
        Ok(())
    }
    fn symlink(&self, target: &str, link: &Path) -> Result<()> {
        self.rec(format!("symlink {} -> {target}", link.display()));
        Ok(())
    }
    fn readlink(&self, path: &Path) -> Result<PathBuf> {
        self.links.borrow().get(path).cloned().ok_or_else(|| Error::sys("readlink", Some(path), libc::EINVAL))
    }
    fn kind(&self, path: &Path) -> Kind {
        self.files.borrow().get(path).copied().unwrap_or(Kind::Missing)
    }
    fn mount_flags(&self, path: &Path) -> Result<u64> {
        Ok(self.flags.borrow().get(path).copied().unwrap_or(0))
    }
    fn sethostname(&self, name: &str) -> Result<()> {
        self.rec(format!("sethostname {name}"));
        Ok(())
    }
    fn write_file(&self, path: &Path, data: &str) -> Result<()> {
        self.rec(format!("write {} {data}", path.display()));
        Ok(())
    }
    fn remove(&self, path: &Path) -> Result<()> {
        if self.files.borrow_mut().remove(path).is_some() {
            self.rec(format!("remove {}", path.display()));
        }
        Ok(())
    }
    fn mountinfo(&self) -> Result<String> {
        Ok(self.mountinfo_text.borrow().clone())
    }
    fn mount_overlay(&self, target: &Path, o: &crate::overlay::Overlay) -> Result<()> {
        self.rec(format!("overlay {} {}", target.display(), o.describe()));
        Ok(())
    }
}
