"""The daemon's healthcheck probes: one scheduler thread, a heap of when each watched container's
next probe is due, and a short-lived thread per probe (an exec of the check in the container,
``dockyard-runtime exec`` as ``docker exec`` runs).  The model (merge, defaults, how a result
changes ``State.Health``) is :mod:`dockyard.engine.health`.

A container is watched from its start until its exit is recorded; the next probe is due an
interval after the last one ended, as in dockerd.  Each outcome is written into the record only
while the run it probed is the current one (``StartedAt``), so a probe that ends after a restart
changes nothing.  ``health_status: <status>`` is emitted when the status changes, and each probe
has dockerd's ``exec_create``/``exec_start``/``exec_die`` events.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import signal
import subprocess
import threading
import time

from ..engine import health

log = logging.getLogger("dockyard.daemon")


class HealthMonitor:
    def __init__(self, daemon) -> None:
        self.d = daemon
        self.cond = threading.Condition()
        self.heap: list[tuple[float, int, str, object]] = []
        self.watched: dict[str, dict] = {}
        self.seq = itertools.count()
        self.thread: threading.Thread | None = None
        self.stopped = False

    def watch(self, cid: str, rec: dict) -> None:
        """Probe ``cid`` (just started, or found running) if it has a healthcheck."""
        cfg = rec["spec"]["Config"]
        s = health.settings(cfg)
        if s is None:
            return
        started_at = rec["state"].get("StartedAt") or ""
        info = {"token": object(), "started_at": started_at, "settings": s, "shell": cfg.get("Shell"),
                "since": time.monotonic() - _age(started_at)}
        with self.cond:
            if self.stopped:
                return
            self.watched[cid] = info
            self._schedule(cid, info)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="health", daemon=True)
                self.thread.start()
            self.cond.notify()

    def unwatch(self, cid: str, started_at: str | None = None) -> None:
        """Stop probing ``cid`` (its run that started at ``started_at``, when given)."""
        with self.cond:
            info = self.watched.get(cid)
            if info is not None and (started_at is None or info["started_at"] == started_at):
                del self.watched[cid]  # its heap entry is dropped when it comes due

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.watched.clear()
            self.cond.notify()

    def _interval(self, info: dict) -> float:
        s = info["settings"]
        if time.monotonic() - info["since"] < s["start_period"] / health.NS and info.get("status", "starting") == "starting":
            return s["start_interval"] / health.NS
        return s["interval"] / health.NS

    def _schedule(self, cid: str, info: dict) -> None:
        heapq.heappush(self.heap, (time.monotonic() + self._interval(info), next(self.seq), cid, info["token"]))

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.stopped:
                    now = time.monotonic()
                    if self.heap and self.heap[0][0] <= now:
                        break
                    self.cond.wait(self.heap[0][0] - now if self.heap else None)
                if self.stopped:
                    return
                _, _, cid, token = heapq.heappop(self.heap)
                info = self.watched.get(cid)
                if info is None or info["token"] is not token:
                    continue
            threading.Thread(target=self._probe_and_reschedule, args=(cid, info), name=f"probe-{cid[:12]}",
                             daemon=True).start()

    def _probe_and_reschedule(self, cid: str, info: dict) -> None:
        try:
            self._probe(cid, info)
        except Exception as exc:  # (a probe must not end the watching)
            self.d._log_once(f"health:{cid}", f"healthcheck of {cid[:12]}: {exc}", exc_info=True)
        with self.cond:
            if self.watched.get(cid) is info and not self.stopped:
                self._schedule(cid, info)
                self.cond.notify()

    def _probe(self, cid: str, info: dict) -> None:
        from ..errors import NotFound
        from .streams import exec_command

        s = info["settings"]
        with self.d.engines.get() as engine:
            try:
                rec = engine.containers.load(cid)
            except NotFound:
                self.unwatch(cid)
                return
            runtime_root = str(engine.containers.runtime.root)
        state = rec["state"]
        if not state["Running"] or state.get("StartedAt") != info["started_at"]:
            self.unwatch(cid, info["started_at"])
            return
        if state.get("Paused"):
            return  # no probe into a frozen container; the next one is due as usual
        cfg = rec["spec"]["Config"]
        argv = health.command(s["test"], info["shell"])
        if argv is None:
            self.unwatch(cid)
            return
        xcfg = {"Cmd": argv, "Env": cfg.get("Env") or [], "User": cfg.get("User") or "",
                "WorkingDir": cfg.get("WorkingDir") or ""}
        args = exec_command(runtime_root, cid, xcfg, detach=False, tty=False)
        eid = os.urandom(32).hex()
        what = " ".join(argv)
        self.d._emit_container(rec, f"exec_create: {what}", {"execID": eid})
        self.d._emit_container(rec, f"exec_start: {what}", {"execID": eid})
        start = time.time()
        code, output = _run_probe(args, s["timeout"])
        end = time.time()
        self.d._emit_container(rec, "exec_die", {"execID": eid, "exitCode": str(code)})
        in_start_period = time.monotonic() - info["since"] < s["start_period"] / health.NS
        with self.d.engines.get() as engine:
            try:
                before = engine.containers.load(cid)["state"].get("Health") or health.starting()
            except NotFound:
                return
            after = health.record(before, start, end, code, output, in_start_period, s["retries"])
            if not engine.containers.set_health(cid, info["started_at"], after):
                return  # the run it probed is over
        info["status"] = after["Status"]
        if after["Status"] != before.get("Status"):
            self.d._emit_container(rec, f"health_status: {after['Status']}")


def _run_probe(args: list[str], timeout_ns: int) -> tuple[int, str]:
    """Run one probe: (exit code, stdout and stderr together); -1 and dockerd's message when it
    outlives its timeout (it is killed, with everything it started)."""
    import os

    from .streams import start_error

    # the runtime says over this pipe why the command could not start (closed unread at its
    # exec); dockerd records such a probe as -1 with the runtime's message, not 126/127
    r, w = os.pipe()
    at = args.index("exec") + 1
    try:
        proc = subprocess.Popen(args[:at] + ["--start-fd", str(w)] + args[at:], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                pass_fds=(w,))
    except OSError as exc:
        os.close(r)
        return -1, str(exc)
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        reason = f.read().decode(errors="replace").strip()
    if reason:
        proc.communicate()
        return -1, start_error(reason)
    try:
        out, _ = proc.communicate(timeout=timeout_ns / health.NS)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        proc.communicate()
        from ..units import go_duration

        return -1, f"Health check exceeded timeout ({go_duration(timeout_ns)})"
    return proc.returncode, out[:health.MAX_OUTPUT * 2].decode(errors="replace")


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and its descendants (the runtime's exec and the probe it runs in the
    container, which a signal to the exec alone would leave behind)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
    for p in reversed(pids):  # the deepest first: none is reaped (and its pid reused) before
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def _age(started_at: str) -> float:
    """Seconds since an RFC 3339 time (0 when it cannot be read)."""
    from ..engine.images import parse_time

    t = parse_time(started_at)  # (0 for what it cannot read)
    return max(0.0, time.time() - t) if t else 0.0
