from datetime import timedelta

import pytest
from django.core.cache import cache

from publisher.models import Article, ArticleStatus
from publisher.rendering import render_body
from publisher.site.selectors import database_now


@pytest.fixture(autouse=True)
def empty_site_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def live_article(db):
    """An article as the pipeline leaves it once live (rendered body, published_at by the DB clock)."""
    def make(title="A live article", body="Some *body* text.", ago=timedelta(minutes=5), slug=None, **fields):
        html, excerpt, words = render_body(body)
        went_live = database_now() - ago
        fields.setdefault("status", ArticleStatus.PUBLISHED)
        fields.setdefault("publish_at", went_live)
        fields.setdefault("published_at", went_live)
        return Article.objects.create(title=title, body=body, body_html=html, excerpt=excerpt, word_count=words,
                                      slug=slug or title.lower().replace(" ", "-"), **fields)
    return make
