"""Exit 0 when the PostgreSQL and Redis URLs given as arguments both answer; say which does not.

Usage: python scripts/check_services.py DATABASE_URL BROKER_URL
"""

import sys

import psycopg
import redis


def main(database_url: str, broker_url: str) -> int:
    ok = True
    try:
        psycopg.connect(database_url, connect_timeout=3).close()
    except psycopg.Error as exc:
        print(f"PostgreSQL at {database_url} does not answer: {str(exc).strip()}", file=sys.stderr)
        ok = False
    try:
        redis.Redis.from_url(broker_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        print(f"Redis at {broker_url} does not answer: {exc}", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
