"""The canvas the services send: results ignored, so a sending process (web, a command) never
subscribes to a task's result on the result backend (and never waits ~20 s on an unreachable
one before the dispatch fails; row 6 of the fault suite)."""

from django.utils import timezone

from publisher import dispatch


def test_every_signature_of_a_publishing_chain_ignores_its_result():
    canvas = dispatch.publishing_chain(token="t", article_ids=[1, 2], go_live_at=timezone.now())
    tasks = [*canvas.tasks, *canvas.options["link_error"]]
    assert [task["task"] for task in tasks] == [dispatch.PROCESS, dispatch.THUMBNAILS, dispatch.MAKE_LIVE,
                                                dispatch.NOTIFY, dispatch.FAIL]
    assert all(task.options.get("ignore_result") is True for task in tasks)

