#!/usr/bin/env python3
"""Exit to ``wait`` returning, and the daemon's idle CPU with running containers: dockyard's
daemon against a private dockerd, alternating, the same busybox image on both sides.

    python benches/bench_exit.py [--reps N] [--idle N] [--no-docker]

1. A container runs ``sleep 0.2``; ``POST /containers/{id}/wait`` is blocked on it.  The latency
   is the wall time the wait returned minus ``State.FinishedAt``, which both daemons take from
   the supervisor's (containerd's shim's) reap of the process.  Goal: under 20 ms (median).
2. ``--idle N`` containers running ``sleep``: the daemon's CPU over 10 s with nothing happening
   (utime+stime from /proc).  Goal: under 1% of a core.

Needs root.  Machines here are shared and noisy: read the medians.
"""

from __future__ import annotations

import argparse
import json
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
sys.path.insert(0, str(HERE))
from bench_api import DOCKYARD, Conn, wait_ready  # noqa: E402


def parse_time(value: str) -> float:
    sys.path.insert(0, str(HERE.parent / "python"))
    from dockyard.engine.images import parse_time as parse

    return parse(value)


def exit_latency(sock: str, image: str) -> float:
    c = Conn(sock)
    status, body = c.call("POST", "/containers/create", {"Image": image, "Cmd": ["sleep", "0.2"],
                                                         "HostConfig": {"NetworkMode": "none"}})
    assert status == 201, body
    cid = json.loads(body)["Id"]
    try:
        assert c.call("POST", f"/containers/{cid}/start")[0] == 204
        waiter = Conn(sock)
        status, body = waiter.call("POST", f"/containers/{cid}/wait")
        returned = time.time()
        assert status == 200, body
        finished = parse_time(json.loads(c.call("GET", f"/containers/{cid}/json")[1])["State"]["FinishedAt"])
        return returned - finished
    finally:
        c.call("DELETE", f"/containers/{cid}?force=1")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def idle_cpu(sock: str, image: str, n: int, pids: list[int]) -> float:
    c = Conn(sock)
    ids = []
    try:
        for _ in range(n):
            status, body = c.call("POST", "/containers/create", {"Image": image, "Cmd": ["sleep", "3600"],
                                                                 "HostConfig": {"NetworkMode": "none"}})
            ids.append(json.loads(body)["Id"])
            c.call("POST", f"/containers/{ids[-1]}/start")
        time.sleep(2)
        before, t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(10)
        return (cpu_seconds(pids) - before) / (time.monotonic() - t0)
    finally:
        for cid in ids:
            c.call("DELETE", f"/containers/{cid}?force=1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--idle", type=int, default=100)
    ap.add_argument("--no-docker", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_exit: needs root")
        return 0
    from support import Dockerd, make_busybox_rootfs, tar_dir

    work = Path(tempfile.mkdtemp(prefix="dybe-", dir="/tmp"))
    env = dict(os.environ, DOCKYARD_ROOT=str(work / "root"), DOCKYARD_RUN=str(work / "run"))
    tar = tar_dir(make_busybox_rootfs(work / "rootfs"), work / "bb.tar")
    sock = str(work / "run" / "dockyard.sock")
    daemon = subprocess.Popen([DOCKYARD, "daemon", "-H", f"unix://{sock}"], env=env, stderr=subprocess.DEVNULL)
    dockerd = None
    try:
        wait_ready(sock, daemon)
        subprocess.run([DOCKYARD, "import", "-c", 'CMD ["/bin/sh"]', str(tar), "benchbb:1"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        if not args.no_docker and shutil.which("dockerd"):
            dockerd = Dockerd(work / "docker")
            dockerd.start()
            dockerd.docker("import", "-c", 'CMD ["/bin/sh"]', str(tar), "benchbb:1")
        ours, theirs = [], []
        for _ in range(args.reps):
            ours.append(exit_latency(sock, "benchbb:1"))
            if dockerd:
                theirs.append(exit_latency(str(dockerd.sock), "benchbb:1"))
        line = f"exit -> wait returns: dockyard {statistics.median(ours) * 1000:.1f} ms (median of {args.reps})"
        if theirs:
            line += f", dockerd {statistics.median(theirs) * 1000:.1f} ms"
        print(line + " (goal: under 20 ms)")
        if args.idle:
            share = idle_cpu(sock, "benchbb:1", args.idle, [daemon.pid])
            print(f"dockyard daemon CPU with {args.idle} idle containers: {share * 100:.2f}% of a core (goal: under 1%)")
    finally:
        daemon.terminate()
        daemon.wait(30)
        if dockerd:
            dockerd.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from support import exit_on_sigterm

    exit_on_sigterm()
    sys.exit(main())
