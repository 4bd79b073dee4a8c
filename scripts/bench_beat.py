"""`celery beat` with the shipped scheduler, counting every database query it makes.

Used by scripts/bench.py (scenario `beat`): writes the running count to the file named by the
first argument about every half second. The remaining arguments go to beat.
"""

import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402

django.setup()

from django.db.backends.signals import connection_created  # noqa: E402

queries = 0


def count(execute, sql, params, many, context):
    global queries
    queries += 1
    return execute(sql, params, many, context)


def watch(sender, connection, **kwargs):
    if count not in connection.execute_wrappers:  # the signal fires again on each reconnect
        connection.execute_wrappers.append(count)


def report(path: Path) -> None:
    # Written aside and renamed: the bench reads the file while this loop rewrites it, and an
    # in-place write_text can be read half done (empty: a count of 0, a negative rate).
    partial = path.with_name(path.name + ".partial")
    while True:
        partial.write_text(str(queries))
        os.replace(partial, path)
        time.sleep(0.5)


if __name__ == "__main__":
    connection_created.connect(watch, dispatch_uid="bench-beat-query-count")
    threading.Thread(target=report, args=(Path(sys.argv[1]),), daemon=True).start()
    from settings.celery import app

    app.start(["beat", *sys.argv[2:]])
