"""The canvas the services send: results ignored, so a sending process (web, a command) never
subscribes to a task's result on the result backend (and never waits ~20 s on an unreachable
one before the dispatch fails; row 6 of the fault suite)."""

from datetime import timedelta

from django.utils import timezone

from publisher import dispatch


def test_every_signature_of_a_publishing_chain_ignores_its_result():
    canvas = dispatch.publishing_chain(token="t", article_ids=[1, 2], go_live_at=timezone.now())
    tasks = [*canvas.tasks, *canvas.options["link_error"]]
    assert [task["task"] for task in tasks] == [dispatch.PROCESS, dispatch.THUMBNAILS, dispatch.MAKE_LIVE,
                                                dispatch.NOTIFY, dispatch.FAIL]
    assert all(task.options.get("ignore_result") is True for task in tasks)



def test_a_chunk_with_several_due_times_ends_in_scheduling_its_flips():
    soon = timezone.now() + timedelta(seconds=30)
    canvas = dispatch.publishing_chain(token="t", article_ids=[1, 2, 3],
                                       flips=[([1, 2], soon), ([3], soon + timedelta(seconds=1))])
    tasks = [*canvas.tasks, *canvas.options["link_error"]]
    assert [task["task"] for task in tasks] == [dispatch.PROCESS, dispatch.THUMBNAILS, dispatch.SCHEDULE_FLIPS,
                                                dispatch.FAIL]
    assert canvas.tasks[-1]["kwargs"] == {"token": "t", "flips": [[[1, 2], soon.isoformat()],
                                                                  [[3], (soon + timedelta(seconds=1)).isoformat()]]}
    assert canvas.options["link_error"][0]["kwargs"] == {"article_ids": [1, 2, 3], "token": "t"}
    assert all(task.options.get("ignore_result") is True for task in tasks)


def test_a_chunk_with_one_due_time_flips_in_its_own_chain_as_before():
    soon = timezone.now() + timedelta(seconds=30)
    canvas = dispatch.publishing_chain(token="t", article_ids=[1, 2], flips=[([1, 2], soon)])
    assert [task["task"] for task in canvas.tasks] == [dispatch.PROCESS, dispatch.THUMBNAILS, dispatch.MAKE_LIVE,
                                                       dispatch.NOTIFY]
    assert canvas.tasks[2].options["eta"] == soon


def test_a_flip_waits_for_its_due_time_and_fails_only_its_own_group():
    soon = timezone.now() + timedelta(seconds=30)
    canvas = dispatch.flip_chain(token="t", article_ids=[3, 4], go_live_at=soon)
    tasks = [*canvas.tasks, *canvas.options["link_error"]]
    assert [task["task"] for task in tasks] == [dispatch.MAKE_LIVE, dispatch.NOTIFY, dispatch.FAIL]
    assert canvas.tasks[0].args == ([3, 4],)
    assert canvas.tasks[0].options["eta"] == soon
    assert canvas.options["link_error"][0]["kwargs"] == {"article_ids": [3, 4], "token": "t"}
    assert all(task.options.get("ignore_result") is True for task in tasks)
    past = dispatch.flip_chain(token="t", article_ids=[5], go_live_at=timezone.now() - timedelta(seconds=1))
    assert "eta" not in past.tasks[0].options
