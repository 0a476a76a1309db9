//! No cgroup at all: a rootless runtime (in a user namespace of an unprivileged user) on a host
//! whose cgroups it may not write: cgroup v1, or v2 without a delegated subtree. As runc's
//! rootless mode: the container runs without one; a limit is refused rather than dropped
//! (dockerd's rootless words), `pause` has no freezer, and `kill --all`/`ps` know the init only
//! (its pid namespace takes the other processes with it).

use std::path::PathBuf;

use super::CgroupManager;
use crate::error::{Error, Result};
use crate::mounts::CgroupMount;
use crate::spec::Resources;

/// dockerd's `docker info` warning for rootless on cgroup v1.
pub const NO_CGROUPS: &str = "running in rootless-mode without cgroups: to enable cgroups in rootless-mode, you need to boot the system in cgroup v2 mode";

pub struct NoCgroup;

impl CgroupManager for NoCgroup {
    fn version(&self) -> u8 {
        0
    }
    fn path(&self) -> &str {
        ""
    }
    fn create(&self) -> Result<()> {
        Ok(())
    }
    /// Device rules are the default policy, which a container in a user namespace cannot
    /// exceed anyway (it may not mknod); any other limit is an error.
    fn set(&self, r: &Resources) -> Result<()> {
        if r.memory.is_some() || r.cpu.is_some() || r.pids.is_some() || r.block_io.is_some() {
            return Err(Error::msg(format!("resource limits cannot be set: {NO_CGROUPS}")));
        }
        Ok(())
    }
    fn add(&self, _pid: i32) -> Result<()> {
        Ok(())
    }
    fn pids(&self) -> Result<Vec<i32>> {
        Ok(Vec::new())
    }
    fn freeze(&self) -> Result<()> {
        Err(Error::msg(format!("pause needs the freezer cgroup: {NO_CGROUPS}")))
    }
    fn thaw(&self) -> Result<()> {
        Err(Error::msg(format!("unpause needs the freezer cgroup: {NO_CGROUPS}")))
    }
    fn is_frozen(&self) -> bool {
        false
    }
    fn oom_kills(&self) -> u64 {
        0
    }
    fn destroy(&self) -> Result<()> {
        Ok(())
    }
    /// An empty tmpfs on the container's /sys/fs/cgroup.
    fn mount_info(&self, cgroupns: bool) -> CgroupMount {
        CgroupMount { v2: false, cgroupns, hierarchies: Vec::new() }
    }
    fn controller_dir(&self, _controller: &str) -> Option<PathBuf> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_limits_and_takes_the_default_device_rules() {
        let cg = NoCgroup;
        let mut r = Resources::default();
        r.devices.push(Default::default());
        cg.set(&r).unwrap();
        r.memory = Some(Default::default());
        let e = cg.set(&r).unwrap_err().to_string();
        assert!(e.contains("rootless-mode without cgroups"), "{e}");
        assert!(cg.freeze().is_err() && !cg.is_frozen() && cg.pids().unwrap().is_empty());
    }
}
