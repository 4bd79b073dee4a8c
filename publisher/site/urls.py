from django.contrib.sitemaps.views import sitemap
from django.urls import path

from publisher.site import feeds, views
from publisher.site.cache import schedule_cached
from publisher.site.selectors import site_freshness
from publisher.site.sitemaps import ArticleSitemap

app_name = "site"

urlpatterns = [
    path("", views.index, name="index"),
    path("articles/<str:slug>/", views.article, name="article"),
    path("feeds/atom/", schedule_cached(site_freshness)(feeds.atom_feed), name="atom"),
    path("feeds/rss/", schedule_cached(site_freshness)(feeds.rss_feed), name="rss"),
    path("sitemap.xml", schedule_cached(site_freshness)(sitemap), {"sitemaps": {"articles": ArticleSitemap}},
         name="sitemap"),
    path("preview/<str:token>/", views.preview, name="preview"),
    path("robots.txt", views.robots_txt, name="robots"),
    path("subscribe/", views.subscribe, name="subscribe"),
    path("subscribe/sent/", views.subscribe_sent, name="subscribe_sent"),
    path("subscribe/confirm/<str:token>/", views.confirm, name="confirm"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
