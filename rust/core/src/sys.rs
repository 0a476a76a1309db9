//! Thin, safe wrappers over the `*at` system calls the layer code uses. Each returns
//! `io::Result` with errno intact; callers add the path.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_ssize(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// A name as a C string; `None` if it holds a NUL byte.
pub fn cstring(b: &[u8]) -> Option<CString> {
    CString::new(b).ok()
}

pub fn openat(dir: RawFd, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    loop {
        let r = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
        match cvt(r) {
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Open a directory component without following a symlink.
pub fn open_dir_nofollow(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
}

pub fn mkdirat(dir: RawFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    cvt(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) }).map(drop)
}

pub fn mknodat(dir: RawFd, name: &CStr, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    cvt(unsafe { libc::mknodat(dir, name.as_ptr(), mode, dev) }).map(drop)
}

pub fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> io::Result<()> {
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) }).map(drop)
}

/// Hard link `odir/oname` as `ndir/nname`, never following a symlink at `oname`.
pub fn linkat(odir: RawFd, oname: &CStr, ndir: RawFd, nname: &CStr) -> io::Result<()> {
    cvt(unsafe { libc::linkat(odir, oname.as_ptr(), ndir, nname.as_ptr(), 0) }).map(drop)
}

pub fn unlinkat(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    cvt(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) }).map(drop)
}

pub fn fstatat(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// Whether `fd` is on a file system held in memory (tmpfs, ramfs); `false` when unknown.
pub fn in_memory_fs(fd: RawFd) -> bool {
    const TMPFS_MAGIC: libc::c_long = 0x0102_1994;
    const RAMFS_MAGIC: libc::c_long = 0x8584_58f6;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(fd, &mut st) } != 0 {
        return false;
    }
    matches!(st.f_type as libc::c_long, TMPFS_MAGIC | RAMFS_MAGIC)
}

pub fn lchownat(dir: RawFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    cvt(unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    cvt(unsafe { libc::fchown(fd, uid, gid) }).map(drop)
}

pub fn fchmod(fd: RawFd, mode: libc::mode_t) -> io::Result<()> {
    cvt(unsafe { libc::fchmod(fd, mode) }).map(drop)
}

/// chmod of a name that is not a symlink (device nodes, fifos).
pub fn fchmodat(dir: RawFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    cvt(unsafe { libc::fchmodat(dir, name.as_ptr(), mode, 0) }).map(drop)
}

fn times(sec: i64, nsec: u32) -> [libc::timespec; 2] {
    let t = libc::timespec { tv_sec: sec as libc::time_t, tv_nsec: nsec as libc::c_long };
    [t, t]
}

/// Set atime and mtime of `dir/name` itself (a symlink is not followed: lutimes).
pub fn lutimensat(dir: RawFd, name: &CStr, sec: i64, nsec: u32) -> io::Result<()> {
    let ts = times(sec, nsec);
    cvt(unsafe { libc::utimensat(dir, name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

pub fn futimens(fd: RawFd, sec: i64, nsec: u32) -> io::Result<()> {
    let ts = times(sec, nsec);
    cvt(unsafe { libc::futimens(fd, ts.as_ptr()) }).map(drop)
}

pub fn fsetxattr(fd: RawFd, name: &CStr, value: &[u8]) -> io::Result<()> {
    cvt(unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) }).map(drop)
}

/// setxattr on a path that is resolved by the kernel (use with `/proc/self/fd/N/name` only).
pub fn lsetxattr(path: &CStr, name: &CStr, value: &[u8]) -> io::Result<()> {
    cvt(unsafe { libc::lsetxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
        .map(drop)
}

fn list_buf(mut call: impl FnMut(*mut libc::c_char, usize) -> libc::ssize_t) -> io::Result<Vec<u8>> {
    loop {
        let n = cvt_ssize(call(std::ptr::null_mut(), 0))?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; n];
        match cvt_ssize(call(buf.as_mut_ptr().cast(), buf.len())) {
            Ok(m) => {
                buf.truncate(m);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn split_names(list: Vec<u8>) -> Vec<Vec<u8>> {
    list.split(|&b| b == 0).filter(|n| !n.is_empty()).map(<[u8]>::to_vec).collect()
}

/// Extended attribute names of an open file.
pub fn flistxattr(fd: RawFd) -> io::Result<Vec<Vec<u8>>> {
    list_buf(|p, n| unsafe { libc::flistxattr(fd, p, n) }).map(split_names)
}

pub fn fgetxattr(fd: RawFd, name: &CStr) -> io::Result<Vec<u8>> {
    list_buf(|p, n| unsafe { libc::fgetxattr(fd, name.as_ptr(), p.cast(), n) })
}

pub fn llistxattr(path: &CStr) -> io::Result<Vec<Vec<u8>>> {
    list_buf(|p, n| unsafe { libc::llistxattr(path.as_ptr(), p, n) }).map(split_names)
}

pub fn lgetxattr(path: &CStr, name: &CStr) -> io::Result<Vec<u8>> {
    list_buf(|p, n| unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), p.cast(), n) })
}

pub fn readlinkat(dir: RawFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = cvt_ssize(unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// `/proc/self/fd/<dir>/<name>`: a path the kernel resolves to `name` inside the directory
/// `dir` (the magic link pins the directory; `name` is one component). For the few calls that
/// have no `*at` form (xattrs on symlinks).
pub fn fd_path(dir: RawFd, name: &[u8]) -> CString {
    let mut p = format!("/proc/self/fd/{dir}/").into_bytes();
    p.extend_from_slice(name);
    CString::new(p).expect("names hold no NUL")
}

/// Directory entries of an open directory (not `.`/`..`): name and `d_type`.
pub fn read_dir(dir: &OwnedFd) -> io::Result<Vec<(CString, u8)>> {
    // fdopendir takes ownership of the descriptor, so hand it a duplicate.
    let dup = cvt(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    let d = unsafe { libc::fdopendir(dup) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(dup) };
        return Err(e);
    }
    unsafe { libc::rewinddir(d) };
    let mut out = Vec::new();
    loop {
        unsafe { *libc::__errno_location() = 0 };
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            let err = unsafe { *libc::__errno_location() };
            unsafe { libc::closedir(d) };
            if err != 0 {
                return Err(io::Error::from_raw_os_error(err));
            }
            return Ok(out);
        }
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        let b = name.to_bytes();
        if b == b"." || b == b".." {
            continue;
        }
        out.push((name.to_owned(), unsafe { (*ent).d_type }));
    }
}

pub fn geteuid() -> u32 {
    unsafe { libc::geteuid() }
}

pub fn getegid() -> u32 {
    unsafe { libc::getegid() }
}

/// The process umask, read from `/proc/self/status` (calling umask(2) to read it would change
/// it for a moment under other threads' feet). `None` if unknown.
pub fn umask() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
}

pub fn makedev(major: u32, minor: u32) -> libc::dev_t {
    libc::makedev(major, minor)
}

pub fn major(d: libc::dev_t) -> u32 {
    libc::major(d)
}

pub fn minor(d: libc::dev_t) -> u32 {
    libc::minor(d)
}

pub fn is_errno(e: &io::Error, n: libc::c_int) -> bool {
    e.raw_os_error() == Some(n)
}

/// Whether this process runs in a user namespace other than the host's (a rootless daemon): its
/// uid_map is then not the identity over every id. Read once. overlayfs there keeps its own
/// attributes as `user.overlay.*` (mounted with `userxattr`), since `trusted.*` needs
/// CAP_SYS_ADMIN in the host's namespace.
pub fn in_user_namespace() -> bool {
    static CACHED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CACHED.get_or_init(|| match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"],
        Err(_) => false,
    })
}

/// The xattr that makes a directory opaque in an overlay upper or lower layer: `trusted.` on
/// the host, `user.` inside a user namespace (see [`in_user_namespace`]).
pub fn overlay_opaque_xattr() -> &'static std::ffi::CStr {
    if in_user_namespace() { c"user.overlay.opaque" } else { c"trusted.overlay.opaque" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Agrees with /proc/self/mounts for every tmpfs and ext4 mount point we can open.
    #[test]
    fn in_memory_fs_agrees_with_the_mount_table() {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let mut seen = (0, 0);
        for line in mounts.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let (dir, fstype) = (f[1], f[2]);
            if !matches!(fstype, "tmpfs" | "ext4" | "proc") || dir.contains('\\') {
                continue;
            }
            let Ok(d) = std::fs::File::open(dir) else { continue };
            // A later mount on the same point hides this one: only check what the path shows.
            let last = mounts.lines().filter(|l| l.split(' ').nth(1) == Some(dir)).last().unwrap();
            if last != line {
                continue;
            }
            assert_eq!(in_memory_fs(d.as_raw_fd()), fstype == "tmpfs", "{dir} ({fstype})");
            if fstype == "tmpfs" { seen.0 += 1 } else { seen.1 += 1 }
        }
        assert!(seen.1 > 0, "no mount point to check");
    }
}
