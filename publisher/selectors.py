"""Reads for the editors' screens: each one query (or a fixed few), whatever the data size."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from .conflicts import RELEASES_TO_COME, WITHIN, Conflict, Slot, schedule_conflicts, with_blanks
from .models import (Article, ArticleEvent, ArticleRevision, ArticleStatus, Notification, NotificationStatus, Release,
                     Subscriber)
from .states import IN_FLIGHT, NEEDS_ATTENTION, ON_THE_AGENDA, ReleaseStatus, RevisionStatus


def articles_for_admin_list(*, queryset: QuerySet) -> QuerySet:
    """The admin list's rows, each with who last changed its schedule and how (one subquery each,
    in the same SELECT: no query per row)."""
    last_event = ArticleEvent.objects.filter(article=OuterRef("pk")).order_by("-created_at", "-id")
    return queryset.annotate(
        last_event_action=Subquery(last_event.values("action")[:1]),
        last_event_actor=Subquery(last_event.values("actor__username")[:1]),
        last_event_at=Subquery(last_event.values("created_at")[:1]),
    )


def article_creator_id(*, article_id: int) -> int | None:
    """The user who created the article in the admin (its `created` event), or None."""
    return (ArticleEvent.objects.filter(article_id=article_id, action="created")
            .order_by("created_at", "id").values_list("actor_id", flat=True).first())


def subscribers_to_mail_count() -> int:
    """How many subscribers an article going live now is mailed to (the fan-out's own filter)."""
    return Subscriber.objects.filter(is_active=True).count()


def local_day_bounds(*, day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) of one calendar day in `zone` as UTC instants: 24 hours, or 23 / 25 on DST
    days. A midnight that does not exist (a zone that springs forward at 00:00) resolves to the
    instant the day starts; consecutive days tile with neither gap nor overlap."""
    start = datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC)
    return start, end


def articles_going_out(*, queryset: QuerySet, zone: tzinfo, days: int = 1, now: datetime | None = None) -> QuerySet:
    """Scheduled or in-flight articles due from now to the end of the `days`-th calendar day in
    `zone` (1: the rest of today)."""
    now = now or timezone.now()
    _, end = local_day_bounds(day=timezone.localtime(now, zone).date() + timedelta(days=days - 1), zone=zone)
    return queryset.filter(status__in=IN_FLIGHT,
                           publish_at__gte=now, publish_at__lt=end)


def articles_overdue(*, queryset: QuerySet, now: datetime | None = None) -> QuerySet:
    """Scheduled articles whose publish time has passed (the scan has not taken them yet)."""
    return queryset.filter(status=ArticleStatus.SCHEDULED, publish_at__lt=now or timezone.now())


def articles_needing_attention(*, queryset: QuerySet) -> QuerySet:
    return queryset.filter(status__in=NEEDS_ATTENTION)


@dataclass(frozen=True)
class AgendaDay:
    day: date
    articles: list[Article]


@dataclass(frozen=True)
class Agenda:
    zone: tzinfo
    overdue: list[Article]  # scheduled, due before today: the scan should have taken them
    days: list[AgendaDay]


def articles_agenda(*, zone: tzinfo, days: int = 7, now: datetime | None = None) -> Agenda:
    """What goes out over the next `days` calendar days in `zone`, today first, grouped by local
    day (two queries). Today's already published or failed items stay in view."""
    now = now or timezone.now()
    today = timezone.localtime(now, zone).date()
    start, _ = local_day_bounds(day=today, zone=zone)
    _, end = local_day_bounds(day=today + timedelta(days=days - 1), zone=zone)
    fields = ("id", "title", "status", "publish_at", "unpublish_at", "published_at", "last_error", "at_risk_reason")
    rows = list(Article.objects.filter(status__in=ON_THE_AGENDA, publish_at__gte=start, publish_at__lt=end)
                .only(*fields).order_by("publish_at", "id"))
    overdue = list(Article.objects.filter(status=ArticleStatus.SCHEDULED, publish_at__lt=start)
                   .only(*fields).order_by("publish_at", "id"))
    grouped: dict[date, list[Article]] = {today + timedelta(days=i): [] for i in range(days)}
    for article in rows:
        grouped.setdefault(timezone.localtime(article.publish_at, zone).date(), []).append(article)
    return Agenda(zone=zone, overdue=overdue, days=[AgendaDay(day, items) for day, items in grouped.items()])


def releases_agenda(*, zone: tzinfo, days: int = 7, now: datetime | None = None) -> list[Release]:
    """Releases going live (or live, blocked, being prepared) over the next `days` calendar days
    in `zone`, today first, each with its number of articles (one query)."""
    now = now or timezone.now()
    today = timezone.localtime(now, zone).date()
    start, _ = local_day_bounds(day=today, zone=zone)
    _, end = local_day_bounds(day=today + timedelta(days=days - 1), zone=zone)
    return list(Release.objects.exclude(status="draft").filter(publish_at__gte=start, publish_at__lt=end)
                .annotate(member_count=Count("members")).order_by("publish_at", "id"))


def releases_blocked(*, limit: int = 5) -> list[Release]:
    """Blocked releases, the most recently blocked first (the status panel's warnings)."""
    return list(Release.objects.filter(status="blocked").only("id", "name", "last_error")
                .order_by("-updated_at")[:limit])


def releases_at_risk(*, limit: int = 5) -> list[Release]:
    """Scheduled releases the pre-flight found would fail (publisher.release_preflight), soonest
    first, with their reasons naming the member (the status panel's warnings)."""
    return list(Release.objects.filter(status="scheduled").exclude(at_risk_reason="")
                .only("id", "name", "publish_at", "at_risk_reason").order_by("publish_at", "id")[:limit])


@dataclass(frozen=True)
class CalendarRelease:
    release: Release  # with `member_count`
    members: list[Article]
    at_risk: bool  # a member (or the release, where it carries a flag of its own) is at risk


@dataclass(frozen=True)
class MonthCalendar:
    first: date  # the month's first day
    # Monday first; None outside the month. The articles going out on their own: a release's
    # articles are listed with their release (`releases`), never twice.
    weeks: list[list[tuple[date, list[Article]] | None]]
    conflicts: list[Conflict]
    releases: dict[date, list[CalendarRelease]] = field(default_factory=dict)  # by local day


def articles_month(*, zone: tzinfo, first: date, more_slots: Sequence[Slot] = ()) -> MonthCalendar:
    """The month starting at `first`, in `zone`, by local day: every article with a publish time
    in it (except drafts), every release (except drafts) with its articles, and what looks like a
    mistake (publisher.conflicts; `more_slots`: what else goes live this month and touches an
    article, for its timing rule). Three queries, whatever the month holds."""
    start, _ = local_day_bounds(day=first, zone=zone)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    end, _ = local_day_bounds(day=following, zone=zone)
    month_releases = Release.objects.exclude(status=ReleaseStatus.DRAFT).filter(publish_at__gte=start,
                                                                                  publish_at__lt=end)
    releases = list(month_releases.annotate(member_count=Count("members")).order_by("publish_at", "id"))
    rows = list(with_blanks(Article.objects.filter(
        Q(status__in=ON_THE_AGENDA, publish_at__gte=start, publish_at__lt=end)
        | Q(release__in=month_releases.values("pk"))))
        .only("id", "title", "slug", "status", "publish_at", "release_id", "at_risk_reason")
        .order_by("publish_at", "id"))
    in_month = {release.pk for release in releases}
    members = [a for a in rows if a.release_id in in_month]
    articles = [a for a in rows if a.release_id not in in_month]
    by_day: dict[date, list[Article]] = {}
    for article in articles:
        by_day.setdefault(timezone.localtime(article.publish_at, zone).date(), []).append(article)
    members_of: dict[int, list[Article]] = {}
    for member in members:
        members_of.setdefault(member.release_id, []).append(member)
    releases_by_day: dict[date, list[CalendarRelease]] = {}
    for release in releases:
        own = members_of.get(release.pk, [])
        # A release-level flag, where the release carries one (pre-flight of releases), or a member's.
        at_risk = bool(getattr(release, "at_risk_reason", "")) or any(m.at_risk_reason for m in own)
        releases_by_day.setdefault(timezone.localtime(release.publish_at, zone).date(), []).append(
            CalendarRelease(release, own, at_risk))
    conflicts = schedule_conflicts(articles=articles, releases=releases, members=members, zone=zone,
                                   more_slots=more_slots)
    weeks, day = [], first - timedelta(days=first.weekday())
    while day < following:
        weeks.append([(d, by_day.get(d, [])) if d.month == first.month else None
                      for d in (day + timedelta(days=i) for i in range(7))])
        day += timedelta(days=7)
    return MonthCalendar(first=first, weeks=weeks, conflicts=conflicts, releases=releases_by_day)


# The rules a release page shows: those about the release itself (the month's same-minute and
# same-title lists are the calendar's).
RELEASE_PAGE_RULES = ("same_slug", "old_address", "same_article_within_a_minute", "release_incomplete")


def release_conflicts(*, release_id: int, zone: tzinfo) -> list[Conflict]:
    """The warnings that name this release or one of its articles (publisher.conflicts): its
    members and whatever goes out within a minute of it (four queries)."""
    release = Release.objects.filter(pk=release_id).only("publish_at").first()
    if release is None or release.publish_at is None:
        return []
    near = Q(publish_at__gte=release.publish_at - WITHIN, publish_at__lte=release.publish_at + WITHIN)
    around = Release.objects.filter(Q(pk=release_id) | (near & Q(status__in=RELEASES_TO_COME)))
    releases = list(around)
    rows = list(with_blanks(Article.objects.filter(Q(release__in=around.values("pk"))
                                                   | (near & Q(status__in=IN_FLIGHT))))
                .only("id", "title", "slug", "status", "publish_at", "release_id", "at_risk_reason")
                .order_by("publish_at", "id"))
    ids = {r.pk for r in releases}
    members = [a for a in rows if a.release_id in ids]
    articles = [a for a in rows if a.release_id not in ids]
    own = {("release", release_id)} | {("article", m.pk) for m in members if m.release_id == release_id}
    return [c for c in schedule_conflicts(articles=articles, releases=releases, members=members, zone=zone)
            if c.rule in RELEASE_PAGE_RULES and any((ref.kind, ref.pk) in own for ref in c.refs)]


def _status_counts(model, statuses, **filters) -> dict[str, int]:
    counts = {status: 0 for status in statuses}
    for row in model.objects.filter(**filters).order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


def article_status_counts() -> dict[str, int]:
    """Articles per status, every status present (zero when none): one GROUP BY."""
    return _status_counts(Article, ArticleStatus.values)


def notification_status_counts() -> dict[str, int]:
    """Notifications per status, every status present (zero when none): one GROUP BY."""
    return _status_counts(Notification, NotificationStatus.values)


@dataclass
class Delivery:
    """The article's own mail (`counts`) and each update mail (`updates`), counted apart."""

    counts: dict[str, int]  # the article's own mail: notifications per status, every status present
    problems: list[tuple[str, str, str, str]]  # (which mail, address, status, reason): failed and interrupted
    more_problems: int  # failed or interrupted beyond `problems`
    updates: list["UpdateDelivery"] = field(default_factory=list)  # one per change that mailed, oldest first

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def interrupted(self) -> int:
        """Interrupted notifications of every mail of the article (what Resend takes)."""
        return self.counts[NotificationStatus.INTERRUPTED] + sum(
            update.counts[NotificationStatus.INTERRUPTED] for update in self.updates)


@dataclass
class UpdateDelivery:
    revision_id: int
    counts: dict[str, int]  # every status present

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _mail_label(revision_id: int | None) -> str:
    return "Article" if revision_id is None else f"Update (change #{revision_id})"


def article_delivery(*, article_id: int, limit: int = 100) -> Delivery:
    """How one article's subscriber e-mail went: counts per status for its own mail and for each
    update mail apart (one GROUP BY), and the addresses that failed or were interrupted with their
    reasons (the first `limit`)."""
    counts = {status: 0 for status in NotificationStatus.values}
    updates: dict[int, dict[str, int]] = {}
    for row in (Notification.objects.filter(article_id=article_id).order_by()
                .values("revision_id", "status").annotate(n=Count("id"))):
        mail = counts if row["revision_id"] is None else updates.setdefault(
            row["revision_id"], {status: 0 for status in NotificationStatus.values})
        mail[row["status"]] = row["n"]
    problems = [(_mail_label(revision_id), address, status, error) for revision_id, address, status, error in
                Notification.objects.filter(
                    article_id=article_id, status__in=[NotificationStatus.FAILED, NotificationStatus.INTERRUPTED])
                .order_by("revision_id", "status", "subscriber__email")
                .values_list("revision_id", "subscriber__email", "status", "last_error")[:limit]]
    failing = [counts, *updates.values()]
    more = sum(c[NotificationStatus.FAILED] + c[NotificationStatus.INTERRUPTED] for c in failing) - len(problems)
    return Delivery(counts=counts, problems=problems, more_problems=more,
                    updates=[UpdateDelivery(revision_id=pk, counts=c) for pk, c in sorted(updates.items())])


def articles_recent_failures(*, limit: int = 5) -> list[Article]:
    """The latest articles that need an editor (failed or missed), newest first, with reasons."""
    return list(Article.objects.filter(status__in=NEEDS_ATTENTION)
                .only("id", "title", "status", "publish_at", "last_error", "updated_at")
                .order_by("-updated_at", "-id")[:limit])


def articles_at_risk(*, queryset: QuerySet | None = None) -> QuerySet:
    """Scheduled articles the pre-flight found would fail (publisher.preflight), soonest first:
    read through article_at_risk_idx."""
    queryset = Article.objects.all() if queryset is None else queryset
    return queryset.filter(status=ArticleStatus.SCHEDULED).exclude(at_risk_reason="").order_by("publish_at", "id")


def articles_at_risk_first(*, limit: int = 5) -> tuple[list[Article], int]:
    """The first `limit` articles at risk with their reasons, and how many there are (two queries)."""
    rows = articles_at_risk().only("id", "title", "status", "publish_at", "at_risk_reason")
    return list(rows[:limit]), rows.count()


def articles_overdue_count(*, grace: timedelta, now: datetime | None = None) -> int:
    """Scheduled articles still waiting `grace` after their publish time: nothing is claiming them."""
    return Article.objects.filter(status=ArticleStatus.SCHEDULED,
                                  publish_at__lt=(now or timezone.now()) - grace).count()


def articles_stalled_claims_count(*, now: datetime | None = None) -> int:
    """Claims whose lease ran out: the workers holding them died or are not running."""
    return Article.objects.filter(status=ArticleStatus.PUBLISHING, lease_expires_at__lt=now or timezone.now()).count()


def article_events(*, article_id: int, limit: int = 50) -> list[ArticleEvent]:
    """The article's audit trail, newest first, with each actor (one query)."""
    return list(ArticleEvent.objects.filter(article_id=article_id).select_related("actor")[:limit])


def changes_pending(*, start: datetime, end: datetime) -> list[ArticleRevision]:
    """Changes to live articles still to go live (publisher.revisions) due in [start, end),
    earliest first, with their article (one query)."""
    return list(ArticleRevision.objects.pending().filter(publish_at__gte=start, publish_at__lt=end)
                .select_related("article").only("id", "status", "publish_at", "at_risk_reason", "article__id",
                                                "article__title")
                .order_by("publish_at", "id"))


def changes_at_risk_first(*, limit: int = 5) -> tuple[list[ArticleRevision], int]:
    """Scheduled changes the pre-flight found would fail (publisher.revision_preflight), soonest
    first, with their article, and how many there are (two queries)."""
    rows = (ArticleRevision.objects.filter(status=RevisionStatus.SCHEDULED).exclude(at_risk_reason="")
            .select_related("article")
            .only("id", "status", "publish_at", "at_risk_reason", "article__id", "article__title")
            .order_by("publish_at", "id"))
    return list(rows[:limit]), rows.count()


def changes_recent_failures(*, limit: int = 5) -> list[ArticleRevision]:
    """The latest changes that failed on their own (the live article kept its content), newest
    first, with their article and reason (the status panel, beside the failed articles)."""
    return list(ArticleRevision.objects.filter(status=RevisionStatus.FAILED).select_related("article")
                .only("id", "status", "publish_at", "last_error", "updated_at", "article__id", "article__title")
                .order_by("-updated_at", "-id")[:limit])
