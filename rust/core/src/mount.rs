//! Overlay mounts for container root filesystems.
//!
//! [`mount_overlay`] stacks extracted layers (top first) under a container's upper dir. It uses
//! the new mount API (`fsopen("overlay")`, one `fsconfig("lowerdir+")` per layer, `fsmount`,
//! `move_mount`; Linux 6.8+), which has no limit on the number of layers, and falls back to
//! `mount(2)` with a joined option string on older kernels, where the options must fit in one
//! page (about 45 layers with dockyard's paths; docker shortens paths with symlinks instead).
//! Errors keep errno and name the target.
//!
//! [`idmap_mount`] attaches an idmapped copy of such a mount (user namespaces without a chown),
//! with the namespace from [`userns_fd`].

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::InvalidArgument(format!("path contains NUL: {}", p.display())))
}

fn check_path(p: &Path, what: &str) -> Result<()> {
    let bytes = p.as_os_str().as_bytes();
    // overlayfs options are comma- and colon-separated: such paths cannot be expressed safely.
    if bytes.iter().any(|&b| b == b',' || b == b':') || !p.is_absolute() {
        return Err(Error::InvalidArgument(format!("{what} must be an absolute path without ',' or ':': {}", p.display())));
    }
    Ok(())
}

const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Mount an overlay of `lowers` (top layer first) with `upper`/`work` at `target`; with both
/// empty, a read-only overlay of the lowers alone (the kernel wants two of them then).
pub fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let read_only = upper.as_os_str().is_empty() && work.as_os_str().is_empty();
    if lowers.len() < if read_only { 2 } else { 1 } {
        return Err(Error::InvalidArgument("an overlay needs a lower layer (two without an upper dir)".into()));
    }
    for l in lowers {
        check_path(l, "a lower layer")?;
    }
    if !read_only {
        check_path(upper, "the upper dir")?;
        check_path(work, "the work dir")?;
    }
    match mount_new_api(lowers, upper, work, target) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)) => {
            mount_legacy(lowers, upper, work, target).map_err(|e| Error::io(target, e))
        }
        Err(e) => Err(Error::io(target, e)),
    }
}

fn mount_new_api(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> io::Result<()> {
    let fstype = CString::new("overlay").unwrap();
    // SAFETY: plain syscalls with valid NUL-terminated strings; fds are closed below.
    let fsfd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), 1 /* FSOPEN_CLOEXEC */) } as i32;
    if fsfd < 0 {
        return Err(io::Error::last_os_error());
    }
    let guard = Fd(fsfd);
    let set = |key: &str, value: &Path| -> io::Result<()> {
        let k = CString::new(key).unwrap();
        let v = CString::new(value.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let r = unsafe { libc::syscall(libc::SYS_fsconfig, guard.0, FSCONFIG_SET_STRING, k.as_ptr(), v.as_ptr(), 0) };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    };
    for l in lowers {
        set("lowerdir+", l)?;
    }
    if !upper.as_os_str().is_empty() {
        set("upperdir", upper)?;
        set("workdir", work)?;
    }
    if crate::sys::in_user_namespace() {
        let k = CString::new("userxattr").unwrap();
        let r = unsafe { libc::syscall(libc::SYS_fsconfig, guard.0, FSCONFIG_SET_FLAG, k.as_ptr(), std::ptr::null::<u8>(), 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let r = unsafe { libc::syscall(libc::SYS_fsconfig, guard.0, FSCONFIG_CMD_CREATE, std::ptr::null::<u8>(), std::ptr::null::<u8>(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mfd = unsafe { libc::syscall(libc::SYS_fsmount, guard.0, 1 /* FSMOUNT_CLOEXEC */, 0) } as i32;
    if mfd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mguard = Fd(mfd);
    let empty = CString::new("").unwrap();
    let t = CString::new(target.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let r = unsafe {
        libc::syscall(libc::SYS_move_mount, mguard.0, empty.as_ptr(), libc::AT_FDCWD, t.as_ptr(), MOVE_MOUNT_F_EMPTY_PATH)
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn mount_legacy(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> io::Result<()> {
    let lower: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let mut opts = format!("lowerdir={}", lower.join(":"));
    if !upper.as_os_str().is_empty() {
        opts += &format!(",upperdir={},workdir={}", upper.display(), work.display());
    }
    if crate::sys::in_user_namespace() {
        opts += ",userxattr";
    }
    if opts.len() >= 4096 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("too many layers ({}) for this kernel's overlay options", lowers.len())));
    }
    let src = CString::new("overlay").unwrap();
    let data = CString::new(opts).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let t = CString::new(target.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let r = unsafe { libc::mount(src.as_ptr(), t.as_ptr(), src.as_ptr(), 0, data.as_ptr().cast()) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Mount a tmpfs at `target` (nosuid, nodev, noexec) with `options` (`mode=1777,size=65536k`):
/// a shareable container's /dev/shm, kept on the host so that another container can bind it.
pub fn mount_tmpfs(target: &Path, source: &str, options: &str) -> Result<()> {
    let t = cstr(target)?;
    let src = CString::new(source).map_err(|_| Error::InvalidArgument("source contains NUL".into()))?;
    let data = CString::new(options).map_err(|_| Error::InvalidArgument("options contain NUL".into()))?;
    let fstype = c"tmpfs";
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let r = unsafe { libc::mount(src.as_ptr(), t.as_ptr(), fstype.as_ptr(), flags, data.as_ptr().cast()) };
    if r < 0 {
        return Err(Error::io(target, io::Error::last_os_error()));
    }
    Ok(())
}

/// Unmount `target`; with `detach`, lazily (MNT_DETACH) so a busy mount still goes away.
/// Not mounted (EINVAL) or gone (ENOENT) counts as done.
pub fn umount(target: &Path, detach: bool) -> Result<()> {
    let t = cstr(target)?;
    let flags = if detach { libc::MNT_DETACH } else { 0 };
    let r = unsafe { libc::umount2(t.as_ptr(), flags) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Ok(());
        }
        return Err(Error::io(target, e));
    }
    Ok(())
}

// -- idmapped mounts ----------------------------------------------------------------------------
//
// A user namespace's mapping, applied to a mount (Linux 5.12+, overlay 5.19+): files whose owner on
// disk is `inside` are seen as `outside` through the mount, and a process whose ids are `outside`
// writes `inside` to disk. A container under `--userns-remap` (container root = host uid 100000)
// thus sees the image's root-owned files as its own, and what it writes reaches the disk with the
// image's ids: nothing is chowned and layers stay shared.

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// One line of a uid_map/gid_map: ids `inside..inside+count` are `outside..outside+count` in the
/// parent namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

fn map_text(maps: &[IdMap]) -> String {
    maps.iter().map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count)).collect()
}

/// A file descriptor of a new user namespace with these mappings, for [`idmap_mount`]. The
/// namespace is made by a short-lived child (clone with CLONE_NEWUSER, no exec) whose maps the
/// caller, root, writes; the descriptor keeps the namespace alive after the child exits.
pub fn userns_fd(uids: &[IdMap], gids: &[IdMap]) -> Result<OwnedFd> {
    if uids.is_empty() || gids.is_empty() {
        return Err(Error::InvalidArgument("a user namespace needs uid and gid mappings".into()));
    }
    let mut pipe = [0i32; 2];
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(Error::io("pipe", io::Error::last_os_error()));
    }
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    // SAFETY: the child shares nothing it could corrupt: it closes its copy of the write end,
    // blocks in read(2) until the parent closes its own, then _exit(2)s (all async-signal-safe).
    let pid = unsafe {
        libc::syscall(libc::SYS_clone, (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
    };
    if pid < 0 {
        return Err(Error::io("clone (new user namespace)", io::Error::last_os_error()));
    }
    if pid == 0 {
        unsafe {
            let mut b = 0u8;
            libc::close(wr.as_raw_fd());
            libc::read(rd.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(rd);
    let pid = pid as libc::pid_t;
    let result = (|| -> Result<OwnedFd> {
        for (file, maps) in [("uid_map", uids), ("gid_map", gids)] {
            let path = PathBuf::from(format!("/proc/{pid}/{file}"));
            std::fs::write(&path, map_text(maps)).map_err(|e| Error::io(&path, e))?;
        }
        let path = PathBuf::from(format!("/proc/{pid}/ns/user"));
        let f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        Ok(OwnedFd::from(f))
    })();
    drop(wr); // the child's read returns: it exits
    let mut status = 0;
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {}
    result
}

/// Attach at `target` a copy of the mount at `source` (not its submounts) idmapped with the user
/// namespace `userns` (open_tree(OPEN_TREE_CLONE), mount_setattr(MOUNT_ATTR_IDMAP), move_mount).
/// `source` stays as it was: the engine keeps reading and writing the container's files with
/// their ids on disk through it, and the container runs on the idmapped copy.
pub fn idmap_mount(source: &Path, target: &Path, userns: BorrowedFd<'_>) -> Result<()> {
    let s = cstr(source)?;
    let t = cstr(target)?;
    let fd = unsafe {
        libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, s.as_ptr(), OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint)
    } as i32;
    if fd < 0 {
        return Err(Error::io(source, io::Error::last_os_error()));
    }
    let tree = Fd(fd);
    let attr = MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: userns.as_raw_fd() as u64 };
    let empty = CString::new("").unwrap();
    let r = unsafe {
        libc::syscall(libc::SYS_mount_setattr, tree.0, empty.as_ptr(), libc::AT_EMPTY_PATH as libc::c_uint,
                      &attr as *const MountAttr, std::mem::size_of::<MountAttr>())
    };
    if r < 0 {
        return Err(Error::io(source, io::Error::last_os_error()));
    }
    let r = unsafe { libc::syscall(libc::SYS_move_mount, tree.0, empty.as_ptr(), libc::AT_FDCWD, t.as_ptr(), MOVE_MOUNT_F_EMPTY_PATH) };
    if r < 0 {
        return Err(Error::io(target, io::Error::last_os_error()));
    }
    Ok(())
}

struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        unsafe { libc::close(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::fd::AsFd;

    fn root() -> bool {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: overlay mounts need root");
            return false;
        }
        true
    }

    #[test]
    fn refuses_paths_overlay_cannot_express() {
        let e = mount_overlay(&[PathBuf::from("/a:b")], Path::new("/u"), Path::new("/w"), Path::new("/t")).unwrap_err();
        assert!(e.to_string().contains("without ',' or ':'"), "{e}");
        let e = mount_overlay(&[], Path::new("/u"), Path::new("/w"), Path::new("/t")).unwrap_err();
        assert!(e.to_string().contains("a lower layer"), "{e}");
        let e = mount_overlay(&[PathBuf::from("/l")], Path::new(""), Path::new(""), Path::new("/t")).unwrap_err();
        assert!(e.to_string().contains("two without an upper"), "{e}");
    }

    #[test]
    fn without_an_upper_dir_the_overlay_is_read_only() {
        if !root() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("dy-mount-ro-{}", std::process::id()));
        let (top, bottom, mnt) = (dir.join("top"), dir.join("bottom"), dir.join("mnt"));
        for d in [&top, &bottom, &mnt] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(top.join("a"), "top").unwrap();
        fs::write(bottom.join("a"), "bottom").unwrap();
        fs::write(bottom.join("b"), "b").unwrap();
        let res = mount_overlay(&[top.clone(), bottom.clone()], Path::new(""), Path::new(""), &mnt);
        // (no assert before the cleanup: a failure is an Err, and the mount goes whatever happens)
        let check = || -> std::result::Result<(), String> {
            res.as_ref().map_err(|e| e.to_string())?;
            let read = |n: &str| fs::read_to_string(mnt.join(n)).map_err(|e| e.to_string());
            if (read("a")?.as_str(), read("b")?.as_str()) != ("top", "b") {
                return Err("the layers are not stacked top first".into());
            }
            match fs::write(mnt.join("c"), "new") {
                Err(e) if e.raw_os_error() == Some(libc::EROFS) => Ok(()),
                other => Err(format!("a write gave {other:?}, not EROFS")),
            }
        };
        let outcome = check();
        let _ = umount(&mnt, true);
        let _ = fs::remove_dir_all(&dir);
        outcome.unwrap();
    }

    #[test]
    fn stacks_layers_and_writes_go_to_upper() {
        if !root() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("dy-mount-test-{}", std::process::id()));
        let (l1, l2, up, wk, mnt) = (dir.join("l1"), dir.join("l2"), dir.join("up"), dir.join("wk"), dir.join("mnt"));
        for d in [&l1, &l2, &up, &wk, &mnt] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(l1.join("a"), "bottom").unwrap();
        fs::write(l2.join("a"), "top").unwrap();
        fs::write(l1.join("b"), "only-bottom").unwrap();
        // 60 layers: more than a page of legacy options would hold with long paths.
        let mut lowers = vec![l2.clone()];
        for i in 0..60 {
            let p = dir.join(format!("{:0>60}", i));
            fs::create_dir_all(&p).unwrap();
            lowers.push(p);
        }
        lowers.push(l1.clone());
        let res = mount_overlay(&lowers, &up, &wk, &mnt);
        let check = || -> std::result::Result<(), String> {
            res.as_ref().map_err(|e| e.to_string())?;
            assert_eq!(fs::read_to_string(mnt.join("a")).unwrap(), "top");
            assert_eq!(fs::read_to_string(mnt.join("b")).unwrap(), "only-bottom");
            fs::write(mnt.join("c"), "new").unwrap();
            assert_eq!(fs::read_to_string(up.join("c")).unwrap(), "new");
            assert!(!l1.join("c").exists() && !l2.join("c").exists());
            Ok(())
        };
        let outcome = check();
        umount(&mnt, true).unwrap();
        umount(&mnt, true).unwrap(); // not mounted any more: still fine
        fs::remove_dir_all(&dir).unwrap();
        outcome.unwrap();
    }

    #[test]
    fn idmapped_view_shifts_owners_and_leaves_the_source() {
        if !root() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("dy-idmap-test-{}", std::process::id()));
        let (store, idm) = (dir.join("s"), dir.join("i"));
        fs::create_dir_all(&store).unwrap();
        fs::create_dir_all(&idm).unwrap();
        fs::write(store.join("f"), "x").unwrap();
        let map = [IdMap { inside: 0, outside: 200000, count: 65536 }];
        let outcome = (|| -> std::result::Result<(), String> {
            let ns = userns_fd(&map, &map).map_err(|e| e.to_string())?;
            idmap_mount(&store, &idm, ns.as_fd()).map_err(|e| e.to_string())?;
            use std::os::unix::fs::MetadataExt;
            assert_eq!(fs::metadata(idm.join("f")).unwrap().uid(), 200000);
            assert_eq!(fs::metadata(store.join("f")).unwrap().uid(), 0);
            Ok(())
        })();
        umount(&idm, true).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        outcome.unwrap();
    }
}
