"""What Django's file e-mail backend wrote (the worker subprocesses' outbox, and the web
process's in the browser tests), and what a subscriber's mail holds (publisher/emails.py),
read the way a mail client reads it."""

import email
import email.header
import email.message
import email.parser
import email.policy
import re
from dataclasses import dataclass
from pathlib import Path

# Every header of a subscriber's mail, and nothing else.
ARTICLE_MAIL_HEADERS = ["Content-Type", "Date", "From", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
                        "MIME-Version", "Message-ID", "Subject", "To"]
URL = re.compile(r"https?://[^\s<>\"]+")


def _files(path: Path) -> list[Path]:
    """The backend's files in the order they were last written: their names (a second's timestamp
    and the connection's id()) do not order two connections writing within one second."""
    return sorted(path.glob("*.log"), key=lambda file: (file.stat().st_mtime_ns, file.name))


def read_mailbox(path: Path) -> list[tuple[str, str]]:
    """(recipient, subject) of every message Django's file e-mail backend wrote under `path`,
    one entry per message actually written, duplicates included."""
    # Headers only: parsing 3,000 two-part bodies took 11 s of CPU on a loaded machine, the headers 2.7 s.
    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    return [(message["To"], str(message["Subject"]))
            for file in _files(path) for chunk in _chunks(file.read_bytes())
            for message in [parser.parsebytes(chunk)]]


def read_messages(path: Path) -> list[email.message.EmailMessage]:
    """Every message Django's file e-mail backend wrote under `path` (it ends each with a line
    of 79 dashes), parsed from its bytes."""
    messages = []
    for file in _files(path):
        messages += split_messages(file.read_bytes())
    return messages


def split_messages(data: bytes) -> list[email.message.EmailMessage]:
    """The messages in what the file or console backend wrote."""
    return [email.message_from_bytes(chunk, policy=email.policy.default) for chunk in _chunks(data)]


def _chunks(data: bytes) -> list[bytes]:
    """Each message's bytes in what the file or console backend wrote."""
    return [chunk.strip(b"\n") for chunk in re.split(rb"(?:^|\n)-{79}\n", data) if chunk.strip()]


@dataclass
class ArticleMail:
    """One subscriber's mail as its reader sees it."""

    to: str
    subject: str
    headers: dict[str, str]
    text: str
    html: str
    unsubscribe_header: str  # the URL between the angle brackets of List-Unsubscribe
    text_unsubscribe: str  # the URL after "Unsubscribe with one click:" in the text part
    html_unsubscribe: str  # the href of the HTML part's "Unsubscribe" link
    transfer_encodings: list[str]


def article_mail(message: email.message.EmailMessage) -> ArticleMail:
    assert message.get_content_type() == "multipart/alternative", message.get_content_type()
    plain, html = message.iter_parts()
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    # Parts read from an SMTP transcript keep its CRLF line ends.
    text, markup = (part.get_content().replace("\r\n", "\n") for part in (plain, html))
    header = re.fullmatch(r"<([^<>\s]+)>", str(message["List-Unsubscribe"]))
    in_text = re.search(r"Unsubscribe with one click:\n(\S+)\n", text)
    in_html = re.search(r'<a href="([^"]+)"[^>]*>Unsubscribe</a>', markup)
    return ArticleMail(
        to=str(message["To"]), subject=str(message["Subject"]),
        headers={name: str(value) for name, value in message.items()}, text=text, html=markup,
        unsubscribe_header=header.group(1) if header else "", text_unsubscribe=in_text.group(1) if in_text else "",
        html_unsubscribe=in_html.group(1).replace("&amp;", "&") if in_html else "",
        transfer_encodings=[part["Content-Transfer-Encoding"] for part in (plain, html)])


def subject(message: email.message.Message) -> str:
    return str(message["Subject"])


def text_body(message: email.message.EmailMessage) -> str:
    """The plain-text part, decoded."""
    part = next(part for part in message.walk() if part.get_content_type() == "text/plain")
    return part.get_content()


def links(message: email.message.EmailMessage) -> list[str]:
    """The http(s) links of the plain-text part, in order."""
    return URL.findall(text_body(message))


def unsubscribe_link(message: email.message.EmailMessage) -> str | None:
    """The message's unsubscribe URL: its List-Unsubscribe header's http(s) URL, else a link
    to /unsubscribe/ in its text; None when it has neither."""
    header = str(message["List-Unsubscribe"] or "")
    found = [url for url in re.findall(r"<([^>]+)>", header) if url.startswith(("http://", "https://"))]
    found += [url for url in links(message) if "/unsubscribe/" in url]
    return found[0] if found else None
