"""A throwaway Redis Cluster on free loopback ports, for tests and the benchmark.

Every node is a :class:`LocalRedis` (nothing on disk, stopped by its PID); ``redis-cli --cluster
create`` joins them. Needs Redis >= 7.0 for ``--cluster-port`` (a bus port of our choosing
rather than port + 10000, which may be taken or out of range).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence

from ..errors import StreamqError
from .localserver import LocalRedis, free_port

__all__ = ("LocalCluster",)


class LocalCluster:
    """``primaries`` primaries with ``replicas`` replicas each; ``url`` is a
    ``redis+cluster://`` URL naming every node."""

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 1,
        *,
        binary: str | None = None,
        node_timeout_ms: int = 1000,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes = [
            LocalRedis(binary=binary, extra_args=[*_cluster_args(node_timeout_ms), *extra_args])
            for _ in range(primaries * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 60.0) -> LocalCluster:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise StreamqError(
                "redis-cli was not found: it comes with redis-server (apt-get install redis-tools)"
            )
        try:
            for node in self.nodes:
                # Chosen now, not at construction: a port picked earlier may since have become
                # another node's client port.
                node.extra_args += ["--cluster-port", str(free_port())]
                node.start()
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            done = subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *addresses,
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
            if done.returncode != 0:
                raise StreamqError(
                    f"redis-cli --cluster create failed: {done.stdout[-800:]}{done.stderr[-800:]}"
                )
            self._wait_until_ok(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def _wait_until_ok(self, deadline: float) -> None:
        """Until every node reports the cluster ok with all slots served."""
        pending = list(self.nodes)
        while pending:
            if time.monotonic() > deadline:
                raise StreamqError("the local cluster did not come up in time")
            pending = [n for n in pending if not _cluster_ok(n.port)]
            if pending:
                time.sleep(0.05)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cluster_args(node_timeout_ms: int) -> list[str]:
    return [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        str(node_timeout_ms),
    ]


def _cluster_ok(port: int | None) -> bool:
    """The node sees every slot served, and, if it is a replica, has synced with its primary
    (a replica that never synced cannot take over when its primary dies). A node that does not
    answer in time is not ready yet."""
    try:
        cluster = _ask(port, b"CLUSTER INFO")
        if b"cluster_state:ok" not in cluster or b"cluster_slots_ok:16384" not in cluster:
            return False
        replication = _ask(port, b"INFO replication")
    except OSError:
        return False
    return b"role:master" in replication or b"master_link_status:up" in replication


def _ask(port: int | None, command: bytes) -> bytes:
    """One inline command's bulk reply, over a bare socket."""
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(command + b"\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
            header, found, body = reply.partition(b"\r\n")
            if found and (not header.startswith(b"$") or len(body) >= int(header[1:])):
                break
    return reply
