//! OCI hooks: each is run with its `args` (args[0] is its argv[0]) and `env` only, the
//! container's state JSON on its stdin, and killed after `timeout` seconds. Where they run, as
//! the runtime spec and runc have it:
//!
//! | hooks | who runs them | when |
//! | --- | --- | --- |
//! | prestart, createRuntime | the runtime (`create`) | the namespaces and mounts exist, before `pivot_root` |
//! | createContainer | the container's init | after the mounts, before `pivot_root` |
//! | startContainer | the init | at `start`, before the user's process is exec'd |
//! | poststart | the runtime (`start`) | after the user's process was started |
//! | poststop | the runtime (`delete`) | after the container is gone |
//!
//! A failing prestart/createRuntime/createContainer/startContainer hook fails the operation;
//! poststart and poststop failures are warnings (the lifecycle goes on).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::spec::Hook;

/// The state document a hook reads: the OCI state with `status` and `pid` as of this point.
pub fn state_json(id: &str, status: &str, pid: i32, bundle: &str, annotations: &std::collections::BTreeMap<String, String>) -> Vec<u8> {
    // runc's document: pid and annotations left out when there are none (a stopped container)
    let mut v = serde_json::json!({
        "ociVersion": crate::state::OCI_VERSION,
        "id": id,
        "status": status,
        "bundle": bundle,
    });
    if pid > 0 {
        v["pid"] = pid.into();
    }
    if !annotations.is_empty() {
        v["annotations"] = serde_json::json!(annotations);
    }
    v.to_string().into_bytes()
}

/// Run `hooks` in order; the first failure is returned (named `kind`, index and why).
pub fn run_all(kind: &str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, state).map_err(|e| e.wrap(format!("error running {kind} hook #{i} ({})", h.path)))?;
    }
    Ok(())
}

/// Run every hook of `hooks` (poststart, poststop): a failure is a warning on stderr and the
/// rest still run, as the runtime spec says.
pub fn run_all_warn(kind: &str, hooks: &[Hook], state: &[u8]) {
    for (i, h) in hooks.iter().enumerate() {
        if let Err(e) = run_one(h, state) {
            eprintln!("dockyard-runtime: warning: error running {kind} hook #{i} ({}): {e}", h.path);
        }
    }
}

fn run_one(h: &Hook, state: &[u8]) -> Result<()> {
    let mut cmd = Command::new(&h.path);
    if let Some((a0, rest)) = h.args.split_first() {
        cmd.arg0(a0).args(rest);
    }
    cmd.env_clear();
    for kv in &h.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    // Its output is kept for the error message (runc's "stdout: ..., stderr: ..."), never
    // mixed into the runtime's or the container's.
    let (mut out, mut err) = (memfd("hook-stdout")?, memfd("hook-stderr")?);
    cmd.stdin(Stdio::piped()).stdout(Stdio::from(out.try_clone().map_err(|e| Error::io("dup", None, e))?)).stderr(Stdio::from(err.try_clone().map_err(|e| Error::io("dup", None, e))?));
    let mut child = cmd.spawn().map_err(|e| Error::io("start", Some(std::path::Path::new(&h.path)), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE).
        let _ = stdin.write_all(state);
    }
    let pid = child.id() as i32;
    if let Some(t) = h.timeout.filter(|t| *t > 0) {
        // Wait on a pidfd with the timeout: no polling.
        let pfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if pfd >= 0 {
            let mut p = libc::pollfd { fd: pfd, events: libc::POLLIN, revents: 0 };
            let ms = t.saturating_mul(1000).min(i32::MAX as i64) as i32;
            let n = loop {
                let n = unsafe { libc::poll(&mut p, 1, ms) };
                if n < 0 && crate::error::errno() == libc::EINTR {
                    continue;
                }
                break n;
            };
            crate::util::close(pfd);
            if n == 0 {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::msg(format!("timed out after {t} s")));
            }
        }
    }
    let st = child.wait().map_err(|e| Error::io("wait", None, e))?;
    if !st.success() {
        let read = |f: &mut std::fs::File| {
            use std::io::{Read, Seek};
            let mut s = String::new();
            let _ = f.seek(std::io::SeekFrom::Start(0));
            let _ = f.take(4096).read_to_string(&mut s);
            s.trim_end().to_string()
        };
        return Err(Error::msg(format!("{st}, stdout: {}, stderr: {}", read(&mut out), read(&mut err))));
    }
    Ok(())
}

fn memfd(name: &str) -> Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    let c = std::ffi::CString::new(name).unwrap_or_default();
    let fd = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::last("memfd_create", None));
    }
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_leaves_out_pid_and_annotations_when_there_are_none() {
        let none = std::collections::BTreeMap::new();
        let v: serde_json::Value = serde_json::from_slice(&state_json("c1", "stopped", 0, "/b", &none)).unwrap();
        assert_eq!(v["status"], "stopped");
        assert!(v.get("pid").is_none() && v.get("annotations").is_none());
        let mut ann = std::collections::BTreeMap::new();
        ann.insert("k".to_string(), "v".to_string());
        let v: serde_json::Value = serde_json::from_slice(&state_json("c1", "creating", 42, "/b", &ann)).unwrap();
        assert_eq!((v["pid"].as_i64(), v["annotations"]["k"].as_str(), v["bundle"].as_str()), (Some(42), Some("v"), Some("/b")));
    }

    #[test]
    fn runs_in_order_with_args_env_stdin_and_fails_with_output() {
        let dir = std::env::temp_dir().join(format!("dy-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let h = |args: &[&str], env: &[&str]| Hook {
            path: "/bin/sh".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|s| s.to_string()).collect(),
            timeout: None,
        };
        let script = format!("echo \"$0 $FOO $(cat)\" >> {}", out.display());
        run_all("t", &[h(&["first", "-c", &script], &["FOO=1"]), h(&["second", "-c", &script], &["FOO=2"])], b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "first 1 {}\nsecond 2 {}\n");
        let e = run_all("poststop", &[h(&["x", "-c", "echo to-out; echo to-err >&2; exit 3"], &[])], b"").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("poststop hook #0") && s.contains("stdout: to-out") && s.contains("stderr: to-err"), "{s}");
        let slow = Hook { timeout: Some(1), ..h(&["x", "-c", "sleep 30"], &[]) };
        let t = std::time::Instant::now();
        assert!(run_all("prestart", &[slow], b"").unwrap_err().to_string().contains("timed out"));
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
