"""docker-compose.yml, checked without Docker (CI has none).

Its structure; that its commands, ports and queue names agree with each other, with the example
app and with README.md; that its Redis commands start real servers with the settings it claims,
and that its cluster's node commands and init script build a real cluster (on free ports, the
node names read as localhost) that the example app then runs on.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

import anyio
import pytest
import redis
import yaml

import streamq
from streamq import example
from streamq.testing.localserver import LocalRedis, free_port

ROOT = Path(__file__).parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
NODES = [f"redis-node-{n}" for n in range(1, 7)]
NODE_PORTS = {name: 7000 + n for n, name in enumerate(NODES, 1)}
APP_PAIRS = {"producer": "worker", "producer-cluster": "worker-cluster"}
#: The one place where Compose substitutes a variable of the user's; every other `$` is escaped.
ALLOWED_INTERPOLATIONS = {"${STREAMQ_REDIS_PORT:-6379}"}


def args(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def flag(argv: list[str], name: str) -> str:
    assert argv.count(name) == 1, f"{name} given {argv.count(name)} times in {argv}"
    return argv[argv.index(name) + 1]


def interpolate(text: str) -> str:
    """Compose's `${VAR:-default}` with VAR unset, as `make up` sees it by default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


def published(service: str) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) for each published port."""
    found = []
    for spec in SERVICES[service].get("ports", []):
        host, host_port, container_port = interpolate(str(spec)).split(":")
        found.append((host, int(host_port), int(container_port)))
    return found


def init_script() -> str:
    """The init step's shell script, as the container's shell receives it."""
    (script,) = SERVICES["redis-cluster-init"]["command"]
    return str(script).replace("$$", "$")


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


# -- structure ------------------------------------------------------------------------------


def test_the_services_are_there() -> None:
    assert set(SERVICES) == {
        "redis",
        *NODES,
        "redis-cluster-init",
        "producer",
        "worker",
        "producer-cluster",
        "worker-cluster",
    }
    for name in ["redis", *NODES, "redis-cluster-init"]:
        assert re.fullmatch(r"redis:7(\.\d+)*", SERVICES[name]["image"]), name  # hostnames: 7.0+


def test_the_redis_keeps_every_acknowledged_enqueue() -> None:
    argv = args("redis")
    assert argv[0] == "redis-server"
    assert flag(argv, "--appendonly") == "yes"
    assert flag(argv, "--appendfsync") == "always"
    assert flag(argv, "--maxmemory-policy") == "noeviction"
    assert SERVICES["redis"]["volumes"] == ["redis-data:/data"]
    assert "redis-data" in COMPOSE["volumes"]
    assert published("redis") == [("127.0.0.1", 6379, 6379)]
    assert "redis-cli ping" in SERVICES["redis"]["healthcheck"]["test"]


def test_each_cluster_node_listens_and_announces_what_the_init_step_names() -> None:
    for name, port in NODE_PORTS.items():
        argv = args(name)
        assert argv[0] == "redis-server"
        assert flag(argv, "--port") == str(port)
        assert flag(argv, "--cluster-enabled") == "yes"
        # Clients are sent to the announced name and port: the service's, on the same port
        # inside the network and on the host.
        assert flag(argv, "--cluster-announce-hostname") == name
        assert flag(argv, "--cluster-preferred-endpoint-type") == "hostname"
        assert published(name) == [("127.0.0.1", port, port)]
        assert f"redis-cli -p {port} ping" in SERVICES[name]["healthcheck"]["test"]


def test_the_init_step_creates_the_cluster_from_the_six_nodes_with_one_replica_each() -> None:
    init = SERVICES["redis-cluster-init"]
    assert init["environment"]["NODES"].split() == [f"{n}:{p}" for n, p in NODE_PORTS.items()]
    assert "redis-cli --cluster create $NODES --cluster-replicas 1 --cluster-yes" in init_script()
    assert init["entrypoint"] == ["sh", "-c"]
    assert init["depends_on"] == {n: {"condition": "service_healthy"} for n in NODES}


def test_the_app_services_run_the_example_on_one_queue_per_pair() -> None:
    parser = example.build_parser()
    for producer, worker in APP_PAIRS.items():
        produce = args(producer)
        assert produce[:3] == ["python", "-m", "streamq.example"]
        options = parser.parse_args(produce[3:])  # the flags exist and parse
        assert options.command == "produce"
        queue = flag(produce, "--queue")
        assert args(worker) == [
            "python",
            "-m",
            "streamq",
            "worker",
            "streamq.example:handle",
            "--queue",
            queue,
            "--processes",
            "2",
            "--concurrency",
            "8",
        ]
        url = SERVICES[producer]["environment"]["STREAMQ_REDIS_URL"]
        assert SERVICES[worker]["environment"]["STREAMQ_REDIS_URL"] == url
    assert SERVICES["producer"]["environment"]["STREAMQ_REDIS_URL"] == "redis://redis:6379/0"
    cluster_url = SERVICES["producer-cluster"]["environment"]["STREAMQ_REDIS_URL"]
    scheme, _, hosts = cluster_url.partition("://")
    assert scheme == "redis+cluster"
    assert hosts.split(",") == [f"{n}:{p}" for n, p in NODE_PORTS.items()]
    for name in [*APP_PAIRS, *APP_PAIRS.values()]:
        service = SERVICES[name]
        assert service["init"] is True  # SIGTERM reaches Python (not PID 1)
        dockerfile = service["build"]["dockerfile_inline"]
        assert "FROM python:3.11-slim" in dockerfile
        assert "pip install" in dockerfile


def test_the_worker_target_is_an_async_handler_typed_for_the_queue() -> None:
    module_name, _, function = "streamq.example:handle".partition(":")
    handler = getattr(importlib.import_module(module_name), function)
    assert inspect.iscoroutinefunction(handler)
    # The worker command types the queue from this annotation.
    assert get_type_hints(handler)["job"] == streamq.Job[example.WelcomeEmail]
    assert callable(example.main) and callable(example.produce)


def test_every_dependency_is_a_service_that_can_meet_its_condition() -> None:
    for name, service in SERVICES.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], (name, dependency)
            else:
                assert condition == "service_completed_successfully", (name, dependency)
                assert SERVICES[dependency].get("restart", "no") == "no"  # it must exit
    assert SERVICES["producer"]["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert SERVICES["producer-cluster"]["depends_on"] == {
        "redis-cluster-init": {"condition": "service_completed_successfully"}
    }


def test_only_the_documented_variable_is_substituted_by_compose() -> None:
    """A `$` meant for the container's shell must be written `$$`, or Compose replaces it."""
    for text in strings(SERVICES):
        for found in re.findall(r"\$(?:\{[^}]*\}|\w+)", text.replace("$$", "")):
            assert found in ALLOWED_INTERPOLATIONS, f"{found!r} in {text!r}"


def test_make_up_and_down_drive_docker_compose() -> None:
    done = subprocess.run(
        ["make", "-n", "up", "down"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "docker compose up -d --build" in done.stdout
    assert "docker compose down -v" in done.stdout


def test_the_readme_documents_the_published_ports_and_urls() -> None:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Running it with Docker Compose")
    section = text[start : text.index("\n## ", start)]
    documented: dict[str, tuple[str, int]] = {}
    for row in re.findall(r"^\| `.+\|$", section, flags=re.MULTILINE):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        names = _expand(re.findall(r"`([\w-]+)`", cells[0]), cells[0])
        addresses = re.findall(r"`(127\.0\.0\.1):(\d+)`", cells[-1])
        if not addresses:
            continue
        host = addresses[0][0]
        ports = _expand([port for _, port in addresses], cells[-1])
        assert len(names) == len(ports), row
        documented.update((n, (host, int(p))) for n, p in zip(names, ports, strict=True))
    expected = {name: published(name)[0][:2] for name in SERVICES if published(name)}
    assert documented == expected
    assert SERVICES["producer"]["environment"]["STREAMQ_REDIS_URL"] in section
    assert SERVICES["producer-cluster"]["environment"]["STREAMQ_REDIS_URL"] in section
    assert f"127.0.0.1 {' '.join(NODES)}" in section  # the /etc/hosts line
    worker = re.search(r"`(python -m streamq worker [^`]+)`", section.replace("\n", " "))
    assert worker is not None and shlex.split(worker[1]) == args("worker")


def _expand(items: list[str], cell: str) -> list[str]:
    """`a-1` … `a-6` (or `7001` … `7006`) stands for the whole range."""
    if "…" not in cell:
        return items
    first, last = items
    prefix = re.sub(r"\d+$", "", first)
    numbers = range(int(first[len(prefix) :]), int(last[len(prefix) :]) + 1)
    return [f"{prefix}{n}" for n in numbers]


# -- the commands on real servers -------------------------------------------------------------


def test_the_redis_command_starts_a_server_with_those_settings() -> None:
    with (
        LocalRedis(extra_args=args("redis")[1:]) as server,
        redis.Redis.from_url(server.url, decode_responses=True) as client,
    ):
        for setting, value in [
            ("appendonly", "yes"),
            ("appendfsync", "always"),
            ("maxmemory-policy", "noeviction"),
        ]:
            assert client.config_get(setting) == {setting: value}


@dataclass
class ComposeCluster:
    #: A compose address (redis-node-1:7001) -> where that node listens here (localhost:port).
    addresses: dict[str, str]
    #: The init script's first run.
    created: subprocess.CompletedProcess[str]

    def local(self, compose_addresses: str, sep: str) -> str:
        return sep.join(self.addresses[a] for a in compose_addresses.split(sep))


def run_init_script(cluster_addresses: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The init service's entrypoint and script, with $NODES naming the local nodes."""
    init = SERVICES["redis-cluster-init"]
    nodes = " ".join(cluster_addresses[a] for a in init["environment"]["NODES"].split())
    return subprocess.run(
        [*init["entrypoint"], init_script()],
        env={**os.environ, "NODES": nodes},
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture(scope="module")
def compose_cluster() -> Iterator[ComposeCluster]:
    """The six nodes run with their compose commands, then the compose init script. Each node
    listens on a free port instead of 700N and its name reads `localhost`, which is what
    Docker's DNS and the published ports give a client."""
    nodes: list[LocalRedis] = []
    addresses = {}
    try:
        for name, compose_port in NODE_PORTS.items():
            port = free_port()
            swap = {str(compose_port): str(port), name: "localhost"}
            argv = [swap.get(a, a) for a in args(name)[1:]]
            # A bus port of our own: port + 10000 may be taken or past 65535.
            node = LocalRedis(port=port, extra_args=[*argv, "--cluster-port", str(free_port())])
            nodes.append(node)
            node.start()
            addresses[f"{name}:{compose_port}"] = f"localhost:{port}"
        yield ComposeCluster(addresses, run_init_script(addresses))
    finally:
        for node in nodes:
            node.stop()


def test_the_init_script_builds_the_cluster_and_leaves_it_alone_when_run_again(
    compose_cluster: ComposeCluster,
) -> None:
    first = compose_cluster.created
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[OK] All 16384 slots covered" in first.stdout
    assert "cluster ok:" in first.stdout
    again = run_init_script(compose_cluster.addresses)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "the cluster was created before" in again.stdout
    assert "--cluster create" not in again.stdout + again.stderr
    for address in compose_cluster.addresses.values():
        port = int(address.rpartition(":")[2])
        with redis.Redis(port=port, decode_responses=True) as client:
            info = client.execute_command("CLUSTER INFO")  # parsed into a dict
            assert (info["cluster_state"], info["cluster_size"]) == ("ok", "3")


# -- the example app ------------------------------------------------------------------------


async def run_producer(url: str, *argv: str) -> subprocess.CompletedProcess[bytes]:
    """The producer as the compose services run it: the URL from the environment."""
    return await anyio.run_process(
        [sys.executable, "-m", "streamq.example", "produce", *argv],
        env={**os.environ, "STREAMQ_REDIS_URL": url},
        check=False,
    )


@pytest.mark.anyio
async def test_the_producer_command_enqueues_the_jobs_it_counts(
    redis_url: str, qm: streamq.QueueManager, queue_name: str
) -> None:
    done = await run_producer(redis_url, "--queue", queue_name, "--count", "20", "--rate", "0")
    assert done.returncode == 0, done.stderr.decode()
    last = done.stdout.decode().splitlines()[-1]
    assert f"{queue_name}: enqueued 20, completed 0, waiting 20," in last
    stats = await qm.get_queue(queue_name, example.WelcomeEmail).stats()
    assert (stats.waiting, stats.completed, stats.dead) == (20, 0, 0)


@pytest.mark.anyio
async def test_the_handler_sends_each_email_through_a_consumer(
    qm: streamq.QueueManager, queue_name: str
) -> None:
    queue = qm.get_queue(queue_name, example.WelcomeEmail)
    await queue.consume(example.handle, concurrency=8, max_retries=0)
    emails = [example.WelcomeEmail(n, f"user{n}@example.com", "Ada") for n in range(12)]
    ids = await queue.enqueue_many(emails)
    with anyio.fail_after(20):  # 12 jobs of ~50 ms, 8 at a time
        results = [await queue.wait_for(job_id) for job_id in ids]
    for job_id, email, result in zip(ids, emails, results, strict=True):
        digest = hashlib.sha256(f"{job_id}:{email.email}".encode()).hexdigest()
        assert result["message_id"] == f"<{digest[:32]}@example.com>"
        assert result["size"] > 100
    assert (await queue.stats()).completed == len(ids)


@pytest.mark.anyio
async def test_the_example_app_runs_on_the_compose_cluster(
    compose_cluster: ComposeCluster, queue_name: str
) -> None:
    """The cluster pair's URL, producer command and handler, against nodes that announce
    hostnames (clients are redirected by name, as in the compose network)."""
    scheme, _, hosts = SERVICES["producer-cluster"]["environment"]["STREAMQ_REDIS_URL"].partition(
        "://"
    )
    url = f"{scheme}://{compose_cluster.local(hosts, ',')}"
    produce = args("producer-cluster")[4:]  # after `python -m streamq.example produce`
    done = await run_producer(url, *produce, "--queue", queue_name, "--count", "20", "--rate", "0")
    assert done.returncode == 0, done.stderr.decode()
    handled = 0
    all_handled = anyio.Event()

    async def handle(job: streamq.Job[example.WelcomeEmail]) -> example.Sent:
        nonlocal handled
        sent = await example.handle(job)
        handled += 1
        if handled == 20:
            all_handled.set()
        return sent

    async with streamq.QueueManager(url, shutdown_grace=5) as qm:
        queue = qm.get_queue(queue_name, example.WelcomeEmail)
        consumer = await queue.consume(handle, concurrency=8, max_retries=0)
        with anyio.fail_after(30):
            await all_handled.wait()
        await consumer.stop()  # records the last completions
        stats = await queue.stats()
    assert (stats.completed, stats.waiting, stats.active, stats.dead) == (20, 0, 0, 0)
