"""Restart policies as one pure decision, as moby's restart manager makes it: after an exit,
restart or not, and after how long.  No daemon, no timers: the daemon keeps the count and the
last delay per container and schedules what this says.

- ``no`` (or none): never.  ``always``: unless stopped by hand.  ``unless-stopped``: the same.
  ``on-failure[:N]``: a non-zero exit, at most N restarts when N is given.
- The first restart is at once (moby waits 100 ms; the wait buys nothing for a container that
  exits once).  If it exits again quickly, the next waits 100 ms, and the delay doubles with each
  restart up to a minute; a run that lasted 10 s or more counts as a first exit again.
"""

from __future__ import annotations

FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0


def decide(policy: dict | None, exit_code: int, stopped_by_hand: bool, count: int, ran_for: float,
           last_delay: float = 0.0) -> tuple[bool, float]:
    """(restart?, delay in seconds) after an exit with ``exit_code`` of a run that lasted
    ``ran_for`` seconds; ``count`` restarts so far, ``last_delay`` the delay before the last."""
    name = (policy or {}).get("Name") or "no"
    if name == "no" or stopped_by_hand:
        return False, 0.0
    if name == "on-failure":
        limit = int((policy or {}).get("MaximumRetryCount") or 0)
        if exit_code == 0 or (limit and count >= limit):
            return False, 0.0
    elif name not in ("always", "unless-stopped"):
        return False, 0.0
    if count == 0 or ran_for >= RESET_AFTER:
        delay = 0.0
    elif last_delay <= 0:
        delay = FIRST_DELAY
    else:
        delay = min(MAX_DELAY, last_delay * 2)
    return True, delay
