#!/usr/bin/env python3
"""Registry pull and push, side by side with their peers, alternating, in one run.

    python benches/bench_pull.py [--reps N] [--skip-docker] [--skip-podman] [--skip-skopeo]
                                 [--skip-push] [--images debian,3x70]

Images, in a CNCF distribution registry (Debian's docker-registry) on 127.0.0.1:
  debian  a Debian minbase rootfs (debootstrap; the gzip layer cached at
          benches/.cache/debian-minbase.tar.gz, made by bench_import.py --debian), imported
          into dockyard and pushed
  3x70    three gzip layers of about 70 MB each (1400 files of 100 KB, half random, half text;
          cached in benches/.cache/big-layer-N.tar.gz), copied in by skopeo from an OCI layout:
          what parallel layers are for

Pull contenders, each into fresh storage, from the same registry, alternating:
  dockyard      `dockyard pull` (the CLI) into a fresh root: download, verify, extract, register
  docker        `docker pull` by a private dockerd 20.10 (overlay2), a fresh one (and data root)
                per round, started before any timing
Nothing that dockyard or docker pulled is deleted until every pull has been timed (unless
--delete-between): on an ext4 without a journal (this machine's root), creating an inode in a
block group where many were deleted in the last minutes scans past each of them
(ext4_new_inode -> recently_deleted, for as long as the group's inode table keeps being
written), which made a pull's time depend on who had deleted a tree there before it (up to
1.5 s of a 2 s pull, for either contender; 300-650 us per empty file made, against 20 us).
So both contenders' stores (dockerd's --data-root too) are in one work directory, put where
making files costs what it should: of benches/.cache and /tmp, the first where a probe of
2,000 empty files takes under 60 us each, waiting (up to 7 minutes) while neither does.
  podman        `podman pull` into a fresh --root (overlay), reset between runs
  skopeo+umoci  `skopeo copy docker://… oci:DIR` then `umoci unpack` (a runtime bundle)
Push contenders, each into a freshly started, empty registry:
  dockyard      `dockyard push` (of the gzip its first push made and kept; that first push's
                time, compression included, is printed too)
  skopeo        `skopeo copy oci:DIR docker://…` of the same image
Prints medians, throughput and ratios (issue 20's goals: dockyard/docker <= 0.30 for debian,
<= 0.25 for 3x70), and the CPU seconds each pull cost (the CLI and its daemon; dockerd with
containerd): on a machine whose cores are taken by others, parallel layers cannot run in
parallel, and the wall ratio tends to the CPU ratio.  The machine is shared and noisy: read the
ratios.
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


def quiet_place(candidates: list[Path], probes: list[Path], limit_us: float = 60.0, patience: float = 420.0) -> Path:
    """The first of ``candidates`` where making an empty file costs under ``limit_us``
    (see the docstring: a block group full of recently deleted inodes costs 10-30 times
    that), probing each with 2,000 files in a new directory of its own (added to ``probes``,
    for the caller to remove once every pull is timed: a probe deletes nothing); rounds every
    15 s until one is, or ``patience`` runs out (then the fastest, said so)."""
    deadline = time.time() + patience
    while True:
        costs = []
        for place in candidates:
            place.mkdir(parents=True, exist_ok=True)
            probe = Path(tempfile.mkdtemp(prefix="probe-", dir=str(place)))
            probes.append(probe)
            t = time.perf_counter()
            for i in range(2000):
                os.close(os.open(probe / f"f{i}", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            cost = (time.perf_counter() - t) / 2000 * 1e6
            if cost < limit_us:
                print(f"work directory in {place} (making a file: {cost:.0f} us)")
                return place
            costs.append((cost, place))
        if time.time() > deadline:
            cost, place = min(costs)
            print(f"work directory in {place}: making a file still costs {cost:.0f} us (recent deletes); "
                  "read the ratios with care")
            return place
        print(f"making a file costs {', '.join(f'{c:.0f} us in {p}' for c, p in costs)}: waiting for the "
              "recently deleted inodes to age", flush=True)
        time.sleep(15)


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


def big_layers() -> list[Path]:
    """Three gzip layers of ~70 MB (140 MB of tar each): 1400 files of 100 KB, 50 KB random and
    50 KB of text, in a directory of their own per layer.  Made once, cached."""
    import io
    import random
    import tarfile

    CACHE.mkdir(exist_ok=True)
    out = []
    for n in range(3):
        path = CACHE / f"big-layer-{n}.tar.gz"
        out.append(path)
        if path.exists():
            continue
        rnd = random.Random(n)
        text = b"".join(b"line %d of a text file that compresses well enough\n" % i for i in range(1000))[:50_000]
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            gz = subprocess.Popen(["gzip", "-6", "-c"], stdin=subprocess.PIPE, stdout=f)
            with tarfile.open(fileobj=gz.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                d = tarfile.TarInfo(f"data{n}")
                d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
                tar.addfile(d)
                for i in range(1400):
                    data = rnd.randbytes(50_000) + text
                    info = tarfile.TarInfo(f"data{n}/f{i:05d}")
                    info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
                    tar.addfile(info, io.BytesIO(data))
            gz.stdin.close()
            if gz.wait() != 0:
                raise RuntimeError("gzip failed")
        os.replace(tmp, path)
    return out


def layout_of(layers: list[Path], dest: Path) -> Path:
    """An OCI image layout of ``layers`` (gzip), for skopeo to copy into a registry."""
    import gzip
    import hashlib
    import json

    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    descs, diff_ids = [], []
    for layer in layers:
        tar = hashlib.sha256()
        with gzip.open(layer) as f:
            while chunk := f.read(1 << 20):
                tar.update(chunk)
        diff_ids.append("sha256:" + tar.hexdigest())
        h = hashlib.sha256()
        with open(layer, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        os.link(layer, blobs / h.hexdigest())
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": "sha256:" + h.hexdigest(), "size": layer.stat().st_size})

    def put(obj: dict) -> tuple[str, int]:
        raw = json.dumps(obj).encode()
        h = hashlib.sha256(raw).hexdigest()
        (blobs / h).write_bytes(raw)
        return "sha256:" + h, len(raw)

    cfg = put({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
               "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    man = put({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg[0], "size": cfg[1]},
               "layers": descs})
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man[0], "size": man[1],
        "annotations": {"org.opencontainers.image.ref.name": "big"}}]}))
    return dest


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread; reaped children too) of ``pid`` and every
    process below it: a daemon's share of a pull, read before and after it."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / tick
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return total


def children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def drop_caches() -> None:
    # Page cache is left alone (the registry's files stay warm for every contender alike); only
    # dirty data is written back, so one contender does not pay for another's writes.
    os.sync()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skip-docker", action="store_true")
    ap.add_argument("--skip-podman", action="store_true")
    ap.add_argument("--skip-skopeo", action="store_true")
    ap.add_argument("--skip-push", action="store_true")
    ap.add_argument("--images", default="debian,3x70", help="comma-separated: debian, 3x70")
    ap.add_argument("--delete-between", action="store_true",
                    help="remove what each pull made right after it (the old way: see above)")
    opts = ap.parse_args()
    wanted = [w.strip() for w in opts.images.split(",") if w.strip()]
    layer = CACHE / "debian-minbase.tar.gz"
    if "debian" in wanted and not layer.exists():
        sys.exit(f"{layer} is missing: run benches/bench_import.py --debian once")
    CACHE.mkdir(parents=True, exist_ok=True)
    probes: list[Path] = []
    work = Path(tempfile.mkdtemp(prefix="bench-pull-", dir=str(quiet_place([CACHE, Path("/tmp")], probes))))
    dockerds: dict[int, object] = {}
    podman_resets: list[list[str]] = []  # run at the end (or at once with --delete-between)
    registries: list[Distribution] = []
    daemons: list[Daemon] = []
    try:
        reg = Distribution(work / "registry")
        registries.append(reg)
        images: list[tuple[str, str, int]] = []  # (label, reference, compressed bytes)
        name = f"{reg.addr}/bench/debian:minbase"
        src = Daemon(work / "src-root")
        daemons.append(src)
        env_src = src.env
        size = layer.stat().st_size if layer.exists() else 0
        layout = work / "layout"
        if "debian" in wanted:
            run([DOCKYARD, "import", "-c", 'CMD ["/bin/bash"]', str(layer), name], env_src)
            # The imported layer is kept as a tar-split: this first push gzips it (as docker push
            # does), and the store keeps that gzip for the pushes timed below.
            first_push = run([DOCKYARD, "push", "-q", name], env_src)
            print(f"image debian: Debian minbase, one gzip layer of {size / 1e6:.1f} MB; registry: distribution on {reg.addr}")
            print(f"first push of the imported image (gzips its 211 MB tar): {first_push:.2f} s")
            images.append(("debian", name, size))
            # An OCI layout of the same image, for skopeo's push.
            run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", f"docker://{name}",
                 f"oci:{layout}:minbase"])
        if "3x70" in wanted:
            big = big_layers()
            big_name = f"{reg.addr}/bench/big:3x70"
            run(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                 f"oci:{layout_of(big, work / 'big-layout')}:big", f"docker://{big_name}"])
            big_size = sum(p.stat().st_size for p in big)
            print(f"image 3x70: three gzip layers, {' + '.join(f'{p.stat().st_size / 1e6:.1f}' for p in big)} MB")
            images.append(("3x70", big_name, big_size))

        def dockerd_for(rep: int):
            from support import Dockerd

            key = 0 if opts.delete_between else rep
            if key not in dockerds:
                # its socket and exec root in /tmp (short paths), its store beside dockyard's
                dockerds[key] = Dockerd(Path(tempfile.mkdtemp(prefix="dyd-", dir="/tmp")),
                                        data_root=work / f"docker-root-{key}")
                dockerds[key].start()
            return dockerds[key]

        if not opts.skip_docker:
            for rep in range(1 if opts.delete_between else opts.reps):
                dockerd_for(rep)  # all started before any timing

        podman = None if opts.skip_podman else shutil.which("podman")

        cpu_of_daemon: dict[str, float] = {}  # the daemon's CPU seconds in the last pull

        def pull_dockyard(name: str, rep: int) -> float:
            root = work / f"pull-root-{rep}"  # one per round: both images go in it
            daemon = Daemon(root)
            try:
                pid = int((daemon.run_dir / "dockyard.pid").read_text().split()[0])
                before = tree_cpu(pid)
                elapsed = run([DOCKYARD, "pull", "-q", name], daemon.env)
                cpu_of_daemon["dockyard"] = tree_cpu(pid) - before
                return elapsed
            finally:
                daemon.stop()
                if opts.delete_between:
                    shutil.rmtree(root)

        def pull_docker(name: str, rep: int) -> float:
            dockerd = dockerd_for(rep)
            before = tree_cpu(dockerd.proc.pid)  # dockerd and containerd
            t = time.perf_counter()
            dockerd.docker("pull", "-q", name)
            elapsed = time.perf_counter() - t
            cpu_of_daemon["docker"] = tree_cpu(dockerd.proc.pid) - before
            if opts.delete_between:
                dockerd.docker("rmi", name)
                dockerd.docker("image", "prune", "-af", check=False)
            return elapsed

        def pull_podman(name: str, rep: int) -> float:
            # podman wants a short runroot (50 characters at most)
            label = name.rsplit("/", 1)[1].replace(":", "-")
            proot, prun = work / f"podman-root-{rep}-{label}", Path(tempfile.mkdtemp(prefix="pr-", dir="/tmp"))
            base = [podman, "--root", str(proot), "--runroot", str(prun), "--storage-driver", "overlay"]
            t = run(base + ["pull", "-q", "--tls-verify=false", name])
            podman_resets.append(base + ["system", "reset", "-f"])
            if opts.delete_between:
                run(podman_resets.pop())
                shutil.rmtree(proot, ignore_errors=True)
            shutil.rmtree(prun, ignore_errors=True)
            return t

        def pull_skopeo_umoci(name: str, rep: int) -> float:
            label = name.rsplit("/", 1)[1].replace(":", "-")
            oci, bundle = work / f"oci-{rep}-{label}", work / f"bundle-{rep}-{label}"
            t = time.perf_counter()
            run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{oci}:x"])
            run(["umoci", "unpack", "--image", f"{oci}:x", str(bundle)])
            elapsed = time.perf_counter() - t
            if opts.delete_between:
                shutil.rmtree(oci)
                shutil.rmtree(bundle)
            return elapsed

        contenders = [("dockyard", pull_dockyard)]
        if not opts.skip_docker:
            contenders.append(("docker", pull_docker))
        if podman:
            contenders.append(("podman", pull_podman))
        if not opts.skip_skopeo:
            contenders.append(("skopeo+umoci", pull_skopeo_umoci))
        results: list[tuple[str, int, dict[str, list[float]]]] = []
        cpus: dict[str, dict[str, list[float]]] = {}
        for label, ref, nbytes in images:
            pulls: dict[str, list[float]] = {who: [] for who, _ in contenders}
            cpus[label] = {who: [] for who, _ in contenders}
            for rep in range(opts.reps):
                # Rotate the order each round, so no contender always follows the same one.
                for who, fn in contenders[rep % len(contenders):] + contenders[:rep % len(contenders)]:
                    drop_caches()
                    cpu_of_daemon.pop(who, None)
                    before = children_cpu()  # the CLIs (and podman, skopeo, umoci): processes run and reaped
                    pulls[who].append(fn(ref, rep))
                    cpus[label][who].append(children_cpu() - before + cpu_of_daemon.get(who, 0.0))
            results.append((label, nbytes, pulls))

        pushes: dict[str, list[float]] = {"dockyard": [], "skopeo": []}
        for rep in range(0 if opts.skip_push or "debian" not in wanted else opts.reps):
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

        for label, nbytes, pulls in results:
            print(f"\npull of {label}, median of {opts.reps} (alternating); CPU: user + system seconds of "
                  f"the CLI and its daemon (dockerd + containerd for docker):")
            base = statistics.median(pulls["dockyard"])
            base_cpu = statistics.median(cpus[label]["dockyard"])
            for who, times in pulls.items():
                if not times:
                    continue
                med = statistics.median(times)
                cpu = statistics.median(cpus[label][who])
                ratio = (f"dockyard/{who} = {base / med:.2f}x (CPU {base_cpu / cpu:.2f}x)"
                         if who != "dockyard" and cpu else "")
                print(f"  {who:<13} {med:6.2f} s  (min {min(times):.2f}, max {max(times):.2f})  "
                      f"{nbytes / med / 1e6:7.1f} MB/s  CPU {cpu:5.2f} s  {ratio}")
                print(f"  {'':<13} rounds: {' '.join(f'{t:.2f}' for t in times)} s; "
                      f"CPU {' '.join(f'{c:.2f}' for c in cpus[label][who])} s")
        if pushes["dockyard"]:
            print(f"\npush, median of {opts.reps} (each into an empty registry):")
            base = statistics.median(pushes["dockyard"])
            for who, times in pushes.items():
                med = statistics.median(times)
                ratio = f"dockyard/{who} = {base / med:.2f}x" if who != "dockyard" else ""
                print(f"  {who:<13} {med:6.2f} s  {size / med / 1e6:7.1f} MB/s  {ratio}")
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (2 cores, shared)")
    finally:
        for reset in podman_resets:
            subprocess.run(reset, capture_output=True)
        for dockerd in dockerds.values():
            dockerd.stop()
        for d in daemons:
            d.stop()
        for r in registries:
            r.stop()
        shutil.rmtree(work, ignore_errors=True)
        for probe in probes:
            shutil.rmtree(probe, ignore_errors=True)


if __name__ == "__main__":
    from support import exit_on_sigterm

    exit_on_sigterm()
    main()
