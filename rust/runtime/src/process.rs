//! The container's process: what is computed before fork ([`ProcessSetup`]), the last steps
//! run in the child just before `execve` ([`ProcessSetup::finish`]), and the init's setup of
//! the container ([`init`]).
//!
//! Fork safety: the runtime never starts a thread, so the children of its forks may allocate.
//! (The shim is single-threaded too.) Everything that can fail for a reason the user should
//! see at `create` (bad capability names, seccomp profile, rlimits, mounts) is done before the
//! init reports Ready; what must happen last (user, capabilities, seccomp, exec) happens after
//! `start`, and its errors go to the container's stderr with Docker's exit codes: 127 when the
//! command is not found, 126 when it cannot be executed.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use crate::caps;
use crate::channel::{Channel, Msg};
use crate::error::{errno, Error, Result};
use crate::mounts::{self, CgroupMount, RootfsConfig};
use crate::seccomp::{self, SockFilter};
use crate::spec::{Process, Spec};
use crate::sys::{Linux, Syscall};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct ProcessSetup {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub caps: Option<caps::Sets>,
    pub no_new_privs: bool,
    pub seccomp: Option<(Vec<SockFilter>, Vec<String>)>,
    pub rlimits: Vec<(String, libc::__rlimit_resource_t, u64, u64)>,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    /// fds 3..3+N pass into the container (runc's --preserve-fds); every other fd above 2 is
    /// closed at exec, so nothing the caller leaked reaches the container.
    pub preserve_fds: u32,
    /// Stay PID 1 and run the process as its child ([`crate::init`]); `create` sets it from
    /// the `dockyard.init` annotation, `exec` never does.
    pub init: bool,
    /// Look the executable up before reporting Ready, so that a missing or non-executable
    /// command fails `create` (and `exec`) with runc's message, as runc does; the shim's
    /// create too, so the engine's start fails as dockerd's does (exit code 127/126 recorded).
    pub check_exec: bool,
}

pub fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    })
}

impl ProcessSetup {
    pub fn new(p: &Process, spec: &Spec) -> Result<ProcessSetup> {
        if p.args.is_empty() {
            return Err(Error::msg("process.args is empty"));
        }
        let caps = p.capabilities.as_ref().map(caps::Sets::from_spec).transpose()?;
        let seccomp = match &spec.linux().seccomp {
            Some(s) => Some((seccomp::compile(s)?, s.flags.clone())),
            None => None,
        };
        let mut rlimits = Vec::new();
        for r in &p.rlimits {
            let res = rlimit_resource(&r.typ).ok_or_else(|| Error::msg(format!("unknown rlimit type {:?}", r.typ)))?;
            rlimits.push((r.typ.clone(), res, r.soft, r.hard));
        }
        Ok(ProcessSetup {
            args: p.args.clone(),
            env: p.env.clone(),
            cwd: PathBuf::from(if p.cwd.is_empty() { "/" } else { &p.cwd }),
            uid: p.user.uid,
            gid: p.user.gid,
            additional_gids: p.user.additional_gids.clone(),
            umask: p.user.umask,
            caps,
            no_new_privs: p.no_new_privileges,
            seccomp,
            rlimits,
            oom_score_adj: p.oom_score_adj,
            terminal: p.terminal,
            console_size: p.console_size.map(|c| (c.height, c.width)),
            preserve_fds: 0,
            init: false,
            check_exec: false,
        })
    }

    /// setrlimit for each entry. Raising a hard limit needs CAP_SYS_RESOURCE: we never try to
    /// work around that, we say so.
    pub fn apply_rlimits(&self) -> Result<()> {
        for (name, res, soft, hard) in &self.rlimits {
            let lim = libc::rlimit { rlim_cur: *soft, rlim_max: *hard };
            if unsafe { libc::setrlimit(*res, &lim) } < 0 {
                let e = errno();
                let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                unsafe { libc::getrlimit(*res, &mut cur) };
                let why = if e == libc::EPERM && *hard > cur.rlim_max {
                    format!(": the hard limit is {} and raising it needs CAP_SYS_RESOURCE, which this runtime does not have", cur.rlim_max)
                } else {
                    String::new()
                };
                return Err(Error::sys(format!("setrlimit {name} (soft {soft}, hard {hard}){why}"), None, e));
            }
        }
        if let Some(adj) = self.oom_score_adj {
            let p = Path::new("/proc/self/oom_score_adj");
            // Already set (inherited from the intermediate, which writes it before entering a
            // user namespace: inside one, our /proc/self files belong to an unmapped root).
            if std::fs::read_to_string(p).is_ok_and(|v| v.trim() == adj.to_string()) {
                return Ok(());
            }
            std::fs::write(p, adj.to_string()).map_err(|e| Error::io(format!("set oom_score_adj to {adj}"), Some(p), e))?;
        }
        Ok(())
    }

    /// Create the working directory if missing (like runc), while still root.
    pub fn make_cwd(&self) -> Result<()> {
        if !self.cwd.is_dir() {
            std::fs::create_dir_all(&self.cwd).map_err(|e| Error::io("create working directory", Some(&self.cwd), e))?;
        }
        Ok(())
    }

    fn switch_user(&self) -> Result<()> {
        let groups: Vec<libc::gid_t> = self.additional_gids.clone();
        if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } < 0 {
            return Err(Error::last(format!("setgroups {groups:?}"), None));
        }
        if unsafe { libc::setresgid(self.gid, self.gid, self.gid) } < 0 {
            return Err(Error::last(format!("setgid {}", self.gid), None));
        }
        if unsafe { libc::setresuid(self.uid, self.uid, self.uid) } < 0 {
            return Err(Error::last(format!("setuid {}", self.uid), None));
        }
        Ok(())
    }

    fn load_seccomp(&self) -> Result<()> {
        if let Some((prog, flags)) = &self.seccomp {
            seccomp::load(prog, flags)?;
        }
        Ok(())
    }

    /// Everything between `start` and `execve`. Never returns.
    pub fn finish(&self) -> ! {
        if let Err(e) = self.prepare_exec() {
            fail(1, &e.to_string());
        }
        self.exec()
    }

    pub(crate) fn prepare_exec(&self) -> Result<()> {
        // CLOSE_RANGE_CLOEXEC (4): mark, do not close, so the exec error path can still write.
        unsafe { libc::syscall(libc::SYS_close_range, 3 + self.preserve_fds, u32::MAX, 4u32) };
        for fd in 3..3 + self.preserve_fds as i32 {
            crate::util::set_cloexec(fd, false);
        }
        // Without no_new_privs the filter must be loaded while we still hold CAP_SYS_ADMIN;
        // with it, as late as possible (after the user switch), as runc does.
        if !self.no_new_privs {
            self.load_seccomp()?;
        }
        if let Some(c) = &self.caps {
            caps::drop_bounding(c.bounding)?;
            unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
        }
        self.switch_user()?;
        if let Some(c) = &self.caps {
            unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
            caps::apply(c)?;
        }
        if self.no_new_privs {
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
                return Err(Error::last("set no_new_privs", None));
            }
            self.load_seccomp()?;
        }
        let umask = self.umask.unwrap_or(0o022);
        unsafe { libc::umask(umask as libc::mode_t) };
        let c = crate::util::cstring(&self.cwd)?;
        if unsafe { libc::chdir(c.as_ptr()) } < 0 {
            return Err(Error::last("chdir to the working directory", Some(&self.cwd)));
        }
        Ok(())
    }

    fn env_with_home(&self) -> Vec<String> {
        let mut env = self.env.clone();
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            let home = std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|s| s.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(self.uid)).then(|| f[5].to_string())
                }))
                .unwrap_or_else(|| "/".into());
            env.push(format!("HOME={home}"));
        }
        env
    }

    pub(crate) fn exec(&self) -> ! {
        let arg0 = &self.args[0];
        let path_env = self.env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH).to_string();
        let path = match lookup(arg0, &path_env) {
            Ok(p) => p,
            Err((code, msg)) => fail(code, &msg),
        };
        let cargs: Vec<CString> = self.args.iter().map(|a| CString::new(a.as_bytes()).unwrap_or_default()).collect();
        let cenv: Vec<CString> = self.env_with_home().iter().map(|a| CString::new(a.as_bytes()).unwrap_or_default()).collect();
        let mut argv: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = cenv.iter().map(|c| c.as_ptr()).collect();
        envp.push(std::ptr::null());
        let cpath = crate::util::cstring(&path).unwrap_or_default();
        unsafe { libc::execve(cpath.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let e = errno();
        let (code, what) = match e {
            libc::ENOENT => (127, "no such file or directory"),
            libc::EACCES => (126, "permission denied"),
            libc::ENOEXEC => (126, "exec format error"),
            _ => (126, ""),
        };
        let what = if what.is_empty() { std::io::Error::from_raw_os_error(e).to_string() } else { what.to_string() };
        fail(code, &format!("exec: {:?}: {what}", path.display().to_string()))
    }
}

/// runc's create-time check of `args[0]` (Go's `exec.LookPath` in the container, after the
/// chdir to `cwd`), with its messages: `exec: "/x": stat /x: no such file or directory`,
/// `exec: "/etc/passwd": permission denied`, `exec: "x": executable file not found in $PATH`.
pub fn runc_lookpath(arg0: &str, path_env: &str, cwd: &Path) -> std::result::Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let find = |p: &Path| -> std::result::Result<(), String> {
        let abs = if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) };
        match std::fs::metadata(&abs) {
            Err(e) => {
                let text = e.to_string();
                let text = text.split(" (os error").next().unwrap_or(&text).to_lowercase();
                Err(format!("stat {}: {text}", p.display()))
            }
            Ok(m) if !m.is_dir() && m.permissions().mode() & 0o111 != 0 => Ok(()),
            Ok(_) => Err("permission denied".into()),
        }
    };
    if arg0.contains('/') {
        return find(Path::new(arg0)).map(|_| PathBuf::from(arg0)).map_err(|e| format!("exec: {arg0:?}: {e}"));
    }
    for dir in path_env.split(':') {
        let p = Path::new(if dir.is_empty() { "." } else { dir }).join(arg0);
        if find(&p).is_ok() {
            return Ok(p);
        }
    }
    Err(format!("exec: {arg0:?}: executable file not found in $PATH"))
}

impl ProcessSetup {
    /// [`runc_lookpath`] for this process, as an error `create`/`exec` report.
    pub fn check_executable(&self) -> Result<()> {
        if !self.check_exec {
            return Ok(());
        }
        let path_env = self.env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or("");
        runc_lookpath(&self.args[0], path_env, &self.cwd).map(|_| ()).map_err(|m| Error::msg(format!("unable to start container process: {m}")))
    }
}

/// Where [`fail`] reports: stderr (2), or the pipe of `exec --start-fd` (see [`set_fail_fd`]).
static FAIL_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(2);

/// From now on (in this process: set after the fork), [`fail`] writes its bare message to `fd`
/// instead of a line to stderr: the caller learns that the process never started, apart from
/// what the process itself might print or its exit status.
pub fn set_fail_fd(fd: RawFd) {
    FAIL_FD.store(fd, std::sync::atomic::Ordering::Relaxed);
}

/// Write one line to stderr (or the message to the fail fd) and exit, without running any
/// destructor.
pub fn fail(code: i32, msg: &str) -> ! {
    let fd = FAIL_FD.load(std::sync::atomic::Ordering::Relaxed);
    let line = if fd == 2 { format!("dockyard-runtime: {msg}\n") } else { msg.to_string() };
    let _ = crate::util::write_all(fd, line.as_bytes());
    unsafe { libc::_exit(code) }
}

/// Find the executable the way execvp would, with Docker's exit codes for the failures:
/// 127 not found, 126 found but not executable.
pub fn lookup(arg0: &str, path_env: &str) -> std::result::Result<PathBuf, (i32, String)> {
    let executable = |p: &Path| -> std::result::Result<(), (i32, String)> {
        let c = crate::util::cstring(p).map_err(|e| (126, e.to_string()))?;
        match std::fs::metadata(p) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) || e.raw_os_error() == Some(libc::ENOTDIR) => {
                Err((127, format!("exec: {:?}: no such file or directory", p.display().to_string())))
            }
            Err(e) => Err((126, format!("exec: {:?}: {e}", p.display().to_string()))),
            Ok(m) if m.is_dir() => Err((126, format!("exec: {:?}: is a directory", p.display().to_string()))),
            Ok(_) if unsafe { libc::access(c.as_ptr(), libc::X_OK) } < 0 => Err((126, format!("exec: {:?}: permission denied", p.display().to_string()))),
            Ok(_) => Ok(()),
        }
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        executable(&p)?;
        return Ok(p);
    }
    let mut denied: Option<(i32, String)> = None;
    for dir in path_env.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(arg0);
        match executable(&p) {
            Ok(()) => return Ok(p),
            Err((126, m)) => {
                denied.get_or_insert((126, m));
            }
            Err(_) => {}
        }
    }
    Err(denied.unwrap_or((127, format!("exec: {arg0:?}: executable file not found in $PATH"))))
}

/// Open a pty pair from the container's /dev/ptmx, make the slave our controlling terminal and
/// stdio, send the master over `console_sock`.
pub fn setup_console(console_sock: RawFd, size: Option<(u16, u16)>, bind_console: bool) -> Result<()> {
    let ptmx = CString::new("/dev/ptmx").unwrap();
    let master = unsafe { libc::open(ptmx.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if master < 0 {
        return Err(Error::last("open", Some(Path::new("/dev/ptmx"))));
    }
    let mut unlock: libc::c_int = 0;
    let mut n: libc::c_uint = 0;
    if unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &mut unlock) } < 0 || unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut n) } < 0 {
        return Err(Error::last("unlock pty", Some(Path::new("/dev/ptmx"))));
    }
    let slave_path = PathBuf::from(format!("/dev/pts/{n}"));
    let cs = crate::util::cstring(&slave_path)?;
    let slave = unsafe { libc::open(cs.as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
    if slave < 0 {
        return Err(Error::last("open pty slave", Some(&slave_path)));
    }
    if let Some((rows, cols)) = size {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) };
    }
    if bind_console {
        let console = Path::new("/dev/console");
        Linux.touch(console)?;
        Linux.mount(Some(&slave_path.to_string_lossy()), console, Some("bind"), libc::MS_BIND as u64, None)?;
    }
    crate::util::send_fd(console_sock, master, b"/dev/ptmx")?;
    crate::util::close(master);
    crate::util::close(console_sock);
    for fd in 0..3 {
        if unsafe { libc::dup2(slave, fd) } < 0 {
            return Err(Error::last(format!("dup2 pty onto fd {fd}"), None));
        }
    }
    if slave > 2 {
        crate::util::close(slave);
    }
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(Error::last("make the pty the controlling terminal", Some(&slave_path)));
    }
    Ok(())
}

/// Put `fds` on 0, 1, 2 (the shim's pipes).
pub fn install_stdio(fds: [RawFd; 3]) -> Result<()> {
    for (i, fd) in fds.iter().enumerate() {
        if *fd != i as RawFd && unsafe { libc::dup2(*fd, i as RawFd) } < 0 {
            return Err(Error::last(format!("dup2 onto fd {i}"), None));
        }
        crate::util::set_cloexec(i as RawFd, false);
    }
    Ok(())
}

/// Everything the init needs; all of it computed in the parent before the fork.
pub struct InitArgs<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub cgroup_mount: Option<CgroupMount>,
    pub setup: &'a ProcessSetup,
    pub chan: &'a Channel,
    /// Read end of the exec fifo (opened O_RDWR so it never blocks at open).
    pub fifo_fd: RawFd,
    pub console_fd: Option<RawFd>,
    pub stdio: Option<[RawFd; 3]>,
    /// Join a new session keyring `_ses.ID` (runc's default; `--no-new-keyring` turns it off),
    /// so the container does not share the caller's keys.
    pub new_keyring: bool,
}

/// runc's session keyring: join a new one named `_ses.ID` and let its user search it.
/// A kernel without keyrings (ENOSYS) or one that refuses (a user namespace's quota) is skipped,
/// as runc does for rootless containers.
pub fn join_session_keyring(id: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    const KEYCTL_SETPERM: libc::c_long = 5;
    const KEYCTL_DESCRIBE: libc::c_long = 6;
    let name = CString::new(format!("_ses.{id}")).map_err(|_| Error::msg("container id has a NUL"))?;
    let k = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if k < 0 {
        let e = errno();
        if matches!(e, libc::ENOSYS | libc::EDQUOT | libc::EACCES) {
            return Ok(());
        }
        return Err(Error::sys("join a new session keyring", None, e));
    }
    let mut buf = vec![0u8; 512];
    let n = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_DESCRIBE, k, buf.as_mut_ptr(), buf.len()) };
    // "type;uid;gid;perm;description"
    let perm = (n > 0)
        .then(|| String::from_utf8_lossy(&buf[..(n as usize).min(buf.len())]).split(';').nth(3).and_then(|p| u32::from_str_radix(p, 16).ok()))
        .flatten();
    if let Some(perm) = perm {
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, k, perm | 0x0008_0000) };
    }
    Ok(())
}

/// The container's init: set up, report Ready, wait for `start`, exec. Never returns.
pub fn init(a: InitArgs) -> ! {
    if let Err(e) = init_setup(&a) {
        let _ = a.chan.send(&Msg::Fail(e));
        unsafe { libc::_exit(1) };
    }
    if a.chan.send(&Msg::Ready).is_err() {
        unsafe { libc::_exit(1) };
    }
    a.chan.close();
    // Kept open until the exec (below), the fifo must not sit among the fds the process is
    // given (--preserve-fds: 3..3+N), or it would outlive the exec and `start` would wait on.
    let mut fifo_fd = a.fifo_fd;
    let first_free = 3 + a.setup.preserve_fds as RawFd;
    if fifo_fd < first_free {
        let moved = unsafe { libc::fcntl(fifo_fd, libc::F_DUPFD_CLOEXEC, first_free) };
        if moved >= 0 {
            crate::util::close(fifo_fd);
            fifo_fd = moved;
        }
    }
    let mut b = [0u8; 1];
    loop {
        let n = unsafe { libc::read(fifo_fd, b.as_mut_ptr() as *mut libc::c_void, 1) };
        if n == 1 {
            break;
        }
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        unsafe { libc::_exit(1) };
    }
    // The fifo stays open (close-on-exec) until the exec: `start` learns from its last reader
    // going away that the user's process runs, and only then runs the poststart hooks.
    if a.setup.init {
        crate::util::close(fifo_fd);
    }
    if let Some(h) = a.spec.hooks.as_ref().filter(|h| !h.start_container.is_empty()) {
        let state = crate::hooks::state_json(a.id, "created", unsafe { libc::getpid() }, &a.bundle.to_string_lossy(), &a.spec.annotations);
        if let Err(e) = crate::hooks::run_all("startContainer", &h.start_container, &state) {
            fail(1, &e.to_string());
        }
    }
    if a.setup.init {
        crate::init::run(a.setup)
    }
    a.setup.finish()
}

fn init_setup(a: &InitArgs) -> Result<()> {
    unsafe { libc::setsid() };
    if a.new_keyring {
        join_session_keyring(a.id)?;
    }
    if let Some(fds) = a.stdio {
        install_stdio(fds)?;
    }
    let sys = Linux;
    let linux = a.spec.linux();
    if a.spec.namespace("mount").is_none() {
        return Err(Error::msg("the config has no mount namespace; this runtime needs one to set up the rootfs"));
    }
    unsafe { libc::umask(0) };
    let cfg = RootfsConfig { spec: a.spec, bundle: a.bundle, rootfs: a.rootfs, cgroup: a.cgroup_mount.clone() };
    let pending = mounts::prepare_rootfs(&sys, &cfg)?;
    if let Some(h) = &a.spec.hooks {
        // The runtime's hooks (prestart, createRuntime) run now, in its namespaces; then the
        // createContainer hooks, here in the container's, before pivot_root.
        if !h.prestart.is_empty() || !h.create_runtime.is_empty() {
            a.chan.send(&Msg::Hooks)?;
            match a.chan.recv()? {
                Msg::Go => {}
                m => return Err(Error::msg(format!("unexpected message {m:?} while waiting for the runtime's hooks"))),
            }
        }
        let state = crate::hooks::state_json(a.id, "creating", unsafe { libc::getpid() }, &a.bundle.to_string_lossy(), &a.spec.annotations);
        crate::hooks::run_all("createContainer", &h.create_container, &state)?;
    }
    mounts::pivot(&sys, a.rootfs)?;
    unsafe { libc::umask(0o022) };
    if a.setup.terminal {
        let fd = a.console_fd.ok_or_else(|| Error::msg("process.terminal is set but no console socket was given"))?;
        setup_console(fd, a.setup.console_size, true)?;
    }
    if let Some(h) = a.spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        if a.spec.namespace("uts").is_none() {
            return Err(Error::msg("hostname is set but the config has no uts namespace"));
        }
        sys.sethostname(h)?;
    }
    if let Some(d) = a.spec.domainname.as_deref().filter(|d| !d.is_empty()) {
        if a.spec.namespace("uts").is_none() {
            return Err(Error::msg("domainname is set but the config has no uts namespace"));
        }
        // (the UTS namespace's own setting: what setdomainname(2) sets)
        sys.write_file(Path::new("/proc/sys/kernel/domainname"), d).map_err(|e| e.wrap("set the domainname"))?;
    }
    for (k, v) in &linux.sysctl {
        let p = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        sys.write_file(&p, v).map_err(|e| e.wrap(format!("sysctl {k}={v}")))?;
    }
    mounts::finalize(&sys, a.spec, &pending)?;
    a.setup.apply_rlimits()?;
    a.setup.make_cwd()?;
    a.setup.check_executable()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_lookpath_messages() {
        let cwd = Path::new("/");
        assert_eq!(runc_lookpath("sh", "/nonexistent:/bin", cwd).unwrap(), PathBuf::from("/bin/sh"));
        assert_eq!(runc_lookpath("/nonexistent", "/bin", cwd).unwrap_err(), r#"exec: "/nonexistent": stat /nonexistent: no such file or directory"#);
        assert_eq!(runc_lookpath("nope-dy", "/bin", cwd).unwrap_err(), r#"exec: "nope-dy": executable file not found in $PATH"#);
        assert_eq!(runc_lookpath("/etc/passwd", "", cwd).unwrap_err(), r#"exec: "/etc/passwd": permission denied"#);
        assert_eq!(runc_lookpath("/", "", cwd).unwrap_err(), r#"exec: "/": permission denied"#);
        // relative with a slash: from the working directory
        assert_eq!(runc_lookpath("bin/sh", "", cwd).unwrap(), PathBuf::from("bin/sh"));
        assert!(runc_lookpath("bin/sh", "", Path::new("/nonexistent")).unwrap_err().contains("stat bin/sh: no such file"));
    }

    #[test]
    fn lookup_codes() {
        assert_eq!(lookup("sh", "/nonexistent:/bin").unwrap(), PathBuf::from("/bin/sh"));
        assert_eq!(lookup("no-such-cmd-dy", "/bin:/usr/bin").unwrap_err().0, 127);
        assert!(lookup("no-such-cmd-dy", "/bin").unwrap_err().1.contains("executable file not found in $PATH"));
        assert_eq!(lookup("/no/such/file", "").unwrap_err().0, 127);
        assert_eq!(lookup("/etc/passwd", "").unwrap_err().0, 126);
        assert_eq!(lookup("/", "").unwrap_err().0, 126);
    }
}
