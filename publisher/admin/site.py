"""The admin site: one instance, configured here, instead of settings changed on Django's
global `admin.site` at import. settings/urls.py serves it; scheduling's admin registers on it."""

from django.contrib import admin


class PublisherAdminSite(admin.AdminSite):
    site_header = "Publisher"
    site_title = "Publisher admin"
    index_title = "Newsroom"
    # The first template that exists. An app above publisher (scheduling) adds the pipeline
    # status panel by providing admin/dashboard_index.html; publisher alone shows its own.
    # (An app's admin/index.html cannot override Django's: django.contrib.admin is listed first.)
    index_template = ["admin/dashboard_index.html", "publisher/admin/index.html"]
    # The article list has many columns; the app sidebar would push them off screen.
    enable_nav_sidebar = False


# Named "admin" so every URL keeps its name (admin:index, admin:publisher_article_change, ...).
site = PublisherAdminSite(name="admin")
