"""Prometheus metrics, computed from the database and the broker at scrape time.

Nothing is counted in process memory, so any number of web processes, workers and hosts give
the same answer, and a restart loses nothing: the article and notification rows are the counters.
A fixed handful of queries per scrape; the lateness histogram reads only the recent window
through the (status, updated_at) index.

Lives in `scheduling` because it reads both floors (heartbeats here, articles in publisher).
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily

from publisher import selectors as publisher_selectors
from publisher.models import Article, ArticleEvent, ArticleEventAction, ArticleStatus

from . import broker, health

# Seconds late an article went live (published_at - publish_at).
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class PublisherCollector:
    def collect(self):
        now = timezone.now()
        yield from self._articles()
        yield self._lateness(now)
        notifications = GaugeMetricFamily("publisher_notifications", "Notifications by status.", labels=["status"])
        for status, count in publisher_selectors.notification_status_counts().items():
            notifications.add_metric([status], count)
        yield notifications
        depth = GaugeMetricFamily("publisher_queue_depth", "Messages waiting in each broker queue "
                                  "(-1: the broker does not answer).", labels=["queue"])
        for queue, count in broker.queue_depths().items():
            depth.add_metric([queue], -1 if count is None else count)
        yield depth
        ages = GaugeMetricFamily("publisher_heartbeat_age_seconds", "Seconds since each heartbeat (scan, beat, "
                                 "the other periodic jobs) was written, by the database's clock; -1: never.",
                                 labels=["name"])
        fresh = GaugeMetricFamily("publisher_heartbeat_fresh", "1 while the heartbeat is fresh by the rule "
                                  "/health/ applies (six intervals, at least 60 s), else 0.", labels=["name"])
        for name, pulse in health.pulses().items():
            ages.add_metric([name], -1 if pulse.age_seconds is None else pulse.age_seconds)
            fresh.add_metric([name], 1 if pulse.fresh else 0)
        yield ages
        yield fresh

    def _articles(self):
        by_status = GaugeMetricFamily("publisher_articles", "Articles by status.", labels=["status"])
        for status, count in publisher_selectors.article_status_counts().items():
            by_status.add_metric([status], count)
        yield by_status
        totals = Article.objects.aggregate(
            published=Count("id", filter=Q(published_at__isnull=False)),
            failed=Count("id", filter=Q(status=ArticleStatus.FAILED)),
            reclaims=Sum(F("attempts") - 1, filter=Q(attempts__gt=1)),
        )
        yield CounterMetricFamily("publisher_articles_published", "Articles that went live (ever).",
                                  value=totals["published"])
        yield GaugeMetricFamily("publisher_articles_failed", "Articles failed now (retrying one lowers it).",
                                value=totals["failed"])
        retries = CounterMetricFamily("publisher_retries", "Retries: claims re-dispatched by the sweeper "
                                      "(kind=sweeper) and failed articles retried by a person (kind=manual).",
                                      labels=["kind"])
        retries.add_metric(["sweeper"], totals["reclaims"] or 0)
        retries.add_metric(["manual"], ArticleEvent.objects.filter(action=ArticleEventAction.RETRIED).count())
        yield retries

    def _lateness(self, now):
        window = settings.PUBLISHER_METRICS_LATENESS_WINDOW
        lateness = ExpressionWrapper(F("published_at") - F("publish_at"), output_field=DurationField())
        since = now - timedelta(seconds=window)
        # updated_at >= since lets the (status, updated_at) index find the rows (make-live stamps it).
        recent = (Article.objects.filter(status=ArticleStatus.PUBLISHED, updated_at__gte=since, published_at__gte=since)
                  .annotate(lateness=lateness))
        counts = recent.aggregate(**{f"le_{i}": Count("id", filter=Q(lateness__lte=timedelta(seconds=bound)))
                                     for i, bound in enumerate(LATENESS_BUCKETS)},
                                  total=Count("id"), sum=Sum("lateness"))
        buckets = [(f"{bound:g}", counts[f"le_{i}"]) for i, bound in enumerate(LATENESS_BUCKETS)]
        buckets.append(("+Inf", counts["total"]))
        return GaugeHistogramMetricFamily(
            "publisher_lateness_seconds", f"How late articles went live (published_at - publish_at), over those "
            f"published in the last {window} s.", buckets=buckets,
            gsum_value=counts["sum"].total_seconds() if counts["sum"] else 0.0)


def metrics_text() -> bytes:
    """The Prometheus text exposition of PublisherCollector, fresh from the database."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PublisherCollector())
    return generate_latest(registry)
