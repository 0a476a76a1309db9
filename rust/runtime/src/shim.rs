//! The per-container supervisor ("shim"), in the mould of conmon: one small single-threaded
//! process per container, a poll(2) loop, no async runtime.
//!
//! `dockyard-runtime shim --bundle DIR --id ID --log FILE [--log-max-size BYTES [--log-max-file N]] [--tty] [--stdin] [--exit-file F [--exit-file-fallback F]]
//!  [--attach-socket SOCK [--wait-attach[=MS]]] [--pid-file F]`
//!
//! 1. Forks; the parent waits for one status line from the child and exits 0 once the
//!    container is running (printing its pid), or 1 with the error on stderr. With
//!    `--wait-attach` it exits 0 as soon as the container is *created* (see below). The engine's call
//!    returns then; the child lives on, in its own session, as a child subreaper (so the
//!    container's init, a grandchild, is reparented to it and it can reap it).
//! 2. The child creates and starts the container (the same code as `create` and `start`), with
//!    stdio as pipes, or a pty whose master it holds when `--tty`.
//! 3. Output goes to `--log` in Docker's json-file format, one object per line:
//!    `{"log":"line\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`. Lines
//!    longer than 16 KiB are split (Docker does the same); a last line without newline is
//!    written without one. With `--log-max-size BYTES` the log is rotated as Docker's json-file
//!    driver rotates it (`--log-opt max-size`, `max-file`): once FILE reaches the size it
//!    becomes FILE.1 (FILE.1 becomes FILE.2, and so on; what is past `--log-max-file N` files in
//!    all is gone) and a new FILE begins; with `--log-max-file 1` (the default) FILE is emptied.
//! 4. Attach: clients connect to `--attach-socket` (a unix stream socket). Both directions use
//!    frames of an 8-byte header `[type, 0, 0, 0, len (u32 big-endian)]` + `len` bytes; this is
//!    Docker's stdcopy framing, so output can be relayed to Docker clients as is.
//!    Server → client: 1 stdout, 2 stderr (with a tty everything is 1), 3 exit (payload: the
//!    exit-file JSON, sent just before the shim closes the connection).
//!    Client → server: 0 stdin data (needs `--stdin` or `--tty`), 4 resize (payload: rows u16
//!    BE, cols u16 BE), 5 close stdin (EOF for the container; with a tty, ^D).
//!    A client that stops reading and falls 4 MiB behind is disconnected (except the first
//!    client of `--wait-attach`, see below). A client that shuts down its sending side
//!    (`shutdown(SHUT_WR)`) still receives output until it closes.
//! 5. When the init exits: output is drained (until EOF, at most 2 s), then
//!    `--exit-file` is written atomically (when that fails, on a full disk say, the same
//!    document goes to `--exit-file-fallback`, normally on another file system, so the exit
//!    status is never lost): `{"id","pid","exit_code","signal","oom_killed",
//!    "started_at","finished_at"}` (exit_code is 128+N when killed by signal N; oom_killed when
//!    the memory cgroup's oom_kill counter rose). Attached clients get the exit frame; the
//!    attach socket is removed and the shim exits. The container is left `stopped`; the engine
//!    deletes it.
//!
//! Attach before start (`--wait-attach[=MS]`, default 10000 ms, needs `--attach-socket`), for
//! a foreground `run` that must not lose the first bytes and wants the exit code as a frame:
//!
//! 1. the shim creates the container (the init waits on exec.fifo) and listens on the
//!    socket; only then the parent prints the pid and exits 0 (state: `created`);
//! 2. the caller connects; with `--tty` it sends a resize frame (4) first;
//! 3. the shim starts the process when that first client is connected (with `--tty`: once
//!    its first frame has been applied, or [`TTY_FIRST_FRAME_GRACE_MS`] after it connected
//!    without sending one), or when MS pass with no client (it starts anyway);
//! 4. the client receives every byte the process writes (frames 1 and 2), then the exit frame
//!    3 with the exit-file JSON, and the connection closes. The log and the exit file are
//!    written as always. This client is never dropped for being slow: when it is 4 MiB
//!    behind, the shim stops reading the output until it catches up (the process blocks on
//!    its full pipe, as under `docker attach`).
//!
//! Meanwhile `delete -f ID` kills the created container (exit file: 137), and
//! `dockyard-runtime start ID` starts it without a client (the shim notices its output or its
//! exit and carries on as usual).
//!
//! Signals: SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 sent to the shim are forwarded to the
//! container's init.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use crate::cli::parse;
use crate::container::{self, CreateOpts};
use crate::error::{check, errno, Error, Result};
use crate::util::{self, close, set_nonblock};

const MAX_LINE: usize = 16 * 1024;
const MAX_CLIENT_BACKLOG: usize = 4 << 20;

pub const FRAME_STDIN: u8 = 0;
pub const FRAME_STDOUT: u8 = 1;
pub const FRAME_STDERR: u8 = 2;
pub const FRAME_EXIT: u8 = 3;
pub const FRAME_RESIZE: u8 = 4;
pub const FRAME_CLOSE_STDIN: u8 = 5;

struct Opts {
    root: PathBuf,
    bundle: PathBuf,
    id: String,
    log: PathBuf,
    log_max_size: u64,
    log_max_file: u32,
    tty: bool,
    stdin: bool,
    exit_file: Option<PathBuf>,
    exit_fallback: Option<PathBuf>,
    attach: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    /// `--wait-attach[=MS]`: start the process only once the first attach client is there
    /// (or after MS milliseconds).
    wait_attach: Option<i64>,
    /// `--delete-on-exit`: once the process has exited, delete the container's runtime state
    /// (cgroup, state dir) before writing the exit file, so the engine needs no `delete` call.
    delete_on_exit: bool,
}

/// `--wait-attach` without a value.
pub const DEFAULT_WAIT_ATTACH_MS: i64 = 10_000;
/// With `--tty`, how long the first client may take to send its first frame (normally a
/// resize) before the process starts with whatever window size the pty has.
pub const TTY_FIRST_FRAME_GRACE_MS: i64 = 200;

/// `--wait-attach` (true), `--wait-attach=MS`, `--wait-attach=false`.
fn parse_wait_attach(v: Option<&str>) -> Result<Option<i64>> {
    match v {
        None | Some("false") => Ok(None),
        Some("true") | Some("") => Ok(Some(DEFAULT_WAIT_ATTACH_MS)),
        Some(ms) => match ms.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => Err(Error::msg(format!("--wait-attach: not a number of milliseconds: {ms:?}"))),
        },
    }
}

fn absolute(p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")).join(p)
    }
}

pub fn main(root: &Path, rest: &[String]) -> Result<i32> {
    let a = parse(rest, &["bundle", "id", "log", "log-max-size", "log-max-file", "exit-file", "exit-file-fallback", "attach-socket", "pid-file"], &["tty", "stdin", "wait-attach", "delete-on-exit"], &[("b", "bundle"), ("t", "tty"), ("i", "stdin")], None)?;
    let number = |key: &str, least: u64| -> Result<u64> {
        match a.get(key) {
            None => Ok(least),
            Some(v) => v.parse::<u64>().ok().filter(|n| *n >= least).ok_or_else(|| Error::msg(format!("shim: --{key}: not a number of at least {least}: {v:?}"))),
        }
    };
    let o = Opts {
        root: absolute(&root.to_string_lossy()),
        bundle: absolute(a.get("bundle").unwrap_or(".")),
        id: a.get("id").map(String::from).or_else(|| a.pos.first().cloned()).ok_or_else(|| Error::msg("shim: --id is required"))?,
        log: absolute(a.get("log").ok_or_else(|| Error::msg("shim: --log is required"))?),
        log_max_size: number("log-max-size", 0)?,
        log_max_file: u32::try_from(number("log-max-file", 1)?).map_err(|_| Error::msg("shim: --log-max-file: too large"))?,
        tty: a.flag("tty"),
        stdin: a.flag("stdin"),
        exit_file: a.get("exit-file").map(absolute),
        exit_fallback: a.get("exit-file-fallback").map(absolute),
        attach: a.get("attach-socket").map(absolute),
        pid_file: a.get("pid-file").map(absolute),
        wait_attach: parse_wait_attach(a.get("wait-attach"))?,
        delete_on_exit: a.flag("delete-on-exit"),
    };
    crate::state::valid_id(&o.id)?;
    // `--wait-attach 5000` would leave "5000" here: say so rather than wait 10 s.
    let extra = if a.get("id").is_some() { &a.pos[..] } else { a.pos.get(1..).unwrap_or(&[]) };
    if let Some(w) = extra.first() {
        return Err(Error::msg(format!("shim: unexpected argument {w:?} (a value for --wait-attach goes after '=')")));
    }
    if o.wait_attach.is_some() && o.attach.is_none() {
        return Err(Error::msg("shim: --wait-attach needs --attach-socket"));
    }
    let (r, w) = util::pipe()?;
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::last("fork", None));
    }
    if pid > 0 {
        close(w);
        return Ok(report_from_child(r, pid));
    }
    close(r);
    // The supervisor: its own session, stdio on /dev/null, cwd "/", so it pins nothing.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if null > 2 {
            libc::close(null);
        }
        libc::chdir(c"/".as_ptr());
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let created = Supervisor::create(&o).and_then(|mut s| {
        // Without --wait-attach the caller learns the pid once the process runs (and hears
        // about a failed start); with it, as soon as the container exists and the attach
        // socket listens, so that it can connect before the first byte is written.
        if o.wait_attach.is_none() {
            if let Err(e) = s.start_process() {
                let _ = container::delete(&o.root, &o.id, true);
                return Err(e);
            }
        }
        Ok(s)
    });
    let code = match created {
        Ok(mut s) => {
            let _ = util::write_all(w, format!("ok {}\n", s.pid).as_bytes());
            close(w);
            if let Some(ms) = o.wait_attach {
                s.wait_for_attach(ms);
                if s.status.is_none() {
                    if let Err(e) = s.start_process() {
                        // The engine may have deleted the container meanwhile (`delete -f`);
                        // that is not worth a line in the log. It deletes it in any case.
                        let gone = crate::state::Container::load(&s.root, &s.id).map(|c| c.status() == crate::state::Status::Stopped).unwrap_or(true);
                        if !gone {
                            s.late_start_failed(&e);
                        }
                    }
                }
            }
            s.run();
            0
        }
        Err(e) => {
            let _ = util::write_all(w, format!("error {e}\n").as_bytes());
            close(w);
            1
        }
    };
    unsafe { libc::_exit(code) }
}

/// In the engine-facing parent: wait for the child's one line.
fn report_from_child(r: RawFd, child: i32) -> i32 {
    let mut buf = Vec::new();
    let mut b = [0u8; 512];
    loop {
        let n = unsafe { libc::read(r, b.as_mut_ptr() as *mut libc::c_void, b.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        buf.extend_from_slice(&b[..n as usize]);
        if buf.contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
    if let Some(pid) = line.strip_prefix("ok ") {
        // The container's pid, then the supervisor's own (the caller watches it to tell a
        // supervisor that is still draining output from one that died).
        println!("{pid} {child}");
        return 0;
    }
    if line.is_empty() {
        let mut st = 0;
        unsafe { libc::waitpid(child, &mut st, 0) };
    }
    let msg = line.strip_prefix("error ").unwrap_or(if line.is_empty() { "the shim died before starting the container" } else { &line });
    let _ = writeln!(std::io::stderr(), "dockyard-runtime: {msg}");
    1
}

struct Client {
    fd: RawFd,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
    /// It shut down its sending side: it still gets output until it closes for good.
    read_closed: bool,
    /// A send failed (the peer is gone): removed at the next chance.
    dead: bool,
}

struct Stream {
    fd: RawFd,
    name: &'static str,
    frame: u8,
    line: Vec<u8>,
}

struct Supervisor {
    id: String,
    pid: i32,
    root: PathBuf,
    sfd: RawFd,
    streams: Vec<Stream>,
    /// Where stdin data goes (pipe write end or the pty master); -1 once closed.
    stdin_fd: RawFd,
    stdin_buf: VecDeque<u8>,
    master: Option<RawFd>,
    log: LogFile,
    listen: Option<RawFd>,
    attach_path: Option<PathBuf>,
    clients: Vec<Client>,
    exit_file: Option<PathBuf>,
    exit_fallback: Option<PathBuf>,
    delete_on_exit: bool,
    started_at: String,
    oom_before: u64,
    status: Option<libc::c_int>,
    tty: bool,
    /// Frames received from clients so far (the tty wait ends at the first one).
    frames_in: u64,
    /// `--wait-attach`'s first client, which must get every byte: instead of dropping it when
    /// it falls behind, we stop reading the container's output until it catches up (the
    /// process then blocks on a full pipe, as with `docker attach`).
    primary: Option<RawFd>,
}

impl Supervisor {
    /// Create the container (its init waits on exec.fifo), with our pipes or pty as its stdio
    /// and the attach socket listening. The process is not started yet: [`Self::start_process`].
    fn create(o: &Opts) -> Result<Supervisor> {
        util::block_signals(SHIM_SIGNALS);
        let sfd = util::signalfd(SHIM_SIGNALS)?;
        let log = LogFile::open(&o.log, o.log_max_size, o.log_max_file)?;
        let null = check(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) }, "open /dev/null", None)?;
        let mut streams = Vec::new();
        let mut stdin_fd = -1;
        let mut console = None;
        let stdio;
        let mut child_ends = Vec::new();
        if o.tty {
            let mut fds = [0; 2];
            check(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) }, "socketpair", None)?;
            console = Some(fds);
            stdio = None;
        } else {
            let (out_r, out_w) = util::pipe()?;
            let (err_r, err_w) = util::pipe()?;
            let in_r = if o.stdin {
                let (in_r, in_w) = util::pipe()?;
                stdin_fd = in_w;
                child_ends.push(in_r);
                in_r
            } else {
                null
            };
            child_ends.extend([out_w, err_w]);
            streams.push(Stream { fd: out_r, name: "stdout", frame: FRAME_STDOUT, line: Vec::new() });
            streams.push(Stream { fd: err_r, name: "stderr", frame: FRAME_STDERR, line: Vec::new() });
            stdio = Some([in_r, out_w, err_w]);
        }
        let listen = match &o.attach {
            Some(p) => Some(util::listen_unix(p)?),
            None => None,
        };
        let co = CreateOpts {
            root: &o.root,
            id: &o.id,
            bundle: &o.bundle,
            pid_file: o.pid_file.as_deref(),
            console_socket: None,
            console_fd: console.map(|c| c[1]),
            stdio,
            terminal: o.tty,
            preserve_fds: 0,
            no_new_keyring: false,
        };
        let c = container::create(&co)?;
        let mut master = None;
        if let Some([ours, theirs]) = console {
            close(theirs);
            let m = util::recv_fd(ours)?;
            close(ours);
            streams.push(Stream { fd: m, name: "stdout", frame: FRAME_STDOUT, line: Vec::new() });
            master = Some(m);
            stdin_fd = m;
        }
        for fd in child_ends {
            close(fd);
        }
        close(null);
        let oom_before = c.cgroup().map(|cg| cg.oom_kills()).unwrap_or(0);
        for s in &streams {
            set_nonblock(s.fd);
        }
        if stdin_fd >= 0 {
            set_nonblock(stdin_fd);
        }
        Ok(Supervisor {
            id: o.id.clone(),
            pid: c.state.pid,
            root: o.root.clone(),
            sfd,
            streams,
            stdin_fd,
            stdin_buf: VecDeque::new(),
            master,
            log,
            listen,
            attach_path: o.attach.clone(),
            clients: Vec::new(),
            exit_file: o.exit_file.clone(),
            exit_fallback: o.exit_fallback.clone(),
            delete_on_exit: o.delete_on_exit,
            started_at: String::new(),
            oom_before,
            status: None,
            tty: o.tty,
            frames_in: 0,
            primary: None,
        })
    }

    /// Let the init exec the user's process. If the engine already did (`dockyard-runtime
    /// start ID`), that is fine too.
    fn start_process(&mut self) -> Result<()> {
        self.started_at = util::now_rfc3339();
        match container::start(&self.root, &self.id) {
            Ok(_) => Ok(()),
            Err(e) => match crate::state::Container::load(&self.root, &self.id).map(|c| c.status()) {
                Ok(crate::state::Status::Running) | Ok(crate::state::Status::Paused) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// The start failed after the caller was told the container exists: say why in the log
    /// and make sure the init dies, so that `run` writes the exit file and ends.
    fn late_start_failed(&mut self, e: &Error) {
        let entry = format!("{{\"log\":{},\"stream\":\"stderr\",\"time\":\"{}\"}}\n", serde_json::to_string(&format!("dockyard-runtime: {e}\n")).unwrap_or_default(), util::now_rfc3339());
        self.log.write(entry.as_bytes());
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }

    /// `--wait-attach`: serve the attach socket until the first client is connected (and, with
    /// a tty, has sent its first frame, normally a resize, or had
    /// [`TTY_FIRST_FRAME_GRACE_MS`] to do so), or until `ms` have passed, or the init died
    /// (`delete -f` of the created container). Frames are handled as usual meanwhile: a
    /// resize applies to the pty before the process starts; stdin data waits in the pipe.
    fn wait_for_attach(&mut self, ms: i64) {
        let deadline = now_ms() + ms;
        let mut first: Option<(RawFd, i64)> = None;
        loop {
            if self.status.is_some() {
                return;
            }
            let now = now_ms();
            let mut until = deadline;
            if let Some((fd, at)) = first {
                // Gone, or done sending (half-closed): nothing more to wait for.
                let gone = !self.clients.iter().any(|c| c.fd == fd && !c.read_closed);
                if !self.tty || self.frames_in > 0 || gone || now >= at + TTY_FIRST_FRAME_GRACE_MS {
                    return;
                }
                until = at + TTY_FIRST_FRAME_GRACE_MS;
            } else if now >= deadline {
                return;
            }
            // Output before we started means someone else did (`dockyard-runtime start ID`):
            // stop waiting, so that the pipes are drained.
            let mut fds: Vec<libc::pollfd> = self.streams.iter().map(|s| libc::pollfd { fd: s.fd, events: libc::POLLIN, revents: 0 }).collect();
            let ns = fds.len();
            fds.push(libc::pollfd { fd: self.sfd, events: libc::POLLIN, revents: 0 });
            if let Some(l) = self.listen {
                fds.push(libc::pollfd { fd: l, events: libc::POLLIN, revents: 0 });
            }
            for c in &self.clients {
                fds.push(libc::pollfd { fd: c.fd, events: if c.read_closed { 0 } else { libc::POLLIN }, revents: 0 });
            }
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, (until - now).clamp(0, i32::MAX as i64) as i32) };
            if n < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                return;
            }
            if fds[..ns].iter().any(|f| f.revents != 0) {
                return;
            }
            let fds = &fds[ns..];
            if fds[0].revents != 0 {
                self.on_signals();
            }
            let base = 1 + self.listen.is_some() as usize;
            // Clients first (their indexes are those of the poll set), then new ones.
            for i in (0..fds.len() - base).rev() {
                let rev = fds[base + i].revents;
                if rev != 0 {
                    self.on_client(i, rev);
                }
            }
            if base == 2 && fds[1].revents != 0 {
                self.on_accept();
                if first.is_none() {
                    if let Some(c) = self.clients.first() {
                        first = Some((c.fd, now_ms()));
                        self.primary = Some(c.fd);
                    }
                }
            }
        }
    }

    fn run(&mut self) {
        let mut drain_deadline: Option<i64> = None;
        loop {
            if self.status.is_some() && (self.streams.is_empty() || drain_deadline.is_some_and(|d| now_ms() >= d)) {
                break;
            }
            let mut fds = vec![libc::pollfd { fd: self.sfd, events: libc::POLLIN, revents: 0 }];
            let ns = if self.throttled() { 0 } else { self.streams.len() };
            for s in &self.streams[..ns] {
                fds.push(libc::pollfd { fd: s.fd, events: libc::POLLIN, revents: 0 });
            }
            if let Some(l) = self.listen {
                fds.push(libc::pollfd { fd: l, events: libc::POLLIN, revents: 0 });
            }
            let nl = self.listen.is_some() as usize;
            for c in &self.clients {
                let events = if c.read_closed { 0 } else { libc::POLLIN } | if c.out.is_empty() { 0 } else { libc::POLLOUT };
                fds.push(libc::pollfd { fd: c.fd, events, revents: 0 });
            }
            let want_stdin_out = self.stdin_fd >= 0 && !self.stdin_buf.is_empty();
            if want_stdin_out {
                fds.push(libc::pollfd { fd: self.stdin_fd, events: libc::POLLOUT, revents: 0 });
            }
            let timeout = match drain_deadline {
                Some(d) => (d - now_ms()).clamp(0, 2000) as i32,
                None => -1,
            };
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                break;
            }
            if fds[0].revents != 0 {
                self.on_signals();
                if self.status.is_some() && drain_deadline.is_none() {
                    drain_deadline = Some(now_ms() + 2000);
                }
            }
            // Output streams, in order (stdout before stderr); those at EOF are removed after.
            let mut eof = Vec::new();
            for i in 0..ns {
                if fds[1 + i].revents != 0 && self.on_output(i) {
                    eof.push(i);
                }
            }
            for i in eof.into_iter().rev() {
                self.flush_line(i);
                let s = self.streams.remove(i);
                if Some(s.fd) != self.master {
                    close(s.fd);
                }
            }
            if nl == 1 && fds[1 + ns].revents != 0 {
                self.on_accept();
            }
            let base = 1 + ns + nl;
            let nclients = fds.len() - base - want_stdin_out as usize;
            for i in (0..nclients).rev() {
                let rev = fds[base + i].revents;
                if rev != 0 {
                    self.on_client(i, rev);
                }
            }
            self.remove_dead();
            if want_stdin_out && fds[fds.len() - 1].revents != 0 {
                self.flush_stdin();
            }
        }
        self.finish();
    }

    fn on_signals(&mut self) {
        for sig in util::read_signals(self.sfd) {
            if sig != libc::SIGCHLD && sig != libc::SIGPIPE {
                unsafe { libc::kill(self.pid, sig) };
            }
        }
        loop {
            let mut st = 0;
            let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if r <= 0 {
                break;
            }
            if r == self.pid {
                self.status = Some(st);
            }
        }
    }

    /// Read what stream `i` has; true at EOF.
    fn on_output(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 16384];
        loop {
            let fd = self.streams[i].fd;
            let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
            if n > 0 {
                let data = &buf[..n as usize];
                let frame = self.streams[i].frame;
                self.broadcast(frame, data);
                self.log_bytes(i, data);
                if self.throttled() {
                    return false;
                }
                continue;
            }
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            // EAGAIN: wait for more. EOF, or EIO from a pty master whose slave closed: done.
            if n < 0 && errno() == libc::EAGAIN {
                return false;
            }
            return true;
        }
    }

    fn log_bytes(&mut self, i: usize, mut data: &[u8]) {
        while !data.is_empty() {
            let s = &mut self.streams[i];
            let room = MAX_LINE - s.line.len();
            match data.iter().take(room).position(|b| *b == b'\n') {
                Some(p) => {
                    s.line.extend_from_slice(&data[..=p]);
                    data = &data[p + 1..];
                    self.flush_line(i);
                }
                None => {
                    let take = room.min(data.len());
                    s.line.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if s.line.len() >= MAX_LINE {
                        self.flush_line(i);
                    }
                }
            }
        }
    }

    fn flush_line(&mut self, i: usize) {
        let s = &mut self.streams[i];
        if s.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&s.line);
        let entry = format!("{{\"log\":{},\"stream\":\"{}\",\"time\":\"{}\"}}\n", serde_json::to_string(&text).unwrap_or_default(), s.name, util::now_rfc3339());
        s.line.clear();
        self.log.write(entry.as_bytes());
    }

    fn broadcast(&mut self, frame: u8, data: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let mut hdr = [frame, 0, 0, 0, 0, 0, 0, 0];
        hdr[4..].copy_from_slice(&(data.len() as u32).to_be_bytes());
        // A client that fails (or falls too far behind) is only marked dead here: the run loop
        // still holds the indices of this round's clients, and removes the dead after it.
        for c in self.clients.iter_mut().filter(|c| !c.dead) {
            c.out.extend(hdr.iter());
            c.out.extend(data.iter());
            if c.out.len() > MAX_CLIENT_BACKLOG && Some(c.fd) != self.primary {
                c.dead = true;
                c.out.clear();
            } else {
                flush_client(c);
            }
        }
    }

    /// Removes the clients marked dead (by a broadcast).
    fn remove_dead(&mut self) {
        for k in (0..self.clients.len()).rev() {
            if self.clients[k].dead {
                self.remove_client(k);
            }
        }
    }

    fn remove_client(&mut self, k: usize) {
        let c = self.clients.remove(k);
        if self.primary == Some(c.fd) {
            self.primary = None;
        }
        close(c.fd);
    }

    /// The primary client is too far behind: leave the output in the pipes for now. Not once
    /// the init has exited (the rest is drained, within the usual 2 s).
    fn throttled(&self) -> bool {
        self.status.is_none() && self.primary.is_some_and(|p| self.clients.iter().any(|c| c.fd == p && c.out.len() > MAX_CLIENT_BACKLOG))
    }

    fn on_accept(&mut self) {
        let Some(l) = self.listen else { return };
        loop {
            let fd = unsafe { libc::accept4(l, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) };
            if fd < 0 {
                return;
            }
            self.clients.push(Client { fd, inbuf: Vec::new(), out: VecDeque::new(), read_closed: false, dead: false });
        }
    }

    fn on_client(&mut self, i: usize, rev: libc::c_short) {
        if self.clients[i].dead {
            self.remove_client(i);
            return;
        }
        if rev & libc::POLLOUT != 0 {
            flush_client(&mut self.clients[i]);
            if self.clients[i].dead {
                self.remove_client(i);
                return;
            }
        }
        if rev & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
            return;
        }
        if rev & (libc::POLLHUP | libc::POLLERR) != 0 && self.clients[i].read_closed {
            self.remove_client(i);
            return;
        }
        let mut buf = [0u8; 8192];
        let n = unsafe { libc::read(self.clients[i].fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n < 0 && (errno() == libc::EAGAIN || errno() == libc::EINTR) {
            return;
        }
        // EOF alone is a half-close (shutdown(SHUT_WR)): keep sending. With POLLHUP, or an
        // error, the peer is gone.
        if n == 0 && rev & (libc::POLLHUP | libc::POLLERR) == 0 {
            self.clients[i].read_closed = true;
            return;
        }
        if n <= 0 {
            self.remove_client(i);
            return;
        }
        self.clients[i].inbuf.extend_from_slice(&buf[..n as usize]);
        loop {
            let inb = &self.clients[i].inbuf;
            if inb.len() < 8 {
                break;
            }
            let len = u32::from_be_bytes(inb[4..8].try_into().unwrap()) as usize;
            if inb.len() < 8 + len {
                break;
            }
            let typ = inb[0];
            let payload: Vec<u8> = inb[8..8 + len].to_vec();
            self.clients[i].inbuf.drain(..8 + len);
            self.on_frame(typ, &payload);
        }
    }

    fn on_frame(&mut self, typ: u8, payload: &[u8]) {
        self.frames_in += 1;
        match typ {
            FRAME_STDIN if self.stdin_fd >= 0 => {
                self.stdin_buf.extend(payload.iter());
                self.flush_stdin();
            }
            FRAME_RESIZE if payload.len() >= 4 => {
                if let Some(m) = self.master {
                    let ws = libc::winsize { ws_row: u16::from_be_bytes([payload[0], payload[1]]), ws_col: u16::from_be_bytes([payload[2], payload[3]]), ws_xpixel: 0, ws_ypixel: 0 };
                    unsafe { libc::ioctl(m, libc::TIOCSWINSZ, &ws) };
                }
            }
            FRAME_CLOSE_STDIN if self.stdin_fd >= 0 => {
                if self.master.is_some() {
                    self.stdin_buf.push_back(4);
                    self.flush_stdin();
                } else {
                    self.flush_stdin();
                    close(self.stdin_fd);
                    self.stdin_fd = -1;
                    self.stdin_buf.clear();
                }
            }
            _ => {}
        }
    }

    fn flush_stdin(&mut self) {
        while !self.stdin_buf.is_empty() && self.stdin_fd >= 0 {
            let (a, _) = self.stdin_buf.as_slices();
            let n = unsafe { libc::write(self.stdin_fd, a.as_ptr() as *const libc::c_void, a.len()) };
            if n <= 0 {
                if n < 0 && errno() == libc::EPIPE && self.master.is_none() {
                    close(self.stdin_fd);
                    self.stdin_fd = -1;
                    self.stdin_buf.clear();
                }
                return;
            }
            self.stdin_buf.drain(..n as usize);
        }
    }

    fn finish(&mut self) {
        for i in (0..self.streams.len()).rev() {
            self.flush_line(i);
        }
        let st = self.status.unwrap_or(0);
        let signal = if libc::WIFSIGNALED(st) { Some(libc::WTERMSIG(st)) } else { None };
        let oom = crate::state::Container::load(&self.root, &self.id).ok().and_then(|c| c.cgroup().ok()).map(|cg| cg.oom_kills()).unwrap_or(0) > self.oom_before;
        let doc = serde_json::json!({
            "id": self.id,
            "pid": self.pid,
            "exit_code": util::exit_code(st),
            "signal": signal,
            "oom_killed": oom,
            "started_at": self.started_at,
            "finished_at": util::now_rfc3339(),
        })
        .to_string();
        // No new clients from here on, and the socket is gone before the exit file appears,
        // so whoever sees the exit file never connects to a shim that is going away.
        if let Some(l) = self.listen.take() {
            close(l);
        }
        if let Some(p) = &self.attach_path {
            let _ = std::fs::remove_file(p);
        }
        if self.delete_on_exit {
            // The init is reaped: this removes the cgroup and the state dir, nothing else.
            let _ = container::delete(&self.root, &self.id, true);
        }
        if let Some(p) = &self.exit_file {
            if util::atomic_write(p, doc.as_bytes(), 0o644).is_err() {
                if let Some(f) = &self.exit_fallback {
                    let _ = util::atomic_write(f, doc.as_bytes(), 0o644);
                }
            }
        }
        self.broadcast(FRAME_EXIT, doc.as_bytes());
        for c in &mut self.clients {
            set_blocking_with_timeout(c.fd);
            flush_client(c);
            close(c.fd);
        }
    }
}

const SHIM_SIGNALS: &[i32] = &[libc::SIGCHLD, libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGPIPE];

/// The container's json-file log, rotated by size (see the module's doc, 3.).
struct LogFile {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    /// 0: never rotated.
    max_size: u64,
    /// The files kept in all, this one included (at least 1).
    max_file: u32,
}

impl LogFile {
    fn open(path: &Path, max_size: u64, max_file: u32) -> Result<LogFile> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io("open log", Some(path), e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogFile { path: path.to_path_buf(), file, size, max_size, max_file: max_file.max(1) })
    }

    /// One entry, after a rotation if the file has reached its size (as Docker's: the file in
    /// use is never left empty). A failed write (a full disk) loses the entry, never the
    /// container.
    fn write(&mut self, entry: &[u8]) {
        if self.max_size > 0 && self.size >= self.max_size {
            self.rotate();
        }
        if self.file.write_all(entry).is_ok() {
            self.size += entry.len() as u64;
        }
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) {
        if self.max_file == 1 {
            if self.file.set_len(0).is_ok() {
                self.size = 0;
            }
            return;
        }
        for n in (1..self.max_file - 1).rev() {
            let _ = std::fs::rename(self.numbered(n), self.numbered(n + 1));
        }
        if std::fs::rename(&self.path, self.numbered(1)).is_err() {
            return;
        }
        // (no new file: go on appending to the renamed one, as it is all there is)
        if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(&self.path) {
            self.file = f;
            self.size = 0;
        }
    }
}

fn flush_client(c: &mut Client) {
    while !c.out.is_empty() {
        let (a, _) = c.out.as_slices();
        let n = unsafe { libc::send(c.fd, a.as_ptr() as *const libc::c_void, a.len(), libc::MSG_NOSIGNAL) };
        if n <= 0 {
            if n < 0 && errno() != libc::EAGAIN && errno() != libc::EINTR {
                c.dead = true;
                c.out.clear();
            }
            return;
        }
        c.out.drain(..n as usize);
    }
}

fn set_blocking_with_timeout(fd: RawFd) {
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv as *const _ as *const libc::c_void, std::mem::size_of::<libc::timeval>() as u32);
    }
}

fn now_ms() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::LogFile;

    #[test]
    fn log_rotation_keeps_max_file_files_and_never_an_empty_one() {
        let dir = std::env::temp_dir().join(format!("dyrt-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c-json.log");
        let mut log = LogFile::open(&path, 100, 3).unwrap();
        for i in 0..50 {
            log.write(format!("{{\"log\":\"line {i:02}\\n\"}}\n").as_bytes()); // 20 bytes each
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        let (cur, one, two) = (read(&path), read(&dir.join("c-json.log.1")), read(&dir.join("c-json.log.2")));
        assert!(!dir.join("c-json.log.3").exists());
        assert!(cur.ends_with("line 49\\n\"}\n") && !cur.is_empty(), "{cur}");
        // each rotated file holds what reached the size, in order, and the three follow on
        assert_eq!(one.len(), 100);
        assert_eq!(two.len(), 100);
        let all: Vec<String> = format!("{two}{one}{cur}").lines().map(String::from).collect();
        let first = 50 - all.len();
        for (k, line) in all.iter().enumerate() {
            assert_eq!(line, &format!("{{\"log\":\"line {:02}\\n\"}}", first + k));
        }
        // max-file 1: the file is emptied instead
        let single = dir.join("s-json.log");
        let mut log = LogFile::open(&single, 100, 1).unwrap();
        for i in 0..12 {
            log.write(format!("{{\"log\":\"line {i:02}\\n\"}}\n").as_bytes());
        }
        assert_eq!(read(&single), "{\"log\":\"line 10\\n\"}\n{\"log\":\"line 11\\n\"}\n");
        assert!(!dir.join("s-json.log.1").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
