"""The state machine is declared once (publisher.states) and `status` has one writer."""

import ast
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from publisher import dispatch, pipeline, services, states
from publisher.models import Article, ArticleEvent, ArticleRevision, ArticleStatus
from publisher.states import ACTIONS, TRANSITIONS, Action, RevisionStatus, StateMachineError, Transition

ROOT = Path(__file__).resolve().parents[2]


def test_docs_states_md_is_generated_from_the_declaration():
    assert (ROOT / "docs" / "states.md").read_text(encoding="utf-8") == states.render_markdown(), (
        "docs/states.md is stale: run python -m publisher.states --write docs/states.md")


def test_the_declaration_is_valid():
    states.validate()
    assert set(ACTIONS) == {"schedule", "unschedule", "publish_now", "retry", "unpublish_now"}
    assert states.NEEDS_ATTENTION == (ArticleStatus.FAILED, ArticleStatus.MISSED)


def test_the_revision_declaration_is_valid():
    states.validate(states.REVISION_TRANSITIONS, states.REVISION_ACTIONS, tuple(RevisionStatus.values),
                    states.REVISION_INITIAL, groups=(states.REVISION_PENDING,))
    assert states.REVISION_PENDING == (RevisionStatus.SCHEDULED, RevisionStatus.PUBLISHING)
    # A change in a scheduled release is applied with it only: every editor action says why.
    for action in states.REVISION_ACTIONS.values():
        assert action.reason(RevisionStatus.IN_RELEASE) == states.REVISION_IN_RELEASE_REASON
    unreachable = {n: t for n, t in states.REVISION_TRANSITIONS.items() if t.target != RevisionStatus.APPLIED}
    with pytest.raises(StateMachineError, match=r"unreachable from draft: \['applied', 'rolled_back'\]"):
        states.validate(unreachable, {}, tuple(RevisionStatus.values), states.REVISION_INITIAL, groups=())


def test_revision_transitions_are_compare_and_set_and_the_editor_wins(article_factory):
    article = article_factory(status=ArticleStatus.PUBLISHED, publish_at=timezone.now(), published_at=timezone.now())
    revision = ArticleRevision.objects.create(article=article, title="T", body="B")
    with pytest.raises(TypeError, match="sets status from the declaration"):
        ArticleRevision.objects.transition("cancel", status=RevisionStatus.DRAFT)
    rows = ArticleRevision.objects.filter(pk=revision.pk)
    assert rows.transition("claim", claim_token=uuid.uuid4()) == 0, "a draft is not claimed"
    assert rows.transition("schedule", publish_at=timezone.now()) == 1
    token = uuid.uuid4()
    assert rows.transition("claim", claim_token=token) == 1
    assert rows.transition("claim", claim_token=uuid.uuid4()) == 0, "claimed once"
    # The editor cancels the in-flight change: the claim's own step finds nothing to move.
    assert rows.transition("cancel", actor=None) == 1
    assert rows.transition("apply", token=str(token)) == 0
    assert rows.get().status == RevisionStatus.CANCELLED
    event = ArticleEvent.objects.get(article=article)
    assert (event.action, event.note) == ("change_cancelled", f"Change #{revision.pk}")


def test_an_unreachable_status_is_refused():
    transitions = {name: t for name, t in TRANSITIONS.items() if t.target != ArticleStatus.MISSED}
    actions = {name: a for name, a in ACTIONS.items() if name != "retry"}
    with pytest.raises(StateMachineError, match=r"unreachable from draft: \['missed'\]"):
        states.validate(transitions, actions)


def test_unknown_names_are_refused():
    transitions = {**TRANSITIONS, "bogus": Transition("bogus", ("draft",), "archived", "editor", "")}
    with pytest.raises(StateMachineError, match="transition bogus: unknown status 'archived'"):
        states.validate(transitions)
    actions = {**ACTIONS, "archive": Action("archive", "Archive", ("archive",), {})}
    with pytest.raises(StateMachineError, match="action archive: unknown transition 'archive'"):
        states.validate(actions=actions)


def test_an_action_needs_a_reason_for_every_status_it_does_not_apply_to():
    actions = {**ACTIONS, "retry": Action("retry", "Retry", ("retry",), {ArticleStatus.DRAFT: "no"})}
    with pytest.raises(StateMachineError, match="action retry: reasons must cover exactly"):
        states.validate(actions=actions)


def _status_writes(path: Path) -> list[int]:
    """Lines of `path` that write an article's status in an update: a `status=` keyword or a
    "status" key, except on a query that visibly starts from another model or whose value is a
    notification's or a webhook delivery's status."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and (node.func.attr in ("update", "bulk_update", "update_or_create")
                     # A revision is born a draft: its status moves only by transition.
                     or (node.func.attr in ("create", "get_or_create")
                         and ast.unparse(node.func.value).startswith("ArticleRevision.")))):
            continue
        if ast.unparse(node.func.value).startswith(("Notification.", "DailyReport.", "Delivery.")):
            continue
        values = [kw.value for kw in node.keywords if kw.arg == "status"]
        for arg in node.args:
            if isinstance(arg, ast.Dict):
                values += [v for k, v in zip(arg.keys, arg.values)
                           if isinstance(k, ast.Constant) and k.value == "status"]
            if isinstance(arg, ast.List) and any(isinstance(e, ast.Constant) and e.value == "status" for e in arg.elts):
                lines.append(node.lineno)
        lines += [node.lineno for value in values if not ast.unparse(value).startswith(("NotificationStatus.", "DeliveryStatus."))]
    return lines


def test_only_the_queryset_writes_status():
    allowed = ROOT / "publisher" / "querysets.py"
    offenders = []
    for folder in ("publisher", "scheduling", "scripts", "settings"):
        for path in (ROOT / folder).rglob("*.py"):
            if path != allowed and "migrations" not in path.parts:
                offenders += [f"{path.relative_to(ROOT)}:{line}" for line in _status_writes(path)]
    assert offenders == []


def test_the_status_check_sees_a_write():
    path = ROOT / "var" / "status_write_probe.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text("Article.objects.filter(pk=1).update(status=ArticleStatus.DRAFT)\n"
                    "Notification.objects.update(status=NotificationStatus.SENT)\n"
                    "ArticleRevision.objects.filter(pk=1).update(status=RevisionStatus.APPLIED)\n"
                    "ArticleRevision.objects.create(article=a, status='scheduled')\n")
    try:
        assert _status_writes(path) == [1, 3, 4]
    finally:
        path.unlink()


def test_transition_refuses_an_explicit_status(db):
    with pytest.raises(TypeError, match="sets status from the declaration"):
        Article.objects.transition("retry", status=ArticleStatus.DRAFT)


def test_transition_is_compare_and_set_and_stamps_updated_at(article_factory):
    draft = article_factory()
    failed = article_factory(status=ArticleStatus.FAILED, publish_at=timezone.now() - timedelta(hours=1))
    Article.objects.filter(pk__in=[draft.pk, failed.pk]).update(updated_at=timezone.now() - timedelta(days=1))
    assert Article.objects.filter(pk__in=[draft.pk, failed.pk]).transition("retry") == 1
    draft.refresh_from_db()
    failed.refresh_from_db()
    assert draft.status == ArticleStatus.DRAFT and draft.updated_at < timezone.now() - timedelta(hours=1)
    assert failed.status == ArticleStatus.SCHEDULED and failed.updated_at > timezone.now() - timedelta(minutes=1)
    assert not ArticleEvent.objects.exists(), "no actor given: no audit event"


@pytest.fixture
def no_dispatch(monkeypatch):
    monkeypatch.setattr(dispatch, "publish_claimed", lambda **kwargs: None)


def test_per_article_and_bulk_entry_points_record_the_same_event(article_factory, no_dispatch):
    editor = get_user_model().objects.create_user("ed", password="x")
    when = timezone.now() + timedelta(days=1)
    one, two = article_factory(), article_factory()
    services.article_schedule(article_id=one.pk, publish_at=when, actor=editor)
    services.articles_schedule(article_ids=[two.pk], publish_at=when, actor=editor)
    recorded = [ArticleEvent.objects.values("action", "actor", "publish_at", "previous_status").get(article=a)
                for a in (one, two)]
    assert recorded[0] == recorded[1] == {"action": "scheduled", "actor": editor.pk, "publish_at": when,
                                          "previous_status": "draft"}


def test_an_article_that_expires_in_flight_is_stamped(article_factory):
    now = timezone.now()
    article = article_factory(status=ArticleStatus.SCHEDULED, publish_at=now - timedelta(minutes=2),
                              unpublish_at=now + timedelta(minutes=10))
    claim = services.articles_claim_due()
    Article.objects.filter(pk=article.pk).update(unpublish_at=now - timedelta(minutes=1),
                                                 updated_at=now - timedelta(days=1))
    pipeline.step_make_live(article_ids=[article.pk], token=claim.token)
    article.refresh_from_db()
    assert article.status == ArticleStatus.EXPIRED
    assert article.updated_at > now - timedelta(minutes=1)


def test_the_claim_stays_one_statement(article_factory, no_dispatch):
    article_factory(status=ArticleStatus.SCHEDULED, publish_at=timezone.now() - timedelta(seconds=5))
    with CaptureQueriesContext(connection) as queries:
        claim = services.articles_claim_due()
    assert len(claim.article_ids) == 1
    writes = [q["sql"] for q in queries.captured_queries if "UPDATE" in q["sql"]]
    assert len(writes) == 1
    assert writes[0].startswith('WITH "due" AS MATERIALIZED (SELECT') and " RETURNING " in writes[0]


def _release_status_writes(path: Path) -> list[int]:
    """Lines of `path` that set a release's status other than through its transition: a
    `status=` keyword (or "status" key) in a write or a constructor on `Release`, or an
    assignment to the `status` of something named for a release."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            writes = isinstance(node.func, ast.Attribute) and node.func.attr in (
                "update", "bulk_update", "update_or_create", "create", "get_or_create", "bulk_create")
            on_release = func.startswith("Release.") or func == "Release" or "release" in func.split(".")[0].lower()
            if on_release and (writes or func == "Release"):
                keys = [kw.arg for kw in node.keywords]
                keys += [k.value for arg in node.args if isinstance(arg, ast.Dict)
                         for k in arg.keys if isinstance(k, ast.Constant)]
                if "status" in keys or "defaults" in keys and "status" in ast.unparse(node):
                    lines.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            lines += [node.lineno for t in targets if isinstance(t, ast.Attribute) and t.attr == "status"
                      and "release" in ast.unparse(t.value).lower()]
    return lines


def test_only_the_queryset_writes_release_status():
    allowed = ROOT / "publisher" / "querysets.py"
    offenders = []
    for folder in ("publisher", "scheduling", "scripts", "settings"):
        for path in (ROOT / folder).rglob("*.py"):
            if path != allowed and "migrations" not in path.parts:
                offenders += [f"{path.relative_to(ROOT)}:{line}" for line in _release_status_writes(path)]
    assert offenders == []


def test_the_release_status_check_sees_a_write():
    path = ROOT / "var" / "release_status_write_probe.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text("Release.objects.filter(pk=1).update(status='published')\n"
                    "Release.objects.create(name='x', status='published')\n"
                    "release.status = 'blocked'\n"
                    "Release(name='x', status='scheduled')\n"
                    "Release.objects.filter(pk=1).transition('publish')\n"
                    "Release.objects.create(name='x')\n")
    try:
        assert sorted(_release_status_writes(path)) == [1, 2, 3, 4]
    finally:
        path.unlink()


def test_a_release_member_cannot_take_article_actions(article_factory):
    """Every editor action names the in-release status among those it does not apply to, with a
    reason that sends the editor to the release."""
    for name, action in ACTIONS.items():
        assert ArticleStatus.IN_RELEASE not in action.applies_to, name
        assert action.reason(ArticleStatus.IN_RELEASE), name
    member = article_factory(status=ArticleStatus.IN_RELEASE, publish_at=timezone.now() + timedelta(hours=1))
    for name in ("schedule", "retry", "publish_now", "unschedule", "unpublish_now", "claim"):
        assert Article.objects.filter(pk=member.pk).transition(name, **(
            {"claim_token": "00000000-0000-0000-0000-000000000001"} if name in ("publish_now", "claim") else {})) == 0
    assert Article.objects.get(pk=member.pk).status == ArticleStatus.IN_RELEASE
