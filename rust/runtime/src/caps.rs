//! Capabilities: names to numbers, and applying the five OCI sets with prctl/capset.

use crate::error::{Error, Result};
use crate::spec::Capabilities;

pub const NAMES: &[&str] = &[
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
];

pub fn by_name(name: &str) -> Option<u32> {
    let up = name.to_ascii_uppercase();
    let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
    NAMES.iter().position(|n| *n == full).map(|i| i as u32)
}

/// A set as a bit mask. Unknown names are an error; names the running kernel does not know
/// (above cap_last_cap) are dropped silently, as runc does.
pub fn mask(names: &[String], last_cap: u32) -> Result<u64> {
    let mut m = 0u64;
    for n in names {
        let c = by_name(n).ok_or_else(|| Error::msg(format!("unknown capability {n:?}")))?;
        if c <= last_cap {
            m |= 1 << c;
        }
    }
    Ok(m)
}

pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The computed sets, ready to apply.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl Sets {
    pub fn from_spec(c: &Capabilities) -> Result<Sets> {
        let last = last_cap();
        Ok(Sets {
            bounding: mask(&c.bounding, last)?,
            effective: mask(&c.effective, last)?,
            permitted: mask(&c.permitted, last)?,
            inheritable: mask(&c.inheritable, last)?,
            ambient: mask(&c.ambient, last)?,
        })
    }
}

/// Drop from the bounding set everything not in `bounding` (needs CAP_SETPCAP, so do it
/// before changing user).
pub fn drop_bounding(bounding: u64) -> Result<()> {
    let last = last_cap();
    for c in 0..=last {
        if bounding & (1 << c) == 0 && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) } < 0 {
            let e = crate::error::errno();
            if e != libc::EINVAL {
                return Err(Error::sys(format!("drop {} from the bounding set", NAMES[c as usize]), None, e));
            }
        }
    }
    Ok(())
}

/// Set effective, permitted and inheritable with capset, then raise the ambient ones.
pub fn apply(s: &Sets) -> Result<()> {
    let mut hdr = Header { version: 0x2008_0522, pid: 0 };
    let data = [
        Data { effective: s.effective as u32, permitted: s.permitted as u32, inheritable: s.inheritable as u32 },
        Data { effective: (s.effective >> 32) as u32, permitted: (s.permitted >> 32) as u32, inheritable: (s.inheritable >> 32) as u32 },
    ];
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) } < 0 {
        return Err(Error::last(format!("capset effective={:#x} permitted={:#x} inheritable={:#x}", s.effective, s.permitted, s.inheritable), None));
    }
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) };
    for c in 0..64u32 {
        if s.ambient & (1 << c) != 0 && unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong, c as libc::c_ulong, 0, 0) } < 0 {
            return Err(Error::last(format!("raise ambient {}", NAMES.get(c as usize).unwrap_or(&"?")), None));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_set_is_a80425fb() {
        let docker: Vec<String> = [
            "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
            "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(mask(&docker, 40).unwrap(), 0xa80425fb);
        assert_eq!(by_name("sys_admin"), Some(21));
        assert!(mask(&["CAP_NOPE".into()], 40).is_err());
        assert_eq!(mask(&["CAP_CHECKPOINT_RESTORE".into()], 39).unwrap(), 0);
    }
}
