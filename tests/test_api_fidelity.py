"""Engine API answers that docker-py's own integration suite leans on, side by side with a real
dockerd through docker-py's low-level client."""

from __future__ import annotations

import pytest

from test_daemon import daemon, pytestmark  # noqa: F401  (fixture and marks)


@pytest.fixture
def apis(daemon, dockerd, docker_busybox):  # noqa: F811
    docker = pytest.importorskip("docker")
    daemon.docker("tag", "bb", docker_busybox)
    ours = docker.APIClient(base_url=f"unix://{daemon.sock}", version="auto")
    theirs = docker.APIClient(base_url=f"unix://{dockerd.sock}", version="auto")
    ours.base_url_for_tests, theirs.base_url_for_tests = f"unix://{daemon.sock}", f"unix://{dockerd.sock}"
    made: list[tuple] = []
    try:
        yield [(ours, docker_busybox), (theirs, docker_busybox)], made
    finally:
        for api, cid in made:
            try:
                api.remove_container(cid, force=True)
            except docker.errors.APIError:
                pass
        ours.close()
        theirs.close()


def test_kill_returns_with_the_exit_recorded(apis):
    sides, made = apis
    for api, img in sides:
        cid = api.create_container(img, ["sleep", "60"], host_config=api.create_host_config(network_mode="none"))["Id"]
        made.append((api, cid))
        api.start(cid)
        api.kill(cid)
        state = api.inspect_container(cid)["State"]
        assert (state["Running"], state["Status"], state["ExitCode"]) == (False, "exited", 137)


def test_anonymous_volumes_from_the_create_body(apis):
    """``Volumes: {"/vol1": {}}`` (docker-py's ``volumes=['/vol1']``, compose's ``volumes:
    ['/var/db']``) makes an anonymous volume, as the image's VOLUME does."""
    sides, made = apis
    seen = []
    for api, img in sides:
        cid = api.create_container(img, ["sh", "-c", "echo kept > /vol1/f"], volumes=["/vol1"],
                                   host_config=api.create_host_config(network_mode="none"))["Id"]
        made.append((api, cid))
        info = api.inspect_container(cid)
        mounts = info["Mounts"]
        assert len(mounts) == 1 and mounts[0]["Type"] == "volume" and mounts[0]["Destination"] == "/vol1"
        api.start(cid)
        assert api.wait(cid)["StatusCode"] == 0
        name = mounts[0]["Name"]
        assert api.inspect_volume(name)["Name"] == name
        seen.append((info["Config"]["Volumes"], mounts[0]["RW"], mounts[0]["Driver"]))
        api.remove_container(cid, v=True)
        made.remove((api, cid))
    assert seen[0] == seen[1] == ({"/vol1": {}}, True, "local")


def test_image_answers_are_shaped_by_api_version(apis):
    """Before API 1.45 an image carries Container and ContainerConfig, before 1.44 VirtualSize
    (compose v1 asks for 1.38 and reads ContainerConfig.Volumes)."""
    import docker

    sides, _ = apis
    shapes = []
    for api, img in sides:
        old = docker.APIClient(base_url=api.base_url_for_tests, version="1.38")
        try:
            info = old.inspect_image(img)
            listed = [s for s in old.images() if s["Id"] == info["Id"]][0]
        finally:
            old.close()
        shapes.append((info["Container"], info["ContainerConfig"], info["VirtualSize"] == info["Size"],
                       listed["VirtualSize"] == listed["Size"]))
    assert shapes[0] == shapes[1]
    ours = sides[0][0]
    assert ours.api_version == "1.45"
    current = ours.inspect_image(sides[0][1])
    assert "ContainerConfig" not in current and "VirtualSize" not in current


def test_pid_uts_group_add_and_log_config(apis):
    """--pid host / --uts host / --group-add / --log-driver as dockerd takes and shows them."""
    import docker

    sides, made = apis
    seen = []
    for api, img in sides:
        hc = api.create_host_config(network_mode="none", pid_mode="host", uts_mode="host", group_add=["27", "nogroup"],
                                    log_config={"Type": "none", "Config": {}})
        cid = api.create_container(img, ["sh", "-c", "hostname; id -G; [ -e /proc/1/comm ] && cat /proc/1/comm"],
                                   host_config=hc)["Id"]
        made.append((api, cid))
        host = api.inspect_container(cid)["HostConfig"]
        api.start(cid)
        assert api.wait(cid)["StatusCode"] == 0
        with pytest.raises(docker.errors.APIError) as info:
            api.logs(cid)
        seen.append((host["PidMode"], host["UTSMode"], host["GroupAdd"], host["LogConfig"],
                     info.value.status_code, info.value.explanation))
        with pytest.raises(docker.errors.APIError) as info:
            api.create_container(img, "true", host_config=api.create_host_config(log_config={"Type": "nosuch"}))
        assert (info.value.status_code, info.value.explanation) == (
            400, 'error looking up logging plugin nosuch: plugin "nosuch" not found')
    assert seen[0] == seen[1]
    assert seen[0][:4] == ("host", "host", ["27", "nogroup"], {"Type": "none", "Config": {}})
    # what the process sees (ours): the host's hostname and PID 1, the extra groups
    import platform

    api, img = sides[0]
    hc = api.create_host_config(network_mode="none", pid_mode="host", uts_mode="host", group_add=["27", "nogroup"])
    cid = api.create_container(img, ["sh", "-c", "hostname; id -G; cat /proc/1/comm"], host_config=hc)["Id"]
    made.append((api, cid))
    api.start(cid)
    api.wait(cid)
    out = api.logs(cid).decode().splitlines()
    with open("/proc/1/comm") as f:
        init = f.read().strip()
    groups = set(out[1].split())
    assert out[0] == platform.node() and {"0", "27", "65534"} <= groups and out[2] == init, out


@pytest.mark.parametrize("keys,send", [(None, b"\x10\x11"), ("ctrl-x", b"\x18"), ("a,b", b"zab")])
def test_detach_keys_end_the_attach_and_leave_the_container(apis, keys, send):
    import select

    sides, made = apis
    for api, img in sides:
        cid = api.create_container(img, ["cat"], stdin_open=True, tty=True,
                                   host_config=api.create_host_config(network_mode="none"))["Id"]
        made.append((api, cid))
        api.start(cid)
        params = {"stdin": 1, "stdout": 1, "stream": 1, **({"detachKeys": keys} if keys else {})}
        sock = api.attach_socket(cid, params=params)
        raw = getattr(sock, "_sock", sock)
        try:
            raw.sendall(send)
            deadline = 10
            while True:
                assert select.select([raw], [], [], deadline)[0], "the attach did not end"
                if not raw.recv(4096):
                    break
        finally:
            sock.close()
            raw.close()
        assert api.inspect_container(cid)["State"]["Running"] is True


def test_bad_detach_keys_are_refused(apis):
    import docker

    sides, made = apis
    answers = []
    for api, img in sides:
        cid = api.create_container(img, ["cat"], stdin_open=True, host_config=api.create_host_config(network_mode="none"))["Id"]
        made.append((api, cid))
        api.start(cid)
        with pytest.raises(docker.errors.APIError) as info:
            api.attach_socket(cid, params={"stdin": 1, "stream": 1, "detachKeys": "ctrl-1"})
        answers.append((info.value.status_code, info.value.explanation))
    assert answers[0] == answers[1] == (400, "Invalid detach keys (ctrl-1) provided")


def test_stop_past_its_timeout_says_both_kills(apis):
    """A container that ignores SIGTERM: kill 15, then kill 9 at the timeout, die, stop."""
    import time

    sides, made = apis
    seen = []
    for api, img in sides:
        cid = api.create_container(img, ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"],
                                   host_config=api.create_host_config(network_mode="none"))["Id"]
        made.append((api, cid))
        api.start(cid)
        since = time.time()
        api.stop(cid, timeout=1)
        events = api.events(since=since, until=time.time() + 0.5, decode=True,
                            filters={"container": cid, "type": "container"})
        seen.append([(e["Action"], e["Actor"]["Attributes"].get("signal")) for e in events
                     if e["Action"] in ("kill", "die", "stop")])
    assert seen[0] == seen[1] == [("kill", "15"), ("kill", "9"), ("die", None), ("stop", None)]


@pytest.mark.parametrize("start_tty", [False, True])
def test_exec_tty_is_the_creates_and_framing_the_starts(apis, start_tty):
    """An exec made with Tty runs on a pty ("\\r\\n") whatever its start says; the start's Tty
    says whether the stream is framed (docker-py's exec_start defaults to tty=False)."""
    sides, made = apis
    outs = []
    for api, img in sides:
        cid = api.create_container(img, ["sleep", "60"], host_config=api.create_host_config(network_mode="none"))["Id"]
        made.append((api, cid))
        api.start(cid)
        eid = api.exec_create(cid, ["sh", "-c", "echo hi; echo there"], tty=True)["Id"]
        outs.append(api.exec_start(eid, tty=start_tty))
    assert outs[0] == outs[1] == b"hi\r\nthere\r\n"
