"""How long schema changes on the articles table block the pipeline's writes, at 1,000,000 rows.

Creates (or reuses) a PostgreSQL database, migrates it, fills publisher_article with ROWS rows,
then runs each candidate statement while a second connection tries the pipeline's kind of write
(a one-row UPDATE) shortly after it starts, and prints how long the statement ran and how long
the write waited. Every change is rolled back or dropped afterwards, so it can be re-run.

Usage: python scripts/migration_locks.py [postgres://postgres@127.0.0.1:5432/publisher_locks] [--rows N]
"""

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]

# (label, statements run in order; the write is tried while the last one runs, cleanup)
CASES = [
    ("CREATE INDEX (plain AddIndex)",
     ["CREATE INDEX lock_probe_idx ON publisher_article (published_at)"], "DROP INDEX IF EXISTS lock_probe_idx"),
    ("CREATE INDEX CONCURRENTLY (AddIndexConcurrently)",
     ["CREATE INDEX CONCURRENTLY lock_probe_idx ON publisher_article (published_at)"],
     "DROP INDEX IF EXISTS lock_probe_idx"),
    ("ADD COLUMN ... DEFAULT '' NOT NULL (AddField with a default)",
     ["ALTER TABLE publisher_article ADD COLUMN lock_probe varchar(20) DEFAULT '' NOT NULL"],
     "ALTER TABLE publisher_article DROP COLUMN IF EXISTS lock_probe"),
    ("ADD CONSTRAINT CHECK (AddConstraint: validates every row)",
     ["ALTER TABLE publisher_article ADD CONSTRAINT lock_probe_check CHECK (word_count < 10000000)"],
     "ALTER TABLE publisher_article DROP CONSTRAINT IF EXISTS lock_probe_check"),
    ("ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT",
     ["ALTER TABLE publisher_article ADD CONSTRAINT lock_probe_check CHECK (word_count < 10000000) NOT VALID",
      "ALTER TABLE publisher_article VALIDATE CONSTRAINT lock_probe_check"],
     "ALTER TABLE publisher_article DROP CONSTRAINT IF EXISTS lock_probe_check"),
    ("ALTER COLUMN TYPE bigint (AlterField that rewrites the table)",
     ["ALTER TABLE publisher_article ALTER COLUMN word_count TYPE bigint"],
     "ALTER TABLE publisher_article ALTER COLUMN word_count TYPE integer"),
]


def ensure_database(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def migrate(url: str) -> None:
    os.environ.update({"DJANGO_SETTINGS_MODULE": "settings.dev", "DATABASE_URL": url})
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def fill(url: str, rows: int) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM publisher_article").fetchone()[0]
        if have < rows:
            started = time.perf_counter()
            conn.execute("""
                INSERT INTO publisher_article (title, body, image, image_alt, publish_at, status, published_at,
                    last_error, body_html, excerpt, word_count, thumbnail, attempts, unfinished_runs, created_at,
                    updated_at)
                SELECT 'Article ' || g, 'Body of article ' || g, '', '', now() - g * interval '1 minute',
                    CASE WHEN g %% 100 = 0 THEN 'scheduled' ELSE 'published' END,
                    CASE WHEN g %% 100 = 0 THEN NULL ELSE now() - g * interval '1 minute' END, '',
                    '<p>Body</p>', 'Body', 3, '', 1, 0, now(), now()
                FROM generate_series(%s, %s) AS g""", [have + 1, rows])
            conn.execute("VACUUM ANALYZE publisher_article")
            print(f"inserted {rows - have} rows in {time.perf_counter() - started:.1f} s")
        return conn.execute("SELECT count(*) FROM publisher_article").fetchone()[0]


def probe(url: str, statements: list[str], cleanup: str) -> tuple[float, float]:
    """(seconds the statements took, seconds a one-row UPDATE started 50 ms in had to wait)."""
    waited = []

    def writer():
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            conn.execute("UPDATE publisher_article SET attempts = attempts WHERE id = 1")
            waited.append(time.perf_counter() - started)

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements[:-1]:
            conn.execute(statement)
        thread = threading.Timer(0.05, writer)
        started = time.perf_counter()
        thread.start()
        conn.execute(statements[-1])
        took = time.perf_counter() - started
        thread.join()
        conn.execute(cleanup)
    return took, waited[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="postgres://postgres@127.0.0.1:5432/publisher_locks")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    ensure_database(args.url)
    migrate(args.url)
    count = fill(args.url, args.rows)
    print(f"publisher_article: {count} rows\n")
    print(f"{'statement':<62} {'ran (s)':>8} {'a write waited (s)':>19}")
    for label, statements, cleanup in CASES:
        took, waited = probe(args.url, statements, cleanup)
        print(f"{label:<62} {took:>8.3f} {waited:>19.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
