"""The pytest plugin's fixtures, as this suite gets them (the ``pytest11`` entry point loads
the plugin here too; its fixtures are named ``streamq_*`` apart from this suite's own)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

import streamq
from streamq.testing import pytest_plugin

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


def test_the_plugin_is_registered_by_its_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.get_plugin("streamq") is pytest_plugin


async def test_the_manager_is_open_on_a_throwaway_server_under_the_tests_prefix(
    streamq_manager: streamq.QueueManager, streamq_redis_url: str, streamq_prefix: str
) -> None:
    url = urlsplit(streamq_redis_url)
    assert url.hostname == "127.0.0.1" and url.port != 6379  # one the session started
    assert streamq_manager.prefix == streamq_prefix
    assert streamq_prefix.startswith("streamq-test-")
    assert streamq_manager.shutdown_grace == pytest_plugin.SHUTDOWN_GRACE

    async def double(job: streamq.Job[int]) -> int:
        return job.data * 2

    queue = streamq_manager.get_queue("numbers", int)
    await queue.consume(double)
    assert await queue.call(21, timeout=10) == 42


@pytest.mark.parametrize("run", ["first", "second"])
async def test_each_test_sees_only_its_own_queues(
    streamq_manager: streamq.QueueManager, run: str
) -> None:
    # Both runs use the same queue name on the same server: each finds it empty.
    assert await streamq_manager.queues() == []
    queue = streamq_manager.get_queue("shared")
    await queue.enqueue(run)
    assert await streamq_manager.queues() == ["shared"]
    assert (await queue.stats()).waiting == 1


class TestManagerOptions:
    @pytest.fixture
    def streamq_manager_options(self) -> dict[str, Any]:
        return {"keep_events": 0, "shutdown_grace": 1.0}

    async def test_an_override_reaches_the_manager(
        self, streamq_manager: streamq.QueueManager
    ) -> None:
        assert streamq_manager.keep_events == 0
        assert streamq_manager.shutdown_grace == 1.0
