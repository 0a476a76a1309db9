//! cgroup v2: one unified tree (`/sys/fs/cgroup/<path>`).

use std::path::PathBuf;

use super::{read, read_pids, rmdir, shares_to_weight, wait_until, write, CgroupManager};
use crate::error::{Error, Result};
use crate::mounts::CgroupMount;
use crate::spec::Resources;

pub struct V2 {
    root: PathBuf,
    path: String,
}

/// Our own cgroup path in the unified hierarchy ("0::/...").
pub fn own_cgroup() -> Result<String> {
    let s = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| Error::io("read", Some(std::path::Path::new("/proc/self/cgroup")), e))?;
    Ok(s.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/").to_string())
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

const WANTED: &[&str] = &["cpu", "cpuset", "io", "memory", "pids"];

impl V2 {
    pub fn new(root: PathBuf, path: String) -> V2 {
        V2 { root, path }
    }

    fn dir(&self) -> PathBuf {
        self.root.join(self.path.trim_start_matches('/'))
    }
}

impl CgroupManager for V2 {
    fn version(&self) -> u8 {
        2
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn create(&self) -> Result<()> {
        // Enable the controllers we use in every ancestor's subtree_control, top down.
        let mut cur = self.root.clone();
        let comps: Vec<_> = std::path::Path::new(self.path.trim_start_matches('/')).components().collect();
        for (i, comp) in comps.iter().enumerate() {
            let avail = read(&cur, "cgroup.controllers").unwrap_or_default();
            let enable: Vec<String> = avail.split_whitespace().filter(|c| WANTED.contains(c)).map(|c| format!("+{c}")).collect();
            if !enable.is_empty() {
                let have = read(&cur, "cgroup.subtree_control").unwrap_or_default();
                let missing: Vec<&String> = enable.iter().filter(|c| !have.split_whitespace().any(|h| h == &c[1..])).collect();
                if !missing.is_empty() {
                    let line = missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
                    write(&cur, "cgroup.subtree_control", &line)?;
                }
            }
            cur.push(comp);
            if !cur.exists() {
                std::fs::create_dir(&cur).map_err(|e| Error::io("create cgroup", Some(&cur), e))?;
            }
            // In a fake tree there is no kernel to fill cgroup.controllers of the child.
            if i + 1 < comps.len() && !self.root.starts_with("/sys/fs/cgroup") && !cur.join("cgroup.controllers").exists() {
                write(&cur, "cgroup.controllers", avail.trim())?;
            }
        }
        Ok(())
    }

    fn set(&self, r: &Resources) -> Result<()> {
        let d = self.dir();
        if let Some(m) = &r.memory {
            if let Some(l) = m.limit {
                write(&d, "memory.max", &max_or(l))?;
            }
            if let Some(s) = m.swap {
                // OCI gives memory+swap; v2 wants the swap part alone.
                let v = match (s, m.limit) {
                    (s, _) if s < 0 => "max".to_string(),
                    (s, Some(l)) if l >= 0 => (s - l).max(0).to_string(),
                    (s, _) => s.to_string(),
                };
                write(&d, "memory.swap.max", &v)?;
            }
            if let Some(v) = m.reservation {
                write(&d, "memory.low", &max_or(v))?;
            }
            if m.disable_oom_killer == Some(true) {
                return Err(Error::msg("disableOOMKiller is not supported on cgroup v2"));
            }
        }
        if let Some(c) = &r.cpu {
            if let Some(s) = c.shares.filter(|s| *s != 0) {
                write(&d, "cpu.weight", &shares_to_weight(s).to_string())?;
            }
            if c.quota.is_some() || c.period.is_some() {
                let period = c.period.filter(|p| *p != 0).unwrap_or(100_000);
                let quota = match c.quota {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".into(),
                };
                write(&d, "cpu.max", &format!("{quota} {period}"))?;
            }
            if let Some(s) = c.cpus.as_deref().filter(|s| !s.is_empty()) {
                write(&d, "cpuset.cpus", s)?;
            }
            if let Some(s) = c.mems.as_deref().filter(|s| !s.is_empty()) {
                write(&d, "cpuset.mems", s)?;
            }
        }
        if let Some(p) = &r.pids {
            write(&d, "pids.max", &if p.limit > 0 { p.limit.to_string() } else { "max".into() })?;
        }
        if let Some(w) = r.block_io.as_ref().and_then(|b| b.weight) {
            // blkio.weight 10..1000 → io.weight 1..10000.
            let v = 1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990;
            write(&d, "io.weight", &format!("default {v}"))?;
        }
        if let Some(b) = &r.block_io {
            // blkio's throttles → io.max, one write per device and limit (the kernel keeps the
            // device's other limits), as runc does
            for (key, list) in [("rbps", &b.throttle_read_bps_device), ("wbps", &b.throttle_write_bps_device),
                                ("riops", &b.throttle_read_iops_device), ("wiops", &b.throttle_write_iops_device)] {
                for t in list {
                    let rate = if t.rate == 0 { "max".to_string() } else { t.rate.to_string() };
                    write(&d, "io.max", &format!("{}:{} {key}={rate}", t.major, t.minor))?;
                }
            }
        }
        // Device rules need an eBPF program on v2; not implemented (documented in the README).
        Ok(())
    }

    fn add(&self, pid: i32) -> Result<()> {
        write(&self.dir(), "cgroup.procs", &pid.to_string())
    }

    fn pids(&self) -> Result<Vec<i32>> {
        read_pids(&self.dir())
    }

    fn freeze(&self) -> Result<()> {
        let d = self.dir();
        write(&d, "cgroup.freeze", "1")?;
        let ok = wait_until(|| Ok(read(&d, "cgroup.events")?.lines().any(|l| l.trim() == "frozen 1")))?;
        if !ok {
            let _ = write(&d, "cgroup.freeze", "0");
            return Err(Error::msg("the cgroup did not report frozen").with_path(&d));
        }
        Ok(())
    }

    fn thaw(&self) -> Result<()> {
        write(&self.dir(), "cgroup.freeze", "0")
    }

    fn is_frozen(&self) -> bool {
        read(&self.dir(), "cgroup.freeze").is_ok_and(|s| s.trim() == "1")
    }

    fn oom_kills(&self) -> u64 {
        let text = read(&self.dir(), "memory.events").unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }

    fn destroy(&self) -> Result<()> {
        rmdir(&self.dir())
    }

    fn controller_dir(&self, _controller: &str) -> Option<PathBuf> {
        Some(self.dir())
    }

    fn mount_info(&self, cgroupns: bool) -> CgroupMount {
        CgroupMount { v2: true, cgroupns, hierarchies: vec![(String::new(), String::new(), self.dir())] }
    }

    fn kill_all(&self, sig: i32) -> Result<()> {
        let d = self.dir();
        if sig == libc::SIGKILL && d.join("cgroup.kill").exists() {
            return write(&d, "cgroup.kill", "1");
        }
        for pid in self.pids()? {
            unsafe { libc::kill(pid, sig) };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::TempDir;
    use super::*;

    #[test]
    fn fake_v2_tree() {
        let t = TempDir::new("v2");
        std::fs::write(t.0.join("cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n").unwrap();
        assert!(super::super::host_is_v2(&t.0));
        let cg = V2::new(t.0.clone(), "/dy/c1".into());
        cg.create().unwrap();
        let rd = |p: &str| std::fs::read_to_string(t.0.join(p)).unwrap();
        assert_eq!(rd("cgroup.subtree_control"), "+cpuset +cpu +io +memory +pids");
        assert_eq!(rd("dy/cgroup.subtree_control"), "+cpuset +cpu +io +memory +pids");
        assert!(t.0.join("dy/c1").is_dir());
        let r: Resources = serde_json::from_str(
            r#"{"memory":{"limit":67108864,"swap":100663296,"reservation":1048576},"cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0","mems":"0"},"pids":{"limit":-1},"blockIO":{"weight":500,"throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":300}]}}"#,
        )
        .unwrap();
        cg.set(&r).unwrap();
        assert_eq!(rd("dy/c1/memory.max"), "67108864");
        assert_eq!(rd("dy/c1/memory.swap.max"), "33554432");
        assert_eq!(rd("dy/c1/memory.low"), "1048576");
        assert_eq!(rd("dy/c1/cpu.weight"), "39");
        assert_eq!(rd("dy/c1/cpu.max"), "50000 100000");
        assert_eq!(rd("dy/c1/cpuset.cpus"), "0");
        assert_eq!(rd("dy/c1/pids.max"), "max");
        assert_eq!(rd("dy/c1/io.weight"), "default 4950");
        assert_eq!(rd("dy/c1/io.max"), "8:0 wiops=300"); // (the fake file keeps the last write)
        let r: Resources = serde_json::from_str(r#"{"memory":{"limit":-1,"swap":-1},"cpu":{"quota":-1},"pids":{"limit":10}}"#).unwrap();
        cg.set(&r).unwrap();
        assert_eq!(rd("dy/c1/memory.max"), "max");
        assert_eq!(rd("dy/c1/memory.swap.max"), "max");
        assert_eq!(rd("dy/c1/cpu.max"), "max 100000");
        assert_eq!(rd("dy/c1/pids.max"), "10");

        cg.add(7).unwrap();
        assert_eq!(cg.pids().unwrap(), vec![7]);
        std::fs::write(t.0.join("dy/c1/memory.events"), "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(cg.oom_kills(), 1);
        std::fs::write(t.0.join("dy/c1/cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        cg.freeze().unwrap();
        assert!(cg.is_frozen());
        cg.thaw().unwrap();
        assert!(!cg.is_frozen());
        let mi = cg.mount_info(true);
        assert!(mi.v2 && mi.cgroupns && mi.hierarchies[0].2 == t.0.join("dy/c1"));
        cg.destroy().unwrap();
        assert!(!t.0.join("dy/c1").exists());
    }

    #[test]
    fn shares_convert_like_the_kernel_docs() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(shares_to_weight(1024), 39);
    }
}
