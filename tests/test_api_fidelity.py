"""Engine API answers that docker-py's own integration suite leans on, side by side with a real
dockerd through docker-py's low-level client."""

from __future__ import annotations

import pytest

from test_daemon import daemon, pytestmark  # noqa: F401  (fixture and marks)


@pytest.fixture
def apis(daemon, dockerd, docker_busybox):  # noqa: F811
    docker = pytest.importorskip("docker")
    daemon.docker("tag", "bb", docker_busybox)
    ours = docker.APIClient(base_url=f"unix://{daemon.sock}")
    theirs = docker.APIClient(base_url=f"unix://{dockerd.sock}")
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
        cid = api.create_container(img, ["sleep", "60"])["Id"]
        made.append((api, cid))
        api.start(cid)
        api.kill(cid)
        state = api.inspect_container(cid)["State"]
        assert (state["Running"], state["Status"], state["ExitCode"]) == (False, "exited", 137)
