"""Healthchecks: the model (what dockerd does with ``Config.Healthcheck``), no scheduling.

A container's healthcheck is the image's ``HEALTHCHECK`` merged with what run/create gave
(:func:`merge`, dockerd's rule: each field given wins, each zero one is the image's).  While the
container runs, a probe runs every ``Interval`` (``StartInterval`` during the start period) as an
exec in the container; :func:`record` folds each result into ``State.Health``: ``starting`` until
a probe passes, ``healthy`` then, ``unhealthy`` after ``Retries`` failures in a row.  Failures in
the start period do not count, a pass there ends it.  The daemon schedules the probes
(``daemon/health.py``).
"""

from __future__ import annotations

import time

NS = 1_000_000_000
DEFAULT_INTERVAL = 30 * NS
DEFAULT_TIMEOUT = 30 * NS
DEFAULT_START_INTERVAL = 5 * NS
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000  # 1ms, dockerd's floor for each duration given
MAX_OUTPUT = 4096         # bytes of a probe's output kept in its log entry, as dockerd
MAX_LOG = 5               # log entries kept


def validate(hc: dict | None) -> None:
    """dockerd's checks of a healthcheck given at create, in its words."""
    from ..errors import InvalidArgument

    if not hc:
        return
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        value = hc.get(key) or 0
        if value and value < MIN_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    if (hc.get("Retries") or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")


def merge(given: dict | None, image: dict | None) -> dict | None:
    """The container's healthcheck: ``given`` (run/create) over the image's."""
    if not given:
        return dict(image) if image else None
    out = {k: v for k, v in given.items() if v not in (None, 0, [])}
    for key, value in (image or {}).items():
        if not out.get(key):
            out[key] = value
    return out


def settings(config: dict) -> dict | None:
    """What the probes run with, defaults filled in; None when the container has no check
    (none given, or ``NONE``)."""
    hc = config.get("Healthcheck") or {}
    test = hc.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return {
        "test": list(test),
        "interval": hc.get("Interval") or DEFAULT_INTERVAL,
        "timeout": hc.get("Timeout") or DEFAULT_TIMEOUT,
        "start_period": hc.get("StartPeriod") or 0,
        "start_interval": hc.get("StartInterval") or DEFAULT_START_INTERVAL,
        "retries": hc.get("Retries") or DEFAULT_RETRIES,
    }


def command(test: list[str], shell: list[str] | None = None) -> list[str] | None:
    """The probe's argv: ``CMD`` runs its arguments, ``CMD-SHELL`` its string with the image's
    shell (``/bin/sh -c`` by default); anything else is not a probe dockerd runs."""
    if not test:
        return None
    if test[0] == "CMD" and len(test) > 1:
        return list(test[1:])
    if test[0] == "CMD-SHELL" and len(test) > 1:
        return [*(shell or ["/bin/sh", "-c"]), test[1]]
    return None


def starting() -> dict:
    return {"Status": "starting", "FailingStreak": 0, "Log": []}


def record(health: dict, start: float, end: float, code: int, output: str, in_start_period: bool,
           retries: int) -> dict:
    """``health`` after a probe that ran from ``start`` to ``end`` (epoch seconds) and exited
    ``code`` (-1: it timed out or could not run) with ``output``."""
    log = list(health.get("Log") or [])[-(MAX_LOG - 1):]
    log.append({"Start": rfc3339(start), "End": rfc3339(end), "ExitCode": code,
                "Output": output.encode()[:MAX_OUTPUT].decode(errors="replace")})
    out = dict(health, Log=log)
    if code == 0:
        out["Status"], out["FailingStreak"] = "healthy", 0
    elif in_start_period and health.get("Status") == "starting":
        pass  # failures in the start period do not count
    else:
        out["FailingStreak"] = int(health.get("FailingStreak") or 0) + 1
        if out["FailingStreak"] >= retries:
            out["Status"] = "unhealthy"
    return out


def rfc3339(t: float) -> str:
    """Go's RFC 3339 with nanoseconds (trailing zeros trimmed), in UTC, as dockerd writes probe
    times."""
    ns = int(round(t * 1e9))
    frac = f"{ns % NS:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // NS)) + (f".{frac}" if frac else "") + "Z"
