//! cgroups behind one trait, [`CgroupManager`], with a v1 ([`v1::V1`]) and a v2 ([`v2::V2`])
//! implementation chosen by [`detect`]: the host is v2 when `/sys/fs/cgroup/cgroup.controllers`
//! exists and lists controllers; otherwise (v1 or hybrid, whose v2 mount has no controllers)
//! it is v1. Both take their root(s) as parameters, so tests run them against a fake cgroupfs
//! in a temporary directory.

pub mod none;
pub mod v1;
pub mod v2;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::mounts::CgroupMount;
use crate::spec::Resources;

/// What a container's cgroup can do. Edge cases, per method:
pub trait CgroupManager {
    /// 1 or 2.
    fn version(&self) -> u8;
    /// The cgroup path inside the hierarchy ("/dockyard/ID"), as recorded in the state.
    fn path(&self) -> &str;
    /// Create the cgroup (and missing parents) in every hierarchy. An existing cgroup is
    /// reused, as runc does for a shared path. On v1 a new cpuset cgroup inherits
    /// `cpuset.cpus`/`cpuset.mems` from its parent (it could hold no task otherwise); on v2 the
    /// controllers are enabled in each ancestor's `cgroup.subtree_control`.
    fn create(&self) -> Result<()>;
    /// Write the limits of `linux.resources`. Unset fields are left alone. A limit for a
    /// controller the host does not have is an error naming it, never silently dropped.
    fn set(&self, r: &Resources) -> Result<()>;
    /// Move a process (all its threads) into the cgroup.
    fn add(&self, pid: i32) -> Result<()>;
    /// Move the calling process, which must be single-threaded (a freshly forked child), into
    /// the cgroup. Where the kernel allows it this is cheaper than [`add`](Self::add) by another
    /// process: see the v1 implementation.
    fn enter(&self) -> Result<()> {
        self.add(std::process::id() as i32)
    }
    /// The pids in the cgroup (processes, not threads); empty if it does not exist.
    fn pids(&self) -> Result<Vec<i32>>;
    /// Freeze every task and wait until the kernel reports the cgroup frozen.
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
    /// False if there is no freezer or no cgroup.
    fn is_frozen(&self) -> bool;
    /// How many tasks the OOM killer killed in this cgroup so far (0 if unknown).
    fn oom_kills(&self) -> u64;
    /// Remove the cgroup from every hierarchy; retries while the last tasks exit (EBUSY) for
    /// up to about a second. Missing directories are fine. Parents are left in place.
    fn destroy(&self) -> Result<()>;
    /// Where the cgroup lives, for the container's own `/sys/fs/cgroup` mount.
    fn mount_info(&self, cgroupns: bool) -> CgroupMount;
    /// The directory of `controller`'s cgroup (v2: the one directory), if there is one.
    fn controller_dir(&self, controller: &str) -> Option<PathBuf>;
    /// `runc events --stats`' `data`: cpu, memory and pids figures from the cgroup files
    /// (what the files give; absent files leave their fields out).
    fn stats(&self) -> serde_json::Value {
        let num = |c: &str, f: &str| -> Option<u64> { self.controller_dir(c).and_then(|d| read(&d, f).ok()).and_then(|v| v.trim().parse().ok()) };
        let kv = |c: &str, f: &str| -> serde_json::Map<String, serde_json::Value> {
            let text = self.controller_dir(c).and_then(|d| read(&d, f).ok()).unwrap_or_default();
            text.lines().filter_map(|l| l.split_once(' ')).filter_map(|(k, v)| Some((k.to_string(), v.trim().parse::<u64>().ok()?.into()))).collect()
        };
        let mut cpu = serde_json::json!({"usage": {}, "throttling": {}});
        let mut memory = serde_json::json!({"usage": {}});
        let mut pids = serde_json::json!({});
        if self.version() == 2 {
            let st = kv("cpu", "cpu.stat");
            let us = |k: &str| st.get(k).and_then(|v| v.as_u64()).map(|v| v * 1000);
            cpu["usage"] = serde_json::json!({"total": us("usage_usec"), "user": us("user_usec"), "kernel": us("system_usec")});
            memory["usage"] = serde_json::json!({"usage": num("memory", "memory.current"), "limit": num("memory", "memory.max").unwrap_or(u64::MAX)});
            memory["raw"] = kv("memory", "memory.stat").into();
        } else {
            let percpu: Vec<u64> = self.controller_dir("cpuacct").and_then(|d| read(&d, "cpuacct.usage_percpu").ok()).unwrap_or_default()
                .split_whitespace().filter_map(|v| v.parse().ok()).collect();
            cpu["usage"] = serde_json::json!({"total": num("cpuacct", "cpuacct.usage"), "percpu": percpu});
            let t = kv("cpu", "cpu.stat");
            cpu["throttling"] = serde_json::json!({"periods": t.get("nr_periods"), "throttled_periods": t.get("nr_throttled"), "throttled_time": t.get("throttled_time")});
            memory["usage"] = serde_json::json!({"usage": num("memory", "memory.usage_in_bytes"), "max": num("memory", "memory.max_usage_in_bytes"),
                                                 "limit": num("memory", "memory.limit_in_bytes"), "failcnt": num("memory", "memory.failcnt")});
            let raw = kv("memory", "memory.stat");
            memory["cache"] = raw.get("cache").cloned().unwrap_or(0.into());
            memory["raw"] = raw.into();
        }
        pids["current"] = num("pids", "pids.current").into();
        if let Some(m) = num("pids", "pids.max") {
            pids["limit"] = m.into();
        }
        serde_json::json!({"cpu": cpu, "memory": memory, "pids": pids})
    }
    /// Send `sig` to every process in the cgroup.
    fn kill_all(&self, sig: i32) -> Result<()> {
        for pid in self.pids()? {
            unsafe { libc::kill(pid, sig) };
        }
        Ok(())
    }
}

/// Is the host cgroup v2 (unified with controllers)?
pub fn host_is_v2(root: &Path) -> bool {
    std::fs::read_to_string(root.join("cgroup.controllers")).map(|s| !s.trim().is_empty()).unwrap_or(false)
}

/// The default cgroup path of a container that has no `linux.cgroupsPath`.
pub fn default_path(id: &str) -> String {
    format!("/dockyard/{id}")
}

/// Open the manager for a container, detecting the host's cgroup version.
pub fn open(cgroups_path: Option<&str>, id: &str) -> Result<Box<dyn CgroupManager>> {
    let path = match cgroups_path {
        None | Some("") => default_path(id),
        // The systemd driver's form (kubelet's default with SystemdCgroup): laid out on cgroupfs
        // where systemd would put it (no D-Bus here), so pods of a systemd-driver node run.
        Some(p) if p.contains(':') && !p.starts_with('/') => systemd_path(p)?,
        Some(p) => p.to_string(),
    };
    let root = Path::new("/sys/fs/cgroup");
    if host_is_v2(root) {
        let path = if path.starts_with('/') { path } else { join_rel(&v2::own_cgroup()?, &path) };
        if rootless() && !delegated(root, &path) {
            return Ok(Box::new(none::NoCgroup));
        }
        Ok(Box::new(v2::V2::new(root.to_path_buf(), path)))
    } else if rootless() {
        Ok(Box::new(none::NoCgroup))
    } else {
        Ok(Box::new(v1::V1::from_host(&path)?))
    }
}

/// Whether the runtime runs in a user namespace other than the host's (under a rootless
/// daemon): its uid_map is then not the identity over every id.
pub fn rootless() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

/// v2 under a rootless runtime: whether the nearest existing ancestor of `path` is writable
/// (a subtree systemd delegated to the user), so the container's cgroup can be made there.
fn delegated(root: &Path, path: &str) -> bool {
    let mut dir = root.join(path.trim_start_matches('/'));
    loop {
        if dir.exists() {
            let c = match std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str())) {
                Ok(c) => c,
                Err(_) => return false,
            };
            return unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0;
        }
        if !dir.pop() || dir == root.parent().unwrap_or(root) {
            return false;
        }
    }
}

/// `slice:prefix:name` (runc's systemd cgroupsPath) → the path systemd gives that unit:
/// the slice expanded (`a-b.slice` → `/a.slice/a-b.slice`; empty → `system.slice`), then
/// `prefix-name.scope` (or `name` itself when it is a slice).
pub fn systemd_path(p: &str) -> Result<String> {
    let parts: Vec<&str> = p.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(Error::msg(format!("cgroupsPath {p:?}: expected slice:prefix:name")));
    };
    let slice = if slice.is_empty() { "system.slice" } else { slice };
    let mut path = expand_slice(slice).map_err(|e| e.wrap(format!("cgroupsPath {p:?}")))?;
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    if unit.contains('/') {
        return Err(Error::msg(format!("cgroupsPath {p:?}: the unit name has a '/'")));
    }
    path.push('/');
    path.push_str(&unit);
    Ok(path)
}

/// systemd's slice nesting: `a-b-c.slice` lives in `a.slice/a-b.slice/`; `-.slice` is the root.
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad = || Error::msg(format!("invalid slice name {slice:?}"));
    let base = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if slice.contains('/') {
        return Err(bad());
    }
    if base == "-" {
        return Ok(String::new());
    }
    if base.is_empty() || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
        return Err(bad());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for (i, comp) in base.split('-').enumerate() {
        if i > 0 {
            prefix.push('-');
        }
        prefix.push_str(comp);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Ok(path)
}

/// Reopen from the state (version and path already known).
pub fn reopen(version: u8, path: &str) -> Result<Box<dyn CgroupManager>> {
    if version == 0 {
        Ok(Box::new(none::NoCgroup))
    } else if version == 2 {
        Ok(Box::new(v2::V2::new(PathBuf::from("/sys/fs/cgroup"), path.to_string())))
    } else {
        Ok(Box::new(v1::V1::from_host(path)?))
    }
}

pub(crate) fn join_rel(base: &str, rel: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), rel.trim_start_matches("./"))
}

/// Write a cgroup control file. O_CREAT is harmless on cgroupfs (the files exist; a missing one
/// fails with the path named) and lets the fake trees of the tests be plain directories.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&p).map_err(|e| Error::io(format!("open cgroup file to write {value:?}"), Some(&p), e))?;
    f.write_all(value.as_bytes()).map_err(|e| Error::io(format!("write {value:?} to cgroup file"), Some(&p), e))
}

pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    let p = dir.join(file);
    std::fs::read_to_string(&p).map_err(|e| Error::io("read cgroup file", Some(&p), e))
}

pub(crate) fn read_pids(dir: &Path) -> Result<Vec<i32>> {
    match std::fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Vec::new()),
        Err(e) => Err(Error::io("read", Some(&dir.join("cgroup.procs")), e)),
    }
}

/// rmdir, retrying on EBUSY while the last tasks leave.
pub(crate) fn rmdir(dir: &Path) -> Result<()> {
    for i in 0..100 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && i < 99 => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) || e.raw_os_error() == Some(libc::EEXIST) => {
                // A fake tree (regular files inside): remove the files, then the dir.
                if !dir.starts_with("/sys/fs/cgroup") {
                    std::fs::remove_dir_all(dir).map_err(|e| Error::io("remove cgroup", Some(dir), e))?;
                    return Ok(());
                }
                return Err(Error::io("remove cgroup", Some(dir), e));
            }
            Err(e) => return Err(Error::io("remove cgroup", Some(dir), e)),
        }
    }
    Ok(())
}

/// Poll `f` for up to ~2 s.
pub(crate) fn wait_until(mut f: impl FnMut() -> Result<bool>) -> Result<bool> {
    for _ in 0..2000 {
        if f()? {
            return Ok(true);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(false)
}

/// Convert cpu.shares (v1, 2..262144) to cpu.weight (v2, 1..10000), the formula the kernel
/// documentation and every runtime use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262144) - 2) * 9999) / 262142
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::path::PathBuf;

    /// A private temporary directory, removed on drop.
    pub struct TempDir(pub PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let p = std::env::temp_dir().join(format!("dyrt-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod systemd_tests {
    use super::*;

    #[test]
    fn systemd_cgroups_path_on_cgroupfs() {
        assert_eq!(systemd_path("kubepods-besteffort-pod12.slice:cri-containerd:abc").unwrap(),
                   "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope");
        assert_eq!(systemd_path(":docker:abc").unwrap(), "/system.slice/docker-abc.scope");
        assert_eq!(systemd_path("-.slice::abc").unwrap(), "/abc.scope");
        assert_eq!(systemd_path("user.slice:x:sub.slice").unwrap(), "/user.slice/sub.slice");
        for bad in ["a:b", "a--b.slice:p:n", "-a.slice:p:n", "a.scope:p:n", "a/b.slice:p:n"] {
            assert!(systemd_path(bad).is_err(), "{bad}");
        }
    }
}
