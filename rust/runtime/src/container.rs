//! The lifecycle verbs: create, start, kill, delete, pause, resume, ps; and waiting for a
//! container we supervise (run, shim).
//!
//! Process structure of `create`:
//!
//! ```text
//! runtime (parent) ── fork ──> intermediate ── setns(paths), unshare(new ns) ── fork ──> init
//!      │  sends Go                  (enters the cgroup itself) │ sends Pid(init), exits      │
//!      │  <──────────────────────── Pid ─────────────────────────┘                              │
//!      │  <─────────────────────── Ready | Fail ─────────────────────────────────────────────────┘
//!      └─ writes state.json, exits.      init: rootfs, pivot_root, console, hostname, sysctl,
//!                                        masks, rlimits; then blocks on exec.fifo until `start`
//! ```
//!
//! The intermediate is needed because a new pid namespace (and a joined one) applies only to
//! children of the process that unshares it; the init, its child, is pid 1 in it.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use crate::cgroups::{self, CgroupManager};
use crate::channel::{self, Msg};
use crate::error::{check, errno, Error, Result};
use crate::process::{self, InitArgs, ProcessSetup};
use crate::spec::Spec;
use crate::state::{valid_id, Container, State, Status};
use crate::util::{self, alive, atomic_write, close, proc_stat};

pub fn ns_flag(typ: &str) -> Result<libc::c_int> {
    Ok(match typ {
        "pid" => libc::CLONE_NEWPID,
        "network" => libc::CLONE_NEWNET,
        "mount" => libc::CLONE_NEWNS,
        "ipc" => libc::CLONE_NEWIPC,
        "uts" => libc::CLONE_NEWUTS,
        "cgroup" => libc::CLONE_NEWCGROUP,
        "user" => libc::CLONE_NEWUSER,
        t => return Err(Error::msg(format!("unknown namespace type {t:?}"))),
    })
}

/// A new network namespace has its loopback down. runc brings it up (its "loopback" network),
/// and so do we: a container given no network (`--network none`) still has 127.0.0.1.
pub fn loopback_up() -> Result<()> {
    let s = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }, "socket for lo", None)?;
    // SAFETY: a zeroed ifreq is a valid one; the name is NUL-terminated and the ioctls fill or
    // read the flags only
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, b) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *b as libc::c_char;
    }
    let r = (|| {
        check(unsafe { libc::ioctl(s, libc::SIOCGIFFLAGS as _, &mut req) }, "get the flags of lo", None)?;
        unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        check(unsafe { libc::ioctl(s, libc::SIOCSIFFLAGS as _, &req) }, "bring lo up", None)?;
        Ok(())
    })();
    close(s);
    r
}

/// Namespaces to join (opened fd, type flag) and to create (flags), from the config.
pub struct Namespaces {
    pub join: Vec<(RawFd, libc::c_int, PathBuf)>,
    pub new_flags: libc::c_int,
}

impl Namespaces {
    pub fn from_spec(spec: &Spec) -> Result<Namespaces> {
        let mut join = Vec::new();
        let mut new_flags = 0;
        for ns in &spec.linux().namespaces {
            let flag = ns_flag(&ns.typ)?;
            match ns.path.as_deref().filter(|p| !p.is_empty()) {
                Some(p) => {
                    let c = util::cstring(Path::new(p))?;
                    let fd = check(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }, &format!("open {} namespace", ns.typ), Some(Path::new(p)))?;
                    join.push((fd, flag, PathBuf::from(p)));
                }
                None => new_flags |= flag,
            }
        }
        // Join the user namespace first (it owns the others) and the mount namespace last (the
        // other paths must still resolve), as runc's nsexec.
        join.sort_by_key(|(_, f, _)| if *f == libc::CLONE_NEWUSER { 0 } else if *f == libc::CLONE_NEWNS { 2 } else { 1 });
        let linux = spec.linux();
        let userns = spec.namespace("user").is_some();
        if userns && (linux.uid_mappings.is_empty() || linux.gid_mappings.is_empty()) && new_flags & libc::CLONE_NEWUSER != 0 {
            return Err(Error::msg("user namespaces enabled, but no uid or gid mappings found (linux.uidMappings, linux.gidMappings)"));
        }
        if !userns && (!linux.uid_mappings.is_empty() || !linux.gid_mappings.is_empty()) {
            return Err(Error::msg("linux.uidMappings or linux.gidMappings set, but the config has no user namespace"));
        }
        Ok(Namespaces { join, new_flags })
    }

    /// In the intermediate process: join the namespaces given by path, then make the new
    /// ones. A new user namespace comes first and alone: `chan` asks the parent to write its
    /// uid/gid maps and waits for its `Go`; then we become its root and make the others, which
    /// it owns.
    pub fn enter(&self, chan: Option<&channel::Channel>) -> Result<()> {
        for (fd, flag, path) in &self.join {
            if unsafe { libc::setns(*fd, *flag) } < 0 {
                return Err(Error::last("setns", Some(path)));
            }
        }
        let mut rest = self.new_flags;
        if rest & libc::CLONE_NEWUSER != 0 {
            if unsafe { libc::unshare(libc::CLONE_NEWUSER) } < 0 {
                return Err(Error::last("unshare the user namespace", None));
            }
            if let Some(c) = chan {
                c.send(&Msg::Userns)?;
                match c.recv()? {
                    Msg::Go => {}
                    m => return Err(Error::msg(format!("unexpected message {m:?} while waiting for the id maps"))),
                }
            }
            rest &= !libc::CLONE_NEWUSER;
        }
        if self.join.iter().any(|(_, f, _)| *f == libc::CLONE_NEWUSER) || self.new_flags & libc::CLONE_NEWUSER != 0 {
            if unsafe { libc::setresgid(0, 0, 0) } < 0 || unsafe { libc::setresuid(0, 0, 0) } < 0 {
                return Err(Error::last("become root in the user namespace (is uid/gid 0 mapped?)", None));
            }
        }
        if rest != 0 && unsafe { libc::unshare(rest) } < 0 {
            return Err(Error::last(format!("unshare namespaces {rest:#x}"), None));
        }
        if rest & libc::CLONE_NEWNET != 0 {
            loopback_up()?;
        }
        Ok(())
    }

    pub fn close(&self) {
        for (fd, _, _) in &self.join {
            close(*fd);
        }
    }
}

/// runc's default device rules (libcontainer/specconv `AllowedDevices`, as runc 1.1 writes
/// them): mknod of any character or block device, and read/write/mknod of the devices every
/// container needs (null, zero, full, random, urandom, tty, ptmx, the pts slaves, which
/// include the /dev/console runc binds from one; and /dev/net/tun, kept in runc 1.1). runc adds them
/// after the spec's own rules, so a config that only denies everything (podman's) still gets
/// a usable /dev; the device nodes themselves are made by [`crate::mounts::setup_dev`].
pub const DEFAULT_DEVICE_RULES: &[(&str, i64, i64, &str)] = &[
    ("c", -1, -1, "m"),
    ("b", -1, -1, "m"),
    ("c", 1, 3, "rwm"),
    ("c", 1, 8, "rwm"),
    ("c", 1, 7, "rwm"),
    ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"),
    ("c", 1, 9, "rwm"),
    ("c", 136, -1, "rwm"),
    ("c", 5, 2, "rwm"),
    ("c", 10, 200, "rwm"),
];

/// The spec's resources with runc's default device rules appended.
pub fn with_default_devices(r: Option<&crate::spec::Resources>) -> crate::spec::Resources {
    let mut r = r.cloned().unwrap_or_default();
    for (typ, major, minor, access) in DEFAULT_DEVICE_RULES {
        let num = |n: i64| (n >= 0).then_some(n);
        r.devices.push(crate::spec::DeviceCgroup { allow: true, typ: Some(typ.to_string()), major: num(*major), minor: num(*minor), access: Some(access.to_string()) });
    }
    r
}

/// config.md: an invalid or unsupported value is an error: `ociVersion` must be SemVer 1.x.y
/// (a pre-release suffix such as "-dev" is fine). An absent one is taken as ours.
pub fn check_oci_version(v: &str) -> Result<()> {
    if v.is_empty() {
        return Ok(());
    }
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !numeric || parts[0] != "1" {
        return Err(Error::msg(format!("unsupported ociVersion {v:?}: this runtime implements the OCI runtime spec 1.x")));
    }
    Ok(())
}

/// Write `linux.uidMappings`/`gidMappings` for `pid`, which has just made its user namespace.
fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let lines = |maps: &[serde_json::Value]| -> String {
        maps.iter()
            .map(|m| {
                let n = |k: &str| m.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                format!("{} {} {}\n", n("containerID"), n("hostID"), n("size"))
            })
            .collect()
    };
    let linux = spec.linux();
    for (file, maps) in [("uid_map", &linux.uid_mappings), ("gid_map", &linux.gid_mappings)] {
        let p = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&p, lines(maps)).map_err(|e| Error::io(format!("write {file}"), Some(&p), e))?;
    }
    Ok(())
}

pub struct CreateOpts<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub pid_file: Option<&'a Path>,
    /// Path of a unix socket to send the pty master to (runc's --console-socket).
    pub console_socket: Option<&'a Path>,
    /// An already connected console socket (shim and `run -t` use a socketpair).
    pub console_fd: Option<RawFd>,
    /// fds to become the container's stdin, stdout, stderr (default: inherit ours).
    pub stdio: Option<[RawFd; 3]>,
    /// Force process.terminal on (the shim's --tty).
    pub terminal: bool,
    /// Pass fds 3..3+N to the container's process.
    pub preserve_fds: u32,
    /// runc's `--no-new-keyring`: keep the caller's session keyring.
    pub no_new_keyring: bool,
}

/// Undo a half-made container.
struct Cleanup<'a> {
    dir: Option<PathBuf>,
    cgroup: Option<&'a dyn CgroupManager>,
    pids: Vec<i32>,
}

impl Cleanup<'_> {
    fn run(&mut self, err: Error) -> Error {
        for p in &self.pids {
            unsafe { libc::kill(*p, libc::SIGKILL) };
            let mut st = 0;
            unsafe { libc::waitpid(*p, &mut st, 0) };
        }
        let mut err = err;
        if let Some(cg) = self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            if let Err(e) = cg.destroy() {
                err = err.with_cleanup(e);
            }
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
        err
    }
}

pub fn create(o: &CreateOpts) -> Result<Container> {
    valid_id(o.id)?;
    let bundle = std::fs::canonicalize(o.bundle).map_err(|e| Error::io("bundle", Some(o.bundle), e))?;
    let mut spec = Spec::load(&bundle.join("config.json"))?;
    check_oci_version(&spec.oci_version)?;
    if o.terminal {
        if let Some(p) = spec.process.as_mut() {
            p.terminal = true;
        }
    }
    let proc_ = spec.process()?;
    let root_path = spec.root.as_ref().map(|r| r.path.as_str()).unwrap_or("rootfs");
    let rootfs = std::fs::canonicalize(bundle.join(root_path)).map_err(|e| Error::io("rootfs", Some(&bundle.join(root_path)), e))?;
    if proc_.terminal && o.console_socket.is_none() && o.console_fd.is_none() {
        return Err(Error::msg("process.terminal is set: a --console-socket is needed to hand over the pty"));
    }
    // A bad overlay annotation is a `create` error before anything is made.
    crate::overlay::Overlay::from_spec(&spec)?;
    let mut setup = ProcessSetup::new(proc_, &spec)?;
    setup.preserve_fds = o.preserve_fds;
    setup.init = spec.annotations.get(crate::init::ANNOTATION).is_some_and(|v| v == "true");
    // `create` fails when the command cannot be found or executed, as runc's does (the shim's
    // too); with our init as PID 1 the command is its child: it reports 127/126 as docker-init
    // does.
    setup.check_exec = !setup.init;

    std::fs::create_dir_all(o.root).map_err(|e| Error::io("create state root", Some(o.root), e))?;
    let dir = Container::dir_of(o.root, o.id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Err(Error::msg(format!("container {:?} already exists", o.id))),
        Err(e) => return Err(Error::io("create state directory", Some(&dir), e)),
    }
    let mut cleanup = Cleanup { dir: Some(dir.clone()), cgroup: None, pids: Vec::new() };
    let cg = match cgroups::open(spec.linux().cgroups_path.as_deref(), o.id) {
        Ok(cg) => cg,
        Err(e) => return Err(cleanup.run(e)),
    };
    match create_inner(o, &spec, &bundle, &rootfs, &setup, &dir, cg.as_ref(), &mut cleanup) {
        Ok(c) => Ok(c),
        Err(e) => Err(cleanup.run(e)),
    }
}

#[allow(clippy::too_many_arguments)]
fn create_inner<'a>(o: &CreateOpts, spec: &Spec, bundle: &Path, rootfs: &Path, setup: &ProcessSetup, dir: &Path, cg: &'a dyn CgroupManager, cleanup: &mut Cleanup<'a>) -> Result<Container> {
    let config = serde_json::to_vec(spec).map_err(|e| Error::msg(format!("encode config: {e}")))?;
    atomic_write(&dir.join("config.json"), &config, 0o600)?;
    let fifo = dir.join("exec.fifo");
    let cfifo = util::cstring(&fifo)?;
    check(unsafe { libc::mkfifo(cfifo.as_ptr(), 0o622) }, "mkfifo", Some(&fifo))?;
    let fifo_fd = check(unsafe { libc::open(cfifo.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) }, "open", Some(&fifo))?;

    cleanup.cgroup = Some(cg);
    cg.create()?;
    cg.set(&with_default_devices(spec.linux().resources.as_ref()))?;
    let ns = Namespaces::from_spec(spec)?;
    let cgroupns = ns.new_flags & libc::CLONE_NEWCGROUP != 0;
    let console_fd = match (o.console_fd, o.console_socket) {
        (Some(fd), _) => Some(fd),
        (None, Some(p)) if setup.terminal => Some(util::connect_unix(p).map_err(|e| e.wrap("console socket"))?),
        _ => None,
    };
    let (parent, child) = channel::pair()?;
    let args = InitArgs {
        id: o.id,
        spec,
        bundle,
        rootfs,
        cgroup_mount: Some(cg.mount_info(cgroupns)),
        setup,
        chan: &child,
        fifo_fd,
        console_fd,
        stdio: o.stdio,
        new_keyring: !o.no_new_keyring,
    };

    let inter = unsafe { libc::fork() };
    if inter < 0 {
        return Err(Error::last("fork", None));
    }
    if inter == 0 {
        // Intermediate.
        util::reset_signals();
        parent.close();
        match child.recv() {
            Ok(Msg::Go) => {}
            _ => unsafe { libc::_exit(1) },
        }
        if let Some(adj) = setup.oom_score_adj {
            let _ = std::fs::write("/proc/self/oom_score_adj", adj.to_string());
        }
        // Into the cgroup first (the init, forked below, is born in it), then the namespaces.
        if let Err(e) = cg.enter().and_then(|_| ns.enter(Some(&child))) {
            let _ = child.send(&Msg::Fail(e));
            unsafe { libc::_exit(1) };
        }
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let _ = child.send(&Msg::Fail(Error::last("fork init", None)));
            unsafe { libc::_exit(1) };
        }
        if pid == 0 {
            process::init(args);
        }
        let _ = child.send(&Msg::Pid(pid));
        unsafe { libc::_exit(0) };
    }
    child.close();
    close(fifo_fd);
    ns.close();
    if o.console_fd.is_none() {
        if let Some(fd) = console_fd {
            close(fd);
        }
    }
    cleanup.pids.push(inter);
    let result = (|| -> Result<i32> {
        parent.send(&Msg::Go)?;
        if ns.new_flags & libc::CLONE_NEWUSER != 0 {
            match parent.recv()? {
                Msg::Userns => {}
                Msg::Fail(e) => return Err(e),
                m => return Err(Error::msg(format!("unexpected message {m:?} during setup"))),
            }
            write_id_maps(inter, spec)?;
            parent.send(&Msg::Go)?;
        }
        let bundle_s = bundle.to_string_lossy().into_owned();
        let mut run_hooks = |pid: i32| -> Result<()> {
            let Some(h) = &spec.hooks else { return Ok(()) };
            // prestart is specified as "after the start operation is called" (deprecated, run
            // here as runc does): its state says created, as runtime-tools' hooks_stdin wants;
            // createRuntime's says creating.
            let state = crate::hooks::state_json(o.id, "created", pid, &bundle_s, &spec.annotations);
            crate::hooks::run_all("prestart", &h.prestart, &state)?;
            let state = crate::hooks::state_json(o.id, "creating", pid, &bundle_s, &spec.annotations);
            crate::hooks::run_all("createRuntime", &h.create_runtime, &state)
        };
        let pid = channel::recv_setup(&parent, |pid| {
            let mut st = 0;
            unsafe { libc::waitpid(inter, &mut st, 0) };
            cleanup.pids.clear();
            cleanup.pids.push(pid);
        }, Some(&mut run_hooks))?;
        Ok(pid)
    })();
    parent.close();
    let pid = result?;
    let start = proc_stat(pid).map(|s| s.1).ok_or_else(|| Error::msg("the container's init exited during setup"))?;
    let state = State {
        id: o.id.to_string(),
        pid,
        bundle: bundle.to_string_lossy().into_owned(),
        rootfs: rootfs.to_string_lossy().into_owned(),
        created: util::now_rfc3339(),
        annotations: spec.annotations.clone(),
        init_start_time: start,
        cgroup_version: cg.version(),
        cgroup_path: cg.path().to_string(),
        own_pidns: spec.namespace("pid").is_some_and(|n| n.path.as_deref().unwrap_or("").is_empty()),
    };
    let c = Container { dir: dir.to_path_buf(), state };
    c.save()?;
    if let Some(p) = o.pid_file {
        atomic_write(p, pid.to_string().as_bytes(), 0o644)?;
    }
    cleanup.pids.clear();
    Ok(c)
}

/// Let the init go on to exec the user's process.
pub fn start(root: &Path, id: &str) -> Result<Container> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Created => {}
        s => return Err(Error::msg(format!("cannot start container {id:?}: it is {}", s.as_str()))),
    }
    let fifo = c.fifo();
    let cf = util::cstring(&fifo)?;
    let fd = unsafe { libc::open(cf.as_ptr(), libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = errno();
        if e == libc::ENXIO {
            return Err(Error::msg(format!("cannot start container {id:?}: its init is gone")));
        }
        return Err(Error::sys("open", Some(&fifo), e));
    }
    let r = util::write_all(fd, b"0");
    let spec = Spec::load(&c.dir.join("config.json")).ok();
    if r.is_ok() {
        // The init holds the fifo's read end until its exec (or death): POLLERR on our write
        // end says it is gone. So `start` returns once the user's process was executed, as
        // runc's (which reads the fifo to EOF): a signal sent right after `start` reaches the
        // user's process, not the runtime's code before the exec (where a pid namespace's init
        // without a handler drops it), and poststart hooks run after the exec.
        let mut p = libc::pollfd { fd, events: 0, revents: 0 };
        while unsafe { libc::poll(&mut p, 1, -1) } < 0 && errno() == libc::EINTR {}
    }
    close(fd);
    r?;
    let _ = std::fs::remove_file(&fifo);
    // poststart: after the user's process started; a failure is a warning (runtime spec).
    if let Some(spec) = spec {
        if let Some(h) = spec.hooks.as_ref().filter(|h| !h.poststart.is_empty()) {
            let state = crate::hooks::state_json(id, "running", c.state.pid, &c.state.bundle, &c.state.annotations);
            crate::hooks::run_all_warn("poststart", &h.poststart, &state);
        }
    }
    Ok(c)
}

pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" | "CLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            if let Some(rest) = name.strip_prefix("RTMIN+") {
                let k: i32 = rest.parse().map_err(|_| Error::msg(format!("unknown signal {s:?}")))?;
                return Ok(libc::SIGRTMIN() + k);
            }
            return Err(Error::msg(format!("unknown signal {s:?}")));
        }
    };
    Ok(n)
}

pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let c = Container::load(root, id)?;
    if c.status() == Status::Stopped {
        // runc's words: containerd's shim recognises "container not running" (the process
        // already finished, not an error for a stop) and nothing else
        return Err(Error::msg(format!("cannot kill container {id:?}: container not running")));
    }
    if all {
        let cg = c.cgroup()?;
        if cg.version() != 0 {
            return cg.kill_all(sig);
        }
        // No cgroup (rootless on cgroup v1): the init alone, whose pid namespace takes the
        // other processes with it when it dies.
    }
    if unsafe { libc::kill(c.state.pid, sig) } < 0 {
        return Err(Error::last(format!("kill pid {} with signal {sig}", c.state.pid), None));
    }
    Ok(())
}

/// Wait (up to `ms`) for the init to stop being alive (it may stay a zombie of its supervisor).
/// A pidfd of the init becomes readable when it exits: the wait is that event, with `ms` as
/// its deadline, not a poll. The pidfd is opened first and the start time checked after, so a
/// pid reused meanwhile is never waited for.
fn wait_dead(c: &Container, ms: u64) -> bool {
    let pfd = unsafe { libc::syscall(libc::SYS_pidfd_open, c.state.pid, 0) } as i32;
    if pfd < 0 {
        return !alive(c.state.pid, c.state.init_start_time); // (ESRCH: gone already)
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    let dead = loop {
        if !alive(c.state.pid, c.state.init_start_time) {
            break true;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now()).as_millis().min(i32::MAX as u128) as i32;
        let mut p = libc::pollfd { fd: pfd, events: libc::POLLIN, revents: 0 };
        let n = unsafe { libc::poll(&mut p, 1, left) };
        if n == 0 {
            break !alive(c.state.pid, c.state.init_start_time);
        }
        if n < 0 && crate::error::errno() != libc::EINTR {
            break !alive(c.state.pid, c.state.init_start_time);
        }
    };
    crate::util::close(pfd);
    dead
}

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let c = match Container::load(root, id) {
        Ok(c) => c,
        Err(e) if force && e.context.contains("does not exist") => return Ok(()),
        Err(e) => return Err(e),
    };
    let cg = c.cgroup()?;
    match c.status() {
        Status::Stopped => {}
        Status::Created => {
            unsafe { libc::kill(c.state.pid, libc::SIGKILL) };
            wait_dead(&c, 5000);
        }
        s if !force => return Err(Error::msg(format!("cannot delete container {id:?} that is not stopped: it is {} (use --force)", s.as_str()))),
        _ => {
            unsafe { libc::kill(c.state.pid, libc::SIGKILL) };
            let _ = cg.kill_all(libc::SIGKILL);
            if cg.is_frozen() {
                let _ = cg.thaw();
            }
            if !wait_dead(&c, 10_000) {
                return Err(Error::msg(format!("container {id:?}: its init (pid {}) did not die after SIGKILL", c.state.pid)));
            }
        }
    }
    // Without a pid namespace of its own, the container's other processes outlive its init.
    let _ = cg.kill_all(libc::SIGKILL);
    if cg.is_frozen() {
        let _ = cg.thaw();
    }
    let res = cg.destroy();
    let spec = Spec::load(&c.dir.join("config.json")).ok();
    std::fs::remove_dir_all(&c.dir).map_err(|e| Error::io("remove state directory", Some(&c.dir), e))?;
    // poststop: after the container is gone; a failure is a warning (runtime spec).
    if let Some(h) = spec.as_ref().and_then(|s| s.hooks.as_ref()).filter(|h| !h.poststop.is_empty()) {
        let state = crate::hooks::state_json(id, "stopped", 0, &c.state.bundle, &c.state.annotations);
        crate::hooks::run_all_warn("poststop", &h.poststop, &state);
    }
    res
}

pub fn pause(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Running => c.cgroup()?.freeze(),
        s => Err(Error::msg(format!("cannot pause container {id:?}: it is {}", s.as_str()))),
    }
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Paused => c.cgroup()?.thaw(),
        s => Err(Error::msg(format!("cannot resume container {id:?}: it is {}", s.as_str()))),
    }
}

/// `update`: change the cgroup limits of a created, running or paused container (the fields
/// `r` gives; the others stay as they are).
pub fn update(root: &Path, id: &str, r: &crate::spec::Resources) -> Result<()> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Stopped => Err(Error::msg(format!("cannot update container {id:?}: it is stopped"))),
        _ => c.cgroup()?.set(r).map_err(|e| e.wrap(format!("update container {id:?}"))),
    }
}

pub fn ps(root: &Path, id: &str) -> Result<Vec<i32>> {
    let c = Container::load(root, id)?;
    c.cgroup()?.pids()
}

/// Forward signals to `pid` and reap children until `pid` exits; returns its wait status.
/// The caller blocked `SIGNALS` before creating the container and is a child subreaper, so the
/// init (a grandchild) is reparented to it.
pub const SIGNALS: &[i32] = &[libc::SIGCHLD, libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH];

pub fn wait_forwarding(pid: i32, sfd: RawFd, mut proxy: Option<&mut crate::tty::Proxy>) -> Result<libc::c_int> {
    loop {
        let mut st = 0;
        loop {
            let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if r == pid {
                if let Some(p) = proxy.as_mut() {
                    p.drain();
                }
                return Ok(st);
            }
            if r <= 0 {
                break;
            }
        }
        let mut fds = vec![libc::pollfd { fd: sfd, events: libc::POLLIN, revents: 0 }];
        if let Some(p) = proxy.as_ref() {
            fds.extend(p.pollfds());
        }
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 && errno() != libc::EINTR {
            return Err(Error::last("poll", None));
        }
        if fds[0].revents != 0 {
            for sig in util::read_signals(sfd) {
                match (sig, proxy.as_ref()) {
                    (libc::SIGCHLD, _) => {}
                    (libc::SIGWINCH, Some(p)) => p.winch(),
                    _ => unsafe {
                        libc::kill(pid, sig);
                    },
                }
            }
        }
        if let Some(p) = proxy.as_mut() {
            p.handle(&fds[1..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_device_rules_follow_the_specs() {
        let spec: crate::spec::Resources = serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).unwrap();
        let r = with_default_devices(Some(&spec));
        assert!(!r.devices[0].allow, "the spec's rules first");
        let rules: Vec<String> = r.devices[1..]
            .iter()
            .map(|d| format!("{} {}:{} {}", d.typ.as_deref().unwrap(), d.major.map_or("*".into(), |n| n.to_string()),
                             d.minor.map_or("*".into(), |n| n.to_string()), d.access.as_deref().unwrap()))
            .collect();
        for want in ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm"] {
            assert!(rules.contains(&want.to_string()), "{want} in {rules:?}");
        }
        assert!(r.devices[1..].iter().all(|d| d.allow));
        assert_eq!(with_default_devices(None).devices.len(), DEFAULT_DEVICE_RULES.len());
    }

    #[test]
    fn oci_version_must_be_1_x() {
        for ok in ["1.0.2", "1.0.2-dev", "1.1.0", "1.2.0+x", ""] {
            assert!(check_oci_version(ok).is_ok(), "{ok}");
        }
        for bad in ["invalid", "2.0.0", "1.0", "1.a.0", "v1.0.0"] {
            assert!(check_oci_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals_by_name_and_number() {
        for (s, n) in [("KILL", 9), ("SIGKILL", 9), ("9", 9), ("term", 15), ("SIGUSR1", 10), ("RTMIN+3", libc::SIGRTMIN() + 3)] {
            assert_eq!(parse_signal(s).unwrap(), n, "{s}");
        }
        assert!(parse_signal("SIGFOO").is_err() && parse_signal("0").is_err() && parse_signal("65").is_err());
    }
}
