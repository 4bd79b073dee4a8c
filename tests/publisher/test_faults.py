"""The fault hooks (publisher/faults.py) fire under settings.test and can never fire in
production: under settings.prod every checkpoint is a no-op, whatever PUBLISHER_FAULTS says."""

import os
import signal

import pytest

from publisher import faults
from tests.support.production import run_prod

# Every action on every step; a hold file that exists (it would block for two minutes).
PROBE = """
import os, time
import django; django.setup()
from django.conf import settings
from publisher import faults
assert not getattr(settings, "PUBLISHER_FAULTS_ENABLED", False), settings.PUBLISHER_FAULTS_ENABLED
started = time.monotonic()
for step in ("process", "thumbnail", "make_live", "send"):
    faults.checkpoint(step, title="POISON BROKEN story")
    faults.checkpoint(step)
print("inert", os.path.exists(os.environ["HOLD"] + ".pid"), round(time.monotonic() - started, 1))
"""


def rules(hold) -> str:
    return ";".join(f"{step}:{action}:{argument}" for step in ("process", "thumbnail", "make_live", "send")
                    for action, argument in (("kill", "POISON"), ("raise", "BROKEN"), ("raise", ""),
                                             ("hold", str(hold))))


def test_fault_hooks_cannot_fire_under_production_settings(tmp_path):
    hold = tmp_path / "hold"
    hold.touch()
    result = run_prod(["-c", PROBE], PUBLISHER_FAULTS=rules(hold), PUBLISHER_FAULTS_ENABLED="1", HOLD=str(hold))
    # A kill would end the process with -SIGKILL, a raise with a traceback, a hold would take 120 s.
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    assert result.stdout.split() == ["inert", "False", "0.0"]


def test_the_same_rules_do_fire_under_test_settings(monkeypatch, tmp_path):
    """The probe above proves something: the rules it sets are live ones."""
    monkeypatch.setenv("PUBLISHER_FAULTS", rules(tmp_path / "absent"))
    with pytest.raises(RuntimeError, match="injected fault in make_live"):
        faults.checkpoint("make_live")
    pid = os.fork()
    if pid == 0:  # the child meets the kill rule
        faults.checkpoint("process", title="POISON")
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
