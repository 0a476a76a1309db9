"""The daemon's state: a pool of engine handles, the event bus, the exit monitor, restart
policies and live restore.

The engine owns all state that matters (SQLite under the root, the supervisors' exit files);
the daemon keeps only what Docker's daemon keeps in memory on top of it: who is waiting for
what, restart counts and back-off, containers stopped by hand (persisted in
``<root>/daemon/state.json`` so ``unless-stopped`` survives a daemon restart), and exec
sessions.

Concurrency: every request thread borrows its own :class:`~dockyard.engine.Engine` (its own
SQLite connection) from :class:`EnginePool`; SQLite's ``BEGIN IMMEDIATE`` transactions then
keep the state consistent under concurrent requests exactly as they do between CLI processes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import select
import threading
import time
from collections import deque
from pathlib import Path

from ..errors import DockyardError, NotFound

log = logging.getLogger("dockyard.daemon")


class EnginePool:
    def __init__(self, root: str | None) -> None:
        self.root = root
        self._free: list = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def get(self):
        with self._lock:
            engine = self._free.pop() if self._free else None
        if engine is None:
            from ..engine import Engine

            engine = Engine(self.root)
        try:
            yield engine
        finally:
            with self._lock:
                if len(self._free) < 16:
                    self._free.append(engine)
                    engine = None
            if engine is not None:
                engine.close()

    def close(self) -> None:
        with self._lock:
            for e in self._free:
                e.close()
            self._free.clear()


class Events:
    """Docker's ``/events``: a bounded history plus live subscribers."""

    def __init__(self) -> None:
        self.history: deque[dict] = deque(maxlen=1000)
        self.subscribers: set[queue.Queue] = set()
        self.lock = threading.Lock()

    def emit(self, type_: str, action: str, actor_id: str, attributes: dict | None = None) -> dict:
        now = time.time_ns()
        ev = {"Type": type_, "Action": action,
              "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
              "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
        if type_ == "container":
            ev["status"] = action
            ev["id"] = actor_id
            if "image" in ev["Actor"]["Attributes"]:
                ev["from"] = ev["Actor"]["Attributes"]["image"]
        with self.lock:
            self.history.append(ev)
            subs = list(self.subscribers)
        for q in subs:
            q.put(ev)
        log.debug("event %s %s %s", type_, action, actor_id[:12])
        return ev

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue()
        with self.lock:
            self.subscribers.add(q)
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self.lock:
            self.subscribers.discard(q)


class Daemon:
    """What every route gets as its first argument."""

    def __init__(self, root: str | None = None) -> None:
        from ..engine.store import default_root

        self.root = Path(os.path.abspath(root or default_root()))
        engine_log = logging.getLogger("dockyard.engine")  # the engine's notes go to the daemon's log
        if not engine_log.handlers and log.handlers:
            for h in log.handlers:
                engine_log.addHandler(h)
            engine_log.setLevel(log.level)
            engine_log.propagate = False
        self.engines = EnginePool(str(self.root))
        self.events = Events()
        self.log = log
        self.lock = threading.RLock()
        self.started = time.time()
        self.stopping = threading.Event()
        self._state_file = self.root / "daemon" / "state.json"
        from ..engine.runtime import run_dir

        self._run = run_dir()
        self.restart_counts: dict[str, int] = {}
        self.restart_delays: dict[str, float] = {}  # the last restart delay (engine/restart.py)
        self.manually_stopped: set[str] = set()
        self.tracked: dict[str, dict] = {}       # running containers the monitor watches
        self.pending_attach: dict[str, int] = {}  # cid -> attach clients waiting for start
        self.attach_abort: set[str] = set()       # cids whose waiting attach clients are to end
        self.relays: dict[str, int] = {}          # cid -> attach relays still streaming
        self.connecting: dict[str, int] = {}      # cid -> relays not yet connected to the supervisor
        self.resizers: dict[str, list] = {}       # cid -> resize functions of connected relays
        self.console_sizes: dict[str, tuple[int, int]] = {}  # cid -> ConsoleSize given at create
        self.attach_cond = threading.Condition(self.lock)
        self.attach_wakers: set[int] = set()      # pipes of attach clients waiting in poll (notify_attach)
        self.execs: dict[str, dict] = {}
        self.timers: dict[str, threading.Timer] = {}
        self.restart_pending: set[str] = set()  # decided to restart, not yet started again
        # cid -> (set when its restart's start ends, the thread starting it)
        self.restarts_running: dict[str, tuple[threading.Event, threading.Thread]] = {}
        self.exit_order = threading.Lock()  # an exit's untrack and its die event, as one step
        self._logged: dict[str, str] = {}           # what _log_once said last, by key
        self._load_state()
        self._monitor = threading.Thread(target=self._run_monitor, name="monitor", daemon=True)
        self._epoll = select.epoll()
        self._by_fd: dict[int, str] = {}    # pidfd -> the container whose exit it tells
        self._due: set[str] = set()         # containers whose exit is to be checked now
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        from .health import HealthMonitor

        self.health = HealthMonitor(self)

    # -- persisted bits ---------------------------------------------------------------------------

    def _load_state(self) -> None:
        try:
            data = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return
        self.restart_counts = {k: int(v) for k, v in (data.get("restart_counts") or {}).items()}
        self.manually_stopped = set(data.get("manually_stopped") or [])

    def save_state(self) -> None:
        with self.lock:
            data = {"restart_counts": self.restart_counts, "manually_stopped": sorted(self.manually_stopped)}
        tmp = self._state_file.with_suffix(f".{threading.get_ident()}.tmp")
        try:
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self._state_file)
        except OSError as exc:
            # A full disk must not fail the request (rm -f is how space comes back): the state
            # stays in memory and goes to disk at the next save.
            tmp.unlink(missing_ok=True)
            self._log_once("save-state", f"cannot save the daemon's state: {exc}")
        else:
            self._logged.pop("save-state", None)

    def _log_once(self, key: str, message: str, exc_info: bool = False) -> None:
        """Log a failure that repeats (the monitor retries every second) once, until it changes
        or clears."""
        with self.lock:
            if self._logged.get(key) == message:
                return
            self._logged[key] = message
        log.warning("%s", message, exc_info=exc_info)

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        from ..engine.network import manager

        manager.KEEP_DEFAULT_BRIDGE = True  # made at the first container, kept until shutdown
        with self.engines.get() as engine:
            # The engine builds its init layer under tmp/<pid>-init: not safe for two threads of
            # one process racing for the first start, so build it once before serving.
            engine.containers.init_layer()
        self.restore()
        self._monitor.start()

    def shutdown(self) -> None:
        """Leave containers running (live restore): only stop watching them; a rootless daemon
        stops them.  A private root's default bridge, kept while the daemon served, goes if no
        container is on it."""
        self.stopping.set()
        os.write(self._wake_w, b"x")
        with self.attach_cond:
            self.notify_attach()
        self.health.stop()
        with self.lock:
            for t in self.timers.values():
                t.cancel()
        from .. import rootless

        if rootless.active():
            self._stop_all()
        from ..engine.network import hooks, manager

        manager.KEEP_DEFAULT_BRIDGE = False
        try:
            with self.engines.get() as engine:
                hooks.networks(engine.containers).release_default_bridge()
        except Exception as exc:  # (shutting down: said, not raised)
            log.warning("removing the default bridge: %s", exc)
        self.engines.close()

    def _stop_all(self) -> None:
        """A rootless daemon's containers live in namespaces that end with it, where no later
        daemon could reach them: stopped as dockerd stops its containers without live restore
        (each its stop signal, then SIGKILL after its stop timeout), many at once."""
        import concurrent.futures

        def one(cid: str) -> None:
            try:
                with self.engines.get() as engine:
                    engine.containers.stop(cid)
                    engine.containers.refresh(engine.containers.load(cid))  # the exit, recorded and undone
            except Exception as exc:  # (shutting down: said, not raised)
                log.warning("stopping %s: %s", cid[:12], exc)

        with self.engines.get() as engine:
            ids = [cid for cid, _ in engine.containers.revisions()]
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            list(pool.map(one, ids))

    def restore(self) -> None:
        """Find the containers that ran while no daemon watched: record the exits missed (the
        engine reads the supervisors' exit files), watch the live ones, apply restart policies.

        A daemon killed in the middle of a start leaves a container recorded as not running
        whose supervisor and process may be there, or half made: each such record is made to
        match what the runtime and the supervisors say (:meth:`Containers.reconcile`), and the
        runtime state of containers that no longer exist is deleted."""
        from ..engine.supervisors import find_supervisors

        with self.engines.get() as engine:
            c = engine.containers
            ids = [r[0] for r in engine.store.db.execute("SELECT id FROM containers")]
            shims = find_supervisors(c.runtime.root)
            known = set(ids)
            try:
                orphans = {e.name for e in os.scandir(c.runtime.root) if e.is_dir()} - known
            except OSError:
                orphans = set()
            # (the run dir may be shared with engines of other roots: only this store's bundles)
            ours = str(self.root / "containers") + "/"
            for cid in sorted(orphans):
                try:
                    bundle = json.loads((c.runtime.root / cid / "state.json").read_text()).get("bundle") or ""
                except (OSError, ValueError, AttributeError):
                    continue
                if bundle.startswith(ours):
                    log.info("removing the runtime state of %s, a container this store no longer has", cid[:12])
                    c._clear_runtime(cid, shims.get(cid, []))
            for cid in ids:
                try:
                    before = c.load(cid)
                    if before["state"]["Running"]:
                        rec = c.refresh(dict(before, state=dict(before["state"])))
                    else:
                        rec = c.reconcile(cid, shims.get(cid, []))
                except NotFound:
                    continue
                except Exception:  # (one container must not keep the daemon down)
                    log.exception("restore: %s", cid[:12])
                    continue
                if rec["state"]["Running"]:
                    self.track(cid, rec)
                    self.health.watch(cid, rec)
                    continue
                policy = rec["spec"]["HostConfig"].get("RestartPolicy") or {}
                if before["state"]["Running"]:  # an exit we missed
                    log.info("container %s exited (%s) while no daemon was running", cid[:12],
                             rec["state"]["ExitCode"])
                    self._emit_container(rec, "die", {"exitCode": str(rec["state"]["ExitCode"])})
                    self._after_exit(engine, rec)
                elif policy.get("Name") in ("always", "unless-stopped") and cid not in self.manually_stopped \
                        and rec["state"]["Status"] == "exited":
                    # as dockerd at boot: always/unless-stopped containers come back
                    self._schedule_restart(cid, 0)

    # -- exits --------------------------------------------------------------------------------------

    def track(self, cid: str, rec: dict | None = None) -> None:
        """Watch a running container for its exit: a pidfd of its supervisor (which writes the
        exit file and then exits) in the monitor's epoll set; of the process itself when the
        supervisor is gone."""
        state = (rec or {}).get("state") or {}
        info = {"pid": state.get("Pid", 0), "shim": state.get("ShimPid", 0), "started": time.monotonic(), "fd": -1}
        with self.lock:
            old = self.tracked.pop(cid, None)
            self.tracked[cid] = info
            self.notify_attach()
        if old is not None:
            self._unwatch_fd(old)
        self._watch_fd(cid, info)

    def _watch_fd(self, cid: str, info: dict) -> None:
        for pid in (info["shim"], info["pid"]):
            if not pid or not _alive(pid):
                continue
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue  # gone meanwhile: the next one, or the check below
            with self.lock:
                if self.tracked.get(cid) is not info:
                    os.close(fd)
                    return
                info["fd"] = fd
                self._by_fd[fd] = cid
            self._epoll.register(fd, select.EPOLLIN)
            return
        self._wake_monitor(cid)  # nothing to watch: its exit is there to be recorded

    def _unwatch_fd(self, info: dict) -> None:
        with self.lock:
            fd, info["fd"] = info.get("fd", -1), -1
            if fd >= 0:
                self._by_fd.pop(fd, None)
        if fd >= 0:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass
            os.close(fd)

    def _wake_monitor(self, cid: str) -> None:
        with self.lock:
            self._due.add(cid)
        os.write(self._wake_w, b"x")

    def _run_monitor(self) -> None:
        """Exits as events: the epoll set holds a pidfd per running container (and the wake
        pipe); an exit wakes it, and its container's exit is recorded at once."""
        while not self.stopping.is_set():
            try:
                ready = self._epoll.poll()
            except InterruptedError:
                continue
            due: set[str] = set()
            for fd, _ in ready:
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                    continue
                with self.lock:
                    cid = self._by_fd.get(fd)
                if cid is not None:
                    due.add(cid)
            with self.lock:
                due |= self._due
                self._due.clear()
            for cid in due:
                self._exit_event(cid)

    def _exit_event(self, cid: str) -> None:
        with self.lock:
            info = self.tracked.get(cid)
        if info is None:
            return
        self._unwatch_fd(info)
        try:
            self.check_exit(cid)
        except Exception as exc:
            # (a full disk, say): said once, retried a second later (a deadline, not a poll)
            self._log_once(f"monitor:{cid}", f"monitor: {cid[:12]}: {exc}", exc_info=True)
            timer = threading.Timer(1.0, self._wake_monitor, (cid,))
            timer.daemon = True
            timer.start()
            return
        with self.lock:
            self._logged.pop(f"monitor:{cid}", None)
            still = self.tracked.get(cid) is info
        if still:
            # still running: the supervisor went (killed, say) and the process lives on
            self._watch_fd(cid, info)

    def check_exit(self, cid: str) -> None:
        with self.engines.get() as engine:
            try:
                rec = engine.containers.refresh(engine.containers.load(cid))
            except NotFound:
                self.untrack(cid)
                return
            if rec["state"]["Running"]:
                return
            self.health.unwatch(cid, rec["state"].get("StartedAt"))
            # untrack and die as one step: a second caller (the stop route after the monitor
            # took the exit) returns only once the die is said, so its "stop" comes after it
            with self.exit_order:
                info = self.untrack(cid)
                if info is None:
                    return
                ran_for = time.monotonic() - info["started"]
                # the restart is decided before the die: a client woken by it (wait) finds the
                # container restarting already, as dockerd's SetRestarting comes before its waiters
                plan = self._restart_plan(rec, ran_for)
                self._emit_container(rec, "die", {"exitCode": str(rec["state"]["ExitCode"])})
            self._after_exit(engine, rec, ran_for=ran_for, plan=plan)

    def restarting(self, cid: str) -> bool:
        """Between an exit and the restart its policy asked for (dockerd's "restarting")."""
        with self.lock:
            return cid in self.timers or cid in self.restart_pending

    def _restart_plan(self, rec: dict, ran_for: float) -> tuple[bool, float]:
        from ..engine import restart

        cid = rec["id"]
        host = rec["spec"]["HostConfig"]
        if host.get("AutoRemove"):
            return False, 0.0
        with self.lock:
            stopped = cid in self.manually_stopped
            count = self.restart_counts.get(cid, 0)
            last = self.restart_delays.get(cid, 0.0)
        again, delay = restart.decide(host.get("RestartPolicy"), rec["state"]["ExitCode"], stopped, count, ran_for, last)
        if again:
            with self.lock:
                self.restart_pending.add(cid)
        return again, delay

    def untrack(self, cid: str) -> dict | None:
        """Stop watching ``cid``; returns what was known of its run (None: nothing was)."""
        with self.lock:
            info = self.tracked.pop(cid, None)
        if info is not None:
            self._unwatch_fd(info)
        return info

    def _after_exit(self, engine, rec: dict, ran_for: float = 0.0, plan=None) -> None:
        cid = rec["id"]
        host = rec["spec"]["HostConfig"]
        if host.get("AutoRemove"):
            # let attached clients get every byte and the end of the stream first
            deadline = time.monotonic() + 5
            with self.attach_cond:
                while self.relays.get(cid) and time.monotonic() < deadline:
                    self.attach_cond.wait(deadline - time.monotonic())  # notified as each relay ends
            try:
                engine.containers.remove(cid, force=True)
            except NotFound:
                return
            self._emit_container(rec, "destroy")
            return
        again, delay = plan if plan is not None else self._restart_plan(rec, ran_for)
        if not again:
            return
        with self.lock:
            self.restart_delays[cid] = delay
        self._schedule_restart(cid, delay)

    def _schedule_restart(self, cid: str, delay: float) -> None:
        def fire() -> None:
            with self.lock:
                if self.timers.get(cid) is not t:
                    return  # cancelled (or replaced) after it had fired: cancel_restart's to say
                del self.timers[cid]
                if cid in self.manually_stopped or self.stopping.is_set():
                    self.restart_pending.discard(cid)
                    return
                self.restart_counts[cid] = self.restart_counts.get(cid, 0) + 1
                done = threading.Event()
                self.restarts_running[cid] = (done, threading.current_thread())
            try:
                self.save_state()
                self.start_container(cid, restarting=True)
            except Exception as exc:
                log.warning("restart of %s failed: %s", cid[:12], exc)
            finally:
                with self.lock:
                    self.restart_pending.discard(cid)
                    self.restarts_running.pop(cid, None)
                done.set()

        t = threading.Timer(delay, fire)
        t.daemon = True
        with self.lock:
            old = self.timers.pop(cid, None)
            if old:
                old.cancel()
            self.timers[cid] = t
        t.start()

    def cancel_restart(self, cid: str) -> None:
        """No restart of ``cid`` comes after this returns: a pending one is dropped, one already
        starting is waited for (a stop or removal then deals with a running container, instead of
        removing its directory under the start)."""
        with self.lock:
            t = self.timers.pop(cid, None)
            self.restart_pending.discard(cid)
            running = self.restarts_running.get(cid)
        if t:
            t.cancel()
        if running is not None and running[1] is not threading.current_thread():
            running[0].wait(60)

    # -- operations shared by routes and the restart logic -----------------------------------------

    def start_container(self, ref: str, restarting: bool = False) -> None:
        with self.engines.get() as engine:
            cid = engine.containers.resolve(ref)
            changed = False
            with self.lock:
                attach = self.pending_attach.get(cid, 0) > 0
                if not restarting and (cid in self.manually_stopped or cid in self.restart_counts):
                    self.manually_stopped.discard(cid)
                    self.restart_counts.pop(cid, None)
                    self.restart_delays.pop(cid, None)
                    changed = True
            rec = engine.containers.load(cid)
            was_running = engine.containers.refresh(rec)["state"]["Running"]
            try:
                state = engine.containers.start(cid, attach=attach)
            except BaseException:
                if not was_running:
                    self._start_failed(engine, rec)
                raise
            if was_running:
                return
            self.track(cid, {"state": state})
            with self.attach_cond:
                self.attach_cond.notify_all()
            rec = engine.containers.load(cid)
            self.health.watch(cid, rec)
            self._emit_container(rec, "start")
        if changed:
            self.save_state()

    def _start_failed(self, engine, rec: dict) -> None:
        """As dockerd after a start that failed: the clients attached for it are let go, and a
        container made with ``--rm`` is removed (``docker run --rm`` waits for that)."""
        cid = rec["id"]
        self.end_attach_waits(cid)
        if not rec["spec"]["HostConfig"].get("AutoRemove"):
            return
        try:
            engine.containers.remove(cid, force=True, volumes=True)
        except NotFound:
            return
        except DockyardError as exc:
            log.warning("removing %s after its start failed: %s", cid[:12], exc)
            return
        self.forget(cid)
        self._emit_container(rec, "destroy")

    def end_attach_waits(self, cid: str) -> None:
        """Attach clients waiting for ``cid`` to start stop waiting (it failed or is gone)."""
        with self.attach_cond:
            if self.pending_attach.get(cid):
                self.attach_abort.add(cid)
                self.notify_attach()

    def notify_attach(self) -> None:
        """Wake the attach clients waiting for a start: ``attach_cond``'s waiters, and those that
        also watch their client's socket (a byte in each one's pipe).  Hold ``attach_cond``."""
        self.attach_cond.notify_all()
        for w in self.attach_wakers:
            try:
                os.write(w, b"x")
            except BlockingIOError:
                pass  # a byte is waiting already

    def mark_stopped(self, cid: str, persist: bool = True) -> None:
        """Stopped by hand: no restart policy applies to its exit.  ``persist`` False: kept in
        memory only (a container about to be removed, which nothing on disk names)."""
        with self.lock:
            self.manually_stopped.add(cid)
        self.cancel_restart(cid)
        if persist:
            self.save_state()

    def forget(self, cid: str) -> None:
        self.end_attach_waits(cid)
        with self.lock:
            self.manually_stopped.discard(cid)
            self.restart_counts.pop(cid, None)
            self.restart_delays.pop(cid, None)
        self.untrack(cid)
        self.health.unwatch(cid)
        self.cancel_restart(cid)

    def _emit_container(self, rec: dict, action: str, extra: dict | None = None) -> None:
        attrs = {"image": rec["spec"]["Config"].get("Image", ""), "name": rec["name"]}
        attrs.update(rec["spec"]["Config"].get("Labels") or {})
        attrs.update(extra or {})
        self.events.emit("container", action, rec["id"], attrs)

    def emit_container(self, engine, ref: str, action: str, extra: dict | None = None) -> None:
        try:
            rec = engine.containers.load(engine.containers.resolve(ref))
        except NotFound:
            return
        self._emit_container(rec, action, extra)


def _alive(pid: int) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
