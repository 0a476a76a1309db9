"""dockyard-runtime against runc on the same Docker-like bundles (run as root)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import cgroup_dirs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mounts, cgroups)")

STATUS_RE = re.compile(r"^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):.*$", re.M)


def both(dy, runc, make_bundle, name, args, **kw):
    """Run the same config under both runtimes (separate bundles and cgroups)."""
    a = dy.run(make_bundle("dy-" + name, args, **kw), "dy-" + name)
    b = runc.run(make_bundle("rc-" + name, args, **kw), "rc-" + name)
    return a, b


def wait_for(pred, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


# -- exit codes and output ------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 3])
def test_exit_code_and_stdout(dy, runc, make_bundle, code):
    a, b = both(dy, runc, make_bundle, f"exit{code}", ["sh", "-c", f"echo hi; echo oops >&2; exit {code}"])
    assert a.returncode == b.returncode == code
    assert a.stdout == b.stdout == b"hi\n"
    assert a.stderr == b.stderr == b"oops\n"


@pytest.mark.parametrize("args, msg", [
    (["no-such-command"], b'exec: "no-such-command": executable file not found in $PATH'),
    (["/etc/passwd"], b'exec: "/etc/passwd": permission denied'),
    (["/no/such/file"], b'exec: "/no/such/file": stat /no/such/file: no such file or directory'),
])
def test_command_that_cannot_run_fails_create_as_runc(dy, runc, make_bundle, args, msg):
    """runc looks the command up before `create` returns: run fails (status 1) with its message,
    and no container is left. (The shim, which the engine uses, keeps Docker's 127/126.)"""
    name = args[0].strip("/").replace("/", "-")
    a, b = both(dy, runc, make_bundle, name, args)
    assert a.returncode == b.returncode == 1
    assert msg in a.stderr and msg in b.stderr.replace(b'\\"', b'"'), (a.stderr, b.stderr)
    assert dy("state", "dy-" + name).returncode != 0


@pytest.mark.parametrize("signal", ["KILL", "9", "SIGTERM"])
def test_killed_container_reports_128_plus_signal(dy, runc, make_bundle, signal):
    results = []
    for rt, prefix in ((dy, "dy"), (runc, "rc")):
        cid = rt.track(f"{prefix}-kill{signal}")
        script = "trap 'exit 42' TERM; while true; do sleep 0.05; done"
        proc = rt.popen("run", "--bundle", str(make_bundle(cid, ["sh", "-c", script])), cid)
        assert wait_for(lambda: rt("state", cid).returncode == 0 and json.loads(rt("state", cid).stdout)["status"] == "running")
        rt("kill", cid, signal, check=True)
        proc.wait(30)
        results.append(proc.returncode)
    want = 137 if signal in ("KILL", "9") else 42
    assert results == [want, want]


# -- identity and privileges ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"seccomp": True},
        {"seccomp": True, "no_new_privs": True, "user": (65534, 65534, [1, 2])},
        {"user": (1000, 1000, [])},
    ],
    ids=["docker-default", "seccomp", "seccomp-nnp-nobody", "uid1000"],
)
def test_status_identity_and_namespaces(dy, runc, make_bundle, kw):
    script = "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; id; hostname; echo pid $$; unshare -m true 2>&1 | cut -d: -f2-; echo umask $(umask)"
    a, b = both(dy, runc, make_bundle, "id" + str(abs(hash(str(kw))) % 1000), ["sh", "-c", script], **kw)
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    assert a.stdout == b.stdout
    out = a.stdout.decode()
    assert "pid 1\n" in out and "dycontainer\n" in out
    if not kw:
        assert "CapEff:\t00000000a80425fb" in out
        assert "NoNewPrivs:\t0" in out and "Seccomp:\t0" in out
    if kw.get("seccomp"):
        assert "Seccomp:\t2" in out


def test_a_new_network_namespace_has_its_loopback_up(dy, runc, make_bundle):
    """As runc: a container given a network namespace of its own (no path) can use 127.0.0.1."""
    script = "cat /sys/class/net/lo/flags; ls /sys/class/net"
    a, b = both(dy, runc, make_bundle, "lo", ["sh", "-c", script])
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    assert a.stdout == b.stdout == b"0x9\nlo\n"


def test_docker_seccomp_profile_blocks_and_allows(dy, runc, make_bundle):
    script = "mkdir /tmp/x && echo mkdir-ok; mount -t tmpfs none /tmp/x 2>&1; unshare -U true 2>&1; echo done"
    a, b = both(dy, runc, make_bundle, "sc", ["sh", "-c", script], seccomp=True)
    assert a.returncode == b.returncode
    assert a.stdout == b.stdout
    assert b"mkdir-ok" in a.stdout and b"done" in a.stdout


def test_env_cwd_created_and_home(dy, runc, make_bundle):
    a, b = both(dy, runc, make_bundle, "env", ["sh", "-c", "pwd; env | sort"], cwd="/work/dir", env=["PATH=/bin", "A=1"])
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout
    assert b"/work/dir\n" in a.stdout and b"HOME=/root" in a.stdout


# -- filesystem -------------------------------------------------------------------------------------


def _mounts(out: bytes) -> set[tuple[str, str, str, str]]:
    rows = set()
    for line in out.decode().splitlines():
        f = line.split()
        if len(f) < 10 or f[4] == "/":
            continue
        sep = f.index("-")
        rows.add((f[4], f[5], f[sep + 1], re.sub(r"-(dy|rc)-", "-X-", f[3])))
    return rows


def test_mounts_match_runc(dy, runc, make_bundle):
    a, b = both(dy, runc, make_bundle, "mi", ["cat", "/proc/self/mountinfo"])
    assert a.returncode == b.returncode == 0
    ma, mb = _mounts(a.stdout), _mounts(b.stdout)
    assert ma == mb
    by_point = {m[0]: m for m in ma}
    assert by_point["/proc"][2] == "proc" and "nosuid" in by_point["/proc"][1]
    assert by_point["/dev"][2] == "tmpfs"
    assert by_point["/sys"][2] == "sysfs" and by_point["/sys"][1].startswith("ro")
    assert by_point["/proc/sys"][1].startswith("ro")
    assert by_point["/sys/fs/cgroup/memory"][1].startswith("ro")


def test_dev_is_minimal_and_masked_paths_unreadable(dy, runc, make_bundle):
    script = ("ls /dev | sort; readlink /dev/ptmx; readlink /dev/fd; readlink /dev/stdin; cat /proc/keys /proc/timer_list; ls /proc/acpi; "
              "echo x > /proc/sys/kernel/domainname 2>&1 || echo ro-ok; echo x > /proc/sysrq-trigger || echo ro2-ok; "
              "echo data > /dev/null && head -c 4 /dev/zero | wc -c")
    a, b = both(dy, runc, make_bundle, "dev", ["sh", "-c", script])
    assert a.returncode == b.returncode
    assert a.stdout == b.stdout
    out = a.stdout.decode()
    for dev in ("full", "null", "random", "tty", "urandom", "zero", "pts", "shm", "mqueue"):
        assert f"{dev}\n" in out
    assert "pts/ptmx\n/proc/self/fd\n/proc/self/fd/0\n" in out
    assert "ro-ok" in out and "ro2-ok" in out


def test_readonly_rootfs(dy, runc, make_bundle):
    a, b = both(dy, runc, make_bundle, "ro", ["sh", "-c", "touch /x 2>&1; touch /tmp/y 2>&1; echo end"], readonly=True)
    assert a.returncode == b.returncode
    assert a.stdout == b.stdout and b"Read-only file system" in a.stdout


def test_bind_mount_readonly_and_sysctl(dy, runc, make_bundle, tmp_path):
    data = tmp_path / "hostdata"
    data.mkdir()
    (data / "f").write_text("from host\n")
    extra = [{"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "ro", "rprivate"]}]
    script = "cat /data/f; touch /data/g 2>&1; cat /proc/sys/net/ipv4/ip_forward"
    a, b = both(dy, runc, make_bundle, "bind", ["sh", "-c", script], mounts_extra=extra, sysctl={"net.ipv4.ip_forward": "1"})
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout
    assert a.stdout.startswith(b"from host\n") and a.stdout.endswith(b"1\n")


# -- rlimits and cgroups ----------------------------------------------------------------------------


def test_rlimits(dy, runc, make_bundle):
    rl = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}, {"type": "RLIMIT_NPROC", "soft": 500, "hard": 600}]
    a, b = both(dy, runc, make_bundle, "rl", ["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u"], rlimits=rl)
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout == b"1024\n4096\n500\n"


def test_rlimit_above_hard_limit_fails_clearly(dy, runc, make_bundle):
    hard = int(subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True).stdout)
    rl = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard * 64}]
    a, b = both(dy, runc, make_bundle, "rlx", ["true"], rlimits=rl)
    if b.returncode == 0:
        pytest.skip("this host lets us raise the hard limit (CAP_SYS_RESOURCE present)")
    assert a.returncode != 0
    assert b"RLIMIT_NOFILE" in a.stderr and b"CAP_SYS_RESOURCE" in a.stderr and b"EPERM" in a.stderr


def test_pids_limit_contains_fork_bomb(dy, make_bundle):
    bundle = make_bundle("pids", ["sh", "-c", "sh -c 'for i in $(seq 1 100); do sleep 60 & done' 2>/dev/null; exec sleep 60"],
                         resources={"pids": {"limit": 20}})
    cid = dy.track("pids")
    dy("run", "-d", "--bundle", str(bundle), cid, check=True)
    time.sleep(1.0)
    pids = json.loads(dy("ps", "--format", "json", cid, check=True).stdout)
    assert 1 <= len(pids) <= 20
    pidsdir = [d for d in cgroup_dirs(bundle) if d.parent.parent.name == "pids"][0]
    assert pidsdir.joinpath("pids.max").read_text().strip() == "20"
    assert int(pidsdir.joinpath("pids.events").read_text().split()[1]) > 0  # forks were refused
    dy("delete", "-f", cid, check=True)
    assert cgroup_dirs(bundle) == []


def test_memory_limit_oom_kill_detected_by_shim(dy, runc, make_bundle, tmp_path):
    res = {"memory": {"limit": 16 << 20, "swap": 16 << 20}}
    args = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
    b = runc.run(make_bundle("rc-oom", args, resources=res), "rc-oom")
    bundle = make_bundle("dy-oom", args, resources=res)
    cid = dy.track("dy-oom")
    exit_file = tmp_path / "oom.exit"
    dy("shim", "--bundle", str(bundle), "--id", cid, "--log", str(tmp_path / "oom.log"), "--exit-file", str(exit_file), check=True)
    assert wait_for(exit_file.exists, 30)
    ex = json.loads(exit_file.read_text())
    assert b.returncode == ex["exit_code"] == 137
    assert ex["oom_killed"] is True and ex["signal"] == 9


def test_cpu_and_memory_settings_written(dy, make_bundle):
    res = {"memory": {"limit": 64 << 20, "reservation": 32 << 20}, "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}}
    bundle = make_bundle("res", ["sleep", "60"], resources=res)
    cid = dy.track("res")
    dy("run", "-d", "--bundle", str(bundle), cid, check=True)
    dirs = {d.parent.parent.name: d for d in cgroup_dirs(bundle)}
    assert dirs["memory"].joinpath("memory.limit_in_bytes").read_text().strip() == str(64 << 20)
    assert dirs["memory"].joinpath("memory.soft_limit_in_bytes").read_text().strip() == str(32 << 20)
    assert dirs["cpu"].joinpath("cpu.shares").read_text().strip() == "512"
    assert dirs["cpu"].joinpath("cpu.cfs_quota_us").read_text().strip() == "50000"
    assert dirs["cpuset"].joinpath("cpuset.cpus").read_text().strip() == "0"
    pid = dy.state(cid)["pid"]
    assert str(pid) in dirs["memory"].joinpath("cgroup.procs").read_text().split()
    dy("delete", "-f", cid, check=True)
    assert cgroup_dirs(bundle) == []


def test_pause_resume_freezes(dy, runc, make_bundle):
    for rt, prefix in ((dy, "dy"), (runc, "rc")):
        bundle = make_bundle(f"{prefix}-pause", ["sh", "-c", "while true; do sleep 0.05; done"])
        cid = rt.track(f"{prefix}-pause")
        rt("run", "-d", "--bundle", str(bundle), cid, check=True)
        rt("pause", cid, check=True)
        assert rt.state(cid)["status"] == "paused"
        freezer = [d for d in cgroup_dirs(bundle) if d.parent.parent.name == "freezer"][0]
        assert freezer.joinpath("freezer.state").read_text().strip() == "FROZEN"
        assert rt("pause", cid).returncode != 0
        rt("resume", cid, check=True)
        assert rt.state(cid)["status"] == "running"
        rt("delete", "-f", cid, check=True)


# -- lifecycle --------------------------------------------------------------------------------------


def test_create_start_state_kill_delete(dy, runc, make_bundle):
    seen = {}
    for rt, prefix in ((dy, "dy"), (runc, "rc")):
        bundle = make_bundle(f"{prefix}-life", ["sleep", "60"])
        cid = rt.track(f"{prefix}-life")
        rt("create", "--bundle", str(bundle), cid, check=True)
        st = rt.state(cid)
        assert st["status"] == "created" and st["pid"] > 0 and st["bundle"] == str(bundle)
        assert st["ociVersion"] and st["id"] == cid and "annotations" in st or rt is runc
        # The init waits: the user's process has not run yet.
        assert Path(f"/proc/{st['pid']}/cmdline").read_bytes().split(b"\0")[0] != b"sleep"
        rt("start", cid, check=True)
        assert wait_for(lambda: Path(f"/proc/{st['pid']}/cmdline").read_bytes().startswith(b"sleep"))
        assert rt.state(cid)["status"] == "running"
        assert rt("delete", cid).returncode != 0  # running: needs --force
        assert rt("start", cid).returncode != 0
        rt("kill", cid, "KILL", check=True)
        # Nobody reaps a detached init of `create`; it is a zombie of init/subreaper: stopped.
        assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
        rt("delete", cid, check=True)
        assert rt("state", cid).returncode != 0
        assert cgroup_dirs(bundle) == []
        seen[prefix] = True
    assert seen == {"dy": True, "rc": True}


def test_list_and_ps(dy, make_bundle):
    cid = dy.track("lst")
    dy("run", "-d", "--bundle", str(make_bundle("lst", ["sleep", "60"])), cid, check=True)
    out = dy("list", check=True).stdout.decode()
    assert "lst" in out and "running" in out
    assert json.loads(dy("list", "--format", "json", check=True).stdout)[0]["id"] == "lst"
    pid = dy.state(cid)["pid"]
    assert json.loads(dy("ps", "--format", "json", cid, check=True).stdout) == [pid]
    assert dy("create", "--bundle", str(make_bundle("lst", ["true"])), cid).returncode != 0  # id taken


def test_create_failure_leaves_nothing(dy, make_bundle):
    bundle = make_bundle("bad", ["true"], mounts_extra=[{"destination": "/x", "type": "bind", "source": "/no/such/dir", "options": ["rbind"]}])
    p = dy("create", "--bundle", str(bundle), "bad")
    assert p.returncode == 1
    assert b"/no/such/dir" in p.stderr and b"ENOENT" in p.stderr and b"mount /x" in p.stderr
    assert dy("state", "bad").returncode != 0
    assert cgroup_dirs(bundle) == []


# -- exec -------------------------------------------------------------------------------------------


def test_exec(dy, make_bundle):
    cid = dy.track("ex")
    dy("run", "-d", "--bundle", str(make_bundle("ex", ["sleep", "60"])), cid, check=True)
    p = dy("exec", cid, "sh", "-c", "echo $$ $FOO; ps -o pid,comm | grep -c sleep; hostname; exit 4")
    assert p.returncode == 4 and p.stdout.split(b"\n")[0] != b"" and b"dycontainer" in p.stdout
    p = dy("exec", "--env", "FOO=bar", "--user", "nobody", "--cwd", "/tmp", cid, "--", "sh", "-c", "echo $FOO; id -u; pwd; grep CapEff /proc/self/status")
    assert p.returncode == 0
    assert p.stdout.decode().split("\n")[:3] == ["bar", "65534", "/tmp"]
    p = dy("exec", cid, "nope")  # runc: the exec fails, status 255
    assert p.returncode == 255 and b'exec failed: unable to start container process: exec: "nope": executable file not found in $PATH' in p.stderr
    p = dy("exec", "--tty", cid, "sh", "-c", "tty; exit 2")
    assert p.returncode == 2 and b"/dev/pts/" in p.stdout
    pid = dy.state(cid)["pid"]
    p = dy("exec", cid, "cat", "/proc/1/cmdline")
    assert p.stdout.startswith(b"sleep") and pid > 1


# -- shim -------------------------------------------------------------------------------------------


def _shim(dy, make_bundle, tmp_path, name, args, *flags, **kw):
    bundle = make_bundle(name, args, **kw)
    cid = dy.track(name)
    paths = {k: tmp_path / f"{name}.{k}" for k in ("log", "exit", "sock")}
    p = dy("shim", "--bundle", str(bundle), "--id", cid, "--log", str(paths["log"]), "--exit-file", str(paths["exit"]),
           "--attach-socket", str(paths["sock"]), *flags, check=True)
    return int(p.stdout.split()[0]), paths


def test_shim_json_log_and_exit_file(dy, make_bundle, tmp_path):
    pid, paths = _shim(dy, make_bundle, tmp_path, "sh1", ["sh", "-c", "echo out; echo err >&2; printf 'no newline'; exit 7"])
    assert pid > 0
    assert wait_for(paths["exit"].exists)
    ex = json.loads(paths["exit"].read_text())
    assert ex["exit_code"] == 7 and ex["oom_killed"] is False and ex["signal"] is None and ex["pid"] == pid
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", ex["finished_at"])
    lines = [json.loads(line) for line in paths["log"].read_text().splitlines()]
    got = sorted((e["stream"], e["log"]) for e in lines)
    assert got == [("stderr", "err\n"), ("stdout", "no newline"), ("stdout", "out\n")]
    assert all(e["time"].endswith("Z") for e in lines)
    assert not paths["sock"].exists()
    assert dy.state("sh1")["status"] == "stopped"


def _frames(sock: socket.socket, until_type: int = 3, timeout: float = 10) -> list[tuple[int, bytes]]:
    sock.settimeout(timeout)
    buf, out = b"", []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        buf += chunk
        while len(buf) >= 8:
            typ, n = buf[0], struct.unpack(">I", buf[4:8])[0]
            if len(buf) < 8 + n:
                break
            out.append((typ, buf[8:8 + n]))
            buf = buf[8 + n:]
            if typ == until_type:
                return out


def test_shim_attach_stdin_and_output(dy, make_bundle, tmp_path):
    pid, paths = _shim(dy, make_bundle, tmp_path, "att", ["sh", "-c", "read line; echo got $line; cat >&2"], "--stdin")
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(paths["sock"]))
    s.sendall(struct.pack(">BxxxI", 0, 6) + b"hello\n")
    s.sendall(struct.pack(">BxxxI", 0, 5) + b"more\n" + struct.pack(">BxxxI", 5, 0))
    frames = _frames(s)
    s.close()
    data = {1: b"", 2: b""}
    for t, d in frames:
        if t in data:
            data[t] += d
    assert data[1] == b"got hello\n" and data[2] == b"more\n"
    assert frames[-1][0] == 3 and json.loads(frames[-1][1])["exit_code"] == 0
    assert wait_for(paths["exit"].exists)


def test_shim_tty(dy, make_bundle, tmp_path):
    pid, paths = _shim(dy, make_bundle, tmp_path, "tty", ["sh", "-c", "tty; stty size; exit 3"], "--tty", terminal=True)
    assert wait_for(paths["exit"].exists)
    assert json.loads(paths["exit"].read_text())["exit_code"] == 3
    text = "".join(json.loads(line)["log"] for line in paths["log"].read_text().splitlines())
    assert "/dev/pts/0" in text


def test_shim_survives_a_client_that_hangs_up_as_output_comes(dy, make_bundle, tmp_path):
    """Output and a client's hang-up in the same poll round (a detach: the tty echoes the key
    just sent): the send to the client fails and the shim removed it while the round still held
    the clients' indices: it panicked, and the container's exit was unknown (255).  The shim is
    stopped while the client hangs up and output piles up, so both come in one round."""
    pid, paths = _shim(dy, make_bundle, tmp_path, "talk", ["sh", "-c", "while :; do echo t; sleep 0.02; done"],
                       "--tty", terminal=True)
    shim = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(paths["sock"]))
        s.settimeout(10)
        assert s.recv(4096)  # attached: the shim sends it output
        os.kill(shim, signal.SIGSTOP)
        try:
            s.close()
            time.sleep(0.1)
        finally:
            os.kill(shim, signal.SIGCONT)
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(paths["sock"]))
    s.settimeout(10)
    assert s.recv(4096)
    s.close()
    assert not paths["exit"].exists()
    dy("kill", "talk", "KILL", check=True)
    assert wait_for(paths["exit"].exists)
    assert json.loads(paths["exit"].read_text())["exit_code"] == 137


def test_shim_kill_and_idle_rss(dy, make_bundle, tmp_path, runtime_bin):
    pid, paths = _shim(dy, make_bundle, tmp_path, "idle", ["sleep", "60"])
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    time.sleep(0.3)
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{ppid}/status").read_text()).group(1))
    print(f"idle shim VmRSS: {rss_kb} kB ({runtime_bin.parent.name} build)")
    if runtime_bin.parent.name == "release":
        assert rss_kb <= 3 * 1024
    dy("kill", "idle", "KILL", check=True)
    assert wait_for(paths["exit"].exists)
    assert json.loads(paths["exit"].read_text())["exit_code"] == 137
    assert wait_for(lambda: not Path(f"/proc/{ppid}").exists())


def test_shim_reports_create_errors(dy, make_bundle, tmp_path):
    bundle = make_bundle("shbad", ["true"], rlimits=[{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}])
    p = dy("shim", "--bundle", str(bundle), "--id", "shbad", "--log", str(tmp_path / "x.log"))
    assert p.returncode == 1 and b"RLIMIT_BOGUS" in p.stderr
    assert dy("state", "shbad").returncode != 0


# -- namespaces by path, cgroup namespace, devices, console socket -------------------------------


def test_join_namespace_paths_cgroupns_and_devices(dy, runc, make_bundle):
    outs = []
    for rt, prefix in ((dy, "dy"), (runc, "rc")):
        host = rt.track(f"{prefix}-nshost")
        rt("run", "-d", "--bundle", str(make_bundle(host, ["sleep", "60"], hostname="joined")), host, check=True)
        pid = rt.state(host)["pid"]
        bundle = make_bundle(f"{prefix}-nsjoin", ["sh", "-c", "hostname; cut -d: -f3 /proc/self/cgroup | sort -u; ls -ln /dev/mydev | cut -c1-10; readlink /proc/self/ns/net"])
        cfg = json.loads((bundle / "config.json").read_text())
        cfg["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid"}, {"type": "ipc"}, {"type": "cgroup"},
                                      {"type": "uts", "path": f"/proc/{pid}/ns/uts"}, {"type": "network", "path": f"/proc/{pid}/ns/net"}]
        cfg.pop("hostname")
        cfg["linux"]["devices"] = [{"type": "c", "path": "/dev/mydev", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 0}]
        (bundle / "config.json").write_text(json.dumps(cfg))
        p = rt.run(bundle, f"{prefix}-nsjoin")
        assert p.returncode == 0, p.stderr
        assert p.stdout.split(b"\n")[-2] == os.readlink(f"/proc/{pid}/ns/net").encode()
        outs.append(p.stdout.split(b"\n")[:-2])
    assert outs[0] == outs[1]
    assert outs[0] == [b"joined", b"/", b"crw-r-----"]


def test_console_socket(dy, runc, make_bundle, tmp_path):
    for rt, prefix in ((dy, "dy"), (runc, "rc")):
        path = tmp_path / f"{prefix}.console"
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(str(path))
        srv.listen(1)
        cid = rt.track(f"{prefix}-con")
        bundle = make_bundle(cid, ["sh", "-c", "tty; echo hello-tty; exit 6"], terminal=True)
        rt("create", "--console-socket", str(path), "--bundle", str(bundle), cid, check=True)
        conn, _ = srv.accept()
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        conn.close()
        srv.close()
        master = fds[0]
        try:
            rt("start", cid, check=True)
            data = b""
            deadline = time.time() + 10
            while b"hello-tty" not in data and time.time() < deadline:
                try:
                    data += os.read(master, 4096)
                except OSError:
                    break
        finally:
            os.close(master)
        assert b"/dev/pts/0" in data and b"hello-tty" in data, (rt.name, data)


def test_kill_all_and_delete_force_paused(dy, make_bundle):
    cid = dy.track("ka")
    bundle = make_bundle("ka", ["sh", "-c", "sleep 60 & sleep 60 & wait"])
    dy("run", "-d", "--bundle", str(bundle), cid, check=True)
    assert wait_for(lambda: len(json.loads(dy("ps", "--format", "json", cid).stdout or b"[]")) == 3)
    dy("pause", cid, check=True)
    dy("delete", "--force", cid, check=True)
    assert dy("state", cid).returncode != 0
    assert cgroup_dirs(bundle) == []
    cid = dy.track("ka2")
    dy("run", "-d", "--bundle", str(make_bundle("ka2", ["sh", "-c", "sleep 60 & sleep 60 & wait"])), cid, check=True)
    assert wait_for(lambda: len(json.loads(dy("ps", "--format", "json", cid).stdout or b"[]")) == 3)
    dy("kill", "--all", cid, "KILL", check=True)
    assert wait_for(lambda: dy.state(cid)["status"] == "stopped")


def test_engine_default_seccomp_profile_loads(dy, runc, make_bundle):
    seccomp = pytest.importorskip("dockyard.engine.seccomp")
    from bundle import DOCKER_CAPS

    profile = seccomp.default_profile(list(DOCKER_CAPS))
    script = ("grep Seccomp: /proc/self/status; mkdir /tmp/d && echo mkdir-ok; mount -t tmpfs none /tmp/d 2>&1; "
              "unshare -n true 2>&1; sh -c 'echo child-ok'; ls /proc/1 >/dev/null && echo ls-ok")
    outs = []
    for rt, prefix in ((dy, "dy"), (runc, "rc")):
        bundle = make_bundle(f"{prefix}-dsc", ["sh", "-c", script])
        cfg = json.loads((bundle / "config.json").read_text())
        cfg["linux"]["seccomp"] = profile
        (bundle / "config.json").write_text(json.dumps(cfg))
        p = rt.run(bundle, f"{prefix}-dsc")
        outs.append((p.returncode, p.stdout))
    assert outs[0] == outs[1]
    assert b"Seccomp:\t2" in outs[0][1] and b"child-ok" in outs[0][1] and b"ls-ok" in outs[0][1]


def test_run_with_terminal_in_foreground(dy, make_bundle):
    # runc needs a controlling terminal of its own for this (it opens /dev/tty); we proxy
    # plain pipes too, which is what the engine has.
    p = dy("run", "--bundle", str(make_bundle("rt", ["sh"], terminal=True)), dy.track("rt"), input=b"tty; echo $((6*7)); exit 3\n")
    assert p.returncode == 3
    assert b"/dev/pts/0" in p.stdout and b"\n42" in p.stdout


def test_oom_score_adj(dy, runc, make_bundle):
    outs = []
    for rt, prefix in ((dy, "dy"), (runc, "rc")):
        bundle = make_bundle(f"{prefix}-oomadj", ["cat", "/proc/self/oom_score_adj"])
        cfg = json.loads((bundle / "config.json").read_text())
        cfg["process"]["oomScoreAdj"] = 500
        (bundle / "config.json").write_text(json.dumps(cfg))
        outs.append(rt.run(bundle, f"{prefix}-oomadj").stdout)
    assert outs == [b"500\n", b"500\n"]


@pytest.mark.parametrize("propagation", ["rprivate", "rslave", "rshared"])
def test_ambient_caps_propagation_and_pid_file(dy, runc, make_bundle, tmp_path, propagation):
    outs = []
    for rt, prefix in ((dy, "dy"), (runc, "rc")):
        bundle = make_bundle(f"{prefix}-amb", ["sh", "-c", "grep -E '^Cap' /proc/self/status; id -u"], user=(1000, 1000, []))
        cfg = json.loads((bundle / "config.json").read_text())
        caps = cfg["process"]["capabilities"]
        caps["inheritable"] = caps["ambient"] = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
        cfg["linux"]["rootfsPropagation"] = propagation
        (bundle / "config.json").write_text(json.dumps(cfg))
        cid = rt.track(f"{prefix}-amb")
        pidfile = tmp_path / f"{prefix}.pid"
        rt("create", "--pid-file", str(pidfile), "--bundle", str(bundle), cid, check=True)
        assert int(pidfile.read_text()) == rt.state(cid)["pid"]
        rt("delete", "-f", cid, check=True)
        outs.append(rt.run(bundle, cid + "2"))
    assert outs[0].returncode == outs[1].returncode == 0, (outs[0].stderr, outs[1].stderr)
    assert outs[0].stdout == outs[1].stdout
    assert b"CapAmb:\t0000000000000420" in outs[0].stdout


def test_leaked_fds_closed_and_preserve_fds(dy, runc, make_bundle, tmp_path):
    outs = []
    extra = tmp_path / "extra"
    extra.write_text("x")
    # A shell opens fd 3 and a "leaked" fd 7, then execs the runtime: only --preserve-fds lets 3 in.
    wrap = ["sh", "-c", 'exec 3<"$0" 7<"$0"; exec "$@"', str(extra)]
    for rt, prefix in ((dy, "dy"), (runc, "rc")):
        bundle = make_bundle(f"{prefix}-fds", ["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"])
        row = []
        for n, flags in enumerate(([], ["--preserve-fds", "1"])):
            cid = rt.track(f"{prefix}-fds{n}")
            p = subprocess.run(wrap + rt.argv + ["run", *flags, "--bundle", str(bundle), cid],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            assert p.returncode == 0, p.stderr
            row.append(p.stdout)
        outs.append(row)
    assert outs[0] == outs[1]
    assert outs[0][0] == b"0 1 2 3 " and outs[0][1] == b"0 1 2 3 4 "  # ls's own directory fd is the last


# -- attach before start (--wait-attach) ------------------------------------------------------------


def _shim_wait(dy, make_bundle, tmp_path, name, args, *flags, **kw):
    """Start a shim with --wait-attach; returns (pid, paths) once the container is *created*."""
    pid, paths = _shim(dy, make_bundle, tmp_path, name, args, *flags, **kw)
    assert paths["sock"].exists()
    return pid, paths


def _data(frames):
    data = {1: b"", 2: b""}
    for t, d in frames:
        if t in data:
            data[t] += d
    return data


def test_wait_attach_first_bytes_and_exit_frame(dy, make_bundle, tmp_path):
    pid, paths = _shim_wait(dy, make_bundle, tmp_path, "wa1", ["sh", "-c", "echo first; echo err1 >&2; exit 5"],
                            "--wait-attach")
    # The shim answered as soon as the container existed: it has not started yet.
    assert dy.state("wa1")["status"] == "created"
    time.sleep(0.3)
    assert dy.state("wa1")["status"] == "created" and not paths["exit"].exists()
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(paths["sock"]))
    frames = _frames(s)
    s.close()
    data = _data(frames)
    assert data[1] == b"first\n" and data[2] == b"err1\n"
    assert frames[-1][0] == 3
    ex = json.loads(frames[-1][1])
    assert ex["exit_code"] == 5 and ex["pid"] == pid
    assert wait_for(paths["exit"].exists)
    assert json.loads(paths["exit"].read_text())["exit_code"] == 5
    # The json-file log is complete as before.
    lines = [json.loads(line) for line in paths["log"].read_text().splitlines()]
    assert sorted((e["stream"], e["log"]) for e in lines) == [("stderr", "err1\n"), ("stdout", "first\n")]


def test_wait_attach_many_bytes_none_lost(dy, make_bundle, tmp_path):
    # 200k lines straight away: every byte must reach the first client, in order.
    pid, paths = _shim_wait(dy, make_bundle, tmp_path, "wa2", ["sh", "-c", "seq 1 200000; echo done >&2"], "--wait-attach=5000")
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(paths["sock"]))
    frames = _frames(s, timeout=30)
    s.close()
    data = _data(frames)
    assert data[1] == b"".join(b"%d\n" % i for i in range(1, 200001))
    assert data[2] == b"done\n"
    assert json.loads(frames[-1][1])["exit_code"] == 0


def test_wait_attach_timeout_starts_anyway(dy, make_bundle, tmp_path):
    pid, paths = _shim_wait(dy, make_bundle, tmp_path, "wa3", ["sh", "-c", "echo alone; exit 2"], "--wait-attach=1500")
    t0 = time.monotonic()
    assert dy.state("wa3")["status"] == "created"
    assert wait_for(paths["exit"].exists, timeout=10)
    ex = json.loads(paths["exit"].read_text())
    assert ex["exit_code"] == 2
    assert time.monotonic() - t0 >= 1.0
    assert "alone" in paths["log"].read_text()


def test_wait_attach_resize_before_start_with_tty(dy, make_bundle, tmp_path):
    pid, paths = _shim_wait(dy, make_bundle, tmp_path, "wa4", ["sh", "-c", "stty size; exit 4"], "--tty", "--wait-attach",
                            terminal=True)
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(paths["sock"]))
    s.sendall(struct.pack(">BxxxI", 4, 4) + struct.pack(">HH", 37, 123))
    frames = _frames(s)
    s.close()
    out = _data(frames)[1]
    assert b"37 123" in out, out
    assert json.loads(frames[-1][1])["exit_code"] == 4


def test_wait_attach_tty_client_without_resize_starts_after_grace(dy, make_bundle, tmp_path):
    pid, paths = _shim_wait(dy, make_bundle, tmp_path, "wa5", ["sh", "-c", "echo ok; exit 0"], "--tty", "--wait-attach",
                            terminal=True)
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(paths["sock"]))
    frames = _frames(s)
    s.close()
    assert b"ok" in _data(frames)[1]
    assert json.loads(frames[-1][1])["exit_code"] == 0


def test_wait_attach_stdin_before_start(dy, make_bundle, tmp_path):
    pid, paths = _shim_wait(dy, make_bundle, tmp_path, "wa6", ["sh", "-c", "read l; echo got $l"], "--stdin", "--wait-attach")
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(paths["sock"]))
    s.sendall(struct.pack(">BxxxI", 0, 3) + b"hi\n" + struct.pack(">BxxxI", 5, 0))
    frames = _frames(s)
    s.close()
    assert _data(frames)[1] == b"got hi\n"


def test_wait_attach_delete_before_start(dy, make_bundle, tmp_path):
    pid, paths = _shim_wait(dy, make_bundle, tmp_path, "wa7", ["sh", "-c", "echo never"], "--wait-attach")
    dy("delete", "-f", "wa7", check=True)
    assert wait_for(paths["exit"].exists)
    assert json.loads(paths["exit"].read_text())["exit_code"] == 137
    assert "never" not in paths["log"].read_text()


def test_wait_attach_engine_start_instead_of_attach(dy, make_bundle, tmp_path):
    pid, paths = _shim_wait(dy, make_bundle, tmp_path, "wa8", ["sh", "-c", "exit 9"], "--wait-attach=60000")
    dy("start", "wa8", check=True)
    assert wait_for(paths["exit"].exists)
    # The shim notices the exit even though it is still waiting for a client.
    assert json.loads(paths["exit"].read_text())["exit_code"] == 9


def test_wait_attach_needs_socket(dy, make_bundle, tmp_path):
    bundle = make_bundle("wa9", ["true"])
    p = dy("shim", "--bundle", str(bundle), "--id", "wa9", "--log", str(tmp_path / "x.log"), "--wait-attach")
    assert p.returncode == 1 and b"--attach-socket" in p.stderr


def test_wait_attach_engine_start_of_a_long_talker(dy, make_bundle, tmp_path):
    # Started by the engine while the shim waits for a client: its output must still flow
    # (a full pipe would block it) long before the 60 s wait would end.
    pid, paths = _shim_wait(dy, make_bundle, tmp_path, "wa10", ["sh", "-c", "seq 1 100000; exit 3"], "--wait-attach=60000")
    dy("start", "wa10", check=True)
    assert wait_for(paths["exit"].exists, timeout=20)
    assert json.loads(paths["exit"].read_text())["exit_code"] == 3
    lines = [json.loads(line)["log"] for line in paths["log"].read_text().splitlines()]
    assert len(lines) == 100000 and lines[-1] == "100000\n"


# -- --init: the runtime's own PID 1 (annotation dockyard.init) ---------------------------------------

INIT = {"dockyard.init": "true"}

# Zombies in the pid namespace: state Z in /proc/N/stat.
COUNT_ZOMBIES = "n=0; for f in /proc/[0-9]*/stat; do read -r a b c rest < $f; [ \"$c\" = Z ] && n=$((n+1)); done; echo zombies=$n"


def test_init_reaps_orphaned_grandchildren(dy, make_bundle):
    # Each subshell starts a sleep and exits at once: the sleeps are orphaned to PID 1 and die
    # 0.2 s later. Our PID 1 must reap them (sh, PID 2, never waits for them).
    script = "for i in 1 2 3 4 5; do (sleep 0.2 &); done; sleep 1; " + COUNT_ZOMBIES
    p = dy.run(make_bundle("ini1", ["sh", "-c", script], annotations=INIT), "ini1")
    assert p.returncode == 0, p.stderr
    assert b"zombies=0" in p.stdout, p.stdout


def test_init_pid1_is_not_the_command_and_user_is_pid2(dy, make_bundle):
    script = "echo comm1=$(cat /proc/1/comm); echo cmd1=$(tr '\\0' ' ' < /proc/1/cmdline); echo me=$$; echo pgid=$(cut -d' ' -f5 /proc/self/stat)"
    p = dy.run(make_bundle("ini2", ["sh", "-c", script], annotations=INIT), "ini2")
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr
    assert "comm1=dockyard-init\n" in out
    assert "cmd1=dockyard-init" in out and "shim" not in out and "--root" not in out
    assert "me=2\n" in out
    # Without the annotation the command is PID 1, as before.
    p = dy.run(make_bundle("ini2b", ["sh", "-c", "cat /proc/1/comm; true"]), "ini2b")
    assert p.stdout == b"sh\n"


@pytest.mark.parametrize("code", [0, 3, 255])
def test_init_exit_codes_preserved(dy, make_bundle, code):
    p = dy.run(make_bundle(f"ini3-{code}", ["sh", "-c", f"exit {code}"], annotations=INIT), f"ini3-{code}")
    assert p.returncode == code


def test_init_not_found_127_and_not_executable_126(dy, make_bundle):
    p = dy.run(make_bundle("ini4", ["no-such-command"], annotations=INIT), "ini4")
    assert p.returncode == 127 and b"executable file not found" in p.stderr
    p = dy.run(make_bundle("ini5", ["/etc/passwd"], annotations=INIT), "ini5")
    assert p.returncode == 126 and b"permission denied" in p.stderr


def test_init_child_killed_by_signal_is_128_plus_n(dy, make_bundle):
    p = dy.run(make_bundle("ini6", ["sh", "-c", "kill -KILL $$"], annotations=INIT), "ini6")
    assert p.returncode == 137


def test_init_forwards_term_to_a_shell_that_traps_it(dy, make_bundle, tmp_path):
    # Like `docker run --init ... sh -c 'trap ... TERM'` then `docker kill -s TERM`.
    script = "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    pid, paths = _shim(dy, make_bundle, tmp_path, "ini7", ["sh", "-c", script], annotations=INIT)
    assert wait_for(lambda: "ready" in paths["log"].read_text())
    dy("kill", "ini7", "TERM", check=True)
    assert wait_for(paths["exit"].exists)
    assert json.loads(paths["exit"].read_text())["exit_code"] == 42
    assert "got-term" in paths["log"].read_text()


def test_init_forwards_usr1_and_hup(dy, make_bundle, tmp_path):
    script = "trap 'echo usr1' USR1; trap 'echo hup; exit 7' HUP; echo ready; while :; do sleep 0.05; done"
    pid, paths = _shim(dy, make_bundle, tmp_path, "ini8", ["sh", "-c", script], annotations=INIT)
    assert wait_for(lambda: "ready" in paths["log"].read_text())
    dy("kill", "ini8", "USR1", check=True)
    assert wait_for(lambda: "usr1" in paths["log"].read_text())
    dy("kill", "ini8", "HUP", check=True)
    assert wait_for(paths["exit"].exists)
    assert json.loads(paths["exit"].read_text())["exit_code"] == 7


def test_init_term_to_untrapped_child_is_143(dy, make_bundle, tmp_path):
    # Without --init, TERM to a PID 1 that does not handle it is dropped; with it, the child
    # dies of it and PID 1 exits 128+15, as docker run --init does.
    pid, paths = _shim(dy, make_bundle, tmp_path, "ini9", ["sleep", "60"], annotations=INIT)
    time.sleep(0.2)
    dy("kill", "ini9", "TERM", check=True)
    assert wait_for(paths["exit"].exists)
    assert json.loads(paths["exit"].read_text())["exit_code"] == 143


def test_init_with_tty_child_is_foreground_and_exec_works(dy, make_bundle, tmp_path):
    script = "echo fg=$(cut -d' ' -f8 /proc/self/stat) pg=$(cut -d' ' -f5 /proc/self/stat); sleep 2"
    pid, paths = _shim(dy, make_bundle, tmp_path, "ini10", ["sh", "-c", script], "--tty", terminal=True, annotations=INIT)
    assert wait_for(lambda: "fg=" in paths["log"].read_text())
    text = "".join(json.loads(line)["log"] for line in paths["log"].read_text().splitlines())
    fg, pg = re.search(r"fg=(\d+) pg=(\d+)", text).groups()
    assert fg == pg  # the user's process group owns the terminal
    p = dy("exec", "ini10", "cat", "/proc/1/comm", check=True)
    assert p.stdout == b"dockyard-init\n"
    dy("kill", "ini10", "KILL", check=True)
    assert wait_for(paths["exit"].exists)


def test_init_with_seccomp_and_non_root_user(dy, make_bundle):
    script = "grep -E '^(Uid|Gid|Groups|Cap...|NoNewPrivs|Seccomp):' /proc/1/status; echo --; grep -E '^(Uid|Gid|Groups|Cap...|NoNewPrivs|Seccomp):' /proc/self/status"
    p = dy.run(make_bundle("ini11", ["sh", "-c", script], annotations=INIT,
                           seccomp=True, user=(65534, 65534, []), no_new_privs=True), "ini11")
    assert p.returncode == 0, p.stderr
    pid1, me = p.stdout.decode().split("--\n")
    # PID 1 holds no more than the user's process: same ids, capabilities, no_new_privs, seccomp.
    assert re.search(r"Uid:\s+65534\s+65534\s+65534\s+65534", pid1)
    assert "Seccomp:\t2" in pid1 and "NoNewPrivs:\t1" in pid1
    assert pid1 == me


# -- rootfs overlay mounted inside the container's mount namespace (dockyard.rootfs.overlay) ---------


def _overlay_layers(tmp_path, rootfs):
    """bottom = the busybox rootfs + /etc/motd, /data/{keep,gone}; top overrides motd, hides
    /data/gone with a whiteout and adds /top-only."""
    import shutil
    from bundle import add_applets
    base = tmp_path / "layers"
    bottom, top = base / "bottom", base / "top"
    shutil.copytree(rootfs, bottom, symlinks=True)
    add_applets(bottom)
    (bottom / "etc" / "motd").write_text("bottom\n")
    (bottom / "data").mkdir()
    (bottom / "data" / "keep").write_text("k\n")
    (bottom / "data" / "gone").write_text("x\n")
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "motd").write_text("top\n")
    (top / "data").mkdir()
    os.mknod(top / "data" / "gone", 0o600 | 0o020000, os.makedev(0, 0))
    (top / "top-only").write_text("t\n")
    upper, work = base / "upper", base / "work"
    upper.mkdir()
    work.mkdir()
    return [top, bottom], upper, work


def _merged(lowers):
    """The tree overlayfs shows: paths relative to /, topmost layer wins, whiteouts hide."""
    seen, hidden = {}, set()
    for layer in lowers:
        for dirpath, dirnames, filenames in os.walk(layer):
            for name in dirnames + filenames:
                full = Path(dirpath) / name
                rel = "/" + str(full.relative_to(layer))
                if rel in seen or any(rel == h or rel.startswith(h + "/") for h in hidden):
                    continue
                st = os.lstat(full)
                if (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0:
                    hidden.add(rel)
                    continue
                seen[rel] = full
    return seen


def _overlay_bundle(make_bundle, tmp_path, rootfs, name, args, **kw):
    lowers, upper, work = _overlay_layers(tmp_path, rootfs)
    ann = {"dockyard.rootfs.overlay": json.dumps({"lower": [str(p) for p in lowers], "upper": str(upper), "work": str(work)})}
    bundle = make_bundle(name, args, annotations=ann, **kw)
    # The engine leaves root.path an empty directory: the runtime mounts the overlay on it.
    import shutil
    shutil.rmtree(bundle / "rootfs")
    (bundle / "rootfs").mkdir()
    return bundle, lowers, upper


def _host_overlays(tmp_path: Path) -> list[str]:
    """Overlays in the host's mount table that involve this test's files (other tests on this
    machine mount their own)."""
    return [line for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[2] == "overlay" and str(tmp_path) in line]


@pytest.mark.parametrize("api", ["fsconfig", "mount2"])
def test_overlay_tree_matches_layers(dy, make_bundle, tmp_path, rootfs, api, monkeypatch):
    if api == "mount2":
        monkeypatch.setenv("DOCKYARD_RUNTIME_OVERLAY_MOUNT2", "1")
    before = _host_overlays(tmp_path)
    bundle, lowers, upper = _overlay_bundle(make_bundle, tmp_path, rootfs, f"ov1-{api}",
                                            ["sh", "-c", "find / -xdev; echo ==; cat /etc/motd /data/keep /top-only; grep ' / ' /proc/self/mounts"])
    p = dy.run(bundle, f"ov1-{api}")
    assert p.returncode == 0, p.stderr
    listing, rest = p.stdout.decode().split("==\n")
    inside = {line for line in listing.splitlines() if line != "/"}
    want = set(_merged(lowers))
    assert want <= inside, sorted(want - inside)
    # Anything else is a mount point the runtime created (in the upper layer), or its parent.
    cfg = json.loads((bundle / "config.json").read_text())
    points = {m["destination"] for m in cfg["mounts"]}
    points |= {str(Path(d).parent) for d in points}
    assert inside - want <= points, sorted(inside - want - points)
    assert "/data/gone" not in inside and "/data/keep" in inside
    assert rest.startswith("top\nk\nt\n")
    assert re.search(r"^overlay / overlay ", rest.split("t\n", 1)[1], re.M), rest
    # The path taken: one lowerdir+ per layer (fsconfig), or mount(2)'s lowerdir=a:b.
    assert ("lowerdir+=" in rest) == (api == "fsconfig"), rest
    assert _host_overlays(tmp_path) == before == []
    assert list((bundle / "rootfs").iterdir()) == []


def test_overlay_writes_land_in_upper(dy, make_bundle, tmp_path, rootfs):
    bundle, lowers, upper = _overlay_bundle(make_bundle, tmp_path, rootfs, "ov2",
                                            ["sh", "-c", "echo new > /newfile && echo changed > /data/keep && rm /etc/motd && mkdir /d && echo ok"])
    p = dy.run(bundle, "ov2")
    assert p.returncode == 0 and p.stdout == b"ok\n", p.stderr
    assert (upper / "newfile").read_text() == "new\n"
    assert (upper / "data" / "keep").read_text() == "changed\n"
    st = os.lstat(upper / "etc" / "motd")
    assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0  # a whiteout
    assert (upper / "d").is_dir()
    top, bottom = lowers
    assert (bottom / "data" / "keep").read_text() == "k\n" and (top / "etc" / "motd").read_text() == "top\n"
    assert not (top / "newfile").exists() and not (bottom / "newfile").exists()


def test_overlay_never_in_host_namespace_and_exec_sees_it(dy, make_bundle, tmp_path, rootfs):
    before = _host_overlays(tmp_path)
    bundle, lowers, upper = _overlay_bundle(make_bundle, tmp_path, rootfs, "ov3", ["sleep", "60"])
    dy.track("ov3")
    dy("run", "-d", "--bundle", str(bundle), "ov3", check=True)
    pid = dy.state("ov3")["pid"]
    # While it runs: the host has no new overlay and the bundle's rootfs is empty here...
    assert _host_overlays(tmp_path) == before == []
    assert str(upper) not in Path("/proc/self/mountinfo").read_text()
    assert list((bundle / "rootfs").iterdir()) == []
    # ...while the container's namespace has it as its root.
    theirs = Path(f"/proc/{pid}/mountinfo").read_text()
    assert any(line.split()[4] == "/" and " - overlay " in line for line in theirs.splitlines()), theirs
    p = dy("exec", "ov3", "cat", "/top-only", "/etc/motd", check=True)
    assert p.stdout == b"t\ntop\n"
    p = dy("exec", "ov3", "sh", "-c", "echo via-exec > /from-exec", check=True)
    assert (upper / "from-exec").read_text() == "via-exec\n"
    dy("delete", "-f", "ov3", check=True)
    assert _host_overlays(tmp_path) == before == []
    # Nothing holds the layers: the upper and work dirs go at once.
    import shutil
    shutil.rmtree(upper)
    shutil.rmtree(tmp_path / "layers" / "work")


def test_overlay_readonly_rootfs(dy, make_bundle, tmp_path, rootfs):
    bundle, lowers, upper = _overlay_bundle(make_bundle, tmp_path, rootfs, "ov4",
                                            ["sh", "-c", "touch /x 2>/dev/null && echo wrote || echo ro; cat /etc/motd"], readonly=True)
    p = dy.run(bundle, "ov4")
    assert p.stdout == b"ro\ntop\n", p.stderr
    assert not (upper / "x").exists()


def test_overlay_with_shim_and_init(dy, make_bundle, tmp_path, rootfs):
    bundle, lowers, upper = _overlay_bundle(make_bundle, tmp_path, rootfs, "ov5", ["sh", "-c", "cat /etc/motd; exit 6"])
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["annotations"]["dockyard.init"] = "true"
    (bundle / "config.json").write_text(json.dumps(cfg))
    cid = dy.track("ov5")
    paths = {k: tmp_path / f"ov5.{k}" for k in ("log", "exit", "sock")}
    dy("shim", "--bundle", str(bundle), "--id", cid, "--log", str(paths["log"]), "--exit-file", str(paths["exit"]),
       "--attach-socket", str(paths["sock"]), "--wait-attach", check=True)
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(paths["sock"]))
    frames = _frames(s)
    s.close()
    assert _data(frames)[1] == b"top\n"
    assert json.loads(frames[-1][1])["exit_code"] == 6


@pytest.mark.parametrize("value,why", [
    ('{"lower": ["relative/dir"]}', "not an absolute path"),
    ('{"lower": []}', "\"lower\" is empty"),
    ('{"lower": ["/a"], "upper": "/u"}', "go together"),
    ("not json", "dockyard.rootfs.overlay"),
])
def test_overlay_bad_annotation_is_a_create_error(dy, make_bundle, value, why):
    bundle = make_bundle("ov6", ["true"], annotations={"dockyard.rootfs.overlay": value})
    dy.track("ov6")
    p = dy("create", "--bundle", str(bundle), "ov6")
    assert p.returncode == 1 and why.encode() in p.stderr, p.stderr
    assert dy("state", "ov6").returncode != 0


@pytest.mark.parametrize("api", ["fsconfig", "mount2"])
def test_overlay_missing_layer_names_it(dy, make_bundle, tmp_path, rootfs, api, monkeypatch):
    if api == "mount2":
        monkeypatch.setenv("DOCKYARD_RUNTIME_OVERLAY_MOUNT2", "1")
    up, wk = tmp_path / "u", tmp_path / "w"
    up.mkdir()
    wk.mkdir()
    ann = {"dockyard.rootfs.overlay": json.dumps({"lower": [str(tmp_path / "no-such-layer")], "upper": str(up), "work": str(wk)})}
    bundle = make_bundle(f"ov7-{api}", ["true"], annotations=ann)
    dy.track(f"ov7-{api}")
    p = dy("create", "--bundle", str(bundle), f"ov7-{api}")
    assert p.returncode == 1, p.stderr
    err = p.stderr.decode()
    assert "rootfs overlay" in err and ("no-such-layer" in err) and "ENOENT" in err, err
    assert dy("state", f"ov7-{api}").returncode != 0


def test_wait_attach_slow_first_client_gets_everything(dy, make_bundle, tmp_path):
    # 24 MB, far past the 4 MiB a client may lag: the first client is not dropped; the
    # process waits for it instead. The log still gets everything.
    n = 24 * 1024
    pid, paths = _shim_wait(dy, make_bundle, tmp_path, "wa11", ["sh", "-c", f"dd if=/dev/zero bs=1024 count={n} 2>/dev/null | tr '\\0' x; echo; echo end >&2"],
                            "--wait-attach")
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(paths["sock"]))
    time.sleep(1.5)  # not reading: the shim must hold the process back, not drop us
    assert not paths["exit"].exists()
    frames = _frames(s, timeout=60)
    s.close()
    data = _data(frames)
    assert len(data[1]) == n * 1024 + 1 and data[1].count(b"x") == n * 1024
    assert data[2] == b"end\n"
    assert json.loads(frames[-1][1])["exit_code"] == 0
    assert wait_for(paths["exit"].exists)
    total = sum(len(json.loads(line)["log"]) for line in paths["log"].read_text().splitlines() if '"stdout"' in line)
    assert total == n * 1024 + 1


def test_attach_client_half_close_still_gets_output(dy, make_bundle, tmp_path):
    pid, paths = _shim_wait(dy, make_bundle, tmp_path, "wa12", ["sh", "-c", "cat; echo after-eof"], "--stdin", "--wait-attach")
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(paths["sock"]))
    s.sendall(struct.pack(">BxxxI", 0, 4) + b"abc\n" + struct.pack(">BxxxI", 5, 0))
    s.shutdown(socket.SHUT_WR)
    frames = _frames(s)
    s.close()
    assert _data(frames)[1] == b"abc\nafter-eof\n"
    assert json.loads(frames[-1][1])["exit_code"] == 0


def test_init_does_not_hold_the_output_open(dy, make_bundle, tmp_path):
    # The user's process closes stdout and stderr and lives on: the shim sees EOF at once (PID 1
    # keeps no copy), so the log is complete long before the process exits.
    pid, paths = _shim(dy, make_bundle, tmp_path, "ini12", ["sh", "-c", "echo bye; exec >&- 2>&-; sleep 30"], annotations=INIT)
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert wait_for(lambda: "bye" in paths["log"].read_text())

    def pipe_readers():
        n = 0
        for fd in Path(f"/proc/{ppid}/fd").iterdir():
            try:
                if os.readlink(fd).startswith("pipe:"):
                    n += 1
            except OSError:
                pass
        return n
    # The shim closed its stdout/stderr read ends at EOF (only the stdin /dev/null remains).
    assert wait_for(lambda: pipe_readers() == 0, timeout=5)
    dy("kill", "ini12", "KILL", check=True)
    assert wait_for(paths["exit"].exists)


def test_overlay_with_shared_rootfs_propagation_stays_inside(dy, make_bundle, tmp_path, rootfs):
    bundle, lowers, upper = _overlay_bundle(make_bundle, tmp_path, rootfs, "ov8", ["sleep", "60"])
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["linux"]["rootfsPropagation"] = "rshared"
    (bundle / "config.json").write_text(json.dumps(cfg))
    dy.track("ov8")
    dy("run", "-d", "--bundle", str(bundle), "ov8", check=True)
    assert _host_overlays(tmp_path) == []
    assert list((bundle / "rootfs").iterdir()) == []
    p = dy("exec", "ov8", "cat", "/etc/motd", check=True)
    assert p.stdout == b"top\n"
    dy("delete", "-f", "ov8", check=True)
    assert _host_overlays(tmp_path) == []


def test_wait_attach_value_needs_equals(dy, make_bundle, tmp_path):
    bundle = make_bundle("wa13", ["true"])
    p = dy("shim", "--bundle", str(bundle), "--id", "wa13", "--log", str(tmp_path / "x.log"),
           "--attach-socket", str(tmp_path / "x.sock"), "--wait-attach", "5000")
    assert p.returncode == 1 and b"unexpected argument" in p.stderr
    p = dy("shim", "--bundle", str(bundle), "--id", "wa13", "--log", str(tmp_path / "x.log"),
           "--attach-socket", str(tmp_path / "x.sock"), "--wait-attach=soon")
    assert p.returncode == 1 and b"--wait-attach" in p.stderr


def test_init_forwards_a_signal_sent_to_pid1_from_inside(dy, make_bundle):
    script = "trap 'echo got-usr2; exit 3' USR2; kill -USR2 1; sleep 5 & wait"
    p = dy.run(make_bundle("ini13", ["sh", "-c", script], annotations=INIT), "ini13", timeout=20)
    assert p.returncode == 3 and p.stdout == b"got-usr2\n", p.stderr
