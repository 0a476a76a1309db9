#!/usr/bin/env python3
"""Registry pull and push, side by side with their peers, alternating, in one run.

    python benches/bench_pull.py [--reps N] [--skip-docker]

Image: a Debian minbase rootfs (debootstrap; the gzip layer cached at
benches/.cache/debian-minbase.tar.gz, made by bench_import.py --debian), imported into dockyard
and pushed to a CNCF distribution registry (Debian's docker-registry) on 127.0.0.1.

Pull contenders, each into fresh storage, from the same registry, alternating:
  dockyard      `dockyard pull` (the CLI) into a fresh root: download, verify, extract, register
  docker        `docker pull` by a private dockerd 20.10 (overlay2), the image removed between runs
  podman        `podman pull` into a fresh --root (overlay), reset between runs
  skopeo+umoci  `skopeo copy docker://… oci:DIR` then `umoci unpack` (a runtime bundle)
Push contenders, each into a freshly started, empty registry:
  dockyard      `dockyard push` (of the gzip its first push made and kept; that first push's
                time, compression included, is printed too)
  skopeo        `skopeo copy oci:DIR docker://…` of the same image
Prints medians, throughput and ratios.  The machine is shared and noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
DOCKYARD = str(Path(sys.executable).with_name("dockyard"))
sys.path.insert(0, str(HERE.parent / "tests"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Distribution:
    """docker-registry on a free loopback port, storage in ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        config = base / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n"
            f"http:\n  addr: {self.addr}\n")
        self.log = open(base / "log", "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.addr}/v2/", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)


def run(args: list[str], env: dict | None = None) -> float:
    t = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.decode()[-2000:]}")
    return elapsed


class Daemon:
    """A dockyard daemon for one store, on its own socket, started before any timing (as dockerd
    runs before a `docker pull`); ``env`` points the CLI at it."""

    def __init__(self, root: Path) -> None:
        from dockyard.cli.connect import start_daemon

        self.run_dir = Path(tempfile.mkdtemp(prefix="dyrun-", dir="/tmp"))
        self.env = dict(os.environ, DOCKYARD_ROOT=str(root), DOCKYARD_RUN=str(self.run_dir))
        start_daemon(str(self.run_dir / "dockyard.sock"), str(root), announce=False)

    def stop(self) -> None:
        from support import stop_daemon

        stop_daemon(self.run_dir)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def drop_caches() -> None:
    # Page cache is left alone (the registry's files stay warm for every contender alike); only
    # dirty data is written back, so one contender does not pay for another's writes.
    os.sync()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skip-docker", action="store_true")
    ap.add_argument("--skip-podman", action="store_true")
    opts = ap.parse_args()
    layer = CACHE / "debian-minbase.tar.gz"
    if not layer.exists():
        sys.exit(f"{layer} is missing: run benches/bench_import.py --debian once")
    work = Path(tempfile.mkdtemp(prefix="bench-pull-", dir=str(CACHE)))
    dockerd = None
    registries: list[Distribution] = []
    daemons: list[Daemon] = []
    try:
        reg = Distribution(work / "registry")
        registries.append(reg)
        name = f"{reg.addr}/bench/debian:minbase"
        src = Daemon(work / "src-root")
        daemons.append(src)
        env_src = src.env
        run([DOCKYARD, "import", "-c", 'CMD ["/bin/bash"]', str(layer), name], env_src)
        # The imported layer is kept as a tar-split: this first push gzips it (as docker push
        # does), and the store keeps that gzip for the pushes timed below.
        first_push = run([DOCKYARD, "push", "-q", name], env_src)
        size = layer.stat().st_size
        print(f"image: Debian minbase, one gzip layer of {size / 1e6:.1f} MB; registry: distribution on {reg.addr}")
        print(f"first push of the imported image (gzips its 211 MB tar): {first_push:.2f} s")

        # An OCI layout of the same image, for skopeo's push.
        layout = work / "layout"
        run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{layout}:minbase"])

        if not opts.skip_docker:
            from support import Dockerd

            dockerd = Dockerd(Path(tempfile.mkdtemp(prefix="dyd-", dir="/tmp")))
            dockerd.start()

        podman = None if opts.skip_podman else shutil.which("podman")

        def pull_dockyard(rep: int) -> float:
            root = work / f"pull-root-{rep}"
            daemon = Daemon(root)
            try:
                return run([DOCKYARD, "pull", "-q", name], daemon.env)
            finally:
                daemon.stop()
                shutil.rmtree(root)

        def pull_docker(rep: int) -> float:
            t = time.perf_counter()
            dockerd.docker("pull", "-q", name)
            elapsed = time.perf_counter() - t
            dockerd.docker("rmi", name)
            dockerd.docker("image", "prune", "-af", check=False)
            return elapsed

        def pull_podman(rep: int) -> float:
            # podman wants a short runroot (50 characters at most)
            proot, prun = work / f"podman-root-{rep}", Path(tempfile.mkdtemp(prefix="pr-", dir="/tmp"))
            base = [podman, "--root", str(proot), "--runroot", str(prun), "--storage-driver", "overlay"]
            t = run(base + ["pull", "-q", "--tls-verify=false", name])
            run(base + ["system", "reset", "-f"])
            shutil.rmtree(proot, ignore_errors=True)
            shutil.rmtree(prun, ignore_errors=True)
            return t

        def pull_skopeo_umoci(rep: int) -> float:
            oci, bundle = work / f"oci-{rep}", work / f"bundle-{rep}"
            t = time.perf_counter()
            run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{oci}:x"])
            run(["umoci", "unpack", "--image", f"{oci}:x", str(bundle)])
            elapsed = time.perf_counter() - t
            shutil.rmtree(oci)
            shutil.rmtree(bundle)
            return elapsed

        contenders = [("dockyard", pull_dockyard)]
        if dockerd is not None:
            contenders.append(("docker", pull_docker))
        if podman:
            contenders.append(("podman", pull_podman))
        contenders.append(("skopeo+umoci", pull_skopeo_umoci))
        pulls: dict[str, list[float]] = {who: [] for who, _ in contenders}
        for rep in range(opts.reps):
            # Rotate the order each round, so no contender always follows the same one.
            for who, fn in contenders[rep % len(contenders):] + contenders[:rep % len(contenders)]:
                drop_caches()
                pulls[who].append(fn(rep))

        pushes: dict[str, list[float]] = {"dockyard": [], "skopeo": []}
        for rep in range(opts.reps):
            for who in ("dockyard", "skopeo"):
                target = Distribution(work / f"push-{who}-{rep}")
                try:
                    dest = f"{target.addr}/bench/debian:minbase"
                    if who == "dockyard":
                        run([DOCKYARD, "tag", name, dest], env_src)
                        pushes[who].append(run([DOCKYARD, "push", "-q", dest], env_src))
                        run([DOCKYARD, "rmi", dest], env_src)
                    else:
                        pushes[who].append(run(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                                                f"oci:{layout}:minbase", f"docker://{dest}"]))
                finally:
                    target.stop()

        print(f"\npull, median of {opts.reps} (alternating):")
        base = statistics.median(pulls["dockyard"])
        for who, times in pulls.items():
            if not times:
                continue
            med = statistics.median(times)
            ratio = f"dockyard/{who} = {base / med:.2f}x" if who != "dockyard" else ""
            print(f"  {who:<13} {med:6.2f} s  (min {min(times):.2f})  {ratio}")
        print(f"\npush, median of {opts.reps} (each into an empty registry):")
        base = statistics.median(pushes["dockyard"])
        for who, times in pushes.items():
            med = statistics.median(times)
            ratio = f"dockyard/{who} = {base / med:.2f}x" if who != "dockyard" else ""
            print(f"  {who:<13} {med:6.2f} s  {size / med / 1e6:7.1f} MB/s  {ratio}")
    finally:
        if dockerd is not None:
            dockerd.stop()
        for d in daemons:
            d.stop()
        for r in registries:
            r.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
