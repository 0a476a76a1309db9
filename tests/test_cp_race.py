"""``docker cp`` against a hostile container (CVE-2018-15664's class): while the daemon copies,
a process in the container keeps swapping the directory being copied for a symlink to a host
path (and to ``/``). Archive PUT and GET (and ``dockyard cp`` both ways) go through many rounds
of that race; nothing outside the container may be read or written."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from support import needs_root


def runtime_available() -> bool:
    try:
        from dockyard.engine.runtime import binary

        binary()
        return True
    except Exception:
        return False


pytestmark = [needs_root, pytest.mark.skipif(not runtime_available(), reason="dockyard-runtime is not built")]

ROUNDS = 300       # API rounds of PUT and of GET, each
CLI_ROUNDS = 15    # `dockyard cp` rounds each way (a process each)
BUDGET = 60.0      # seconds for the API rounds, whichever ends first


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _host_listing(canary: Path) -> list[str]:
    return sorted(str(p.relative_to(canary)) for p in canary.rglob("*"))


@pytest.fixture
def racer(cli, rootfs_tar, tmp_path):
    """A running container whose process loops swapping /x/d for symlinks to ``canary`` (a host
    directory that also exists, as a decoy, inside the container) and to ``/``."""
    import dockyard

    cli("import", "-c", 'CMD ["/bin/sh"]', str(rootfs_tar), "bb")
    canary = tmp_path / "host-canary"
    canary.mkdir()
    secret = f"host-secret-{os.urandom(8).hex()}"
    (canary / "secret.txt").write_text(secret)
    loop = (f"mkdir -p /x/d {canary}; echo decoy > {canary}/secret.txt; echo inside > /x/d/secret.txt; "
            f"while :; do mv /x/d /x/r; ln -s {canary} /x/d; rm /x/d; ln -s / /x/d; rm /x/d; "
            f"ln -s {canary} /x/d; rm /x/d; mv /x/r /x/d; done")
    cid = cli("run", "-d", "bb", "sh", "-c", loop).stdout.decode().strip()
    try:
        with dockyard.Client(f"unix://{cli.run_dir}/dockyard.sock") as client:
            yield client.containers.get(cid), canary, secret
    finally:
        cli("rm", "-f", cid, check=False)


def _assert_host_untouched(canary: Path, secret: str, tag: str) -> None:
    assert _host_listing(canary) == ["secret.txt"], "a write landed in the host directory"
    assert (canary / "secret.txt").read_text() == secret
    assert not [p for p in os.listdir("/") if p.startswith(tag)], "a write landed in the host's /"


def test_archive_put_and_get_race_a_symlink_swap(racer):
    from dockyard.errors import DockyardError

    box, canary, secret = racer
    tag = f"dy-cprace-{os.getpid()}"
    payload = os.urandom(1 << 18)
    put_ok = get_ok = 0
    seen_inside = set()
    deadline = time.monotonic() + BUDGET
    for i in range(ROUNDS):
        if time.monotonic() > deadline:
            break
        try:
            box.put_archive("/x/d", _tar(f"{tag}-{i}", payload))
            put_ok += 1
        except DockyardError:
            pass  # the swap can leave /x/d missing at that instant: an error, never an escape
        for path in ("/x/d/secret.txt", "/x/d", "/x/d/"):
            try:
                data, stat = box.get_archive(path)
            except (DockyardError, ConnectionError):  # a body cut short: an error, not a leak
                continue
            get_ok += 1
            assert secret.encode() not in data, f"GET {path} returned the host's file"
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                for m in tf:
                    if m.isfile() and m.name.endswith("secret.txt"):
                        seen_inside.add(tf.extractfile(m).read())
    _assert_host_untouched(canary, secret, tag)
    # The race was run, and copies did go through it.
    assert put_ok > 0 and get_ok > 0, (put_ok, get_ok)
    assert seen_inside and seen_inside <= {b"inside\n", b"decoy\n"}, seen_inside
    assert box.client.containers.get(box.id).status == "running"


def test_docker_cp_both_ways_races_a_symlink_swap(racer, cli, tmp_path):
    box, canary, secret = racer
    tag = f"dy-cprace-cli-{os.getpid()}"
    src = tmp_path / f"{tag}.txt"
    src.write_bytes(os.urandom(1 << 16))
    out = tmp_path / "out"
    out.mkdir()
    copied_in = copied_out = 0
    # CLI_ROUNDS, then more (up to four times as many) until each way has got through once: how
    # often a copy meets the path whole depends on the machine's load (0 of 16 in one CI run)
    for i in range(CLI_ROUNDS * 4):
        if i >= CLI_ROUNDS and copied_in and copied_out:
            break
        if cli("cp", str(src), f"{box.id}:/x/d/", check=False).returncode == 0:
            copied_in += 1
        dest = out / str(i)
        dest.mkdir()
        for path in ("/x/d/secret.txt", "/x/d"):
            if cli("cp", f"{box.id}:{path}", str(dest), check=False).returncode == 0:
                copied_out += 1
    for p in out.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert secret.encode() not in p.read_bytes(), f"cp out copied the host's file ({p})"
    _assert_host_untouched(canary, secret, tag)
    assert copied_in > 0 and copied_out > 0, (copied_in, copied_out)


def test_cp_sees_volumes_not_proc_and_copy_up_stays_in_the_image(cli, rootfs_tar, tmp_path):
    """A running container's root is its mount namespace's view for cp (a bind mount's files are
    there) but not its /proc, /sys or /dev; a new volume's copy-up reads the image directory
    through a link the image left on the way scoped to the image, never the host's directory."""
    import json

    import dockyard

    cli("import", "-c", 'CMD ["/bin/sh"]', str(rootfs_tar), "bb")
    canary = tmp_path / "host-canary"
    (canary / "x").mkdir(parents=True)
    secret = f"host-secret-{os.urandom(8).hex()}"
    (canary / "x" / "secret.txt").write_text(secret)
    bind = tmp_path / "bind"
    bind.mkdir()
    # An image whose /data is an absolute link to the host-looking path, and that path inside
    # the image holds x/ with a decoy.
    maker = cli("run", "-d", "bb", "sh", "-c", f"mkdir -p {canary}/x && echo decoy > {canary}/x/secret.txt && "
                "ln -s " + str(canary) + " /data").stdout.decode().strip()
    cli("wait", maker)
    cli("commit", maker, "linked")
    cli("rm", maker)
    cid = cli("run", "-d", "-v", "fresh:/data/x", "-v", f"{bind}:/b", "linked", "sleep", "60").stdout.decode().strip()
    try:
        vol = Path(json.loads(cli("volume", "inspect", "fresh").stdout)[0]["Mountpoint"])
        copied = b"".join(p.read_bytes() for p in vol.rglob("*") if p.is_file())
        assert secret.encode() not in copied and b"decoy" in copied
        with dockyard.Client(f"unix://{cli.run_dir}/dockyard.sock") as client:
            box = client.containers.get(cid)
            box.put_archive("/b", _tar("via-cp.txt", b"into the bind\n"))
            assert (bind / "via-cp.txt").read_bytes() == b"into the bind\n"
            data, _ = box.get_archive("/")
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                names = set(tf.getnames())
            assert {"./bin/busybox", "./b/via-cp.txt", "./proc"} <= names
            assert not [n for n in names if n.startswith(("./proc/", "./sys/", "./dev/"))]
            from dockyard.errors import DockyardError

            with pytest.raises(DockyardError):
                box.get_archive("/proc/self/status")
            with pytest.raises(DockyardError):
                box.put_archive("/proc", _tar("x", b"x"))
            with pytest.raises(DockyardError):  # /proc is not entered from / either
                box.put_archive("/", _tar("proc/x", b"x"))
    finally:
        cli("rm", "-f", cid, check=False)
        cli("volume", "rm", "fresh", check=False)
        cli("rmi", "linked", check=False)
    assert sorted(os.listdir(canary)) == ["x"] and os.listdir(canary / "x") == ["secret.txt"]
