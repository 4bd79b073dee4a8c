"""The e-mail a subscriber gets for a new article: rendered once, addressed per subscriber.

`prepare_article_mail(article)` renders the subject and both parts (text and HTML) once, with
the unsubscribe link left as a marker. `prepared.message_for(subscriber_id, email)` is an
ordinary Django EmailMultiAlternatives that every backend sends (smtp, file, console, locmem).
The file and SMTP backends flatten it: they get the MIME tree flattened once per line ending,
with this subscriber's To, Message-ID and List-Unsubscribe header lines and their unsubscribe
URL put in at the marker's places in both parts (several times faster than building and
flattening a multipart message per subscriber).

Correct by construction, whatever the title or body hold:
- the marker is a random token drawn for each rendering, so no content can contain it; the
  rendered parts must hold exactly the markers the templates put there, or it raises;
- every line of both parts is kept under the 998-octet limit of RFC 5322, counting the longest
  URL allowed in place of the marker, so Django sends both parts as 8bit text, never
  quoted-printable or base64 (which would cut or hide the marker); the flattened bytes are
  checked once for exactly those markers and those line lengths;
- headers are never searched: the per-subscriber header lines replace one placeholder line,
  found as a whole line of the header block; the URL is checked to be printable ASCII without
  spaces, quotes or angle brackets before it goes anywhere.
"""

import email.utils
import re
import secrets
import smtplib
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

import nh3
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends import console as console_backend
from django.core.mail.backends import smtp as smtp_backend
from django.core.mail.message import sanitize_address
from django.core.mail.utils import DNS_NAME
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from .models import Article
from .plaintext import html_to_text
from .rendering import render_body
from .site.links import absolute_url
from .subscriptions import unsubscribe_url, unsubscribe_urls

CONTENT_CHOICES = ("excerpt", "full")
LINE_LIMIT = 998  # octets per line, RFC 5322 section 2.1.1 (Django switches to quoted-printable above it)
URL_ROOM = 500  # the longest unsubscribe URL (HTML-escaped) a message takes; room kept on its lines
_SOFT_LIMIT = 800  # where a long HTML line is broken (an entity or attribute name may run past it)
_URL = re.compile(r"[!#-;=?-~]{1,%d}" % URL_ROOM)  # printable ASCII, no space, quote or angle bracket
_ADDRESS = re.compile(rb"[ -~]+")
# An address sanitize_address would return unchanged (dot-atoms, lowercase ASCII domain): the
# common case skips its parser, which costs more than the rest of a message.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_TEST_PREFIX = "[Test] "


def header_text(text: str) -> str:
    """`text` on one line: every control character and Unicode line or paragraph separator
    becomes a space. The schedule rules refuse such titles where they enter; this keeps a row
    written some other way from folding a header (the email package splits on more characters
    than CR and LF, and Django refuses only those two)."""
    return "".join(" " if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char for char in text)


def absolute_link(url: str) -> str:
    """A site-relative link ("/about") made absolute (PUBLISHER_SITE_URL); others unchanged."""
    return absolute_url(None, url) if url.startswith("/") and not url.startswith("//") else url


def _absolute_attribute(tag: str, attribute: str, value: str) -> str:
    return absolute_link(value) if attribute in ("href", "src") else value


@dataclass(frozen=True)
class MailParts:
    subject: str
    text: str
    html: str


def prepare_article_mail(article: Article, *, test: bool = False, update: bool = False) -> "PreparedMail":
    """The article's mail rendered once (PUBLISHER_EMAIL_CONTENT: the excerpt or the whole body),
    ready to be addressed to any number of subscribers. An article the pipeline has not
    processed yet (a draft's preview or test mail) is rendered from its Markdown. `test` marks
    the subject as a test mail; `update` makes it the mail about a change to the live article
    ("Updated: …" and a line saying so, the article as it is now)."""
    body_html, excerpt = article.body_html, article.excerpt
    if not body_html and article.body:
        body_html, rendered_excerpt, _ = render_body(article.body)
        excerpt = excerpt or rendered_excerpt
    full = settings.PUBLISHER_EMAIL_CONTENT == "full"
    path = article.get_absolute_url()
    marker = f"unsubscribe-{secrets.token_hex(16)}.invalid"
    title = header_text(str(article)).strip()
    context = {
        "title": title,
        "underline": "=" * min(len(title), 72),
        "site_name": settings.PUBLISHER_SITE_NAME,
        "article_url": absolute_url(None, path) if path else "",
        "image_url": absolute_link(article.thumbnail.url) if article.thumbnail else "",
        "image_alt": article.image_alt,
        "full": full,
        "excerpt": excerpt,
        # The public site's sanitizer, with the body's own site-relative links made absolute.
        "body_html": mark_safe(nh3.clean(body_html, attribute_filter=_absolute_attribute)) if full else "",
        "body_text": html_to_text(body_html, link=absolute_link) if full else excerpt,
        "unsubscribe_url": marker,
        "update": update,
    }
    text = _fit_text(render_to_string("publisher/email/new_article.txt", context), marker)
    html = _fit_html(render_to_string("publisher/email/new_article.html", context), marker)
    if text.count(marker) != 1 or html.count(marker) != 1:
        raise RuntimeError("the e-mail templates must hold the unsubscribe link once in each part")
    subject = header_text(f"{_TEST_PREFIX if test else ''}{'Updated' if update else 'New'}: {title}")
    return PreparedMail(MailParts(subject, text, html), marker)


def list_id() -> str:
    """RFC 2919 List-Id: the site's name and `articles.<host of PUBLISHER_SITE_URL>` (else of
    DEFAULT_FROM_EMAIL's domain)."""
    host = urlsplit(settings.PUBLISHER_SITE_URL).hostname if settings.PUBLISHER_SITE_URL else None
    host = host or email.utils.parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    return email.utils.formataddr((header_text(settings.PUBLISHER_SITE_NAME), f"articles.{host}"))


class PreparedMail:
    """One article's mail, rendered; `message_for` addresses it to one subscriber."""

    def __init__(self, parts: MailParts, marker: str):
        self.parts, self.marker = parts, marker
        self.from_email = settings.DEFAULT_FROM_EMAIL
        self.reply_to = [settings.PUBLISHER_EMAIL_REPLY_TO] if settings.PUBLISHER_EMAIL_REPLY_TO else []
        self.headers = {"List-Id": list_id(), "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        self._flat: dict[str, tuple[bytes, bytes, bytes, bytes]] = {}
        self._unsubscribe_url = None
        self._envelope_from = None

    def unsubscribe_url(self, subscriber_id: int) -> str:
        if self._unsubscribe_url is None:
            self._unsubscribe_url = unsubscribe_urls()
        return self._unsubscribe_url(subscriber_id)

    def message_for(self, subscriber_id: int, address: str, *, connection=None) -> EmailMultiAlternatives:
        """The message for this subscriber: their unsubscribe URL (header and both parts), their
        own Message-ID."""
        return _Addressed(self, address, self.unsubscribe_url(subscriber_id), connection=connection)

    def send_to(self, subscriber_id: int, address: str, *, connection) -> bool:
        """Send this subscriber's message on an open `connection` (a Django e-mail backend);
        True when the backend took it. The SMTP backend gets the addressed bytes straight on its
        open smtplib connection (one `sendmail` per message, raising what smtplib raises), the
        file and console backends the same bytes through their own writer; any other backend,
        or an address that needs more than plain ASCII, the ordinary message (`message_for`)."""
        if _PLAIN_ADDRESS.fullmatch(address):
            if isinstance(connection, smtp_backend.EmailBackend) and connection.connection is not None:
                if self._envelope_from is None:
                    self._envelope_from = smtplib.quoteaddr(sanitize_address(self.from_email, "utf-8"))
                message = self._addressed(subscriber_id, address, "\r\n")
                _sendmail(connection.connection, self._envelope_from, f"<{address}>", message)
                return True
            if isinstance(connection, console_backend.EmailBackend):  # the file backend too
                return bool(connection.send_messages([_Ready(self, subscriber_id, address)]))
        return bool(self.message_for(subscriber_id, address, connection=connection).send())

    def _addressed(self, subscriber_id: int, address: str, linesep: str) -> bytes:
        return self.addressed_bytes(linesep, address.encode("ascii"),
                                    email.utils.make_msgid(domain=DNS_NAME).encode("ascii"),
                                    self.unsubscribe_url(subscriber_id))

    def parts_for(self, unsubscribe: str) -> MailParts:
        """Subject, text and HTML with this unsubscribe URL in place (a preview, a backend that
        reads the message's attributes)."""
        url, url_html = _checked_url(unsubscribe)
        return MailParts(self.parts.subject, self.parts.text.replace(self.marker, url),
                         self.parts.html.replace(self.marker, url_html))

    def flat(self, linesep: str) -> tuple[bytes, bytes, bytes, bytes]:
        """The message flattened without To, Message-ID and List-Unsubscribe: the header lines
        before the placeholder line, the rest cut at the markers (text part's, then HTML's)."""
        if linesep not in self._flat:
            self._flat[linesep] = self._flatten(linesep)
        return self._flat[linesep]

    def _flatten(self, linesep: str) -> tuple[bytes, bytes, bytes, bytes]:
        placeholder = f"<{self.marker}@invalid>"
        template = EmailMultiAlternatives(
            subject=self.parts.subject, body=self.parts.text, from_email=self.from_email, reply_to=self.reply_to,
            alternatives=[(self.parts.html, "text/html")], headers={**self.headers, "Message-ID": placeholder})
        template.encoding = "utf-8"
        sep = linesep.encode()
        head, blank, body = template.message().as_bytes(linesep=linesep).partition(sep + sep)
        lines = head.split(sep)
        if lines.count(b"Message-ID: " + placeholder.encode()) != 1:
            raise RuntimeError("the placeholder Message-ID line is not in the flattened header")
        index = lines.index(b"Message-ID: " + placeholder.encode())
        before = b"".join(line + sep for line in lines[:index])
        rest = b"".join(sep + line for line in lines[index + 1:]) + blank + body
        marker = self.marker.encode()
        room = URL_ROOM - len(marker)
        if body.count(marker) != 2 or max(len(line) + room * (marker in line) for line in body.split(sep)) > LINE_LIMIT:
            raise RuntimeError("the flattened parts are not the 8bit text rendered (a transfer encoding changed them)")
        # The text part comes first in multipart/alternative, so the first marker is the text's.
        first, middle, last = rest.split(marker)
        return before, first, middle, last

    def addressed_bytes(self, linesep: str, to: bytes, message_id: bytes, unsubscribe: str) -> bytes:
        url, url_html = _checked_url(unsubscribe)
        before, first, middle, last = self.flat(linesep)
        sep = linesep.encode()
        return b"".join((before, b"To: ", to, sep, b"Message-ID: ", message_id, sep,
                         b"List-Unsubscribe: <", url.encode(), b">", first, url.encode(), middle,
                         url_html.encode(), last))


def _checked_url(url: str) -> tuple[str, str]:
    """The URL as it goes into the text part and the headers, and HTML-escaped for the HTML part."""
    escaped = url.replace("&", "&amp;")
    if not _URL.fullmatch(url) or len(escaped) > URL_ROOM:
        raise ValueError(f"not a usable unsubscribe URL (printable ASCII, at most {URL_ROOM} characters): {url!r}")
    return url, escaped


class _Addressed(EmailMultiAlternatives):
    """One subscriber's copy. Its subject, body, alternatives and headers are the real ones (the
    locmem backend keeps them); message() gives the file, console and SMTP backends the
    pre-flattened bytes re-addressed, or an ordinary message for an address that needs more
    than plain ASCII."""

    def __init__(self, prepared: PreparedMail, address: str, unsubscribe: str, *, connection):
        parts = prepared.parts_for(unsubscribe)
        super().__init__(subject=parts.subject, body=parts.text, from_email=prepared.from_email, to=[address],
                         reply_to=prepared.reply_to, alternatives=[(parts.html, "text/html")], connection=connection,
                         headers={**prepared.headers, "List-Unsubscribe": f"<{unsubscribe}>"})
        self.encoding = "utf-8"
        self._prepared, self._unsubscribe = prepared, unsubscribe

    def message(self):
        try:
            address = (self.to[0] if _PLAIN_ADDRESS.fullmatch(self.to[0]) else
                       sanitize_address(self.to[0], self.encoding)).encode("ascii")
        except (UnicodeEncodeError, ValueError):
            address = b""
        if not _ADDRESS.fullmatch(address):
            return super().message()  # Django's own checks and encodings
        return _FlatMessage(self._prepared, address, email.utils.make_msgid(domain=DNS_NAME).encode("ascii"),
                            self._unsubscribe)


def _sendmail(smtp: smtplib.SMTP, sender: str, recipient: str, message: bytes) -> None:
    """smtplib.SMTP.sendmail for one recipient and addresses already quoted (`<a@b>`): the
    same commands, replies, exceptions and recovery (RSET, or closing after a 421), without
    parsing both addresses again per message (most of the client's CPU for a small message)."""
    smtp.ehlo_or_helo_if_needed()
    options = f" size={len(message)}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    smtp.putcmd("mail", f"from:{sender}{options}")
    code, answer = smtp.getreply()
    if code != 250:
        _recover(smtp, code)
        raise smtplib.SMTPSenderRefused(code, answer, sender)
    smtp.putcmd("rcpt", f"to:{recipient}")
    code, answer = smtp.getreply()
    if code not in (250, 251):
        _recover(smtp, code)
        raise smtplib.SMTPRecipientsRefused({recipient[1:-1]: (code, answer)})
    code, answer = smtp.data(message)
    if code != 250:
        _recover(smtp, code)
        raise smtplib.SMTPDataError(code, answer)


def _recover(smtp: smtplib.SMTP, code: int) -> None:
    if code == 421:  # the server is closing the connection
        smtp.close()
    else:
        smtp._rset()


class _Ready:
    """What the file and console backends read of a message: message(), flattened on demand."""

    def __init__(self, prepared: PreparedMail, subscriber_id: int, address: str):
        self.prepared, self.subscriber_id, self.address = prepared, subscriber_id, address

    def message(self):
        return _FlatMessage(self.prepared, self.address.encode("ascii"),
                            email.utils.make_msgid(domain=DNS_NAME).encode("ascii"),
                            self.prepared.unsubscribe_url(self.subscriber_id))

    def recipients(self):
        return [self.address]


class _FlatMessage:
    """Quacks like the email.message.Message the file, console and SMTP backends flatten."""

    def __init__(self, prepared: PreparedMail, to: bytes, message_id: bytes, unsubscribe: str):
        self.prepared, self.to, self.message_id, self.unsubscribe = prepared, to, message_id, unsubscribe

    def as_bytes(self, unixfrom=False, linesep="\n"):
        return self.prepared.addressed_bytes(linesep, self.to, self.message_id, self.unsubscribe)

    def as_string(self, unixfrom=False, linesep="\n"):
        return self.as_bytes(linesep=linesep).decode("utf-8")

    def get_charset(self):
        return None  # a multipart message has none of its own; the console backend then decodes UTF-8

    def __getitem__(self, name):
        return {"to": self.to.decode(), "message-id": self.message_id.decode(),
                "list-unsubscribe": f"<{self.unsubscribe}>"}.get(name.lower())


def _line_octets(line: str, marker: str) -> int:
    return len(line.encode()) + (URL_ROOM - len(marker)) * line.count(marker)


def _fit_text(text: str, marker: str) -> str:
    """Plain text with every line short enough to go 8bit: a longer line is broken at its last
    space before the limit, else anywhere (a very long word or URL)."""
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        while _line_octets(line, marker) > _SOFT_LIMIT and marker not in line:
            cut = len(line.encode()[:_SOFT_LIMIT].decode("utf-8", "ignore"))
            space = line.rfind(" ", 0, cut)
            cut = space if space > 0 else cut
            lines.append(line[:cut].rstrip(" "))
            line = line[cut:].lstrip(" ")
        lines.append(line)
    return "\n".join(lines)


def _fit_html(html: str, marker: str) -> str:
    """HTML with every line short enough to go 8bit, rendering the same. A long line breaks
    where a newline changes nothing: inside a tag at a space, inside a quoted attribute value
    (browsers drop newlines from URLs; elsewhere it reads as a space), or in text by an empty
    `<span\\n></span>` (invisible, even inside <pre>). Never inside an entity or the marker.
    The templates keep <style> and <title> out, so every `<` starts a tag."""
    html = html.replace("\r\n", "\n").replace("\r", "\n")
    if all(_line_octets(line, marker) <= _SOFT_LIMIT for line in html.split("\n")):
        return html
    out: list[str] = []
    octets, in_tag, quote, entity, i = 0, False, "", False, 0
    while i < len(html):
        if html.startswith(marker, i):
            out.append(marker)
            octets, i = octets + URL_ROOM, i + len(marker)
            continue
        char = html[i]
        if octets >= _SOFT_LIMIT and char != "\n":
            if in_tag and quote:
                out.append("\n")
                octets = 0
            elif in_tag and char in " \t":
                char = "\n"
            elif not in_tag and not entity:
                out.append("<span\n></span>")
                octets = 8
        out.append(char)
        i += 1
        octets = 0 if char == "\n" else octets + len(char.encode())
        if in_tag:
            if quote:
                quote = "" if char == quote else quote
            elif char in "\"'":
                quote = char
            elif char == ">":
                in_tag = False
        else:
            entity = entity and (char.isalnum() or char == "#")
            if char == "&":
                entity = True
            elif char == "<":
                in_tag = True
    return "".join(out)


def article_mail_preview(*, article_id: int) -> MailParts:
    """Subject, text and HTML of the article's mail as a subscriber would get it (the
    unsubscribe link points at nobody: it changes nothing if followed)."""
    article = Article.objects.get(pk=article_id)
    return prepare_article_mail(article).parts_for(unsubscribe_url(0))


def article_mail_send_test(*, article_id: int, to: str) -> None:
    """Send the article's mail, exactly as subscribers get it but with "[Test]" before its
    subject, to one address (an editor's own). Its unsubscribe link points at nobody.
    Raises what the mail backend raises (the caller tells the editor)."""
    article = Article.objects.get(pk=article_id)
    prepare_article_mail(article, test=True).message_for(0, to).send(fail_silently=False)
