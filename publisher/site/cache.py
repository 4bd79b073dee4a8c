"""Server-side cache and HTTP caching headers for the public pages.

Two rules keep a cached page from outliving the schedule:
- every response's max-age (and its server-side lifetime) ends at or before the next scheduled
  change that affects it (publisher.site.selectors), capped by PUBLISHER_PUBLIC_MAX_AGE;
- changes made outside the schedule (go-live, edits, take-down, slug changes) bump a generation
  number that is part of every cache key, so the old entries are never read again.
With a per-process cache (LocMem) a bump made in a worker does not reach the web process; the
first rule alone still holds: a publish time that has come and not yet gone live gives max-age 0.
"""

import hashlib
import math
import time
from functools import wraps

from django.core.cache import cache as default_cache
from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_cache_control
from django.utils.http import http_date

GENERATION_KEY = "publisher:site:generation"


def generation() -> int:
    return default_cache.get(GENERATION_KEY) or 0


def bump_generation() -> None:
    try:
        default_cache.incr(GENERATION_KEY)
    except ValueError:  # not there yet (or evicted): any new number will do
        default_cache.set(GENERATION_KEY, int(time.time() * 1000), timeout=None)


def site_changed() -> None:
    """Forget every cached public page once the current transaction commits."""
    transaction.on_commit(bump_generation, robust=True)


def _key(request) -> str:
    digest = hashlib.sha256(request.get_full_path().encode()).hexdigest()[:32]
    return f"publisher:site:{generation()}:{digest}"


def schedule_cached(freshness):
    """Cache a public view's 200 responses until the next scheduled change and answer
    conditional GETs with 304. `freshness()` gives (max-age, Last-Modified) for the response;
    a view may set `response.freshness` itself (an article page: its own unpublish time)."""
    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method not in ("GET", "HEAD"):
                return view(request, *args, **kwargs)
            key = _key(request)
            entry = default_cache.get(key)
            if entry is None:
                # Before the view reads anything: a page rendered just before a go-live must not
                # be cached until the change after it (freshness read after the go-live would be).
                scheduled = freshness()
                # The site's own zone, whoever asks: a signed-in editor's zone (the admin's
                # middleware) must not end up in a page cached for every reader.
                with timezone.override(None):
                    response = view(request, *args, **kwargs)
                    if hasattr(response, "render"):
                        response.render()
                max_age, last_modified = getattr(response, "freshness", None) or scheduled
                if response.status_code == 200 and max_age > 0 and not response.streaming:
                    entry = {"content": response.content, "content_type": response["Content-Type"],
                             "last_modified": last_modified, "expires": time.time() + max_age}
                    default_cache.set(key, entry, timeout=max_age)
            else:
                response = HttpResponse(entry["content"], content_type=entry["content_type"])
                last_modified = entry["last_modified"]
                max_age = max(0, math.floor(entry["expires"] - time.time()))
            patch_cache_control(response, public=True, max_age=max_age)
            if response.status_code != 200:
                return response
            etag = '"%s"' % hashlib.md5(response.content, usedforsecurity=False).hexdigest()
            response.headers["ETag"] = etag
            timestamp = int(last_modified.timestamp()) if last_modified else None
            if timestamp is not None:
                response.headers["Last-Modified"] = http_date(timestamp)
            return get_conditional_response(request, etag=etag, last_modified=timestamp, response=response)
        return wrapped
    return decorator
