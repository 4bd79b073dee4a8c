"""The month calendar's releases and its warnings (publisher.conflicts, read through
publisher.selectors.articles_month and release_conflicts), against the real database: each rule
with its exact sentence, the absence of false positives, and a fixed number of queries."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from publisher import releases, selectors
from publisher.conflicts import WITHIN, Conflict, Ref, Slot, article_ref, schedule_conflicts, timing_conflicts
from publisher.models import Article, ArticleSlugRedirect, ArticleStatus, Release
from publisher.states import ReleaseStatus
from tests import factories
from tests.factories import make_article, make_user
from tests.support.clock import utc

PARIS = ZoneInfo("Europe/Paris")
JANUARY = utc(2027, 1, 1).date()
NINE_THIRTY = utc(2027, 1, 12, 8, 30)  # 09:30 CET


@pytest.fixture
def editor(db):
    factories.newsroom_groups()
    return make_user("edith", "Editors", "Europe/Paris", email="edith@example.com")


def scheduled_release(editor, name, when, titles):
    release = releases.release_create(name=name, actor=editor)
    articles = [make_article(title=title, body=f"{title}: the text.") for title in titles]
    result = releases.release_add_members(release_id=release.pk, article_ids=[a.pk for a in articles], actor=editor)
    assert result.skipped == []
    releases.release_schedule(release_id=release.pk, publish_at=when, actor=editor)
    return Release.objects.get(pk=release.pk), [Article.objects.get(pk=a.pk) for a in articles]


def on_its_own(title, when, **fields):
    fields.setdefault("slug", title.lower().replace(" ", "-"))
    return make_article(title=title, status=ArticleStatus.SCHEDULED, publish_at=when, **fields)


def month(first=JANUARY):
    return selectors.articles_month(zone=PARIS, first=first)


def day_articles(calendar, day):
    return {d: items for week in calendar.weeks for cell in week if cell for d, items in [cell]}[day]


# --- Releases on the calendar ------------------------------------------------------------------

def test_a_release_is_on_its_local_day_with_its_articles_inside_not_listed_twice(editor):
    release, members = scheduled_release(editor, "Budget package", NINE_THIRTY, ["Numbers", "Who pays"])
    alone = on_its_own("Weather", NINE_THIRTY + timedelta(hours=2))
    # 23:30 UTC on the 31st is 00:30 on the 1st of February in Paris: next month's.
    scheduled_release(editor, "Late package", utc(2027, 1, 31, 23, 30), ["Night"])
    calendar = month()
    day = NINE_THIRTY.date()
    [item] = calendar.releases[day]
    assert (item.release.pk, item.release.status, item.release.member_count, item.at_risk) == (
        release.pk, ReleaseStatus.SCHEDULED, 2, False)
    assert [m.pk for m in item.members] == [m.pk for m in members]
    assert [a.pk for a in day_articles(calendar, day)] == [alone.pk]
    assert list(calendar.releases) == [day]
    assert calendar.conflicts == []
    february = month(utc(2027, 2, 1).date())
    assert [i.release.name for i in february.releases[utc(2027, 2, 1).date()]] == ["Late package"]


def test_a_release_is_at_risk_when_a_member_is(editor):
    release, members = scheduled_release(editor, "Budget package", NINE_THIRTY, ["Numbers", "Who pays"])
    Article.objects.filter(pk=members[1].pk).update(at_risk_reason="The image has no alt text.")
    [item] = month().releases[NINE_THIRTY.date()]
    assert item.at_risk is True


def test_draft_releases_are_not_on_the_calendar(editor):
    release, members = scheduled_release(editor, "Budget package", NINE_THIRTY, ["Numbers"])
    releases.release_unschedule(release_id=release.pk, actor=editor)
    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.DRAFT
    calendar = month()
    assert calendar.releases == {} and calendar.conflicts == []
    assert day_articles(calendar, NINE_THIRTY.date()) == []  # its articles are drafts again


# --- No false positives --------------------------------------------------------------------------

def test_a_busy_but_sound_month_has_no_warnings(editor):
    # Two releases in the same minute with different articles, a release and an article of its
    # own in that minute, articles on their own a minute apart, a live article with an old
    # address nobody else uses, an article that took back its own old address.
    scheduled_release(editor, "Budget package", NINE_THIRTY, ["Numbers", "Who pays"])
    scheduled_release(editor, "Sport package", NINE_THIRTY, ["Cup final"])
    on_its_own("Weather", NINE_THIRTY)
    on_its_own("Traffic", NINE_THIRTY + timedelta(minutes=1))
    live = make_article(title="Old story", slug="old-story-2026", status=ArticleStatus.PUBLISHED,
                        publish_at=NINE_THIRTY - timedelta(days=400), published_at=NINE_THIRTY - timedelta(days=400))
    ArticleSlugRedirect.objects.create(old_slug="old-story", article=live)
    own = on_its_own("Returning", NINE_THIRTY + timedelta(hours=3), slug="returning")
    ArticleSlugRedirect.objects.create(old_slug="returning", article=own)
    assert month().conflicts == []


# --- (a) Same address ----------------------------------------------------------------------------

def test_an_article_at_another_articles_old_address_is_a_warning(editor):
    live = make_article(title="Budget 2026", slug="budget-2026-review", status=ArticleStatus.PUBLISHED,
                        publish_at=utc(2026, 1, 5), published_at=utc(2026, 1, 5))
    ArticleSlugRedirect.objects.create(old_slug="budget", article=live)
    alone = on_its_own("Budget", NINE_THIRTY, slug="budget")
    release, [member] = scheduled_release(editor, "Sport package", NINE_THIRTY + timedelta(days=1), ["Cup final"])
    ArticleSlugRedirect.objects.create(old_slug=member.slug, article=live)
    conflicts = month().conflicts
    assert [c.rule for c in conflicts] == ["old_address", "old_address"]
    assert str(conflicts[0]) == ("“Budget” would answer at “budget”, the old address of “Budget 2026”: links to that "
                                 "story would open this one. Change the slug.")
    assert conflicts[0].refs == [Ref("article", alone.pk, "Budget"), Ref("article", live.pk, "Budget 2026")]
    assert str(conflicts[1]) == ("“Cup final” would answer at “cup-final”, the old address of “Budget 2026”: links "
                                 "to that story would open this one. Change the slug.")
    assert selectors.release_conflicts(release_id=release.pk, zone=PARIS) == [conflicts[1]]


def test_two_articles_to_come_with_one_slug_are_a_warning(db):
    # The database keeps slugs unique; what carries a slug of its own beside its article (a
    # change, later) meets the same rule. Rows as the selector reads them:
    rows = [Article(pk=pk, title=title, slug="budget", status=status, publish_at=NINE_THIRTY + timedelta(hours=pk))
            for pk, title, status in ((1, "Budget", ArticleStatus.SCHEDULED),
                                      (2, "Budget, revised", ArticleStatus.IN_RELEASE),
                                      (3, "Budget, live", ArticleStatus.PUBLISHED))]
    for row in rows:
        row.title_blank = row.body_blank = False
    [conflict] = schedule_conflicts(articles=rows, releases=[], members=[], zone=PARIS)
    assert (conflict.rule, str(conflict)) == (
        "same_slug", "“Budget”, “Budget, revised” would all answer at the address “budget”.")


# --- (b) The same article twice within a minute --------------------------------------------------

def slot(when, owner, article=Ref("article", 7, "Budget"), item=None):
    return Slot(when, owner, article, item or article)


def test_two_releases_touching_one_article_within_a_minute_are_a_warning():
    spring, sport = Ref("release", 1, "Spring"), Ref("release", 2, "Sport")
    [conflict] = timing_conflicts([slot(NINE_THIRTY + WITHIN, sport), slot(NINE_THIRTY, spring)])
    assert conflict.rule == "same_article_within_a_minute"
    assert str(conflict) == ("“Budget” goes out with release “Spring” and with release “Sport”, 60 s apart: which "
                             "one wins is a race. Move one of them.")
    assert conflict.refs == [Ref("article", 7, "Budget"), spring, sport]
    assert timing_conflicts([slot(NINE_THIRTY, spring), slot(NINE_THIRTY + WITHIN + timedelta(seconds=1), sport)]) == []


def test_a_release_and_a_change_of_its_own_touching_one_article_in_one_minute_are_a_warning():
    spring = Ref("release", 1, "Spring")
    change = Ref("change", 5, "Change #5 to “Budget”")
    conflicts = timing_conflicts([slot(NINE_THIRTY, spring), slot(NINE_THIRTY, change, item=change)])
    assert [str(c) for c in conflicts] == [
        "“Budget” goes out with release “Spring” and as “Change #5 to “Budget”” on its own, at the same time: which "
        "one wins is a race. Move one of them."]
    article = Ref("article", 7, "Budget")
    assert [str(c) for c in timing_conflicts([slot(NINE_THIRTY + timedelta(seconds=30), article),
                                              slot(NINE_THIRTY, spring)])] == [
        "“Budget” goes out with release “Spring” and on its own, 30 s apart: which one wins is a race. "
        "Move one of them."]


def test_one_owner_and_different_articles_are_no_timing_warning():
    spring, sport = Ref("release", 1, "Spring"), Ref("release", 2, "Sport")
    other = Ref("article", 8, "Cup final")
    assert timing_conflicts([slot(NINE_THIRTY, spring), slot(NINE_THIRTY, spring),
                             slot(NINE_THIRTY, sport, article=other)]) == []


# --- (c) A release with an article it cannot publish ----------------------------------------------

def test_a_release_with_an_article_without_a_body_or_title_is_a_warning(editor):
    release, members = scheduled_release(editor, "Budget package", NINE_THIRTY, ["Numbers", "Who pays", "Fine"])
    Article.objects.filter(pk=members[0].pk).update(body=" \n\t")
    Article.objects.filter(pk=members[1].pk).update(title="", body="")
    # Neither a live release nor a draft one is warned about: nothing of them is still to go out.
    live, [done] = scheduled_release(editor, "Done package", NINE_THIRTY - timedelta(days=1), ["Done"])
    Release.objects.filter(pk=live.pk).update(status=ReleaseStatus.PUBLISHED)
    Article.objects.filter(pk=done.pk).update(status=ArticleStatus.PUBLISHED, body="")
    draft = releases.release_create(name="Draft package", actor=editor)
    blank = make_article(title="Blank", body="")
    releases.release_add_members(release_id=draft.pk, article_ids=[blank.pk], actor=editor)
    [conflict] = month().conflicts
    assert conflict.rule == "release_incomplete"
    assert str(conflict) == (f"Release “Budget package” contains “Numbers” (no body), “Article #{members[1].pk}” "
                             "(no title and body): it will be blocked unless they are completed or removed.")
    assert conflict.refs == [Ref("release", release.pk, "Budget package"), Ref("article", members[0].pk, "Numbers"),
                             Ref("article", members[1].pk, f"Article #{members[1].pk}")]
    assert selectors.release_conflicts(release_id=release.pk, zone=PARIS) == [conflict]
    assert selectors.release_conflicts(release_id=live.pk, zone=PARIS) == []


# --- The existing rules stay --------------------------------------------------------------------

def test_same_minute_and_same_title_come_first_and_count_articles_on_their_own(editor):
    scheduled_release(editor, "Budget package", NINE_THIRTY, ["Budget"])
    first = on_its_own("Budget", NINE_THIRTY, slug="budget-alone")
    second = on_its_own("Weather", NINE_THIRTY + timedelta(seconds=20))
    conflicts = month().conflicts
    assert [str(c) for c in conflicts] == [
        "2 articles go out at 09:30 on Tue 12 Jan: “Budget”, “Weather”",
        f"2 articles this month are titled “Budget” (#{Article.objects.get(title='Budget', release__isnull=False).pk}"
        f", #{first.pk}): a duplicate?"]
    assert conflicts[0].refs == [Ref("article", first.pk, "Budget"), Ref("article", second.pk, "Weather")]
    member = Article.objects.get(title="Budget", release__isnull=False)
    assert conflicts[1].refs == [Ref("article", member.pk, "Budget"), Ref("article", member.pk, f"#{member.pk}"),
                                 Ref("article", first.pk, f"#{first.pk}")]


# --- Cost ------------------------------------------------------------------------------------------

def fill(editor, n, start):
    for i in range(n):
        when = start + timedelta(days=i % 20, minutes=7 * i)
        scheduled_release(editor, f"Package {start:%H%M}-{i}", when, [f"Story {start:%H%M}-{i}-{j}" for j in range(3)])
        on_its_own(f"Alone {start:%H%M}-{i}", when + timedelta(hours=1))


def test_the_month_costs_three_queries_whatever_it_holds(editor, django_assert_num_queries):
    live = make_article(title="Old", slug="old-2026", status=ArticleStatus.PUBLISHED, publish_at=utc(2026, 1, 5),
                        published_at=utc(2026, 1, 5))
    ArticleSlugRedirect.objects.create(old_slug="alone-0830-0", article=live)
    fill(editor, 2, NINE_THIRTY - timedelta(days=10))
    with django_assert_num_queries(3):  # releases, articles (with the members), old addresses
        small = month()
    fill(editor, 8, NINE_THIRTY - timedelta(days=11) + timedelta(minutes=3))
    with django_assert_num_queries(3):
        large = month()
    assert [c.rule for c in small.conflicts] == ["old_address"] == [c.rule for c in large.conflicts]
    assert sum(len(items) for items in large.releases.values()) == 10
    release_id = Release.objects.order_by("pk").values_list("pk", flat=True).first()
    with django_assert_num_queries(4):  # the release's time, the releases around it, articles, old addresses
        selectors.release_conflicts(release_id=release_id, zone=PARIS)


# --- The admin ------------------------------------------------------------------------------------

def test_the_calendar_page_shows_releases_and_linked_warnings(client, editor):
    client.force_login(editor)
    release, members = scheduled_release(editor, "Budget package", NINE_THIRTY, ["Numbers", "Who pays"])
    Article.objects.filter(pk=members[1].pk).update(body="", at_risk_reason="No body.")
    alone = on_its_own("Weather", NINE_THIRTY + timedelta(hours=2))
    page = client.get(reverse("admin:publisher_article_calendar") + "?month=2027-01").content.decode()
    day = page.split('id="day-2027-01-12"', 1)[1].split("</td>", 1)[0]
    release_url = reverse("admin:publisher_release_change", args=[release.pk])
    box = day.split(f'id="release-{release.pk}"', 1)[1].split("</div>", 1)[0]
    assert f'<span class="quiet">09:30 CET</span> Release <a href="{release_url}">Budget package</a>' in box
    assert 'release-status-scheduled' in box and '<span class="at-risk">At risk</span>' in box
    assert '<span class="quiet release-count">2 articles</span>' in box
    for member in members:
        assert f'<a href="{reverse("admin:publisher_article_change", args=[member.pk])}">{member.title}</a>' in box
        assert day.count(f'/admin/publisher/article/{member.pk}/change/') == 1  # inside the release only
    assert day.count('class="calendar-item"') == 1 and "Weather" in day and str(alone.pk) in day
    warnings = page.split('id="calendar-conflicts"', 1)[1].split("</ul>", 1)[0]
    assert warnings.count('<li class="warning">') == 1
    assert (f'Release “<a href="{release_url}" class="conflict-release">Budget package</a>” contains '
            f'“<a href="/admin/publisher/article/{members[1].pk}/change/" class="conflict-article">Who pays</a>” '
            "(no body): it will be blocked unless they are completed or removed.") in warnings
    assert "Europe/Paris" in page

    release_page = client.get(release_url).content.decode()
    on_page = release_page.split('id="release-conflicts"', 1)[1].split("</ul>", 1)[0]
    assert on_page.count('<li class="warning">') == 1 and "contains “<a href" in on_page and "(no body)" in on_page


def test_warnings_escape_what_editors_typed(client, editor):
    client.force_login(editor)
    release, [member] = scheduled_release(editor, "<b>Package</b>", NINE_THIRTY, ["<i>Story</i>"])
    Article.objects.filter(pk=member.pk).update(body="")
    page = client.get(reverse("admin:publisher_article_calendar") + "?month=2027-01").content.decode()
    warnings = page.split('id="calendar-conflicts"', 1)[1].split("</ul>", 1)[0]
    assert "&lt;b&gt;Package&lt;/b&gt;" in warnings and "&lt;i&gt;Story&lt;/i&gt;" in warnings
    assert "<b>" not in warnings and "<i>" not in warnings


def test_conflict_text_is_the_plain_sentence_and_the_admin_links_its_items(db):
    from publisher.admin.conflicts import conflict_html

    conflict = Conflict("x", "“{}” and {} and {}", (Ref("article", 1, "A"), "<b>", Ref("change", 2, "C")))
    assert (str(conflict), conflict.refs) == ("“A” and <b> and C", [Ref("article", 1, "A"), Ref("change", 2, "C")])
    assert conflict_html(conflict) == ('“<a href="/admin/publisher/article/1/change/" class="conflict-article">A</a>” '
                                       'and &lt;b&gt; and <span class="conflict-change">C</span>')


def test_more_slots_join_the_months_timing_rule(editor):
    release, [member] = scheduled_release(editor, "Budget package", NINE_THIRTY, ["Numbers"])
    change = Ref("change", 5, "Change #5 to “Numbers”")
    [conflict] = selectors.articles_month(zone=PARIS, first=JANUARY, more_slots=[
        Slot(NINE_THIRTY + timedelta(seconds=45), change, article_ref(member), change)]).conflicts
    assert str(conflict) == ("“Numbers” goes out with release “Budget package” and as “Change #5 to “Numbers”” on "
                             "its own, 45 s apart: which one wins is a race. Move one of them.")
