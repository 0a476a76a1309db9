"""Live restore at some scale: the daemon is killed (-9) with many running containers, some exit
while it is down; the next daemon records every missed exit once, applies each restart policy
once, and keeps watching the rest (their exits are events: a stop is seen at once)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from test_daemon import create, daemon, pytestmark, wait  # noqa: F401  (fixture and marks)

N_LONG, N_SHORT = 90, 10  # the scale issue's case: 100 running, 10 of them exit while no daemon runs


def _gated_exit(i: int) -> list[str]:
    """Exit i+1 once the test opens the gate (a file in a bind-mounted directory)."""
    return ["sh", "-c", f"while [ ! -e /gate/go ]; do sleep 0.05; done; exit {i + 1}"]


def test_live_restore_with_many_containers(daemon, tmp_path):
    d = daemon
    gate = tmp_path / "gate"
    gate.mkdir()
    none = {"NetworkMode": "none"}
    longs = [create(d, "sleep", "300", HostConfig=none) for _ in range(N_LONG)]
    shorts = []
    for i in range(N_SHORT):
        policy = {"Name": "on-failure", "MaximumRetryCount": 1} if i % 2 else {"Name": "no"}
        shorts.append(create(d, *_gated_exit(i),
                             HostConfig={**none, "Binds": [f"{gate}:/gate"], "RestartPolicy": policy}))
    for cid in longs + shorts:
        d.ok("POST", f"/containers/{cid}/start")
    pids = {cid: d.ok("GET", f"/containers/{cid}/json")["State"]["Pid"] for cid in longs}
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    # the short ones exit while no daemon runs (and the restarted ones would exit again at once)
    (gate / "go").touch()
    for cid in shorts:
        state = subprocess.run(["sh", "-c", f"until [ -e {d.root}/containers/{cid}/exit.json ]; do sleep 0.05; done"],
                               timeout=30)
        assert state.returncode == 0
    os.unlink(d.sock)
    restarted_at = time.time()
    d.start()
    for i, cid in enumerate(shorts):
        if i % 2:
            # on-failure:1: restarted once, it exits again at once (the gate is open); then
            # nothing more
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                info = d.ok("GET", f"/containers/{cid}/json")
                if info["RestartCount"] == 1 and not info["State"]["Running"]:
                    break
                time.sleep(0.1)
        info = d.ok("GET", f"/containers/{cid}/json")
        assert info["RestartCount"] == i % 2
        assert (info["State"]["Status"], info["State"]["ExitCode"]) == ("exited", i + 1)
    # each missed exit said once by the new daemon (and the restarted one's own exit once more)
    events = d.ok("GET", f"/events?since={restarted_at - 1:.3f}&until={time.time() + 1:.3f}")
    for i, cid in enumerate(shorts):
        dies = [e for e in events if e.get("id") == cid and e["Action"] == "die"]
        starts = [e for e in events if e.get("id") == cid and e["Action"] == "start"]
        assert (len(dies), len(starts)) == (1 + i % 2, i % 2), (i, dies, starts)
    for cid, pid in pids.items():
        assert d.ok("GET", f"/containers/{cid}/json")["State"]["Pid"] == pid
        os.kill(pid, 0)
    # the ones still running are watched: a stop returns with the exit recorded
    for cid in longs[:5]:
        d.ok("POST", f"/containers/{cid}/stop?t=0")
        assert d.ok("GET", f"/containers/{cid}/json")["State"]["Status"] == "exited"
    for cid in longs + shorts:
        d.ok("DELETE", f"/containers/{cid}?force=1")
    assert d.ok("GET", "/containers/json?all=1") == []
    # nothing leaked: no process of theirs, no runtime state, no mount (the fixture checks mounts)
    for pid in pids.values():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] == "Z", f"process {pid} outlived its container"
    runtime = d.run / "runtime"
    assert not runtime.exists() or os.listdir(runtime) == []


def test_a_daemon_whose_files_are_numbered_past_1024(daemon, cli):
    """At 1,000 containers the daemon holds more than 1,024 files (a pidfd each): every fd it
    opens then has a number select() refuses.  The same daemon started with fds 3 to 1,100 taken
    runs, attaches, execs (with a TTY) and force-removes a container."""
    import resource

    import pytest

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the open-files limit ({hard}) is too low to take 1,100 files")
    d = daemon
    d.stop()

    def take_low_fds() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
        null = os.open(os.devnull, os.O_RDONLY)
        for n in range(3, 1100):
            if n != null:
                os.dup2(null, n)

    exe = os.path.join(os.path.dirname(sys.executable), "dockyard")
    with open(d.log, "ab") as log:
        d.proc = subprocess.Popen([exe, "daemon", "-H", f"unix://{d.sock}"], env=d.env, stdout=subprocess.DEVNULL,
                                  stderr=log, close_fds=False, preexec_fn=take_low_fds)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if d.request("GET", "/_ping")[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
    assert len(os.listdir(f"/proc/{d.proc.pid}/fd")) > 1100
    assert cli("run", "--rm", "--network", "none", "bb", "echo", "attached").stdout == b"attached\n"
    cli("run", "-d", "--network", "none", "--name", "fds", "bb", "sleep", "60")
    assert cli("exec", "-t", "fds", "echo", "tty").stdout == b"tty\r\n"
    assert cli("rm", "-f", "fds").stdout == b"fds\n"
    assert "filedescriptor out of range" not in d.log.read_text()
