"""``run`` and ``create`` of an image that is only in a registry pull it first, as docker does:
dockyard's CLI, the docker CLI and docker-py against dockyard's daemon, with a real dockerd
(and the docker CLI) as the oracle, all pulling from one loopback ``dockyard registry serve``.
Also ``--pull always|missing|never`` and ``-q``, and ``rmi`` of a pulled tag, which takes the
repository's digest reference with it (else the next ``run`` would find the image locally)."""

from __future__ import annotations

import re
import socket

import pytest

from support import need
from test_daemon import daemon, pytestmark  # noqa: F401  (fixture and marks)
from test_docker_cli import registry_serve


@pytest.fixture
def remote(daemon, tmp_path):
    """A loopback registry holding ``dy/app:1`` (our busybox) and nothing of it left locally."""
    reg, port = registry_serve(tmp_path / "reg")
    try:
        name = f"127.0.0.1:{port}/dy/app:1"
        daemon.docker("tag", "bb", name)
        daemon.docker("push", name)
        daemon.docker("rmi", name)
        daemon.docker("rmi", "bb")
        assert daemon.docker("images", "-aq").stdout == b""
        yield name
    finally:
        reg.terminate()
        reg.wait(10)


def _shape(text: str) -> list[str]:
    """Progress lines with layer ids, digests and the port made comparable."""
    text = re.sub(r"sha256:[0-9a-f]{64}", "sha256:D", text)
    text = re.sub(r"^[0-9a-f]{12}: ", "L: ", text, flags=re.M)
    # dockerd says these or not, by races between its download and its reports
    racy = ("L: Verifying Checksum", "L: Download complete", "L: Waiting")
    return [line for line in text.splitlines() if line not in racy]


def test_dockyard_run_pulls_a_missing_image(cli, daemon, remote):
    proc = cli("run", "--rm", remote, "echo", "pulled")
    assert proc.stdout == b"pulled\n"
    err = _shape(proc.stderr.decode())
    assert err[0] == f"Unable to find image '{remote}' locally"
    assert err[1] == "1: Pulling from dy/app"
    assert "L: Pull complete" in err
    assert err[-2:] == ["Digest: sha256:D", f"Status: Downloaded newer image for {remote}"]
    # now local: no pull, nothing on stderr
    proc = cli("run", "--rm", remote, "echo", "again")
    assert (proc.stdout, proc.stderr) == (b"again\n", b"")


def test_pull_policies_and_quiet(cli, daemon, remote):
    proc = cli("run", "--rm", "--pull", "never", remote, "true", check=False)
    assert (proc.returncode, proc.stderr.decode()) == (125, f"Error response from daemon: No such image: {remote}\n")
    proc = cli("create", "-q", remote)
    assert proc.stderr == b"" and re.fullmatch(rb"[0-9a-f]{64}\n", proc.stdout)
    cli("rm", proc.stdout.decode().strip())
    proc = cli("run", "--rm", "--pull", "always", remote, "echo", "fresh")
    assert proc.stdout == b"fresh\n"
    assert _shape(proc.stderr.decode()) == ["1: Pulling from dy/app", "Digest: sha256:D",
                                            f"Status: Image is up to date for {remote}"]
    proc = cli("run", "--rm", "--pull", "sometimes", remote, "true", check=False)
    assert (proc.returncode, proc.stderr) == (
        125, b"""invalid pull option: 'sometimes': must be one of "always", "missing" or "never"\n""")
    missing = remote.replace(":1", ":2")
    proc = cli("run", "--rm", missing, "true", check=False)
    assert proc.returncode == 125
    lines = proc.stderr.decode().splitlines()
    assert lines[0] == f"Unable to find image '{missing}' locally"
    assert lines[1].startswith(f"Error response from daemon: manifest for {missing} not found: ") and len(lines) == 2
    assert cli("ps", "-aq").stdout == b""


def test_docker_cli_run_pulls_like_dockerd(daemon, dockerd, remote):
    """The docker CLI does the pull itself on a 404 from create: the same lines from both daemons."""
    need("docker")
    ours = daemon.docker("run", "--rm", remote, "echo", "pulled", check=False)
    theirs = dockerd.docker("run", "--rm", remote, "echo", "pulled", check=False)
    try:
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (0, b"pulled\n")
        assert _shape(ours.stderr.decode()) == _shape(theirs.stderr.decode())
        # rmi of the pulled tag: the same records (its digest reference goes too)
        a = daemon.docker("rmi", remote).stdout.decode()
        b = dockerd.docker("rmi", remote).stdout.decode()
        assert _shape(a)[:2] == _shape(b)[:2] and _shape(a)[1].startswith("Untagged: ") and "@sha256:" in a
        repo = remote.rsplit(":", 1)[0]  # (the session's dockerd is shared: only this repository's)
        assert daemon.docker("images", "-aq", repo).stdout == dockerd.docker("images", "-aq", repo).stdout == b""
        # a tag the registry lacks: the same error
        missing = remote.replace(":1", ":2")
        ours = daemon.docker("run", "--rm", missing, "true", check=False)
        theirs = dockerd.docker("run", "--rm", missing, "true", check=False)
        assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)
        # --pull always on an image that is there: only the digest and "up to date"
        for side in (daemon, dockerd):
            side.docker("pull", "-q", remote)
        ours = daemon.docker("run", "--rm", "--pull", "always", remote, "true", check=False)
        theirs = dockerd.docker("run", "--rm", "--pull", "always", remote, "true", check=False)
        assert (ours.returncode, _shape(ours.stderr.decode())) == (theirs.returncode, _shape(theirs.stderr.decode()))
    finally:
        dockerd.docker("rmi", "-f", remote, check=False)


def test_docker_py_containers_run_pulls(daemon, remote):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=f"unix://{daemon.sock}")
    try:
        assert client.containers.run(remote, ["echo", "pulled"], remove=True) == b"pulled\n"
        assert client.images.get(remote).tags == [remote]
    finally:
        client.close()


def test_a_failed_pull_leaves_no_container(cli, daemon, remote):
    """A registry that is gone: the pull's error, exit 125, no container and no image."""
    port = int(remote.split(":")[1].split("/")[0])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    name = remote.replace(f":{port}/", f":{dead}/")
    proc = cli("run", "--rm", name, "true", check=False)
    assert proc.returncode == 125
    lines = proc.stderr.decode().splitlines()
    assert lines[0] == f"Unable to find image '{name}' locally" and lines[1].startswith("Error response from daemon: ")
    assert len(lines) == 2
    assert cli("ps", "-aq").stdout == b"" and cli("images", "-q").stdout == b""


def test_build_pull_gets_the_newer_base(cli, daemon, remote, tmp_path):
    """``build --pull``: FROM is pulled even when present, so a base pushed anew is used; without
    it, the local copy is."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {remote}\nRUN cat /base.txt 2>/dev/null || echo none\n")
    cli("pull", "-q", remote)
    # a new image under the same tag in the registry, from this daemon (then its tag is moved back)
    cid = cli("create", remote, "sh", "-c", "echo two > /base.txt").stdout.decode().strip()
    cli("start", "-a", cid)
    old_id = cli("inspect", "-f", "{{.Id}}", remote).stdout.decode().strip()
    cli("commit", cid, remote)
    cli("push", remote)
    cli("rm", cid)
    cli("tag", old_id, remote)
    out = cli("build", "--no-cache", "-t", "dyb:plain", str(ctx)).stdout.decode()
    assert "Pulling from" not in out and "\nnone\n" in out
    out = cli("build", "--no-cache", "--pull", "-t", "dyb:pulled", str(ctx)).stdout.decode()
    assert "1: Pulling from dy/app" in out and f"Status: Downloaded newer image for {remote}" in out
    assert "\ntwo\n" in out
    out = cli("build", "--pull", "-t", "dyb:pulled", str(ctx)).stdout.decode()
    assert f"Status: Image is up to date for {remote}" in out
