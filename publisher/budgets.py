"""Per-article budgets inside a chunk: one article's content may not hold its chunk mates hostage.

A chunk of 50 articles shares one task and so one soft time limit. A body that makes Markdown
go quadratic (25,000 `[`, an `x`, 25,000 `]` takes minutes) or an image that takes seconds to
decode would spend the whole chunk's time. `time_budget` bounds one article's rendering or
thumbnailing with a wall-clock timer (SIGALRM via ITIMER_REAL), so the step fails that article
alone with a reason naming the step and goes on with the others.

Celery's own time limits in a prefork child arrive as SIGUSR1 (soft) and SIGKILL (hard) from
the pool's parent, never SIGALRM, so the two do not collide; a SoftTimeLimitExceeded raised
inside a budget still propagates (the timer is cleared on the way out).
"""

import signal
import threading
import time
from contextlib import contextmanager


class BudgetExceeded(Exception):
    """One article's step ran past its time budget; a retry would take as long."""


def _can_time() -> bool:
    # Signal handlers can only be installed from the main thread (a prefork or solo worker's
    # tasks run there); a thread-pool worker or a web request thread runs without the budget.
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_budget(seconds: float, *, what: str):
    """Raise BudgetExceeded("<what> took longer than <seconds> s") in the block once `seconds` of
    wall-clock time have passed. `seconds` <= 0 disables the budget. The timer is always cleared
    and a timer armed before (by a caller) is re-armed with what was left of it."""
    if seconds <= 0 or not _can_time():
        yield
        return

    def _expired(signum, frame):
        raise BudgetExceeded(f"{what} took longer than {seconds:g} s")

    previous_handler = signal.signal(signal.SIGALRM, _expired)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            left = max(previous_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, previous_interval)
