"""Swarm's routes answer as a dockerd outside a swarm answers them (docker-py's clean-up calls
``POST /swarm/leave?force=true`` and takes the 503 as "nothing to leave")."""

from __future__ import annotations

import json

from test_daemon import UnixConnection, daemon, pytestmark  # noqa: F401  (fixture and marks)

CALLS = [("GET", "/v1.41/swarm"), ("POST", "/v1.41/swarm/leave?force=true"), ("GET", "/v1.41/nodes"),
         ("GET", "/v1.41/services"), ("GET", "/v1.41/tasks"), ("GET", "/v1.41/secrets"), ("GET", "/v1.41/configs"),
         ("GET", "/v1.41/services/x"), ("DELETE", "/v1.41/nodes/x"), ("POST", "/v1.41/services/create"),
         ("GET", "/v1.41/swarm/unlockkey")]


def _answers(sock: str) -> list[tuple[int, dict]]:
    out = []
    for method, path in CALLS:
        conn = UnixConnection(sock)
        try:
            conn.request(method, path, body=b"{}" if method == "POST" else None,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            out.append((resp.status, json.loads(resp.read())))
        finally:
            conn.close()
    return out


def test_swarm_routes_as_dockerd(daemon, dockerd):
    ours, theirs = _answers(daemon.sock), _answers(str(dockerd.sock))
    assert ours == theirs
    assert ours[1] == (503, {"message": "This node is not part of a swarm"})
