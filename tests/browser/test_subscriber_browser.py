"""A reader subscribes in a real browser: the small form on the index, the confirmation link
from the mail, the next article from a real worker, the unsubscribe link in that mail, and
nothing for the article after. Screenshots go to test-artifacts/browser/."""

import pytest

from publisher import services
from publisher.models import Article, Subscriber
from publisher.subscriptions import unsubscribe_url
from tests.support.mail import links, read_messages, subject, unsubscribe_link
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

VIEWPORT = {"width": 1280, "height": 900}
READER = "Reader@Example.org"
CONTROL = "control@example.org"  # confirmed all along: shows when an article's mail went out


def mail_to(mailbox, address: str) -> list:
    return [message for message in read_messages(mailbox) if message["To"] == address]


def publish_now(title: str) -> None:
    article = Article.objects.create(title=title, body=f"{title}, in full.")
    services.article_publish_now(article_id=article.pk)


def test_a_reader_subscribes_confirms_gets_one_article_and_leaves(browser, live_server, processes, mailbox,
                                                                  screenshot, settings):
    settings.PUBLISHER_SITE_NAME = "Harbour Times"
    settings.PUBLISHER_SITE_URL = live_server.url
    Subscriber.objects.create(email=CONTROL)
    processes.worker(PUBLISHER_SITE_URL=live_server.url, PUBLISHER_SITE_NAME="Harbour Times")

    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{live_server.url}/")
    page.fill("#subscribe-box-email", READER)
    page.click(".subscribe-box button")
    assert page.input_value("#id_email") == READER  # the subscribe page, prefilled
    screenshot(page, "form")
    page.click("form.subscribe button[type=submit]")
    assert page.locator("h1").inner_text() == "Check your inbox"
    screenshot(page, "sent")

    reader = "Reader@example.org"  # the domain lower-cased on the way in
    wait_for(lambda: mail_to(mailbox, reader), timeout=30, message="the confirmation mail from the worker")
    (confirmation,) = mail_to(mailbox, reader)
    assert subject(confirmation) == "Confirm your subscription to Harbour Times"
    (link,) = [url for url in links(confirmation) if "/subscribe/confirm/" in url]
    page.goto(link)
    assert not Subscriber.objects.get(email=reader).receiving  # opening the link alone changes nothing
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "You are subscribed"
    screenshot(page, "confirmed")
    assert Subscriber.objects.get(email=reader).receiving

    publish_now("Harbour bridge reopens")
    wait_for(lambda: len(mail_to(mailbox, reader)) == 2, timeout=30, message="the article's mail to the reader")
    (article_mail,) = [m for m in mail_to(mailbox, reader) if subject(m) == "New: Harbour bridge reopens"]

    # The reader leaves by the link in the article's own mail (List-Unsubscribe), nothing else.
    leave = unsubscribe_link(article_mail)
    assert leave == unsubscribe_url(Subscriber.objects.get(email=reader).pk)
    page.goto(leave)
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "You are unsubscribed"
    screenshot(page, "unsubscribed")

    publish_now("Ferry timetable changes")
    wait_for(lambda: any(subject(m) == "New: Ferry timetable changes" for m in mail_to(mailbox, CONTROL)),
             timeout=30, message="the next article's mail to the control subscriber")
    assert sorted(subject(m) for m in mail_to(mailbox, reader)) == [
        "Confirm your subscription to Harbour Times", "New: Harbour bridge reopens"]
