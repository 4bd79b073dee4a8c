from django.conf import settings
from django.contrib.sitemaps import Sitemap

from publisher.site.selectors import articles_visible


class ArticleSitemap(Sitemap):
    limit = 5000

    def items(self):
        return articles_visible().only("id", "slug", "updated_at", "published_at")

    def lastmod(self, item):
        return max(item.updated_at, item.published_at)

    def get_domain(self, site=None):
        if settings.PUBLISHER_SITE_URL:
            return settings.PUBLISHER_SITE_URL.split("://", 1)[1]
        return super().get_domain(site)

    def get_protocol(self, protocol=None):
        if settings.PUBLISHER_SITE_URL:
            return settings.PUBLISHER_SITE_URL.split("://", 1)[0]
        return super().get_protocol(protocol)
