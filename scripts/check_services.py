"""Exit 0 when the PostgreSQL database and the broker (Redis or RabbitMQ) given as URLs both
answer; say which does not.

Usage: python scripts/check_services.py DATABASE_URL BROKER_URL
"""

import sys
from urllib.parse import urlsplit

import psycopg
import redis
from kombu import Connection


def broker_problem(broker_url: str) -> str | None:
    if urlsplit(broker_url).scheme.startswith("redis"):
        try:
            redis.Redis.from_url(broker_url, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            return f"Redis at {broker_url} does not answer: {exc}"
        return None
    try:
        with Connection(broker_url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=0, timeout=3)
    except Exception as exc:  # kombu/amqp raise many types for an unreachable or refusing broker
        return f"The broker at {broker_url} does not answer: {type(exc).__name__}: {exc}"
    return None


def main(database_url: str, broker_url: str) -> int:
    ok = True
    try:
        psycopg.connect(database_url, connect_timeout=3).close()
    except psycopg.Error as exc:
        print(f"PostgreSQL at {database_url} does not answer: {str(exc).strip()}", file=sys.stderr)
        ok = False
    problem = broker_problem(broker_url)
    if problem:
        print(problem, file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
