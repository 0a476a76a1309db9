//! runc's command line. Each command loads, acts, reports; the work is in the library.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::container::{self, CreateOpts};
use crate::error::{Error, Result};
use crate::state::{self, Container, Status};
use crate::util;

pub const USAGE: &str = "usage: dockyard-runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND [OPTIONS] ID

commands:
  create [--bundle DIR] [--pid-file F] [--console-socket SOCK] ID
  start ID
  run [--bundle DIR] [-d|--detach] [--pid-file F] [--console-socket SOCK] [--keep] ID
  state ID
  kill [--all] ID [SIGNAL]        (default SIGTERM; names or numbers)
  delete [-f|--force] ID
  pause ID | resume ID
  update -r|--resources FILE|- ID  (OCI LinuxResources JSON; only the fields given change)
  ps [--format table|json] ID
  list [--format table|json] [-q]
  exec [-t|--tty] [-d|--detach] [-e|--env K=V]... [--cwd DIR] [-u|--user UID[:GID]]
       [--pid-file F] [--console-socket SOCK] [-p|--process FILE] [--start-fd N] ID [--] ARGS...
  shim --bundle DIR --id ID --log FILE [--tty] [--stdin] [--exit-file F]
       [--attach-socket SOCK [--wait-attach[=MS]]] [--delete-on-exit] [--pid-file F]
  events [--stats] [--interval D] ID  (runc's stats events: cpu, memory, pids)
  features                         (what the runtime implements: runtime-spec features.md)
  version
";

/// A parsed command line: options (long names without dashes) and positional words.
#[derive(Debug, Default)]
pub struct Args {
    pub opts: Vec<(String, String)>,
    pub pos: Vec<String>,
}

impl Args {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.opts.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    pub fn all(&self, k: &str) -> Vec<&str> {
        self.opts.iter().filter(|(n, _)| n == k).map(|(_, v)| v.as_str()).collect()
    }
    pub fn flag(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| v != "false")
    }
    pub fn id(&self) -> Result<&str> {
        self.pos.first().map(|s| s.as_str()).ok_or_else(|| Error::msg("missing container id"))
    }
}

/// Parse options for one command. `valued`/`bools` are long names; `short` maps a short
/// letter to its long name. Both `-name` and `--name`, `--name=v` and `--name v` are accepted
/// (runc's parser accepts them all). With `stop_at_pos`, the first positional word after the
/// id ends option parsing (exec's command), as does `--`.
pub fn parse(argv: &[String], valued: &[&str], bools: &[&str], short: &[(&str, &str)], stop_after: Option<usize>) -> Result<Args> {
    let mut a = Args::default();
    let mut i = 0;
    while i < argv.len() {
        let w = &argv[i];
        if w == "--" {
            a.pos.extend(argv[i + 1..].iter().cloned());
            break;
        }
        if let Some(n) = stop_after {
            if a.pos.len() >= n {
                a.pos.extend(argv[i..].iter().cloned());
                break;
            }
        }
        if w.starts_with('-') && w.len() > 1 {
            let body = w.trim_start_matches('-');
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            let name = short.iter().find(|(s, _)| *s == name).map(|(_, l)| l.to_string()).unwrap_or(name);
            if valued.contains(&name.as_str()) {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        argv.get(i).cloned().ok_or_else(|| Error::msg(format!("option --{name} needs a value")))?
                    }
                };
                a.opts.push((name, v));
            } else if bools.contains(&name.as_str()) {
                a.opts.push((name, inline.unwrap_or_else(|| "true".into())));
            } else {
                return Err(Error::msg(format!("unknown option {w:?}")));
            }
        } else {
            a.pos.push(w.clone());
        }
        i += 1;
    }
    Ok(a)
}

pub fn preserve_fds(a: &Args) -> Result<u32> {
    a.get("preserve-fds").map_or(Ok(0), |v| v.parse().map_err(|_| Error::msg(format!("--preserve-fds: not a number: {v:?}"))))
}

struct Global {
    root: PathBuf,
    log: Option<PathBuf>,
    json_log: bool,
}

fn log_error(g: &Global, e: &Error) {
    // With --log (containerd's shim, conmon), stderr gets the bare message as runc writes it
    // there: podman shows it as "Error: RUNTIME: message".
    if g.log.is_some() {
        let _ = writeln!(std::io::stderr(), "{e}");
    } else {
        let _ = writeln!(std::io::stderr(), "dockyard-runtime: {e}");
    }
    if let Some(p) = &g.log {
        let line = if g.json_log {
            serde_json::json!({"level": "error", "msg": e.to_string(), "time": util::now_rfc3339()}).to_string()
        } else {
            format!("time=\"{}\" level=error msg={:?}", util::now_rfc3339(), e.to_string())
        };
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(p) {
            let _ = writeln!(f, "{line}");
        }
    }
}

pub fn main() -> i32 {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut g = Global { root: PathBuf::from(state::DEFAULT_ROOT), log: None, json_log: false };
    let mut i = 0;
    while i < argv.len() && argv[i].starts_with('-') {
        let w = argv[i].trim_start_matches('-');
        let (name, inline) = match w.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (w, None),
        };
        let mut value = || -> Option<String> {
            inline.clone().or_else(|| {
                i += 1;
                argv.get(i).cloned()
            })
        };
        match name {
            "root" => g.root = PathBuf::from(value().unwrap_or_default()),
            "log" => g.log = value().map(PathBuf::from),
            "log-format" => g.json_log = value().as_deref() == Some("json"),
            "debug" | "rootless" | "systemd-cgroup" => {}
            "criu" => {
                value();
            }
            "h" | "help" => {
                print!("{USAGE}");
                return 0;
            }
            "v" | "version" => {
                println!("dockyard-runtime version {}\nspec: {}", env!("CARGO_PKG_VERSION"), state::OCI_VERSION);
                return 0;
            }
            _ => {
                eprintln!("dockyard-runtime: unknown global option {:?}\n{USAGE}", argv[i]);
                return 1;
            }
        }
        i += 1;
    }
    let Some(cmd) = argv.get(i) else {
        eprint!("{USAGE}");
        return 1;
    };
    let rest = &argv[i + 1..];
    // Before anything is opened or forked: what enters a container runs from a copy of this
    // binary that the container cannot write (CVE-2019-5736); this may re-exec.
    if crate::selfexe::enters_container(cmd) {
        if let Err(e) = crate::selfexe::ensure() {
            log_error(&g, &e);
            return 1;
        }
        crate::selfexe::not_dumpable();
    }
    match dispatch(&g, cmd, rest) {
        Ok(code) => code,
        Err(e) => {
            log_error(&g, &e);
            // runc exits 255 when `exec` could not start the process
            if cmd == "exec" && e.context.starts_with("exec failed") {
                255
            } else {
                1
            }
        }
    }
}

fn dispatch(g: &Global, cmd: &str, rest: &[String]) -> Result<i32> {
    let root = g.root.as_path();
    match cmd {
        "create" => {
            let a = parse(rest, &["bundle", "pid-file", "console-socket", "preserve-fds"], &["no-pivot", "no-new-keyring"], &[("b", "bundle")], None)?;
            let bundle = PathBuf::from(a.get("bundle").unwrap_or("."));
            let o = CreateOpts {
                root,
                id: a.id()?,
                bundle: &bundle,
                pid_file: a.get("pid-file").map(Path::new),
                console_socket: a.get("console-socket").map(Path::new),
                console_fd: None,
                stdio: None,
                terminal: false,
                preserve_fds: preserve_fds(&a)?,
                no_new_keyring: a.flag("no-new-keyring"),
            };
            container::create(&o)?;
            Ok(0)
        }
        "start" => {
            let a = parse(rest, &[], &[], &[], None)?;
            container::start(root, a.id()?)?;
            Ok(0)
        }
        "run" => run(root, rest),
        "state" => {
            let a = parse(rest, &[], &[], &[], None)?;
            let c = Container::load(root, a.id()?)?;
            println!("{}", serde_json::to_string_pretty(&c.oci_state()).unwrap_or_default());
            Ok(0)
        }
        "kill" => {
            let a = parse(rest, &[], &["all"], &[("a", "all")], None)?;
            let sig = container::parse_signal(a.pos.get(1).map(|s| s.as_str()).unwrap_or("TERM"))?;
            container::kill(root, a.id()?, sig, a.flag("all"))?;
            Ok(0)
        }
        "delete" => {
            let a = parse(rest, &[], &["force"], &[("f", "force")], None)?;
            container::delete(root, a.id()?, a.flag("force"))?;
            Ok(0)
        }
        "pause" => {
            let a = parse(rest, &[], &[], &[], None)?;
            container::pause(root, a.id()?)?;
            Ok(0)
        }
        "resume" => {
            let a = parse(rest, &[], &[], &[], None)?;
            container::resume(root, a.id()?)?;
            Ok(0)
        }
        "update" => {
            let a = parse(rest, &["resources"], &[], &[("r", "resources")], Some(1))?;
            let src = a.get("resources").ok_or_else(|| Error::msg("update: --resources FILE (or -) is required"))?;
            let data = if src == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map_err(|e| Error::io("read resources", None, e))?;
                buf
            } else {
                std::fs::read(src).map_err(|e| Error::io("read resources", Some(Path::new(src)), e))?
            };
            let r: crate::spec::Resources =
                serde_json::from_slice(&data).map_err(|e| Error::msg(format!("update: bad resources JSON: {e}")))?;
            container::update(root, a.id()?, &r)?;
            Ok(0)
        }
        "ps" => {
            let a = parse(rest, &["format"], &[], &[("f", "format")], Some(1))?;
            let pids = container::ps(root, a.id()?)?;
            if a.get("format") == Some("json") {
                println!("{}", serde_json::to_string(&pids).unwrap_or_default());
            } else {
                println!("PID");
                for p in pids {
                    println!("{p}");
                }
            }
            Ok(0)
        }
        "list" => {
            let a = parse(rest, &["format"], &["quiet"], &[("f", "format"), ("q", "quiet")], None)?;
            let mut out = Vec::new();
            for id in state::list_ids(root) {
                if let Ok(c) = Container::load(root, &id) {
                    out.push(c);
                }
            }
            if a.flag("quiet") {
                for c in &out {
                    println!("{}", c.state.id);
                }
            } else if a.get("format") == Some("json") {
                let v: Vec<serde_json::Value> = out.iter().map(|c| c.oci_state()).collect();
                println!("{}", serde_json::to_string(&v).unwrap_or_default());
            } else {
                println!("{:<20} {:<8} {:<10} {:<40} CREATED", "ID", "PID", "STATUS", "BUNDLE");
                for c in &out {
                    let s = c.status();
                    println!("{:<20} {:<8} {:<10} {:<40} {}", c.state.id, if s == Status::Stopped { 0 } else { c.state.pid }, s.as_str(), c.state.bundle, c.state.created);
                }
            }
            Ok(0)
        }
        "exec" => crate::exec::main(root, rest),
        "shim" => crate::shim::main(root, rest),
        "events" => {
            // runc's `events`: --stats prints one stats event; without it, one every
            // --interval (default 5s) until the container stops.
            let a = parse(rest, &["interval"], &["stats"], &[], None)?;
            let id = a.id()?;
            let interval = a.get("interval").map_or(Ok(5000), |v| parse_duration_ms(v))?;
            loop {
                let c = Container::load(root, id)?;
                if c.status() == Status::Stopped {
                    return if a.flag("stats") { Err(Error::msg(format!("container {id:?} is not running"))) } else { Ok(0) };
                }
                let ev = serde_json::json!({"type": "stats", "id": id, "data": c.cgroup()?.stats()});
                let mut out = std::io::stdout();
                if writeln!(out, "{ev}").and_then(|_| out.flush()).is_err() {
                    return Ok(0); // the reader went away
                }
                if a.flag("stats") {
                    return Ok(0);
                }
                std::thread::sleep(std::time::Duration::from_millis(interval));
            }
        }
        "features" => {
            println!("{}", serde_json::to_string_pretty(&features()).unwrap_or_default());
            Ok(0)
        }
        "version" => {
            println!("dockyard-runtime version {}\nspec: {}", env!("CARGO_PKG_VERSION"), state::OCI_VERSION);
            Ok(0)
        }
        "help" => {
            print!("{USAGE}");
            Ok(0)
        }
        other => Err(Error::msg(format!("unknown command {other:?}"))),
    }
}

/// "5s", "500ms", "1m", or plain seconds.
fn parse_duration_ms(v: &str) -> Result<u64> {
    let bad = || Error::msg(format!("--interval: not a duration: {v:?}"));
    let (num, mult) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (v, 1000.0)
    };
    let f: f64 = num.parse().map_err(|_| bad())?;
    if !(f > 0.0) {
        return Err(bad());
    }
    Ok((f * mult) as u64)
}

/// `features` (runtime-spec features.md, as `runc features`): what this runtime implements.
fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand", "noatime",
            "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "private", "rbind",
            "relatime", "remount", "ro", "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "slave",
            "strictatime", "suid", "sync", "unbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": crate::caps::NAMES,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                    "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                // only the native architecture's syscalls are allowed through (see seccomp.rs)
                "archs": [if cfg!(target_arch = "aarch64") { "SCMP_ARCH_AARCH64" } else { "SCMP_ARCH_X86_64" }],
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
        },
        "annotations": {"org.dockyard.runtime.version": env!("CARGO_PKG_VERSION")},
    })
}

/// `run`: create + start, then (unless detached) supervise in the foreground: forward
/// signals, proxy the pty if the config asks for a terminal, reap, delete, exit with the
/// container's status (128+N for a signal).
fn run(root: &Path, rest: &[String]) -> Result<i32> {
    let a = parse(rest, &["bundle", "pid-file", "console-socket", "preserve-fds"], &["detach", "keep", "no-pivot", "no-new-keyring"], &[("b", "bundle"), ("d", "detach")], None)?;
    let id = a.id()?.to_string();
    let bundle = PathBuf::from(a.get("bundle").unwrap_or("."));
    let detach = a.flag("detach");
    if !detach {
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    util::block_signals(container::SIGNALS);
    let sfd = util::signalfd(container::SIGNALS)?;
    let spec = crate::spec::Spec::load(&bundle.join("config.json"))?;
    let terminal = spec.process.as_ref().is_some_and(|p| p.terminal);
    let mut pair: Option<(i32, i32)> = None;
    if terminal && a.get("console-socket").is_none() {
        if detach {
            return Err(Error::msg("run -d with a terminal needs --console-socket"));
        }
        let mut fds = [0; 2];
        crate::error::check(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) }, "socketpair", None)?;
        pair = Some((fds[0], fds[1]));
    }
    let o = CreateOpts {
        root,
        id: &id,
        bundle: &bundle,
        pid_file: a.get("pid-file").map(Path::new),
        console_socket: a.get("console-socket").map(Path::new),
        console_fd: pair.map(|p| p.1),
        stdio: None,
        terminal: false,
        preserve_fds: preserve_fds(&a)?,
        no_new_keyring: a.flag("no-new-keyring"),
    };
    let c = container::create(&o)?;
    let mut proxy = None;
    if let Some((ours, theirs)) = pair {
        util::close(theirs);
        let master = util::recv_fd(ours)?;
        util::close(ours);
        proxy = Some(crate::tty::Proxy::new(master));
    }
    if let Err(e) = container::start(root, &id) {
        let _ = container::delete(root, &id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let st = container::wait_forwarding(c.state.pid, sfd, proxy.as_mut());
    drop(proxy);
    if !a.flag("keep") {
        container::delete(root, &id, true)?;
    }
    Ok(util::exit_code(st?))
}
