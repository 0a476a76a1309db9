"""Swarm's routes, answered as a dockerd that is not in a swarm answers them: dockyard does not
grow its own orchestrator (Kubernetes reaches it through containerd), but clients probe these
routes (docker-py's network tests call ``POST /swarm/leave?force=true`` to clean up and take a
503 as "nothing to leave"; a 404 fails them)."""

from __future__ import annotations

from .http import Reply, Request, Router

NOT_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
               "this node to swarm and try again.")
NOT_MEMBER = "This node is not part of a swarm"

_OBJECTS = ("nodes", "services", "tasks", "secrets", "configs")


def routes(r: Router) -> None:
    r.add("POST", "/swarm/leave", leave)
    r.add("POST", "/swarm/init", unsupported)
    r.add("POST", "/swarm/join", unsupported)
    for method, path in [("GET", "/swarm"), ("GET", "/swarm/unlockkey"), ("POST", "/swarm/unlock"),
                         ("POST", "/swarm/update")]:
        r.add(method, path, not_manager)
    for kind in _OBJECTS:
        r.add("GET", f"/{kind}", not_manager)
        r.add("GET", f"/{kind}/{{id}}", not_manager)
        r.add("DELETE", f"/{kind}/{{id}}", not_manager)
        r.add("POST", f"/{kind}/{{id}}/update", not_manager)
        if kind != "nodes" and kind != "tasks":
            r.add("POST", f"/{kind}/create", not_manager)
    r.add("GET", "/services/{id}/logs", not_manager)
    r.add("GET", "/tasks/{id}/logs", not_manager)


def not_manager(d, req: Request, **_: str) -> Reply:
    return Reply(503, {"message": NOT_MANAGER})


def leave(d, req: Request) -> Reply:
    return Reply(503, {"message": NOT_MEMBER})


def unsupported(d, req: Request) -> Reply:
    return Reply(501, {"message": "swarm mode is not supported by dockyard (it runs under Kubernetes through "
                                  "containerd instead)"})
