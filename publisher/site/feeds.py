"""Atom and RSS 2.0 of the latest visible articles, full content (django.contrib.syndication)."""

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.urls import reverse
from django.utils.html import escape
from django.utils.feedgenerator import Atom1Feed, Rss201rev2Feed

from publisher.site.links import absolute_url
from publisher.site.selectors import articles_visible

FEED_LENGTH = 50


class RssArticlesFeed(Feed):
    feed_type = Rss201rev2Feed
    description = "Articles as they are published."

    def __call__(self, request, *args, **kwargs):
        self.request = request
        return super().__call__(request, *args, **kwargs)

    def title(self):
        return settings.PUBLISHER_SITE_NAME

    def link(self):
        return absolute_url(self.request, reverse("site:index"))

    def feed_url(self):
        return absolute_url(self.request, self.request.path)

    def items(self):
        return articles_visible()[:FEED_LENGTH]

    def item_title(self, item):
        return item.title

    def item_description(self, item):
        # Full content: the body the pipeline rendered and sanitized (nh3) when it processed it.
        return item.body_html

    def item_link(self, item):
        return absolute_url(self.request, item.get_absolute_url())

    def item_guid(self, item):
        return f"{absolute_url(self.request, reverse('site:index'))}#article-{item.pk}"

    item_guid_is_permalink = False

    def item_pubdate(self, item):
        return item.published_at

    def item_updateddate(self, item):
        return max(item.updated_at, item.published_at)


class AtomWithContent(Atom1Feed):
    """Atom puts the full body in <content type="html"> (Django's Atom1Feed writes only <summary>)."""

    def add_item_elements(self, handler, item):
        super().add_item_elements(handler, item)
        handler.addQuickElement("content", item["content"], {"type": "html"})


class AtomArticlesFeed(RssArticlesFeed):
    feed_type = AtomWithContent
    subtitle = RssArticlesFeed.description

    def item_description(self, item):
        # <summary type="html">; the full body goes in <content>. The excerpt is plain text
        # (code in the body may put "<script>" in it), so it is escaped to be HTML.
        return escape(item.excerpt)

    def item_extra_kwargs(self, item):
        return {"content": item.body_html}


# A Feed keeps the request on itself for link building: one instance per request, never shared.
def atom_feed(request):
    return AtomArticlesFeed()(request)


def rss_feed(request):
    return RssArticlesFeed()(request)
