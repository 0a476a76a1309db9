#!/usr/bin/env python3
"""A thousand idle containers: what they cost the daemon, and what every other command pays.

    python benches/bench_scale.py [--idle N] [--reps N] [--cpu-seconds S] [--no-docker]

The scale issue's goals, measured on one private dockyard daemon (busybox ``sleep`` containers,
``--network none``), with a private dockerd for the figures that compare:

1. Empty engine: ``dockyard ps -q`` and ``dockyard run --rm --network none IMAGE true`` (the
   CLI, end to end; medians of ``--reps``).
2. ``GET /containers/json`` with 100 running containers, requests per second on one kept-alive
   connection: dockyard against dockerd, alternating rounds.  Goal: at least dockerd's rate.
3. Exit to a ``--restart always`` container running again (the ``die`` event to the next
   ``start`` event), median of ``--reps``, both daemons.  Goal: under 20 ms.  (dockerd's restart manager waits 100 ms before a first restart.)
4. ``--idle`` containers running (default 1,000): the daemon's CPU over ``--cpu-seconds``
   (default 60) with nothing happening (goal under 1% of a core); then ``ps -q`` (goal: within
   1.5x the empty engine) and ``run --rm`` (goal: within 1.2x) again; and both side by side
   with a second daemon that stays empty, alternating rounds (the host's own cost of the
   containers, its mount table and tasks, then weighs on both); and ``runc run`` of a bundle
   with the same config.json (``true`` in new namespaces and cgroups, no engine at all), on
   the empty host and again at N: what the N containers cost the kernel, which any engine
   pays (skipped without runc).
5. ``dockyard rm -f`` of all of them in one command (goal: under 10 s).

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
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
from bench_api import DOCKYARD, Conn, compile_package, wait_ready  # noqa: E402
from bench_exit import cpu_seconds  # noqa: E402

IMAGE = "benchbb:1"


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def cli_medians(env: dict, reps: int) -> tuple[float, float]:
    ps = [timed([DOCKYARD, "ps", "-q"], env) for _ in range(reps)]
    run = [timed([DOCKYARD, "run", "--rm", "--network", "none", IMAGE, "true"], env) for _ in range(reps)]
    return statistics.median(ps), statistics.median(run)


def alternating(env_a: dict, env_b: dict, reps: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(ps -q, run --rm) medians of two daemons measured in the same rounds, the first of each
    pair alternating."""
    got: dict[int, tuple[list[float], list[float]]] = {0: ([], []), 1: ([], [])}
    envs = (env_a, env_b)
    for rep in range(reps):
        for k in ((0, 1) if rep % 2 == 0 else (1, 0)):
            got[k][0].append(timed([DOCKYARD, "ps", "-q"], envs[k]))
            got[k][1].append(timed([DOCKYARD, "run", "--rm", "--network", "none", IMAGE, "true"], envs[k]))
    med = {k: (statistics.median(v[0]), statistics.median(v[1])) for k, v in got.items()}
    return med[0], med[1]


def runc_median(bundle: Path | None, state: Path, reps: int) -> float | None:
    """Median wall time of ``runc run`` (create, start, wait, delete) of ``bundle``."""
    if bundle is None:
        return None
    cmd = ["runc", "--root", str(state), "run", "--bundle", str(bundle)]
    return statistics.median(timed([*cmd, f"dybs-{os.getpid()}-{i}"], os.environ.copy()) for i in range(reps))


def start_idle(sock: str, n: int, restart: str = "no") -> list[str]:
    """``n`` running ``sleep`` containers, made over the API from 4 connections at once."""

    local, conns = threading.local(), []

    def one(_: int) -> str:
        if not hasattr(local, "conn"):
            local.conn = Conn(sock)
            conns.append(local.conn)
        c = local.conn
        status, body = c.call("POST", "/v1.41/containers/create", {
            "Image": IMAGE, "Cmd": ["sleep", "86400"],
            "HostConfig": {"NetworkMode": "none", "RestartPolicy": {"Name": restart}}})
        assert status == 201, body
        cid = json.loads(body)["Id"]
        status, body = c.call("POST", f"/v1.41/containers/{cid}/start")
        assert status == 204, body
        return cid

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(one, range(n)))
    for c in conns:
        c.close()
    return ids


def remove_all(sock: str, ids: list[str]) -> None:
    def one(cid: str) -> None:
        c = Conn(sock)
        c.call("DELETE", f"/v1.41/containers/{cid}?force=1")
        c.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, ids))


def list_rate(sock: str, seconds: float = 2.0) -> float:
    c = Conn(sock)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        status, _ = c.call("GET", "/v1.41/containers/json")
        assert status == 200
        n += 1
    c.close()
    return n / (time.perf_counter() - t0)


def restart_latency(sock: str) -> float:
    """Exit to running again, for a ``restart: always`` container whose process exits at once:
    the second ``start`` event's time minus the ``die`` event's (both daemons stamp events in ns)."""
    c = Conn(sock)
    status, body = c.call("POST", "/v1.41/containers/create", {
        "Image": IMAGE, "Cmd": ["sh", "-c", "sleep 0.1"],
        "HostConfig": {"NetworkMode": "none", "RestartPolicy": {"Name": "always"}}})
    assert status == 201, body
    cid = json.loads(body)["Id"]
    try:
        # since= replays what happened after the subscription's start, so no event can be missed
        # whether the daemon sends the stream's headers at once or with the first event
        events = Conn(sock)
        filters = quote(json.dumps({"container": [cid], "event": ["start", "die"]}))
        events.request("GET", f"/v1.41/events?since={int(time.time()) - 1}&filters={filters}")
        assert c.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        resp = events.getresponse()
        seen: list[tuple[str, int]] = []
        while [a for a, _ in seen] != ["start", "die", "start"]:
            line = resp.readline()
            if not line:
                raise RuntimeError("the events stream ended")
            if line.strip():
                ev = json.loads(line)
                seen.append((ev.get("status") or ev.get("Action"), ev["timeNano"]))
        events.close()
        return (seen[2][1] - seen[1][1]) / 1e9
    finally:
        c.call("DELETE", f"/v1.41/containers/{cid}?force=1")
        c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--cpu-seconds", type=float, default=60.0)
    ap.add_argument("--no-docker", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_scale: needs root")
        return 0
    from support import Dockerd, make_busybox_rootfs, tar_dir

    compile_package()

    work = Path(tempfile.mkdtemp(prefix="dybs-", dir="/tmp"))
    env = dict(os.environ, DOCKYARD_ROOT=str(work / "root"), DOCKYARD_RUN=str(work / "run"))
    rootfs = make_busybox_rootfs(work / "rootfs")
    tar = tar_dir(rootfs, work / "bb.tar")
    bundle = None
    if shutil.which("runc"):
        from bench_run import runc_bundle

        for d in ("proc", "dev", "sys"):
            (rootfs / d).mkdir(exist_ok=True)
        bundle = runc_bundle(rootfs, work / "bundle")
    sock = str(work / "run" / "dockyard.sock")
    env["DOCKER_HOST"] = f"unix://{sock}"
    daemon = subprocess.Popen([DOCKYARD, "daemon", "-H", f"unix://{sock}"], env=env, stderr=subprocess.DEVNULL)
    # a second daemon that stays empty: measured in the same rounds as the loaded one, so machine
    # drift between the first figures and the last does not pass for the engine's scaling
    env0 = dict(os.environ, DOCKYARD_ROOT=str(work / "root0"), DOCKYARD_RUN=str(work / "run0"))
    sock0 = str(work / "run0" / "dockyard.sock")
    daemon0 = subprocess.Popen([DOCKYARD, "daemon", "-H", f"unix://{sock0}"], env=env0, stderr=subprocess.DEVNULL)
    dockerd = None
    ids: list[str] = []
    try:
        wait_ready(sock, daemon)
        wait_ready(sock0, daemon0)
        for e in (env, env0):
            subprocess.run([DOCKYARD, "import", "-c", 'CMD ["/bin/sh"]', str(tar), IMAGE], env=e, check=True,
                           stdout=subprocess.DEVNULL)
        if not args.no_docker and shutil.which("dockerd"):
            dockerd = Dockerd(work / "docker")
            dockerd.start()
            dockerd.docker("import", "-c", 'CMD ["/bin/sh"]', str(tar), IMAGE)

        ps0, run0 = cli_medians(env, args.reps)
        runc0 = runc_median(bundle, work / "runc", args.reps)
        print(f"empty engine: ps -q {ps0 * 1000:.1f} ms, run --rm --network none true {run0 * 1000:.1f} ms "
              f"(medians of {args.reps})" + ("" if runc0 is None else f"; runc run alone {runc0 * 1000:.1f} ms"))

        ours_restart, theirs_restart = [], []
        for _ in range(args.reps):
            ours_restart.append(restart_latency(sock))
            if dockerd:
                theirs_restart.append(restart_latency(str(dockerd.sock)))
        line = f"exit -> running again (restart always): dockyard {statistics.median(ours_restart) * 1000:.1f} ms"
        if theirs_restart:
            line += f", dockerd {statistics.median(theirs_restart) * 1000:.1f} ms"
        print(line + f" (median of {args.reps}; goal: under 20 ms)")

        ids = start_idle(sock, min(100, args.idle))
        theirs_ids = start_idle(str(dockerd.sock), 100) if dockerd else []
        ours_rate, theirs_rate = [], []
        for _ in range(3):
            ours_rate.append(list_rate(sock))
            if dockerd:
                theirs_rate.append(list_rate(str(dockerd.sock)))
        line = f"GET /containers/json, 100 running: dockyard {statistics.median(ours_rate):.0f}/s"
        if theirs_rate:
            line += (f", dockerd {statistics.median(theirs_rate):.0f}/s "
                     f"(ratio {statistics.median(ours_rate) / statistics.median(theirs_rate):.2f}; goal: at least 1)")
        print(line)
        if dockerd:
            remove_all(str(dockerd.sock), theirs_ids)
            dockerd.stop()
            dockerd = None

        t0 = time.perf_counter()
        ids += start_idle(sock, args.idle - len(ids))
        print(f"{args.idle} containers started in {time.perf_counter() - t0:.1f} s")
        time.sleep(2)  # let the start-up settle before measuring the quiet
        before, t0 = cpu_seconds([daemon.pid]), time.monotonic()
        time.sleep(args.cpu_seconds)
        share = (cpu_seconds([daemon.pid]) - before) / (time.monotonic() - t0)
        print(f"daemon CPU with {args.idle} idle containers over {args.cpu_seconds:.0f} s: "
              f"{share * 100:.2f}% of a core (goal: under 1%)")

        ps1, run1 = cli_medians(env, args.reps)
        runc1 = runc_median(bundle, work / "runc", args.reps)
        print(f"{args.idle} idle: ps -q {ps1 * 1000:.1f} ms ({ps1 / ps0:.2f}x empty; goal 1.5x), "
              f"run --rm {run1 * 1000:.1f} ms ({run1 / run0:.2f}x empty; goal 1.2x)")
        if runc0 is not None and runc1 is not None:
            print(f"  runc run alone, no engine: {runc1 * 1000:.1f} ms ({runc1 / runc0:.2f}x its time on the empty "
                  f"host): what the containers cost a runtime with no engine")
        (pe, re_), (pl, rl) = alternating(env0, env, args.reps)
        print(f"  side by side, alternating rounds with an empty daemon on the same host (the host's cost "
              f"of {args.idle} containers on both): ps -q {pl * 1000:.1f} / {pe * 1000:.1f} ms = {pl / pe:.2f}x, "
              f"run --rm {rl * 1000:.1f} / {re_ * 1000:.1f} ms = {rl / re_:.2f}x")

        t0 = time.perf_counter()
        subprocess.run([DOCKYARD, "rm", "-f", *ids], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"rm -f of {len(ids)} containers: {time.perf_counter() - t0:.1f} s (goal: under 10 s)")
        ids = []
    finally:
        if ids:
            remove_all(sock, ids)
        for d in (daemon, daemon0):
            d.terminate()
            d.wait(60)
        if dockerd:
            dockerd.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from support import exit_on_sigterm

    exit_on_sigterm()
    sys.exit(main())
