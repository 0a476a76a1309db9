//! The typed message channel between the runtime (parent), the intermediate process and the
//! container's init: a SOCK_SEQPACKET socketpair, one message per packet, so no framing bugs.

use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::error::{check, Error, Result};

#[derive(Debug, PartialEq)]
pub enum Msg {
    /// parent → intermediate: you are in the cgroup, go on.
    Go,
    /// intermediate → parent: the init's pid (in the parent's pid namespace).
    Pid(i32),
    /// init → parent: set up and waiting for `start`.
    Ready,
    /// child → parent: setup failed.
    Fail(Error),
    /// intermediate → parent: I made the new user namespace, write my uid/gid maps (the
    /// parent answers `Go`).
    Userns,
    /// init → parent: the mounts are made, run the prestart and createRuntime hooks (the
    /// parent answers `Go`).
    Hooks,
}

pub struct Channel {
    pub fd: RawFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let mut fds = [0; 2];
    check(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) }, "socketpair", None)?;
    Ok((Channel { fd: fds[0] }, Channel { fd: fds[1] }))
}

fn encode(m: &Msg) -> Vec<u8> {
    match m {
        Msg::Go => vec![b'G'],
        Msg::Ready => vec![b'R'],
        Msg::Userns => vec![b'U'],
        Msg::Hooks => vec![b'H'],
        Msg::Pid(p) => {
            let mut v = vec![b'P'];
            v.extend_from_slice(&p.to_le_bytes());
            v
        }
        Msg::Fail(e) => {
            let mut v = vec![b'F'];
            v.extend_from_slice(&e.errno.unwrap_or(0).to_le_bytes());
            let path = e.path.as_ref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
            v.extend_from_slice(&(path.len() as u32).to_le_bytes());
            v.extend_from_slice(path.as_bytes());
            let mut ctx = e.context.clone();
            if let Some(c) = &e.cleanup {
                ctx.push_str(&format!(" (and while cleaning up: {c})"));
            }
            v.extend_from_slice(ctx.as_bytes());
            v
        }
    }
}

fn decode(b: &[u8]) -> Result<Msg> {
    let bad = || Error::msg(format!("malformed message from the container process ({} bytes)", b.len()));
    match b.first() {
        Some(b'G') => Ok(Msg::Go),
        Some(b'R') => Ok(Msg::Ready),
        Some(b'U') => Ok(Msg::Userns),
        Some(b'H') => Ok(Msg::Hooks),
        Some(b'P') if b.len() == 5 => Ok(Msg::Pid(i32::from_le_bytes(b[1..5].try_into().unwrap()))),
        Some(b'F') if b.len() >= 9 => {
            let errno = i32::from_le_bytes(b[1..5].try_into().unwrap());
            let plen = u32::from_le_bytes(b[5..9].try_into().unwrap()) as usize;
            let path = b.get(9..9 + plen).ok_or_else(bad)?;
            let ctx = String::from_utf8_lossy(&b[9 + plen..]).into_owned();
            Ok(Msg::Fail(Error {
                context: ctx,
                path: (!path.is_empty()).then(|| PathBuf::from(String::from_utf8_lossy(path).into_owned())),
                errno: (errno != 0).then_some(errno),
                cleanup: None,
            }))
        }
        _ => Err(bad()),
    }
}

impl Channel {
    pub fn send(&self, m: &Msg) -> Result<()> {
        let b = encode(m);
        if unsafe { libc::send(self.fd, b.as_ptr() as *const libc::c_void, b.len(), libc::MSG_NOSIGNAL) } < 0 {
            return Err(Error::last("send on the setup channel", None));
        }
        Ok(())
    }

    /// The next message; an error if the other side closed without a word (it died).
    pub fn recv(&self) -> Result<Msg> {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            if n < 0 {
                if crate::error::errno() == libc::EINTR {
                    continue;
                }
                return Err(Error::last("receive on the setup channel", None));
            }
            if n == 0 {
                return Err(Error::msg("the container process exited during setup without reporting why"));
            }
            return decode(&buf[..n as usize]);
        }
    }

    pub fn close(&self) {
        crate::util::close(self.fd);
    }
}

/// The parent's side of setup: `Pid` from the intermediate and `Ready` from the init, in
/// whichever order they come. Both write to the same socket from different processes, so the
/// order is not fixed: an intermediate descheduled right after its fork (a loaded machine) lets
/// a quick init report Ready first. `on_pid` runs as soon as the pid is known (reap the
/// intermediate, track the init for cleanup). A `Fail` from either ends it.
pub fn recv_pid_and_ready(parent: &Channel, on_pid: impl FnMut(i32)) -> Result<i32> {
    recv_setup(parent, on_pid, None)
}

/// [`recv_pid_and_ready`], and when the init asks for the runtime's hooks (`Hooks`), run
/// `on_hooks(pid)` once the pid is known, then answer `Go`.
pub fn recv_setup(parent: &Channel, mut on_pid: impl FnMut(i32), mut on_hooks: Option<&mut dyn FnMut(i32) -> Result<()>>) -> Result<i32> {
    let mut pid = None;
    let mut ready = false;
    let mut hooks_wanted = false;
    while pid.is_none() || !ready {
        if let (true, Some(p), Some(f)) = (hooks_wanted, pid, on_hooks.as_mut()) {
            hooks_wanted = false;
            f(p)?;
            parent.send(&Msg::Go)?;
        }
        match parent.recv()? {
            Msg::Pid(p) if pid.is_none() => {
                pid = Some(p);
                on_pid(p);
            }
            Msg::Hooks if on_hooks.is_some() => hooks_wanted = true,
            Msg::Ready if !ready => ready = true,
            Msg::Fail(e) => return Err(e),
            m => return Err(Error::msg(format!("unexpected message {m:?} during setup"))),
        }
    }
    Ok(pid.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::Pid(4242)).unwrap();
        assert_eq!(b.recv().unwrap(), Msg::Pid(4242));
        for m in [Msg::Userns, Msg::Hooks, Msg::Go, Msg::Ready] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), m);
        }
        a.send(&Msg::Fail(Error::sys("mount proc on", Some(std::path::Path::new("/r/proc")), libc::EPERM))).unwrap();
        match b.recv().unwrap() {
            Msg::Fail(e) => {
                assert_eq!(e.errno, Some(libc::EPERM));
                assert!(e.to_string().starts_with("mount proc on /r/proc: "), "{e}");
            }
            m => panic!("{m:?}"),
        }
        a.close();
        assert!(b.recv().is_err());
        b.close();
    }

    #[test]
    fn pid_and_ready_in_either_order() {
        for first_ready in [false, true] {
            let (parent, child) = pair().unwrap();
            if first_ready {
                child.send(&Msg::Ready).unwrap();
            }
            child.send(&Msg::Pid(7)).unwrap();
            if !first_ready {
                child.send(&Msg::Ready).unwrap();
            }
            let mut seen = Vec::new();
            assert_eq!(recv_pid_and_ready(&parent, |p| seen.push(p)).unwrap(), 7);
            assert_eq!(seen, vec![7]);
            child.send(&Msg::Ready).unwrap();
            child.send(&Msg::Ready).unwrap();
            assert!(recv_pid_and_ready(&parent, |_| {}).unwrap_err().to_string().contains("unexpected message Ready"));
            parent.close();
            child.close();
        }
    }
}
