#!/usr/bin/env python3
"""Layer import/extraction, side by side with its peers, alternating, in one run.

    python benches/bench_import.py [--quick] [--reps N] [--debian] [--places tmpfs,disk]

Contenders, each unpacking the same layer into a fresh directory:
  dockyard   `dockyard import LAYER` (the CLI: extraction, both sha256 digests, tar-split kept,
             SQLite registration), into a fresh root
  gnu-tar    `tar -xzf LAYER` (or --zstd / plain; -p --numeric-owner, as root would)
  tarfile    Python's tarfile.extractall
  umoci      `umoci unpack` of an OCI layout holding the same blob
Inputs: a synthetic layer of many small files (always) and a Debian minbase rootfs made by
debootstrap from Debian's archive (with --debian; cached in benches/.cache).
Places: a tmpfs mounted for the run, and the disk under benches/.cache.
Prints medians and the ratio dockyard / gnu-tar for each input and place.  Machines here are
shared and noisy: read ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # support.stop_daemon
CACHE = HERE / ".cache"
DOCKYARD = str(Path(sys.executable).with_name("dockyard"))


def synthetic_layer(count: int) -> Path:
    out = CACHE / f"synthetic-{count}.tar.gz"
    if out.exists():
        return out
    src = CACHE / f"synthetic-{count}"
    shutil.rmtree(src, ignore_errors=True)
    rnd = __import__("random").Random(42)
    for i in range(count):
        d = src / f"d{i % 97}" / f"e{i % 13}"
        d.mkdir(parents=True, exist_ok=True)
        size = rnd.choice([0, 100, 700, 2000, 5000, 30000])
        (d / f"f{i}.txt").write_bytes(rnd.randbytes(size // 2) + b"a" * (size - size // 2))
    tmp = out.with_suffix(".tmp")
    subprocess.run(["tar", "--numeric-owner", "--sort=name", "-czf", str(tmp), "-C", str(src), "."], check=True)
    os.replace(tmp, out)
    shutil.rmtree(src)
    return out


def debian_layer() -> Path:
    out = CACHE / "debian-minbase.tar.gz"
    if out.exists():
        return out
    root = CACHE / "debian-rootfs"
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(root), "http://deb.debian.org/debian"],
                   check=True, stdout=subprocess.DEVNULL)
    tmp = out.with_suffix(".tmp")
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "--sort=name", "-czf", str(tmp), "-C", str(root), "."],
                   check=True)
    os.replace(tmp, out)
    shutil.rmtree(root)
    return out


def oci_layout(layer: Path, dest: Path) -> Path:
    """An OCI image layout holding ``layer`` as its one blob, for umoci."""
    import gzip

    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    data_digest = hashlib.sha256()
    with gzip.open(layer) as f:
        while chunk := f.read(1 << 20):
            data_digest.update(chunk)
    digest = hashlib.sha256(layer.read_bytes()).hexdigest()
    os.link(layer, blobs / digest) if os.stat(layer).st_dev == os.stat(blobs).st_dev else shutil.copy(layer, blobs / digest)

    def put(obj: dict) -> tuple[str, int]:
        raw = json.dumps(obj).encode()
        h = hashlib.sha256(raw).hexdigest()
        (blobs / h).write_bytes(raw)
        return "sha256:" + h, len(raw)

    cfg = put({"architecture": "amd64", "os": "linux", "config": {},
               "rootfs": {"type": "layers", "diff_ids": ["sha256:" + data_digest.hexdigest()]}})
    man = put({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg[0], "size": cfg[1]},
               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": "sha256:" + digest, "size": layer.stat().st_size}]})
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man[0], "size": man[1],
        "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}))
    return dest


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(cmd: list[str], **kw) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


def contenders(layer: Path, place: Path) -> dict:
    flag = {".gz": "-z", ".zst": "--zstd"}.get(layer.suffix, "")
    layout = None
    if shutil.which("umoci") and layer.suffix == ".gz":
        layout = oci_layout(layer, Path(tempfile.mkdtemp(dir=place, prefix="layout-")))

    def dockyard(d: Path) -> float:
        # A fresh store each round, with its daemon already listening (started outside the
        # timing, as dockerd runs before a `docker load`): the CLI hands it the file.
        from support import stop_daemon

        from dockyard.cli.connect import start_daemon

        run_dir = Path(tempfile.mkdtemp(prefix="dyrun-", dir="/tmp"))
        env = dict(os.environ, DOCKYARD_ROOT=str(d), DOCKYARD_RUN=str(run_dir))
        start_daemon(str(run_dir / "dockyard.sock"), str(d), announce=False)
        os.sync()  # the new store's files too: every contender starts with no dirty pages
        try:
            return timed(lambda: run([DOCKYARD, "import", str(layer), "bench:1"], env=env))
        finally:
            stop_daemon(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)

    def gnu_tar(d: Path) -> float:
        d.mkdir()
        return timed(lambda: run(["tar", "-xp", "--numeric-owner"] + ([flag] if flag else []) + ["-f", str(layer), "-C", str(d)]))

    def py_tarfile(d: Path) -> float:
        d.mkdir()

        def go() -> None:
            with tarfile.open(layer) as tf:
                tf.extractall(d, filter="fully_trusted")
        return timed(go)

    def umoci(d: Path) -> float:
        return timed(lambda: run(["umoci", "unpack", "--image", f"{layout}:bench", str(d)]))

    out = {"dockyard": dockyard, "gnu-tar": gnu_tar}
    if layer.suffix == ".gz" or layer.suffix == ".tar":
        out["tarfile"] = py_tarfile
    if layout is not None:
        out["umoci"] = umoci
    return out, layout


def bench(layer: Path, place: Path, reps: int, keep: bool = False) -> dict[str, float]:
    funcs, layout = contenders(layer, place)
    times: dict[str, list[float]] = {k: [] for k in funcs}
    try:
        for rep in range(reps + 1):  # the first round warms the page cache and is not counted
            order = list(funcs) if rep % 2 == 0 else list(reversed(funcs))
            for name in order:
                d = place / f"{name}-{rep}"
                # On disk, trees are kept until the end: deleting between runs would make the
                # next run pay for the freed inodes (ext4 without a journal skips recently freed
                # ones), whichever contender came next.  Dirty pages are flushed before each run.
                os.sync()
                t = funcs[name](d)
                if not keep:
                    subprocess.run(["rm", "-rf", str(d)], check=True)
                if rep:
                    times[name].append(t)
    finally:
        if layout is not None:
            shutil.rmtree(layout, ignore_errors=True)
    return {k: statistics.median(v) for k, v in times.items()}


# ext4 without a journal (as on these VMs) does not reuse an inode freed in the last 60 s, or
# 360 s while its inode-table block is dirty (and creating files nearby keeps it dirty): every
# file creation in that block group scans past such inodes first.  The trees a disk run deletes
# at its end can sit in the same groups as the next run's, so a run started within minutes of
# another paid that scan on every file: GNU tar took 2.5-2.9 s instead of 1.2-1.4 s, and every
# contender slowed by about the same 1.4-1.7 s.  So a disk run starts at least 365 s after the
# previous one deleted its trees (recorded in DELETED); it waits, and says so, when it must.
DELETED = CACHE / "disk-deleted-at"
RECENT = 365


def wait_out_recent_deletes() -> None:
    try:
        since = time.time() - float(DELETED.read_text())
    except (OSError, ValueError):
        return
    if 0 <= since < RECENT:
        print(f"(waiting {RECENT - since:.0f} s: the last disk run's deleted inodes are still recent)", flush=True)
        os.sync()
        time.sleep(RECENT - since)


class Tmpfs:
    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="dybench-"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", str(self.path)], check=True)
        return self.path

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["umount", str(self.path)], check=False)
        os.rmdir(self.path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small synthetic layer, 3 rounds (for CI)")
    ap.add_argument("--debian", action="store_true", help="include the Debian minbase layer (debootstrap)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--places", default="tmpfs,disk")
    ap.add_argument("--no-synthetic", action="store_true", help="only the Debian layer (with --debian)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_import: needs root (tmpfs mount, owners)")
        return 0
    CACHE.mkdir(exist_ok=True)
    reps = args.reps or (3 if args.quick else 7)
    layers = [] if args.no_synthetic and args.debian else [synthetic_layer(3000 if args.quick else 20000)]
    if args.debian:
        layers.insert(0, debian_layer())
    print(f"{'layer':<28} {'place':<6} " + " ".join(f"{k:>9}" for k in ("dockyard", "gnu-tar", "tarfile", "umoci"))
          + "   dockyard/tar")
    for layer in layers:
        for place_name in args.places.split(","):
            if place_name == "tmpfs":
                with Tmpfs() as place:
                    res = bench(layer, place, reps)
            else:
                wait_out_recent_deletes()
                place = Path(tempfile.mkdtemp(dir=CACHE, prefix="disk-"))
                try:
                    res = bench(layer, place, reps, keep=True)
                finally:
                    subprocess.run(["rm", "-rf", str(place)], check=False)
                    os.sync()
                    DELETED.write_text(str(time.time()))
            cells = " ".join(f"{res[k]:9.3f}" if k in res else f"{'-':>9}" for k in ("dockyard", "gnu-tar", "tarfile", "umoci"))
            print(f"{layer.name:<28} {place_name:<6} {cells}   {res['dockyard'] / res['gnu-tar']:.2f}x", flush=True)
    print(f"(medians of {reps} alternating rounds, seconds; dockyard includes both digests and registration)")
    return 0


if __name__ == "__main__":
    from support import exit_on_sigterm

    exit_on_sigterm()
    sys.exit(main())
