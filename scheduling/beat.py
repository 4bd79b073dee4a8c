"""Beat's scheduler: django-celery-beat's DatabaseScheduler (schedules in the database, admin
edits picked up without a restart; its changed flag read at most once a second, not on every
tick) plus these of ours:

- a heartbeat (Heartbeat "beat"), so health can tell a stopped beat from stopped workers;
- at start, one daily-report run with catch_up, so days missed while beat was down are built
  now (django-celery-beat only loads a crontab within two hours of its hour, so a beat started
  at noon would otherwise not notice the missed 08:00 until the next morning);
- clock corrections: a job whose stored last run lies more than PUBLISHER_BEAT_CLOCK_TOLERANCE
  seconds in the future (written while a clock was wrong, then corrected) is reset to now on
  every tick, so it runs again within one interval; django-celery-beat alone would wait until
  that stored time, across restarts, while the heartbeat read healthy;
- with PUBLISHER_BEAT_LOCK, a lease: only the beat holding it sends tasks, another one waits as
  a standby and takes over when the lease runs out (or at once when the holder stops cleanly).

Without the lock two beats are harmless anyway: every job is idempotent (claims are
compare-and-set, reports and e-mails are keyed by unique rows).

Usage: CELERY_BEAT_SCHEDULER = "scheduling.beat:Scheduler" (settings), `celery -A settings beat`.
"""

import logging
import os
import socket
import time
import uuid
from datetime import timedelta

from celery.utils.time import maybe_make_aware
from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections
from django_celery_beat.schedulers import DatabaseScheduler

from . import dispatch, selectors, services

logger = logging.getLogger(__name__)

LOCK_NAME = "beat"
CHANGES_CHECK_INTERVAL = 1.0  # seconds between two reads of django-celery-beat's changed flag


class Scheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs):
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.leading = False
        self._lock_renewed = 0.0
        self._heartbeat_at = 0.0
        self._caught_up = False
        self._changes_checked_at = 0.0
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        if settings.PUBLISHER_BEAT_LOCK and not self._lead():
            self._heartbeat("beat-standby", role="standby")
            return self.max_interval
        self._heartbeat("beat", role="active")
        if not self._caught_up:
            self._caught_up = self._send_catch_up()
        self._reset_last_runs_from_the_future()
        return super().tick(*args, **kwargs)

    def schedule_changed(self):
        """django-celery-beat's check of the schedules' changed flag, at most once a second: it
        runs on every read of `self.schedule`, which beat makes on every tick, and a tick that
        sends a due entry returns 0, so the reads bunch (up to 20 statements in a few
        milliseconds; 99 of beat's 146 statements in a minute of the bench). An edit in the
        admin is still picked up on the next tick a second later."""
        now = time.monotonic()
        if self._changes_checked_at and now - self._changes_checked_at < CHANGES_CHECK_INTERVAL:
            return False
        self._changes_checked_at = now
        return super().schedule_changed()

    def close(self):
        super().close()
        if self.leading:
            try:
                services.scheduler_lock_release(name=LOCK_NAME, owner=self.owner)
            except (DatabaseError, InterfaceError):
                logger.exception("beat: could not release the lock; the standby takes over when it runs out")

    # --- ours -----------------------------------------------------------------------------

    def _heartbeat(self, name: str, *, role: str) -> None:
        now = time.monotonic()
        if self._heartbeat_at and now - self._heartbeat_at < settings.PUBLISHER_BEAT_HEARTBEAT_INTERVAL:
            return
        try:
            close_old_connections()
            services.heartbeat_record(name=name, detail={"owner": self.owner, "role": role})
        except (DatabaseError, InterfaceError) as exc:
            # Never let the heartbeat stop beat; health reports the stale heartbeat instead.
            logger.warning("beat: could not write the heartbeat: %s", exc)
            return
        self._heartbeat_at = now

    def _reset_last_runs_from_the_future(self) -> None:
        """Reset (in memory and in the database) every loaded job whose last run is beyond the
        tolerance ahead of this clock, and rebuild the heap so the job is checked in its order."""
        now = self.app.now()
        limit = now + timedelta(seconds=settings.PUBLISHER_BEAT_CLOCK_TOLERANCE)
        reset = False
        for entry in (self._schedule or {}).values():
            if entry.last_run_at is None or maybe_make_aware(entry.last_run_at) <= limit:
                continue
            logger.warning("beat: %s last ran at %s by its record, %.0f s ahead of this clock: a clock jump; "
                           "reset to now", entry.name, entry.last_run_at,
                           (maybe_make_aware(entry.last_run_at) - now).total_seconds())
            entry.last_run_at = entry.model.last_run_at = now
            try:
                close_old_connections()
                entry.save()
            except (DatabaseError, InterfaceError) as exc:
                # The reset holds in memory; sync() or the next tick writes it again.
                logger.warning("beat: could not store the reset last run of %s: %s", entry.name, exc)
                self._dirty.add(entry.name)
            reset = True
        if reset:
            self._heap = None

    def _send_catch_up(self) -> bool:
        try:
            close_old_connections()
            if not selectors.report_job_enabled():
                return True  # an operator switched the report off in the admin: no catch-up either
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("beat: could not read the daily report's schedule yet: %s", exc)
            return False
        try:
            dispatch.daily_report(catch_up=True)
        except Exception as exc:  # kombu raises many types for an unreachable broker; try next tick
            logger.warning("beat: could not send the daily report catch-up yet: %s", exc)
            return False
        logger.info("beat: sent the daily report catch-up")
        return True

    def _lead(self) -> bool:
        """Hold (or take) the lease; renewed at most every third of its life."""
        ttl = settings.PUBLISHER_BEAT_LOCK_TTL
        now = time.monotonic()
        if self.leading and now - self._lock_renewed < ttl / 3:
            return True
        try:
            close_old_connections()
            held = services.scheduler_lock_acquire(name=LOCK_NAME, owner=self.owner, ttl=ttl)
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("beat: could not reach the lock (%s); not sending until it answers", exc)
            held = False
        if held and not self.leading:
            logger.warning("beat: %s holds the lock; sending periodic tasks", self.owner)
            # Start from the database's view of every job (last run times the previous holder saved).
            self._schedule = self.all_as_schedule()
            self._heap = None
            self._caught_up = False
        elif self.leading and not held:
            logger.warning("beat: %s lost the lock; standing by", self.owner)
        self.leading = held
        if held:
            self._lock_renewed = now
        return held
