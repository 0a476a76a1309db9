"""``dockyard.Client`` and docker-py (PyPI ``docker``) against the daemon."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile

import pytest

from test_daemon import daemon, pytestmark  # noqa: F401  (fixture and marks)


@pytest.fixture
def client(daemon):
    import dockyard

    with dockyard.Client(f"unix://{daemon.sock}") as c:
        yield c


def test_client_import_is_light():
    code = "import sys, dockyard.client; bad = [m for m in ('dockyard.engine', 'sqlite3', 'click', 'asyncio') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert out == b"[]\n"


def test_client_containers(client):
    import dockyard
    from dockyard.errors import Conflict, ImageNotFound, InvalidArgument, NotFound

    assert client.ping() and client.version()["ApiVersion"] >= "1.44"
    assert client.containers.run("bb", ["sh", "-c", "echo hi; echo err >&2"], remove=True) == b"hi\n"
    with pytest.raises(dockyard.client.ContainerError) as info:
        client.containers.run("bb", "sh -c 'echo bad >&2; exit 3'", remove=True)
    assert info.value.exit_status == 3 and info.value.stderr == b"bad\n"
    c = client.containers.run("bb", ["sleep", "30"], detach=True, name="sdk", labels={"k": "v"})
    assert c.status == "running" and c.name == "sdk" and c.labels["k"] == "v" and c.short_id == c.id[:12]
    assert [x.id for x in client.containers.list()] == [c.id]
    assert [x.id for x in client.containers.list(filters={"label": "k=v"})] == [c.id]
    res = c.exec_run("sh -c 'echo x; echo y >&2; exit 4'")
    # stdout and stderr are separate pipes: their relative order is not defined (nor in docker)
    assert (res.exit_code, sorted(res.output.splitlines())) == (4, [b"x", b"y"])
    code, (out, err) = c.exec_run(["sh", "-c", "echo x; echo y >&2"], demux=True)
    assert (code, out, err) == (0, b"x\n", b"y\n")
    assert c.exec_run("env", environment={"A": "b"}, workdir="/tmp").output.count(b"A=b") == 1
    with pytest.raises(Conflict):
        c.remove()
    with pytest.raises(Conflict):
        client.containers.create("bb", "true", name="sdk")
    c.stop(timeout=1)
    c.reload()
    assert c.status == "exited"
    assert client.containers.get("sdk").id == c.id
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info_ = tarfile.TarInfo("note.txt")
        info_.size = 4
        tf.addfile(info_, io.BytesIO(b"note"))
    c.put_archive("/tmp", buf.getvalue())
    data, stat = c.get_archive("/tmp/note.txt")
    assert stat["name"] == "note.txt" and stat["size"] == 4 and b"note" in data
    c.remove()
    with pytest.raises(NotFound):
        client.containers.get("sdk")
    with pytest.raises(ImageNotFound):
        client.containers.create("nosuchimage", "true")
    with pytest.raises(InvalidArgument):
        client.containers.create("bb", "true", restart_policy={"Name": "sometimes"})
    assert issubclass(type(info.value), dockyard.errors.DockyardError)


def test_client_images(client, tmp_path):
    from dockyard.errors import ImageNotFound

    (img,) = client.images.list()
    assert img.tags == ["bb:latest"] and img.short_id.startswith("sha256:")
    img.tag("sdk/img", "2")
    img.reload()
    assert sorted(img.tags) == ["bb:latest", "sdk/img:2"]
    data = img.save()
    assert client.images.remove("sdk/img:2") == [{"Untagged": "sdk/img:2"}]
    assert [i.id for i in client.images.load(data)] == [img.id]
    assert img.history()[0]["Id"] == img.id
    with pytest.raises(ImageNotFound):
        client.images.get("nosuch:1")


# -- docker-py ----------------------------------------------------------------------------------------

@pytest.fixture
def dockerpy(daemon):
    docker = pytest.importorskip("docker")
    c = docker.DockerClient(base_url=f"unix://{daemon.sock}", version="auto")
    yield c
    c.close()


def test_docker_py_common_calls(dockerpy):
    import docker

    c = dockerpy
    assert c.ping() is True
    assert c.version()["ApiVersion"] >= "1.44"
    assert c.containers.run("bb", ["sh", "-c", "echo hello"], remove=True) == b"hello\n"
    with pytest.raises(docker.errors.ContainerError) as info:
        c.containers.run("bb", ["sh", "-c", "exit 3"], remove=True)
    assert info.value.exit_status == 3
    ct = c.containers.run("bb", ["sh", "-c", "echo started; sleep 30"], detach=True, name="dpy")
    assert ct.name == "dpy"
    ct.reload()
    assert ct.status == "running"
    import time

    time.sleep(0.3)
    assert ct.logs() == b"started\n"
    res = ct.exec_run(["sh", "-c", "echo in-exec; exit 5"])
    assert (res.exit_code, res.output) == (5, b"in-exec\n")
    assert [x.name for x in c.containers.list()] == ["dpy"]
    assert c.containers.get("dpy").id == ct.id
    ct.stop(timeout=1)
    ct.reload()
    assert ct.status == "exited"
    ct.remove()
    with pytest.raises(docker.errors.NotFound):
        c.containers.get("dpy")
    with pytest.raises(docker.errors.ImageNotFound):
        c.images.get("nosuchimage:1")
    with pytest.raises(docker.errors.APIError) as err:
        c.containers.create("bb", "true", restart_policy={"Name": "sometimes"})
    assert err.value.status_code == 400
    images = c.images.list()
    assert [i.tags for i in images] == [["bb:latest"]]
    img = c.images.get("bb")
    img.tag("dpy/img", "1")
    assert "dpy/img:1" in c.images.get("dpy/img:1").tags
    c.images.remove("dpy/img:1")
    ct = c.containers.create("bb", "true", name="dpy2")
    ct2 = c.containers.create("bb", "true", name="dpy3")
    with pytest.raises(docker.errors.APIError) as err:
        c.containers.create("bb", "true", name="dpy2")
    assert err.value.status_code == 409
    ct.start()
    assert ct.wait()["StatusCode"] == 0
    ct.remove()
    ct2.remove()


def test_client_volumes_networks(client):
    from dockyard.errors import NotFound

    v = client.volumes.create("sdkvol", labels={"a": "b"})
    assert v.name == "sdkvol" and client.volumes.get("sdkvol").attrs["Labels"] == {"a": "b"}
    assert "sdkvol" in [x.name for x in client.volumes.list()]
    assert client.containers.run("bb", ["sh", "-c", "echo x > /v/f; cat /v/f"], volumes=["sdkvol:/v"], remove=True) == b"x\n"
    v.remove()
    with pytest.raises(NotFound):
        client.volumes.get("sdkvol")
    n = client.networks.create("sdknet")
    c = client.containers.run("bb", ["sleep", "30"], detach=True, network_mode="sdknet")
    assert [x.id for x in n.containers] == [c.id]
    c.remove(force=True)
    n.remove()
    with pytest.raises(NotFound):
        client.networks.get("sdknet")


def test_docker_py_volumes_networks(dockerpy):
    import docker

    c = dockerpy
    v = c.volumes.create("dpyvol")
    assert v.name == "dpyvol" and [x.name for x in c.volumes.list()] == ["dpyvol"]
    v.remove()
    with pytest.raises(docker.errors.NotFound):
        c.volumes.get("dpyvol")
    n = c.networks.create("dpynet")
    assert c.networks.get("dpynet").name == "dpynet"
    ct = c.containers.run("bb", ["sleep", "30"], detach=True, network="dpynet")
    n.reload()
    assert list(n.attrs["Containers"]) == [ct.id]
    ct.remove(force=True)
    n.remove()


def test_a_stream_that_fails_midway_is_an_error_not_a_short_body(tmp_path):
    """The daemon's streamed bodies (save, export) end without their last chunk when the
    producer fails after the headers went out; the client reports that instead of returning a
    short archive that looks complete."""
    import os
    import threading

    from dockyard.client import Transport
    from dockyard.daemon.http import Router, make_server, stream_produced
    from dockyard.errors import DockyardError

    def produce(ok: bool):
        def write(fd: int) -> None:
            os.write(fd, b"x" * 100_000)
            if not ok:
                raise OSError("disk on fire")
        return write

    router = Router()
    router.add("GET", "/good", lambda d, req: stream_produced(req, produce(True)))
    router.add("GET", "/bad", lambda d, req: stream_produced(req, produce(False)))
    path = str(tmp_path / "s.sock")
    server = make_server(path, router, None)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        api = Transport(f"unix://{path}", timeout=10)
        assert api.read("GET", "/good") == b"x" * 100_000
        with pytest.raises(DockyardError, match="ended the response early"):
            api.read("GET", "/bad")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
