//! `exec`: run another process in a running container. It joins the init's namespaces
//! (`/proc/PID/ns/*`, only those that differ from ours, mount last) and cgroup, and gets the
//! container's capabilities, no_new_privs, seccomp filter and rlimits from the config the
//! container was created with, with `--env`, `--cwd`, `--user`, `--tty` on top (or a whole OCI
//! process document with `--process FILE`).
//!
//! Foreground (default): we stay as a subreaper, forward signals, proxy the pty when `--tty`
//! (without `--console-socket`), and exit with the process's status (128+N if killed by
//! signal N; 126/127 when the command cannot be run or is not found). `--detach`: exit once the
//! process runs (`--pid-file` to learn its pid). `--start-fd N`: a pipe's write end that gets the
//! reason the command could not start (its exec failed), or EOF when it was exec'd; the reason
//! then goes there and not to the process's stderr.

use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::channel::{self, Msg};
use crate::cli::parse;
use crate::container;
use crate::error::{check, Error, Result};
use crate::process::{self, ProcessSetup};
use crate::spec::{Process, Spec};
use crate::state::{Container, Status};
use crate::util::{self, close};

const NS: &[(&str, libc::c_int)] = &[
    ("user", libc::CLONE_NEWUSER),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

/// "uid[:gid]" with numbers or names looked up in the container's /etc/passwd and /etc/group.
pub fn parse_user(spec: &str, root: &Path) -> Result<(u32, u32)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let entry = passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() >= 4 && (f[0] == u || f[2] == u));
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => entry.as_ref().and_then(|f| f[2].parse().ok()).ok_or_else(|| Error::msg(format!("user {u:?} not found in the container's /etc/passwd")))?,
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let group = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
                group.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() >= 3 && f[0] == g).and_then(|f| f[2].parse().ok()).ok_or_else(|| Error::msg(format!("group {g:?} not found in the container's /etc/group")))?
            }
        },
        None => entry.as_ref().and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    Ok((uid, gid))
}

/// The supplementary groups of an exec as Docker gives them: the primary group, and with no
/// group named (`user`, not `user:group`, as runc's GetExecUser) every group of the container's
/// /etc/group that lists the user (by its passwd name) as a member.
pub fn user_groups(spec: &str, gid: u32, root: &Path) -> Vec<u32> {
    if spec.contains(':') {
        return vec![gid];
    }
    let u = spec;
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let name = passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() >= 4 && f[0] == u)
        .or_else(|| passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() >= 4 && f[2] == u))
        .map(|f| f[0].to_string());
    let mut gids = vec![gid];
    if let Some(name) = name {
        let group = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
        for f in group.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if f.len() > 3 && f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if !gids.contains(&g) {
                        gids.push(g);
                    }
                }
            }
        }
    }
    gids
}

pub fn main(root: &Path, rest: &[String]) -> Result<i32> {
    let a = parse(
        rest,
        &["env", "cwd", "user", "pid-file", "console-socket", "process", "cap", "preserve-fds", "start-fd"],
        &["tty", "detach", "no-new-privs"],
        &[("t", "tty"), ("d", "detach"), ("e", "env"), ("u", "user"), ("p", "process")],
        Some(1),
    )?;
    let id = a.id()?;
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Running => {}
        s => return Err(Error::msg(format!("cannot exec in container {id:?}: it is {}", s.as_str()))),
    }
    let spec = Spec::load(&c.dir.join("config.json"))?;
    let init_root = Path::new("/proc").join(c.state.pid.to_string()).join("root");
    let mut p: Process = match a.get("process") {
        Some(f) => {
            let data = std::fs::read(f).map_err(|e| Error::io("read process", Some(Path::new(f)), e))?;
            serde_json::from_slice(&data).map_err(|e| Error::msg(format!("parse {f}: {e}")))?
        }
        None => {
            let mut p = spec.process()?.clone();
            p.args = a.pos[1..].to_vec();
            p.terminal = a.flag("tty");
            p.console_size = None;
            for kv in a.all("env") {
                let key = kv.split('=').next().unwrap_or(kv);
                p.env.retain(|e| e.split('=').next() != Some(key));
                p.env.push(kv.to_string());
            }
            if let Some(d) = a.get("cwd") {
                p.cwd = d.to_string();
            }
            if let Some(u) = a.get("user") {
                let (uid, gid) = parse_user(u, &init_root)?;
                p.user.uid = uid;
                p.user.gid = gid;
                p.user.additional_gids = user_groups(u, gid, &init_root);
            }
            if a.flag("no-new-privs") {
                p.no_new_privileges = true;
            }
            // runc's --cap: added to the bounding, effective and permitted sets
            let extra = a.all("cap");
            if !extra.is_empty() {
                let caps = p.capabilities.get_or_insert_with(Default::default);
                for c in extra {
                    for set in [&mut caps.bounding, &mut caps.effective, &mut caps.permitted] {
                        if !set.iter().any(|x| x.eq_ignore_ascii_case(c)) {
                            set.push(c.to_string());
                        }
                    }
                }
            }
            p
        }
    };
    if p.args.is_empty() {
        return Err(Error::msg("exec: no command given"));
    }
    // The container's oom_score_adj was set for its init; the exec'd process inherits ours
    // unless the process document says otherwise.
    if a.get("process").is_none() {
        p.oom_score_adj = None;
    }
    // --start-fd N: the write end of the caller's pipe (close-on-exec in the process): EOF when
    // the command was exec'd, else the reason it could not start (not written to stderr)
    let start_fd: Option<RawFd> = match a.get("start-fd") {
        Some(v) => Some(v.parse().map_err(|_| Error::msg(format!("--start-fd: bad file descriptor {v:?}")))?),
        None => None,
    };
    let mut setup = ProcessSetup::new(&p, &spec)?;
    setup.preserve_fds = crate::cli::preserve_fds(&a)?;
    // Without --start-fd (runc's command line), a command that cannot be run fails `exec`
    // itself, with runc's message; with it, the caller learns the reason through the pipe.
    setup.check_exec = start_fd.is_none();
    let detach = a.flag("detach");
    if setup.terminal && detach && a.get("console-socket").is_none() {
        return Err(Error::msg("exec --detach --tty needs --console-socket"));
    }
    if !detach {
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    util::block_signals(container::SIGNALS);
    let sfd = util::signalfd(container::SIGNALS)?;

    // Namespaces to join: those of the init that differ from ours.
    let mut join = Vec::new();
    for (name, flag) in NS {
        let theirs = Path::new("/proc").join(c.state.pid.to_string()).join("ns").join(name);
        let ours = Path::new("/proc/self/ns").join(name);
        let (Ok(t), Ok(o)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else { continue };
        if t.ino() == o.ino() && t.dev() == o.dev() {
            continue;
        }
        let cp = util::cstring(&theirs)?;
        let fd = check(unsafe { libc::open(cp.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }, "open namespace", Some(&theirs))?;
        join.push((fd, *flag, theirs));
    }
    let mut console = None;
    let mut pair = None;
    if setup.terminal {
        match a.get("console-socket") {
            Some(s) => console = Some(util::connect_unix(Path::new(s))?),
            None => {
                let mut fds = [0; 2];
                check(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) }, "socketpair", None)?;
                pair = Some(fds[0]);
                console = Some(fds[1]);
            }
        }
    }
    let cg = c.cgroup()?;
    let (parent, child) = channel::pair()?;
    let inter = unsafe { libc::fork() };
    if inter < 0 {
        return Err(Error::last("fork", None));
    }
    if inter == 0 {
        util::reset_signals();
        parent.close();
        if !matches!(child.recv(), Ok(Msg::Go)) {
            unsafe { libc::_exit(1) };
        }
        if let Err(e) = cg.enter() {
            let _ = child.send(&Msg::Fail(e));
            unsafe { libc::_exit(1) };
        }
        // The user namespace last, when we may: a namespace the engine made before the
        // container (its network namespace under --userns-remap) belongs to the host's user
        // namespace, which we have no power over once inside the container's. A namespace that
        // refuses us before (an unprivileged caller) is joined again after it.
        let mut again = Vec::new();
        for (fd, flag, path) in join.iter().filter(|j| j.1 != libc::CLONE_NEWUSER) {
            if unsafe { libc::setns(*fd, *flag) } < 0 {
                again.push((*fd, *flag, path));
            }
        }
        for (fd, flag, path) in join.iter().filter(|j| j.1 == libc::CLONE_NEWUSER).map(|j| (j.0, j.1, &j.2)).chain(again) {
            if unsafe { libc::setns(fd, flag) } < 0 {
                let _ = child.send(&Msg::Fail(Error::last("setns", Some(path))));
                unsafe { libc::_exit(1) };
            }
        }
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let r = (|| -> Result<()> {
                unsafe { libc::setsid() };
                if let Some(fd) = console {
                    process::setup_console(fd, setup.console_size, false)?;
                }
                setup.apply_rlimits()?;
                setup.check_executable()
            })();
            if let Err(e) = r {
                let _ = child.send(&Msg::Fail(e));
                unsafe { libc::_exit(1) };
            }
            let _ = child.send(&Msg::Ready);
            child.close();
            if let Some(fd) = start_fd {
                util::set_cloexec(fd, true);
                process::set_fail_fd(fd);
            }
            setup.finish();
        }
        let _ = child.send(&if pid < 0 { Msg::Fail(Error::last("fork", None)) } else { Msg::Pid(pid) });
        unsafe { libc::_exit(0) };
    }
    child.close();
    if let Some(fd) = start_fd {
        close(fd); // the process holds it until its exec
    }
    for (fd, _, _) in &join {
        close(*fd);
    }
    if let Some(fd) = console {
        close(fd);
    }
    let res = (|| -> Result<i32> {
        parent.send(&Msg::Go)?;
        let pid = channel::recv_pid_and_ready(&parent, |_| {
            let mut st = 0;
            unsafe { libc::waitpid(inter, &mut st, 0) };
        })?;
        Ok(pid)
    })();
    parent.close();
    let pid = match res {
        Ok(p) => p,
        Err(e) => {
            unsafe { libc::kill(inter, libc::SIGKILL) };
            let mut st = 0;
            unsafe { libc::waitpid(inter, &mut st, 0) };
            // runc's words (and its exit status 255, see cli::main) for runc's command line
            return Err(e.wrap(if start_fd.is_none() { "exec failed" } else { "exec" }));
        }
    };
    if let Some(f) = a.get("pid-file") {
        util::atomic_write(Path::new(f), pid.to_string().as_bytes(), 0o644)?;
    }
    if detach {
        return Ok(0);
    }
    let mut proxy = match pair {
        Some(ours) => {
            let m = util::recv_fd(ours)?;
            close(ours);
            Some(crate::tty::Proxy::new(m))
        }
        None => None,
    };
    let st = container::wait_forwarding(pid, sfd, proxy.as_mut())?;
    drop(proxy);
    Ok(util::exit_code(st))
}
