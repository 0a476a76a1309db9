//! Rootfs setup: propagation, the bind of the rootfs onto itself, `mounts[]` in order, a minimal
//! /dev, `pivot_root`, then Docker's read-only and masked paths. Everything goes through the
//! [`Syscall`] seam, so the sequence is unit-tested with the recording double below.
//!
//! By default the runtime mounts nothing *for* the rootfs: the engine mounts the container's
//! overlay at `bundle/rootfs` (or whatever `root.path` names) before `create`, and we only bind
//! it onto itself so that it is a mount point `pivot_root` accepts. With the annotation
//! `dockyard.rootfs.overlay` we mount the overlay ourselves, in the container's mount
//! namespace, instead of that bind ([`crate::overlay`]).

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::spec::{Device, Mount, Spec};
use crate::sys::{Kind, Syscall};

const MS: fn(libc::c_ulong) -> u64 = |f| f as u64;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct MountOpts {
    pub flags: u64,
    /// Propagation changes (`MS_PRIVATE|MS_REC`, ...), each applied by its own mount call.
    pub propagation: Vec<u64>,
    /// Filesystem-specific options (`mode=755`, `size=65536k`, `newinstance`, ...).
    pub data: Vec<String>,
    pub bind: bool,
}

pub fn parse_options(opts: &[String]) -> MountOpts {
    let mut o = MountOpts::default();
    for opt in opts {
        let (set, clear): (u64, u64) = match opt.as_str() {
            "ro" => (MS(libc::MS_RDONLY), 0),
            "rw" => (0, MS(libc::MS_RDONLY)),
            "nosuid" => (MS(libc::MS_NOSUID), 0),
            "suid" => (0, MS(libc::MS_NOSUID)),
            "nodev" => (MS(libc::MS_NODEV), 0),
            "dev" => (0, MS(libc::MS_NODEV)),
            "noexec" => (MS(libc::MS_NOEXEC), 0),
            "exec" => (0, MS(libc::MS_NOEXEC)),
            "sync" => (MS(libc::MS_SYNCHRONOUS), 0),
            "async" => (0, MS(libc::MS_SYNCHRONOUS)),
            "dirsync" => (MS(libc::MS_DIRSYNC), 0),
            "remount" => (MS(libc::MS_REMOUNT), 0),
            "mand" => (MS(libc::MS_MANDLOCK), 0),
            "nomand" => (0, MS(libc::MS_MANDLOCK)),
            "atime" => (0, MS(libc::MS_NOATIME)),
            "noatime" => (MS(libc::MS_NOATIME), 0),
            "diratime" => (0, MS(libc::MS_NODIRATIME)),
            "nodiratime" => (MS(libc::MS_NODIRATIME), 0),
            "relatime" => (MS(libc::MS_RELATIME), 0),
            "norelatime" => (0, MS(libc::MS_RELATIME)),
            "strictatime" => (MS(libc::MS_STRICTATIME), 0),
            "nostrictatime" => (0, MS(libc::MS_STRICTATIME)),
            "bind" => {
                o.bind = true;
                (MS(libc::MS_BIND), 0)
            }
            "rbind" => {
                o.bind = true;
                (MS(libc::MS_BIND | libc::MS_REC), 0)
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                o.propagation.push(propagation_flag(opt).unwrap());
                (0, 0)
            }
            // Options of other runtimes' features we do not implement; harmless to skip.
            "tmpcopyup" | "rro" | "rrw" | "idmap" | "ridmap" => (0, 0),
            // mount(8)'s "defaults" (rw, suid, dev, exec, auto, nouser, async): the flags' zero
            "defaults" => (0, 0),
            other => {
                o.data.push(other.to_string());
                (0, 0)
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o
}

pub fn propagation_flag(s: &str) -> Option<u64> {
    Some(match s {
        "private" => MS(libc::MS_PRIVATE),
        "rprivate" => MS(libc::MS_PRIVATE | libc::MS_REC),
        "shared" => MS(libc::MS_SHARED),
        "rshared" => MS(libc::MS_SHARED | libc::MS_REC),
        "slave" => MS(libc::MS_SLAVE),
        "rslave" => MS(libc::MS_SLAVE | libc::MS_REC),
        "unbindable" => MS(libc::MS_UNBINDABLE),
        "runbindable" => MS(libc::MS_UNBINDABLE | libc::MS_REC),
        _ => return None,
    })
}

/// Readable form of mount flags, used by the recording double and in error messages.
pub fn flags_to_string(flags: u64) -> String {
    let names: &[(libc::c_ulong, &str)] = &[
        (libc::MS_RDONLY, "ro"),
        (libc::MS_NOSUID, "nosuid"),
        (libc::MS_NODEV, "nodev"),
        (libc::MS_NOEXEC, "noexec"),
        (libc::MS_REMOUNT, "remount"),
        (libc::MS_BIND, "bind"),
        (libc::MS_REC, "rec"),
        (libc::MS_PRIVATE, "private"),
        (libc::MS_SLAVE, "slave"),
        (libc::MS_SHARED, "shared"),
        (libc::MS_UNBINDABLE, "unbindable"),
        (libc::MS_RELATIME, "relatime"),
        (libc::MS_NOATIME, "noatime"),
        (libc::MS_STRICTATIME, "strictatime"),
    ];
    let v: Vec<&str> = names.iter().filter(|(f, _)| flags & (*f as u64) != 0).map(|(_, n)| *n).collect();
    if v.is_empty() {
        "0".into()
    } else {
        v.join(",")
    }
}

/// Join `unsafe_path` under `root` resolving symlinks as if `root` were `/`, so a hostile
/// image cannot point a mount destination outside its rootfs.
pub fn secure_join(sys: &dyn Syscall, root: &Path, unsafe_path: &str) -> Result<PathBuf> {
    let mut todo: Vec<String> = Path::new(unsafe_path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            cur.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(cur.iter());
        candidate.push(&name);
        if sys.kind(&candidate) == Kind::Symlink {
            links += 1;
            if links > 255 {
                return Err(Error::sys("resolve", Some(&candidate), libc::ELOOP));
            }
            let target = sys.readlink(&candidate)?;
            if target.is_absolute() {
                cur.clear();
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(s) => todo.push(s.to_string_lossy().into_owned()),
                    Component::ParentDir => todo.push("..".into()),
                    _ => {}
                }
            }
            continue;
        }
        cur.push(name);
    }
    let mut out = root.to_path_buf();
    out.extend(cur.iter());
    Ok(out)
}

/// Where the container's cgroups are, for a `cgroup` mount inside the container.
#[derive(Debug, Clone, Default)]
pub struct CgroupMount {
    pub v2: bool,
    /// The container has its own cgroup namespace: mount cgroupfs afresh instead of binding.
    pub cgroupns: bool,
    /// v1: (directory name under the mount, mount data such as "memory" or "name=systemd",
    /// host path of the container's cgroup in that hierarchy). v2: one entry, name "".
    pub hierarchies: Vec<(String, String, PathBuf)>,
}

pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    /// Absolute host path of the rootfs (already mounted by the engine if it is an overlay).
    pub rootfs: &'a Path,
    pub cgroup: Option<CgroupMount>,
}

/// Work left for after `pivot_root`: paths (inside the container) to remount read-only.
#[derive(Debug, Default)]
pub struct Pending {
    pub ro_remounts: Vec<PathBuf>,
    pub setup_dev: bool,
}

fn mkdirs(sys: &dyn Syscall, p: &Path) -> Result<()> {
    if sys.kind(p) == Kind::Dir {
        return Ok(());
    }
    sys.mkdir_all(p, 0o755)
}

/// Before pivot: propagation of `/`, rootfs bind, every mount of the config, /dev.
pub fn prepare_rootfs(sys: &dyn Syscall, cfg: &RootfsConfig) -> Result<Pending> {
    let linux = cfg.spec.linux();
    let prop = match linux.rootfs_propagation.as_deref() {
        None | Some("") => MS(libc::MS_SLAVE | libc::MS_REC),
        Some(p) => propagation_flag(p).ok_or_else(|| Error::msg(format!("invalid rootfsPropagation {p:?}")))?,
    };
    sys.mount(None, Path::new("/"), None, prop, None)?;
    // After a recursive slave or private, no mount of ours is shared: no need to read
    // mountinfo (which the kernel writes out whole, slow with many containers on the host)
    if !(prop & MS(libc::MS_REC) != 0 && prop & MS(libc::MS_SLAVE | libc::MS_PRIVATE) != 0) {
        make_parent_private(sys, cfg.rootfs)?;
    }
    match crate::overlay::Overlay::from_spec(cfg.spec)? {
        // Our mount namespace is private to the container by now: the host never sees this.
        // An overlay is a mount point of its own, as pivot_root wants.
        Some(o) => sys.mount_overlay(cfg.rootfs, &o).map_err(|e| e.wrap("mount the rootfs overlay"))?,
        None => sys.mount(Some(&cfg.rootfs.to_string_lossy()), cfg.rootfs, Some("bind"), MS(libc::MS_BIND | libc::MS_REC), None)?,
    }

    let mut pending = Pending { setup_dev: true, ..Default::default() };
    for m in &cfg.spec.mounts {
        mount_entry(sys, cfg, m, &mut pending).map_err(|e| e.wrap(format!("mount {}", m.destination)))?;
    }
    if pending.setup_dev {
        setup_dev(sys, cfg.rootfs, &linux.devices)?;
    }
    Ok(pending)
}

/// `pivot_root` needs the parent mount of the new root not to be shared.
fn make_parent_private(sys: &dyn Syscall, rootfs: &Path) -> Result<()> {
    let info = sys.mountinfo()?;
    let mut best: Option<(PathBuf, bool)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 7 {
            continue;
        }
        let mp = PathBuf::from(unescape_mountinfo(f[4]));
        if rootfs.starts_with(&mp) && best.as_ref().is_none_or(|(b, _)| mp.as_os_str().len() >= b.as_os_str().len()) {
            let sep = f.iter().position(|x| *x == "-").unwrap_or(f.len());
            let shared = f[6..sep].iter().any(|o| o.starts_with("shared:"));
            best = Some((mp, shared));
        }
    }
    if let Some((mp, true)) = best {
        sys.mount(None, &mp, None, MS(libc::MS_PRIVATE), None)?;
    }
    Ok(())
}

pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mount_entry(sys: &dyn Syscall, cfg: &RootfsConfig, m: &Mount, pending: &mut Pending) -> Result<()> {
    let o = parse_options(&m.options);
    let typ = m.typ.as_deref().unwrap_or(if o.bind { "bind" } else { "none" });
    let dest = secure_join(sys, cfg.rootfs, &m.destination)?;
    let inside = Path::new("/").join(dest.strip_prefix(cfg.rootfs).unwrap_or(Path::new("")));
    let data = o.data.join(",");
    let data = if data.is_empty() { None } else { Some(data.as_str()) };
    let ro = o.flags & MS(libc::MS_RDONLY) != 0;

    if typ == "bind" || o.bind {
        let src = m.source.as_deref().ok_or_else(|| Error::msg("bind mount without source"))?;
        let src = if Path::new(src).is_absolute() { PathBuf::from(src) } else { cfg.bundle.join(src) };
        if inside == Path::new("/dev") {
            pending.setup_dev = false;
        }
        match sys.kind(&src) {
            Kind::Dir => mkdirs(sys, &dest)?,
            Kind::Missing => return Err(Error::sys("bind source", Some(&src), libc::ENOENT)),
            _ => sys.touch(&dest)?,
        }
        let rec = o.flags & MS(libc::MS_REC);
        sys.mount(Some(&src.to_string_lossy()), &dest, Some("bind"), MS(libc::MS_BIND) | rec, None)?;
        // A bind ignores every other flag: apply them with a remount, keeping the flags the
        // source mount already has (the kernel refuses to drop locked ones).
        let extra = o.flags & !(MS(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT));
        if extra != 0 {
            let keep = sys.mount_flags(&dest).unwrap_or(0) & !MS(libc::MS_RDONLY);
            sys.mount(None, &dest, None, MS(libc::MS_BIND | libc::MS_REMOUNT) | extra | keep, None)?;
        }
    } else if typ == "cgroup" || typ == "cgroup2" {
        mkdirs(sys, &dest)?;
        mount_cgroup(sys, cfg, &dest, o.flags, pending, &inside)?;
    } else {
        mkdirs(sys, &dest)?;
        if inside == Path::new("/dev") {
            // Devices are created in it after every mount: mount writable, remount ro at the end.
            if ro {
                pending.ro_remounts.push(inside.clone());
            }
            sys.mount(m.source.as_deref().or(Some(typ)), &dest, Some(typ), o.flags & !MS(libc::MS_RDONLY), data)?;
        } else {
            sys.mount(m.source.as_deref().or(Some(typ)), &dest, Some(typ), o.flags, data)?;
        }
    }
    for p in &o.propagation {
        sys.mount(None, &dest, None, *p, None)?;
    }
    Ok(())
}

fn mount_cgroup(sys: &dyn Syscall, cfg: &RootfsConfig, dest: &Path, flags: u64, pending: &mut Pending, inside: &Path) -> Result<()> {
    let Some(cg) = &cfg.cgroup else { return Ok(()) };
    let ro = flags & MS(libc::MS_RDONLY) != 0;
    let base = flags & MS(libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY);
    if cg.v2 {
        if cg.cgroupns {
            sys.mount(Some("cgroup2"), dest, Some("cgroup2"), base, None)?;
        } else if let Some((_, _, host)) = cg.hierarchies.first() {
            sys.mount(Some(&host.to_string_lossy()), dest, Some("bind"), MS(libc::MS_BIND | libc::MS_REC), None)?;
            sys.mount(None, dest, None, MS(libc::MS_BIND | libc::MS_REMOUNT) | base, None)?;
        }
        return Ok(());
    }
    // v1: a tmpfs holding one directory per hierarchy, read-only at the end if asked.
    sys.mount(Some("tmpfs"), dest, Some("tmpfs"), base & !MS(libc::MS_RDONLY), Some("mode=755"))?;
    for (name, opts, host) in &cg.hierarchies {
        let d = dest.join(name);
        sys.mkdir_all(&d, 0o755)?;
        if cg.cgroupns {
            sys.mount(Some("cgroup"), &d, Some("cgroup"), base, Some(opts))?;
        } else {
            sys.mount(Some(&host.to_string_lossy()), &d, Some("bind"), MS(libc::MS_BIND | libc::MS_REC), None)?;
            sys.mount(None, &d, None, MS(libc::MS_BIND | libc::MS_REMOUNT) | base, None)?;
        }
    }
    // The tmpfs itself stays writable (only the hierarchies are read-only), as runc leaves it;
    // `ro` applies to the cgroup mounts.
    let _ = (ro, pending, inside);
    Ok(())
}

const DEFAULT_DEVICES: &[(&str, u32, u32)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The minimal /dev: default character devices plus `linux.devices`, the usual links and the
/// /dev/pts directory. Devices are made with mknod; if that is refused we bind the host's.
pub fn setup_dev(sys: &dyn Syscall, rootfs: &Path, devices: &[Device]) -> Result<()> {
    let mut all: Vec<Device> = DEFAULT_DEVICES
        .iter()
        .filter(|(p, _, _)| !devices.iter().any(|d| d.path == *p))
        .map(|(p, ma, mi)| Device { typ: "c".into(), path: p.to_string(), major: *ma as i64, minor: *mi as i64, file_mode: Some(0o666), uid: Some(0), gid: Some(0) })
        .collect();
    all.extend(devices.iter().cloned());
    for d in &all {
        let dest = secure_join(sys, rootfs, &d.path)?;
        if let Some(parent) = dest.parent() {
            mkdirs(sys, parent)?;
        }
        let kind = match d.typ.as_str() {
            "c" | "u" => libc::S_IFCHR,
            "b" => libc::S_IFBLK,
            "p" => libc::S_IFIFO,
            t => return Err(Error::msg(format!("device {}: unknown type {t:?}", d.path))),
        };
        let mode = d.file_mode.unwrap_or(0o666) & 0o7777;
        let dev = libc::makedev(d.major as u32, d.minor as u32) as u64;
        sys.remove(&dest)?;
        match sys.mknod(&dest, kind | mode, dev) {
            Ok(()) => sys.chown(&dest, d.uid.unwrap_or(0), d.gid.unwrap_or(0))?,
            Err(e) if e.errno_is(libc::EPERM) => {
                sys.touch(&dest)?;
                sys.mount(Some(&d.path), &dest, Some("bind"), MS(libc::MS_BIND), None)?;
            }
            Err(e) => return Err(e),
        }
    }
    let dev = rootfs.join("dev");
    for (link, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
        sys.symlink(target, &dev.join(link))?;
    }
    let ptmx = dev.join("ptmx");
    sys.remove(&ptmx)?;
    sys.symlink("pts/ptmx", &ptmx)?;
    // /dev/pts for ptmx's link; /dev/shm only as its mount's destination (none with --ipc none,
    // where runc leaves no directory either)
    mkdirs(sys, &dev.join("pts"))?;
    Ok(())
}

/// `pivot_root` into the rootfs and detach the old root, which was stacked beneath it.
pub fn pivot(sys: &dyn Syscall, rootfs: &Path) -> Result<()> {
    sys.pivot_root(rootfs)?;
    // The old root is now mounted on "/" under the new one: keep unmount events from
    // propagating to the host, then detach it.
    sys.mount(None, Path::new("."), None, MS(libc::MS_SLAVE | libc::MS_REC), None)?;
    sys.umount2(Path::new("."), libc::MNT_DETACH)?;
    sys.chdir(Path::new("/"))
}

/// After pivot: read-only paths, masked paths, deferred read-only remounts, read-only root.
pub fn finalize(sys: &dyn Syscall, spec: &Spec, pending: &Pending) -> Result<()> {
    let linux = spec.linux();
    for p in &linux.readonly_paths {
        readonly_path(sys, Path::new(p))?;
    }
    // Every masked directory shows the same empty read-only tmpfs: the first one's, bound onto
    // the others, so a container costs the kernel one superblock for them, not one each.
    let mut empty: Option<&Path> = None;
    for p in &linux.masked_paths {
        let p = Path::new(p);
        if mask_path(sys, p, empty)? == Kind::Dir && empty.is_none() {
            empty = Some(p);
        }
    }
    for p in &pending.ro_remounts {
        let keep = sys.mount_flags(p).unwrap_or(0);
        sys.mount(None, p, None, MS(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY) | keep, None)?;
    }
    if spec.root.as_ref().is_some_and(|r| r.readonly) {
        let keep = sys.mount_flags(Path::new("/")).unwrap_or(0);
        sys.mount(None, Path::new("/"), None, MS(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY) | keep, None)?;
    }
    Ok(())
}

pub fn readonly_path(sys: &dyn Syscall, p: &Path) -> Result<()> {
    if sys.kind(p) == Kind::Missing {
        return Ok(());
    }
    sys.mount(Some(&p.to_string_lossy()), p, None, MS(libc::MS_BIND | libc::MS_REC), None)?;
    let keep = sys.mount_flags(p).unwrap_or(0);
    sys.mount(None, p, None, MS(libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY) | keep, None)
}

/// Hide `p`: a file under /dev/null, a directory under an empty read-only tmpfs. With `empty`, a
/// directory already masked so, that tmpfs is bound here instead of a new one; if a later mask
/// has hidden `empty` itself, a new tmpfs is mounted. Returns what `p` was.
pub fn mask_path(sys: &dyn Syscall, p: &Path, empty: Option<&Path>) -> Result<Kind> {
    let kind = sys.kind(p);
    match kind {
        Kind::Missing => {}
        Kind::Dir => match empty.filter(|e| sys.kind(e) == Kind::Dir) {
            Some(e) => sys.mount(Some(&e.to_string_lossy()), p, None, MS(libc::MS_BIND), None)?,
            None => sys.mount(Some("tmpfs"), p, Some("tmpfs"), MS(libc::MS_RDONLY), None)?,
        },
        _ => sys.mount(Some("/dev/null"), p, None, MS(libc::MS_BIND), None)?,
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Recorder;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let o = parse_options(&["nosuid".into(), "noexec".into(), "mode=755".into(), "size=65536k".into(), "rprivate".into(), "ro".into(), "rw".into()]);
        assert_eq!(o.flags, MS(libc::MS_NOSUID | libc::MS_NOEXEC));
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert_eq!(o.propagation, vec![MS(libc::MS_PRIVATE | libc::MS_REC)]);
        let o = parse_options(&["rbind".into(), "ro".into()]);
        assert!(o.bind);
        assert_eq!(o.flags, MS(libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY));
    }

    #[test]
    fn secure_join_stays_inside_root() {
        let sys = Recorder::new();
        sys.add_link("/r/etc/evil", "/../../host");
        sys.add_link("/r/a", "b/c");
        assert_eq!(secure_join(&sys, Path::new("/r"), "/etc/evil/x").unwrap(), PathBuf::from("/r/host/x"));
        assert_eq!(secure_join(&sys, Path::new("/r"), "../../x").unwrap(), PathBuf::from("/r/x"));
        assert_eq!(secure_join(&sys, Path::new("/r"), "/a/d").unwrap(), PathBuf::from("/r/b/c/d"));
        sys.add_link("/r/loop", "/loop");
        assert!(secure_join(&sys, Path::new("/r"), "/loop").unwrap_err().errno_is(libc::ELOOP));
    }

    #[test]
    fn docker_like_mounts_in_order() {
        let s = spec(r#"{"mounts":[
            {"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]},
            {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
            {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]},
            {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]},
            {"destination":"/data","type":"bind","source":"/host/data","options":["rbind","ro","rprivate"]}
        ]}"#);
        let sys = Recorder::new();
        sys.add("/host/data", Kind::Dir);
        let cfg = RootfsConfig { spec: &s, bundle: Path::new("/b"), rootfs: Path::new("/b/rootfs"), cgroup: None };
        let pending = prepare_rootfs(&sys, &cfg).unwrap();
        let calls = sys.calls();
        let mounts: Vec<&String> = calls.iter().filter(|c| c.starts_with("mount")).collect();
        assert_eq!(mounts[0], "mount - / - rec,slave -");
        assert_eq!(mounts[1], "mount /b/rootfs /b/rootfs bind bind,rec -");
        assert_eq!(mounts[2], "mount proc /b/rootfs/proc proc nosuid,nodev,noexec -");
        assert_eq!(mounts[3], "mount tmpfs /b/rootfs/dev tmpfs nosuid,strictatime mode=755,size=65536k");
        assert_eq!(mounts[4], "mount devpts /b/rootfs/dev/pts devpts nosuid,noexec newinstance,ptmxmode=0666,mode=0620,gid=5");
        assert_eq!(mounts[5], "mount sysfs /b/rootfs/sys sysfs ro,nosuid,nodev,noexec -");
        assert_eq!(mounts[6], "mount /host/data /b/rootfs/data bind bind,rec -");
        assert_eq!(mounts[7], "mount - /b/rootfs/data - ro,remount,bind -");
        assert_eq!(mounts[8], "mount - /b/rootfs/data - rec,private -");
        assert!(calls.contains(&"mknod /b/rootfs/dev/null 20666 1:3".to_string()), "{calls:#?}");
        assert!(calls.contains(&"symlink /b/rootfs/dev/ptmx -> pts/ptmx".to_string()));
        assert!(calls.contains(&"symlink /b/rootfs/dev/fd -> /proc/self/fd".to_string()));
        assert!(pending.setup_dev && pending.ro_remounts.is_empty());
    }

    #[test]
    fn overlay_annotation_mounts_the_rootfs_instead_of_the_bind() {
        let s = spec(r#"{"annotations":{"dockyard.rootfs.overlay":"{\"lower\":[\"/l/2\",\"/l/1\"],\"upper\":\"/c/upper\",\"work\":\"/c/work\"}"},
            "mounts":[{"destination":"/proc","type":"proc","source":"proc"}]}"#);
        let sys = Recorder::new();
        *sys.mountinfo_text.borrow_mut() = "22 1 0:21 / / rw shared:1 - ext4 /dev/vda rw\n".into();
        let cfg = RootfsConfig { spec: &s, bundle: Path::new("/b"), rootfs: Path::new("/b/rootfs"), cgroup: None };
        prepare_rootfs(&sys, &cfg).unwrap();
        let calls = sys.calls();
        // Propagation first (so the host never sees it), then the overlay, then the mounts.
        assert_eq!(calls[..3], ["mount - / - rec,slave -", "overlay /b/rootfs lower=/l/2:/l/1 upper=/c/upper work=/c/work", "mkdir /b/rootfs/proc 755"]);
        assert!(!calls.iter().any(|c| c.contains("bind,rec") && c.starts_with("mount /b/rootfs")), "{calls:#?}");
    }

    #[test]
    fn bind_of_file_touches_target_and_missing_source_fails() {
        let s = spec(r#"{"mounts":[{"destination":"/etc/hosts","type":"bind","source":"hosts","options":["rbind","rprivate"]}]}"#);
        let sys = Recorder::new();
        sys.add("/b/hosts", Kind::File);
        let cfg = RootfsConfig { spec: &s, bundle: Path::new("/b"), rootfs: Path::new("/b/rootfs"), cgroup: None };
        prepare_rootfs(&sys, &cfg).unwrap();
        assert!(sys.calls().contains(&"touch /b/rootfs/etc/hosts".to_string()));
        let sys = Recorder::new();
        let err = prepare_rootfs(&sys, &cfg).unwrap_err();
        assert!(err.errno_is(libc::ENOENT) && err.to_string().contains("mount /etc/hosts"), "{err}");
    }

    #[test]
    fn shared_parent_is_made_private() {
        let s = spec(r#"{"linux":{"rootfsPropagation":"rshared"}}"#);
        let sys = Recorder::new();
        *sys.mountinfo_text.borrow_mut() = "22 1 0:21 / / rw shared:1 - ext4 /dev/vda rw\n30 22 0:30 / /b rw shared:7 - tmpfs tmpfs rw\n".into();
        let cfg = RootfsConfig { spec: &s, bundle: Path::new("/b"), rootfs: Path::new("/b/rootfs"), cgroup: None };
        prepare_rootfs(&sys, &cfg).unwrap();
        assert_eq!(sys.calls()[..2], ["mount - / - rec,shared -", "mount - /b - private -"]);
        // after a recursive slave (the default) or private, nothing is shared: mountinfo is not read
        for prop in [r#"{}"#, r#"{"linux":{"rootfsPropagation":"rprivate"}}"#] {
            let s = spec(prop);
            let cfg = RootfsConfig { spec: &s, bundle: Path::new("/b"), rootfs: Path::new("/b/rootfs"), cgroup: None };
            let sys = Recorder::new();
            *sys.mountinfo_text.borrow_mut() = "22 1 0:21 / / rw shared:1 - ext4 /dev/vda rw\n30 22 0:30 / /b rw shared:7 - tmpfs tmpfs rw\n".into();
            prepare_rootfs(&sys, &cfg).unwrap();
            assert!(!sys.calls().iter().any(|c| c.ends_with(" private -") && !c.contains("rec")), "{prop}: {:#?}", sys.calls());
        }
    }

    #[test]
    fn cgroup_v1_binds_each_hierarchy_read_only() {
        let s = spec(r#"{"mounts":[{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}]}"#);
        let sys = Recorder::new();
        let cg = CgroupMount { v2: false, cgroupns: false, hierarchies: vec![("memory".into(), "memory".into(), PathBuf::from("/sys/fs/cgroup/memory/dy/c1"))] };
        let cfg = RootfsConfig { spec: &s, bundle: Path::new("/b"), rootfs: Path::new("/b/rootfs"), cgroup: Some(cg) };
        let pending = prepare_rootfs(&sys, &cfg).unwrap();
        let calls = sys.calls();
        assert!(calls.contains(&"mount tmpfs /b/rootfs/sys/fs/cgroup tmpfs nosuid,nodev,noexec mode=755".to_string()), "{calls:#?}");
        assert!(calls.contains(&"mount /sys/fs/cgroup/memory/dy/c1 /b/rootfs/sys/fs/cgroup/memory bind bind,rec -".to_string()));
        assert!(calls.contains(&"mount - /b/rootfs/sys/fs/cgroup/memory - ro,nosuid,nodev,noexec,remount,bind -".to_string()));
        assert!(pending.ro_remounts.is_empty());
    }

    #[test]
    fn a_masked_directory_gets_a_new_tmpfs_when_the_shared_one_is_hidden() {
        let sys = Recorder::new();
        sys.add("/proc/scsi", Kind::Dir);
        assert_eq!(mask_path(&sys, Path::new("/proc/scsi"), Some(Path::new("/hidden-by-a-later-mask"))).unwrap(), Kind::Dir);
        assert_eq!(mask_path(&sys, Path::new("/nope"), Some(Path::new("/proc/scsi"))).unwrap(), Kind::Missing);
        assert_eq!(sys.calls(), vec!["mount tmpfs /proc/scsi tmpfs ro -"]);
    }

    #[test]
    fn pivot_and_finalize_sequence() {
        let s = spec(r#"{"root":{"path":"rootfs","readonly":true},"linux":{"maskedPaths":["/proc/kcore","/proc/acpi","/nope","/sys/firmware","/proc/scsi"],"readonlyPaths":["/proc/sys"]}}"#);
        let sys = Recorder::new();
        sys.add("/proc/kcore", Kind::File);
        sys.add("/proc/acpi", Kind::Dir);
        sys.add("/sys/firmware", Kind::Dir);
        sys.add("/proc/scsi", Kind::Dir);
        sys.add("/proc/sys", Kind::Dir);
        sys.flags.borrow_mut().insert(PathBuf::from("/proc/sys"), MS(libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC));
        pivot(&sys, Path::new("/b/rootfs")).unwrap();
        finalize(&sys, &s, &Pending::default()).unwrap();
        assert_eq!(
            sys.calls(),
            vec![
                "pivot_root /b/rootfs",
                "mount - . - rec,slave -",
                "umount2 . 2",
                "chdir /",
                "mount /proc/sys /proc/sys - bind,rec -",
                "mount - /proc/sys - ro,nosuid,nodev,noexec,remount,bind -",
                "mount /dev/null /proc/kcore - bind -",
                "mount tmpfs /proc/acpi tmpfs ro -",
                "mount /proc/acpi /sys/firmware - bind -",
                "mount /proc/acpi /proc/scsi - bind -",
                "mount - / - ro,remount,bind -",
            ]
        );
    }
}
