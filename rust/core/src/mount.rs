//! Overlay mounts for container root filesystems.
//!
//! [`mount_overlay`] stacks extracted layers (top first) under a container's upper dir. It uses
//! the new mount API (`fsopen("overlay")`, one `fsconfig("lowerdir+")` per layer, `fsmount`,
//! `move_mount`; Linux 6.8+), which has no limit on the number of layers, and falls back to
//! `mount(2)` with a joined option string on older kernels, where the options must fit in one
//! page (about 45 layers with dockyard's paths; docker shortens paths with symlinks instead).
//! Errors keep errno and name the target.

use std::ffi::CString;
use std::io;
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

const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Mount an overlay of `lowers` (top layer first) with `upper`/`work` at `target`.
pub fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    if lowers.is_empty() {
        return Err(Error::InvalidArgument("an overlay needs at least one lower layer".into()));
    }
    for l in lowers {
        check_path(l, "a lower layer")?;
    }
    check_path(upper, "the upper dir")?;
    check_path(work, "the work dir")?;
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
    set("upperdir", upper)?;
    set("workdir", work)?;
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
    let opts = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
    if opts.len() >= 4096 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("too many layers ({}) for this kernel's overlay options", lowers.len())));
    }
    let src = CString::new("overlay").unwrap();
    let data = CString::new(opts).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let t = CString::new(target.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let r = unsafe { libc::mount(src.as_ptr(), t.as_ptr(), src.as_ptr(), 0, data.as_ptr().cast()) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
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
        assert!(e.to_string().contains("at least one"), "{e}");
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
}
