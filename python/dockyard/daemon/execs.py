"""``/containers/{id}/exec`` and ``/exec/{id}/...``: exec sessions live in the daemon's memory
(as in dockerd); the process is ``dockyard-runtime exec``."""

from __future__ import annotations

import os
import threading

from ..errors import Conflict, InvalidArgument, NotFound
from .http import STREAMED, Reply, Request, Router

def _exec_types():
    from .create import GoType, _struct

    b, s = GoType("bool", "bool"), GoType("string", "string")
    strs = GoType("slice", "[]string", s)
    size = GoType("slice", "*[2]uint", GoType("int", "uint", lo=0, hi=2**64 - 1))
    options = _struct("container.ExecOptions", {
        "User": s, "Privileged": b, "Tty": b, "ConsoleSize": size, "AttachStdin": b, "AttachStderr": b,
        "AttachStdout": b, "Detach": b, "DetachKeys": s, "Env": strs, "WorkingDir": s, "Cmd": strs})
    start = _struct("container.ExecStartOptions", {"Detach": b, "Tty": b, "ConsoleSize": size})
    return options, start


class ExecNotFound(NotFound):
    pass


def routes(r: Router) -> None:
    r.add("POST", "/containers/{id}/exec", create)
    r.add("POST", "/exec/{id}/start", start)
    r.add("POST", "/exec/{id}/resize", resize)
    r.add("GET", "/exec/{id}/json", inspect)


def create(d, req: Request, id: str) -> Reply:
    from .create import go_decode

    # decoded as dockerd decodes it: unknown fields ignored, Go's sentence for a wrong type
    body = go_decode(req.json(), _exec_types()[0])
    cmd = body.get("Cmd")
    if not cmd:
        raise InvalidArgument("No exec command specified")
    env = body.get("Env") or []
    from .streams import detach_key_bytes

    try:
        keys = detach_key_bytes(body.get("DetachKeys") or "")  # docker-py sends its config file's
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
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
            "_runtime_root": runtime_root, "_started": False, "_detach_keys": keys,
        }
        size = body.get("ConsoleSize")
        if isinstance(size, list) and len(size) == 2 and all(isinstance(x, int) and 0 < x < 65536 for x in size):
            d.execs[eid]["_size"] = (size[0], size[1])
    d._emit_container(rec, f"exec_create: {_command(cmd)}", {"execID": eid})
    return Reply(201, {"Id": eid})


def _command(cmd: list[str]) -> str:
    """An exec's command as dockerd's events name it: the entrypoint, a space, the arguments
    (``exec_create: true `` for a bare ``true``)."""
    return f"{cmd[0]} {' '.join(cmd[1:])}"


def _emit(d, rec: dict, action: str, extra: dict) -> None:
    """An exec's event carries its container's attributes (image, name, labels) as dockerd's do:
    a client that filters events by label (compose) sees them."""
    with d.engines.get() as engine:
        d.emit_container(engine, rec["ContainerID"], action, extra)


def _get(d, eid: str) -> dict:
    with d.lock:
        rec = d.execs.get(eid)
    if rec is None:
        raise ExecNotFound(f"No such exec instance: {eid}")
    return rec


def start(d, req: Request, id: str):
    import socket

    from .streams import DETACHED, START_FAILED, _frame, exec_command, run_exec, spawn_exec, start_error

    rec = _get(d, id)
    from .create import go_decode

    body = go_decode(req.json(required=False), _exec_types()[1]) or {}
    detach = bool(body.get("Detach"))
    # the exec's own Tty (from its create), as dockerd: the start body's says only how the
    # client reads the stream (docker-py sends Tty false there for a tty exec)
    tty = bool(rec["ProcessConfig"]["tty"])
    with d.lock:
        if rec["_started"]:
            raise Conflict(f"Exec {id} has already been started")  # docker: 409
        rec["_started"] = True
    with d.engines.get() as engine:
        state = engine.containers.refresh(engine.containers.load(rec["ContainerID"]))["state"]
    if not state["Running"]:
        raise Conflict(f"Container {rec['ContainerID']} is not running")
    # a detached exec without a tty still has the runtime wait for it (in a thread), as dockerd
    # waits through containerd: its exit code, Running and exec_die come when it ends
    args = exec_command(rec["_runtime_root"], rec["ContainerID"], rec["_cfg"], detach and tty, tty)
    if rec["ProcessConfig"]["privileged"]:
        # docker exec --privileged: every capability (of the host's bounding set), in the
        # bounding, permitted and effective sets; the container's seccomp filter stays
        from ..engine.spec import host_capabilities

        at = len(args) - len(rec["_cfg"]["Cmd"]) - 2  # the container's ID, before "--" and the command
        args[at:at] = [a for cap in host_capabilities() for a in ("--cap", cap)]
    _emit(d, rec, f"exec_start: {_command(rec['_cfg']['Cmd'])}", {"execID": id})
    if detach:
        import subprocess

        null = subprocess.DEVNULL
        proc = spawn_exec(rec, args, stdin=null, stdout=null, stderr=null)
        if rec.get("_start_error"):
            # as dockerd: the start fails (400), exit code 126, no exec_die
            rec.update(Running=False, ExitCode=START_FAILED)
            raise InvalidArgument(start_error(rec["_start_error"]))
        rec["Running"] = True

        def bg() -> None:
            code = proc.wait()
            rec.update(Running=False, ExitCode=code)
            if not tty:  # (with one, the runtime left once the process ran: its end is unknown)
                _emit(d, rec, "exec_die", {"execID": id, "exitCode": str(code)})

        threading.Thread(target=bg, daemon=True).start()
        return Reply(200, b"", "text/plain")
    framed = not bool(body.get("Tty", tty))  # how the client reads the stream (the start's Tty)
    conn = req.hijack("application/vnd.docker.multiplexed-stream" if framed else "application/vnd.docker.raw-stream")
    req._started = True
    rec["Running"] = True
    try:
        code = run_exec(rec, args, conn, tty, rec["OpenStdin"], framed, rec["_detach_keys"])
    finally:
        rec["Running"] = False
    if code == DETACHED:
        # as dockerd 20.10 (measured): the detach ends the exec, exit code 126, exec_detach
        rec["ExitCode"] = START_FAILED
        _emit(d, rec, "exec_detach", {"execID": id})
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return STREAMED
    rec["ExitCode"] = code
    if rec.get("_start_error"):
        # as dockerd: the reason on the output stream (stdout), exit code 126, no exec_die
        line = (start_error(rec["_start_error"]) + "\r\n").encode()
        try:
            conn.sendall(_frame(1, line) if framed else line)
        except OSError:
            pass
    else:
        _emit(d, rec, "exec_die", {"execID": id, "exitCode": str(code)})
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    return STREAMED


def resize(d, req: Request, id: str) -> Reply:
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


def inspect(d, req: Request, id: str) -> dict:
    rec = _get(d, id)
    return {k: v for k, v in rec.items() if not k.startswith("_")}
