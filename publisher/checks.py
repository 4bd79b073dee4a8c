"""System checks for settings whose wrong combination would break a guarantee silently."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def pipeline_settings(app_configs, **kwargs):
    problems = []
    visibility = settings.CELERY_VISIBILITY_TIMEOUT
    if settings.PUBLISHER_LOOKAHEAD >= visibility:
        problems.append(Error(
            f"PUBLISHER_LOOKAHEAD ({settings.PUBLISHER_LOOKAHEAD} s) is not below the broker's visibility timeout "
            f"({visibility} s): Redis would deliver the waiting make-live messages a second time.",
            hint="Lower PUBLISHER_LOOKAHEAD or raise CELERY_VISIBILITY_TIMEOUT.", id="publisher.E001"))
    if settings.PUBLISHER_RETRY_BACKOFF_MAX >= visibility:
        problems.append(Error(
            f"PUBLISHER_RETRY_BACKOFF_MAX ({settings.PUBLISHER_RETRY_BACKOFF_MAX} s) is not below the visibility "
            f"timeout ({visibility} s): a retried task would also be redelivered.",
            hint="Lower PUBLISHER_RETRY_BACKOFF_MAX.", id="publisher.E002"))
    if settings.CELERY_TASK_TIME_LIMIT >= settings.PUBLISHER_LEASE_SECONDS:
        problems.append(Warning(
            f"CELERY_TASK_TIME_LIMIT ({settings.CELERY_TASK_TIME_LIMIT} s) is not below PUBLISHER_LEASE_SECONDS "
            f"({settings.PUBLISHER_LEASE_SECONDS} s): the sweeper may re-dispatch a claim whose step is still running.",
            hint="Keep the lease longer than the hard time limit.", id="publisher.W001"))
    if settings.PUBLISHER_LOOKAHEAD < settings.PUBLISHER_SCAN_INTERVAL:
        problems.append(Warning(
            f"PUBLISHER_LOOKAHEAD ({settings.PUBLISHER_LOOKAHEAD} s) is shorter than the scan interval "
            f"({settings.PUBLISHER_SCAN_INTERVAL} s): articles may go live up to one interval late.",
            hint="Set PUBLISHER_LOOKAHEAD to about twice PUBLISHER_SCAN_INTERVAL.", id="publisher.W002"))
    budget = settings.PUBLISHER_ARTICLE_TIME_BUDGET
    if budget and budget >= settings.CELERY_TASK_SOFT_TIME_LIMIT:
        problems.append(Warning(
            f"PUBLISHER_ARTICLE_TIME_BUDGET ({budget:g} s) is not below CELERY_TASK_SOFT_TIME_LIMIT "
            f"({settings.CELERY_TASK_SOFT_TIME_LIMIT} s): a slow article would spend its whole chunk's time before "
            "its own budget failed it.",
            hint="Keep the per-article budget a small fraction of the soft time limit (10 s of 120 s by default).",
            id="publisher.W003"))
    preflight = settings.PUBLISHER_PREFLIGHT_MINUTES * 60
    if 0 < preflight <= settings.PUBLISHER_LOOKAHEAD:
        problems.append(Warning(
            f"PUBLISHER_PREFLIGHT_MINUTES ({settings.PUBLISHER_PREFLIGHT_MINUTES:g} min) is not longer than "
            f"PUBLISHER_LOOKAHEAD ({settings.PUBLISHER_LOOKAHEAD:g} s): the scan claims articles for publishing "
            "before the pre-flight could check them, so nobody is warned ahead.",
            hint="Give the pre-flight minutes (30 by default), or set it to 0 to turn it off.", id="publisher.W004"))
    consumer_timeout = settings.PUBLISHER_RABBITMQ_CONSUMER_TIMEOUT
    held = max(settings.PUBLISHER_LOOKAHEAD, settings.PUBLISHER_RETRY_BACKOFF_MAX)
    if urlsplit(settings.CELERY_BROKER_URL or "").scheme in ("amqp", "amqps", "pyamqp") and held >= consumer_timeout:
        problems.append(Error(
            f"A worker may hold an ETA or countdown message for {held:g} s (PUBLISHER_LOOKAHEAD, "
            f"PUBLISHER_RETRY_BACKOFF_MAX), not below RabbitMQ's consumer_timeout ({consumer_timeout} s): the broker "
            "would close the worker's channel (PRECONDITION_FAILED) and redeliver.",
            hint="Lower them, or raise consumer_timeout on the server and PUBLISHER_RABBITMQ_CONSUMER_TIMEOUT here.",
            id="publisher.E004"))
    if set(settings.CELERY_ACCEPT_CONTENT) != {"json"} or settings.CELERY_TASK_SERIALIZER != "json":
        problems.append(Error("Celery must accept and send JSON only (a pickle message can run arbitrary code).",
                              hint="CELERY_ACCEPT_CONTENT = ['json'], CELERY_TASK_SERIALIZER = 'json'.",
                              id="publisher.E003"))
    return problems


@register(deploy=True)
def site_settings(app_configs, **kwargs):
    if settings.PUBLISHER_SITE_URL:
        return []
    return [Error(
        "PUBLISHER_SITE_URL is not set: the public site's canonical links, feeds, sitemap and the links in "
        "e-mails would be built from whatever Host header a request carried.",
        hint="Set PUBLISHER_SITE_URL to the site's public address, e.g. https://news.example.com.",
        id="publisher.E010")]


LOCAL_EMAIL_BACKENDS = {
    "django.core.mail.backends.filebased.EmailBackend": "writes mail to files",
    "django.core.mail.backends.console.EmailBackend": "prints mail to the console",
    "django.core.mail.backends.locmem.EmailBackend": "keeps mail in memory",
    "django.core.mail.backends.dummy.EmailBackend": "drops mail",
}


@register(deploy=True)
def email_settings(app_configs, **kwargs):
    what = LOCAL_EMAIL_BACKENDS.get(settings.EMAIL_BACKEND)
    if what is None or settings.PUBLISHER_EMAIL_ALLOW_LOCAL_BACKEND:
        return []
    return [Error(
        f"EMAIL_BACKEND is {settings.EMAIL_BACKEND}, which {what}: no subscriber would get any mail.",
        hint="Leave EMAIL_BACKEND unset (the SMTP backend) and set EMAIL_HOST and friends, or set "
             "PUBLISHER_EMAIL_ALLOW_LOCAL_BACKEND=1 where mail is not meant to leave (a staging copy).",
        id="publisher.E011")]
