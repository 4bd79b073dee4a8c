"""Reads for the editors' screens: each one query (or a fixed few), whatever the data size."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.utils import timezone

from .models import (Article, ArticleEvent, ArticleRevision, ArticleStatus, Notification, NotificationStatus, Release,
                     Subscriber)
from .states import IN_FLIGHT, NEEDS_ATTENTION, ON_THE_AGENDA


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


@dataclass(frozen=True)
class MonthCalendar:
    first: date  # the month's first day
    weeks: list[list[tuple[date, list[Article]] | None]]  # Monday first; None outside the month
    conflicts: list[str]


def articles_month(*, zone: tzinfo, first: date) -> MonthCalendar:
    """The month starting at `first`, in `zone`: every article with a publish time in it (except
    drafts), by local day, in one query; and what looks like a mistake: several articles going
    out in the same minute, two articles of the month with the same title."""
    start, _ = local_day_bounds(day=first, zone=zone)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    end, _ = local_day_bounds(day=following, zone=zone)
    rows = list(Article.objects.filter(status__in=ON_THE_AGENDA, publish_at__gte=start, publish_at__lt=end)
                .only("id", "title", "status", "publish_at", "release_id").order_by("publish_at", "id"))
    by_day: dict[date, list[Article]] = {}
    by_minute: dict[datetime, list[Article]] = {}
    by_title: dict[str, list[Article]] = {}
    for article in rows:
        local = timezone.localtime(article.publish_at, zone)
        by_day.setdefault(local.date(), []).append(article)
        if article.release_id is None:  # a release's articles go out together by design
            by_minute.setdefault(local.replace(second=0, microsecond=0), []).append(article)
        by_title.setdefault(article.title.strip().casefold(), []).append(article)
    conflicts = [f"{len(same)} articles go out at {minute:%H:%M} on {minute:%a} {minute.day} {minute:%b}: "
                 + ", ".join(f"“{a}”" for a in same) for minute, same in by_minute.items() if len(same) > 1]
    conflicts += [f"{len(same)} articles this month are titled “{same[0]}” (#{', #'.join(str(a.pk) for a in same)}): "
                  "a duplicate?" for same in by_title.values() if len(same) > 1]
    weeks, day = [], first - timedelta(days=first.weekday())
    while day < following:
        weeks.append([(d, by_day.get(d, [])) if d.month == first.month else None
                      for d in (day + timedelta(days=i) for i in range(7))])
        day += timedelta(days=7)
    return MonthCalendar(first=first, weeks=weeks, conflicts=conflicts)


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
                .select_related("article").only("id", "status", "publish_at", "article__id", "article__title")
                .order_by("publish_at", "id"))
