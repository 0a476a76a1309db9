"""The engine's side of ``dockyard-runtime``: finding the binary and calling its commands.

The runtime is a separate executable (an OCI runtime with runc's command line, plus ``shim``,
the per-container supervisor); see rust/runtime.  The engine never runs Python in a container's
process tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from ..errors import DockyardError

_PATH: str | None = None


def binary() -> str:
    """``$DOCKYARD_RUNTIME``, the copy shipped in the wheel, a development build, or PATH."""
    global _PATH
    if _PATH is not None:
        return _PATH
    here = Path(__file__).resolve().parent.parent
    candidates = [os.environ.get("DOCKYARD_RUNTIME", ""), str(here / "bin" / "dockyard-runtime")]
    repo = here.parent.parent
    candidates += [str(repo / "target" / "release" / "dockyard-runtime"),
                   str(repo / "target" / "debug" / "dockyard-runtime")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            _PATH = c
            return c
    found = shutil.which("dockyard-runtime")
    if found:
        _PATH = found
        return found
    raise DockyardError("dockyard-runtime is not installed (reinstall dockyard: pip install .)")


_RUN_DIR: tuple[str, Path] = ("", Path())


def run_dir() -> Path:
    global _RUN_DIR
    value = os.environ.get("DOCKYARD_RUN", "/run/dockyard")
    if _RUN_DIR[0] != value:  # (asked for per container by listings: made once)
        _RUN_DIR = (value, Path(value))
    return _RUN_DIR[1]


class Runtime:
    def __init__(self, state_root: Path) -> None:
        self.root = state_root

    def _cmd(self, *args: str) -> list[str]:
        return [binary(), "--root", str(self.root), *args]

    def call(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(self._cmd(*args), capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise DockyardError(_one_line(proc.stderr) or f"dockyard-runtime {args[0]} failed")
        return proc

    def shim(self, bundle: Path, cid: str, log: Path, exit_file: Path, attach: Path, tty: bool,
             stdin: bool, wait_attach: bool = False, exit_fallback: Path | None = None,
             log_max: tuple[int, int] = (0, 1)) -> tuple[int, int]:
        """Start the container under its supervisor; returns the container's pid and the
        supervisor's once running (with ``wait_attach``: once created).

        The runtime's own error (e.g. the command does not exist) comes back as the exception's
        message; the container's exit status (127/126) is in the exit file, or in
        ``exit_fallback`` when the exit file cannot be written (a full disk).  ``log_max``:
        (max-size in bytes, 0 for none; max-file) of the log's rotation."""
        args = ["shim", "--bundle", str(bundle), "--id", cid, "--log", str(log), "--exit-file",
                str(exit_file), "--attach-socket", str(attach), "--delete-on-exit"]
        if exit_fallback is not None:
            args += ["--exit-file-fallback", str(exit_fallback)]
        if log_max[0]:
            args += ["--log-max-size", str(log_max[0]), "--log-max-file", str(log_max[1])]
        if tty:
            args.append("--tty")
        if stdin:
            args.append("--stdin")
        if wait_attach:
            # created now, started when the caller's attach connects: no output is missed
            args.append("--wait-attach")
        proc = subprocess.run(self._cmd(*args), capture_output=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise StartError(_one_line(proc.stderr) or "the container did not start")
        words = proc.stdout.decode().split()
        try:
            return int(words[0]), int(words[1]) if len(words) > 1 else 0
        except (ValueError, IndexError):
            return 0, 0

    def kill(self, cid: str, signal: int, all_: bool = False) -> bool:
        args = ["kill"] + (["--all"] if all_ else []) + [cid, str(signal)]
        return self.call(*args, check=False).returncode == 0

    def delete(self, cid: str) -> None:
        self.call("delete", "-f", cid, check=False)

    def state(self, cid: str) -> dict | None:
        proc = self.call("state", cid, check=False)
        if proc.returncode != 0:
            return None
        try:
            return json.loads(proc.stdout)
        except ValueError:
            return None

    def update(self, cid: str, resources: dict) -> None:
        """New cgroup limits for a live container (OCI LinuxResources; the fields given)."""
        proc = subprocess.run(self._cmd("update", "--resources", "-", cid), input=json.dumps(resources).encode(),
                              capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise DockyardError(_one_line(proc.stderr) or "dockyard-runtime update failed")

    def pause(self, cid: str) -> None:
        self.call("pause", cid)

    def resume(self, cid: str) -> None:
        self.call("resume", cid)

    def ps(self, cid: str) -> list[int]:
        proc = self.call("ps", "--format", "json", cid)
        return [int(p) for p in json.loads(proc.stdout or b"[]")]


class StartError(DockyardError):
    """The runtime could not start the container's process."""


def _one_line(raw: bytes) -> str:
    lines = [l.strip() for l in raw.decode(errors="replace").splitlines() if l.strip()]
    return lines[-1] if lines else ""
