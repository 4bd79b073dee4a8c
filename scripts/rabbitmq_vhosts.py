"""Create the RabbitMQ vhosts of the xdist workers of ./scripts/test's RabbitMQ tier (one per
worker, named by settings.test.amqp_worker_vhost), with rabbitmqctl on this machine, and give the
URL's user every permission on them. Exit 1, saying why, when that cannot be done (e.g. no
rabbitmqctl, or a remote broker): the tier then runs in one process.

Usage: python scripts/rabbitmq_vhosts.py AMQP_URL WORKERS
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.pop("PYTEST_XDIST_WORKER", None)
from settings.test import amqp_worker_vhost  # noqa: E402


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}".strip())
    return done.stdout


def main(url: str, workers: int) -> int:
    if not shutil.which("rabbitmqctl"):
        print("note: no rabbitmqctl on this machine to create the workers' vhosts", file=sys.stderr)
        return 1
    user = unquote(urlsplit(url).username or "guest")
    try:
        existing = set(rabbitmqctl("list_vhosts", "name").split())
        for vhost in (amqp_worker_vhost(url, f"gw{i}") for i in range(workers)):
            if vhost not in existing:
                rabbitmqctl("add_vhost", vhost)
                rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"note: could not create the workers' vhosts: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
