"""The worker's consumer: Celery's, plus one thing for broker outages.

When the broker connection breaks, Celery drops the messages the worker holds for their ETA
(the make-live steps of look-ahead dispatch): their delivery cannot be acknowledged on a new
connection, and a Redis restarted without persistence has lost its copies. Left alone, their
claims wait for the lease to run out (PUBLISHER_LEASE_SECONDS, five minutes by default). This
consumer ends those claims' leases at once, so the first scan after the outage re-dispatches
them (the sweeper: a new claim token, attempts + 1, the same ETA): late by about the outage.

Usage: CELERY_WORKER_CONSUMER = "publisher.worker:Consumer" (settings).
"""

import logging

from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.request import Request
from django.db import DatabaseError, InterfaceError, close_old_connections

from . import releases, services

logger = logging.getLogger(__name__)


class Consumer(CeleryConsumer):
    def on_connection_error_after_connected(self, exc):
        tokens = self._claims_held_for_their_eta()  # before Celery clears the timer
        super().on_connection_error_after_connected(exc)
        if not tokens:
            return
        try:
            close_old_connections()
            released = services.articles_release_dropped_claims(tokens=tokens)
            releases.releases_release_dropped_claims(tokens=tokens)
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("worker: could not release %d dropped claims (%s); their leases run out instead",
                           len(tokens), exc)
            return
        logger.warning("worker: the broker connection broke while holding %d claims' messages for their ETA; "
                       "%d articles are left to the next scan's sweeper", len(tokens), released)

    def _claims_held_for_their_eta(self) -> list[str]:
        tokens = set()
        for event in self.timer.queue if self.timer else ():
            request = event.entry.args[0] if event.entry.args else None
            if not isinstance(request, Request) or not request.task_name.startswith("publisher.tasks."):
                continue
            token = (request.kwargs or {}).get("token")
            if isinstance(token, str):
                tokens.add(token)
        return sorted(tokens)
