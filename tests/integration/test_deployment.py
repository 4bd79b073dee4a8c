"""deploy/Procfile is what operators run: a worker started from its `worker-media` line, beside
a worker for the other queues, picks up the thumbnails waiting in `media` with no other change."""

import io
from pathlib import Path

import pytest
from PIL import Image

from publisher import services
from publisher.models import Article, ArticleStatus
from scheduling.broker import queue_depths
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PROCFILE = Path(__file__).resolve().parents[2] / "deploy" / "Procfile"


def procfile() -> dict[str, str]:
    lines = [line.split(":", 1) for line in PROCFILE.read_text().splitlines() if line and not line.startswith("#")]
    return {name.strip(): command.strip() for name, command in lines}


def test_procfile_declares_web_a_worker_per_queue_and_one_beat():
    processes = procfile()
    assert processes["web"].startswith("gunicorn settings.wsgi ")
    assert processes["beat"].startswith("celery -A settings beat")
    queues = [q for name, line in processes.items() if name.startswith("worker-")
              for q in line.split("-Q ", 1)[1].split()[0].split(",")]
    assert sorted(queues) == ["media", "notify", "publish", "scan", "webhooks"]  # each queue served, once


def test_a_worker_started_from_the_procfile_line_picks_up_its_queue(processes, article_factory, tmp_path, settings):
    media = tmp_path / "media"
    (media / "articles").mkdir(parents=True)
    settings.MEDIA_ROOT = str(media)
    processes.env["MEDIA_ROOT"] = str(media)
    out = io.BytesIO()
    Image.new("RGB", (800, 600), (20, 90, 200)).save(out, format="PNG")
    (media / "articles" / "cover.png").write_bytes(out.getvalue())

    processes.worker("worker", queues="scan,publish,notify")
    article = article_factory(title="With a cover", image="articles/cover.png")
    services.articles_publish_now(article_ids=[article.pk], actor=None)
    # Processed by the first worker; its thumbnail step waits in `media`, which nobody serves yet.
    wait_for(lambda: queue_depths()["media"] == 1, timeout=30, message="the thumbnail step waiting in media")
    assert Article.objects.get(pk=article.pk).status == ArticleStatus.PUBLISHING

    processes.shell("media", procfile()["worker-media"], "ready.", MEDIA_CONCURRENCY="1")
    wait_for(lambda: Article.objects.get(pk=article.pk).status == ArticleStatus.PUBLISHED, timeout=60,
             message="the article published once the media worker is up")
    article.refresh_from_db()
    assert article.thumbnail.name == f"thumbnails/article-{article.pk}.jpg"
    assert "publisher.tasks.generate_thumbnails[" in processes.log("media")  # received (not the banner)
    assert "publisher.tasks.generate_thumbnails[" not in processes.log("worker")
