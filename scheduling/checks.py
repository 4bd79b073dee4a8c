"""System checks for the periodic operations' settings."""

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

NOTIFICATION_KINDS = ("new-article",)


def _ours(scheduler) -> bool:
    from kombu.utils.imports import symbol_by_name

    from .beat import Scheduler

    try:
        return issubclass(symbol_by_name(scheduler), Scheduler)
    except (ImportError, AttributeError, TypeError, ValueError):
        return False


@register()
def periodic_settings(app_configs, **kwargs):
    from .schedules import report_time

    problems = []
    try:
        report_time()
    except ImproperlyConfigured as exc:
        problems.append(Error(str(exc), hint="Set PUBLISHER_REPORT_AT to a time such as 08:00.", id="scheduling.E001"))
    expiry = getattr(settings, "PUBLISHER_NOTIFICATION_EXPIRY", {})
    for kind in NOTIFICATION_KINDS:
        ttl = expiry.get(kind)
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 1:
            problems.append(Error(
                f"PUBLISHER_NOTIFICATION_EXPIRY[{kind!r}] must be a whole number of seconds ≥ 1, got {ttl!r}.",
                hint="Each notification kind needs its expiry; the default comes from PUBLISHER_NOTIFICATION_TTL.",
                id="scheduling.E002"))
    if not _ours(settings.CELERY_BEAT_SCHEDULER):
        problems.append(Warning(
            f"CELERY_BEAT_SCHEDULER is {settings.CELERY_BEAT_SCHEDULER!r}: beat leaves no heartbeat, does not "
            "catch up missed daily reports at start and ignores PUBLISHER_BEAT_LOCK.",
            hint='Use "scheduling.beat:Scheduler" (a django-celery-beat DatabaseScheduler).', id="scheduling.W001"))
    max_age = settings.PUBLISHER_HEALTH_SCAN_MAX_AGE
    if max_age and max_age < 2 * settings.PUBLISHER_SCAN_INTERVAL:
        problems.append(Warning(
            f"PUBLISHER_HEALTH_SCAN_MAX_AGE ({max_age} s) is less than two scan intervals "
            f"({settings.PUBLISHER_SCAN_INTERVAL} s each): health will flap between scans.",
            hint="Leave it at 0 (six intervals, at least a minute) or raise it.", id="scheduling.W002"))
    return problems
