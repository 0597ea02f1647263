"""Turning a URL into a checked Redis client."""

from __future__ import annotations

import logging
import os
import re
import ssl
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AuthenticationError,
    NoPermissionError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import ConnectionFailed, InvalidArgument
from .acl import denial_in, permission_denied
from .sentinel import NoPrimaryFound, SentinelRedis, no_primary_message, primary_client

__all__ = (
    "DEFAULT_URL",
    "MIN_SERVER_VERSION",
    "check_url",
    "connect",
    "eviction_warning",
    "redacted",
    "replica_warning",
    "replicas_connected",
    "resolve_url",
)

log = logging.getLogger("streamq")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
URL_ENV = "STREAMQ_REDIS_URL"
MIN_SERVER_VERSION = (6, 2)
_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"

#: A client for one server, or for a Redis Cluster.
Client = aioredis.Redis | RedisCluster

#: Longer than any blocking read streamq issues (consumers block for at most 5 s), so a stalled
#: connection is noticed instead of blocking a reader forever.
SOCKET_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0


def resolve_url(url: str | None) -> str:
    """``url``, else ``$STREAMQ_REDIS_URL`` (unless empty), else the default; checked, so a
    mistyped URL is an :class:`InvalidArgument` rather than another server or database."""
    if url is None:
        url = os.environ.get(URL_ENV) or DEFAULT_URL
    elif not isinstance(url, str):
        raise InvalidArgument(f"the Redis URL must be a str, got {type(url).__name__}")
    elif not url.strip():
        raise InvalidArgument(
            f"the Redis URL is empty ({url!r}): pass one like {DEFAULT_URL}, or None for"
            f" ${URL_ENV} (else {DEFAULT_URL})"
        )
    check_url(url)
    return url


def check_url(url: str) -> None:
    """Refuse what redis-py would take for something else: a database that is not a number
    (it connects to db 0), a port that is not one."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in (*_SCHEMES, CLUSTER_SCHEME, SENTINEL_SCHEME):
        raise InvalidArgument(
            f"unsupported Redis URL {redacted(url)!r}: use redis://host:port/db,"
            " rediss:// for TLS, unix:///path/to/socket, redis+cluster://host:port,host:port"
            " or redis+sentinel://host:port,host:port/service_name"
        )
    if scheme not in ("redis", "rediss"):
        return
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number)
    except ValueError:
        raise InvalidArgument(
            f"the port in Redis URL {redacted(url)!r} is not a number: use redis://host:6379/0"
        ) from None
    database = unquote(parts.path).strip("/")
    if database and not database.isdigit():
        raise InvalidArgument(
            f"the database in Redis URL {redacted(url)!r} is {database!r}, not a number: use"
            " redis://host:port/0 (a database is numbered, 0 by default)"
        )


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


async def connect(url: str, *, key_prefix: str = "streamq", **options: Any) -> Client:
    """A client for ``url``, after checking that the server answers and is recent enough (and
    warning when its eviction policy may delete jobs). ``key_prefix`` is for the ACL rules a
    permission error suggests."""
    check_url(url)
    scheme = urlsplit(url).scheme
    options.setdefault("socket_timeout", SOCKET_TIMEOUT)
    options.setdefault("socket_connect_timeout", CONNECT_TIMEOUT)
    client: Client
    try:
        # RESP2 pinned: the replies of scripts and stream commands are parsed in that shape.
        if scheme == CLUSTER_SCHEME:
            client = _cluster_client(url, options)
        elif scheme == SENTINEL_SCHEME:
            client = _sentinel_client(url, options)
        else:
            options.setdefault("health_check_interval", 15)
            client = aioredis.Redis.from_url(url, protocol=2, decode_responses=False, **options)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"bad Redis URL or option for {redacted(url)!r}: {exc}") from exc
    try:
        info = await client.info("server")
    except NoPrimaryFound as exc:
        await client.aclose()
        raise ConnectionFailed(no_primary_message(exc, redacted(url))) from exc
    except AuthenticationError as exc:
        await client.aclose()
        user = unquote(urlsplit(url).username or "") or options.get("username") or "default"
        raise ConnectionFailed(
            f"Redis at {redacted(url)} refused the credentials of user {user!r} ({exc}): check"
            " the user and password (in the URL, as user:password@ before the host, or the"
            " username= and password= options)"
        ) from exc
    except (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError) as exc:
        await client.aclose()
        denied = denial_in(exc)
        if denied is not None:
            where = f"connecting to Redis at {redacted(url)}"
            raise permission_denied(denied, key_prefix, where) from exc
        if _tls_failure(exc):
            raise ConnectionFailed(
                f"the TLS handshake with Redis at {redacted(url)} failed ({exc}): pass"
                " ssl_ca_certs= the file of the CA that signed the server's certificate (a"
                " private CA is not in the system's trust store), and ssl_certfile= and"
                " ssl_keyfile= if the server asks clients for a certificate"
            ) from exc
        hint = ""
        if scheme == "rediss" and not options.get("ssl_certfile"):
            # TLS 1.3: a server that wants a client certificate hangs up after the handshake.
            hint = (
                "; if the server asks clients for a TLS certificate (tls-auth-clients), pass"
                " ssl_certfile= and ssl_keyfile="
            )
        raise ConnectionFailed(
            f"cannot connect to Redis at {redacted(url)} ({exc}): check that the server is"
            f" running and the URL is right (pass it, or set ${URL_ENV}){hint}"
        ) from exc
    except NoPermissionError as exc:
        await client.aclose()
        raise permission_denied(exc, key_prefix, f"connecting to Redis at {redacted(url)}") from exc
    except (ResponseError, RedisError) as exc:
        await client.aclose()
        raise ConnectionFailed(
            f"Redis at {redacted(url)} answered INFO with an error: {exc}"
        ) from exc
    try:
        check_server_version(info, url)
    except ConnectionFailed:
        await client.aclose()
        raise
    warning = eviction_warning(await _memory_settings(client), url)
    if warning:
        log.warning("%s", warning)
    return client


async def _memory_settings(client: Client) -> dict[str, str]:
    """``maxmemory`` and ``maxmemory-policy`` (of one node of a cluster), from INFO memory (which
    streamq's ACL rules allow already) or else CONFIG GET; empty when neither answers."""
    try:
        info = await client.info("memory")
    except (RedisError, RedisClusterException, OSError):
        info = {}
    if "maxmemory_policy" in info:
        return {
            "maxmemory": _text(info.get("maxmemory", "")),
            "maxmemory-policy": _text(info["maxmemory_policy"]),
        }
    try:
        reply = await client.config_get("maxmemory*")
    except (RedisError, RedisClusterException, OSError):
        return {}
    return {_text(k): _text(v) for k, v in reply.items()}


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def eviction_warning(settings: dict[str, str], url: str) -> str | None:
    """What the server's eviction policy may lose and how to fix it; None for ``noeviction``
    (or when the policy is unknown)."""
    policy = settings.get("maxmemory-policy")
    if policy is None or policy == "noeviction":
        return None
    if policy.startswith("volatile-"):
        lost = (
            "keys that have an expiry: the records and results of finished jobs (get_job and"
            " wait_for then lose them early) and the rate limits' windows"
        )
    else:
        lost = "any key: waiting jobs, retries, schedules, dead letters, whole queues"
    limit = settings.get("maxmemory")
    when = (
        " (maxmemory is 0 now, so only once a limit is set)"
        if limit == "0"
        else f" (maxmemory {limit})"
        if limit
        else ""
    )
    return (
        f"Redis at {redacted(url)} has maxmemory-policy {policy}: when its memory is full{when}"
        f" it deletes {lost}, without an error. Set maxmemory-policy noeviction (CONFIG SET"
        " maxmemory-policy noeviction, and in redis.conf) so that a full Redis refuses new jobs"
        " with an OOM error instead"
    )


async def replicas_connected(client: Client) -> int | None:
    """How many replicas the primary (on a cluster: the primary with the fewest) has connected
    now, from INFO replication; None when the server does not say."""
    try:
        info: dict[str, Any] = await client.info("replication")
    except (RedisError, RedisClusterException, OSError):
        return None
    if "connected_slaves" in info:
        return int(info["connected_slaves"])
    counts = [
        int(node["connected_slaves"])
        for node in info.values()
        if isinstance(node, dict) and node.get("role") == "master" and "connected_slaves" in node
    ]
    return min(counts) if counts else None


def replica_warning(connected: int | None, min_replicas: int, url: str) -> str | None:
    """What ``min_replicas`` will do against a server with fewer replicas connected now."""
    if connected is None or connected >= min_replicas:
        return None
    return (
        f"min_replicas={min_replicas}, but Redis at {redacted(url)} has {connected} replica(s)"
        f" connected: every enqueue will raise NotReplicated after replica_timeout until"
        f" {min_replicas} replica(s) connect. Add replicas, or lower min_replicas"
    )


def _tls_failure(exc: BaseException) -> bool:
    """Whether a connection failed in the TLS handshake (an untrusted certificate ...)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "[SSL" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _cluster_client(url: str, options: dict[str, Any]) -> RedisCluster:
    """``redis+cluster://[user:password@]host:port[,host:port...]``: the nodes to start from."""
    parts = urlsplit(url)
    nodes = [ClusterNode(host, port) for host, port in _hosts(parts.netloc, options)]
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0")
    return RedisCluster(startup_nodes=nodes, protocol=2, decode_responses=False, **options)


def _hosts(netloc: str, options: dict[str, Any]) -> list[tuple[str, int]]:
    """``[user:password@]host:port[,host:port...]``; the credentials go to ``options``."""
    credentials, _, hosts = netloc.rpartition("@")
    if credentials:
        username, _, password = credentials.partition(":")
        options.setdefault("username", unquote(username) or None)
        options.setdefault("password", unquote(password) or None)
    addresses = []
    for address in hosts.split(","):
        host, _, port = address.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{address!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def _sentinel_client(url: str, options: dict[str, Any]) -> SentinelRedis:
    """``redis+sentinel://[user:password@]host:port[,host:port...]/service_name[?db=N]``: the
    sentinels to ask, and the name they monitor the primary by (``sentinel monitor <name>``)."""
    parts = urlsplit(url)
    sentinels = _hosts(parts.netloc, options)
    service_name, _, rest = unquote(parts.path).strip("/").partition("/")
    if not service_name or rest:
        raise ValueError(
            "name the service the sentinels monitor as the URL's path, once:"
            " redis+sentinel://host:port,host:port/service_name"
        )
    query = parse_qs(parts.query, strict_parsing=bool(parts.query))
    db = query.pop("db", None)
    if query:
        raise ValueError(
            f"unknown URL option {', '.join(query)}: pass options to QueueManager as keywords"
        )
    if db is not None:
        if len(db) != 1 or not db[0].isdigit():
            raise ValueError("db must be one database number, e.g. ?db=0")
        options.setdefault("db", int(db[0]))
    options.setdefault("health_check_interval", 15)
    return primary_client(sentinels, service_name, options)


def check_server_version(info: dict[str, Any], url: str) -> None:
    if "valkey_version" in info:
        return  # every Valkey release speaks the Redis 7.2 command set
    version_text = str(info.get("redis_version", ""))
    version = _parse_version(version_text)
    if not version or version[:2] < MIN_SERVER_VERSION:
        raise ConnectionFailed(
            f"Redis at {redacted(url)} is version {version_text or 'unknown'}; streamq needs"
            f" Redis or Valkey >= {'.'.join(map(str, MIN_SERVER_VERSION))} (for XAUTOCLAIM and"
            " XTRIM MINID): upgrade the server"
        )
