"""Security: an ACL user limited to what streamq needs, clear errors for wrong credentials and
missing permissions, TLS with a private CA (and client certificates), and the start-up warning
for an eviction policy that can delete jobs.

Every test starts its own redis-server: ACL users, TLS and eviction settings are the server's.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
import trustme

import streamq
from streamq.testing.localcluster import LocalCluster
from streamq.testing.localserver import LocalRedis, TlsFiles
from streamq.transport.acl import COMMANDS, SCRIPT_COMMANDS, acl_rules
from streamq.transport.connection import eviction_warning

from ..helpers import wait_until

pytestmark = pytest.mark.anyio

PACKAGE = Path(streamq.__file__).parent
README = PACKAGE.parent / "README.md"
PASSWORD = "s3cret-pw"
#: The slow ACL tests run on one event loop (the loops matter for TLS, not for ACLs).
one_loop = pytest.mark.parametrize("anyio_backend", ["asyncio"])


def _binary(kind: str) -> str | None:
    if kind == "system":
        return None
    path = os.environ.get("STREAMQ_REDIS_62_SERVER", ".cache/redis-6.2/redis-server")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no redis-server at {path}: run `make test`, which builds it into .cache/")
    return path


@pytest.fixture(scope="module", params=["system", "6.2"], ids=["redis", "redis6.2"])
def acl_server(request: pytest.FixtureRequest) -> Iterator[LocalRedis]:
    """Scripts' permission errors read differently on 6.2 and 7: both are covered."""
    with LocalRedis(binary=_binary(request.param)) as server:
        yield server


@pytest.fixture
async def admin(acl_server: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(acl_server.url)
    await _command(client, "ACL", "LOG", "RESET")
    yield client
    await client.aclose()


async def _command(client: aioredis.Redis, *args: str) -> Any:
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


async def _user(admin: aioredis.Redis, name: str, rules: str) -> None:
    await _command(admin, "ACL", "SETUSER", name, "reset", "on", f">{PASSWORD}", *rules.split())


async def _refused(admin: aioredis.Redis) -> list[tuple[bytes, bytes]]:
    """What Redis's ACL LOG recorded as refused, less CLIENT: redis-py names itself on every
    connection (CLIENT SETINFO, Redis >= 7.2) and ignores a refusal."""
    log = await _command(admin, "ACL", "LOG")
    return [(r[b"reason"], r[b"object"]) for r in log if r[b"object"] != b"client"]


def _without(command: str) -> str:
    """streamq's rules less one command (Redis 6.2 cannot take a subcommand away with -)."""
    rules = acl_rules().split()
    rules.remove(f"+{command}")
    return " ".join(rules)


def _url(server: LocalRedis, user: str, password: str = PASSWORD) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{server.port}/0"


# -- ACL -------------------------------------------------------------------------------------


def test_the_script_commands_are_exactly_those_the_scripts_call() -> None:
    """The ACL list follows the scripts: a command added to one must be added to it."""
    called = set()
    for path in PACKAGE.joinpath("store", "lua").glob("*.lua"):
        for name, sub in re.findall(r"redis\.call\('(\w+)'(?:,\s*'(\w+)')?", path.read_text()):
            has_sub = name in ("XGROUP", "XINFO", "MEMORY")
            called.add(f"{name}|{sub}".lower() if has_sub else name.lower())
    called.add("xclaim")  # heartbeat.lua builds its XCLAIM call as a table
    assert called == set(SCRIPT_COMMANDS)


def test_the_readme_gives_the_acl_rules() -> None:
    assert acl_rules("streamq") in README.read_text().replace("\n", " ")


@one_loop
async def test_a_user_limited_to_streamqs_keys_and_commands_runs_the_whole_workflow(
    acl_server: LocalRedis, admin: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Enqueue (fast path, staged, delayed), consume, retry, dead letters, stats, recurring,
    cancel, wait_for, rate limits, broadcast with trimming, XAUTOCLAIM recovery and
    min_replicas' WAIT, all as a user with exactly ``acl_rules()``; Redis's ACL LOG, which
    records every refusal, stays empty."""
    await _user(admin, "streamq", acl_rules())
    url = _url(acl_server, "streamq")
    caplog.set_level(logging.WARNING, logger="streamq")
    async with streamq.QueueManager(url, shutdown_grace=5) as qm:
        queue = qm.get_queue("acl-work")
        tries: dict[str, int] = {}

        def handle(job: streamq.Job[Any]) -> Any:
            tries[job.id] = tries.get(job.id, 0) + 1
            if job.data == "fail-once" and tries[job.id] == 1:
                raise ValueError("first try fails")
            if job.data == "always-fails":
                raise ValueError("never works")
            return job.data

        await queue.consume(handle, max_retries=1, backoff=0.05, rate_limit=(1000, 1.0))
        await queue.consume(handle, consumer_group="acl-other")  # a broadcast: trims
        assert (
            await queue.wait_for(await queue.enqueue("plain"), timeout=5, group="acl-work")
            == "plain"
        )
        assert (
            await queue.wait_for(await queue.enqueue("fail-once"), timeout=5, group="acl-work")
            == "fail-once"
        )
        dead = await queue.enqueue("always-fails", job_id="doomed")
        with pytest.raises(streamq.JobFailed):
            await queue.wait_for(dead, timeout=5, group="acl-work")
        keyed = await queue.enqueue_many(["k1", "k2"], fairness_key="tenant")
        assert [await queue.wait_for(i, timeout=5, group="acl-work") for i in keyed] == [
            "k1",
            "k2",
        ]
        ids = await queue.enqueue_many(["a", "b"], priority=5)
        assert [await queue.wait_for(i, timeout=5, group="acl-work") for i in ids] == ["a", "b"]
        assert await queue.wait_for(
            await queue.enqueue("late", start_delay=0.1), timeout=5, group="acl-work"
        )
        later = await queue.enqueue("never", start_delay=60)
        assert await queue.cancel(later)
        info = await queue.get_job(later)
        assert info is not None and info.state == "cancelled"
        await queue.schedule_recurring("tick", "tick", interval_seconds=0.1)
        await wait_until(lambda: any(j.startswith("tick@") for j in tries), what="a tick")
        assert await queue.cancel_recurring("tick")
        assert [d.job_id for d in await queue.dead_letters()] == ["doomed"]
        assert await queue.retry_dead() == 1
        with pytest.raises(streamq.JobFailed):
            await queue.wait_for("doomed", timeout=5, group="acl-work")
        assert await queue.purge_dead() == 1
        stats = await queue.stats()
        assert stats.groups == 2 and stats.dead == 0

        # A flow: held steps, the commit, the outbox relayed, children's results, a failed
        # child's parent replayed.
        steps = qm.get_queue("acl-steps")
        await steps.consume(handle, max_retries=0)
        flow = streamq.Step(
            "acl-work",
            "parent",
            children=[
                streamq.Step("acl-steps", "child"),
                streamq.Step("acl-steps", "always-fails"),
            ],
            on_child_failure="ignore",
        )
        root_id = await qm.enqueue_flow(flow)
        assert await queue.wait_for(root_id, timeout=5, group="acl-work") == "parent"
        assert list((await queue.children_results(root_id)).values()) == ["child"]
        failing = await qm.enqueue_flow(
            streamq.Step("acl-steps", "p", children=[streamq.Step("acl-steps", "always-fails")])
        )
        with pytest.raises(streamq.JobFailed):
            await steps.wait_for(failing, timeout=5)
        assert await steps.retry_dead(failing) == 1
        await steps.purge_dead()

        # A consumer that died holding a job: reclaimed with XAUTOCLAIM.
        lost = qm.get_queue("acl-lost")
        stream = "streamq:{acl-lost}:stream"
        await admin.xgroup_create(stream, "acl-lost", id="0", mkstream=True)
        job_id = await lost.enqueue("reclaimed")
        await admin.xreadgroup("acl-lost", "a-dead-consumer", {stream: ">"}, count=1)
        await lost.consume(lambda job: job.data, visibility_timeout=0.2)
        assert await lost.wait_for(job_id, timeout=5) == "reclaimed"
        # Trimming (every 2 s, after acknowledgements) with two groups.
        await anyio.sleep(2.5)
    async with streamq.QueueManager(url, min_replicas=1, replica_timeout=0.05) as qm:
        with pytest.raises(streamq.NotReplicated):  # WAIT ran: there is no replica
            await qm.get_queue("acl-durable").enqueue(1)
    assert await _refused(admin) == []
    assert not [r for r in caplog.records if "permission" in r.getMessage()]


@one_loop
async def test_a_wrong_password_names_the_user_and_not_the_password(
    acl_server: LocalRedis, admin: aioredis.Redis
) -> None:
    await _user(admin, "streamq", acl_rules())
    with pytest.raises(streamq.ConnectionFailed) as caught:
        async with streamq.QueueManager(_url(acl_server, "streamq", "wrong-pw")):
            pass
    message = str(caught.value)
    assert "refused the credentials of user 'streamq'" in message
    assert "wrong-pw" not in message and "password" in message
    with pytest.raises(streamq.ConnectionFailed, match="of user 'nobody'"):
        async with streamq.QueueManager(
            f"redis://127.0.0.1:{acl_server.port}/0", username="nobody", password="x"
        ):
            pass


@one_loop
async def test_a_user_without_a_command_gets_an_error_naming_it_at_connect(
    acl_server: LocalRedis, admin: aioredis.Redis
) -> None:
    await _user(admin, "no-info", _without("info"))
    with pytest.raises(streamq.PermissionDenied) as caught:
        async with streamq.QueueManager(_url(acl_server, "no-info")):
            pass
    assert isinstance(caught.value, streamq.ConnectionFailed)
    message = str(caught.value)
    assert "'info'" in message and f"ACL SETUSER <user> {acl_rules()}" in message


@one_loop
async def test_missing_permissions_name_the_command_or_the_keys_at_the_first_call(
    acl_server: LocalRedis, admin: aioredis.Redis
) -> None:
    await _user(admin, "other-keys", acl_rules().replace("~streamq:*", "~other:*"))
    async with streamq.QueueManager(_url(acl_server, "other-keys")) as qm:
        with pytest.raises(streamq.PermissionDenied) as caught:
            await qm.get_queue("denied").enqueue(1)
    message = str(caught.value)
    assert message.startswith("queue 'denied': enqueue:")
    assert "keys" in message and "streamq:*" in message

    await _user(admin, "no-hget", _without("hget"))  # called inside enqueue.lua
    async with streamq.QueueManager(_url(acl_server, "no-hget")) as qm:
        with pytest.raises(streamq.PermissionDenied, match=r"'hget' in streamq's enqueue\.lua"):
            await qm.get_queue("denied").enqueue(1)

    await _user(admin, "no-group", _without("xgroup|create"))
    async with streamq.QueueManager(_url(acl_server, "no-group")) as qm:
        with pytest.raises(streamq.PermissionDenied, match="'xgroup"):
            await qm.get_queue("denied").consume(lambda job: None)

    # wait_for hears the finish over a subscription: said at once, not a silent wait.
    await _user(admin, "no-subscribe", _without("subscribe"))
    async with streamq.QueueManager(_url(acl_server, "no-subscribe")) as qm:
        queue = qm.get_queue("denied")
        with pytest.raises(streamq.PermissionDenied, match="'subscribe'"):
            await queue.wait_for(await queue.enqueue(1), timeout=2)


@one_loop
async def test_a_consumer_missing_a_permission_logs_it_clearly_and_does_not_spin(
    acl_server: LocalRedis, admin: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """XAUTOCLAIM is first needed inside the consumer's loop, after ``consume`` returned."""
    await _user(admin, "no-claim", _without("xautoclaim"))
    caplog.set_level(logging.WARNING, logger="streamq")
    async with streamq.QueueManager(_url(acl_server, "no-claim"), shutdown_grace=1) as qm:
        consumer = await qm.get_queue("stuck").consume(lambda job: None)

        def denied() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "lacks a permission" in r.getMessage()]

        await wait_until(lambda: bool(denied()), what="the permission error to be logged")
        await anyio.sleep(1.0)  # a spinning loop would log again (and again) meanwhile
        (record,) = denied()
        assert record.levelno == logging.ERROR
        message = record.getMessage()
        assert "'xautoclaim' in streamq's reclaim.lua" in message
        assert "ACL SETUSER <user>" in message and "retrying in 30s" in message
        assert consumer.running
    assert not consumer.running, "a stop ends the pause"


@one_loop
@pytest.mark.slow
async def test_acl_rules_on_a_redis_cluster() -> None:
    """A cluster's client also needs the slot map, the command table and ASKING: without them
    the error names what is missing (redis-py reports it as "Cluster mode is not enabled")."""
    with LocalCluster() as cluster:
        admins = [aioredis.Redis.from_url(node.url) for node in cluster.nodes]
        try:
            for admin in admins:
                await _user(admin, "streamq", acl_rules(cluster=True))
                await _user(admin, "single", acl_rules())
            url = cluster.url.replace("redis+cluster://", f"redis+cluster://streamq:{PASSWORD}@")
            async with streamq.QueueManager(url, shutdown_grace=5) as qm:
                queue = qm.get_queue("acl-cluster")
                await queue.consume(lambda job: job.data)
                assert await queue.wait_for(await queue.enqueue(1), timeout=5) == 1
                assert await queue.wait_for(await queue.enqueue(2, start_delay=0.1), timeout=5) == 2
            for admin in admins:
                assert await _refused(admin) == []
            with pytest.raises(streamq.PermissionDenied, match=r"'cluster\|slots'"):
                async with streamq.QueueManager(url.replace("streamq:", "single:", 1)):
                    pass
        finally:
            for admin in admins:
                await admin.aclose()


# -- eviction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--maxmemory-policy", "allkeys-lru"], "allkeys-lru"),
        # CONFIG disabled (as on some managed services): INFO memory tells the policy.
        (["--maxmemory-policy", "allkeys-lfu", "--rename-command", "CONFIG", ""], "allkeys-lfu"),
        (["--maxmemory-policy", "volatile-lru", "--maxmemory", "100mb"], "volatile-lru"),
        (["--maxmemory-policy", "noeviction"], None),
        ([], None),
    ],
)
async def test_an_eviction_policy_is_warned_about_at_start_up(
    args: list[str], expected: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="streamq")
    with LocalRedis(extra_args=args) as server:
        async with streamq.QueueManager(server.url):
            pass
    warnings = [r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    if expected is None:
        assert warnings == []
        return
    (warning,) = warnings
    assert f"maxmemory-policy {expected}" in warning
    assert "CONFIG SET maxmemory-policy noeviction" in warning
    if expected.startswith("volatile"):
        assert "(maxmemory 104857600)" in warning and "results of finished jobs" in warning
    else:
        assert "waiting jobs" in warning and "(maxmemory is 0 now" in warning


def test_no_warning_when_the_policy_cannot_be_read() -> None:
    assert eviction_warning({}, "redis://x") is None
    assert eviction_warning({"maxmemory-policy": "noeviction"}, "redis://x") is None


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Path:
    """The private CA, the server's certificate and a client's, as PEM files."""
    folder = tmp_path_factory.mktemp("tls")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    client = ca.issue_cert("streamq-client")
    client.private_key_and_cert_chain_pem.write_to_path(str(folder / "client.pem"))
    trustme.CA().cert_pem.write_to_path(str(folder / "other-ca.pem"))
    return folder


def _tls(folder: Path, *, auth_clients: bool = False) -> TlsFiles:
    server = str(folder / "server.pem")
    return TlsFiles(server, server, str(folder / "ca.pem"), auth_clients=auth_clients)


@pytest.fixture(scope="module")
def tls_server(tls_dir: Path) -> Iterator[LocalRedis]:
    with LocalRedis(tls=_tls(tls_dir)) as server:
        yield server


async def test_tls_with_a_private_ca_round_trips(tls_server: LocalRedis, tls_dir: Path) -> None:
    """The lane takes over redis-py's TLS connection after its handshake: script calls and
    blocking reads, big payloads (the SSL transport's flow control) included."""
    assert tls_server.url.startswith("rediss://")
    ca_file = str(tls_dir / "ca.pem")
    async with streamq.QueueManager(tls_server.url, ssl_ca_certs=ca_file, shutdown_grace=5) as qm:
        queue = qm.get_queue("tls")
        await queue.consume(lambda job: len(job.data))
        assert await queue.wait_for(await queue.enqueue("over tls"), timeout=5) == 8
        big = ["z" * 400_000] * 20
        ids = await queue.enqueue_many(big)
        assert [await queue.wait_for(i, timeout=10) for i in ids] == [400_000] * 20


async def test_tls_with_the_wrong_ca_is_a_clear_error(
    tls_server: LocalRedis, tls_dir: Path
) -> None:
    with pytest.raises(streamq.ConnectionFailed) as caught:
        async with streamq.QueueManager(tls_server.url, ssl_ca_certs=str(tls_dir / "other-ca.pem")):
            pass
    message = str(caught.value)
    assert "TLS handshake" in message and "CERTIFICATE_VERIFY_FAILED" in message
    assert "ssl_ca_certs=" in message


async def test_tls_with_client_certificates(tls_dir: Path) -> None:
    ca_file = str(tls_dir / "ca.pem")
    with LocalRedis(tls=_tls(tls_dir, auth_clients=True)) as server:
        client = str(tls_dir / "client.pem")
        async with streamq.QueueManager(
            server.url,
            shutdown_grace=5,
            ssl_ca_certs=ca_file,
            ssl_certfile=client,
            ssl_keyfile=client,
        ) as qm:
            queue = qm.get_queue("mtls")
            await queue.consume(lambda job: job.data)
            assert await queue.wait_for(await queue.enqueue("mutual"), timeout=5) == "mutual"
        with pytest.raises(streamq.ConnectionFailed, match="ssl_certfile="):
            async with streamq.QueueManager(server.url, ssl_ca_certs=ca_file):
                pass


def test_the_acl_commands_have_no_duplicates() -> None:
    assert len(COMMANDS) == len(set(COMMANDS))
