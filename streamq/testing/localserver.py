"""A throwaway ``redis-server`` on a free loopback port, for the demo, the benchmark and tests.

It keeps nothing on disk, and it is stopped by its own PID: never any other server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import StreamqError

__all__ = ("LocalRedis", "TlsFiles", "free_port", "local_redis")

INSTALL_HINT = (
    "redis-server was not found: install it (Debian/Ubuntu: `sudo apt-get install redis-server`,"
    " macOS: `brew install redis`), or set STREAMQ_REDIS_URL to a running server"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """A server's TLS certificate and key (PEM files) and the CA that clients' certificates
    must chain to; with ``auth_clients`` the server asks every client for one."""

    cert_file: str
    key_file: str
    ca_file: str
    auth_clients: bool = False

    def server_args(self, port: int) -> list[str]:
        return [
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            self.cert_file,
            "--tls-key-file",
            self.key_file,
            "--tls-ca-cert-file",
            self.ca_file,
            "--tls-auth-clients",
            "yes" if self.auth_clients else "no",
        ]

    def probe_context(self) -> ssl.SSLContext:
        """For checking that the server listens: trusts the CA, and shows the server's own
        certificate if clients need one (it chains to the same CA)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.check_hostname = False
        if self.auth_clients:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


class LocalRedis:
    """One ``redis-server`` process; ``url`` reaches it once :meth:`start` returned.

    With ``tls`` it listens only on a TLS port (``url`` is then ``rediss://``)."""

    def __init__(
        self,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        *,
        config_file: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise StreamqError(INSTALL_HINT)
        self.binary = found
        self.extra_args = list(extra_args)
        self.port = port
        #: Read first (redis-server takes a config file only as its first argument); a
        #: sentinel needs one it can rewrite.
        self.config_file = config_file
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self, timeout: float = 10.0) -> LocalRedis:
        """Start the server; after :meth:`crash`, again on the same port and folder (with
        whatever it kept there: its AOF, a cluster node's ``nodes.conf``)."""
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="streamq-redis-")
        last_error = ""
        for _ in range(5):  # a free port can be taken between the probe and the bind
            port = self.port or free_port()
            log_path = Path(self._dir.name) / "redis.log"
            self.process = subprocess.Popen(
                [
                    self.binary,
                    *([self.config_file] if self.config_file else []),
                    *(self.tls.server_args(port) if self.tls else ["--port", str(port)]),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    self._dir.name,
                    "--logfile",
                    str(log_path),
                    "--daemonize",
                    "no",
                    # A replica syncs at once: by default a primary waits 5 s for more replicas
                    # to share a diskless transfer, which every cluster and sentinel set of
                    # the suite would wait out.
                    "--repl-diskless-sync-delay",
                    "0",
                    *self.extra_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            context = self.tls.probe_context() if self.tls else None
            if _wait_until_listening(self.process, port, timeout, context):
                self.port = port
                return self
            last_error = _read(log_path) or (
                self.process.stderr.read().decode() if self.process.stderr else ""
            )
            self._kill()
        self._cleanup()
        raise StreamqError(f"redis-server did not start: {last_error.strip()[-500:]}")

    def stop(self) -> None:
        """Stop this server (by its PID) and remove its files."""
        self._kill()
        self._cleanup()

    def crash(self) -> None:
        """SIGKILL the server, keeping its files, so that :meth:`start` brings it back."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            if self.process.stderr:
                self.process.stderr.close()

    def _kill(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stderr:
            self.process.stderr.close()

    def _cleanup(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def local_redis(url: str | None = None) -> Iterator[str]:
    """Yield ``url``, ``$STREAMQ_REDIS_URL``, or the URL of a throwaway local server."""
    given = url or os.environ.get("STREAMQ_REDIS_URL")
    if given:
        yield given
        return
    with LocalRedis() as server:
        yield server.url


def _wait_until_listening(
    process: subprocess.Popen[bytes], port: int, timeout: float, tls: ssl.SSLContext | None
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw,
                tls.wrap_socket(raw) if tls else raw as s,
            ):
                s.sendall(b"PING\r\n")
                # A server with a password answers NOAUTH: it is listening all the same.
                if s.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                    return True
        except OSError:  # ssl.SSLError is one
            pass
        time.sleep(0.02)
    return False


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
