"""``/containers/{id}/exec`` and ``/exec/{id}/...``: exec sessions live in the daemon's memory
(as in dockerd); the process is ``dockyard-runtime exec``."""

from __future__ import annotations

import os
import threading

from ..errors import Conflict, InvalidArgument, NotFound
from .http import STREAMED, Reply, Request, Router

EXEC_FIELDS = {"AttachStdin", "AttachStdout", "AttachStderr", "DetachKeys", "Tty", "Env", "Cmd",
               "Privileged", "User", "WorkingDir", "ConsoleSize", "Detach", "Container"}


class ExecNotFound(NotFound):
    pass


def routes(r: Router) -> None:
    r.add("POST", "/containers/{id}/exec", create)
    r.add("POST", "/exec/{id}/start", start)
    r.add("POST", "/exec/{id}/resize", resize)
    r.add("GET", "/exec/{id}/json", inspect)


def create(d, req: Request, id: str) -> Reply:  # noqa: ANN001, A002
    body = req.json()
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON in request body: expected an object")
    for key in body:
        if key not in EXEC_FIELDS:
            raise InvalidArgument(f"json: unknown field {key!r}")
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd or not isinstance(cmd, list) or not all(isinstance(c, str) for c in cmd):
        raise InvalidArgument("No exec command specified")
    env = body.get("Env") or []
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise InvalidArgument("json: Env must be a list of strings")
    for key in ("User", "WorkingDir"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InvalidArgument(f"json: {key} must be a string")
    with d.engines.get() as engine:
        cid = engine.containers.resolve(id)
        rec = engine.containers.refresh(engine.containers.load(cid))
        if not rec["state"]["Running"]:
            raise Conflict(f"Container {cid} is not running")
        if rec["state"]["Paused"]:
            raise Conflict(f"Container {cid} is paused, unpause the container before exec")
        runtime_root = str(engine.containers.runtime.root)
    eid = os.urandom(32).hex()
    with d.lock:
        d.execs[eid] = {
            "ID": eid, "ContainerID": cid, "Running": False, "ExitCode": None, "Pid": 0,
            "OpenStdin": bool(body.get("AttachStdin")), "OpenStdout": bool(body.get("AttachStdout")),
            "OpenStderr": bool(body.get("AttachStderr")), "CanRemove": False, "DetachKeys": "",
            "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": cmd[0], "arguments": cmd[1:],
                              "privileged": bool(body.get("Privileged")), "user": body.get("User") or ""},
            "_cfg": {"Cmd": cmd, "Env": env, "User": body.get("User") or "", "WorkingDir": body.get("WorkingDir") or ""},
            "_runtime_root": runtime_root, "_started": False,
        }
        size = body.get("ConsoleSize")
        if isinstance(size, list) and len(size) == 2 and all(isinstance(x, int) and 0 < x < 65536 for x in size):
            d.execs[eid]["_size"] = (size[0], size[1])
    d.events.emit("container", f"exec_create: {' '.join(cmd)}", cid, {"execID": eid})
    return Reply(201, {"Id": eid})


def _get(d, eid: str) -> dict:  # noqa: ANN001
    with d.lock:
        rec = d.execs.get(eid)
    if rec is None:
        raise ExecNotFound(f"No such exec instance: {eid}")
    return rec


def start(d, req: Request, id: str):  # noqa: ANN001, ANN201, A002
    from .streams import exec_command, run_exec

    rec = _get(d, id)
    body = req.json(required=False) or {}
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON in request body: expected an object")
    for key in body:
        if key not in ("Detach", "Tty", "ConsoleSize"):
            raise InvalidArgument(f"json: unknown field {key!r}")
    detach = bool(body.get("Detach"))
    tty = bool(body.get("Tty", rec["ProcessConfig"]["tty"]))
    with d.lock:
        if rec["_started"]:
            raise Conflict(f"Exec {id} has already been started")  # docker: 409
        rec["_started"] = True
    with d.engines.get() as engine:
        state = engine.containers.refresh(engine.containers.load(rec["ContainerID"]))["state"]
    if not state["Running"]:
        raise Conflict(f"Container {rec['ContainerID']} is not running")
    args = exec_command(rec["_runtime_root"], rec["ContainerID"], rec["_cfg"], detach, tty)
    d.events.emit("container", f"exec_start: {' '.join(rec['_cfg']['Cmd'])}", rec["ContainerID"], {"execID": id})
    if detach:
        rec["Running"] = True

        def bg() -> None:
            code = run_exec(rec, args, None, tty, False)
            rec.update(Running=False, ExitCode=code if code == 0 else code)

        threading.Thread(target=bg, daemon=True).start()
        return Reply(200, b"", "text/plain")
    conn = req.hijack("application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream")
    req._started = True
    rec["Running"] = True
    try:
        code = run_exec(rec, args, conn, tty, rec["OpenStdin"])
    finally:
        rec["Running"] = False
    rec["ExitCode"] = code
    d.events.emit("container", "exec_die", rec["ContainerID"], {"execID": id, "exitCode": str(code)})
    try:
        import socket

        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    return STREAMED


def resize(d, req: Request, id: str) -> Reply:  # noqa: ANN001, A002
    rec = _get(d, id)
    h, w = req.int("h", 0), req.int("w", 0)
    if h < 0 or w < 0 or h > 65535 or w > 65535:
        raise InvalidArgument("invalid terminal size")
    master = rec.get("_pty")
    if master is None:
        rec["_size"] = (h, w)  # not started yet: applied at start
    else:
        from .streams import set_winsize

        set_winsize(master, h, w)
        if rec.get("Pid"):
            # the pty is not the runtime's controlling terminal: tell its proxy ourselves
            import signal

            try:
                os.kill(rec["Pid"], signal.SIGWINCH)
            except OSError:
                pass
    return Reply(200, b"", "text/plain")


def inspect(d, req: Request, id: str) -> dict:  # noqa: ANN001, A002
    rec = _get(d, id)
    return {k: v for k, v in rec.items() if not k.startswith("_")}
