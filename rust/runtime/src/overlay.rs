//! The rootfs overlay mounted by the runtime inside the container's mount namespace (annotation
//! `dockyard.rootfs.overlay`), instead of by the engine on the host.
//!
//! Why: the host never sees the mount, so nothing can leak there (a crashed engine leaves no
//! stale overlay), and nobody pays for a host-side mount and umount (the umount waits for an
//! RCU grace period). The mount goes away with the container's mount namespace, when its last
//! process (init or `exec`) exits.
//!
//! The annotation's value is a JSON object:
//! `{"lower": ["/abs/top", ..., "/abs/bottom"], "upper": "/abs/upper", "work": "/abs/work"}`
//! (`lower` in overlayfs order, topmost first; `upper` and `work` both or neither — without
//! them the rootfs is a read-only union).
//!
//! How: the new mount API, one `fsconfig("lowerdir+", layer)` per layer (Linux 6.8), so there
//! is no limit on the number of layers (mount(2)'s option string is limited to one page and a
//! single `fsconfig` string to 256 bytes), then `fsmount` and `move_mount` onto `root.path`.
//! Kernels without `fsopen` or `lowerdir+` get mount(2) with `lowerdir=a:b,upperdir=,workdir=`.
//! The kernel's own explanation of a failure (read back from the fs context) is kept in the
//! error. `DOCKYARD_RUNTIME_OVERLAY_MOUNT2=1` in the runtime's environment forces mount(2)
//! (for tests).

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::spec::Spec;

pub const ANNOTATION: &str = "dockyard.rootfs.overlay";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    pub lower: Vec<PathBuf>,
    #[serde(default)]
    pub upper: Option<PathBuf>,
    #[serde(default)]
    pub work: Option<PathBuf>,
}

impl Overlay {
    /// The annotation of `spec`, checked; `None` without it.
    pub fn from_spec(spec: &Spec) -> Result<Option<Overlay>> {
        let Some(v) = spec.annotations.get(ANNOTATION) else { return Ok(None) };
        let bad = |why: String| Error::msg(format!("annotation {ANNOTATION}: {why}"));
        let o: Overlay = serde_json::from_str(v).map_err(|e| bad(format!("{e} (want {{\"lower\": [...], \"upper\": ..., \"work\": ...}})")))?;
        if o.lower.is_empty() {
            return Err(bad("\"lower\" is empty".into()));
        }
        if o.upper.is_some() != o.work.is_some() {
            return Err(bad("\"upper\" and \"work\" go together".into()));
        }
        for p in o.lower.iter().chain(o.upper.iter()).chain(o.work.iter()) {
            if !p.is_absolute() {
                return Err(bad(format!("{} is not an absolute path", p.display())));
            }
        }
        Ok(Some(o))
    }

    /// mount(2)'s option string; overlayfs splits it on ',' and the lower list on ':'.
    pub fn mount_data(&self) -> Result<String> {
        let check = |p: &Path| -> Result<String> {
            let s = p.to_string_lossy().into_owned();
            if s.contains([',', ':', '\\']) {
                return Err(Error::msg(format!("overlay layer path {s:?} contains ',', ':' or '\\\\', which mount(2) cannot take (this kernel has no fsconfig lowerdir+)")));
            }
            Ok(s)
        };
        let lower: Vec<String> = self.lower.iter().map(|p| check(p)).collect::<Result<_>>()?;
        let mut d = format!("lowerdir={}", lower.join(":"));
        if let (Some(u), Some(w)) = (&self.upper, &self.work) {
            d.push_str(&format!(",upperdir={},workdir={}", check(u)?, check(w)?));
        }
        Ok(d)
    }

    /// One line for errors and the recording double.
    pub fn describe(&self) -> String {
        let l: Vec<String> = self.lower.iter().map(|p| p.display().to_string()).collect();
        let mut s = format!("lower={}", l.join(":"));
        if let (Some(u), Some(w)) = (&self.upper, &self.work) {
            s.push_str(&format!(" upper={} work={}", u.display(), w.display()));
        }
        s
    }
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn cs(s: &str) -> Result<std::ffi::CString> {
    std::ffi::CString::new(s).map_err(|_| Error::msg(format!("string contains NUL: {s:?}")))
}

/// What the kernel wrote to the fs context's message log (`e overlayfs: ...` lines).
fn kernel_messages(fsfd: RawFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    for _ in 0..8 {
        let n = unsafe { libc::read(fsfd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n <= 0 {
            break;
        }
        out.push(String::from_utf8_lossy(&buf[..n as usize]).trim_end().to_string());
    }
    out.join("; ")
}

/// Outcome of the new mount API: done, or not available on this kernel (use mount(2)).
enum Tried {
    Mounted,
    Unsupported,
}

fn mount_new_api(target: &Path, o: &Overlay) -> Result<Tried> {
    let fsfd = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) } as RawFd;
    if fsfd < 0 {
        let e = crate::error::errno();
        if e == libc::ENOSYS || e == libc::EPERM {
            return Ok(Tried::Unsupported);
        }
        return Err(Error::sys("fsopen overlay", None, e));
    }
    let r = (|| -> Result<Tried> {
        let set = |key: &str, val: &Path, first: bool| -> Result<Option<Tried>> {
            let k = cs(key)?;
            let v = crate::util::cstring(val)?;
            if unsafe { libc::syscall(libc::SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, k.as_ptr(), v.as_ptr(), 0) } < 0 {
                let e = crate::error::errno();
                let msg = kernel_messages(fsfd);
                // No "lowerdir+" before Linux 6.8: the first one tells.
                if first && e == libc::EINVAL && msg.contains("Unknown parameter") {
                    return Ok(Some(Tried::Unsupported));
                }
                let msg = if msg.is_empty() { String::new() } else { format!(" [{msg}]") };
                return Err(Error::sys(format!("overlay {key}{msg}:"), Some(val), e));
            }
            Ok(None)
        };
        // As Docker's overlays read in /proc/mounts: "overlay / overlay ...".
        set("source", Path::new("overlay"), false)?;
        for (i, l) in o.lower.iter().enumerate() {
            if let Some(t) = set("lowerdir+", l, i == 0)? {
                return Ok(t);
            }
        }
        if let (Some(u), Some(w)) = (&o.upper, &o.work) {
            set("upperdir", u, false)?;
            set("workdir", w, false)?;
        }
        if unsafe { libc::syscall(libc::SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, std::ptr::null::<libc::c_char>(), std::ptr::null::<libc::c_void>(), 0) } < 0 {
            let e = crate::error::errno();
            let msg = kernel_messages(fsfd);
            return Err(Error::sys(format!("create overlay ({}){}", o.describe(), if msg.is_empty() { String::new() } else { format!(" [{msg}]") }), None, e));
        }
        let mfd = unsafe { libc::syscall(libc::SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, 0) } as RawFd;
        if mfd < 0 {
            return Err(Error::last("fsmount overlay", None));
        }
        let t = crate::util::cstring(target)?;
        let r = unsafe { libc::syscall(libc::SYS_move_mount, mfd, c"".as_ptr(), libc::AT_FDCWD, t.as_ptr(), MOVE_MOUNT_F_EMPTY_PATH) };
        let err = (r < 0).then(|| Error::last("move_mount overlay onto", Some(target)));
        crate::util::close(mfd);
        match err {
            Some(e) => Err(e),
            None => Ok(Tried::Mounted),
        }
    })();
    crate::util::close(fsfd);
    r
}

fn mount_legacy(target: &Path, o: &Overlay) -> Result<()> {
    let data = o.mount_data()?;
    // The page the kernel copies the options into, less its NUL.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    if data.len() >= page {
        return Err(Error::msg(format!("overlay options are {} bytes, more than mount(2) takes ({}); this kernel has no fsconfig lowerdir+ (Linux 6.8)", data.len(), page - 1)));
    }
    let t = crate::util::cstring(target)?;
    let d = cs(&data)?;
    if unsafe { libc::mount(c"overlay".as_ptr(), t.as_ptr(), c"overlay".as_ptr(), 0, d.as_ptr() as *const libc::c_void) } < 0 {
        return Err(Error::last(format!("mount overlay ({}) on", o.describe()), Some(target)));
    }
    Ok(())
}

/// Mount `o` on `target` in the current mount namespace.
pub fn mount(target: &Path, o: &Overlay) -> Result<()> {
    if std::env::var_os("DOCKYARD_RUNTIME_OVERLAY_MOUNT2").is_some_and(|v| v == "1") {
        return mount_legacy(target, o);
    }
    match mount_new_api(target, o)? {
        Tried::Mounted => Ok(()),
        Tried::Unsupported => mount_legacy(target, o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(v: &str) -> Spec {
        let mut s = Spec::default();
        s.annotations.insert(ANNOTATION.into(), v.into());
        s
    }

    #[test]
    fn parses_and_checks_the_annotation() {
        assert_eq!(Overlay::from_spec(&Spec::default()).unwrap(), None);
        let o = Overlay::from_spec(&spec_with(r#"{"lower":["/l/top","/l/bottom"],"upper":"/u","work":"/w"}"#)).unwrap().unwrap();
        assert_eq!(o.lower, vec![PathBuf::from("/l/top"), PathBuf::from("/l/bottom")]);
        assert_eq!(o.mount_data().unwrap(), "lowerdir=/l/top:/l/bottom,upperdir=/u,workdir=/w");
        let ro = Overlay::from_spec(&spec_with(r#"{"lower":["/a","/b"]}"#)).unwrap().unwrap();
        assert_eq!(ro.mount_data().unwrap(), "lowerdir=/a:/b");
        for bad in [r#"{"lower":[]}"#, r#"{"lower":["rel"]}"#, r#"{"lower":["/a"],"upper":"/u"}"#, r#"{"lower":["/a"],"extra":1}"#, "nope"] {
            let e = Overlay::from_spec(&spec_with(bad)).unwrap_err().to_string();
            assert!(e.contains(ANNOTATION), "{bad}: {e}");
        }
        let colon = Overlay::from_spec(&spec_with(r#"{"lower":["/a:b"]}"#)).unwrap().unwrap();
        assert!(colon.mount_data().is_err());
    }
}
