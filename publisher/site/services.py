"""Slugs: made once from the title, unique, and kept answering (301) after the article went live."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from publisher.models import Article, ArticleSlugRedirect
from publisher.site import cache

SLUG_MAX_LENGTH = 100  # of the 120 the field holds: room for a uniqueness suffix
FALLBACK_SLUG = "article"


def _taken(slug: str, *, article_id: int | None) -> bool:
    return (Article.objects.filter(slug=slug).exclude(pk=article_id).exists()
            or ArticleSlugRedirect.objects.filter(old_slug=slug).exclude(article_id=article_id).exists())


def slug_candidates(title: str):
    """`base`, `base-2`, `base-3`, ... for a title (Unicode kept: "Ça va" -> "ça-va")."""
    base = slugify(title, allow_unicode=True)[:SLUG_MAX_LENGTH].strip("-_") or FALLBACK_SLUG
    yield base
    suffix = 2
    while True:
        yield f"{base}-{suffix}"
        suffix += 1


def article_ensure_slug(*, article_id: int) -> str | None:
    """Give the article a slug from its title if it has none; an existing slug is never changed.
    Unique by the database's constraint: a concurrent taker of the same slug makes us take the next."""
    article = Article.objects.filter(pk=article_id).only("pk", "title", "slug").first()
    if article is None or article.slug:
        return article.slug if article else None
    for candidate in slug_candidates(article.title):
        if _taken(candidate, article_id=article_id):
            continue
        try:
            with transaction.atomic():
                updated = Article.objects.filter(pk=article_id, slug__isnull=True).update(slug=candidate)
        except IntegrityError:  # another article took it between our check and our write
            continue
        if not updated:  # someone gave it a slug meanwhile: theirs stands
            return Article.objects.filter(pk=article_id).values_list("slug", flat=True).first()
        return candidate
    return None  # unreachable: the candidates never run out


def articles_ensure_slugs(*, article_ids: list[int]) -> int:
    """article_ensure_slug for those of these articles that have none (articles published
    without being scheduled first, e.g. imported ones)."""
    missing = list(Article.objects.filter(pk__in=article_ids, slug__isnull=True).values_list("id", flat=True))
    for article_id in missing:
        article_ensure_slug(article_id=article_id)
    return len(missing)


def validate_slug(*, slug: str, article_id: int | None) -> str:
    """The slug as it will be stored; ValidationError (on `slug`) when it cannot be used."""
    cleaned = slugify(slug or "", allow_unicode=True)
    if not cleaned:
        raise ValidationError({"slug": "A slug needs at least one letter or digit."})
    if cleaned != slug:
        raise ValidationError({"slug": f"Use letters, digits, hyphens and underscores only, e.g. “{cleaned}”."})
    if len(cleaned) > Article._meta.get_field("slug").max_length:
        raise ValidationError({"slug": "That slug is too long."})
    if _taken(cleaned, article_id=article_id):
        raise ValidationError({"slug": f"“{cleaned}” is already the address of another article."})
    return cleaned


def article_set_slug(*, article_id: int, slug: str) -> Article:
    """An editor's new slug. Before the article first went live it simply replaces the old one;
    after, the old slug keeps answering with a 301 to the new URL (readers' links and search
    engines keep working). Taking back one of the article's own old slugs drops that redirect."""
    slug = validate_slug(slug=slug, article_id=article_id)
    with transaction.atomic():
        article = Article.objects.select_for_update().get(pk=article_id)
        old = article.slug
        if old == slug:
            return article
        ArticleSlugRedirect.objects.filter(old_slug=slug, article_id=article_id).delete()
        if old and article.published_at is not None:
            ArticleSlugRedirect.objects.create(old_slug=old, article_id=article_id)
        # The slug is part of what the pre-flight checked: ask for a new check.
        Article.objects.filter(pk=article_id).update(slug=slug, preflight_checked_at=None, preflight_queued_until=None)
        article.slug = slug
        cache.site_changed()
    return article
