"""The worker side's policy after a Redis error, on its own (no Redis involved): the pauses, the
quiet logging of a long outage, and the one clear line and long pause for a missing permission.
The consumer, the scheduler and the manager's subscription all use it (their outages: test_faults,
test_recovery, test_security)."""

from __future__ import annotations

import logging

import anyio
import pytest
from redis.exceptions import ConnectionError, NoPermissionError

from streamq.client.notices import RESUBSCRIBE_PAUSES
from streamq.transport.acl import PERMISSION_PAUSE
from streamq.worker.outage import QUIET_ERRORS, OutagePolicy

LOST = ConnectionError("Connection closed by server.")
DENIED = NoPermissionError("this user has no permissions to run the 'xautoclaim' command")


def policy(*pauses: float, then: str = "retrying") -> OutagePolicy:
    return OutagePolicy("consumer c-1", "myprefix", pauses, then=then)


def test_the_pauses_grow_to_the_last_which_repeats() -> None:
    outage = policy(0.05, 0.1, 2.0)
    assert [outage.pause_for(LOST, errors) for errors in range(5)] == [0.05, 0.1, 2.0, 2.0, 2.0]


def test_the_subscription_doubles_its_pause_up_to_five_seconds() -> None:
    outage = policy(*RESUBSCRIBE_PAUSES, then="resubscribing")
    doubling = [min(1.0 * 2**errors, 5.0) for errors in range(10)]
    assert [outage.pause_for(LOST, errors) for errors in range(10)] == doubling


def test_the_first_error_of_a_run_is_a_warning_then_one_in_thirty(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="streamq")
    outage = policy(0.05, 2.0)
    for errors in range(2 * QUIET_ERRORS + 5):
        outage.report(LOST, errors, "read")
    outage.report(LOST, 0, "read")  # a success came between: a new run
    levels = [r.levelno for r in caplog.records]
    assert len(levels) == 2 * QUIET_ERRORS + 6
    warned = [n for n, level in enumerate(levels) if level == logging.WARNING]
    assert warned == [0, QUIET_ERRORS, 2 * QUIET_ERRORS, 2 * QUIET_ERRORS + 5]
    assert set(levels) == {logging.WARNING, logging.DEBUG}
    assert caplog.records[0].getMessage() == (
        "consumer c-1: Redis error while trying to read (Connection closed by server.);"
        " retrying in 0.05s (try 1)"
    )
    quiet_warning = caplog.records[QUIET_ERRORS].getMessage()
    assert quiet_warning.endswith(f"retrying in 2s (try {QUIET_ERRORS + 1})")


def test_a_line_without_an_activity_names_only_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="streamq")
    assert policy(1.0, then="resubscribing").report(LOST, 0) == 1.0
    (record,) = caplog.records
    assert record.getMessage() == (
        "consumer c-1: Redis error (Connection closed by server.); resubscribing in 1s (try 1)"
    )


def test_a_missing_permission_is_one_clear_error_and_a_long_pause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="streamq")
    outage = policy(0.05, 2.0)
    assert outage.report(DENIED, 7, "read") == PERMISSION_PAUSE
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert message.startswith("consumer c-1: read: the Redis user lacks a permission")
    assert "'xautoclaim' command" in message
    assert "ACL SETUSER <user> ~myprefix:* " in message
    assert message.endswith(f"; retrying in {PERMISSION_PAUSE:g}s")
    # Every denial is told (at the long pause, that is one line in 30 s), quiet or not.
    assert outage.report(DENIED, QUIET_ERRORS + 1) == PERMISSION_PAUSE
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.ERROR]


def test_a_failed_write_is_tried_once_per_pause_and_never_when_denied() -> None:
    outage = policy(0.05, 0.1, 2.0)
    assert [outage.another_try(LOST, errors) for errors in range(4)] == [True] * 3 + [False]
    assert not outage.another_try(DENIED, 0)


def test_a_policy_needs_a_pause() -> None:
    with pytest.raises(ValueError, match="at least one pause"):
        OutagePolicy("scheduler wake-ups", "streamq", ())


@pytest.mark.anyio
async def test_pause_waits_out_the_pause_and_counts_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="streamq")
    assert await policy(0.01).pause(LOST, 3, "heartbeat") == 4
    for outage, exc in [(policy(5.0), LOST), (policy(0.01), DENIED)]:
        with anyio.move_on_after(0.2) as scope:  # neither returns early: no loop spins
            await outage.pause(exc, 0)
        assert scope.cancelled_caught
