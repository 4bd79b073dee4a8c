from django.db import models


class Heartbeat(models.Model):
    """The last time a periodic job ran to completion, one row per job, for health checks."""

    name = models.CharField(max_length=100, unique=True)
    last_seen_at = models.DateTimeField()
    detail = models.JSONField(default=dict, blank=True)

    def __str__(self):
        return f"{self.name} @ {self.last_seen_at:%Y-%m-%d %H:%M:%S}"
