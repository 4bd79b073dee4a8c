"""Webhook endpoints and their deliveries. A delivery row is the outbox: it is written in the
same transaction as the article change it reports, and the sender works from it."""

import secrets
import uuid

from django.db import models
from django.db.models import Q

from publisher.models import Article


class WebhookEvent(models.TextChoices):
    PUBLISHED = "published", "Published (went live)"
    UNPUBLISHED = "unpublished", "Unpublished (taken down)"
    UPDATED = "updated", "Updated (a live article changed)"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class Endpoint(models.Model):
    url = models.URLField("URL", max_length=2000, help_text="http(s) URL that receives a POST per event.")
    secret = models.CharField(max_length=200, default=new_secret,
                              help_text="Shared secret for the HMAC-SHA256 signature (the receiver keeps a copy).")
    events = models.JSONField(default=list, help_text="Events this endpoint receives.")
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self):
        return self.description or self.url


class Delivery(models.Model):
    # The delivery id the receiver sees: stable across retries, so it can deduplicate.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=20, choices=WebhookEvent.choices)
    article = models.ForeignKey(Article, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # What makes two records of one change the same (event, article, and the change's time):
    # a re-run of the step that recorded it adds nothing.
    key = models.CharField(max_length=200)
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # Retries stop here (PUBLISHER_WEBHOOKS_RETRY_WINDOW after it was recorded or redelivered).
    retry_until = models.DateTimeField()
    # While `sending`: the claim's lease (past it, the sweep sends again: the sender died).
    # While `pending`: a message for it is in the broker until then (the sweep leaves it alone).
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "key"], name="webhook_delivery_once")]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="webhook_delivery_due_idx",
                         condition=Q(status__in=["pending", "sending"])),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_log_idx"),
            models.Index(fields=["created_at"], name="webhook_delivery_created_idx"),  # cleanup by age
        ]

    def __str__(self):
        return f"{self.event} #{self.article_id} → {self.endpoint}"
