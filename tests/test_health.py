"""Healthchecks, with a real dockerd as the oracle (the docker CLI drives both daemons): the
--health-* flags and the image's HEALTHCHECK make ``Config.Healthcheck``; the daemon probes by
exec; ``State.Health`` goes starting -> unhealthy -> healthy with dockerd's log entries;
``health_status`` events; ``ps`` shows ``(healthy)`` and filters on ``health``; a probe that
outlives its timeout is killed; no probes after stop; probes go on after a daemon restart."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time

import pytest

from test_daemon import daemon, pytestmark  # noqa: F401  (fixture and marks)
from test_docker_cli import IMG, both  # noqa: F401

HC = ["--health-cmd", "test -e /tmp/ok && echo fine", "--health-interval", "300ms", "--health-retries", "2"]


@pytest.fixture
def sides(both, daemon, dockerd):
    """[(docker CLI call, its environment, the busybox image)] for dockyard's daemon and dockerd."""
    ours, theirs = both
    return [(ours, daemon.docker_env, IMG), (theirs, dockerd.env, "dybusybox:base")]


def wait_health(env: dict, name: str, status: str, since: str, timeout: float = 30) -> None:
    """Follow the daemon's events until ``name`` says ``health_status: <status>`` (no polling)."""
    proc = subprocess.Popen(["docker", "events", "--since", since, "--filter", f"container={name}",
                             "--filter", "event=health_status", "--format", "{{.Action}}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                raise AssertionError(f"{name}: no 'health_status: {status}' within {timeout}s")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"{name}: the event stream ended before 'health_status: {status}'")
            buf += chunk
            if f"health_status: {status}\n".encode() in buf:
                return
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def _inspect(side, name: str, what: str):
    return json.loads(side("inspect", "-f", "{{json " + what + "}}", name).stdout)


def test_health_cycle_matches_dockerd(both, sides):
    made = both[0].made
    for side, env, img in sides:
        made.append("dyhc1")
        since = str(time.time() - 1)
        assert side("run", "-d", "--name", "dyhc1", *HC, img, "sleep", "60").returncode == 0
        assert _inspect(side, "dyhc1", ".State.Health.Status") == "starting"
        assert side("ps", "--format", "{{.Status}}", "-f", "name=dyhc1").stdout.decode().endswith("(health: starting)\n")
        wait_health(env, "dyhc1", "unhealthy", since)
        health = _inspect(side, "dyhc1", ".State.Health")
        assert health["Status"] == "unhealthy" and health["FailingStreak"] >= 2
        assert {k for e in health["Log"] for k in e} == {"Start", "End", "ExitCode", "Output"}
        assert all(e["ExitCode"] == 1 for e in health["Log"])
        assert side("ps", "-q", "-f", "health=unhealthy").stdout.strip() != b""
        side("exec", "dyhc1", "touch", "/tmp/ok")
        wait_health(env, "dyhc1", "healthy", since)
        health = _inspect(side, "dyhc1", ".State.Health")
        assert (health["Status"], health["FailingStreak"]) == ("healthy", 0)
        assert health["Log"][-1]["ExitCode"] == 0 and health["Log"][-1]["Output"] == "fine\n"
        assert len(health["Log"]) <= 5
        assert side("ps", "--format", "{{.Status}}", "-f", "health=healthy").stdout.decode().endswith("(healthy)\n")
        assert side("ps", "-q", "-f", "health=unhealthy").stdout == b""
        assert side("ps", "-q", "-f", "health=none").stdout == b""
    ours, theirs = both
    a, b = (_inspect(s, "dyhc1", ".Config.Healthcheck") for s in both)
    assert a == b == {"Test": ["CMD-SHELL", "test -e /tmp/ok && echo fine"], "Interval": 300_000_000, "Retries": 2}
    a, b = (s("ps", "-f", "health=sick") for s in both)
    assert (a.returncode, a.stderr) == (b.returncode, b.stderr)
    # stopped: no more probes; the last health stays in inspect, as dockerd keeps it
    for side in both:
        side("stop", "-t", "0", "dyhc1")
    logs = [len(_inspect(s, "dyhc1", ".State.Health.Log")) for s in both]
    time.sleep(1)  # (three probe intervals: that none came is what is tested)
    assert [len(_inspect(s, "dyhc1", ".State.Health.Log")) for s in both] == logs
    a, b = (_inspect(s, "dyhc1", ".State.Health.Status") for s in both)
    assert a == b


def test_image_healthcheck_merge_and_none(both, sides, tmp_path):
    made = both[0].made
    for n, (side, env, img) in enumerate(sides):
        ctx = tmp_path / str(n)
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {img}\nHEALTHCHECK --interval=5m --retries=4 CMD true\n")
        subprocess.run(["docker", "build", "-q", "-t", "dyhcimg", str(ctx)], env=dict(env, DOCKER_BUILDKIT="0"),
                       check=True, capture_output=True)
        made += ["dyhc2", "dyhc3", "dyhc4"]
        side("create", "--name", "dyhc2", "dyhcimg")
        side("create", "--name", "dyhc3", "--health-interval", "2s", "dyhcimg")
        side("create", "--name", "dyhc4", "--no-healthcheck", "dyhcimg")
    for name in ("dyhc2", "dyhc3", "dyhc4"):
        a, b = (_inspect(s, name, ".Config.Healthcheck") for s in both)
        assert a == b, name
    assert _inspect(both[0], "dyhc3", ".Config.Healthcheck") == {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000,
                                                                  "Retries": 4}
    # --no-healthcheck: Test NONE, the rest merged from the image as dockerd merges it
    assert _inspect(both[0], "dyhc4", ".Config.Healthcheck") == {"Test": ["NONE"], "Interval": 300_000_000_000,
                                                                  "Retries": 4}
    # never started: no State.Health yet
    a, b = (_inspect(s, "dyhc2", ".State.Health") for s in both)
    assert a == b is None
    for side in both:
        side("rm", "dyhc2", "dyhc3", "dyhc4")
        side("rmi", "dyhcimg")


def test_flag_and_api_errors_match(both, sides):
    for args in (["--no-healthcheck", "--health-cmd", "true"], ["--health-interval", "-1s", "--health-cmd", "true"],
                 ["--health-interval", "soon"], ["--health-retries", "-2", "--health-cmd", "true"]):
        a, b = (s("create", *args, img) for s, img in zip(both, (IMG, "dybusybox:base")))
        assert (a.returncode, a.stderr) == (b.returncode, b.stderr), args
        assert a.returncode != 0
    docker = pytest.importorskip("docker")
    for side, env, img in sides:
        host = env["DOCKER_HOST"]
        api = docker.APIClient(base_url=host)
        try:
            for hc, want in (({"Test": ["CMD", "true"], "Interval": 100}, "Interval in Healthcheck cannot be less than 1ms"),
                             ({"Test": ["CMD", "true"], "Retries": -1}, "Retries in Healthcheck cannot be negative"),
                             ({"Test": ["CMD", "true"], "Timeout": 5}, "Timeout in Healthcheck cannot be less than 1ms")):
                with pytest.raises(docker.errors.APIError) as info:
                    api.create_container(img, "true", healthcheck=hc)
                assert info.value.status_code == 400 and want in str(info.value.explanation)
        finally:
            api.close()


def test_a_probe_past_its_timeout_is_killed(both, sides):
    made = both[0].made
    for side, env, img in sides:
        made.append("dyhc5")
        since = str(time.time() - 1)
        side("run", "-d", "--name", "dyhc5", "--health-cmd", "sleep 7", "--health-timeout", "200ms",
             "--health-interval", "300ms", "--health-retries", "1", img, "sleep", "60")
        wait_health(env, "dyhc5", "unhealthy", since)
        entry = _inspect(side, "dyhc5", ".State.Health.Log")[0]
        assert (entry["ExitCode"], entry["Output"]) == (-1, "Health check exceeded timeout (200ms)")
    # ours leaves no probe behind in the container (each is killed at its timeout)
    side = both[0]
    side("stop", "-t", "0", "dyhc5")
    side("start", "dyhc5")
    top = side("top", "dyhc5").stdout.decode()
    assert "sleep 7" not in top, top


def test_a_probe_whose_command_cannot_start(both, sides):
    """dockerd records -1 and the runtime's reason, not a shell's 127, for a probe command that
    does not exist (the exec form: no shell in between)."""
    import docker

    both[0].made.append("dyhc6")
    for side, env, img in sides:
        api = docker.APIClient(base_url=env["DOCKER_HOST"], version="1.41")
        try:
            since = str(time.time() - 1)
            cid = api.create_container(img, ["sleep", "60"], name="dyhc6", healthcheck={
                "Test": ["CMD", "/no/such/probe"], "Interval": 300_000_000, "Retries": 1})["Id"]
            api.start(cid)
            wait_health(env, "dyhc6", "unhealthy", since)
            entry = api.inspect_container(cid)["State"]["Health"]["Log"][0]
            assert entry["ExitCode"] == -1, entry
            assert entry["Output"].startswith("OCI runtime exec failed: exec failed: "), entry
            assert "/no/such/probe" in entry["Output"], entry
        finally:
            api.remove_container("dyhc6", force=True)
            api.close()


def test_probes_go_on_after_a_daemon_restart(daemon):
    since = str(time.time() - 1)
    daemon.docker("run", "-d", "--name", "dyhc6", *HC, "bb", "sleep", "60")
    wait_health(daemon.docker_env, "dyhc6", "unhealthy", since)
    daemon.stop()
    daemon.start()
    since = str(time.time() - 1)
    daemon.docker("exec", "dyhc6", "touch", "/tmp/ok")
    wait_health(daemon.docker_env, "dyhc6", "healthy", since)
    daemon.docker("rm", "-f", "dyhc6")


def test_dockyard_cli_flags(cli, daemon, both):
    """dockyard's own CLI: the flags make the same Config.Healthcheck, ps shows the status, and
    bad flags are refused with the docker CLI's words (exit 125)."""
    ours, theirs = both
    since = str(time.time() - 1)
    cli("run", "-d", "--name", "dyhc7", "--health-cmd", "true", "--health-interval", "1m30s",
        "--health-start-period", "10s", "--health-start-interval", "200ms", "--health-timeout", "2s", IMG, "sleep", "60")
    try:
        assert _inspect(ours, "dyhc7", ".Config.Healthcheck") == {
            "Test": ["CMD-SHELL", "true"], "Interval": 90_000_000_000, "Timeout": 2_000_000_000,
            "StartPeriod": 10_000_000_000, "StartInterval": 200_000_000}
        # in the start period the probes come every start interval, so this does not take 90s
        wait_health(daemon.docker_env, "dyhc7", "healthy", since)
        assert cli("ps", "--format", "{{.Names}} {{.Status}}").stdout.decode().endswith(" (healthy)\n")
        assert cli("ps", "-q", "--filter", "health=healthy").stdout.decode().strip() == \
            cli("inspect", "-f", "{{.Id}}", "dyhc7").stdout.decode().strip()[:12]
    finally:
        cli("rm", "-f", "dyhc7")
    for args in (["--health-interval", "soon"], ["--no-healthcheck", "--health-retries", "1"],
                 ["--health-timeout", "-3s", "--health-cmd", "true"]):
        mine = cli("create", *args, IMG, check=False)
        docker = theirs("create", *args, "dybusybox:base")
        assert mine.returncode == docker.returncode == 125, args
        first = docker.stderr.decode().splitlines()[0].removeprefix("docker: ").rstrip(".")
        assert mine.stderr.decode().rstrip(".\n") == first, args
    assert cli("ps", "-aq").stdout == b""
