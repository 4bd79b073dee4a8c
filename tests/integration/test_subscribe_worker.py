"""Subscribing with a real worker: the form enqueues, a worker on the notify queue sends the
confirmation mail (Django's file backend), and its link confirms. A confirmed address asking
again gets the same answer and no mail."""

import time

import pytest
from django.test import Client

from publisher.models import Subscriber
from tests.support.mail import links, read_messages, subject
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SITE = "http://news.example"


def test_a_subscription_is_confirmed_by_the_mail_a_worker_sends(processes, mailbox, settings, capsys):
    settings.PUBLISHER_SITE_URL = SITE
    settings.PUBLISHER_SITE_NAME = "Harbour Times"
    Subscriber.objects.create(email="known@example.com")  # confirmed: must get nothing
    processes.worker(concurrency=1, queues="notify", PUBLISHER_SITE_NAME="Harbour Times")
    client = Client()

    started = time.monotonic()
    for address in ("known@example.com", "Reader@Example.com"):  # one worker, one at a time, in order
        response = client.post("/subscribe/", {"email": address, "website": ""})
        assert (response.status_code, response["Location"]) == (302, "/subscribe/sent/")
    wait_for(lambda: read_messages(mailbox), timeout=30, message="the confirmation mail from the worker")
    elapsed = time.monotonic() - started

    (message,) = read_messages(mailbox)  # the known address's task ran first and sent nothing
    assert (message["To"], subject(message)) == ("Reader@example.com", "Confirm your subscription to Harbour Times")
    (link,) = [url for url in links(message) if "/subscribe/confirm/" in url]
    assert link.startswith(f"{SITE}/subscribe/confirm/")
    assert Subscriber.objects.get(email="Reader@example.com").confirmation_sent_at is not None
    done = client.post(link.removeprefix(SITE))
    assert done.status_code == 200 and b"You are subscribed" in done.content
    assert sorted(Subscriber.objects.receiving().values_list("email", flat=True)) == [
        "Reader@example.com", "known@example.com"]
    with capsys.disabled():
        print(f"\nsubscribe -> confirmation mail from a worker: {elapsed:.2f} s")
