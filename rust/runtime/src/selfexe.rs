//! Keep the host's `dockyard-runtime` binary out of every container's reach (CVE-2019-5736).
//!
//! A process that enters a container (the intermediate, the init until it execs the user's
//! process — for ever with `--init` —, an `exec`'d process until its execve) is a fork of the
//! runtime, so its `/proc/PID/exe` names the runtime's binary. A process in the container that
//! may open that magic link (same credentials, or CAP_SYS_PTRACE) would get the host's file:
//! open it now, write it once the runtime has exited, and the host's next `dockyard-runtime`
//! is the container's code.
//!
//! So the commands that enter a container (`create`, `run`, `exec`, `shim`) first re-exec
//! themselves from a copy that no container can write and that is not the host's inode:
//!
//! 1. **overlay** (preferred; what runc 1.2 does): a read-only overlayfs made with
//!    `fsopen`/`fsmount` and never attached anywhere (lower layers: the binary's directory
//!    over an empty tmpfs, itself detached; no upper), the binary opened `O_PATH` inside it.
//!    The exe then lives on that detached mount: another device, no path the container can
//!    name, and any open for writing fails with EROFS. No copy: the text pages are the
//!    binary's own page cache, shared by every shim.
//! 2. **memfd** (fallback, when the overlay cannot be made): the binary copied (sendfile) into
//!    a `memfd` and sealed against writing, growing, shrinking and further sealing
//!    (F_SEAL_WRITE|GROW|SHRINK|SEAL). Costs one copy of the binary per process that holds it.
//!
//! Then `execveat(fd, "", AT_EMPTY_PATH)` with the same argv. The fd is close-on-exec, so the
//! new image holds nothing of the host's binary but its exe. The environment carries
//! [`ENV`]=`dev:ino` of the copy to the new image, which checks that its `/proc/self/exe` is that
//! copy, removes the variable, and goes on (a stale or forged value only costs a second
//! re-exec). `DOCKYARD_RUNTIME_CLONE=memfd` forces the fallback (tests, benches).
//!
//! Cost, measured on a 2-core VM: one more execve. `dockyard-runtime run` of `true`, 5.3 ms
//! before, 7.1 ms with the overlay, 7.4 ms with the memfd; `dockyard run --rm IMAGE true` end
//! to end (200-360 ms there) moved within the noise. A shim's resident memory is unchanged
//! with the overlay (its text stays shared file pages); with the memfd about 0.9 MB of it
//! becomes shared memory private to that shim.
//!
//! Those commands also make themselves non-dumpable ([`not_dumpable`]). Other commands
//! (`state`, `kill`, `delete`, `ps`, ...) never enter a container and skip both.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{errno, Error, Result};
use crate::util::close;

/// `dev:ino` of the protected copy that the re-exec'd image must be running from.
pub const ENV: &str = "_DOCKYARD_RUNTIME_SEALED";
/// `memfd` or `overlay`: force one way (tests and benches); unset: overlay, then memfd.
pub const CLONE_ENV: &str = "DOCKYARD_RUNTIME_CLONE";

/// The seals of the memfd copy.
pub const SEALS: libc::c_int = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
const MFD_EXEC: libc::c_uint = 0x10;

/// The commands whose process (or a child of it) joins a container.
pub fn enters_container(cmd: &str) -> bool {
    matches!(cmd, "create" | "run" | "exec" | "shim")
}

fn stat_fd(fd: RawFd) -> Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(Error::last("fstat", None));
    }
    Ok(st)
}

fn stat_path(p: &Path) -> Result<libc::stat> {
    let c = crate::util::cstring(p)?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::stat(c.as_ptr(), &mut st) } < 0 {
        return Err(Error::last("stat", Some(p)));
    }
    Ok(st)
}

fn id_of(st: &libc::stat) -> String {
    format!("{}:{}", st.st_dev, st.st_ino)
}

/// Whether this image was re-exec'd from the copy its parent image made (consumes [`ENV`]).
fn already_sealed() -> bool {
    let Some(want) = std::env::var_os(ENV) else { return false };
    // Single-threaded here (the runtime never starts a thread): remove_var is sound.
    std::env::remove_var(ENV);
    stat_path(Path::new("/proc/self/exe")).is_ok_and(|st| id_of(&st) == want.to_string_lossy())
}

/// Open the running binary (not by its path, which may have been replaced since).
fn open_self() -> Result<RawFd> {
    let fd = unsafe { libc::open(c"/proc/self/exe".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::last("open", Some(Path::new("/proc/self/exe"))));
    }
    Ok(fd)
}

/// The binary, `O_PATH`, inside a detached read-only overlay of its directory (see the module
/// documentation). `Ok(None)`: this kernel or file system cannot do it (use the memfd).
pub fn overlay_copy() -> Result<Option<RawFd>> {
    let target = std::fs::read_link("/proc/self/exe").map_err(|e| Error::io("readlink", Some(Path::new("/proc/self/exe")), e))?;
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else { return Ok(None) };
    // " (deleted)": the binary was replaced or removed since we started; copy what runs.
    if !target.is_absolute() || target.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Ok(None);
    }
    let orig = {
        let fd = open_self()?;
        let st = stat_fd(fd);
        close(fd);
        st?
    };
    // Overlay's option syntax has no escape for these.
    if dir.as_os_str().as_bytes().iter().any(|b| matches!(b, b':' | b',' | b'\\')) {
        return Ok(None);
    }
    // Without an upper layer overlayfs wants two lower ones: the second is an empty tmpfs,
    // itself never attached anywhere (named through our fd to it).
    let Some(empty) = detached_mount(c"tmpfs", &[])? else { return Ok(None) };
    let lower = format!("{}:/proc/self/fd/{empty}", dir.display());
    let ov = detached_mount(c"overlay", &[(c"source", "dockyard-runtime"), (c"lowerdir", &lower)]);
    close(empty);
    let Some(mfd) = ov? else { return Ok(None) };
    let cname = CString::new(name.as_bytes()).map_err(|_| Error::msg("binary name has a NUL byte"))?;
    let fd = unsafe { libc::openat(mfd, cname.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW) };
    close(mfd);
    if fd < 0 {
        return Ok(None);
    }
    // The same file as the one running (the directory may have changed meanwhile), on
    // another device.
    let st = stat_fd(fd)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_ino != orig.st_ino || st.st_size != orig.st_size || st.st_dev == orig.st_dev {
        close(fd);
        return Ok(None);
    }
    Ok(Some(fd))
}

/// A new mount of `fstype` with string options `opts`, read-only, nosuid, nodev, attached
/// nowhere: its fd. `Ok(None)` when the kernel refuses (no new mount API, no such fs type,
/// options it does not take).
fn detached_mount(fstype: &std::ffi::CStr, opts: &[(&std::ffi::CStr, &str)]) -> Result<Option<RawFd>> {
    let fsfd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) } as RawFd;
    if fsfd < 0 {
        return Ok(None);
    }
    let r = (|| -> Result<Option<RawFd>> {
        for (k, v) in opts {
            let v = CString::new(*v).map_err(|_| Error::msg("mount option has a NUL byte"))?;
            if unsafe { libc::syscall(libc::SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, k.as_ptr(), v.as_ptr(), 0) } < 0 {
                return Ok(None);
            }
        }
        if unsafe { libc::syscall(libc::SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, std::ptr::null::<libc::c_char>(), std::ptr::null::<libc::c_void>(), 0) } < 0 {
            return Ok(None);
        }
        let mfd = unsafe { libc::syscall(libc::SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) } as RawFd;
        Ok((mfd >= 0).then_some(mfd))
    })();
    close(fsfd);
    r
}

/// A sealed memfd holding a copy of the running binary.
pub fn memfd_copy() -> Result<RawFd> {
    let name = c"dockyard-runtime";
    let mut mfd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | MFD_EXEC) };
    if mfd < 0 && errno() == libc::EINVAL {
        // Before Linux 6.3 there is no MFD_EXEC (every memfd is executable).
        mfd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    }
    if mfd < 0 {
        return Err(Error::last("memfd_create", None));
    }
    let r = (|| -> Result<()> {
        let src = open_self()?;
        let copied = copy_all(src, mfd);
        close(src);
        copied?;
        if unsafe { libc::fcntl(mfd, libc::F_ADD_SEALS, SEALS) } < 0 {
            return Err(Error::last("seal the memfd copy of the runtime", None));
        }
        Ok(())
    })();
    match r {
        Ok(()) => Ok(mfd),
        Err(e) => {
            close(mfd);
            Err(e)
        }
    }
}

/// Copy `src` to the end of `dst`: sendfile (in the kernel), read/write when it cannot.
fn copy_all(src: RawFd, dst: RawFd) -> Result<()> {
    let size = stat_fd(src)?.st_size as usize;
    let mut done = 0usize;
    while done < size {
        let n = unsafe { libc::sendfile(dst, src, std::ptr::null_mut(), size - done) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            if done == 0 && (e == libc::EINVAL || e == libc::ENOSYS) {
                break;
            }
            return Err(Error::sys("copy the runtime binary", None, e));
        }
        if n == 0 {
            return Err(Error::msg("copy the runtime binary: it shrank while being copied"));
        }
        done += n as usize;
    }
    if done == size {
        return Ok(());
    }
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = unsafe { libc::read(src, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n < 0 {
            return Err(Error::last("read the runtime binary", None));
        }
        if n == 0 {
            return Ok(());
        }
        crate::util::write_all(dst, &buf[..n as usize])?;
    }
}

/// The protected copy to run from, by [`CLONE_ENV`]'s choice or overlay first.
pub fn protected_copy() -> Result<RawFd> {
    let how = std::env::var(CLONE_ENV).unwrap_or_default();
    if how != "memfd" {
        match overlay_copy()? {
            Some(fd) => return Ok(fd),
            None if how == "overlay" => return Err(Error::msg("a read-only overlay of the runtime binary could not be made")),
            None => {}
        }
    }
    memfd_copy()
}

/// Make sure this process runs from a protected copy of the runtime: returns when it already
/// does; otherwise re-execs itself from one with the same arguments (and never returns), or
/// fails. Call while single-threaded, before anything is opened or forked.
pub fn ensure() -> Result<()> {
    if already_sealed() {
        return Ok(());
    }
    let fd = protected_copy()?;
    let st = stat_fd(fd)?;
    std::env::set_var(ENV, id_of(&st));
    let args: Vec<CString> = std::env::args_os().map(|a| CString::new(a.as_bytes()).unwrap_or_default()).collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend_from_slice(v.as_bytes());
            CString::new(b).unwrap_or_default()
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    unsafe { libc::syscall(libc::SYS_execveat, fd, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH) };
    let e = errno();
    close(fd);
    std::env::remove_var(ENV);
    Err(Error::sys("re-exec the runtime from its sealed copy", None, e))
}

/// Not dumpable from here on, and so are our forks until they execve (which makes the user's
/// process dumpable again): a process in the container needs CAP_SYS_PTRACE, whatever its uid
/// and capabilities, to open the `/proc/PID/` files (exe, fd/*, cwd, root, environ, mem) of the
/// runtime's processes in its pid namespace: an `exec`'d process before its execve (after it
/// has dropped to the container's credentials), an init during its setup (whose cwd and root
/// are still the host's), the `--init` PID 1 for ever. runc's init does the same.
pub fn not_dumpable() {
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

/// Where the running binary lives on the host (for messages and tests).
pub fn host_path() -> Option<PathBuf> {
    std::fs::read_link("/proc/self/exe").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_fd(fd: RawFd) -> Vec<u8> {
        let p = format!("/proc/self/fd/{fd}");
        std::fs::read(p).unwrap()
    }

    #[test]
    fn memfd_copy_is_sealed_and_whole() {
        let fd = memfd_copy().unwrap();
        let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
        assert_eq!(seals & SEALS, SEALS);
        let me = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(read_fd(fd), me);
        // Not writable, through this fd or a new open of it.
        let n = unsafe { libc::pwrite(fd, b"x".as_ptr() as *const libc::c_void, 1, 0) };
        assert!(n < 0);
        let w = std::fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{fd}"));
        if let Ok(mut f) = w {
            use std::io::Write;
            assert!(f.write(b"x").is_err());
        }
        let host = stat_path(Path::new("/proc/self/exe")).unwrap();
        let st = stat_fd(fd).unwrap();
        assert_ne!((st.st_dev, st.st_ino), (host.st_dev, host.st_ino));
        assert_eq!(unsafe { libc::ftruncate(fd, 0) }, -1);
        close(fd);
    }

    #[test]
    fn overlay_copy_is_read_only_and_another_device() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: an overlay mount needs root");
            return;
        }
        let Some(fd) = overlay_copy().unwrap() else {
            eprintln!("skipped: this kernel cannot make the overlay");
            return;
        };
        let host = stat_path(Path::new("/proc/self/exe")).unwrap();
        let st = stat_fd(fd).unwrap();
        assert_ne!(st.st_dev, host.st_dev);
        assert_eq!(read_fd(fd), std::fs::read("/proc/self/exe").unwrap());
        let e = std::fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{fd}")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
        // Its path names nothing on the host.
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert_ne!(link, host_path().unwrap());
        close(fd);
    }

    #[test]
    fn only_commands_that_enter_a_container() {
        for c in ["create", "run", "exec", "shim"] {
            assert!(enters_container(c));
        }
        for c in ["state", "kill", "delete", "ps", "list", "start", "pause", "update", "version"] {
            assert!(!enters_container(c));
        }
    }
}
