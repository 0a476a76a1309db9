#!/usr/bin/env python3
"""Container start-up and idle cost, side by side with runc and a real dockerd, alternating.

    python benches/bench_run.py [--reps N] [--no-docker] [--idle N]

1. `dockyard run --rm IMAGE true` (the CLI, end to end, through the daemon it starts) against
   `runc run` of an equivalent bundle (the same busybox rootfs, the same Docker-like
   config.json, no network namespace setup on either side) and, when dockerd is installed,
   `docker run --rm --network none` against a private dockerd; and both on their default bridge
   (dockyard's kept by its daemon, dockerd's its own bridge).  Medians and ratios.
2. Idle cost: N detached `sleep` containers; resident memory (VmRSS) of each container's
   supervisor, against docker's containerd-shim for the same containers.
3. 20 containers started at once (`run --rm true` x 20, concurrently): wall time.
4. `run --rm --network none true` under a second daemon started with `--userns-remap default`
   (idmapped layers, nothing chowned), in the same alternating rounds as 1: its ratio to the
   plain daemon's (goal <= 1.1).  /etc's id files are put back as they were after.
5. The same under a rootless daemon: a user made for the bench runs the CLI, which starts the
   user's daemon (dockyard.rootless); its ratio to the plain daemon's (goal <= 1.5).
Needs root.  Machines here are shared and noisy: read the ratios.
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

DOCKYARD = str(Path(sys.executable).with_name("dockyard"))
CLI = "import sys; from dockyard.cli import main; sys.exit(main())"


def timed(cmd: list[str], env: dict | None = None, cwd: str | None = None, user=None) -> float:
    """Wall time of ``cmd``; ``user``: a RootlessUser to run it as (from its home)."""
    ids = {} if user is None else {"user": user.uid, "group": user.gid, "extra_groups": []}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=str(user.home) if user else cwd, **ids)
    return time.perf_counter() - t0


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def runc_bundle(rootfs: Path, bundle: Path) -> Path:
    """An OCI bundle in ``bundle`` for ``runc run``: ``rootfs`` (a directory with proc, dev and
    sys) running ``true`` with the config.json dockyard would write (Docker's mounts, masked
    paths, capabilities and seccomp profile), in new namespaces, the network's included."""
    from dockyard.engine.seccomp import default_profile
    from dockyard.engine.spec import DEFAULT_PATH, ProcessSpec, build_spec, capabilities

    bundle.mkdir()
    spec = build_spec(str(rootfs), ProcessSpec(args=["true"], env=[DEFAULT_PATH], hostname="bench",
                                                seccomp=default_profile(capabilities([], [], False))))
    spec["root"]["readonly"] = False
    # runc on cgroup v1 cannot deny one device inside the "c *:* m" wildcard (fuse, tun): it
    # refuses to start; those two rules change nothing for `true`
    spec["linux"]["resources"]["devices"] = [d for d in spec["linux"]["resources"]["devices"]
                                             if d["allow"] or "major" not in d]
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--idle", type=int, default=10)
    ap.add_argument("--no-docker", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_run: needs root")
        return 0
    from bench_api import compile_package
    from support import Dockerd, SavedEtcIds, make_busybox_rootfs, stop_daemon, tar_dir

    compile_package()

    work = Path(tempfile.mkdtemp(prefix="dybr-", dir="/tmp"))
    os.chmod(work, 0o711)  # the remapped root reaches its daemon's data root through it
    env = dict(os.environ, DOCKYARD_ROOT=str(work / "root"), DOCKYARD_RUN=str(work / "run"))
    docker = None
    rootless = None
    remap_env = dict(os.environ, DOCKYARD_ROOT=str(work / "root-remap"), DOCKYARD_RUN=str(work / "run-remap"))
    etc = SavedEtcIds()
    etc.save()
    try:
        rootfs = make_busybox_rootfs(work / "rootfs")
        for d in ("proc", "dev", "sys"):
            (rootfs / d).mkdir(exist_ok=True)
        tar = tar_dir(rootfs, work / "bb.tar")
        subprocess.run([DOCKYARD, "import", str(tar), "bb"], check=True, env=env, stdout=subprocess.DEVNULL)
        bundle = runc_bundle(rootfs, work / "bundle")
        contenders = {
            "dockyard": lambda i: timed([DOCKYARD, "run", "--rm", "--network", "none", "bb", "true"], env=env),
            "dy-bridge": lambda i: timed([DOCKYARD, "run", "--rm", "bb", "true"], env=env),
            "runc": lambda i: timed(["runc", "--root", str(work / "runc"), "run", f"dybench-{os.getpid()}-{i}"],
                                    cwd=str(bundle)),
        }
        rootless = start_rootless(tar)
        if rootless is not None:
            # -S: no site module.  The packages come from PYTHONPATH; this machine's site adds a
            # .pth (its sandbox's CA bundle) that imports certifi, which PYTHONPATH then finds in
            # our venv, a newer one costing 30 ms at every start: not the engine's cost
            contenders["dy-rootless"] = lambda i: timed([rootless.python, "-S", "-c", CLI, "run", "--rm", "--network",
                                                         "none", "bb", "true"], env=rootless.env, user=rootless)
        if start_remapped(remap_env, tar):
            contenders["dy-remap"] = lambda i: timed([DOCKYARD, "run", "--rm", "--network", "none", "bb", "true"],
                                                     env=remap_env)
        if not args.no_docker and shutil.which("dockerd"):
            docker = Dockerd(work / "d")
            try:
                docker.start()
                docker.docker("import", str(tar), "bb")
                contenders["docker"] = lambda i: timed(["docker", "run", "--rm", "--network", "none", "bb", "true"],
                                                       env=docker.env)
                contenders["d-bridge"] = lambda i: timed(["docker", "run", "--rm", "bb", "true"], env=docker.env)
            except (RuntimeError, AssertionError) as exc:
                print(f"(docker skipped: {str(exc).splitlines()[0]})")
                docker = None
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for rep in range(args.reps + 1):
            order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
            for name in order:
                t = contenders[name](rep)
                if rep:
                    times[name].append(t)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"run --rm true, medians of {args.reps} alternating rounds:")
        for k, v in med.items():
            print(f"  {k:<9} {v * 1000:7.1f} ms")
        print(f"  dockyard/runc   {med['dockyard'] / med['runc']:.2f}x   (goal <= 2.0)")
        # the two are adjacent in every round (either order): the median of each round's
        # difference cancels what drifts between rounds, which a difference of medians keeps
        paired = statistics.median(b - n for b, n in zip(times["dy-bridge"], times["dockyard"]))
        print(f"  default bridge - none: {(med['dy-bridge'] - med['dockyard']) * 1000:+.1f} ms between medians, "
              f"{paired * 1000:+.1f} ms median of the rounds' differences   (goal: within 3 ms)")
        if "dy-rootless" in med:
            print(f"  rootless/rootful {med['dy-rootless'] / med['dockyard']:.2f}x   (goal <= 1.5; its CLI runs on "
                  f"Debian's python3 -S, which the user can reach)")
        if "dy-remap" in med:
            print(f"  --userns-remap/without {med['dy-remap'] / med['dockyard']:.2f}x   (goal <= 1.1)")
        if "docker" in med:
            print(f"  dockyard/docker {med['dockyard'] / med['docker']:.2f}x   (goal <= 0.20)")
            print(f"  on the default bridge, dockyard/docker {med['dy-bridge'] / med['d-bridge']:.2f}x   (goal <= 0.20)")

        # Idle cost per container
        ids = []
        for i in range(args.idle):
            out = subprocess.run([DOCKYARD, "run", "-d", "bb", "sleep", "600"], check=True, env=env,
                                 capture_output=True).stdout.decode().strip()
            ids.append(out)
        time.sleep(0.5)
        shim_rss = []
        for cid in ids:
            pid = int(subprocess.run([DOCKYARD, "inspect", "-f", "{{.State.Pid}}", cid], env=env, check=True,
                                     capture_output=True).stdout)
            with open(f"/proc/{pid}/status") as f:
                ppid = next(int(l.split()[1]) for l in f if l.startswith("PPid:"))
            shim_rss.append(rss_kb(ppid))
        print(f"idle supervisor RSS, median of {len(ids)}: {statistics.median(shim_rss) / 1024:.2f} MB (goal <= 3 MB)")
        subprocess.run([DOCKYARD, "rm", "-f", *ids], check=True, env=env, stdout=subprocess.DEVNULL)
        daemon_pid = int((work / "run" / "dockyard.pid").read_text())
        print(f"dockyard daemon RSS after the runs: {rss_kb(daemon_pid) / 1024:.1f} MB (goal <= 50 MB)")
        if docker is not None:
            dids = [docker.docker("run", "-d", "--network", "none", "bb", "sleep", "600").stdout.decode().strip()
                    for _ in range(min(args.idle, 5))]
            time.sleep(0.5)
            shims = subprocess.run(["pgrep", "-f", "containerd-shim"], capture_output=True).stdout.split()
            if shims:
                vals = [rss_kb(int(p)) for p in shims]
                print(f"docker's containerd-shim RSS, median of {len(vals)}: {statistics.median(vals) / 1024:.2f} MB")
            docker.docker("rm", "-f", *dids)

        # 20 at once
        t0 = time.perf_counter()
        procs = [subprocess.Popen([DOCKYARD, "run", "--rm", "bb", "true"], env=env) for _ in range(20)]
        codes = [p.wait() for p in procs]
        print(f"20 concurrent run --rm true: {time.perf_counter() - t0:.2f} s, exit codes {set(codes)}")
    finally:
        stop_daemon(work / "run", work / "root")
        stop_daemon(work / "run-remap", work / "root-remap")
        if rootless is not None:
            try:
                rootless.stop_daemon()
            finally:
                rootless.remove()
        etc.restore()
        if docker is not None:
            docker.stop()
        subprocess.run(["umount", "-R", str(work)], stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def start_rootless(tar: Path):
    """A user made for the bench (subordinate ids as useradd gives them) with its rootless
    daemon running (started by its CLI) and the image ``bb``; None, saying why, if that cannot be."""
    from support import RootlessUser, user_interpreter

    if not (shutil.which("useradd") and shutil.which("newuidmap")):
        print("(rootless skipped: needs useradd and newuidmap)")
        return None
    u = RootlessUser("dybench")
    try:
        u.python = user_interpreter(u.env, u.uid, u.gid)
        if u.python is None or not u.subids():
            raise RuntimeError("no interpreter the user may run" if u.python is None else "no subordinate ids")
        shutil.copy(tar, u.home / "bb.tar")
        os.chown(u.home / "bb.tar", u.uid, u.gid)
        u.dy("import", str(u.home / "bb.tar"), "bb")
        u.dy("run", "--rm", "--network", "none", "bb", "true")
        return u
    except (RuntimeError, AssertionError, OSError) as exc:
        print(f"(rootless skipped: {str(exc).strip().splitlines()[-1]})")
        u.stop_daemon()
        u.remove()
        return None


def start_remapped(env: dict, tar: Path) -> bool:
    """A daemon with ``--userns-remap default`` on ``env``'s root, with the image ``bb``."""
    from support import start_dockyard_daemon

    try:
        start_dockyard_daemon(env, "--userns-remap", "default")
    except RuntimeError as exc:
        print(f"(--userns-remap skipped: {exc})")
        return False
    subprocess.run([DOCKYARD, "import", str(tar), "bb"], check=True, env=env, stdout=subprocess.DEVNULL)
    probe = subprocess.run([DOCKYARD, "run", "--rm", "--network", "none", "bb", "true"], env=env, capture_output=True)
    if probe.returncode != 0:
        print(f"(--userns-remap skipped: {probe.stderr.decode().strip()})")
        return False
    return True


if __name__ == "__main__":
    from support import exit_on_sigterm

    exit_on_sigterm()
    sys.exit(main())
