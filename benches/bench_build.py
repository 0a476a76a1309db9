#!/usr/bin/env python3
"""Dockerfile builds side by side with a real dockerd's classic builder, alternating.

    python benches/bench_build.py [--reps N] [--no-docker] [--cached-only]

One 2-stage, 20-instruction Dockerfile (RUN, COPY, COPY --from, ENV, ARG, WORKDIR, LABEL...)
on a busybox base imported into both engines from the same tar, built through each CLI and
its daemon (``dockyard build`` against ``dockyard daemon``, ``DOCKER_BUILDKIT=0 docker build``
against a private dockerd of its own):

* uncached: ``dockyard build --no-cache`` against ``docker build --no-cache --network none``;
* cached: the same build again with the cache warm.  Every timed run is checked to be a full
  hit (each of the 17 steps after the FROMs reported as cached, the same image ID as the
  warm-up), so a cache that quietly missed cannot make a number.

Medians and ratios (dockyard / docker); the goal is at most 0.5 for each.  Needs root.
Machines here are shared and noisy: read the ratios (the spread and the load are printed).
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

DOCKERFILE = """\
ARG BASE=bench:base
FROM ${BASE} AS build
ARG VERSION=1.0
ENV APP=/app STAGE=build
WORKDIR /src
COPY src/ /src/
RUN mkdir -p /out && cat /src/*.txt > /out/all.txt
RUN echo "version $VERSION" > /out/version && ls -l /out
COPY config.ini /out/
RUN wc -c /out/all.txt > /out/size

FROM ${BASE}
ARG VERSION=1.0
LABEL org.example.version=$VERSION org.example.stage=final
ENV APP=/app PATH=/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /app
COPY --from=build /out/ /app/data/
RUN mkdir -p /app/bin && echo '#!/bin/sh' > /app/bin/hello && chmod +x /app/bin/hello
EXPOSE 8080
USER nobody
CMD ["/app/bin/hello"]
"""


INPROC = """
import statistics, sys, time
from pathlib import Path
from dockyard import Engine
from dockyard.build import Builder, BuildOptions
ctx = Path(sys.argv[1])
engine = Engine()
times = []
for _ in range(5):
    t0 = time.perf_counter()
    Builder(engine, BuildOptions(ctx, (ctx / "Dockerfile").read_bytes(), tags=["bench:out"])).build()
    times.append(time.perf_counter() - t0)
print(statistics.median(times))
"""


# Each CLI call is killed (SIGKILL: not forwarded by the docker CLI) if it hangs.
KILL_AFTER = ["timeout", "-s", "KILL", "300"]
CACHED_STEPS = 17  # 19 build steps, less the two FROMs
MARKS = {"dockyard": " CACHED", "docker": " ---> Using cache"}
ID_LINE = {"dockyard": "Successfully built ", "docker": "Successfully built "}


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(KILL_AFTER + cmd, check=True, stdout=subprocess.PIPE, env=env)
    return time.perf_counter() - t0, proc.stdout.decode(errors="replace")


def image_id(name: str, out: str) -> str:
    for line in out.splitlines():
        if line.startswith(ID_LINE[name]):
            return line[len(ID_LINE[name]):].strip()
    raise SystemExit(f"bench_build: {name} printed no image ID:\n{out}")


def check_cached(name: str, out: str, want_id: str) -> None:
    """A cached run must hit every step and give the warm-up's image."""
    hits = sum(1 for line in out.splitlines() if line.rstrip() == MARKS[name].rstrip())
    if hits != CACHED_STEPS or image_id(name, out) != want_id:
        raise SystemExit(f"bench_build: {name}'s cached build was not a full hit ({hits}/{CACHED_STEPS} steps, "
                         f"image {image_id(name, out)} not {want_id}):\n{out}")


def make_context(ctx: Path) -> None:
    (ctx / "src").mkdir(parents=True)
    for i in range(30):
        (ctx / "src" / f"f{i:02d}.txt").write_text(f"file {i}\n" * 50)
    (ctx / "config.ini").write_text("[app]\nkey=value\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--cached-only", action="store_true", help="only the cached rebuilds (the issue's goal)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_build: needs root")
        return 0
    from support import Dockerd, make_busybox_rootfs, stop_daemon, tar_dir

    from bench_api import compile_package

    compile_package()
    work = Path(tempfile.mkdtemp(prefix="dybb-", dir="/tmp"))
    env = dict(os.environ, DOCKYARD_ROOT=str(work / "root"), DOCKYARD_RUN=str(work / "run"))
    docker = None
    daemon = None
    try:
        rootfs = make_busybox_rootfs(work / "rootfs")
        tar = tar_dir(rootfs, work / "base.tar")
        ctx = work / "ctx"
        make_context(ctx)
        assert sum(1 for line in DOCKERFILE.splitlines() if line.strip()) == 20
        # dockyard's daemon, started here (not on demand by the first CLI call): every build
        # below goes through it, as docker's go through dockerd
        (work / "run").mkdir()
        daemon_log = open(work / "run" / "bench-daemon.log", "wb")
        daemon = subprocess.Popen([DOCKYARD, "daemon"], env=env, stdout=daemon_log, stderr=subprocess.STDOUT)
        sock = work / "run" / "dockyard.sock"
        for _ in range(300):
            if sock.exists() or daemon.poll() is not None:
                break
            time.sleep(0.1)  # (set-up, not measured)
        if not sock.exists():
            raise SystemExit("bench_build: dockyard daemon did not start: " +
                             (work / "run" / "bench-daemon.log").read_text()[-2000:])
        subprocess.run([DOCKYARD, "import", "-c", 'CMD ["/bin/sh"]', str(tar), "bench:base"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        contenders = {
            "dockyard": {
                "uncached": lambda: timed([DOCKYARD, "build", "--no-cache", "-t", "bench:out", str(ctx)], env),
                "cached": lambda: timed([DOCKYARD, "build", "-t", "bench:out", str(ctx)], env),
            },
        }
        if not args.no_docker and shutil.which("dockerd") and shutil.which("docker"):
            docker = Dockerd(work / "docker")
            docker.start()
            denv = dict(docker.env, DOCKER_BUILDKIT="0")
            docker.docker("import", "-c", 'CMD ["/bin/sh"]', str(tar), "bench:base")
            base = ["docker", "build", "--network", "none", "-t", "bench:out"]
            contenders["docker"] = {
                "uncached": lambda: timed(base + ["--no-cache", str(ctx)], denv),
                "cached": lambda: timed(base + [str(ctx)], denv),
            }
        modes = ("cached",) if args.cached_only else ("uncached", "cached")
        results: dict[str, dict[str, list[float]]] = {n: {m: [] for m in modes} for n in contenders}
        load = [os.getloadavg()[0]]
        # Uncached first, then cached: a --no-cache build re-points Docker's classic cache (its next
        # "cached" build misses half the steps), so the two phases are not interleaved.
        for mode in modes:
            want: dict[str, str] = {}
            for name, fns in contenders.items():  # warm up (and fill the caches)
                if mode == "cached":
                    fns[mode]()  # (a first cached build after --no-cache ones may still miss)
                want[name] = image_id(name, fns[mode]()[1])
            for _ in range(args.reps):
                for name, fns in contenders.items():
                    took, out = fns[mode]()
                    if mode == "cached":
                        check_cached(name, out, want[name])
                    results[name][mode].append(took)
            load.append(os.getloadavg()[0])
        # The builder's own cost, without the CLI's start-up (Python, click, the engine's imports)
        inproc = subprocess.run([sys.executable, "-c", INPROC, str(ctx)], env=env, check=True, capture_output=True,
                                text=True).stdout.split()
        startup = [timed([sys.executable, "-c", "pass"], env)[0] for _ in range(args.reps)]
        print(f"2-stage, 20-instruction Dockerfile through each CLI and daemon, {args.reps} runs each, "
              f"alternating; medians in seconds [min-max]; load average {min(load):.2f}-{max(load):.2f} on "
              f"{os.cpu_count()} CPUs")
        for mode in modes:
            line = f"  {mode:9s}"
            for name in contenders:
                r = results[name][mode]
                line += f"  {name} {statistics.median(r):.3f} [{min(r):.3f}-{max(r):.3f}]"
            if "docker" in contenders:
                ratio = statistics.median(results["dockyard"][mode]) / statistics.median(results["docker"][mode])
                line += f"  ratio {ratio:.2f} (goal <= 0.5)"
            print(line)
        print(f"  in-process cached build (dockyard.build.Builder, no CLI, no daemon): {float(inproc[0]):.3f}")
        print(f"  Python's own start-up (python -c pass): {statistics.median(startup):.3f}")
    finally:
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        stop_daemon(work / "run", work / "root")  # (one a CLI call started, if ours died)
        if docker is not None:
            docker.stop()
        for line in Path("/proc/self/mounts").read_text().splitlines():
            mnt = line.split()[1]
            if mnt.startswith(str(work)):
                subprocess.run(["umount", "-l", mnt], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from support import exit_on_sigterm

    exit_on_sigterm()
    sys.exit(main())
