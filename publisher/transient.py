"""Errors a retry can fix: the database or the broker unreachable. A task that meets one retries
(publisher.tasks); anything else raised while handling one article is that article's own
problem (it fails, or is marked at risk, alone)."""

from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

TRANSIENT_ERRORS = (OperationalError, InterfaceError, BrokerError, ConnectionError, TimeoutError)
