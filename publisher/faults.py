"""Fault injection for the test suite's real-process tests; inert unless settings enable it
(settings.test only: PUBLISHER_FAULTS_ENABLED).

PUBLISHER_FAULTS, in the worker's environment, is a `;`-separated list of rules
`step:action:argument`:
  - `process:kill:POISON`   SIGKILL the current process when an article's title contains POISON
  - `make_live:raise:`       raise RuntimeError (an unexpected bug) in that step
  - `process:softlimit:SLOW` raise SoftTimeLimitExceeded, as the task's soft time limit would,
                            when an article's title contains SLOW
  - `process:stall:SLOW`     sleep (up to 120 s, or until the task's soft time limit interrupts
                            it) when an article's title contains SLOW
  - `process:hold:/tmp/x`   block while the file /tmp/x exists (a barrier, so a test can kill
                            the worker while a step is in progress); the holding process
                            writes its pid to /tmp/x.pid, so a test can kill that pool child
Steps: `process`, `thumbnail`, `make_live`, `send`.
"""

import os
import signal
import time

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings


def _rules():
    for rule in os.environ.get("PUBLISHER_FAULTS", "").split(";"):
        parts = rule.strip().split(":", 2)
        if len(parts) == 3:
            yield parts


def checkpoint(step: str, *, title: str = "") -> None:
    if not getattr(settings, "PUBLISHER_FAULTS_ENABLED", False):
        return
    for rule_step, action, argument in _rules():
        if rule_step != step:
            continue
        if action == "kill" and argument in title:
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "raise" and argument in title:
            raise RuntimeError(f"injected fault in {step}")
        elif action == "softlimit" and argument in title:
            raise SoftTimeLimitExceeded(f"injected soft time limit in {step}")
        elif action == "stall" and argument in title:
            time.sleep(120)
        elif action == "hold":
            if os.path.exists(argument):
                with open(f"{argument}.pid", "w") as pid_file:
                    pid_file.write(str(os.getpid()))
            deadline = time.monotonic() + 120
            while os.path.exists(argument) and time.monotonic() < deadline:
                time.sleep(0.05)
