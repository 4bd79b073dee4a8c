"""The `site` scenario of ./scripts/bench: public pages through gunicorn (the production WSGI
server), 50 concurrent clients, with and without the server-side cache, with the CPU each
request costs gunicorn (master and workers) and PostgreSQL; and visibility
precision: from each article's publish_at to the first 200 on its URL, with worker and beat.
Figures only."""

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 50


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


class Gunicorn:
    def __init__(self, env: dict, logs: Path, **overrides):
        self.port = _free_port()
        environment = {**os.environ, **env, **{k: str(v) for k, v in overrides.items()}}
        self.log = (logs / "gunicorn.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "settings.wsgi", "-w", str(os.cpu_count() or 2), "-b",
             f"127.0.0.1:{self.port}", "--backlog", "512"],
            cwd=ROOT, env=environment, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(self.port, "/robots.txt") == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit(f"bench: gunicorn did not start; see {logs / 'gunicorn.log'}")
            time.sleep(0.2)

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        self.log.close()


def load(port: int, path: str, seconds: float) -> tuple[float, list[float], int]:
    """CLIENTS threads GETting `path` back to back for `seconds`: (requests/s, latencies, errors)."""
    latencies: list[float] = []
    errors = [0]
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()

    def client():
        mine, bad = [], 0
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                ok = _get(port, path) == 200
            except OSError:
                ok = False
            mine.append(time.perf_counter() - started)
            bad += not ok
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies) / (time.monotonic() - began), latencies, errors[0]


def _live_articles(count: int) -> str:
    from django.utils import timezone

    from publisher.models import Article, ArticleStatus
    from publisher.rendering import render_body

    body = " ".join(f"Word{i}" for i in range(500))
    html, excerpt, words = render_body(body)
    now = timezone.now()
    Article.objects.bulk_create([
        Article(title=f"Live {i}", slug=f"live-{i}", body=body, body_html=html, excerpt=excerpt, word_count=words,
                status=ArticleStatus.PUBLISHED, publish_at=now - timedelta(minutes=i + 1),
                published_at=now - timedelta(minutes=i + 1))
        for i in range(count)
    ])
    return "/articles/live-0/"


def run(args, env, *, Cluster, reset_database, flush_broker, percentile, cpu_meter) -> dict:
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from publisher.models import Article, ArticleStatus

    import importlib.util

    if importlib.util.find_spec("gunicorn") is None:
        return {"_label": "gunicorn is not installed here: pip install -r requirements/prod.txt"}
    logs = Path(env["PUBLISHER_VAR_DIR"]) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    seconds = 3 if args.quick else 10
    reset_database()
    article_path = _live_articles(50 if args.quick else 200)
    result: dict = {}
    for mode, max_age in (("cache", 60), ("no cache", 0)):
        server = Gunicorn(env, logs, PUBLISHER_PUBLIC_MAX_AGE=max_age)
        try:
            for name, path in (("/", "/"), ("article", article_path)):
                meter = cpu_meter(server.proc.pid).start()  # gunicorn's master and workers, PostgreSQL
                rate, latencies, errors = load(server.port, path, seconds)
                cpu = meter.stop()
                result[f"{name} req/s ({mode})"] = rate
                result[f"{name} p99 ms ({mode})"] = 1000 * percentile(latencies, 99)
                result[f"{name} CPU gunicorn ms/req ({mode})"] = 1000 * cpu["worker"] / len(latencies)
                if cpu["postgres"] == cpu["postgres"]:  # not NaN: PostgreSQL
                    result[f"{name} CPU PostgreSQL ms/req ({mode})"] = 1000 * cpu["postgres"] / len(latencies)
                if errors:
                    result[f"{name} errors ({mode})"] = float(errors)
        finally:
            server.stop()

    # Visibility precision: articles scheduled ahead (with slugs, as the admin makes them), and a
    # poller per article asking for its page from just before its time until the first 200.
    count, window = (20, 5) if args.quick else (200, 40)
    reset_database()
    call_command("sync_schedules", "--reset", verbosity=0)
    cluster = Cluster(env, args.embedded, args.concurrency)
    server = None
    try:
        cluster.start_broker()
        flush_broker()
        cluster.start_worker()
        cluster.start_beat()
        server = Gunicorn(env, logs)
        start = timezone.now() + timedelta(seconds=settings.PUBLISHER_SCAN_INTERVAL + 5)
        articles = Article.objects.bulk_create([
            Article(title=f"Due {i}", slug=f"due-{i}", body="Body.", status=ArticleStatus.SCHEDULED,
                    publish_at=start + timedelta(seconds=window * i / count))
            for i in range(count)
        ])
        delays: list[float] = []
        seen_at: dict[int, float] = {}
        early = [0]
        lock = threading.Lock()

        def poll(article):
            due = article.publish_at.timestamp()
            time.sleep(max(0.0, due - 0.15 - time.time()))
            give_up = due + 30
            while time.time() < give_up:
                status = _get(server.port, f"/articles/{article.slug}/")
                if status == 200:
                    received = time.time()
                    with lock:
                        delays.append(received - due)
                        seen_at[article.pk] = received
                        # Answered 200 before its time: shown early. (A request sent a moment
                        # before and answered after is not: the page went live in between.)
                        early[0] += received < due
                    return
                # 20 polls a second per article: finer polling of late ones would itself load the
                # two cores the worker and PostgreSQL share, and make them later still.
                time.sleep(0.05)

        pollers = [threading.Thread(target=poll, args=(a,)) for a in articles]
        for thread in pollers:
            thread.start()
        for thread in pollers:
            thread.join()
    finally:
        if server is not None:
            server.stop()
        cluster.stop()
    # The pipeline's own lateness (publish_at -> published_at, both by the database clock) and the
    # site's part after it (published_at -> first 200): on a loaded machine the first dominates.
    went_live = dict(Article.objects.filter(pk__in=seen_at).values_list("pk", "published_at"))
    after = [seen_at[pk] - went_live[pk].timestamp() for pk in seen_at if went_live.get(pk)]
    late = [(published - due).total_seconds() for due, published in Article.objects.filter(
        pk__in=seen_at, published_at__isnull=False).values_list("publish_at", "published_at")]
    result["visibility p50 ms"] = 1000 * percentile(delays, 50)
    result["visibility p99 ms"] = 1000 * percentile(delays, 99)
    result["visibility max ms"] = 1000 * max(delays, default=float("nan"))
    result["pipeline lateness p50 ms"] = 1000 * percentile(late, 50)
    result["pipeline lateness p99 ms"] = 1000 * percentile(late, 99)
    result["site delay after go-live p50 ms"] = 1000 * percentile(after, 50)
    result["site delay after go-live p99 ms"] = 1000 * percentile(after, 99)
    result["shown before publish_at"] = float(early[0])
    result["published before publish_at (database)"] = float(sum(1 for s in late if s < 0))
    result["never shown (30 s)"] = float(count - len(delays))
    result["_label"] = (f"gunicorn -w {os.cpu_count()}, {CLIENTS} clients x {seconds} s; "
                        f"{count} articles over {window} s")
    return result
