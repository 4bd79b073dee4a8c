"""Articles, subscribers and notifications: the article row is the pipeline's source of truth.

Article.status moves only through the state machine declared in publisher/states.py (drawn in
docs/states.md), by Article.objects.transition (publisher/querysets.py).
"""

import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone

from . import schedule_rules
from .querysets import ArticleQuerySet, ReleaseQuerySet, RevisionQuerySet
from .states import ArticleStatus, ReleaseStatus, RevisionStatus
from .zones import available_time_zones




# What the pre-flight checks: a save writing one of these asks for a new check.
PREFLIGHT_CONTENT_FIELDS = frozenset({"title", "body", "image", "image_alt", "slug"})
REVISION_PREFLIGHT_FIELDS = PREFLIGHT_CONTENT_FIELDS - {"slug"}


# Thumbnails the pre-flight made are named so (storage may add a suffix): never the name the
# pipeline writes, so the two never overwrite or delete each other's file.
PREFLIGHT_THUMBNAIL = "thumbnails/article-{pk}-preflight.jpg"
# A scheduled change's (ArticleRevision, publisher.revision_preflight), by the same rule.
REVISION_PREFLIGHT_THUMBNAIL = "thumbnails/articlerevision-{pk}-preflight.jpg"


def is_preflight_thumbnail(name: str) -> bool:
    return (bool(name) and name.startswith(("thumbnails/article-", "thumbnails/articlerevision-"))
            and "-preflight" in name)


def content_fingerprint(*, title: str, body: str, image: str, image_alt: str, slug: str) -> str:
    """What a pre-flight result is valid for: a hash of the content that goes live (an article's,
    or later a scheduled change's or a release member's)."""
    return hashlib.sha256("\x1f".join((title, body, image, image_alt, slug)).encode()).hexdigest()


def _ask_for_preflight(row, content_fields: set[str], save_kwargs: dict) -> None:
    """For an article's or a change's save(): writing the content asks for a new pre-flight check,
    and a content other than the one last checked drops that result (and the output it prepared).
    The fields reset are added to `update_fields` when the save names its fields."""
    update_fields = save_kwargs.get("update_fields")
    if update_fields is not None and not content_fields & set(update_fields):
        return
    row.preflight_checked_at = row.preflight_queued_until = None
    reset = ["preflight_checked_at", "preflight_queued_until"]
    if row.preflight_fingerprint and row.preflight_fingerprint != row.content_fingerprint():
        row.at_risk_reason = row.preflight_fingerprint = ""
        reset += ["at_risk_reason", "preflight_fingerprint"]
    if update_fields is not None:
        save_kwargs["update_fields"] = list(update_fields) + [name for name in reset if name not in update_fields]


class Article(models.Model):
    title = models.CharField(max_length=300, blank=True)
    # The public URL's last part: made from the title when first scheduled, editable; once the
    # article went live a changed slug leaves the old one answering 301 (ArticleSlugRedirect).
    slug = models.SlugField(max_length=120, unique=True, null=True, blank=True, allow_unicode=True,
                            help_text="The article's address on the site. Made from the title when it is first "
                                      "scheduled; once it went live, the old address redirects to a new one.")
    body = models.TextField(blank=True)
    image = models.ImageField(upload_to="articles/", blank=True)
    image_alt = models.CharField(max_length=300, blank=True, default="", verbose_name="image alt text",
                                 help_text="What the image shows, for readers who cannot see it.")
    publish_at = models.DateTimeField(null=True, blank=True)
    unpublish_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ArticleStatus.choices, default=ArticleStatus.DRAFT)
    published_at = models.DateTimeField(null=True, blank=True, help_text="When it actually went live.")
    last_error = models.TextField(blank=True)
    # Set by import_articles, so that re-running a file finds the rows it already imported: the
    # file's own id for the row, or (without one) a hash of title, publish time and body.
    external_id = models.CharField(max_length=200, null=True, blank=True, editable=False,
                                   help_text="The importing file's id for this article (import_articles).")
    import_key = models.CharField(max_length=64, null=True, blank=True, editable=False)

    # Filled by the pipeline's processing step.
    body_html = models.TextField(blank=True, editable=False)
    excerpt = models.CharField(max_length=300, blank=True, editable=False)
    word_count = models.PositiveIntegerField(default=0, editable=False)
    thumbnail = models.ImageField(upload_to="thumbnails/", blank=True, editable=False)

    # Pre-flight (publisher/preflight.py): the content last checked ahead of the publish time
    # (its fingerprint), when (None: not checked since the content last changed), and what would
    # fail; empty when it passed (the fields above then hold its prepared output).
    # db_default: rows written by code that predates these columns (a rolling deploy, raw SQL) get it too.
    preflight_fingerprint = models.CharField(max_length=64, blank=True, default="", db_default="", editable=False)
    preflight_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    preflight_queued_until = models.DateTimeField(null=True, blank=True, editable=False)
    at_risk_reason = models.TextField(blank=True, default="", db_default="", editable=False,
                                      help_text="What the pre-flight found would fail when it goes live.")

    # The claim: who owns the row while it is `publishing`, and until when.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    attempts = models.PositiveIntegerField(default=0, editable=False)
    # Pipeline steps that started on this row under the current claim and never finished: a
    # worker process died mid-step (see publisher.pipeline, poison detection).
    unfinished_runs = models.PositiveSmallIntegerField(default=0, editable=False)
    # Subscriber notifications: when the fan-out's last batch committed (every row exists), and
    # when the sweeper last re-dispatched a fan-out that had not finished in time.
    fanned_out_at = models.DateTimeField(null=True, blank=True, editable=False)
    fan_out_retried_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The release it goes live with (publisher.releases), and when its preparation (render,
    # thumbnail) finished under the release's current claim.
    # No index of Django's making (CREATE INDEX would block writes while it builds): the partial
    # article_release_idx below is built concurrently.
    release = models.ForeignKey("Release", on_delete=models.SET_NULL, null=True, blank=True, editable=False,
                                related_name="members", db_index=False)
    release_prepared_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When a change (an ArticleRevision) last went live: the public page says "Updated".
    revised_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ArticleQuerySet.as_manager()

    class Meta:
        ordering = ["-publish_at", "-id"]
        permissions = [("publish_article", "Can publish articles now and retry failed ones")]
        indexes = [
            # The scan reads only due rows: O(due), not O(table).
            models.Index(fields=["publish_at"], name="article_due_idx", condition=Q(status="scheduled")),
            models.Index(fields=["lease_expires_at"], name="article_lease_idx", condition=Q(status="publishing")),
            models.Index(fields=["unpublish_at"], name="article_live_idx", condition=Q(status="published")),
            models.Index(fields=["status", "-updated_at"], name="article_status_idx"),
            # The sweeper reads only live articles whose fan-out has not finished.
            models.Index(fields=["published_at"], name="article_fan_out_due_idx",
                         condition=Q(status="published", fanned_out_at__isnull=True)),
            # The pre-flight scan reads only scheduled rows not checked for their current content.
            models.Index(fields=["publish_at"], name="article_preflight_due_idx",
                         condition=Q(status="scheduled", preflight_checked_at__isnull=True)),
            # The agenda's and the status panel's at-risk list: a handful of rows.
            models.Index(fields=["publish_at"], name="article_at_risk_idx",
                         condition=Q(status="scheduled") & ~Q(at_risk_reason="")),
            models.Index(fields=["release"], name="article_release_idx", condition=Q(release__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(unpublish_at__isnull=True) | Q(publish_at__isnull=True) | Q(unpublish_at__gt=models.F("publish_at")),
                name="article_unpublish_after_publish",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["scheduled", "publishing"]) | Q(publish_at__isnull=False),
                name="article_scheduled_has_publish_at",
            ),
            models.CheckConstraint(
                condition=~Q(status="publishing") | Q(claim_token__isnull=False),
                name="article_publishing_has_claim",
            ),
            models.UniqueConstraint(fields=["external_id"], condition=Q(external_id__isnull=False),
                                    name="article_external_id_unique"),
            models.UniqueConstraint(fields=["import_key"], condition=Q(import_key__isnull=False),
                                    name="article_import_key_unique"),
        ]

    def __str__(self):
        return self.title or f"Article #{self.pk}"

    def save(self, *args, **kwargs):
        """A save that writes the content asks for a new pre-flight check (the scan, or the
        check on save, takes it); a changed content also drops the at-risk flag found for the
        old one (publisher.preflight compares fingerprints: unchanged content is not re-done)."""
        _ask_for_preflight(self, PREFLIGHT_CONTENT_FIELDS, kwargs)
        super().save(*args, **kwargs)

    def content_fingerprint(self) -> str:
        return content_fingerprint(title=self.title, body=self.body, image=self.image.name or "",
                                   image_alt=self.image_alt, slug=self.slug or "")

    def prepared_by_preflight(self) -> bool:
        """The pre-flight passed for exactly this content: body_html, excerpt, word_count and
        thumbnail hold its output, and going live needs only the flip. Any edit since (even one
        made while it was being published) changes the fingerprint and the pipeline prepares
        it again."""
        return (bool(self.preflight_fingerprint) and not self.at_risk_reason
                and self.preflight_fingerprint == self.content_fingerprint())

    def clean(self):
        errors = schedule_rules.content_errors(title=self.title, body=self.body, scheduling=False)
        if self.publish_at:
            errors += schedule_rules.window_errors(publish_at=self.publish_at, unpublish_at=self.unpublish_at)
        schedule_rules.raise_errors(errors)

    def get_absolute_url(self):
        return reverse("site:article", kwargs={"slug": self.slug}) if self.slug else None

    @property
    def lateness(self):
        """How late it went live relative to publish_at (None until published)."""
        if self.published_at and self.publish_at:
            return self.published_at - self.publish_at
        return None


class ArticleSlugRedirect(models.Model):
    """A slug an article answered under while live, before an editor changed it: 301 to its URL now."""

    old_slug = models.SlugField(max_length=120, unique=True, allow_unicode=True)
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="slug_redirects")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.old_slug} → #{self.article_id}"


class SubscriberSource(models.TextChoices):
    SITE = "site", "Subscribe form on the site"
    ADMIN = "admin", "Added in the admin"
    IMPORT = "import", "Imported"


def normalize_address(email: str) -> str:
    """An address as stored: surrounding blanks gone, the domain lower-cased (domains are
    case-insensitive; the local part is kept as typed, uniqueness ignores its case)."""
    local, at, domain = email.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if at else email.strip()


# Who mail goes to: confirmed (double opt-in, or added by an editor), not unsubscribed, not
# switched off in the admin.
RECEIVING = Q(is_active=True, confirmed_at__isnull=False, unsubscribed_at__isnull=True)
PENDING_CONFIRMATION = Q(confirmed_at__isnull=True, unsubscribed_at__isnull=True)
UNSUBSCRIBED = Q(unsubscribed_at__isnull=False)
SWITCHED_OFF = Q(is_active=False, confirmed_at__isnull=False, unsubscribed_at__isnull=True)


class SubscriberQuerySet(models.QuerySet):
    def receiving(self):
        """The subscribers mail goes to (RECEIVING); fan-out and the senders' claim select these."""
        return self.filter(RECEIVING)

    def counts(self) -> dict[str, int]:
        """How many are confirmed (receiving), pending confirmation, unsubscribed, and switched
        off by an editor; one query."""
        return self.aggregate(
            confirmed=Count("pk", filter=RECEIVING),
            pending=Count("pk", filter=PENDING_CONFIRMATION),
            unsubscribed=Count("pk", filter=UNSUBSCRIBED),
            switched_off=Count("pk", filter=SWITCHED_OFF),
        )

    def confirmation_lapsed(self, *, before):
        """Pending rows the form made whose newest confirmation mail (none went out: the row
        itself) is older than `before`: no link can confirm them any more."""
        return self.filter(PENDING_CONFIRMATION, source=SubscriberSource.SITE).filter(
            Q(confirmation_sent_at__lt=before) | Q(confirmation_sent_at__isnull=True, created_at__lt=before))

    def with_address(self, email: str):
        """The row for `email` whatever its case (the lower-cased address is unique; this lookup
        uses that index on PostgreSQL)."""
        return self.alias(email_lower=Lower("email")).filter(email_lower=normalize_address(email).lower())


class Subscriber(models.Model):
    email = models.EmailField(unique=True)
    # False: no mail (unsubscribed, or switched off by an editor). Unsubscribing also records
    # unsubscribed_at; confirming a new subscription turns it back on.
    is_active = models.BooleanField(default=True)
    # Set when the reader confirmed the link mailed to them. Rows made by an editor, an import
    # or a script are confirmed by whoever made them (the default); the site's form makes them
    # pending (None) until the link is opened.
    confirmed_at = models.DateTimeField(null=True, blank=True, default=timezone.now,
                                        help_text="When the address was confirmed; empty: waiting for confirmation.")
    unsubscribed_at = models.DateTimeField(null=True, blank=True,
                                           help_text="When the reader unsubscribed; empty: subscribed.")
    source = models.CharField(max_length=16, choices=SubscriberSource.choices, default=SubscriberSource.ADMIN)
    created_at = models.DateTimeField(auto_now_add=True)
    # The newest confirmation mail: a pending row is kept while that mail's link still works.
    confirmation_sent_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = SubscriberQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["id"], name="subscriber_active_idx", condition=Q(is_active=True))]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="subscriber_email_ci_unique",
                                    violation_error_message="A subscriber with this address already exists."),
        ]
        permissions = [("export_subscriber", "Can export subscriber addresses")]

    def __str__(self):
        return self.email

    def clean(self):
        self.email = normalize_address(self.email or "")

    @property
    def receiving(self) -> bool:
        return self.is_active and self.confirmed_at is not None and self.unsubscribed_at is None

    @property
    def state(self) -> str:
        """One of the four the admin counts (SubscriberQuerySet.counts)."""
        if self.unsubscribed_at is not None:
            return "Unsubscribed"
        if self.confirmed_at is None:
            return "Pending confirmation"
        return "Confirmed" if self.is_active else "Switched off"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    # Claimed by a sender. At-most-once: a notification left here by a crash is never re-sent.
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"
    # Given up by the sweeper after a sender died mid-claim: it may or may not have left, so it
    # is never retried by itself; a publisher can resend it from the article's page.
    INTERRUPTED = "interrupted", "Interrupted"


class Notification(models.Model):
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="notifications")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="notifications")
    # Set for the mail about a change to the live article (publisher/updates.py), null for the
    # article's own mail. No index of its own: notification_once_per_update leads with it.
    revision = models.ForeignKey("ArticleRevision", on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="notifications", db_index=False)
    status = models.CharField(max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One mail per subscriber for the article, and one for each change of it that notifies.
            models.UniqueConstraint(fields=["article", "subscriber"], condition=Q(revision__isnull=True),
                                    name="notification_once_per_article"),
            models.UniqueConstraint(fields=["revision", "subscriber"], condition=Q(revision__isnull=False),
                                    name="notification_once_per_update"),
        ]
        indexes = [
            models.Index(fields=["expires_at"], name="notification_pending_idx", condition=Q(status="pending")),
            models.Index(fields=["status", "created_at"], name="notification_status_idx"),
            # The daily report counts what was sent in a day.
            models.Index(fields=["sent_at"], name="notification_sent_idx", condition=Q(sent_at__isnull=False)),
        ]

    def __str__(self):
        return f"{self.subscriber} ← {self.article} ({self.status})"


class NotificationClaim(models.Model):
    """A sender's claim on the notifications of one article to the subscribers first..last: no
    other sender takes a row in that range while it lives. The rows it is mailing now are the
    pending ones between sending_first and sending_last; the notification rows themselves are
    written only with their outcome (two row versions per notification: insert, outcome). A
    claim moves on batch by batch and is deleted with its last outcome; one left behind by a
    sender that died makes the pending rows of its batch `interrupted` (publisher/notifications.py)."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="notification_claims")
    # The update mail's change (null: the article's own mail); claims never overlap per (article, revision).
    revision = models.ForeignKey("ArticleRevision", on_delete=models.CASCADE, null=True, related_name="+")
    first_subscriber_id = models.BigIntegerField()
    last_subscriber_id = models.BigIntegerField()
    sending_first_id = models.BigIntegerField(null=True)
    sending_last_id = models.BigIntegerField(null=True)
    # Renewed with every batch: a claim this old lost its sender.
    claimed_at = models.DateTimeField()

    def __str__(self):
        return f"claim of article {self.article_id}, subscribers {self.first_subscriber_id}-{self.last_subscriber_id}"


def validate_time_zone(value: str) -> None:
    """An IANA zone name this machine's tz database knows (blank means the site's zone)."""
    if value and value not in available_time_zones():
        raise ValidationError(f"“{value}” is not a known time zone (expected a name such as Europe/Paris).")


class EditorProfile(models.Model):
    """Per-user preferences for the admin; the time zone every time is shown and entered in."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="editor_profile")
    time_zone = models.CharField(max_length=64, blank=True, validators=[validate_time_zone],
                                 help_text="Times in the admin are shown and entered in this zone. "
                                           "Blank: the site's zone (TIME_ZONE).")

    def __str__(self):
        return f"{self.user} ({self.time_zone or 'site time zone'})"


class ArticleEventAction(models.TextChoices):
    CREATED = "created", "Created"
    SCHEDULED = "scheduled", "Scheduled"
    RESCHEDULED = "rescheduled", "Rescheduled"
    UNSCHEDULED = "unscheduled", "Unscheduled"
    PUBLISHED_NOW = "published_now", "Published now"
    RETRIED = "retried", "Retried"
    UNPUBLISH_CHANGED = "unpublish_changed", "Changed the unpublish time"
    UNPUBLISHED_NOW = "unpublished_now", "Unpublished now"
    RECORDED_PUBLISHED = "recorded_published", "Recorded as published (not mailed)"
    # Written by the system (no actor) when the pipeline gives up on an article.
    FAILED = "failed", "Publishing failed"
    # Written by the system when the pre-flight checked the article's content ahead of its time.
    AT_RISK = "at_risk", "At risk (pre-flight)"
    PREFLIGHT_PASSED = "preflight_passed", "Pre-flight passed"
    ADDED_TO_RELEASE = "added_to_release", "Added to a release"
    REMOVED_FROM_RELEASE = "removed_from_release", "Removed from a release"
    # Changes to a live article (ArticleRevision); the note names the change.
    CHANGE_SCHEDULED = "change_scheduled", "Change scheduled"
    CHANGE_RESCHEDULED = "change_rescheduled", "Change rescheduled"
    CHANGE_PUBLISHED_NOW = "change_published_now", "Change published now"
    CHANGE_CANCELLED = "change_cancelled", "Change cancelled"
    CHANGE_APPLIED = "change_applied", "Change went live"
    CHANGE_ABANDONED = "change_abandoned", "Change not applied (article no longer live)"
    CHANGE_FAILED = "change_failed", "Change failed"
    CHANGE_ROLLED_BACK = "change_rolled_back", "Change rolled back (previous version restored)"


class ArticleEvent(models.Model):
    """The audit trail: who changed an article's schedule, how, and when. Written by the
    services in the same transaction as the change, so a change without its event (or the
    reverse) cannot exist."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="article_events")
    action = models.CharField(max_length=32, choices=ArticleEventAction.choices)
    publish_at = models.DateTimeField(null=True, blank=True)
    unpublish_at = models.DateTimeField(null=True, blank=True)
    previous_publish_at = models.DateTimeField(null=True, blank=True)
    previous_status = models.CharField(max_length=16, choices=ArticleStatus.choices, blank=True)
    # What the event adds in words: the reason publishing failed.
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["article", "-created_at"], name="article_event_article_idx")]

    def __str__(self):
        return f"{self.get_action_display()} #{self.article_id} by {self.actor or 'system'}"


class Release(models.Model):
    """Articles that go live together, in one database transaction, or not at all
    (publisher.releases). `status` moves only through RELEASE_TRANSITIONS (publisher.states),
    by Release.objects.transition."""

    name = models.CharField(max_length=200)
    publish_at = models.DateTimeField(null=True, blank=True)
    # The scheduled rollback: at this time its members are taken down.
    unpublish_at = models.DateTimeField(null=True, blank=True, verbose_name="rollback at")
    notes = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=ReleaseStatus.choices, default=ReleaseStatus.DRAFT,
                              editable=False)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   editable=False, related_name="releases_created")
    scheduled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     editable=False, related_name="releases_scheduled")
    # Why it is blocked, and the member that blocked it.
    last_error = models.TextField(blank=True, editable=False)
    blocked_article = models.ForeignKey(Article, on_delete=models.SET_NULL, null=True, blank=True, editable=False,
                                        related_name="+")
    # The claim, as on Article: who owns it while `preparing`, and until when.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    attempts = models.PositiveIntegerField(default=0, editable=False)
    # Pre-flight (publisher/release_preflight.py): the state last checked (a fingerprint of its
    # members and their content), when (None: not checked since it or a member changed), and
    # what would fail, naming the member; empty when it passed.
    preflight_fingerprint = models.CharField(max_length=64, blank=True, default="", editable=False)
    preflight_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    preflight_queued_until = models.DateTimeField(null=True, blank=True, editable=False)
    at_risk_reason = models.TextField(blank=True, default="", editable=False,
                                      help_text="What the pre-flight found would fail when it goes live.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-publish_at", "-id"]
        indexes = [
            models.Index(fields=["publish_at"], name="release_due_idx", condition=Q(status="scheduled")),
            models.Index(fields=["lease_expires_at"], name="release_lease_idx", condition=Q(status="preparing")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(unpublish_at__isnull=True) | Q(publish_at__isnull=True)
                           | Q(unpublish_at__gt=models.F("publish_at"))),
                name="release_rollback_after_publish",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["scheduled", "preparing"]) | Q(publish_at__isnull=False),
                name="release_scheduled_has_publish_at",
            ),
            models.CheckConstraint(condition=~Q(status="preparing") | Q(claim_token__isnull=False),
                                   name="release_preparing_has_claim"),
        ]

    def __str__(self):
        return self.name or f"Release #{self.pk}"

    def get_absolute_url(self):
        return reverse("admin:publisher_release_change", args=[self.pk])


class ReleaseEvent(models.Model):
    """A release's history: who scheduled, rescheduled, unscheduled it, changed its members or
    its rollback time, and what the pipeline did (blocked, published), written in the same
    transaction as the change."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="release_events")
    action = models.CharField(max_length=32)
    publish_at = models.DateTimeField(null=True, blank=True)
    unpublish_at = models.DateTimeField(null=True, blank=True)
    previous_status = models.CharField(max_length=16, choices=ReleaseStatus.choices, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["release", "-created_at"], name="release_event_release_idx")]

    def __str__(self):
        return f"{self.action} release #{self.release_id} by {self.actor or 'system'}"


class ArticleRevision(models.Model):
    """A frozen change to a live article: the title, body, image and alt text that replace the
    live ones at `publish_at`, and who made it. The live article is untouched until then; the
    revision goes through the same claim, lease and pipeline as an article (publisher.revisions),
    its prepared output (rendered body, thumbnail) kept here until the apply copies it over.
    `status` moves only through ArticleRevision.objects.transition (publisher.states)."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="revisions")
    title = models.CharField(max_length=300)
    body = models.TextField()
    image = models.ImageField(upload_to="revisions/", blank=True)
    image_alt = models.CharField(max_length=300, blank=True, default="")
    # The live title and body when the change was made: what its diff compares against.
    base_title = models.CharField(max_length=300, blank=True, editable=False)
    base_body = models.TextField(blank=True, editable=False)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="article_revisions")
    publish_at = models.DateTimeField(null=True, blank=True, help_text="When the change goes live.")
    # Published with "Publish the change now" rather than scheduled for a time.
    immediate = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=RevisionStatus.choices, default=RevisionStatus.DRAFT)
    notify_subscribers = models.BooleanField(default=False)
    applied_at = models.DateTimeField(null=True, blank=True)
    # The update mail's fan-out (notify_subscribers): finished, and last re-dispatched by the sweeper.
    fanned_out_at = models.DateTimeField(null=True, blank=True, editable=False)
    fan_out_retried_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True)
    # A member of a release (publisher.release_changes): applied in the release's flip, rolled back with it.
    release = models.ForeignKey("Release", on_delete=models.SET_NULL, null=True, blank=True, editable=False,
                                related_name="changes")
    release_prepared_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The article's content this change replaced, stored by the apply: what a rollback restores.
    previous_content = models.JSONField(null=True, blank=True, editable=False)

    # The prepared output, filled by the pipeline's steps and copied into the article at the apply.
    body_html = models.TextField(blank=True, editable=False)
    excerpt = models.CharField(max_length=300, blank=True, editable=False)
    word_count = models.PositiveIntegerField(default=0, editable=False)
    thumbnail = models.ImageField(upload_to="thumbnails/", blank=True, editable=False)

    # Pre-flight (publisher/revision_preflight.py), as on Article: the content last checked (its
    # fingerprint), when (None: not checked since it last changed or was scheduled), what would
    # fail (empty: it passed, and the fields above hold its prepared output).
    # db_default: rows written by code that predates these columns (a rolling deploy) get it too.
    preflight_fingerprint = models.CharField(max_length=64, blank=True, default="", db_default="", editable=False)
    preflight_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    preflight_queued_until = models.DateTimeField(null=True, blank=True, editable=False)
    at_risk_reason = models.TextField(blank=True, default="", db_default="", editable=False,
                                      help_text="What the pre-flight found would fail when the change goes live.")

    # The claim, as on Article.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    attempts = models.PositiveIntegerField(default=0, editable=False)
    unfinished_runs = models.PositiveSmallIntegerField(default=0, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RevisionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["publish_at"], name="revision_due_idx", condition=Q(status="scheduled")),
            models.Index(fields=["lease_expires_at"], name="revision_lease_idx", condition=Q(status="publishing")),
            models.Index(fields=["article", "-created_at"], name="revision_article_idx"),
            # The fan-out sweeper's read (publisher.notifications.notifications_recover_fan_outs).
            models.Index(fields=["applied_at"], name="revision_unfanned_idx",
                         condition=Q(status="applied", notify_subscribers=True, fanned_out_at__isnull=True)),
            # The pre-flight scan reads only scheduled changes not checked for their current content.
            models.Index(fields=["publish_at"], name="revision_preflight_due_idx",
                         condition=Q(status="scheduled", preflight_checked_at__isnull=True)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status__in=["scheduled", "publishing"]) | Q(publish_at__isnull=False),
                name="revision_scheduled_has_publish_at",
            ),
            models.CheckConstraint(
                condition=~Q(status="publishing") | Q(claim_token__isnull=False),
                name="revision_publishing_has_claim",
            ),
            # One pending change per article: a new one replaces it (publisher.revisions).
            models.UniqueConstraint(fields=["article"], condition=Q(status__in=["scheduled", "publishing"]),
                                    name="revision_one_pending_per_article"),
        ]

    def __str__(self):
        return f"Change #{self.pk} to {self.title or f'article #{self.article_id}'}"

    def save(self, *args, **kwargs):
        """As Article.save: a save that writes the content asks for a new pre-flight check, and a
        changed content drops the result (and the output) checked for the old one."""
        _ask_for_preflight(self, REVISION_PREFLIGHT_FIELDS, kwargs)
        super().save(*args, **kwargs)

    def content_fingerprint(self) -> str:
        """What a pre-flight result of the change is valid for: its own content (the address is
        the live article's, which a change does not touch)."""
        return content_fingerprint(title=self.title, body=self.body, image=self.image.name or "",
                                   image_alt=self.image_alt, slug="")

    def prepared_by_preflight(self) -> bool:
        """The pre-flight passed for exactly this content: body_html, excerpt, word_count and
        thumbnail hold its output, and the apply needs only the copy (as Article's)."""
        return (bool(self.preflight_fingerprint) and not self.at_risk_reason
                and self.preflight_fingerprint == self.content_fingerprint())
