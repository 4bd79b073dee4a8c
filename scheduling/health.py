"""One health model: the named heartbeats, one freshness rule, ages by the database's clock.

The admin's status panel, `/health/`, `manage.py health`, `manage.py pipeline_status` and
`/metrics/` all read heartbeats through `pulses()`, so they cannot disagree about the same beat.

Ages are `now() - last_seen_at` computed in the database, and heartbeats are written with the
database's `now()` too (services.heartbeat_record): a web host or a worker whose clock is a
minute off neither reports a live beat as dead nor writes a heartbeat from the future.
"""

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import DurationField, ExpressionWrapper, F
from django.db.models.functions import Now
from django_celery_beat.models import PeriodicTask

from . import broker, schedules
from .models import Heartbeat

# Fresh while age <= max(FRESH_INTERVALS x the interval it is written at, FRESH_MIN_SECONDS).
# Six intervals ride out a worker busy with a long batch and a beat that sleeps up to
# CELERY_BEAT_MAX_LOOP_INTERVAL between ticks; the minute keeps a fast scan (every few seconds)
# from flapping on one slow database write or a worker restart.
FRESH_INTERVALS = 6
FRESH_MIN_SECONDS = 60.0

SCAN = "scan"  # written by every scan: beat sent it and a worker ran it
BEAT = "beat"  # written by beat itself, where its scheduler is ours (scheduling/beat.py)
NOTIFICATION_EXPIRY = "notification-expiry"
CLEANUP = "cleanup"
DAILY_REPORT = "daily-report"


@dataclass(frozen=True)
class Watched:
    name: str  # the Heartbeat row's name
    what: str  # how messages call it
    job: str | None  # the PeriodicTask name whose schedule sets its interval; None: beat's own
    required: bool  # whether a stale one makes the whole thing unhealthy


WATCHED = (
    Watched(SCAN, "scan", schedules.SCAN, required=True),
    Watched(BEAT, "beat heartbeat", None, required=False),
    Watched(NOTIFICATION_EXPIRY, "notification expiry", schedules.NOTIFICATION_EXPIRY, required=False),
    Watched(CLEANUP, "cleanup", schedules.CLEANUP, required=False),
    Watched(DAILY_REPORT, "daily report", schedules.DAILY_REPORT, required=False),
)


@dataclass(frozen=True)
class Pulse:
    """One heartbeat as the database sees it now."""

    name: str
    what: str
    required: bool
    scheduled: bool  # an enabled periodic task runs its job (beat: always)
    interval_seconds: float  # how often it should be written
    max_age_seconds: float
    last_seen_at: datetime | None
    age_seconds: float | None  # by the database's clock; None: never written

    @property
    def fresh(self) -> bool:
        return self.age_seconds is not None and self.age_seconds <= self.max_age_seconds


def max_age(interval_seconds: float) -> float:
    """The one freshness rule: six intervals, and at least a minute."""
    return max(FRESH_INTERVALS * interval_seconds, FRESH_MIN_SECONDS)


def _job_intervals() -> dict[str, float | None]:
    """Enabled jobs by declared name -> the interval beat runs them at (an operator may have
    changed it in the admin); None for a crontab. A job missing here is not scheduled."""
    tasks = {job.task: job.name for job in schedules.declared_jobs()}
    found: dict[str, float | None] = {}
    for task in (PeriodicTask.objects.filter(task__in=tasks, enabled=True).select_related("interval")
                 .order_by("id")):
        interval = task.interval.schedule.run_every.total_seconds() if task.interval else None
        found.setdefault(tasks[task.task], interval)
    return found


def _declared_interval(job: str) -> float:
    declared = next(j for j in schedules.declared_jobs() if j.name == job)
    return declared.every_seconds or timedelta(days=1).total_seconds()  # the daily report's crontab


def pulses(*, max_scan_age: float | None = None) -> dict[str, Pulse]:
    """Every watched heartbeat by name, in WATCHED order. Two queries. `max_scan_age` (else
    PUBLISHER_HEALTH_SCAN_MAX_AGE when set) overrides the rule for the scan only."""
    intervals = _job_intervals()
    age = ExpressionWrapper(Now() - F("last_seen_at"), output_field=DurationField())
    seen = {name: (last_seen_at, elapsed) for name, last_seen_at, elapsed in
            Heartbeat.objects.filter(name__in=[w.name for w in WATCHED]).annotate(age=age)
            .values_list("name", "last_seen_at", "age")}
    result = {}
    for watched in WATCHED:
        if watched.job is None:
            scheduled = True
            interval = float(max(settings.PUBLISHER_BEAT_HEARTBEAT_INTERVAL, settings.CELERY_BEAT_MAX_LOOP_INTERVAL))
        else:
            scheduled = watched.job in intervals
            interval = intervals.get(watched.job) or _declared_interval(watched.job)
        limit = max_age(interval)
        if watched.name == SCAN and (max_scan_age or settings.PUBLISHER_HEALTH_SCAN_MAX_AGE):
            limit = max_scan_age or settings.PUBLISHER_HEALTH_SCAN_MAX_AGE
        last_seen_at, elapsed = seen.get(watched.name, (None, None))
        result[watched.name] = Pulse(
            name=watched.name, what=watched.what, required=watched.required, scheduled=scheduled,
            interval_seconds=interval, max_age_seconds=limit, last_seen_at=last_seen_at,
            age_seconds=None if elapsed is None else max(elapsed.total_seconds(), 0.0))
    return result


# --- The probe: /health/ and manage.py health ------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True  # False: reported, but does not make the whole thing unhealthy


@dataclass
class Health:
    checks: list[Check] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(check.ok for check in self.checks if check.required)

    def as_dict(self, *, public: bool = False) -> dict:
        """`public` (the unauthenticated endpoint) keeps error text, which names hosts and
        ports, out of the database and broker checks; the command shows it in full."""
        checks = [asdict(check) for check in self.checks]
        if public:
            for check in checks:
                if check["name"] in ("database", "broker") and not check["ok"]:
                    check["detail"] = "does not answer"
        return {"healthy": self.healthy, "checks": checks}


def _database_check() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return Check("database", False, f"{type(exc).__name__}: {exc}".strip())
    return Check("database", True, f"{connection.vendor} answers")


def _pulse_check(pulse: Pulse) -> Check:
    if pulse.age_seconds is None:
        return Check(pulse.name, False, f"no {pulse.what} recorded yet", pulse.required)
    return Check(pulse.name, pulse.fresh, f"last {pulse.what} {pulse.age_seconds:.1f} s ago "
                 f"({'within' if pulse.fresh else 'older than'} {pulse.max_age_seconds:.0f} s)", pulse.required)


def health_check(*, max_scan_age: float | None = None) -> Health:
    """Healthy only when the database and the broker answer and the last scan is fresh (which
    needs beat and a worker on the `scan` queue). Beat's own heartbeat and the other jobs' are
    reported alongside, to tell a stopped beat from stopped workers, but do not decide."""
    answers, detail = broker.broker_probe(timeout=settings.PUBLISHER_HEALTH_BROKER_TIMEOUT)
    health = Health([_database_check(), Check("broker", answers, detail)])
    if not health.checks[0].ok:
        health.checks.append(Check(SCAN, False, "unknown: the database does not answer"))
        return health
    health.checks.extend(_pulse_check(pulse) for pulse in pulses(max_scan_age=max_scan_age).values())
    return health
