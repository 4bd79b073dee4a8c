from django.conf import settings
from django.db import models


class Heartbeat(models.Model):
    """The last time a periodic job ran to completion, one row per job, for health checks."""

    name = models.CharField(max_length=100, unique=True)
    last_seen_at = models.DateTimeField()
    detail = models.JSONField(default=dict, blank=True)

    def __str__(self):
        return f"{self.name} @ {self.last_seen_at:%Y-%m-%d %H:%M:%S}"


class ReportEmailStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    # Claimed by a sender. At most once: a report left here by a crash is never mailed again.
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    # Nobody opted in when it was due, or built by hand without --email.
    SKIPPED = "skipped", "Not sent"


class DailyReport(models.Model):
    """What happened on one local day (TIME_ZONE): one row per date, enforced by the database,
    so reruns and a second beat leave one report and one e-mail."""

    date = models.DateField(help_text="The local day reported on.")
    time_zone = models.CharField(max_length=64)
    window_start = models.DateTimeField(help_text="Local midnight that starts the day.")
    window_end = models.DateTimeField(help_text="Local midnight that ends it (23 or 25 hours later on DST days).")

    articles_published = models.PositiveIntegerField(default=0)
    articles_failed = models.PositiveIntegerField(default=0)
    articles_expired = models.PositiveIntegerField(default=0)
    articles_missed = models.PositiveIntegerField(default=0)
    # Seconds between publish_at and published_at of the articles published that day.
    lateness_p50 = models.FloatField(null=True, blank=True)
    lateness_p95 = models.FloatField(null=True, blank=True)
    lateness_max = models.FloatField(null=True, blank=True)
    notifications_sent = models.PositiveIntegerField(default=0)
    notifications_failed = models.PositiveIntegerField(default=0)
    # Left `interrupted` by a killed sender that day: maybe delivered, never resent by itself (Resend).
    notifications_interrupted = models.PositiveIntegerField(default=0, db_default=0)
    notifications_expired = models.PositiveIntegerField(default=0)
    # [{"start": ISO instant, "label": "HH:MM", "zone": "CET", "count": n}, ...]: one per local hour.
    publications_per_hour = models.JSONField(default=list, blank=True)
    # [{"article_id", "title", "reason", "attempts", "publish_at"}, ...], worst first.
    worst_failures = models.JSONField(default=list, blank=True)
    # [{"reason", "count"}, ...]: why notifications failed, most frequent first.
    notification_failures = models.JSONField(default=list, blank=True)
    built_at = models.DateTimeField()

    email_status = models.CharField(max_length=16, choices=ReportEmailStatus.choices,
                                    default=ReportEmailStatus.PENDING)
    email_claimed_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    email_recipients = models.PositiveIntegerField(default=0)
    email_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-date"]
        constraints = [models.UniqueConstraint(fields=["date"], name="daily_report_one_per_date")]

    def __str__(self):
        return f"Daily report {self.date:%Y-%m-%d}"


class ReportSubscription(models.Model):
    """A staff user's opt-in to the daily report e-mail."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="report_subscription", limit_choices_to={"is_staff": True})
    daily_report = models.BooleanField(default=True, help_text="E-mail me the daily report.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.user} ({'daily report' if self.daily_report else 'opted out'})"


class JobRun(models.Model):
    """One run of a periodic job that changed something (cleanup, report, expiry) and what it did.
    Pruned by cleanup after PUBLISHER_RUN_RETENTION_DAYS."""

    job = models.CharField(max_length=100)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["job", "-started_at"], name="jobrun_job_idx"),
            models.Index(fields=["started_at"], name="jobrun_started_idx"),
        ]

    def __str__(self):
        return f"{self.job} @ {self.started_at:%Y-%m-%d %H:%M:%S}"


class SchedulerLock(models.Model):
    """Who may send periodic tasks when PUBLISHER_BEAT_LOCK is on: one beat holds the lease and
    renews it; a standby beat takes over when the lease runs out (compare-and-set on this row)."""

    name = models.CharField(max_length=100)
    owner = models.CharField(max_length=200)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name"], name="scheduler_lock_unique_name")]

    def __str__(self):
        return f"{self.name}: {self.owner} until {self.expires_at:%H:%M:%S}"

