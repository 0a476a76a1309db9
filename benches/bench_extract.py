"""Layer extraction: dockyard vs GNU tar, alternating, same machine, same run.

    python benches/bench_extract.py LAYER [LAYER...] [--dir /dev/shm] [--runs 7]

Each run extracts into a fresh directory under ``--dir`` (tmpfs or disk), GNU tar and dockyard
alternately; the trees are removed at the end (not timed). dockyard's time includes
both sha256 digests (blob and diff ID); GNU tar computes none. Prints medians and the ratio.
Without a LAYER, synthetic layers are generated under ``benches/.cache``.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dockyard import layers

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
sys.path.insert(0, str(HERE.parent / "tests"))  # support.exit_on_sigterm


def gnu_tar_cmd(layer: Path, dest: Path) -> list[str]:
    with open(layer, "rb") as f:
        magic = f.read(4)
    flag = ["-z"] if magic[:2] == b"\x1f\x8b" else ["--zstd"] if magic == b"\x28\xb5\x2f\xfd" else []
    return ["tar", *flag, "-xf", str(layer), "-C", str(dest)]


def synthetic(kind: str) -> Path:
    """Generate (once) a synthetic gzip layer: 'small' = many small files, 'big' = a few big ones."""
    out = CACHE / f"synthetic-{kind}.tar.gz"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = random.Random(42)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]

    def blob(n: int) -> bytes:
        # Half text-like (compressible), half random: gzip ratio about 2 like real layers.
        text = b" ".join(rng.choice(words) for _ in range(n // 12 + 1))[: n // 2]
        return text + os.urandom(n - len(text))

    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "root"
        if kind == "small":
            for i in range(8000):
                d = root / f"d{i % 97}" / f"s{i % 13}"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"f{i}").write_bytes(blob(rng.choice([100, 1000, 4000, 16000, 30000, 90000])))
        else:
            root.mkdir()
            for i in range(6):
                (root / f"big{i}").write_bytes(blob(64 << 20))
        layers.pack(root, out, compression="gzip")
    return out


def bench(layer: Path, where: Path, runs: int) -> None:
    ours: list[float] = []
    theirs: list[float] = []
    # CPU seconds (user + system) too: on a shared, loaded machine wall times swing, CPU
    # time much less.
    ours_cpu: list[float] = []
    theirs_cpu: list[float] = []

    def cpu(who: int) -> float:
        r = resource.getrusage(who)
        return r.ru_utime + r.ru_stime

    # Trees are kept until the end: deleting thousands of files between runs makes ext4 skip
    # the recently freed inodes on every later create (recently_deleted()), which would
    # measure the benchmark's own cleanup rather than extraction.
    made: list[Path] = []
    try:
        for i in range(runs):
            for who in (("tar", "ours") if i % 2 == 0 else ("ours", "tar")):
                dest = Path(tempfile.mkdtemp(dir=where, prefix="bench-"))
                made.append(dest)
                os.sync()  # start each run with no dirty pages from the previous one
                t0 = time.perf_counter()
                if who == "tar":
                    c0 = cpu(resource.RUSAGE_CHILDREN)
                    subprocess.run(gnu_tar_cmd(layer, dest), check=True)
                    theirs.append(time.perf_counter() - t0)
                    theirs_cpu.append(cpu(resource.RUSAGE_CHILDREN) - c0)
                else:
                    c0 = cpu(resource.RUSAGE_SELF)
                    layers.extract(layer, dest)
                    ours.append(time.perf_counter() - t0)
                    ours_cpu.append(cpu(resource.RUSAGE_SELF) - c0)
    finally:
        for d in made:
            shutil.rmtree(d)
    mo, mt = statistics.median(ours), statistics.median(theirs)
    print(f"{layer.name:40} {where}: dockyard {mo:.3f}s  GNU tar {mt:.3f}s  ratio {mo / mt:.2f}"
          f"  (min {min(ours):.3f}/{min(theirs):.3f}; CPU {statistics.median(ours_cpu):.3f}/"
          f"{statistics.median(theirs_cpu):.3f} s; {runs} runs, load {os.getloadavg()[0]:.1f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("layers", nargs="*", type=Path)
    ap.add_argument("--dir", type=Path, default=Path("/dev/shm"))
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    todo = a.layers or [synthetic("small"), synthetic("big")]
    for layer in todo:
        bench(layer, a.dir, a.runs)
    return 0


if __name__ == "__main__":
    from support import exit_on_sigterm

    exit_on_sigterm()
    sys.exit(main())
