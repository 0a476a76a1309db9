//! Opening a path inside a container's root the way `docker cp` resolves it, once, to a
//! descriptor.
//!
//! A live container is hostile: between two resolutions of the same path string it can swap a
//! directory for a symlink to anything. So a path is resolved exactly once, with `openat2` and
//! `RESOLVE_IN_ROOT` (the kernel treats the root descriptor as `/`: an absolute symlink or a
//! `..` never climbs out of it) and `RESOLVE_NO_MAGICLINKS` (no `/proc/PID/fd/N` jump out), and
//! every later operation works relative to the descriptor it gave: [`crate::extract::extract_at`]
//! writes beneath it with `O_NOFOLLOW` walks, readers walk it with `openat(O_NOFOLLOW)`.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::sys;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// How many times a resolution the kernel reports as raced (`EAGAIN`: a rename elsewhere in
/// the tree while it walked `..`) is tried again before giving up.
const RACE_RETRIES: usize = 64;

/// Open `path` (a path inside the container: leading `/` or not, `..` allowed) beneath `root`.
/// Symlinks on the way are followed, scoped to `root`; the last component is followed only if
/// `follow`. The descriptor is `O_RDONLY | O_DIRECTORY` when `directory` (`ENOTDIR` if it is
/// not one), `O_PATH` otherwise. Mount points beneath `root` (volumes in a running container's
/// root) are crossed, as the container sees them.
pub fn open_in_root(root: RawFd, path: &[u8], follow: bool, directory: bool) -> std::io::Result<OwnedFd> {
    let flags = if directory { libc::O_RDONLY | libc::O_DIRECTORY } else { libc::O_PATH };
    // Relative to the root descriptor (an absolute path would be too, under RESOLVE_IN_ROOT).
    let rel = match path.iter().position(|&b| b != b'/') {
        Some(i) => &path[i..],
        None => b".",
    };
    let c = sys::cstring(rel).ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut how = OpenHow {
        flags: (flags | libc::O_CLOEXEC | if follow { 0 } else { libc::O_NOFOLLOW }) as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    let mut tries = 0;
    loop {
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                c.as_ptr(),
                &mut how as *mut OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) if tries < RACE_RETRIES => tries += 1,
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn resolution_stays_in_root() {
        let t = crate::testutil::TempDir::new();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(t.path().join("outside")).unwrap();
        std::fs::write(root.join("etc/f"), b"in").unwrap();
        std::fs::write(t.path().join("outside/f"), b"out").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("etc/up")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root", root.join("magic")).unwrap();
        let rfd = sys::openat(libc::AT_FDCWD, &sys::cstring(root.as_os_str().as_encoded_bytes()).unwrap(),
                              libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        let read = |p: &str| {
            let fd = open_in_root(rfd.as_raw_fd(), p.as_bytes(), true, false).unwrap();
            std::fs::read_to_string(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
        };
        assert_eq!(read("/abs/f"), "in");
        assert_eq!(read("abs/../../../etc/f"), "in");
        // "../../outside" from /etc is /outside in the root: missing, never the host's.
        let e = open_in_root(rfd.as_raw_fd(), b"/etc/up/f", true, false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        assert!(open_in_root(rfd.as_raw_fd(), b"/magic/etc", true, false).is_err());
        // Not following the last component gives the link itself.
        let l = open_in_root(rfd.as_raw_fd(), b"/abs", false, false).unwrap();
        let st = sys::fstat(l.as_raw_fd()).unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
        assert!(open_in_root(rfd.as_raw_fd(), b"/", true, true).is_ok());
    }
}
