#!/usr/bin/env python3
"""The daemon against a real dockerd, alternating, same busybox image on both sides.

    python benches/bench_api.py [--reps N] [--requests N] [--no-docker]

1. ``docker run --rm --network none IMAGE true`` (the real docker CLI, end to end) through
   dockyard's daemon and through a private dockerd (+ containerd): medians and the ratio.
   The issue's goal: at most 0.20 x Docker's time.
2. API requests per second on one kept-alive connection: ``GET /containers/json`` (10
   containers present) and ``create + start + wait + delete``.
3. Idle memory: the daemon's resident set (VmRSS) after start-up and after the runs, against
   dockerd + containerd.  Goal: at most 50 MB (dockerd + containerd: about 130 MB here).

Needs root.  Machines here are shared and noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
DOCKYARD = str(Path(sys.executable).with_name("dockyard"))


def compile_package() -> None:
    """Byte-compile dockyard's modules, as an installed package has them: a checkout run with
    PYTHONDONTWRITEBYTECODE would recompile them at every CLI call and measure the compiler."""
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "python" / "dockyard"), quiet=2)


class Conn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)

    def call(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        self.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        resp = self.getresponse()
        return resp.status, resp.read()


def wait_ready(sock: str, daemon: subprocess.Popen) -> None:
    """Until the daemon answers /_ping on ``sock`` (so the CLI finds it rather than starting one)."""
    while True:
        try:
            Conn(sock).call("GET", "/_ping")
            return
        except OSError:
            if daemon.poll() is not None:
                raise RuntimeError("the dockyard daemon did not start") from None
            time.sleep(0.01)


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    parents[int(entry.name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out


def docker(sock: str, *args: str) -> float:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    t0 = time.perf_counter()
    subprocess.run(["docker", *args], check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def api_rates(sock: str, image: str, n: int) -> tuple[float, float]:
    c = Conn(sock)
    made = []
    for _ in range(10):
        code, raw = c.call("POST", "/v1.41/containers/create", {"Image": image, "Cmd": ["true"]})
        made.append(json.loads(raw)["Id"])
    t0 = time.perf_counter()
    for _ in range(n):
        assert c.call("GET", "/v1.41/containers/json?all=1")[0] == 200
    ls_rate = n / (time.perf_counter() - t0)
    for cid in made:
        c.call("DELETE", f"/v1.41/containers/{cid}")
    m = max(3, n // 10)
    t0 = time.perf_counter()
    for _ in range(m):
        code, raw = c.call("POST", "/v1.41/containers/create",
                           {"Image": image, "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}})
        assert code == 201, raw
        cid = json.loads(raw)["Id"]
        assert c.call("POST", f"/v1.41/containers/{cid}/start")[0] == 204
        assert c.call("POST", f"/v1.41/containers/{cid}/wait")[0] == 200
        assert c.call("DELETE", f"/v1.41/containers/{cid}")[0] == 204
    lifecycle_rate = m / (time.perf_counter() - t0)
    c.close()
    return ls_rate, lifecycle_rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--no-docker", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_api: needs root")
        return 0
    from support import Dockerd, make_busybox_rootfs, tar_dir

    work = Path(tempfile.mkdtemp(prefix="dyba-", dir="/tmp"))
    env = dict(os.environ, DOCKYARD_ROOT=str(work / "root"), DOCKYARD_RUN=str(work / "run"))
    tar = tar_dir(make_busybox_rootfs(work / "rootfs"), work / "bb.tar")
    sock = str(work / "run" / "dockyard.sock")
    t_start = time.perf_counter()
    daemon = subprocess.Popen([DOCKYARD, "daemon", "-H", f"unix://{sock}"], env=env, stderr=subprocess.DEVNULL)
    dockerd = None
    try:
        wait_ready(sock, daemon)
        boot = time.perf_counter() - t_start
        subprocess.run([DOCKYARD, "import", "-c", 'CMD ["/bin/sh"]', str(tar), "benchbb:1"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        time.sleep(1.0)
        idle_rss = rss_kb(daemon.pid)
        print(f"dockyard daemon: ready in {boot * 1000:.0f} ms, idle RSS {idle_rss / 1024:.1f} MB")
        if not args.no_docker and shutil.which("dockerd"):
            dockerd = Dockerd(work / "docker")
            dockerd.start()
            dockerd.docker("import", "-c", 'CMD ["/bin/sh"]', str(tar), "benchbb:1")
            time.sleep(1.0)
            tree = [dockerd.proc.pid] + descendants(dockerd.proc.pid)
            d_rss = sum(rss_kb(p) for p in tree)
            print(f"private dockerd + its containerd: idle RSS {d_rss / 1024:.1f} MB")
        # 1. docker run --rm, alternating
        ours, theirs = [], []
        run_args = ("run", "--rm", "--network", "none", "benchbb:1", "true")
        docker(sock, *run_args)  # warm
        if dockerd:
            docker(str(dockerd.sock), *run_args)
        for _ in range(args.reps):
            ours.append(docker(sock, *run_args))
            if dockerd:
                theirs.append(docker(str(dockerd.sock), *run_args))
        mo = statistics.median(ours)
        line = f"docker run --rm true: dockyard daemon {mo * 1000:.0f} ms"
        if theirs:
            mt = statistics.median(theirs)
            line += f", dockerd {mt * 1000:.0f} ms, ratio {mo / mt:.2f}x (goal <= 0.20x)"
        print(line)
        # 2. API rates
        ls, life = api_rates(sock, "benchbb:1", args.requests)
        line = f"GET /containers/json: dockyard {ls:.0f} req/s; create+start+wait+delete: dockyard {life:.1f}/s"
        if dockerd:
            dls, dlife = api_rates(str(dockerd.sock), "benchbb:1", args.requests)
            line += (f"\n  dockerd: {dls:.0f} req/s, {dlife:.1f}/s  (ratios: {ls / dls:.2f}x, {life / dlife:.2f}x"
                     " faster is > 1)")
        print(line)
        print(f"dockyard daemon RSS after the runs: {rss_kb(daemon.pid) / 1024:.1f} MB")
    finally:
        if daemon.poll() is None:
            left = subprocess.run([DOCKYARD, "ps", "-aq"], env=env, capture_output=True, text=True).stdout.split()
            if left:
                subprocess.run([DOCKYARD, "rm", "-f", *left], env=env, capture_output=True)
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
