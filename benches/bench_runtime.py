#!/usr/bin/env python3
"""`dockyard-runtime run` against `runc run`, alternating, in one run; and the idle shim's RSS.

    python benches/bench_runtime.py [--quick] [--reps N]

Both runtimes run the same Docker-like bundle (namespaces mount/pid/uts/ipc/net, Docker's mounts,
masked and read-only paths, capabilities, a cgroup) whose process is `true`; each round runs
one then the other (order alternating), each with a fresh container id, `run` in the foreground
(create + start + wait + delete). Prints the median wall time of each and the ratio
dockyard / runc (goal: <= 2.0). Then starts `dockyard-runtime shim` on a `sleep` container and
reads the shim's VmRSS from /proc (goal: <= 3 MB; conmon is about 1.9 MB), also with
`--wait-attach` (waiting for a client with the container created, then attached and running).
Needs root.

Variants of dockyard in the same alternation:
  dy+init       the `dockyard.init` annotation (the runtime's init stays PID 1)
  dy+ov-host    the engine's old way: overlay mounted on the host (mount(2) from here), `run`,
                then umount — the rootfs of a real container is an overlay
  dy+ov-ns      the `dockyard.rootfs.overlay` annotation: the runtime mounts the same overlay
                inside the container's mount namespace; nothing to unmount on the host
(Each overlay round gets fresh upper/work directories, made outside the timing.)
Through containerd (unless --no-containerd, or containerd, ctr or umoci is missing): a private
containerd (its own root, state, socket; CRI off) and `ctr run --rm IMAGE ID true` with
`--runc-binary` dockyard-runtime and runc alternating (containerd's runc v2 shim drives the
runtime: create, start, wait, delete); prints both medians and the ratio.
Machines here are shared and noisy: read the ratio, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "runtime"))
sys.path.insert(0, str(REPO / "tests"))  # support.exit_on_sigterm

from bundle import busybox_rootfs, docker_config, find_binary, write_bundle  # noqa: E402


def make_rootfs(root: Path) -> Path:
    return busybox_rootfs(root)


def run_cmd(argv: list[str]) -> None:
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({p.returncode}): {p.stderr.decode()}")


def timed(argv: list[str]) -> float:
    t = time.perf_counter()
    run_cmd(argv)
    return time.perf_counter() - t


_libc = None


def _sys_mount(src: str, target: str, fstype: str, data: str) -> None:
    import ctypes
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.mount(src.encode(), target.encode(), fstype.encode(), 0, data.encode()) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), target)


def _sys_umount(target: str) -> None:
    import ctypes
    if _libc.umount2(target.encode(), 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), target)


def _rss_kb(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))


def _shim_pid(exe: Path, root: Path, cid: str) -> int:
    # The shim is the parent of the container's init (its subreaper).
    p = subprocess.run([str(exe), "--root", str(root), "state", cid], capture_output=True, check=True)
    pid = json.loads(p.stdout)["pid"]
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def shim_rss(exe: Path, work: Path, rootfs: Path, cg_parent: str) -> dict:
    """Idle VmRSS (kB) of the shim: plain; with --wait-attach while it waits (container
    created) and once a client is attached (running); and of the --init PID 1."""
    import socket
    root = work / "dy-state"
    out = {}
    bundle = write_bundle(work / "shim", rootfs, docker_config(["sleep", "60"], cgroups_path=f"/{cg_parent}/shim"))
    run_cmd([str(exe), "--root", str(root), "shim", "--bundle", str(bundle), "--id", "rss",
             "--log", str(work / "rss.log"), "--exit-file", str(work / "rss.exit")])
    try:
        time.sleep(0.5)
        out["plain"] = _rss_kb(_shim_pid(exe, root, "rss"))
    finally:
        subprocess.run([str(exe), "--root", str(root), "delete", "-f", "rss"], check=False)
    ann = {"dockyard.init": "true"}
    bundle = write_bundle(work / "shimw", rootfs, docker_config(["sleep", "60"], cgroups_path=f"/{cg_parent}/shimw", annotations=ann))
    sock = work / "rssw.sock"
    run_cmd([str(exe), "--root", str(root), "shim", "--bundle", str(bundle), "--id", "rssw",
             "--log", str(work / "rssw.log"), "--exit-file", str(work / "rssw.exit"),
             "--attach-socket", str(sock), "--wait-attach=60000"])
    s = socket.socket(socket.AF_UNIX)
    try:
        time.sleep(0.5)
        shim = _shim_pid(exe, root, "rssw")
        out["wait_attach_waiting"] = _rss_kb(shim)
        s.connect(str(sock))
        time.sleep(0.5)
        out["wait_attach_attached"] = _rss_kb(shim)
        init = json.loads(subprocess.run([str(exe), "--root", str(root), "state", "rssw"], capture_output=True, check=True).stdout)["pid"]
        out["init_pid1"] = _rss_kb(init)
    finally:
        s.close()
        subprocess.run([str(exe), "--root", str(root), "delete", "-f", "rssw"], check=False)
    return out


def containerd_bench(exe: Path, runc: str, work: Path, rootfs: Path, reps: int) -> dict:
    """Median ms of `ctr run --rm IMAGE ID true` with each runtime (a private containerd)."""
    d = work / "containerd"
    d.mkdir()
    sock = d / "c.sock"
    (d / "config.toml").write_text(f"""version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{d}/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
""")
    log = open(d / "log", "wb")
    proc = subprocess.Popen(["containerd", "--config", str(d / "config.toml")], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    ctr = ["ctr", "--address", str(sock), "--namespace", "bench"]
    try:
        deadline = time.time() + 30
        while subprocess.run(ctr + ["version"], capture_output=True).returncode != 0:
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit(f"containerd did not start: {(d / 'log').read_text()[-1000:]}")
            time.sleep(0.05)
        layout = work / "layout"
        for argv in (["umoci", "init", "--layout", str(layout)], ["umoci", "new", "--image", f"{layout}:latest"],
                     ["umoci", "insert", "--image", f"{layout}:latest", str(rootfs), "/"]):
            subprocess.run(argv, check=True, capture_output=True)
        subprocess.run(["tar", "-C", str(layout), "-cf", str(work / "oci.tar"), "."], check=True)
        run_cmd(ctr + ["image", "import", "--base-name", "docker.io/library/dybench", str(work / "oci.tar")])
        image = "docker.io/library/dybench:latest"
        cmds = {"dockyard": str(exe), "runc": runc}
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for i in range(-1, reps):
            order = list(cmds) if i % 2 == 0 else list(reversed(cmds))
            for k in order:
                t = timed(ctr + ["run", "--rm", "--runc-binary", cmds[k], image, f"{k}-{i + 1}", "true"])
                if i >= 0:  # the first round warms the caches
                    times[k].append(t)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"ctr run --rm of `true` through containerd ({reps} rounds, alternating)")
        for k, v in med.items():
            print(f"  {k:<11} median {v * 1000:7.1f} ms   (min {min(times[k]) * 1000:.1f}, max {max(times[k]) * 1000:.1f})")
        print(f"  ratio dockyard/runc through containerd: {med['dockyard'] / med['runc']:.2f}")
        return {k: round(v * 1000, 2) for k, v in med.items()}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        with open("/proc/self/mountinfo") as f:
            mps = [line.split()[4] for line in f if line.split()[4].startswith(str(d) + "/")]
        for mp in sorted(mps, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 rounds (for CI)")
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--no-containerd", action="store_true", help="skip the run through containerd")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_runtime needs root")
        return 0
    exe = find_binary(REPO)
    if exe is None:
        subprocess.run(["cargo", "build", "-p", "dockyard-runtime", "--release"], cwd=REPO, check=True)
        exe = find_binary(REPO)
    runc = shutil.which("runc")
    reps = 10 if args.quick else args.reps
    cg_parent = f"dockyard-bench-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="dybench-"))
    try:
        rootfs = make_rootfs(work / "rootfs")
        dy_state = work / "dy-state"
        bundles = {}
        for name in ("dy", "rc"):
            bundles[name] = write_bundle(work / name, rootfs, docker_config(["true"], cgroups_path=f"/{cg_parent}/{name}"))
        bundles["init"] = write_bundle(work / "init", rootfs, docker_config(["true"], cgroups_path=f"/{cg_parent}/init",
                                                                           annotations={"dockyard.init": "true"}))
        # Overlay variants: the busybox tree is the one lower layer; root.path starts empty.
        ovb = {}
        for name in ("ov-host", "ov-ns"):
            b = work / name
            b.mkdir()
            (b / "rootfs").mkdir()
            ovb[name] = b
        (ovb["ov-host"] / "config.json").write_text(json.dumps(docker_config(["true"], cgroups_path=f"/{cg_parent}/ovh")))

        def fresh(i: int, name: str) -> tuple[Path, Path]:
            d = work / "ov-dirs" / f"{name}-{i}"
            (d / "upper").mkdir(parents=True)
            (d / "work").mkdir()
            return d / "upper", d / "work"

        def dy_run(bundle: Path, i: int, tag: str) -> list[str]:
            return [str(exe), "--root", str(dy_state), "run", "--bundle", str(bundle), f"{tag}{i}"]

        def ov_host(i: int) -> float:
            upper, wk = fresh(i, "h")
            target = str(ovb["ov-host"] / "rootfs")
            t = time.perf_counter()
            _sys_mount("overlay", target, "overlay", f"lowerdir={rootfs},upperdir={upper},workdir={wk}")
            run_cmd(dy_run(ovb["ov-host"], i, "oh"))
            _sys_umount(target)
            return time.perf_counter() - t

        def ov_ns(i: int) -> float:
            upper, wk = fresh(i, "n")
            cfg = docker_config(["true"], cgroups_path=f"/{cg_parent}/ovn",
                                annotations={"dockyard.rootfs.overlay": json.dumps({"lower": [str(rootfs)], "upper": str(upper), "work": str(wk)})})
            (ovb["ov-ns"] / "config.json").write_text(json.dumps(cfg))
            return timed(dy_run(ovb["ov-ns"], i, "on"))

        cmds = {
            "dockyard": lambda i: timed(dy_run(bundles["dy"], i, "b")),
            "dy+init": lambda i: timed(dy_run(bundles["init"], i, "i")),
            "dy+ov-host": ov_host,
            "dy+ov-ns": ov_ns,
        }
        if runc:
            cmds["runc"] = lambda i: timed([runc, "--root", str(work / "rc-state"), "run", "--bundle", str(bundles["rc"]), f"b{i}"])
        for c in cmds.values():  # warm up caches
            c(-1)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for i in range(reps):
            order = list(cmds) if i % 2 == 0 else list(reversed(cmds))
            for k in order:
                times[k].append(cmds[k](i))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"run of `true` ({exe.parent.name} build, {reps} rounds, alternating)")
        for k, v in med.items():
            print(f"  {k:<11} median {v * 1000:7.1f} ms   (min {min(times[k]) * 1000:.1f}, max {max(times[k]) * 1000:.1f})")
        if "runc" in med:
            print(f"  ratio dockyard/runc: {med['dockyard'] / med['runc']:.2f}  (goal <= 2.0)")
        print(f"  ratio dy+ov-ns/dy+ov-host: {med['dy+ov-ns'] / med['dy+ov-host']:.2f}")
        # What the annotation takes off the engine's own path: the host mount and umount.
        tm, tu = [], []
        target = str(ovb["ov-host"] / "rootfs")
        for i in range(reps):
            upper, wk = fresh(i, "m")
            t = time.perf_counter()
            _sys_mount("overlay", target, "overlay", f"lowerdir={rootfs},upperdir={upper},workdir={wk}")
            t1 = time.perf_counter()
            _sys_umount(target)
            tm.append(t1 - t)
            tu.append(time.perf_counter() - t1)
        print(f"  host overlay alone: mount median {statistics.median(tm) * 1000:.2f} ms, umount median {statistics.median(tu) * 1000:.2f} ms")
        rss = shim_rss(exe, work, rootfs, cg_parent)
        for k, v in rss.items():
            print(f"idle VmRSS {k:<22} {v} kB ({v / 1024:.2f} MB)")
        print("(goal for the shim: <= 3 MB)")
        ctr_ms = None
        if runc and not args.no_containerd and all(shutil.which(p) for p in ("containerd", "ctr", "umoci")):
            ctr_ms = containerd_bench(exe, runc, work, rootfs, reps)
        print(json.dumps({"run_ms": {k: round(v * 1000, 2) for k, v in med.items()}, "rss_kb": rss, "ctr_run_ms": ctr_ms}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for d in Path("/sys/fs/cgroup").glob(f"*/{cg_parent}"):
            for sub in d.glob("*/"):
                try:
                    sub.rmdir()
                except OSError:
                    pass
            try:
                d.rmdir()
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    from support import exit_on_sigterm

    exit_on_sigterm()
    sys.exit(main())
