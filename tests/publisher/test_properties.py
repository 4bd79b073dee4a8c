"""Property (Hypothesis): any sequence of editor actions (schedule, reschedule, unschedule,
publish now, retry), scans and deliveries of the dispatched chains (in any order, any number of
times: redelivery) publishes each article at most once and never before its publish time.
Single step messages are redelivered on their own too: any step message that was ever sent (the
chain's first, or one a finished step forwarded) runs again with the ids it carried, either
followed by the rest of the chain (as a redelivered Celery chain message goes on) or alone (its
forward lost: a broker blip at the step boundary).
Service level: the chains' steps run in this process, no worker."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from publisher import dispatch, pipeline, services
from publisher.models import Article, ArticleStatus
from scheduling.services import scan_run
from tests.factories import make_article

ARTICLES = 3
# Seconds from now: due long ago, just due, within the look-ahead (claimed ahead, not yet due), far ahead.
OFFSETS = st.sampled_from([-3600, -1, 3, 3600])

actions = st.one_of(
    st.tuples(st.just("schedule"), st.integers(0, ARTICLES - 1), OFFSETS),
    st.tuples(st.just("unschedule"), st.integers(0, ARTICLES - 1)),
    st.tuples(st.just("publish_now"), st.integers(0, ARTICLES - 1)),
    st.tuples(st.just("retry"), st.integers(0, ARTICLES - 1)),
    st.tuples(st.just("scan")),
    st.tuples(st.just("deliver"), st.integers(0, 50)),
    st.tuples(st.just("redeliver_step"), st.integers(0, 200), st.booleans()),
)


# Scheduled in the past (claimed at once), delivered, redelivered, scanned, delivered again:
# always tried, and must publish (so the property is not vacuously true).
SMOKE = [("schedule", 0, -3600), ("deliver", 0), ("deliver", 0), ("scan",), ("publish_now", 0), ("deliver", 1)]
# The process step alone (its forward lost), then the whole chain, then each later step's message
# again: notify alone, make-live and what follows, thumbnails alone. Must publish, once.
STEP_SMOKE = [("schedule", 0, -3600), ("redeliver_step", 0, False), ("deliver", 0), ("redeliver_step", 3, False),
              ("redeliver_step", 2, True), ("redeliver_step", 1, False), ("scan",), ("redeliver_step", 4, True)]

STEPS = [pipeline.step_process, pipeline.step_thumbnails, pipeline.step_make_live, pipeline.step_notify]


@pytest.fixture
def chains(monkeypatch):
    """The chains services dispatched, (token, ids), kept so they can be delivered (again)."""
    sent = []
    monkeypatch.setattr(dispatch, "publish_claimed",
                        lambda *, token, due, chunk_size=None: sent.append((token, [pk for pk, _ in due])))
    monkeypatch.setattr(dispatch, "fan_out", lambda **kwargs: None)
    return sent


def deliver(token: str, ids: list[int], *, sent: list, first: int = 0, alone: bool = False) -> None:
    """Run the chain from step `first` (only that step when `alone`); each step's result is
    forwarded as the next step's message, recorded in `sent` as (step, token, ids)."""
    for index in range(first, len(STEPS)):
        result = STEPS[index](article_ids=ids, token=token)
        ids = result[0] if index == 2 else result  # make-live: (published, wait)
        if alone or index == len(STEPS) - 1:
            return
        sent.append((index + 1, token, ids))


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(actions, max_size=25))
@example(steps=SMOKE)
@example(steps=STEP_SMOKE)
def test_any_sequence_of_actions_and_scans_publishes_each_article_at_most_once(steps, chains,
                                                                             django_capture_on_commit_callbacks):
    Article.objects.all().delete()
    chains.clear()
    forwarded: list[tuple[int, str, list[int]]] = []  # step messages a finished step sent on
    ids = [make_article(title=f"Story {i}", body="Body.").pk for i in range(ARTICLES)]
    went_live: dict[int, object] = {}

    for step in steps:
        with django_capture_on_commit_callbacks(execute=True):
            try:
                run(step, ids, chains, forwarded)
            except (services.TransitionError, ValidationError):
                pass  # refused with a message: a legal outcome, checked to have written nothing below
        for article in Article.objects.filter(pk__in=ids):
            if article.pk in went_live:
                # Once live, it stays live at the same instant: never published a second time.
                assert article.status == ArticleStatus.PUBLISHED, (step, article.status)
                assert article.published_at == went_live[article.pk], step
            elif article.status == ArticleStatus.PUBLISHED:
                assert article.published_at >= article.publish_at, "published early"
                went_live[article.pk] = article.published_at
            else:
                assert article.published_at is None
    if steps in (SMOKE, STEP_SMOKE):
        assert list(went_live) == [ids[0]]
    if steps == STEP_SMOKE:
        assert len(chains) == 1 and [index for index, _, _ in forwarded] == [1, 2, 3, 3]


def run(step, ids, chains, forwarded) -> None:
    action, *args = step
    if action == "schedule":
        index, offset = args
        services.article_schedule(article_id=ids[index], publish_at=timezone.now() + timedelta(seconds=offset))
    elif action == "unschedule":
        services.article_unschedule(article_id=ids[args[0]])
    elif action == "publish_now":
        services.article_publish_now(article_id=ids[args[0]])
    elif action == "retry":
        services.article_retry(article_id=ids[args[0]])
    elif action == "scan":
        scan_run()
    elif action == "deliver" and chains:
        deliver(*chains[args[0] % len(chains)], sent=forwarded)
    elif action == "redeliver_step" and chains:
        index, go_on = args
        messages = [(0, token, chain_ids) for token, chain_ids in chains] + forwarded
        first, token, step_ids = messages[index % len(messages)]
        deliver(token, step_ids, sent=forwarded, first=first, alone=not go_on)
