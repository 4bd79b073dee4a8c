"""A subscriber's mail (publisher/emails.py): both parts, every header, each subscriber's own
unsubscribe URL in the header and both parts, hostile titles and bodies, all four backends,
the preview and the test mail."""

import email
import email.policy
import io
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail import get_connection
from django.utils import timezone

from publisher import emails
from publisher.models import ArticleStatus
from publisher.subscriptions import unsubscribe_url
from tests.factories import make_article, make_subscriber
from tests.support.mail import ARTICLE_MAIL_HEADERS, article_mail, read_messages, split_messages

pytestmark = pytest.mark.django_db

SITE = "https://news.example.com"


@pytest.fixture(autouse=True)
def mail_settings(settings):
    settings.PUBLISHER_SITE_URL = SITE
    settings.PUBLISHER_SITE_NAME = "The Daily Example"
    settings.DEFAULT_FROM_EMAIL = "The Daily Example <news@example.com>"
    settings.PUBLISHER_EMAIL_REPLY_TO = ""
    settings.PUBLISHER_EMAIL_CONTENT = "excerpt"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return settings


BODY = """# Heading one

A first paragraph with [a link](https://example.org/page) and a [site link](/about/).

## Heading two

- apples
- pears

1. first
2. second

> A quote.

<script>alert(1)</script><img src="x" onerror="alert(2)">
"""


def published(**fields):
    now = timezone.now()
    fields.setdefault("title", "Cats & <Dogs>")
    fields.setdefault("slug", "cats-and-dogs")
    fields.setdefault("body", BODY)
    return make_article(status=ArticleStatus.PUBLISHED, publish_at=now - timedelta(minutes=1), published_at=now,
                        **fields)


def send(prepared, recipients, *, backend: str, **options) -> None:
    connection = get_connection(backend, **options)
    connection.send_messages([prepared.message_for(pk, address, connection=connection) for pk, address in recipients])


def file_mails(settings, tmp_path, article, recipients):
    settings.EMAIL_FILE_PATH = str(tmp_path)
    send(emails.prepare_article_mail(article), recipients, backend="django.core.mail.backends.filebased.EmailBackend",
         file_path=str(tmp_path))
    return [article_mail(message) for message in read_messages(tmp_path)]


def raw_lines(tmp_path) -> list[bytes]:
    return [line for path in tmp_path.glob("*.log") for line in path.read_bytes().split(b"\n")]


def test_each_of_three_subscribers_gets_their_own_unsubscribe_url_in_the_header_and_both_parts(settings, tmp_path):
    settings.PUBLISHER_EMAIL_REPLY_TO = "desk@example.com"
    article = published()
    article.thumbnail.name = "thumbnails/cats.jpg"
    article.image_alt = "A cat & a dog"
    article.excerpt = "All about pets."
    subscribers = [make_subscriber(address) for address in ("a@example.com", "b@example.com", "c@example.com")]

    mails = file_mails(settings, tmp_path, article, [(s.pk, s.email) for s in subscribers])

    assert [m.to for m in mails] == ["a@example.com", "b@example.com", "c@example.com"]
    for subscriber, message in zip(subscribers, mails):
        url = unsubscribe_url(subscriber.pk)
        assert url.startswith(f"{SITE}/unsubscribe/")
        assert (message.unsubscribe_header, message.text_unsubscribe, message.html_unsubscribe) == (url, url, url)
        assert sorted(message.headers) == sorted([*ARTICLE_MAIL_HEADERS, "Reply-To"])
        assert message.headers["From"] == "The Daily Example <news@example.com>"
        assert message.headers["Reply-To"] == "desk@example.com"
        assert message.headers["Subject"] == "New: Cats & <Dogs>"
        assert message.headers["List-Id"] == "The Daily Example <articles.news.example.com>"
        assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.transfer_encodings == ["7bit", "7bit"]
        assert message.text == (
            "Cats & <Dogs>\n=============\n\nAll about pets.\n\n"
            f"Read the article: {SITE}/articles/cats-and-dogs/\n\n--\n"
            "You get this e-mail because you subscribed to The Daily Example.\n"
            f"Unsubscribe with one click:\n{url}\n")
        assert "<h1 style=\"font-size:26px;line-height:1.25;margin:0 0 16px;\">Cats &amp; &lt;Dogs&gt;</h1>" in message.html
        assert f'<img src="{SITE}/media/thumbnails/cats.jpg" alt="A cat &amp; a dog"' in message.html
        assert f'<a href="{SITE}/articles/cats-and-dogs/" ' in message.html and ">Read the article</a>" in message.html
        assert "<p>\nAll about pets.\n</p>" in message.html
        assert "Heading one" not in message.html  # the excerpt, not the body
    assert len({m.headers["Message-ID"] for m in mails}) == 3


def test_the_full_body_keeps_its_structure_in_text_and_its_sanitized_html(settings, tmp_path):
    settings.PUBLISHER_EMAIL_CONTENT = "full"
    article = published(body_html="")  # rendered from the Markdown, sanitized as on the site
    subscriber = make_subscriber("a@example.com")

    message, = file_mails(settings, tmp_path, article, [(subscriber.pk, subscriber.email)])

    body = message.text.split("=============\n\n", 1)[1].split("\n\nRead the article:")[0]
    assert body == (
        "Heading one\n===========\n\n"
        "A first paragraph with a link (https://example.org/page) and a site link\n"
        f"({SITE}/about/).\n\n"
        "Heading two\n-----------\n\n"
        "- apples\n- pears\n\n"
        "1. first\n2. second\n\n"
        "> A quote.")
    assert f'<a href="{SITE}/about/" rel="noopener noreferrer">site link</a>' in message.html
    assert "<script" not in message.html and "onerror" not in message.html and "alert" not in message.html
    assert "<h2>Heading two</h2>" in message.html


def test_the_content_setting_is_validated(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from settings.env import env_choice

    monkeypatch.setenv("PUBLISHER_EMAIL_CONTENT", "summary")
    with pytest.raises(ImproperlyConfigured, match="PUBLISHER_EMAIL_CONTENT must be one of excerpt, full, got 'summary'"):
        env_choice("PUBLISHER_EMAIL_CONTENT", "excerpt", ("excerpt", "full"))


LONG_WORD = "x" * 5000
HOSTILE = [
    # Looks like the placeholders: substitution is positional, never a search of the content.
    ("Win <unsubscribe-0123456789abcdef0123456789abcdef.invalid@invalid> unsubscribe-",
     "Message-ID: <unsubscribe-0123.invalid@invalid>\nTo: evil@example.com", "excerpt"),
    ("Hi\r\nBcc: evil@example.com\u2028Reply-To: evil@example.com\x85To: evil@example.com",
     "Body\r\n\r\nBcc: evil@example.com\u2028", "full"),
    ("Grüße\x0bBcc: evil@example.com\x1cTo: evil@example.com", ("Sehr lange Zeile " * 400) + LONG_WORD, "full"),
    ("Long", "```\n" + ("a" * 3000) + "\n```\n\n" + ("é" * 3000) + f"\n\n[{LONG_WORD}](/x/{LONG_WORD})", "full"),
]


@pytest.mark.parametrize("title, body, content", HOSTILE, ids=["placeholders", "line-breaks", "long-lines", "pre"])
def test_hostile_titles_and_bodies_cannot_add_a_header_move_an_address_or_change_the_encoding(
        settings, tmp_path, title, body, content):
    settings.PUBLISHER_EMAIL_CONTENT = content
    article = published(title=title, body=body, excerpt=body[:280])
    subscribers = [make_subscriber(address) for address in ("a@example.com", "b@example.com", "c@example.com")]

    mails = file_mails(settings, tmp_path, article, [(s.pk, s.email) for s in subscribers])

    assert [m.to for m in mails] == ["a@example.com", "b@example.com", "c@example.com"]
    for subscriber, message in zip(subscribers, mails):
        url = unsubscribe_url(subscriber.pk)
        assert (message.unsubscribe_header, message.text_unsubscribe, message.html_unsubscribe) == (url, url, url)
        assert sorted(message.headers) == sorted(ARTICLE_MAIL_HEADERS)
        assert "\n" not in message.subject and "evil" not in message.headers["To"]
        assert set(message.transfer_encodings) <= {"7bit", "8bit"}
        assert message.text.count(url) == 1 and message.html.count(url) == 1
    assert max(len(line) for line in raw_lines(tmp_path)) <= 998


def test_the_html_lines_break_without_changing_what_a_browser_shows(settings, tmp_path):
    settings.PUBLISHER_EMAIL_CONTENT = "full"
    article = published(body="```\n" + "a" * 3000 + "\n```\n\n" + "&" * 2000 + f"\n\n[x](/{'p' * 1500})")
    subscriber = make_subscriber("a@example.com")

    message, = file_mails(settings, tmp_path, article, [(subscriber.pk, subscriber.email)])

    invisible = message.html.replace("<span\n></span>", "")
    assert "<pre><code>" + "a" * 3000 + "\n</code></pre>" in invisible
    assert "&amp;" * 2000 in invisible
    assert f'href="{SITE}/{"p" * 1500}"' in invisible.replace("\n", "")


@pytest.mark.parametrize("address, to", [
    ("reader@exämple.com", "reader@xn--exmple-cua.com"),
    ("jörg@example.com", "=?utf-8?b?asO2cmc=?=@example.com"),
])
def test_non_ascii_addresses_are_encoded_and_keep_their_own_link(settings, tmp_path, address, to):
    article = published()
    subscriber = make_subscriber(address)
    settings.EMAIL_FILE_PATH = str(tmp_path)

    send(emails.prepare_article_mail(article), [(subscriber.pk, address)],
         backend="django.core.mail.backends.filebased.EmailBackend", file_path=str(tmp_path))

    raw, = [line for line in raw_lines(tmp_path) if line.startswith(b"To: ")]
    assert raw == b"To: " + to.encode()
    message = article_mail(read_messages(tmp_path)[0])
    url = unsubscribe_url(subscriber.pk)
    assert (message.unsubscribe_header, message.text_unsubscribe, message.html_unsubscribe) == (url, url, url)


def test_an_unusable_unsubscribe_url_is_refused_before_anything_is_built():
    prepared = emails.prepare_article_mail(published())
    for url in ("https://x.example/a b", "https://x.example/\r\nBcc: e@x", "https://x.example/\"><script>",
                "https://x.example/" + "a" * 600, "https://x.example/ü"):
        with pytest.raises(ValueError, match="not a usable unsubscribe URL"):
            prepared.parts_for(url)


# --- every backend ------------------------------------------------------------------------------------

def test_the_locmem_backend_keeps_the_real_parts_and_headers(mailoutbox):
    article = published(excerpt="Short.")
    subscribers = [make_subscriber("a@example.com"), make_subscriber("b@example.com")]
    prepared = emails.prepare_article_mail(article)
    for subscriber in subscribers:
        prepared.message_for(subscriber.pk, subscriber.email).send()

    assert [m.to for m in mailoutbox] == [["a@example.com"], ["b@example.com"]]
    for subscriber, message in zip(subscribers, mailoutbox):
        url = unsubscribe_url(subscriber.pk)
        assert message.extra_headers == {"List-Id": "The Daily Example <articles.news.example.com>",
                                         "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                                         "List-Unsubscribe": f"<{url}>"}
        assert message.body.endswith(f"Unsubscribe with one click:\n{url}\n")
        (html, mimetype), = message.alternatives
        assert mimetype == "text/html" and f'<a href="{url}" ' in html
        # What it flattens to is the same message.
        assert article_mail(email.message_from_bytes(message.message().as_bytes(), policy=email.policy.default)
                            ).unsubscribe_header == url


def test_the_console_backend_prints_each_message():
    article = published()
    subscriber = make_subscriber("a@example.com")
    stream = io.StringIO()

    send(emails.prepare_article_mail(article), [(subscriber.pk, subscriber.email)],
         backend="django.core.mail.backends.console.EmailBackend", stream=stream)

    message, = split_messages(stream.getvalue().encode())
    assert article_mail(message).unsubscribe_header == unsubscribe_url(subscriber.pk)


def test_the_smtp_backend_sends_each_message_to_its_own_recipient(smtp_server):
    article = published(title="Grüße")
    subscribers = [make_subscriber("a@example.com"), make_subscriber("b@example.com")]

    send(emails.prepare_article_mail(article), [(s.pk, s.email) for s in subscribers],
         backend="django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=smtp_server.port,
         use_tls=False, use_ssl=False, timeout=10)

    accepted = smtp_server.accepted()
    assert [a.rcpt_tos for a in accepted] == [["a@example.com"], ["b@example.com"]]
    for subscriber, item in zip(subscribers, accepted):
        assert item.mail_from == "news@example.com"
        message = article_mail(item.message)
        assert message.subject == "New: Grüße"
        url = unsubscribe_url(subscriber.pk)
        assert (message.unsubscribe_header, message.text_unsubscribe, message.html_unsubscribe) == (url, url, url)


# --- preview and test mail ----------------------------------------------------------------------------

def test_the_preview_shows_both_parts_of_a_draft(settings):
    settings.PUBLISHER_EMAIL_CONTENT = "full"
    article = make_article(title="Draft", body="# Hello\n\nWorld [home](/).")

    preview = emails.article_mail_preview(article_id=article.pk)

    assert preview.subject == "New: Draft"
    assert "Hello\n=====\n\nWorld home (https://news.example.com/)." in preview.text
    assert "<h1>Hello</h1>" in preview.html
    assert "Read the article" not in preview.html  # no public address yet
    assert unsubscribe_url(0) in preview.text


def test_the_test_mail_is_the_subscribers_mail_marked_as_a_test(mailoutbox):
    article = published(excerpt="Short.")

    emails.article_mail_send_test(article_id=article.pk, to="editor@example.com")

    message, = mailoutbox
    assert message.to == ["editor@example.com"]
    assert message.subject == "[Test] New: Cats & <Dogs>"
    assert message.extra_headers["List-Unsubscribe"] == f"<{unsubscribe_url(0)}>"
    assert "Short." in message.body


@pytest.mark.parametrize("address", ["a@example.com", "A.b+c@ex-ample.co.uk", "a_b%c@x.io", "first.last@sub.example.org"])
def test_the_plain_address_shortcut_writes_what_django_would(address):
    from django.core.mail.message import sanitize_address

    assert emails._PLAIN_ADDRESS.fullmatch(address)
    assert sanitize_address(address, "utf-8") == address


@pytest.mark.parametrize("address", ["a..b@x.com", "a@Example.com", "a@x", '"a"@x.com', "a@exämple.com", ".a@x.com"])
def test_other_addresses_go_through_djangos_sanitizer(address):
    assert not emails._PLAIN_ADDRESS.fullmatch(address)


# --- send_to: the senders' path (pre-built bytes on the open connection) ------------------------

def without_message_id(raw: bytes) -> bytes:
    return b"\n".join(line for line in raw.split(b"\n") if not line.startswith(b"Message-ID: "))


@pytest.mark.parametrize("backend", ["django.core.mail.backends.filebased.EmailBackend",
                                     "django.core.mail.backends.console.EmailBackend"])
def test_send_to_writes_what_the_ordinary_message_writes(settings, tmp_path, backend):
    article = published()
    subscribers = [make_subscriber("a@example.com"), make_subscriber("b@exämple.com")]
    prepared = emails.prepare_article_mail(article)
    written = {}
    for way in ("ordinary", "send_to"):
        stream = io.StringIO()
        options = {"file_path": str(tmp_path / way)} if "filebased" in backend else {"stream": stream}
        connection = get_connection(backend, **options)
        connection.open()
        for subscriber in subscribers:
            if way == "send_to":
                assert prepared.send_to(subscriber.pk, subscriber.email, connection=connection) is True
            else:
                prepared.message_for(subscriber.pk, subscriber.email, connection=connection).send()
        connection.close()
        raw = (b"".join(path.read_bytes() for path in (tmp_path / way).glob("*.log")) if "filebased" in backend
               else stream.getvalue().encode())
        written[way] = raw

    assert without_message_id(written["send_to"]) == without_message_id(written["ordinary"])
    messages = split_messages(written["send_to"])
    assert [article_mail(m).unsubscribe_header for m in messages] == [unsubscribe_url(s.pk) for s in subscribers]
    assert len({m["Message-ID"] for m in messages}) == 2


def test_send_to_keeps_the_real_message_on_the_locmem_backend(mailoutbox):
    article = published(excerpt="Short.")
    subscriber = make_subscriber("a@example.com")
    connection = get_connection()

    assert emails.prepare_article_mail(article).send_to(subscriber.pk, subscriber.email, connection=connection)

    message, = mailoutbox
    assert message.to == ["a@example.com"]
    assert message.extra_headers["List-Unsubscribe"] == f"<{unsubscribe_url(subscriber.pk)}>"


def test_send_to_sends_the_bytes_on_the_open_smtp_connection(smtp_server):
    article = published(title="Grüße")
    subscribers = [make_subscriber("a@example.com"), make_subscriber("b@exämple.com"), make_subscriber("c@example.com")]
    prepared = emails.prepare_article_mail(article)
    connection = get_connection("django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1",
                                port=smtp_server.port, use_tls=False, use_ssl=False, timeout=10)
    connection.open()
    smtp = connection.connection

    for subscriber in subscribers:
        assert prepared.send_to(subscriber.pk, subscriber.email, connection=connection) is True
    assert connection.connection is smtp  # one connection for all three
    connection.close()

    accepted = smtp_server.accepted()
    assert [a.rcpt_tos for a in accepted] == [["a@example.com"], ["b@xn--exmple-cua.com"], ["c@example.com"]]
    for subscriber, item in zip(subscribers, accepted):
        assert item.mail_from == "news@example.com"
        message = article_mail(item.message)
        assert message.subject == "New: Grüße"
        url = unsubscribe_url(subscriber.pk)
        assert (message.unsubscribe_header, message.text_unsubscribe, message.html_unsubscribe) == (url, url, url)


def test_send_to_raises_the_servers_refusal_and_the_connection_goes_on(tmp_path):
    from smtplib import SMTPRecipientsRefused

    from tests.support.smtp_server import SmtpServer

    server = SmtpServer(tmp_path / "smtp", perm_fail=r"^nobody", temp_fail=r"^grey").start()
    try:
        article = published()
        prepared = emails.prepare_article_mail(article)
        connection = get_connection("django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1",
                                    port=server.port, use_tls=False, use_ssl=False, timeout=10)
        connection.open()
        codes = []
        for address in ("nobody@example.com", "grey@example.com"):
            with pytest.raises(SMTPRecipientsRefused) as refused:
                prepared.send_to(1, address, connection=connection)
            codes.append(refused.value.recipients[address][0] // 100)
        assert prepared.send_to(2, "ok@example.com", connection=connection) is True
        connection.close()
        assert codes == [5, 4]
        assert server.recipients() == ["ok@example.com"]
    finally:
        server.stop()


@pytest.mark.parametrize("subscriber_id", [0, 1, 7, 123_456_789])
def test_unsubscribe_urls_are_the_unsubscribe_url(subscriber_id):
    from publisher.subscriptions import unsubscribe_urls

    assert unsubscribe_urls()(subscriber_id) == unsubscribe_url(subscriber_id)
