"""Container sizes and network counters, against dockyard's daemon and a private dockerd 20.10:

- ``GET /containers/{id}/json?size=1`` (``inspect --size``): ``SizeRw``, the bytes of the
  writable layer (symlinks not followed, a hardlinked file once), and ``SizeRootFs``, that plus
  the image;
- ``GET /containers/json?size=1`` (``ps -s``): the same on each entry, a zero left out, and the
  CLI's SIZE column "1.05MB (virtual 3.03MB)";
- ``GET /containers/{id}/stats``: ``networks`` holds the container's interfaces (not lo) with
  real counters, and none at all for ``--network none``.

Both daemons get the same image (one tar imported into each), so their numbers must be equal.
Traffic goes only between the host and the test's container, over the container's bridge: the
container fetches a payload from an HTTP server this test runs on the bridge's host address.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from support import make_busybox_rootfs, tar_dir
from test_network import dyn, pytestmark  # noqa: F401  (a fixture; root, runtime, iptables, ip)

IMAGE = "dysize:bb"
APPLETS = ("dd", "ln", "wget", "head")
MIB = 1024 * 1024
PAYLOAD = 300 * 1024  # what the stats test's container fetches


@pytest.fixture(scope="module")
def image_tar(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("sizes")
    root = make_busybox_rootfs(work / "rootfs")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    return tar_dir(root, work / "bb.tar")


class Side:
    """One daemon: its CLI (``dockyard`` or ``docker``) and its API over its unix socket."""

    def __init__(self, name: str, sock: Path, cli) -> None:
        self.name, self.sock, self._cli = name, str(sock), cli
        self.made: list[str] = []

    def cli(self, *args: str) -> str:
        return self._cli(*args).stdout.decode()

    def run(self, name: str, *args: str) -> str:
        self.made.append(name)
        return self.cli("run", "--name", name, *args).strip()

    def get(self, path: str) -> object:
        conn = http.client.HTTPConnection("localhost", timeout=60)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.sock)
        conn.sock = s
        try:
            conn.request("GET", "/v1.41" + path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, (self.name, path, resp.status, body)
            return json.loads(body)
        finally:
            conn.close()


@pytest.fixture(params=["dockyard", "dockerd"])
def side(request, image_tar):
    if request.param == "dockyard":
        cli = request.getfixturevalue("dyn")
        cli("import", "-c", 'CMD ["/bin/sh"]', str(image_tar), IMAGE)
        s = Side("dockyard", Path(cli.run_dir) / "dockyard.sock", cli)
        try:
            yield s  # then dyn checks that nothing is left: veths, mounts, rules, leases
        finally:
            if s.made:
                cli("rm", "-f", *s.made, check=False)
        return
    dockerd = request.getfixturevalue("dockerd")
    if not dockerd.docker("image", "inspect", IMAGE, check=False).returncode == 0:
        dockerd.docker("import", "-c", 'CMD ["/bin/sh"]', str(image_tar), IMAGE)
    s = Side("dockerd", dockerd.sock, dockerd.docker)
    try:
        yield s
    finally:
        if s.made:
            dockerd.docker("rm", "-f", *s.made, check=False)


def image_size(side: Side) -> int:
    return side.get(f"/images/{IMAGE}/json")["Size"]


WRITER = ("dd if=/dev/zero of=/big bs=1024 count=1024 2>/dev/null && ln /big /big2 && "
          "ln -s /big /lnk && ln -s /bin /binlink")
# 1 MiB once (two names, one inode), two symlinks of their target's length, /bin not followed
WRITTEN = MIB + len("/big") + len("/bin")


def test_inspect_size_counts_the_writable_layer_as_dockerd(side: Side) -> None:
    side.run("szw", IMAGE, "sh", "-c", WRITER)
    side.run("szidle", "-d", IMAGE, "sleep", "600")
    base = image_size(side)
    assert base > MIB  # the busybox binary, at least

    info = side.get("/containers/szw/json?size=1")
    assert (info["SizeRw"], info["SizeRootFs"]) == (WRITTEN, base + WRITTEN), side.name
    idle = side.get("/containers/szidle/json?size=1")
    assert (idle["SizeRw"], idle["SizeRootFs"]) == (0, base), side.name
    assert "SizeRw" not in side.get("/containers/szw/json") and "SizeRootFs" not in side.get("/containers/szw/json")
    # the CLI's --size, -f reading the fields
    assert side.cli("inspect", "--size", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "szw").split() == \
        [str(WRITTEN), str(base + WRITTEN)]
    assert side.cli("container", "inspect", "-s", "-f", "{{.SizeRw}}", "szidle").strip() == "0"


def test_ps_size_shows_the_sizes_as_docker(side: Side) -> None:
    from dockyard.units import human_size

    side.run("szw", IMAGE, "sh", "-c", WRITER)
    side.run("szidle", "-d", IMAGE, "sleep", "600")
    base = image_size(side)

    # (only this test's: the session's dockerd is shared)
    entries = {c["Names"][0]: c for c in side.get('/containers/json?all=1&size=1')
               if c["Names"][0] in ("/szw", "/szidle")}
    sizes = {name: {k: v for k, v in c.items() if k.startswith("Size")} for name, c in entries.items()}
    # a zero is left out, as dockerd's omitempty does
    assert sizes == {"/szw": {"SizeRw": WRITTEN, "SizeRootFs": base + WRITTEN},
                     "/szidle": {"SizeRootFs": base}}, side.name
    plain = side.get("/containers/json?all=1")
    assert all(not any(k.startswith("Size") for k in c) for c in plain), side.name

    want_w = f"1.05MB (virtual {human_size(base + WRITTEN, 3)})"
    want_idle = f"0B (virtual {human_size(base, 3)})"
    out = side.cli("ps", "-a", "-s").splitlines()
    assert out[0].split()[-1] == "SIZE" and out[0].index("SIZE") > out[0].index("NAMES")
    for name, want in (("szw", want_w), ("szidle", want_idle)):
        assert any(re.search(rf" {name} +{re.escape(want)}$", line) for line in out[1:]), out
    assert "SIZE" not in side.cli("ps", "-a").splitlines()[0]
    # a --format that uses .Size asks for the sizes without -s
    mine = [line for line in side.cli("ps", "-a", "--format", "{{.Names}}: {{.Size}}").splitlines()
            if line.split(":")[0] in ("szw", "szidle")]  # (the session's dockerd is shared)
    assert sorted(mine) == sorted([f"szw: {want_w}", f"szidle: {want_idle}"])


def test_docker_cli_ps_size_against_dockyard(dyn, image_tar) -> None:
    """The docker CLI itself renders dockyard's sizes as it renders dockerd's."""
    from support import need

    need("docker")
    dyn("import", "-c", 'CMD ["/bin/sh"]', str(image_tar), IMAGE)
    dyn("run", "--name", "szw", IMAGE, "sh", "-c", WRITER)
    env = dict(os.environ, DOCKER_HOST=f"unix://{dyn.run_dir}/dockyard.sock", DOCKER_CONFIG=str(dyn.run_dir))
    fmt = "{{.Names}} {{.Size}}"
    try:
        docker = subprocess.run(["timeout", "-s", "KILL", "60", "docker", "ps", "-a", "-s", "--format", fmt],
                                env=env, capture_output=True, text=True)
        ours = dyn("ps", "-a", "-s", "--format", fmt).stdout.decode()
    finally:
        dyn("rm", "-f", "szw")
    assert docker.returncode == 0, docker.stderr
    assert docker.stdout == ours
    assert docker.stdout.startswith("szw 1.05MB (virtual ")


class Payload(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(PAYLOAD))
        self.end_headers()
        self.wfile.write(os.urandom(PAYLOAD))

    def log_message(self, *args: object) -> None:
        pass


def _eth0(side: Side, name: str) -> dict:
    doc = side.get(f"/containers/{name}/stats?stream=0&one-shot=1")
    nets = doc.get("networks") or {}
    assert "lo" not in nets and set(nets) == {"eth0"}, (side.name, nets)
    return nets["eth0"]


def test_stats_network_counters_are_the_containers(side: Side) -> None:
    side.run("netc", "-d", IMAGE, "sleep", "600")
    gateway = side.get("/containers/netc/json")["NetworkSettings"]["Gateway"]
    assert gateway
    server = http.server.ThreadingHTTPServer((gateway, 0), Payload)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        before = _eth0(side, "netc")
        assert set(before) == {"rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
                               "tx_bytes", "tx_packets", "tx_errors", "tx_dropped"}
        side.cli("exec", "netc", "wget", "-q", "-O", "/dev/null", f"http://{gateway}:{server.server_port}/")
        after = _eth0(side, "netc")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert after["rx_bytes"] - before["rx_bytes"] >= PAYLOAD, (side.name, before, after)
    assert after["rx_packets"] > before["rx_packets"] and after["tx_packets"] > before["tx_packets"]
    assert after["tx_bytes"] > before["tx_bytes"]
    assert (after["rx_errors"], after["tx_errors"]) == (0, 0)

    # the CLI's NET I/O column: received / sent, both real
    out = side.cli("stats", "--no-stream", "--format", "{{.Name}} {{.NetIO}}", "netc").split()
    assert out[0] == "netc" and out[2] == "/", out
    assert out[1].endswith("kB") and float(out[1][:-2]) >= PAYLOAD / 1000, out
    assert out[3] != "0B", out


def test_stats_has_no_networks_without_a_network_of_its_own(side: Side) -> None:
    side.run("nonet", "-d", "--network", "none", IMAGE, "sleep", "600")
    side.run("hostnet", "-d", "--network", "host", IMAGE, "sleep", "600")
    for name in ("nonet", "hostnet"):
        doc = side.get(f"/containers/{name}/stats?stream=0&one-shot=1")
        assert "networks" not in doc, (side.name, name, doc.get("networks"))
    side.cli("stop", "-t", "0", "nonet")
    assert "networks" not in side.get("/containers/nonet/stats?stream=0")
