"""What Django's file e-mail backend wrote (the worker subprocesses' outbox, and the web
process's in the browser tests)."""

import email
import email.header
import email.message
import re
from pathlib import Path

URL = re.compile(r"https?://[^\s<>\"]+")


def read_messages(path: Path) -> list[email.message.Message]:
    """Every message Django's file e-mail backend wrote under `path`, in the order of its files,
    one entry per message actually written, duplicates included."""
    messages = []
    for file in sorted(path.glob("*.log")):
        messages.extend(_split(file.read_text(errors="replace")))
    return messages


def read_mailbox(path: Path) -> list[tuple[str, str]]:
    """(recipient, subject) of every message under `path` (read_messages)."""
    return [(message["To"], subject(message)) for message in read_messages(path)]


def subject(message: email.message.Message) -> str:
    return str(email.header.make_header(email.header.decode_header(message["Subject"])))


def text_body(message: email.message.Message) -> str:
    """The plain-text part, decoded."""
    part = next(part for part in message.walk() if part.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")


def links(message: email.message.Message) -> list[str]:
    """The http(s) links of the plain-text part, in order."""
    return URL.findall(text_body(message))


def unsubscribe_link(message: email.message.Message) -> str | None:
    """The message's unsubscribe URL: its List-Unsubscribe header's http(s) URL, else a link
    to /unsubscribe/ in its text; None when it has neither."""
    header = message["List-Unsubscribe"] or ""
    found = [url for url in re.findall(r"<([^>]+)>", header) if url.startswith(("http://", "https://"))]
    found += [url for url in links(message) if "/unsubscribe/" in url]
    return found[0] if found else None


def _split(text: str) -> list[email.message.Message]:
    separator = "\n" + "-" * 79 + "\n"
    return [email.message_from_string(part.strip("\n")) for part in text.split(separator) if part.strip()]
