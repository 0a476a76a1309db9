//! Foreground pty proxy for `run -t` and `exec -t` without a console socket: our stdin goes to
//! the pty master, the master's output to our stdout; our terminal (if stdin is one) is put in
//! raw mode for the duration and its size follows SIGWINCH.

use std::os::fd::RawFd;

use crate::util::{set_nonblock, write_all};

pub struct Proxy {
    pub master: RawFd,
    stdin_open: bool,
    saved: Option<libc::termios>,
}

impl Proxy {
    pub fn new(master: RawFd) -> Proxy {
        set_nonblock(master);
        let mut saved = None;
        unsafe {
            if libc::isatty(0) == 1 {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(0, &mut t) == 0 {
                    saved = Some(t);
                    let mut raw = t;
                    libc::cfmakeraw(&mut raw);
                    libc::tcsetattr(0, libc::TCSANOW, &raw);
                }
            }
        }
        let p = Proxy { master, stdin_open: true, saved };
        p.winch();
        p
    }

    /// Copy our terminal's size to the pty.
    pub fn winch(&self) {
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(self.master, libc::TIOCSWINSZ, &ws);
            }
        }
    }

    pub fn pollfds(&self) -> Vec<libc::pollfd> {
        let mut v = vec![libc::pollfd { fd: self.master, events: libc::POLLIN, revents: 0 }];
        if self.stdin_open {
            v.push(libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 });
        }
        v
    }

    pub fn handle(&mut self, fds: &[libc::pollfd]) {
        for p in fds {
            if p.revents == 0 {
                continue;
            }
            if p.fd == self.master {
                self.drain();
            } else if p.fd == 0 {
                let mut buf = [0u8; 8192];
                let n = unsafe { libc::read(0, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
                if n <= 0 {
                    self.stdin_open = false;
                    // End of input: the line discipline's EOF, as a terminal user would type.
                    let _ = write_all(self.master, &[4]);
                } else {
                    let _ = write_all(self.master, &buf[..n as usize]);
                }
            }
        }
    }

    /// Copy whatever the master has to stdout.
    pub fn drain(&mut self) {
        let mut buf = [0u8; 8192];
        loop {
            let n = unsafe { libc::read(self.master, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
            if n <= 0 {
                return;
            }
            let _ = write_all(1, &buf[..n as usize]);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}
