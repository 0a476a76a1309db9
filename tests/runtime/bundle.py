"""Docker-like OCI bundles for the runtime tests and benchmarks (no pytest imports here)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
EXTRA_APPLETS = ("head", "tr", "dd", "seq", "cut", "mount", "sed", "awk", "kill", "pwd", "uname", "readlink",
                 "nproc", "ulimit", "tail", "xargs", "find", "basename", "yes", "md5sum")

DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
               "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

MASKED = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def busybox_rootfs(root: Path) -> Path:
    """The same tree as tests/conftest.py's make_busybox_rootfs, without importing pytest
    (for the benchmark)."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "true", "sleep", "cat", "echo", "id"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "tmp").mkdir(mode=0o1777)
    (root / "root").mkdir(mode=0o700)
    return root


def add_applets(rootfs: Path) -> None:
    for a in EXTRA_APPLETS:
        link = rootfs / "bin" / a
        if not link.exists() and not link.is_symlink():
            link.symlink_to("busybox")


def seccomp_profile() -> dict:
    """A Docker-default-like profile: errno by default, a broad allow list, clone flags guarded."""
    allow = """accept accept4 access alarm bind brk capget capset chdir chmod chown clock_getres clock_gettime
    clock_nanosleep close connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl
    epoll_pwait epoll_wait eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
    fallocate fchdir fchmod fchmodat fchown fchownat fcntl fdatasync fgetxattr flock fork fstat fstatfs fsync
    ftruncate futex getcwd getdents getdents64 getegid geteuid getgid getgroups getitimer getpeername getpgid
    getpgrp getpid getppid getpriority getrandom getresgid getresuid getrlimit getrusage getsid getsockname
    getsockopt gettid gettimeofday getuid getxattr ioctl kill lchown lgetxattr link linkat listen lseek lstat
    madvise memfd_create mkdir mkdirat mknod mknodat mmap mprotect mremap munmap nanosleep newfstatat open
    openat openat2 pause pipe pipe2 poll ppoll prctl pread64 preadv prlimit64 pselect6 pwrite64 pwritev read
    readahead readlink readlinkat readv recvfrom recvmmsg recvmsg rename renameat renameat2 restart_syscall rmdir
    rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
    sched_getaffinity sched_yield select sendfile sendmmsg sendmsg sendto set_robust_list set_tid_address
    setfsgid setfsuid setgid setgroups setitimer setpgid setpriority setregid setresgid setresuid setreuid
    setrlimit setsid setsockopt setuid shutdown sigaltstack socket socketpair stat statfs statx symlink
    symlinkat sync sysinfo tgkill time timer_create timer_delete timer_settime times tkill truncate umask uname
    unlink unlinkat utime utimensat utimes vfork wait4 waitid write writev arch_prctl get_robust_list
    close_range""".split()
    return {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": allow, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    }


def docker_config(args: list[str], *, cgroups_path: str | None = None, hostname: str = "dycontainer",
                  terminal: bool = False, user: tuple[int, int, list[int]] = (0, 0, []), env: list[str] | None = None,
                  cwd: str = "/", resources: dict | None = None, rlimits: list[dict] | None = None,
                  seccomp: bool = False, no_new_privs: bool = False, readonly: bool = False,
                  mounts_extra: list[dict] | None = None, sysctl: dict | None = None,
                  annotations: dict | None = None) -> dict:
    """What Docker writes for `docker run busybox ARGS` (network namespace and all)."""
    uid, gid, groups = user
    cfg = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": uid, "gid": gid, "additionalGids": groups},
            "args": args,
            "env": env if env is not None else ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                               f"HOSTNAME={hostname}"],
            "cwd": cwd,
            "capabilities": {k: list(DOCKER_CAPS) for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": no_new_privs,
            "oomScoreAdj": 0,
        },
        "root": {"path": "rootfs", "readonly": readonly},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
        ] + (mounts_extra or []),
        "linux": {
            "resources": {
                "devices": [
                    {"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
                ],
                **(resources or {}),
            },
            "namespaces": [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")],
            "maskedPaths": list(MASKED),
            "readonlyPaths": list(READONLY),
        },
    }
    if cgroups_path:
        cfg["linux"]["cgroupsPath"] = cgroups_path
    if rlimits is not None:
        cfg["process"]["rlimits"] = rlimits
    if seccomp:
        cfg["linux"]["seccomp"] = seccomp_profile()
    if sysctl:
        cfg["linux"]["sysctl"] = sysctl
    if annotations:
        cfg["annotations"] = dict(annotations)
    return cfg


def write_bundle(bundle: Path, rootfs_src: Path, config: dict) -> Path:
    """A bundle dir with its own copy of the rootfs (cheap: busybox + links)."""
    bundle.mkdir(parents=True, exist_ok=True)
    rootfs = bundle / "rootfs"
    if not rootfs.exists():
        shutil.copytree(rootfs_src, rootfs, symlinks=True)
        add_applets(rootfs)
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    return bundle


def find_binary(repo: Path) -> Path | None:
    for kind in ("release", "debug"):
        p = repo / "target" / kind / "dockyard-runtime"
        if p.exists() and os.access(p, os.X_OK):
            return p
    return None
