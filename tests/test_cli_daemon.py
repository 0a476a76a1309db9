"""The CLI finds its daemon: ``-H``, ``$DOCKYARD_HOST``, or the default socket, started on demand
for root (and said once); a daemon refuses a CLI that names another store."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from support import needs_root, stop_daemon

pytestmark = needs_root

EXE = str(Path(sys.executable).with_name("dockyard"))


@pytest.fixture
def places(tmp_path):
    """A store and a short run dir of this test's own, and whatever daemons it starts stopped."""
    run = Path(tempfile.mkdtemp(prefix="dyrun-", dir="/tmp"))
    other = Path(tempfile.mkdtemp(prefix="dyrun-", dir="/tmp"))
    env = dict(os.environ, DOCKYARD_ROOT=str(tmp_path / "root"), DOCKYARD_RUN=str(run))
    env.pop("DOCKYARD_HOST", None)
    try:
        yield env, run, other
    finally:
        for d in (run, other):
            stop_daemon(d, tmp_path / "root")
            subprocess.run(["rm", "-rf", str(d)], check=False)


def dy(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_first_command_starts_the_daemon_and_says_so_once(places):
    env, run, _ = places
    first = dy(env, "images", "-q")
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""
    sock = run / "dockyard.sock"
    notice = first.stderr.strip().splitlines()
    assert len(notice) == 1 and notice[0].startswith(f"dockyard: no daemon was listening on unix://{sock}; started one")
    pid = int((run / "dockyard.pid").read_text())
    assert f"DOCKYARD_RUN={run}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    second = dy(env, "ps", "-a")
    assert second.returncode == 0 and second.stderr == ""
    assert int((run / "dockyard.pid").read_text()) == pid  # the same daemon, not a second one


def test_an_explicit_address_is_used_and_never_started(places):
    env, run, other = places
    nowhere = f"unix://{other}/nope.sock"
    for args, extra in ((["-H", nowhere, "ps"], {}), (["ps"], {"DOCKYARD_HOST": nowhere})):
        proc = dy(dict(env, **extra), *args)
        assert proc.returncode == 1
        assert proc.stderr == f"Cannot connect to the dockyard daemon at {nowhere}. Is the dockyard daemon running?\n"
    assert not (other / "nope.sock").exists() and not (run / "dockyard.sock").exists()
    # A daemon on a socket of its own is reached through -H and $DOCKYARD_HOST.
    daemon = subprocess.Popen([EXE, "daemon", "-H", f"unix://{other}/d.sock"], env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if (other / "d.sock").exists():
                break
            subprocess.run(["sleep", "0.02"])
        assert dy(env, "-H", f"unix://{other}/d.sock", "volume", "create", "viaflag").stdout == "viaflag\n"
        listed = dy(dict(env, DOCKYARD_HOST=f"unix://{other}/d.sock"), "volume", "ls", "-q")
        assert listed.stdout == "viaflag\n" and listed.stderr == ""
        assert not (run / "dockyard.sock").exists()  # nothing started on the default socket
        assert dy(env, "-H", f"unix://{other}/d.sock", "volume", "rm", "viaflag").returncode == 0
    finally:
        daemon.terminate()
        daemon.wait(30)


def test_a_daemon_refuses_a_cli_of_another_store(places, tmp_path):
    env, run, _ = places
    assert dy(env, "ps").returncode == 0
    proc = dy(dict(env, DOCKYARD_ROOT=str(tmp_path / "elsewhere")), "ps")
    assert proc.returncode == 1
    assert proc.stderr == (f"Error response from daemon: this daemon serves the root {tmp_path / 'root'}, not "
                           f"{tmp_path / 'elsewhere'} (set DOCKYARD_RUN or -H to reach the daemon of that root)\n")
    assert not (tmp_path / "elsewhere").exists()
