"""Supervisor for ./scripts/run: starts the embedded Redis, prepares the database, then web,
worker and beat as separate processes; stops them all on Ctrl-C, SIGTERM, or when one dies.

Usage: python scripts/embedded.py [--port 8000] [--host 127.0.0.1]
"""

import argparse
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

from settings.embedded_redis import embedded_redis_start  # noqa: E402
from settings.env import VAR_DIR, embedded_redis_socket  # noqa: E402

PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Children get SIGTERM if this supervisor is killed outright: nothing is left running.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
    os.setpgrp()


def log(message: str) -> None:
    print(f"[run] {message}", flush=True)


class Supervisor:
    def __init__(self):
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False

    def start(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, **kwargs)
        self.children.append((name, proc))
        log(f"started {name} (pid {proc.pid})")
        return proc

    def stop_all(self, timeout: float = 15.0) -> None:
        self.stopping = True
        # Stop in reverse order: beat first (no new work), then worker (warm shutdown), web, Redis last.
        for name, proc in reversed(self.children):
            if proc.poll() is None:
                log(f"stopping {name}")
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log(f"{name} did not stop in {timeout:.0f} s; killing it")
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    def wait(self) -> int:
        while not self.stopping:
            for name, proc in self.children:
                code = proc.poll()
                if code is not None:
                    log(f"{name} exited with status {code}; stopping the rest")
                    return 1
            time.sleep(0.5)
        return 0


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def start_redis(sup: Supervisor) -> None:
    # Persistent: queued tasks survive a restart of ./scripts/run, as with a production Redis.
    try:
        embedded_redis_start(embedded_redis_socket(), persist=True, data_dir=VAR_DIR / "redis",
                             log_file=VAR_DIR / "redis.log", spawn=lambda argv: sup.start("redis", argv))
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True, stdin=subprocess.DEVNULL)


def ensure_admin() -> str:
    """A superuser `admin` for the local admin; its password is kept in var/admin-password.txt."""
    pw_file = VAR_DIR / "admin-password.txt"
    if not pw_file.exists():
        pw_file.write_text(secrets.token_urlsafe(12) + "\n")
        pw_file.chmod(0o600)
    password = pw_file.read_text().strip()
    code = (
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        "user, _ = User.objects.get_or_create(username='admin', defaults={'email': 'admin@localhost'})\n"
        "user.is_staff = user.is_superuser = True\n"
        f"user.set_password({password!r})\n"
        "user.save()\n"
    )
    manage("shell", "-c", code)
    return password


def main() -> int:
    parser = argparse.ArgumentParser(description="Run web, worker and beat on the embedded default.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", "2")))
    args = parser.parse_args()
    if not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    if not port_free(args.host, args.port):
        parser.error(f"port {args.port} on {args.host} is in use; pass --port N or set PORT")
    VAR_DIR.mkdir(parents=True, exist_ok=True)

    sup = Supervisor()

    def on_signal(signum, _frame):
        sup.stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    code = 1
    try:
        if os.environ.get("CELERY_BROKER_URL"):
            log("using the broker from CELERY_BROKER_URL; the embedded Redis is not started")
        else:
            start_redis(sup)
        manage("migrate", "--no-input", "-v", "0")
        manage("sync_schedules")
        password = ensure_admin()
        celery = [sys.executable, "-m", "celery", "-A", "settings"]
        # Links made without a request (webhooks sent by the worker) need the site's address.
        os.environ.setdefault("PUBLISHER_SITE_URL", f"http://{args.host}:{args.port}")
        sup.start("web", [sys.executable, "manage.py", "runserver", f"{args.host}:{args.port}", "--noreload"])
        sup.start("worker", celery + ["worker", "-l", "INFO", "-c", str(args.concurrency),
                                      "-Q", "scan,publish,media,notify,webhooks", "-n", "embedded@%h"])
        sup.start("beat", celery + ["beat", "-l", "INFO", "-s", str(VAR_DIR / "celerybeat-schedule")])
        site = (os.environ.get("PUBLISHER_SITE_URL") or f"http://{args.host}:{args.port}").rstrip("/") + "/"
        log(f"site: {site}  (feeds: {site}feeds/atom/ and {site}feeds/rss/, sitemap: {site}sitemap.xml)")
        url = f"http://{args.host}:{args.port}/admin/"
        log(f"admin: {url}  (user: admin, password: {password}; also in {VAR_DIR / 'admin-password.txt'})")
        log("press Ctrl-C to stop everything")
        code = sup.wait()
    except subprocess.CalledProcessError as exc:
        log(f"setup step failed: {' '.join(map(str, exc.cmd[1:]))} (status {exc.returncode})")
    finally:
        sup.stop_all()
        log("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
