//! `docker run --init` without a binary in the rootfs: with the annotation
//! `"dockyard.init": "true"`, the runtime's own init process stays PID 1 of the container.
//!
//! After `start`, PID 1 (already inside every namespace, after pivot_root):
//!
//! 1. names itself `dockyard-init` (comm and cmdline, so `ps` in the
//!    container shows neither the user's command nor the runtime's host command line);
//! 2. blocks the signals it forwards and opens a signalfd for them — before seccomp, so the
//!    container's filter need not allow signalfd;
//! 3. takes exactly the privileges of the user's process (seccomp, bounding set, user and
//!    groups, capabilities, no_new_privs, umask, cwd: [`ProcessSetup::prepare_exec`]), as
//!    tini does by being exec'd as the user's process: PID 1 holds nothing more than the
//!    user's process (for a non-root user, capabilities are lowered to the ambient set, as
//!    execve would);
//! 4. forks; the child (PID 2) gets a process group of its own, takes the terminal's
//!    foreground when there is one (so ^C from the tty reaches it once, not twice), restores
//!    the signal mask and execs the user's process (127/126 and the one-line error as always);
//! 5. PID 1 puts /dev/null on its own stdio and closes every other descriptor but its
//!    signalfd (so the container's output ends when the user's process closes it), forwards
//!    every signal it receives to the child only (tini's default, what
//!    `docker run --init` does; not to the group, `tini -g`), reaps every child (orphans are
//!    reparented to it; it is also a child subreaper when the container shares a pid
//!    namespace), and when the child exits, exits with its status: the exit code, or 128+N when
//!    signal N killed it. Exiting as PID 1 makes the kernel kill what is left in the pid
//!    namespace, as with tini.
//!
//! Not forwarded: SIGKILL and SIGSTOP (cannot be caught), SIGCHLD (ours), the synchronous
//! faults (SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT: they are about PID 1 itself), SIGTTIN and
//! SIGTTOU.

use crate::process::{fail, ProcessSetup};
use crate::util;

/// The annotation that asks for it.
pub const ANNOTATION: &str = "dockyard.init";

/// What PID 1 calls itself.
const NAME: &[u8] = b"dockyard-init\0";

/// Signals PID 1 forwards to the child: every catchable one except those listed in the module
/// documentation, real-time ones included.
pub fn forwarded_signals() -> Vec<i32> {
    const NOT: &[i32] = &[
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGCHLD,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGSYS,
        libc::SIGABRT,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ];
    (1..32).chain(libc::SIGRTMIN()..=libc::SIGRTMAX()).filter(|s| !NOT.contains(s)).collect()
}

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// Make /proc/self/cmdline read `dockyard-init` by overwriting our argv area in place (the
/// runtime's command line would show host paths inside the container). PR_SET_MM would need
/// CAP_SYS_RESOURCE, which the runtime may not have; this needs nothing. The area becomes
/// `dockyard-init\0` then spaces; a last byte other than NUL makes the kernel read it as one
/// string that ends at the first NUL (its setproctitle rule). Best effort.
fn set_cmdline() {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    let Some((_, rest)) = stat.rsplit_once(')') else { return };
    // Fields 48 and 49 (arg_start, arg_end); `rest` starts at field 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (Some(start), Some(end)) = (f.get(45).and_then(|v| v.parse::<usize>().ok()), f.get(46).and_then(|v| v.parse::<usize>().ok())) else { return };
    let name = &NAME[..NAME.len() - 1];
    if start == 0 || end <= start + name.len() + 1 {
        return;
    }
    let area = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, end - start) };
    area.fill(b' ');
    area[..name.len()].copy_from_slice(name);
    area[name.len()] = 0;
}

/// The user's process gets its capabilities through execve, which for a non-root user keeps
/// only the ambient ones; PID 1 never execs, so it lowers its own to the same. (For uid 0,
/// execve grants the bounding set, which is at least what PID 1 already has.) The child's
/// capabilities after its execve do not depend on this: they come from the inheritable,
/// ambient and bounding sets, which are unchanged.
fn caps_as_after_exec(setup: &ProcessSetup) -> crate::Result<()> {
    if setup.uid == 0 {
        return Ok(());
    }
    let (ambient, inheritable, bounding) = match &setup.caps {
        Some(c) => (c.ambient & c.permitted & c.inheritable, c.inheritable, c.bounding),
        None => (0, 0, 0),
    };
    crate::caps::apply(&crate::caps::Sets { bounding, effective: ambient, permitted: ambient, inheritable, ambient })
}

/// Be PID 1 for the user's process. Never returns.
pub fn run(setup: &ProcessSetup) -> ! {
    unsafe { libc::prctl(libc::PR_SET_NAME, NAME.as_ptr() as libc::c_ulong, 0, 0, 0) };
    set_cmdline();
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut sigs = forwarded_signals();
    sigs.push(libc::SIGCHLD);
    let set = sigset(&sigs);
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) };
    let sfd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    if sfd < 0 {
        fail(1, &format!("init: signalfd: {}", std::io::Error::last_os_error()));
    }
    if let Err(e) = setup.prepare_exec().and_then(|()| caps_as_after_exec(setup)) {
        fail(1, &e.to_string());
    }
    let child = unsafe { libc::fork() };
    if child < 0 {
        fail(1, &format!("init: fork: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        unsafe {
            libc::setpgid(0, 0);
            if setup.terminal {
                // A background group until this call, which would stop us with SIGTTOU.
                let ttou = sigset(&[libc::SIGTTOU]);
                libc::sigprocmask(libc::SIG_BLOCK, &ttou, std::ptr::null_mut());
                libc::tcsetpgrp(0, libc::getpid());
            }
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        }
        setup.exec()
    }
    // Both sides set the group, so a signal forwarded right away finds it either way.
    unsafe { libc::setpgid(child, child) };
    // Let go of the container's stdio and of every other descriptor (the runtime's copies of
    // the stdio pipes, the console socket: a process that execs drops them as close-on-exec,
    // PID 1 never execs): a reader sees EOF when the user's process closes its end, not when
    // PID 1 exits. (With a tty we stay its session leader all the same.)
    unsafe {
        let sfd = sfd as libc::c_uint;
        if sfd > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, sfd - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, sfd + 1, u32::MAX, 0u32);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        for fd in 0..3 {
            if null >= 0 {
                libc::dup2(null, fd);
            } else {
                libc::close(fd);
            }
        }
        if null > 2 {
            libc::close(null);
        }
    }
    loop {
        for sig in read_signals_blocking(sfd) {
            if sig != libc::SIGCHLD {
                unsafe { libc::kill(child, sig) };
            }
        }
        loop {
            let mut st = 0;
            let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if r <= 0 {
                break;
            }
            if r == child {
                // Reap what else is already dead, then go: the kernel kills the rest.
                while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
                unsafe { libc::_exit(util::exit_code(st)) };
            }
        }
    }
}

/// Wait for at least one signal on a blocking signalfd; EINTR and short reads yield nothing.
fn read_signals_blocking(sfd: i32) -> Vec<i32> {
    let mut infos: [libc::signalfd_siginfo; 8] = unsafe { std::mem::zeroed() };
    let sz = std::mem::size_of::<libc::signalfd_siginfo>();
    let n = unsafe { libc::read(sfd, infos.as_mut_ptr() as *mut libc::c_void, sz * infos.len()) };
    if n <= 0 {
        return Vec::new();
    }
    infos[..n as usize / sz].iter().map(|i| i.ssi_signo as i32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_the_usual_signals_but_not_faults() {
        let s = forwarded_signals();
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH, libc::SIGCONT, libc::SIGTSTP, libc::SIGRTMIN(), libc::SIGRTMAX()] {
            assert!(s.contains(&sig), "{sig}");
        }
        for sig in [libc::SIGKILL, libc::SIGSTOP, libc::SIGCHLD, libc::SIGSEGV, libc::SIGTTOU] {
            assert!(!s.contains(&sig), "{sig}");
        }
    }
}
