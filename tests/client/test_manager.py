"""Connecting: URLs, server checks, queue names and the manager's life."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import streamq
from streamq.testing.localserver import LocalRedis, free_port

pytestmark = pytest.mark.anyio


async def test_connects_and_hands_out_one_queue_per_name(redis_url: str) -> None:
    async with streamq.QueueManager(redis_url) as qm:
        assert qm.get_queue("emails") is qm.get_queue("emails")
        assert qm.get_queue("emails") is not qm.get_queue("exports")
        assert qm.instance_id
    other = streamq.QueueManager(redis_url)
    assert other.instance_id != qm.instance_id


async def test_url_defaults_to_the_environment(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMQ_REDIS_URL", redis_url)
    async with streamq.QueueManager() as qm:
        assert qm.url == redis_url


async def test_unix_socket_url(tmp_path: Any) -> None:
    socket_path = tmp_path / "redis.sock"
    server = LocalRedis(extra_args=["--unixsocket", str(socket_path), "--unixsocketperm", "700"])
    with server:
        async with streamq.QueueManager(f"unix://{socket_path}") as qm:
            queue = qm.get_queue("over-unix")
            job_id = await queue.enqueue({"n": 1})
            info = await queue.get_job(job_id)
            assert info is not None and info.state == "waiting"


@pytest.mark.parametrize(
    "name",
    ["", "a{b", "a}b", "has space", "tab\there", "new\nline", "x" * 201],
    ids=["empty", "open-brace", "close-brace", "space", "tab", "newline", "too-long"],
)
async def test_bad_queue_names_raise_value_error(qm: streamq.QueueManager, name: str) -> None:
    with pytest.raises(ValueError, match="queue name"):
        qm.get_queue(name)


async def test_name_that_is_not_a_string(qm: streamq.QueueManager) -> None:
    with pytest.raises(ValueError, match="must be a str"):
        qm.get_queue(42)  # type: ignore[call-overload]


async def test_longest_allowed_name_works(qm: streamq.QueueManager) -> None:
    queue = qm.get_queue("n" * 200)
    assert await queue.get_job(await queue.enqueue(1)) is not None


async def test_one_type_per_queue_name(qm: streamq.QueueManager, queue_name: str) -> None:
    class A(msgspec.Struct):
        x: int

    qm.get_queue(queue_name, A)
    assert qm.get_queue(queue_name) is qm.get_queue(queue_name, A)
    with pytest.raises(ValueError, match="already opened with type"):
        qm.get_queue(queue_name, int)


async def test_unreachable_server_is_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(streamq.ConnectionFailed, match=f"cannot connect to Redis at .*:{port}"):
        async with streamq.QueueManager(f"redis://127.0.0.1:{port}/0"):
            pass


async def test_password_is_not_shown_in_errors() -> None:
    port = free_port()
    with pytest.raises(streamq.ConnectionFailed) as caught:
        async with streamq.QueueManager(f"redis://user:s3cret@127.0.0.1:{port}/0"):
            pass
    assert "s3cret" not in str(caught.value)


async def test_server_older_than_6_2_is_refused(old_redis_binary: str) -> None:
    with (
        LocalRedis(binary=old_redis_binary) as old,
        pytest.raises(streamq.ConnectionFailed, match=r"version 5\.0\.\d+.*>= 6\.2"),
    ):
        async with streamq.QueueManager(old.url):
            pass


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:6379",
        "nonsense",
        "redis+cluster://127.0.0.1",
        "redis+cluster://127.0.0.1:7000,:7001",
        "redis+cluster://127.0.0.1:7000/3",
    ],
)
async def test_unsupported_urls_are_clear_errors(url: str) -> None:
    with pytest.raises(streamq.InvalidArgument, match=r"URL|host:port|only database 0"):
        async with streamq.QueueManager(url):
            pass


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "the Redis URL is empty"),
        ("   ", "the Redis URL is empty"),
        ("redis://127.0.0.1:6379/abc", "the database in Redis URL .* is 'abc', not a number"),
        ("rediss://127.0.0.1:6379/1x", "the database in Redis URL .* is '1x', not a number"),
        ("redis://127.0.0.1:port/0", "the port in Redis URL .* is not a number"),
        ("ftp://127.0.0.1", "unsupported Redis URL"),
    ],
)
async def test_an_empty_or_mistyped_url_is_refused_at_once(
    url: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty URL used $STREAMQ_REDIS_URL (or the default), and a database that is not a
    number connected to database 0."""
    monkeypatch.setenv("STREAMQ_REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(streamq.InvalidArgument, match=message):
        streamq.QueueManager(url)


async def test_an_empty_environment_url_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMQ_REDIS_URL", "")
    assert streamq.QueueManager().url == "redis://127.0.0.1:6379/0"


async def test_unreachable_cluster_is_a_clear_error() -> None:
    ports = [free_port(), free_port()]
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    with pytest.raises(streamq.ConnectionFailed, match="cannot connect to Redis"):
        async with streamq.QueueManager(url):
            pass


async def test_using_a_queue_before_connecting_says_how(redis_url: str) -> None:
    queue = streamq.QueueManager(redis_url).get_queue("early")
    with pytest.raises(streamq.StreamqError, match="async with QueueManager"):
        await queue.enqueue(1)


def test_bad_manager_options() -> None:
    with pytest.raises(ValueError, match="prefix"):
        streamq.QueueManager(prefix="a{b")
    with pytest.raises(ValueError, match="result_ttl"):
        streamq.QueueManager(result_ttl=0)
    with pytest.raises(ValueError, match="instance_id"):
        streamq.QueueManager(instance_id="has space")


async def test_an_error_in_the_block_comes_out_as_it_is(redis_url: str) -> None:
    """Not wrapped in the manager's task group's ExceptionGroup, and never swallowed."""
    with pytest.raises(KeyError, match="mine"):
        async with streamq.QueueManager(redis_url):
            raise KeyError("mine")
    with pytest.raises(KeyError, match="mine"):
        async with streamq.QueueManager(redis_url, shutdown_grace=1) as qm:
            await qm.get_queue("errors-out").consume(lambda job: None)
            raise KeyError("mine")
