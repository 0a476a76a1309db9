#!/usr/bin/env python3
"""A 200 MB image's first container under user namespace remapping: dockyard against dockerd,
both started with ``--userns-remap default``, side by side and alternating.

    python benches/bench_userns.py [--rounds N] [--files N] [--file-kb N]

Each round, per engine: ``import`` the image's tar (busybox and N files of K kB: 10,000 x 20 kB
by default), then ``run --rm --network none IMAGE true``, timed apart and together (dockerd
extracts a remapped daemon's layers with the remapped owners, a chown of every file; dockyard
extracts them as they are and gives the container an idmapped view), then ``run`` again (a
warm start), then ``rmi`` so the next round extracts afresh.  Medians of the rounds and their
ratios.

Needs root, dockerd and idmapped mounts.  /etc's passwd, group, subuid and subgid are put back
as they were (both daemons add ``dockremap``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

DOCKYARD = str(Path(sys.executable).with_name("dockyard"))


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def make_tar(work: Path, files: int, kb: int) -> Path:
    from support import make_busybox_rootfs, tar_dir

    root = make_busybox_rootfs(work / "rootfs")
    for d in ("proc", "dev", "sys"):
        (root / d).mkdir(exist_ok=True)
    data = root / "data"
    block = os.urandom(kb * 1024)
    for i in range(files):
        sub = data / f"{i // 1000:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}").write_bytes(block[i % 997:] + block[:i % 997])
    return tar_dir(root, work / "big.tar")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--file-kb", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_userns: needs root")
        return 0
    if not shutil.which("dockerd"):
        print("bench_userns: dockerd is not installed")
        return 0
    from support import Dockerd, SavedEtcIds, start_dockyard_daemon, stop_daemon

    work = Path(tempfile.mkdtemp(prefix="dyus-", dir="/tmp"))
    os.chmod(work, 0o711)  # the remapped roots reach their daemons' data roots through it
    env = dict(os.environ, DOCKYARD_ROOT=str(work / "root"), DOCKYARD_RUN=str(work / "run"))
    etc = SavedEtcIds()
    etc.save()
    docker = None
    try:
        tar = make_tar(work, args.files, args.file_kb)
        size = tar.stat().st_size
        start_dockyard_daemon(env, "--userns-remap", "default")
        docker = Dockerd(work / "d", args=("--userns-remap", "default"))
        docker.start()
        sides = {
            "dockyard": (lambda *a: [DOCKYARD, *a], env),
            "docker": (lambda *a: ["docker", *a], docker.env),
        }
        first: dict[str, list[float]] = {k: [] for k in sides}
        warm: dict[str, list[float]] = {k: [] for k in sides}
        first_run: dict[str, list[float]] = {k: [] for k in sides}
        for rnd in range(args.rounds):
            for name in (list(sides) if rnd % 2 == 0 else list(reversed(sides))):
                cmd, e = sides[name]
                t = timed(cmd("import", str(tar), "big"), e)
                started = timed(cmd("run", "--rm", "--network", "none", "big", "true"), e)
                first[name].append(t + started)
                first_run[name].append(started)
                warm[name].append(timed(cmd("run", "--rm", "--network", "none", "big", "true"), e))
                subprocess.run(cmd("rmi", "big"), check=True, env=e, stdout=subprocess.DEVNULL)
        f = {k: statistics.median(v) for k, v in first.items()}
        w = {k: statistics.median(v) for k, v in warm.items()}
        print(f"{args.files} files of {args.file_kb} kB ({size / 1e6:.0f} MB tar), both daemons --userns-remap "
              f"default, medians of {args.rounds} alternating rounds:")
        r = {k: statistics.median(v) for k, v in first_run.items()}
        for k in sides:
            print(f"  {k:<9} import + first run {f[k]:6.2f} s (the run {r[k] * 1000:6.1f} ms)   "
                  f"warm run {w[k] * 1000:6.1f} ms")
        print(f"  dockyard/docker: import + first run {f['dockyard'] / f['docker']:.2f}x, first run "
              f"{r['dockyard'] / r['docker']:.2f}x, warm run {w['dockyard'] / w['docker']:.2f}x")
    finally:
        stop_daemon(work / "run", work / "root")
        if docker is not None:
            docker.stop()
        etc.restore()
        subprocess.run(["umount", "-R", str(work)], stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from support import exit_on_sigterm

    exit_on_sigterm()
    sys.exit(main())
