"""A throwaway Redis Sentinel setup on free loopback ports, for tests.

One primary, one replica of it and three sentinels watching them, each a :class:`LocalRedis`
(stopped by its PID). Three sentinels with a quorum of two is the smallest setup that fails
over when one process dies, as in production; the low ``down-after-milliseconds`` makes a
failover take a few seconds rather than half a minute.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from ..errors import StreamqError
from .localserver import LocalRedis

__all__ = ("LocalSentinel",)


class LocalSentinel:
    """``url`` is a ``redis+sentinel://`` URL naming the three sentinels and ``service_name``."""

    def __init__(
        self,
        service_name: str = "streamq",
        *,
        binary: str | None = None,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        password: str | None = None,
    ) -> None:
        self.service_name = service_name
        #: Required by every process, the sentinels included, when given.
        self.password = password
        self.binary = binary
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        #: The data nodes as started: after a failover the replica is the primary
        #: (:meth:`primary_port` asks the sentinels).
        self.servers: list[LocalRedis] = []
        self.sentinels: list[LocalRedis] = []
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service_name}"

    def server_at(self, port: int) -> LocalRedis:
        return next(s for s in self.servers if s.port == port)

    def primary_port(self) -> int:
        """The primary's port; an error while the sentinels disagree (a failover spreading)."""
        ports = self.primary_ports()
        if len(ports) != 1:
            raise StreamqError(f"the sentinels name different primaries: {sorted(ports)}")
        return ports.pop()

    def primary_ports(self) -> set[int]:
        """The primary's port as each sentinel that answers names it."""
        ports = set()
        for sentinel in self.sentinels:
            try:
                address = self._ask(
                    sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name
                )
            except redis.RedisError:
                continue
            if address:
                ports.add(int(address[1]))
        return ports

    def start(self, timeout: float = 30.0) -> LocalSentinel:
        try:
            pw = self.password
            auth = ["--requirepass", pw, "--masterauth", pw] if pw else []
            primary = LocalRedis(binary=self.binary, extra_args=auth).start()
            self.servers.append(primary)
            replica_of = [*auth, "--replicaof", "127.0.0.1", str(primary.port)]
            self.servers.append(LocalRedis(binary=self.binary, extra_args=replica_of).start())
            self._dir = tempfile.TemporaryDirectory(prefix="streamq-sentinel-")
            for n in range(3):
                # Sentinels rewrite their config file (what they learn): each needs its own.
                config = Path(self._dir.name) / f"sentinel-{n}.conf"
                name = self.service_name
                lines = [
                    f"sentinel monitor {name} 127.0.0.1 {primary.port} 2",
                    f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
                    f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
                ]
                if self.password:
                    lines += [
                        f"sentinel auth-pass {name} {self.password}",
                        f"requirepass {self.password}",
                        f"sentinel sentinel-pass {self.password}",
                    ]
                config.write_text("\n".join(lines) + "\n")
                sentinel = LocalRedis(
                    binary=self.binary, config_file=str(config), extra_args=["--sentinel"]
                )
                self.sentinels.append(sentinel)
                sentinel.start()
            self._wait_until_ready(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in [*self.sentinels, *self.servers]:
            server.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _wait_until_ready(self, deadline: float) -> None:
        """Until the replica has synced and every sentinel sees it and the other two (a
        sentinel that does not yet know its peers cannot take part in a failover)."""
        while True:
            replica = self._ask(self.servers[1], "INFO", "replication")
            if replica.get("master_link_status") == "up" and all(
                _sees_all(self._ask(s, "INFO", "sentinel"), self.service_name)
                for s in self.sentinels
            ):
                return
            if time.monotonic() > deadline:
                raise StreamqError("the local sentinel setup did not come up in time")
            time.sleep(0.05)

    def _ask(self, server: LocalRedis, *command: str) -> Any:
        """One command's reply, on a connection of its own (these are set-up steps)."""
        with redis.Redis(
            port=server.port or 0, password=self.password, socket_timeout=2, decode_responses=True
        ) as client:
            return client.execute_command(*command)

    def __enter__(self) -> LocalSentinel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _sees_all(info: dict[str, Any], service_name: str) -> bool:
    """``INFO sentinel`` shows the primary up with its replica and two other sentinels."""
    master = info.get("master0", {})
    return bool(
        master.get("name") == service_name
        and master.get("status") == "ok"
        and master.get("slaves") == 1
        and master.get("sentinels") == 3
    )
