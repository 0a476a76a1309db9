#!/usr/bin/env python3
"""Dockerfile builds side by side with a real dockerd's classic builder, alternating.

    python benches/bench_build.py [--reps N] [--no-docker]

One 2-stage, 20-instruction Dockerfile (RUN, COPY, COPY --from, ENV, ARG, WORKDIR, LABEL...)
on a busybox base imported into both engines from the same tar, built through each CLI:

* uncached: ``dockyard build --no-cache`` against ``DOCKER_BUILDKIT=0 docker build --no-cache
  --network none``;
* cached: the same build again with the cache warm (every step a hit).

Medians and ratios (dockyard / docker); the goal is at most 0.5 for each.  Needs root.
Machines here are shared and noisy: read the ratios.
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


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


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
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_build: needs root")
        return 0
    from support import Dockerd, make_busybox_rootfs, stop_daemon, tar_dir

    # An installed package has its bytecode compiled; a checkout run with PYTHONDONTWRITEBYTECODE
    # would recompile dockyard's modules on every CLI call and measure the compiler.
    import compileall

    compileall.compile_dir(str(HERE.parent / "python" / "dockyard"), quiet=2)
    work = Path(tempfile.mkdtemp(prefix="dybb-", dir="/tmp"))
    env = dict(os.environ, DOCKYARD_ROOT=str(work / "root"), DOCKYARD_RUN=str(work / "run"))
    docker = None
    try:
        rootfs = make_busybox_rootfs(work / "rootfs")
        tar = tar_dir(rootfs, work / "base.tar")
        ctx = work / "ctx"
        make_context(ctx)
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
        results: dict[str, dict[str, list[float]]] = {n: {"uncached": [], "cached": []} for n in contenders}
        # Uncached first, then cached: a --no-cache build re-points Docker's classic cache (its next
        # "cached" build misses half the steps), so the two phases are not interleaved.
        for mode in ("uncached", "cached"):
            for fns in contenders.values():  # warm up (and fill the caches)
                fns[mode]()
            for _ in range(args.reps):
                for name, fns in contenders.items():
                    results[name][mode].append(fns[mode]())
        # The builder's own cost, without the CLI's start-up (Python, click, the engine's imports)
        inproc = subprocess.run([sys.executable, "-c", INPROC, str(ctx)], env=env, check=True, capture_output=True,
                                text=True).stdout.split()
        startup = [timed([DOCKYARD, "--version"], env) for _ in range(args.reps)]
        print(f"2-stage, 20-instruction Dockerfile, {args.reps} reps, alternating; medians in seconds")
        for mode in ("uncached", "cached"):
            line = f"  {mode:9s}"
            for name in contenders:
                line += f"  {name} {statistics.median(results[name][mode]):.3f}"
            if "docker" in contenders:
                ratio = statistics.median(results["dockyard"][mode]) / statistics.median(results["docker"][mode])
                line += f"  ratio {ratio:.2f} (goal <= 0.5)"
            print(line)
        print(f"  in-process cached build (dockyard.build.Builder, no CLI): {float(inproc[0]):.3f}")
        print(f"  CLI start-up floor (dockyard --version): {statistics.median(startup):.3f}")
    finally:
        stop_daemon(work / "run", work / "root")  # the daemon the first command started
        if docker is not None:
            docker.stop()
        for line in Path("/proc/self/mounts").read_text().splitlines():
            mnt = line.split()[1]
            if mnt.startswith(str(work)):
                subprocess.run(["umount", "-l", mnt], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
