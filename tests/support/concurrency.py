"""Threads released together, for the claim races."""

import threading


def run_concurrently(work, n: int) -> list:
    """Run `work()` in `n` threads released together by a barrier, each closing its own database
    connection; return their results. An exception in any thread fails the test."""
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run():
        from django.db import connection

        try:
            barrier.wait()
            results.append(work())
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results
