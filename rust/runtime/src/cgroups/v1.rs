//! cgroup v1: one directory per hierarchy (`/sys/fs/cgroup/<controller>/<path>`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{read, read_pids, rmdir, wait_until, write, CgroupManager};
use crate::error::{Error, Result};
use crate::mounts::{unescape_mountinfo, CgroupMount};
use crate::spec::Resources;

pub struct V1 {
    /// Hierarchy mount point → the controllers (or `name=...`) it carries.
    hierarchies: BTreeMap<PathBuf, Vec<String>>,
    /// The path as asked (what the state records, and `reopen` resolves again).
    path: String,
    /// Hierarchy mount point → the container's absolute cgroup path in it.
    paths: BTreeMap<PathBuf, String>,
}

impl V1 {
    /// `mounts`: hierarchy mount point → its controllers; `path`: absolute cgroup path.
    pub fn new(hierarchies: BTreeMap<PathBuf, Vec<String>>, path: String) -> V1 {
        let paths = hierarchies.keys().map(|m| (m.clone(), path.clone())).collect();
        V1 { hierarchies, path, paths }
    }

    /// The host's v1 hierarchies (from /proc/self/cgroup where they sit in their usual
    /// places, else from /proc/self/mountinfo). A relative `path` is taken relative to our own
    /// cgroup in each hierarchy, as runc does: on a host whose controllers put us in different
    /// cgroups (systemd accounts memory for a service but leaves cpuset at the root), the
    /// container's cgroup differs from one hierarchy to the next.
    pub fn from_host(path: &str) -> Result<V1> {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let hierarchies = match conventional_hierarchies(&own, Path::new("/sys/fs/cgroup")) {
            Some(h) => h,
            None => {
                let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::io("read", Some(Path::new("/proc/self/mountinfo")), e))?;
                parse_mountinfo(&info)
            }
        };
        if hierarchies.is_empty() {
            return Err(Error::msg("no cgroup v1 hierarchy is mounted"));
        }
        Ok(V1::resolved(hierarchies, path, &own))
    }

    /// `path` in each hierarchy: itself when absolute, else below the cgroup that `own` (the
    /// text of /proc/self/cgroup) names for that hierarchy's controllers (the root if none).
    fn resolved(hierarchies: BTreeMap<PathBuf, Vec<String>>, path: &str, own: &str) -> V1 {
        let paths = hierarchies
            .iter()
            .map(|(m, ctls)| {
                let abs = if path.starts_with('/') {
                    path.to_string()
                } else {
                    let base = own.lines().find_map(|l| {
                        let mut f = l.splitn(3, ':');
                        let (_, line_ctls, p) = (f.next()?, f.next()?, f.next()?);
                        (!line_ctls.is_empty() && line_ctls.split(',').any(|c| ctls.iter().any(|x| x == c))).then(|| p.to_string())
                    });
                    super::join_rel(&base.unwrap_or_else(|| "/".into()), path)
                };
                (m.clone(), abs)
            })
            .collect();
        V1 { hierarchies, path: path.to_string(), paths }
    }

    /// The container's directory in the hierarchy mounted at `mount`.
    fn dir_in(&self, mount: &Path) -> PathBuf {
        mount.join(self.paths.get(mount).map_or(self.path.as_str(), String::as_str).trim_start_matches('/'))
    }

    fn dir_of(&self, controller: &str) -> Option<PathBuf> {
        self.hierarchies.iter().find(|(_, c)| c.iter().any(|x| x == controller)).map(|(m, _)| self.dir_in(m))
    }

    fn need(&self, controller: &str) -> Result<PathBuf> {
        self.dir_of(controller).ok_or_else(|| Error::msg(format!("cgroup v1 controller {controller:?} is not mounted, cannot apply its limits")))
    }

    fn dirs(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.hierarchies.keys().map(|m| self.dir_in(m))
    }
}

/// Hierarchy mount point → controllers without reading mountinfo, which the kernel writes out
/// whole on every read (every overlay's options included: 600 KB, and most of a container's
/// start, with 1,000 containers on the host): each v1 hierarchy that /proc/self/cgroup names, at
/// its usual place under `root` (`cpu,cpuacct`, `systemd` for `name=systemd`). `None` when one of
/// them is not a cgroup file system there, so the caller reads mountinfo after all.
pub fn conventional_hierarchies(own: &str, root: &Path) -> Option<BTreeMap<PathBuf, Vec<String>>> {
    const CGROUP_SUPER_MAGIC: i64 = 0x27e0eb;
    let mut out = BTreeMap::new();
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctls) = (f.next()?, f.next()?);
        if ctls.is_empty() {
            continue; // the unified (v2) hierarchy of a hybrid host
        }
        let dir = root.join(ctls.strip_prefix("name=").unwrap_or(ctls));
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path and a statfs the kernel fills
        if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 || st.f_type as i64 != CGROUP_SUPER_MAGIC {
            return None;
        }
        out.insert(dir, ctls.split(',').map(String::from).collect());
    }
    (!out.is_empty()).then_some(out)
}

/// Hierarchy mount point → controllers, for every `cgroup` (v1) mount.
pub fn parse_mountinfo(info: &str) -> BTreeMap<PathBuf, Vec<String>> {
    let mut out = BTreeMap::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let post: Vec<&str> = post.split(' ').collect();
        if post.first() != Some(&"cgroup") || post.len() < 3 {
            continue;
        }
        let pre: Vec<&str> = pre.split(' ').collect();
        if pre.len() < 5 {
            continue;
        }
        let ctls: Vec<String> = post[2]
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev" | "noexec" | "clone_children" | "noprefix" | "xattr" | "cpuset_v2_mode") && !o.starts_with("release_agent"))
            .map(String::from)
            .collect();
        out.insert(PathBuf::from(unescape_mountinfo(pre[4])), ctls);
    }
    out
}

fn limit(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

impl CgroupManager for V1 {
    fn version(&self) -> u8 {
        1
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn create(&self) -> Result<()> {
        for (mount, ctls) in &self.hierarchies {
            let dir = self.dir_in(mount);
            if ctls.iter().any(|c| c == "cpuset") {
                // Walk down from the root so each new level gets its parent's cpus and mems.
                // A level we make above the container's (dockyard's own parent) gets
                // clone_children: the kernel then gives each new child its parent's cpus and
                // mems as it creates it. Writing them instead costs a check against every
                // sibling and a rebuild of the scheduler domains, which walks every cpuset and
                // task: about 1 ms per container start with a thousand containers running.
                let rel = dir.strip_prefix(mount).unwrap_or(&dir).to_path_buf();
                let comps: Vec<_> = rel.components().collect();
                let mut cur = mount.clone();
                for (i, comp) in comps.iter().enumerate() {
                    let parent = cur.clone();
                    cur.push(comp);
                    if !cur.exists() {
                        std::fs::create_dir(&cur).map_err(|e| Error::io("create cgroup", Some(&cur), e))?;
                        if i + 1 < comps.len() {
                            // best effort: without it the writes below still do the job
                            let _ = write(&cur, "cgroup.clone_children", "1");
                        }
                    }
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        let mine = read(&cur, f).unwrap_or_default();
                        if mine.trim().is_empty() {
                            let from = read(&parent, f).unwrap_or_default();
                            if !from.trim().is_empty() {
                                write(&cur, f, from.trim())?;
                            }
                        }
                    }
                }
            } else {
                std::fs::create_dir_all(&dir).map_err(|e| Error::io("create cgroup", Some(&dir), e))?;
            }
        }
        Ok(())
    }

    fn set(&self, r: &Resources) -> Result<()> {
        if let Some(m) = &r.memory {
            if m.limit.is_some() || m.swap.is_some() || m.reservation.is_some() || m.swappiness.is_some() || m.disable_oom_killer.is_some() {
                let d = self.need("memory")?;
                // OCI's swap is memory+swap, which is exactly memsw. Without swap accounting
                // the file is absent: runc ignores that too. The kernel keeps memory <= memsw at
                // every step, so when a limit goes up (`update`), memsw has to go first.
                let memsw = m.swap.filter(|_| d.join("memory.memsw.limit_in_bytes").exists() || !d.starts_with("/sys/fs/cgroup"));
                let current = read(&d, "memory.memsw.limit_in_bytes").ok().and_then(|v| v.trim().parse::<i64>().ok());
                let swap_first = matches!((memsw, current), (Some(s), Some(c)) if s < 0 || s > c);
                if let (true, Some(s)) = (swap_first, memsw) {
                    write(&d, "memory.memsw.limit_in_bytes", &limit(s))?;
                }
                if let Some(l) = m.limit {
                    write(&d, "memory.limit_in_bytes", &limit(l))?;
                }
                if let (false, Some(s)) = (swap_first, memsw) {
                    write(&d, "memory.memsw.limit_in_bytes", &limit(s))?;
                }
                if let Some(v) = m.reservation {
                    write(&d, "memory.soft_limit_in_bytes", &limit(v))?;
                }
                if let Some(v) = m.swappiness {
                    if v <= 100 {
                        write(&d, "memory.swappiness", &v.to_string())?;
                    }
                }
                if m.disable_oom_killer == Some(true) {
                    write(&d, "memory.oom_control", "1")?;
                }
            }
        }
        if let Some(c) = &r.cpu {
            if c.shares.is_some() || c.quota.is_some() || c.period.is_some() || c.realtime_period.is_some() || c.realtime_runtime.is_some() {
                let d = self.need("cpu")?;
                if let Some(s) = c.shares.filter(|s| *s != 0) {
                    write(&d, "cpu.shares", &s.to_string())?;
                }
                if let Some(p) = c.period.filter(|p| *p != 0) {
                    write(&d, "cpu.cfs_period_us", &p.to_string())?;
                }
                if let Some(q) = c.quota.filter(|q| *q != 0) {
                    write(&d, "cpu.cfs_quota_us", &q.to_string())?;
                }
                // realtime budget, period first (as runc); the parent must have the budget
                if let Some(p) = c.realtime_period.filter(|p| *p != 0) {
                    write(&d, "cpu.rt_period_us", &p.to_string())?;
                }
                if let Some(r) = c.realtime_runtime.filter(|r| *r != 0) {
                    write(&d, "cpu.rt_runtime_us", &r.to_string())?;
                }
            }
            if c.cpus.as_deref().is_some_and(|s| !s.is_empty()) || c.mems.as_deref().is_some_and(|s| !s.is_empty()) {
                let d = self.need("cpuset")?;
                if let Some(s) = c.cpus.as_deref().filter(|s| !s.is_empty()) {
                    write(&d, "cpuset.cpus", s)?;
                }
                if let Some(s) = c.mems.as_deref().filter(|s| !s.is_empty()) {
                    write(&d, "cpuset.mems", s)?;
                }
            }
        }
        if let Some(p) = &r.pids {
            let d = self.need("pids")?;
            write(&d, "pids.max", &if p.limit > 0 { p.limit.to_string() } else { "max".into() })?;
        }
        if let Some(b) = &r.block_io {
            let throttles = [
                ("blkio.throttle.read_bps_device", &b.throttle_read_bps_device),
                ("blkio.throttle.write_bps_device", &b.throttle_write_bps_device),
                ("blkio.throttle.read_iops_device", &b.throttle_read_iops_device),
                ("blkio.throttle.write_iops_device", &b.throttle_write_iops_device),
            ];
            if b.weight.is_some() || b.leaf_weight.is_some() || !b.weight_device.is_empty() || throttles.iter().any(|(_, l)| !l.is_empty()) {
                let d = self.need("blkio")?;
                // Weights need a proportional-weight I/O scheduler (CFQ/BFQ): without one the
                // files are absent, and runc skips them too.
                let has = |f: &str| d.join(f).exists() || !d.starts_with("/sys/fs/cgroup");
                if let Some(w) = b.weight.filter(|w| *w != 0) {
                    if has("blkio.weight") {
                        write(&d, "blkio.weight", &w.to_string())?;
                    }
                }
                if let Some(w) = b.leaf_weight.filter(|w| *w != 0) {
                    if has("blkio.leaf_weight") {
                        write(&d, "blkio.leaf_weight", &w.to_string())?;
                    }
                }
                for wd in &b.weight_device {
                    if let Some(w) = wd.weight.filter(|_| has("blkio.weight_device")) {
                        write(&d, "blkio.weight_device", &format!("{}:{} {w}", wd.major, wd.minor))?;
                    }
                    if let Some(w) = wd.leaf_weight.filter(|_| has("blkio.leaf_weight_device")) {
                        write(&d, "blkio.leaf_weight_device", &format!("{}:{} {w}", wd.major, wd.minor))?;
                    }
                }
                for (file, list) in throttles {
                    for t in list {
                        write(&d, file, &format!("{}:{} {}", t.major, t.minor, t.rate))?;
                    }
                }
            }
        }
        if !r.devices.is_empty() {
            if let Some(d) = self.dir_of("devices") {
                for rule in &r.devices {
                    let typ = rule.typ.as_deref().unwrap_or("a");
                    let num = |n: Option<i64>| n.filter(|n| *n >= 0).map_or("*".to_string(), |n| n.to_string());
                    let access = rule.access.as_deref().unwrap_or("rwm");
                    let line = if typ == "a" && rule.major.is_none() && rule.minor.is_none() { format!("a *:* {access}") } else { format!("{typ} {}:{} {access}", num(rule.major), num(rule.minor)) };
                    write(&d, if rule.allow { "devices.allow" } else { "devices.deny" }, &line)?;
                }
            }
        }
        Ok(())
    }

    fn add(&self, pid: i32) -> Result<()> {
        for d in self.dirs() {
            write(&d, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Writes "0" (the writer itself) to each hierarchy's `tasks`. Moving a process through
    /// `cgroup.procs` takes the kernel's global threadgroup lock for writing, whose RCU grace
    /// period costs 5-15 ms at every container start here; a thread moving itself skips that
    /// lock on recent kernels (measured here: 0.1 ms), and a single-threaded process is all of
    /// its threads. An older kernel takes the lock as before.
    fn enter(&self) -> Result<()> {
        for d in self.dirs() {
            if write(&d, "tasks", "0").is_err() {
                write(&d, "cgroup.procs", &std::process::id().to_string())?;
            }
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        match self.dir_of("pids").or_else(|| self.dir_of("freezer")).or_else(|| self.dirs().next()) {
            Some(d) => read_pids(&d),
            None => Ok(Vec::new()),
        }
    }

    fn freeze(&self) -> Result<()> {
        let d = self.need("freezer")?;
        let ok = wait_until(|| {
            write(&d, "freezer.state", "FROZEN")?;
            Ok(read(&d, "freezer.state")?.trim() == "FROZEN")
        })?;
        if !ok {
            let _ = write(&d, "freezer.state", "THAWED");
            return Err(Error::msg("the freezer did not reach FROZEN").with_path(&d));
        }
        Ok(())
    }

    fn thaw(&self) -> Result<()> {
        let d = self.need("freezer")?;
        write(&d, "freezer.state", "THAWED")
    }

    fn is_frozen(&self) -> bool {
        self.dir_of("freezer").and_then(|d| read(&d, "freezer.state").ok()).is_some_and(|s| s.trim() == "FROZEN")
    }

    fn oom_kills(&self) -> u64 {
        let Some(d) = self.dir_of("memory") else { return 0 };
        let text = read(&d, "memory.oom_control").unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }

    fn destroy(&self) -> Result<()> {
        let mut first: Option<Error> = None;
        for d in self.dirs() {
            if let Err(e) = rmdir(&d) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn controller_dir(&self, controller: &str) -> Option<PathBuf> {
        self.dir_of(controller)
    }

    fn mount_info(&self, cgroupns: bool) -> CgroupMount {
        let hierarchies = self
            .hierarchies
            .iter()
            .map(|(m, c)| (m.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), c.join(","), self.dir_in(m)))
            .collect();
        CgroupMount { v2: false, cgroupns, hierarchies }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::TempDir;
    use super::*;

    fn fake(t: &TempDir) -> V1 {
        let mut h = BTreeMap::new();
        for c in ["memory", "cpu", "cpuset", "pids", "freezer", "devices"] {
            std::fs::create_dir_all(t.0.join(c)).unwrap();
            h.insert(t.0.join(c), vec![c.to_string()]);
        }
        std::fs::write(t.0.join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(t.0.join("cpuset/cpuset.mems"), "0\n").unwrap();
        V1::new(h, "/dy/c1".into())
    }

    #[test]
    fn a_relative_path_is_below_our_own_cgroup_in_each_hierarchy() {
        let t = TempDir::new("v1rel");
        let mut h = BTreeMap::new();
        for c in ["memory", "cpu,cpuacct", "cpuset", "systemd"] {
            h.insert(t.0.join(c), c.split(',').map(|x| if x == "systemd" { "name=systemd".into() } else { x.to_string() }).collect());
        }
        let own = "9:name=systemd:/system.slice/dockerd.service\n4:memory:/system.slice/dockerd.service\n\
                   3:cpuset:/\n2:cpu,cpuacct:/cpus\n0::/system.slice/dockerd.service\n";
        let cg = V1::resolved(h.clone(), "parent/c1", own);
        assert_eq!(cg.path(), "parent/c1");
        assert_eq!(cg.dir_of("memory").unwrap(), t.0.join("memory/system.slice/dockerd.service/parent/c1"));
        assert_eq!(cg.dir_of("cpuset").unwrap(), t.0.join("cpuset/parent/c1"));
        assert_eq!(cg.dir_of("cpuacct").unwrap(), t.0.join("cpu,cpuacct/cpus/parent/c1"));
        assert_eq!(cg.dir_in(&t.0.join("systemd")), t.0.join("systemd/system.slice/dockerd.service/parent/c1"));
        let abs = V1::resolved(h, "/dy/c1", own);
        assert_eq!(abs.dir_of("cpuset").unwrap(), t.0.join("cpuset/dy/c1"));
        assert_eq!(abs.dir_of("memory").unwrap(), t.0.join("memory/dy/c1"));
    }

    #[test]
    fn usual_places_agree_with_mountinfo_on_a_v1_host() {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let Some(h) = conventional_hierarchies(&own, Path::new("/sys/fs/cgroup")) else {
            eprintln!("skipped: no cgroup v1 hierarchies at their usual places on this host");
            return;
        };
        let mounted = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
        for (dir, ctls) in &h {
            // (a path with a symlink, cpu -> cpu,cpuacct, is a place mountinfo does not name)
            let real = std::fs::canonicalize(dir).unwrap();
            assert_eq!(mounted.get(&real), Some(ctls), "{dir:?}");
        }
        assert_eq!(h.values().flatten().count(), mounted.values().flatten().count());
    }

    #[test]
    fn an_unmounted_hierarchy_falls_back_to_mountinfo() {
        let t = TempDir::new("v1conv");
        std::fs::create_dir(t.0.join("memory")).unwrap();
        assert_eq!(conventional_hierarchies("4:memory:/\n0::/\n", &t.0), None);
        assert_eq!(conventional_hierarchies("0::/\n", &t.0), None);
    }

    #[test]
    fn mountinfo_lists_v1_hierarchies_only() {
        let info = "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                    31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n\
                    32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                    33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let h = parse_mountinfo(info);
        assert_eq!(h.len(), 3);
        assert_eq!(h[Path::new("/sys/fs/cgroup/memory")], vec!["memory"]);
        assert_eq!(h[Path::new("/sys/fs/cgroup/systemd")], vec!["name=systemd"]);
        assert_eq!(h[Path::new("/sys/fs/cgroup/cpu,cpuacct")], vec!["cpu", "cpuacct"]);
    }

    #[test]
    fn blkio_throttles_and_realtime_on_a_fake_tree() {
        let t = TempDir::new("v1blk");
        let mut h = BTreeMap::new();
        for c in ["blkio", "cpu"] {
            std::fs::create_dir_all(t.0.join(c)).unwrap();
            h.insert(t.0.join(c), vec![c.to_string()]);
        }
        let cg = V1::new(h, "/dy/c2".into());
        cg.create().unwrap();
        let r: Resources = serde_json::from_str(
            r#"{"blockIO":{"leafWeight":300,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}],
                "throttleWriteIOPSDevice":[{"major":8,"minor":16,"rate":300}]},
                "cpu":{"realtimePeriod":1000000,"realtimeRuntime":950000}}"#,
        )
        .unwrap();
        cg.set(&r).unwrap();
        let rd = |p: &str| std::fs::read_to_string(t.0.join(p)).unwrap();
        assert_eq!(rd("blkio/dy/c2/blkio.throttle.read_bps_device"), "8:0 1048576");
        assert_eq!(rd("blkio/dy/c2/blkio.throttle.write_iops_device"), "8:16 300");
        assert_eq!(rd("blkio/dy/c2/blkio.leaf_weight"), "300");
        assert!(!t.0.join("blkio/dy/c2/blkio.throttle.read_iops_device").exists());
        assert_eq!(rd("cpu/dy/c2/cpu.rt_period_us"), "1000000");
        assert_eq!(rd("cpu/dy/c2/cpu.rt_runtime_us"), "950000");
    }

    #[test]
    fn create_set_and_destroy_on_a_fake_tree() {
        let t = TempDir::new("v1");
        let cg = fake(&t);
        cg.create().unwrap();
        assert_eq!(std::fs::read_to_string(t.0.join("cpuset/dy/c1/cpuset.cpus")).unwrap(), "0-1");
        assert_eq!(std::fs::read_to_string(t.0.join("cpuset/dy/cpuset.mems")).unwrap(), "0");
        // the level made above the container's lets the kernel copy cpus and mems into children
        assert_eq!(std::fs::read_to_string(t.0.join("cpuset/dy/cgroup.clone_children")).unwrap(), "1");
        assert!(!t.0.join("cpuset/dy/c1/cgroup.clone_children").exists());
        let r: Resources = serde_json::from_str(
            r#"{"memory":{"limit":67108864,"reservation":33554432,"swap":134217728},"cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"1"},"pids":{"limit":20},
                "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
        )
        .unwrap();
        cg.set(&r).unwrap();
        let rd = |p: &str| std::fs::read_to_string(t.0.join(p)).unwrap();
        assert_eq!(rd("memory/dy/c1/memory.limit_in_bytes"), "67108864");
        assert_eq!(rd("memory/dy/c1/memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(rd("memory/dy/c1/memory.memsw.limit_in_bytes"), "134217728");
        assert_eq!(rd("cpu/dy/c1/cpu.shares"), "512");
        assert_eq!(rd("cpu/dy/c1/cpu.cfs_quota_us"), "50000");
        assert_eq!(rd("cpu/dy/c1/cpu.cfs_period_us"), "100000");
        assert_eq!(rd("cpuset/dy/c1/cpuset.cpus"), "1");
        assert_eq!(rd("pids/dy/c1/pids.max"), "20");
        assert_eq!(rd("devices/dy/c1/devices.deny"), "a *:* rwm");
        assert_eq!(rd("devices/dy/c1/devices.allow"), "c 1:3 rwm");
        cg.add(42).unwrap();
        assert_eq!(cg.pids().unwrap(), vec![42]);
        std::fs::write(t.0.join("memory/dy/c1/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(cg.oom_kills(), 3);
        cg.freeze().unwrap();
        assert!(cg.is_frozen());
        cg.thaw().unwrap();
        assert!(!cg.is_frozen());
        let mi = cg.mount_info(false);
        assert_eq!(mi.hierarchies.len(), 6);
        assert!(mi.hierarchies.iter().any(|(n, o, p)| n == "memory" && o == "memory" && p == &t.0.join("memory/dy/c1")));
        cg.destroy().unwrap();
        assert!(!t.0.join("memory/dy/c1").exists() && t.0.join("memory/dy").exists());
    }

    #[test]
    fn missing_controller_is_named() {
        let t = TempDir::new("v1m");
        let mut h = BTreeMap::new();
        std::fs::create_dir_all(t.0.join("memory")).unwrap();
        h.insert(t.0.join("memory"), vec!["memory".to_string()]);
        let cg = V1::new(h, "/x".into());
        cg.create().unwrap();
        let r: Resources = serde_json::from_str(r#"{"pids":{"limit":5}}"#).unwrap();
        assert!(cg.set(&r).unwrap_err().to_string().contains("\"pids\" is not mounted"));
        cg.destroy().unwrap();
    }

    /// The real hierarchy of this host, when we are root on cgroup v1.
    #[test]
    fn real_v1_when_root() {
        if unsafe { libc::geteuid() } != 0 || super::super::host_is_v2(Path::new("/sys/fs/cgroup")) {
            eprintln!("skipped: needs root on a cgroup v1 host");
            return;
        }
        let cg = V1::from_host(&format!("/dockyard-unit/{}", std::process::id())).unwrap();
        cg.create().unwrap();
        let r: Resources = serde_json::from_str(r#"{"memory":{"limit":33554432},"pids":{"limit":7}}"#).unwrap();
        let res = cg.set(&r);
        let limit = cg.dir_of("memory").map(|d| read(&d, "memory.limit_in_bytes").unwrap_or_default());
        let pids = cg.dir_of("pids").map(|d| read(&d, "pids.max").unwrap_or_default());
        cg.destroy().unwrap();
        for m in cg.hierarchies.keys() {
            let _ = std::fs::remove_dir(m.join("dockyard-unit"));
        }
        res.unwrap();
        assert_eq!(limit.unwrap().trim(), "33554432");
        assert_eq!(pids.unwrap().trim(), "7");
    }
}
