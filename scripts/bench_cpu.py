"""CPU time per unit of work for ./scripts/bench: user + system seconds of the processes doing
the work, which a busy machine barely changes (wall-clock rates on a shared 2-core machine swing
by 2x). Three parts, each measured from `start()` to `stop()`:

- worker: the `celery worker` main process and every pool process (live ones, plus the times of
  pool processes that exited, which the main process collects as its children's times);
- postgres: the PostgreSQL backends connected to the bench database, found among the
  postmaster's children by their process title (`postgres: user database host ...`), sampled
  every 50 ms so backends that come and go are counted too (a backend that exits is counted up
  to its last sample: with connections kept across tasks there are none such);
- redis: the redis-server the broker URL points at, when it runs on this machine.

A part whose processes cannot be seen from here (a remote server) is NaN, never 0.
"""

import math
import threading
from urllib.parse import urlsplit

import psutil

SAMPLE_EVERY = 0.05


def _cpu(proc: psutil.Process, *, with_children: bool = False) -> float:
    times = proc.cpu_times()
    total = times.user + times.system
    if with_children:
        total += times.children_user + times.children_system
    return total


def _tree_cpu(root: psutil.Process) -> float:
    total = _cpu(root, with_children=True)
    for child in root.children(recursive=True):
        try:
            total += _cpu(child)
        except psutil.Error:  # exited meanwhile: its time is in the parent's children times
            continue
    return total


def _postmaster(database_pid: int | None) -> psutil.Process | None:
    if database_pid is None:
        return None
    try:
        return psutil.Process(database_pid).parent()
    except psutil.Error:
        return None


def _redis_server(broker_url: str | None, embedded_pid: int | None) -> psutil.Process | None:
    if embedded_pid is not None:
        return psutil.Process(embedded_pid)
    if not broker_url:
        return None
    parts = urlsplit(broker_url)
    if parts.scheme not in ("redis", "rediss") or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    address = f":{parts.port or 6379}"
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "redis-server" and any(address in word for word in proc.info["cmdline"] or ()):
            return proc
    return None


class CpuMeter:
    def __init__(self, *, worker_pid: int, database: str | None = None, database_pid: int | None = None,
                 broker_url: str | None = None, embedded_redis_pid: int | None = None,
                 exclude_backends: tuple[int, ...] = ()):
        """`database` and `database_pid` (pg_backend_pid() of any connection to it): the
        PostgreSQL database whose backends count; None on SQLite (its work is in the worker's).
        `exclude_backends`: backend pids left out (the bench's own polling connection)."""
        self.worker = psutil.Process(worker_pid)
        self.database = database
        self.postmaster = _postmaster(database_pid)
        self.redis = _redis_server(broker_url, embedded_redis_pid)
        self.exclude_backends = set(exclude_backends)
        self._backends: dict[int, list[float]] = {}  # pid -> [at start (or 0 if new), last seen]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_backends, daemon=True)

    def _backend_times(self) -> dict[int, float]:
        found = {}
        marker = f" {self.database} "
        for child in self.postmaster.children():
            if child.pid in self.exclude_backends:
                continue
            try:
                if marker in " ".join(child.cmdline()) + " ":
                    found[child.pid] = _cpu(child)
            except psutil.Error:
                continue
        return found

    def _sample_backends(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            for pid, seconds in self._backend_times().items():
                self._backends.setdefault(pid, [0.0, 0.0])[1] = seconds

    def start(self) -> "CpuMeter":
        self._worker_start = _tree_cpu(self.worker)
        self._redis_start = _cpu(self.redis) if self.redis else math.nan
        if self.postmaster is not None:
            self._backends = {pid: [seconds, seconds] for pid, seconds in self._backend_times().items()}
            self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        """CPU seconds of each part since start(): worker, postgres, redis (NaN: not seen)."""
        worker = _tree_cpu(self.worker) - self._worker_start
        redis = _cpu(self.redis) - self._redis_start if self.redis else math.nan
        postgres = math.nan
        if self.postmaster is not None:
            self._stop.set()
            self._thread.join()
            for pid, seconds in self._backend_times().items():
                self._backends.setdefault(pid, [0.0, 0.0])[1] = seconds
            postgres = sum(last - first for first, last in self._backends.values())
        return {"worker": worker, "postgres": postgres, "redis": redis}


def per_unit(seconds: dict[str, float], units: int, *, scale: float, unit: str, prefix: str = "") -> dict[str, float]:
    """Bench rows for CPU seconds spread over `units`, in `scale` per second (1e3: ms, 1e6: µs).
    Parts not seen (NaN) are left out of the total and of the rows."""
    rows = {f"{prefix}CPU {part} ({unit})": value * scale / units
            for part, value in seconds.items() if not math.isnan(value)}
    rows[f"{prefix}CPU in all ({unit})"] = sum(v for v in seconds.values() if not math.isnan(v)) * scale / units
    return rows
