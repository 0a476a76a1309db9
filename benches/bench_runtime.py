#!/usr/bin/env python3
"""`dockyard-runtime run` against `runc run`, alternating, in one run; and the idle shim's RSS.

    python benches/bench_runtime.py [--quick] [--reps N]

Both runtimes run the same Docker-like bundle (namespaces mount/pid/uts/ipc/net, Docker's mounts,
masked and read-only paths, capabilities, a cgroup) whose process is `true`; each round runs
one then the other (order alternating), each with a fresh container id, `run` in the foreground
(create + start + wait + delete). Prints the median wall time of each and the ratio
dockyard / runc (goal: <= 2.0). Then starts `dockyard-runtime shim` on a `sleep` container and
reads the shim's VmRSS from /proc (goal: <= 3 MB; conmon is about 1.9 MB). Needs root.
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

from bundle import busybox_rootfs, docker_config, find_binary, write_bundle  # noqa: E402


def make_rootfs(root: Path) -> Path:
    return busybox_rootfs(root)


def timed(argv: list[str]) -> float:
    t = time.perf_counter()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({p.returncode}): {p.stderr.decode()}")
    return dt


def shim_rss(exe: Path, work: Path, rootfs: Path, cg_parent: str) -> int:
    bundle = write_bundle(work / "shim", rootfs, docker_config(["sleep", "60"], cgroups_path=f"/{cg_parent}/shim"))
    root = work / "dy-state"
    p = subprocess.run([str(exe), "--root", str(root), "shim", "--bundle", str(bundle), "--id", "rss",
                        "--log", str(work / "rss.log"), "--exit-file", str(work / "rss.exit")],
                       capture_output=True, check=True)
    pid = int(p.stdout)
    try:
        shim = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        time.sleep(0.5)
        return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{shim}/status").read_text()).group(1))
    finally:
        subprocess.run([str(exe), "--root", str(root), "delete", "-f", "rss"], check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 rounds (for CI)")
    ap.add_argument("--reps", type=int, default=40)
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
        bundles = {}
        for name in ("dy", "rc"):
            bundles[name] = write_bundle(work / name, rootfs, docker_config(["true"], cgroups_path=f"/{cg_parent}/{name}"))
        cmds = {
            "dockyard": lambda i: [str(exe), "--root", str(work / "dy-state"), "run", "--bundle", str(bundles["dy"]), f"b{i}"],
        }
        if runc:
            cmds["runc"] = lambda i: [runc, "--root", str(work / "rc-state"), "run", "--bundle", str(bundles["rc"]), f"b{i}"]
        for c in cmds.values():  # warm up caches
            timed(c(-1))
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for i in range(reps):
            order = list(cmds) if i % 2 == 0 else list(reversed(cmds))
            for k in order:
                times[k].append(timed(cmds[k](i)))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"run of `true` ({exe.parent.name} build, {reps} rounds, alternating)")
        for k, v in med.items():
            print(f"  {k:<9} median {v * 1000:7.1f} ms   (min {min(times[k]) * 1000:.1f}, max {max(times[k]) * 1000:.1f})")
        if "runc" in med:
            print(f"  ratio dockyard/runc: {med['dockyard'] / med['runc']:.2f}  (goal <= 2.0)")
        rss = shim_rss(exe, work, rootfs, cg_parent)
        print(f"idle shim VmRSS: {rss} kB ({rss / 1024:.2f} MB; goal <= 3 MB)")
        print(json.dumps({"run_ms": {k: round(v * 1000, 2) for k, v in med.items()}, "shim_rss_kb": rss}))
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
    sys.exit(main())
