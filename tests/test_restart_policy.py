"""engine/restart.py: the restart decision alone, no daemon (moby's restart manager's rules)."""

from __future__ import annotations

import pytest

from dockyard.engine.restart import FIRST_DELAY, MAX_DELAY, decide


@pytest.mark.parametrize("policy,code,by_hand,count,want", [
    (None, 1, False, 0, False),
    ({"Name": "no"}, 1, False, 0, False),
    ({"Name": "always"}, 0, False, 0, True),
    ({"Name": "always"}, 0, True, 0, False),
    ({"Name": "unless-stopped"}, 3, False, 5, True),
    ({"Name": "unless-stopped"}, 3, True, 5, False),
    ({"Name": "on-failure"}, 0, False, 0, False),
    ({"Name": "on-failure"}, 1, False, 100, True),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, 1, False, 1, True),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, 1, False, 2, False),
    ({"Name": "sometimes"}, 1, False, 0, False),
])
def test_whether_it_restarts(policy, code, by_hand, count, want):
    assert decide(policy, code, by_hand, count, ran_for=0.5)[0] is want


def test_the_first_restart_is_at_once_then_the_delay_doubles_up_to_a_minute():
    always = {"Name": "always"}
    delays, last = [], 0.0
    for count in range(12):
        again, last = decide(always, 1, False, count, ran_for=0.1, last_delay=last)
        assert again
        delays.append(last)
    assert delays[:5] == [0.0, FIRST_DELAY, 2 * FIRST_DELAY, 4 * FIRST_DELAY, 8 * FIRST_DELAY]
    assert delays[-1] == MAX_DELAY and all(a <= b for a, b in zip(delays, delays[1:]))


def test_a_long_run_makes_the_next_exit_a_first_one_again():
    always = {"Name": "always"}
    assert decide(always, 1, False, 12, ran_for=10.0, last_delay=MAX_DELAY) == (True, 0.0)
    # a quick exit after that immediate restart waits the first delay, not at once again
    assert decide(always, 1, False, 13, ran_for=0.1, last_delay=0.0) == (True, FIRST_DELAY)
