"""./scripts/bench --quick as CI's smoke test: every scenario runs with real worker and beat
processes and prints its figures. Figures are not judged here (no timing assertions); what must
hold is that the run finishes, measures something, and publishes every article once, on time
or later, never early."""

import math
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

# `bench`: the harness measures Redis + PostgreSQL (or the embedded pair); the RabbitMQ tier leaves it out.
pytestmark = [pytest.mark.integration, pytest.mark.bench]
ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {"claim", "burst", "fanout", "lateness", "wave", "beat"}


def bench_env(tmp_path: Path) -> tuple[list[str], dict, str | None]:
    """The bench's arguments and environment for this tier, and the PostgreSQL database it will create."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")}
    env["PUBLISHER_VAR_DIR"] = str(tmp_path)
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return ["--embedded"], env, None
    # One per xdist process: the tests here run side by side, and each empties and drops its own.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    name = f"{db['TEST'].get('NAME') or 'test_' + db['NAME']}_bench{'_' + worker if worker else ''}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env["BENCH_DATABASE_URL"] = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"
    env["BENCH_BROKER_URL"] = settings.CELERY_BROKER_URL
    return [], env, name


def drop_database(name: str) -> None:
    db = settings.DATABASES["default"]
    with psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                         password=db.get("PASSWORD") or None, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}"')


def table(output: str) -> dict[tuple[str, str], float]:
    """(scenario, metric) -> median, from the printed table."""
    rows = {}
    for line in output.splitlines():
        parts = line.split()
        if parts and parts[0] in SCENARIOS and "(skipped)" not in line:
            # scenario, metric words..., median, min, max, size words...
            numbers = [i for i, word in enumerate(parts) if _is_number(word)]
            first = numbers[0]
            rows[(parts[0], " ".join(parts[1:first]))] = float(parts[first])
    return rows


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return "," not in word


def test_quick_bench_runs_every_scenario_and_publishes_everything_once_never_early(tmp_path):
    args, env, database = bench_env(tmp_path)
    try:
        done = subprocess.run([sys.executable, "scripts/bench.py", "--quick", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
    finally:
        if database:
            drop_database(database)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " cores, worker -c 2" in done.stdout
    rows = table(done.stdout)
    measured = {scenario for scenario, _ in rows}
    expected = SCENARIOS if database else SCENARIOS - {"claim"}  # the claim scenario is PostgreSQL only
    assert measured == expected, done.stdout
    for scenario in ("lateness", "wave"):
        assert rows[(scenario, "published early")] == 0
        assert rows[(scenario, "not published")] == 0
    for part in ("worker", "in all") + (("postgres", "redis") if database else ("redis",)):
        assert ("burst", f"CPU {part} (ms/article)") in rows, done.stdout
        assert ("fanout", f"CPU {part} (µs/notification)") in rows, done.stdout
    if database:
        assert "dead rows publisher_article" in done.stdout
    for (scenario, metric), value in rows.items():
        if metric.startswith(("CPU", "naive: CPU")):
            # A part's share of a small run can be below the clock's 10 ms tick; the total cannot.
            assert math.isfinite(value) and (value >= 0 if "in all" not in metric else value > 0), metric
        elif metric.startswith("dead rows"):  # n_dead_tup after ANALYZE: pruned pages count none
            assert math.isfinite(value) and value >= 0, metric
        elif metric not in ("published early", "not published"):
            assert math.isfinite(value) and value > 0, f"{scenario} {metric} = {value}\n{done.stdout}"


def test_fanout_with_given_subscribers_reports_growth_wal_and_dead_rows_and_cleans_up(tmp_path):
    """--only fanout --subscribers N (the million-subscriber run, small): subscribers made in one
    statement, every notification sent, what the run left in PostgreSQL, the product's cleanup
    deleting all N, the mail files removed."""
    args, env, database = bench_env(tmp_path)
    try:
        done = subprocess.run([sys.executable, "scripts/bench.py", "--only", "fanout", "--subscribers", "400",
                               "--runs", "1", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    finally:
        if database:
            drop_database(database)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = table(done.stdout)
    assert {scenario for scenario, _ in rows} == {"fanout"}
    assert "400 subscribers (naive: 400, 1 process)" in done.stdout
    assert rows[("fanout", "pipeline (notifications/s)")] > 0
    assert rows[("fanout", "wall time (s)")] > 0
    assert rows[("fanout", "mail files written (MB)")] > 0
    assert not (tmp_path / "bench" / "mail").exists()  # removed after the run
    pg_only = {"notification heap grew (MB)", "notification indexes grew (MB)", "notification total grew (MB)",
               "bytes per notification, heap", "bytes per notification, indexes", "subscriber heap (MB)",
               "subscriber indexes (MB)", "WAL written, fan-out (MB)", "WAL per notification (bytes)",
               "cleanup (notifications deleted/s)", "WAL written, cleanup (MB)",
               "notification total after cleanup (MB)"}
    dead = {"dead rows after the run, notification", "dead rows after cleanup, notification"}
    if not database:
        assert not (pg_only | dead) & {metric for _, metric in rows}, done.stdout
        return
    for metric in pg_only:
        assert math.isfinite(rows[("fanout", metric)]) and rows[("fanout", metric)] > 0, metric
    for metric in dead:
        assert 0 <= rows[("fanout", metric)] <= 400 * (rows[("fanout", "row versions per notification")] + 1), metric
    assert "after the run: dead rows (n_dead_tup after ANALYZE, nothing vacuumed)" in done.stdout
    assert "after the cleanup deleted 400: dead rows" in done.stdout
    after_cleanup = next(line for line in done.stdout.splitlines() if "after the cleanup deleted 400" in line)
    assert "(live 0)" in after_cleanup.split("publisher_notification", 1)[1].split(",")[0]
    assert "publisher_subscriber 0 (live 400)" in after_cleanup
