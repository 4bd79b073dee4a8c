"""Real `celery worker` and `celery beat` subprocesses against the test database and broker."""

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
def database_url() -> str:
    """The URL of the test database (the one pytest-django created), for subprocesses."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Processes:
    """Starts worker and beat subprocesses sharing one environment; stops them all at teardown."""

    def __init__(self, tmp_path: Path, mailbox: Path):
        self.tmp_path = tmp_path
        self.procs: dict[str, tuple[subprocess.Popen, Path]] = {}
        # What runs `celery`; the fault suite swaps in a launcher (e.g. one with a skewed clock).
        self.command = [sys.executable, "-m", "celery"]
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "settings.test",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(mailbox),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PUBLISHER_SCAN_INTERVAL": str(SCAN_INTERVAL),
            "CELERY_BEAT_MAX_LOOP_INTERVAL": "1",
            "PYTHONUNBUFFERED": "1",
        }
        # None on RabbitMQ: results off (settings/env.py), and the subprocesses decide the same way.
        self.env.pop("CELERY_RESULT_BACKEND", None)
        if settings.CELERY_RESULT_BACKEND:
            self.env["CELERY_RESULT_BACKEND"] = settings.CELERY_RESULT_BACKEND

    def _start(self, name: str, argv: list[str], ready: str | None, env: dict) -> subprocess.Popen:
        """Start `celery` and wait until `ready` is in its log (`None`: do not wait, e.g. broker down)."""
        return self._spawn(name, [*self.command, "-A", "settings", *argv], ready, env)

    def shell(self, name: str, command: str, ready: str, **env) -> subprocess.Popen:
        """A documented command line as an operator would type it (a Procfile line), run by the
        shell with this virtualenv's executables first on PATH."""
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return self._spawn(name, ["bash", "-c", f"exec {command}"], ready, {"PATH": path, **env})

    def _spawn(self, name: str, argv: list[str], ready: str | None, env: dict) -> subprocess.Popen:
        log = self.tmp_path / f"{name}.log"
        handle = log.open("wb")
        proc = subprocess.Popen(argv, cwd=ROOT,
                                env={**self.env, **env}, stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = (proc, log)
        if ready is None:
            return proc
        wait_for(lambda: ready in log.read_text(errors="replace") or proc.poll() is not None,
                 timeout=60, message=f"{name} to start")
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        return proc

    def worker(self, name: str = "worker", concurrency: int = 2, wait: bool = True,
               queues: str = "scan,publish,media,notify", **env) -> subprocess.Popen:
        return self._start(name, ["worker", "-l", "INFO", "-c", str(concurrency), "-Q", queues,
                                  "-n", f"{name}-{uuid.uuid4().hex[:8]}@%h", "--without-mingle", "--without-gossip"],
                           "ready." if wait else None, env)

    def beat(self, name: str = "beat", wait: bool = True, **env) -> subprocess.Popen:
        return self._start(name, ["beat", "-l", "INFO", "-s", str(self.tmp_path / f"{name}-schedule")],
                           "beat: Starting" if wait else None, env)

    def log(self, name: str) -> str:
        return self.procs[name][1].read_text(errors="replace")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        proc, _ = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


SCAN_INTERVAL = 1
