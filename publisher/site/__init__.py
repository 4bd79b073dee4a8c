"""The public site: index, article pages, feeds, sitemap and robots.txt, all under one
visibility rule (Article.objects.visible(), by the database clock) and one caching rule
(never cached past the next scheduled change that affects the response)."""
