//! Small helpers: atomic file writes, RFC 3339 times, /proc/PID/stat, fd passing, pipes.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{check, Error, Result};

/// Write a file atomically: a temporary name in the same directory, then a rename over the
/// target. Readers see the old or the new content, never a mix, and a process killed at any
/// point leaves one of the two. No fsync: what this writes (runtime state under /run, pid
/// files, the exit file) is volatile or worth no disk flush on every container start and exit
/// (runc does not flush its state either); after a power loss the containers are gone anyway
/// and the engine records their exits as unknown.
pub fn atomic_write(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(|e| Error::io("create", Some(&tmp), e))?;
        f.write_all(data).map_err(|e| Error::io("write", Some(&tmp), e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("rename {} to", tmp.display()), Some(path), e))?;
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Format a UTC time as Go's RFC3339Nano (what Docker writes): fraction without trailing zeros.
pub fn rfc3339_nano(secs: i64, nanos: u32) -> String {
    let (y, mo, d) = civil(secs.div_euclid(86400));
    let s = secs.rem_euclid(86400);
    let mut out = format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

pub fn now() -> (i64, u32) {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec, ts.tv_nsec as u32)
}

pub fn now_rfc3339() -> String {
    let (s, n) = now();
    rfc3339_nano(s, n)
}

/// (state letter, start time in clock ticks) of a process, from /proc/PID/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some((f.first()?.chars().next()?, f.get(19)?.parse().ok()?))
}

/// Is `pid` the same live (non-zombie) process that started at `start_time`?
pub fn alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && matches!(proc_stat(pid), Some((st, t)) if t == start_time && st != 'Z' && st != 'X')
}

pub fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::msg("path contains NUL").with_path(p))
}

pub fn pipe() -> Result<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, "pipe2", None)?;
    Ok((fds[0], fds[1]))
}

pub fn set_nonblock(fd: RawFd) {
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

pub fn set_cloexec(fd: RawFd, on: bool) {
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFD);
        libc::fcntl(fd, libc::F_SETFD, if on { fl | libc::FD_CLOEXEC } else { fl & !libc::FD_CLOEXEC });
    }
}

pub fn close(fd: RawFd) {
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
}

pub fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        let n = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if n < 0 {
            if crate::error::errno() == libc::EINTR {
                continue;
            }
            return Err(Error::last("write", None));
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Send one fd (and a short name) over a unix socket with SCM_RIGHTS.
pub fn send_fd(sock: RawFd, fd: RawFd, name: &[u8]) -> Result<()> {
    unsafe {
        let mut iov = libc::iovec { iov_base: name.as_ptr() as *mut libc::c_void, iov_len: name.len().max(1) };
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut cbuf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut RawFd, fd);
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(Error::last("send fd over the console socket", None));
        }
    }
    Ok(())
}

/// Receive one fd sent by [`send_fd`] (or by runc-compatible callers).
pub fn recv_fd(sock: RawFd) -> Result<RawFd> {
    unsafe {
        let mut buf = [0u8; 4096];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut cbuf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        loop {
            let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 && crate::error::errno() == libc::EINTR {
                continue;
            }
            if n < 0 {
                return Err(Error::last("receive fd", None));
            }
            break;
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Err(Error::msg("receive fd: no descriptor in the message"));
        }
        Ok(std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd))
    }
}

/// Connect to a unix stream socket.
pub fn connect_unix(path: &Path) -> Result<RawFd> {
    let fd = check(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) }, "socket", None)?;
    let (addr, len) = sockaddr(path)?;
    if unsafe { libc::connect(fd, &addr as *const libc::sockaddr_un as *const libc::sockaddr, len) } < 0 {
        let e = Error::last("connect", Some(path));
        close(fd);
        return Err(e);
    }
    Ok(fd)
}

pub fn sockaddr(path: &Path) -> Result<(libc::sockaddr_un, libc::socklen_t)> {
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = path.as_os_str().as_bytes();
    if b.len() >= addr.sun_path.len() {
        return Err(Error::sys("socket path too long", Some(path), libc::ENAMETOOLONG));
    }
    for (i, c) in b.iter().enumerate() {
        addr.sun_path[i] = *c as libc::c_char;
    }
    Ok((addr, (std::mem::size_of::<libc::sa_family_t>() + b.len() + 1) as libc::socklen_t))
}

/// Listen on a unix stream socket (an existing socket file is replaced).
pub fn listen_unix(path: &Path) -> Result<RawFd> {
    let _ = std::fs::remove_file(path);
    let fd = check(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) }, "socket", None)?;
    let (addr, len) = sockaddr(path)?;
    if unsafe { libc::bind(fd, &addr as *const libc::sockaddr_un as *const libc::sockaddr, len) } < 0 || unsafe { libc::listen(fd, 16) } < 0 {
        let e = Error::last("listen on", Some(path));
        close(fd);
        return Err(e);
    }
    Ok(fd)
}

/// Block every signal we handle through a signalfd, returning the previous mask.
pub fn block_signals(sigs: &[i32]) -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
        old
    }
}

pub fn signalfd(sigs: &[i32]) -> Result<RawFd> {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        check(libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK), "signalfd", None)
    }
}

/// In a freshly forked child: empty signal mask and default dispositions, so the user's
/// process does not inherit the runtime's blocked signals.
pub fn reset_signals() {
    unsafe {
        for s in 1..32 {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                libc::signal(s, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Read the signals pending on a signalfd.
pub fn read_signals(sfd: RawFd) -> Vec<i32> {
    let mut out = Vec::new();
    loop {
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let n = unsafe { libc::read(sfd, &mut info as *mut _ as *mut libc::c_void, std::mem::size_of::<libc::signalfd_siginfo>()) };
        if n != std::mem::size_of::<libc::signalfd_siginfo>() as isize {
            return out;
        }
        out.push(info.ssi_signo as i32);
    }
}

/// Docker's exit code for a wait status: the exit status, or 128 + signal.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_like_go() {
        assert_eq!(rfc3339_nano(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nano(1_700_000_000, 123_450_000), "2023-11-14T22:13:20.12345Z");
        assert_eq!(rfc3339_nano(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
    }

    #[test]
    fn atomic_write_replaces() {
        let d = std::env::temp_dir().join(format!("dyrt-aw-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("state.json");
        atomic_write(&p, b"one", 0o600).unwrap();
        atomic_write(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
