"""What looks like a scheduling mistake, for the month calendar and the release page: the one
place for these rules (publisher.selectors.articles_month and release_conflicts read through it).

- **Same minute**: several articles scheduled on their own going out in the same minute.
- **Same title**: two articles of the month with the same title (a duplicate?).
- **Same address**: two articles still to go live with the same slug, or one whose slug is
  another article's old address (an ArticleSlugRedirect: readers following the old links would
  land on the wrong story). The database keeps slugs unique and the slug services refuse an old
  address, so this is a last line of defence (and covers what later carries a slug of its own).
- **Same article twice within a minute**: two slots that touch one article less than a minute
  apart or exactly a minute apart — two releases, or a release and an item scheduled on its own —
  so which one wins is a race. A slot is (time, owner, article touched): today a release's
  members and articles scheduled on their own; a scheduled change of a live article (or a change
  as a release member) becomes one more slot with the article it changes, and the rule holds.
- **Incomplete release**: a release still to go live with a member without a title or a body
  (it would be blocked at preparation; better fixed now).

Every warning names its items and carries what to link them to (`Ref`): the admin renders the
links (publisher.admin.calendar), `str()` gives the sentence in plain text.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from django.db.models import BooleanField, Case, Q, Value, When
from django.utils import timezone

from .models import Article, ArticleSlugRedirect, Release
from .states import IN_FLIGHT, ON_THE_AGENDA, ReleaseStatus

WITHIN = timedelta(minutes=1)
_LAST = datetime.max.replace(tzinfo=UTC)
# Releases whose members are still to go live: the ones the timing and completeness rules read.
RELEASES_TO_COME = (ReleaseStatus.SCHEDULED, ReleaseStatus.PREPARING, ReleaseStatus.BLOCKED)


@dataclass(frozen=True)
class Ref:
    """An item a warning names: `kind` is the admin page it links to ("article", "release")."""

    kind: str
    pk: int
    label: str


@dataclass(frozen=True)
class Conflict:
    """One warning: `rule` (a stable name), a sentence with a `{}` per argument, and the
    arguments (a Ref is linked by the admin, a string is shown as it is)."""

    rule: str
    template: str
    args: tuple

    def __str__(self) -> str:
        return self.template.format(*(a.label if isinstance(a, Ref) else a for a in self.args))

    @property
    def refs(self) -> list[Ref]:
        return [a for a in self.args if isinstance(a, Ref)]


@dataclass(frozen=True)
class Slot:
    """Something going live at `when` that touches `article`: `item` (the article itself, or
    later a change of it) on behalf of `owner` (its release, or the item itself when it is
    scheduled on its own)."""

    when: datetime
    owner: Ref
    article: Ref
    item: Ref


def article_ref(article: Article) -> Ref:
    return Ref("article", article.pk, str(article))


def release_ref(release: Release) -> Ref:
    return Ref("release", release.pk, str(release))


def _quoted(refs) -> tuple[str, tuple]:
    refs = list(refs)
    return ", ".join("“{}”" for _ in refs), tuple(refs)


def _missing(article) -> str:
    return " and ".join(name for name, blank in (("title", article.title_blank), ("body", article.body_blank))
                        if blank)


def _by(slot: Slot) -> tuple[str, tuple]:
    if slot.owner.kind == "release":
        return "with release “{}”", (slot.owner,)
    if slot.item == slot.article:
        return "on its own", ()
    return "as “{}” on its own", (slot.item,)


def timing_conflicts(slots: list[Slot]) -> list[Conflict]:
    """Two slots of different owners touching one article at most WITHIN apart (the rule
    above), each pair once, in time order."""
    by_article: dict[Ref, list[Slot]] = defaultdict(list)
    for slot in slots:
        by_article[slot.article].append(slot)
    found = []
    for same in by_article.values():
        same.sort(key=lambda s: (s.when, s.owner.kind != "release", s.owner.kind, s.owner.pk))  # releases first
        for i, first in enumerate(same):
            for second in same[i + 1:]:
                if second.when - first.when > WITHIN:
                    break
                if first.owner == second.owner:
                    continue
                gap = int((second.when - first.when).total_seconds())
                (one, one_args), (other, other_args) = _by(first), _by(second)
                found.append((first.when, Conflict(
                    "same_article_within_a_minute",
                    "“{}” goes out " + one + " and " + other + ", " + ("at the same time" if gap == 0 else "{} s apart")
                    + ": which one wins is a race. Move one of them.",
                    (first.article, *one_args, *other_args, *((gap,) if gap else ())))))
    return [conflict for _, conflict in sorted(found, key=lambda pair: pair[0])]


def schedule_conflicts(*, articles: list[Article], releases: list[Release], members: list[Article],
                       zone: tzinfo, more_slots: Sequence[Slot] = ()) -> list[Conflict]:
    """Every warning for these rows (one query: the old addresses their slugs may be).

    `articles`: the articles scheduled on their own (and live or failed ones of the period, which
    only the title rule reads); `releases`: the releases of the period; `members`: their
    articles. Articles and members carry `title_blank` and `body_blank` (see `with_blanks`).
    `more_slots`: whatever else goes live in the period and touches an article (a scheduled
    change of a live article), for the timing rule."""
    conflicts: list[Conflict] = []
    # Same minute, articles on their own (a release's articles go out together by design).
    by_minute: dict[datetime, list[Article]] = defaultdict(list)
    for article in articles:
        if article.status in ON_THE_AGENDA:
            by_minute[timezone.localtime(article.publish_at, zone).replace(second=0, microsecond=0)].append(article)
    for minute, same in by_minute.items():
        if len(same) > 1:
            names, refs = _quoted(article_ref(a) for a in same)
            conflicts.append(Conflict("same_minute", f"{len(same)} articles go out at {minute:%H:%M} on {minute:%a} "
                                      f"{minute.day} {minute:%b}: {names}", refs))
    # Same title, anything of the month.
    by_title: dict[str, list[Article]] = defaultdict(list)
    for article in sorted([*articles, *members], key=lambda a: (a.publish_at or _LAST, a.pk)):
        if article.status in ON_THE_AGENDA and article.title.strip():
            by_title[article.title.strip().casefold()].append(article)
    for same in by_title.values():
        if len(same) > 1:
            conflicts.append(Conflict("same_title", f"{len(same)} articles this month are titled “{{}}” ("
                                      + ", ".join("{}" for _ in same) + "): a duplicate?",
                                      (article_ref(same[0]), *(Ref("article", a.pk, f"#{a.pk}") for a in same))))
    # Same address: what is still to go live.
    to_come = [a for a in [*articles, *members] if a.status in IN_FLIGHT and a.slug]
    by_slug: dict[str, list[Article]] = defaultdict(list)
    for article in to_come:
        by_slug[article.slug].append(article)
    for slug, same in by_slug.items():
        if len(same) > 1:
            names, refs = _quoted(article_ref(a) for a in same)
            conflicts.append(Conflict("same_slug", names + " would all answer at the address “{}”.", (*refs, slug)))
    if to_come:
        old = ArticleSlugRedirect.objects.filter(old_slug__in=[a.slug for a in to_come]).select_related(
            "article").only("old_slug", "article__id", "article__title")
        for redirect in sorted(old, key=lambda r: r.old_slug):
            for article in by_slug[redirect.old_slug]:
                if article.pk != redirect.article_id:
                    conflicts.append(Conflict(
                        "old_address", "“{}” would answer at “{}”, the old address of “{}”: links to that "
                        "story would open this one. Change the slug.",
                        (article_ref(article), redirect.old_slug, article_ref(redirect.article))))
    # The same article twice within a minute.
    slots = [Slot(a.publish_at, article_ref(a), article_ref(a), article_ref(a)) for a in articles
             if a.status in IN_FLIGHT]
    coming = {r.pk: r for r in releases if r.status in RELEASES_TO_COME}
    slots += [Slot(coming[m.release_id].publish_at, release_ref(coming[m.release_id]), article_ref(m), article_ref(m))
              for m in members if m.release_id in coming]
    slots += more_slots
    conflicts += timing_conflicts(slots)
    # A release still to go live with an article it cannot publish.
    incomplete: dict[int, list[Article]] = defaultdict(list)
    for member in members:
        if member.release_id in coming and (member.title_blank or member.body_blank):
            incomplete[member.release_id].append(member)
    for release_id, blank in incomplete.items():
        release = coming[release_id]
        parts = ", ".join("“{}” (no " + _missing(m) + ")" for m in blank)
        conflicts.append(Conflict("release_incomplete", "Release “{}” contains " + parts
                                  + ": it will be blocked unless they are completed or removed.",
                                  (release_ref(release), *(article_ref(m) for m in blank))))
    return conflicts


def with_blanks(queryset):
    """Annotate `title_blank` and `body_blank` (empty or whitespace only), in the same SELECT:
    the body itself is not read."""
    def blank(field):
        return Case(When(Q(**{f"{field}__regex": r"^\s*$"}), then=Value(True)), default=Value(False),
                    output_field=BooleanField())

    return queryset.annotate(title_blank=blank("title"), body_blank=blank("body"))
