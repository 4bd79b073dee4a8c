"""What Django's file e-mail backend wrote (the worker subprocesses' outbox)."""

import email
import email.header
import email.message
from pathlib import Path


def read_mailbox(path: Path) -> list[tuple[str, str]]:
    """(recipient, subject) of every message Django's file e-mail backend wrote under `path`,
    one entry per message actually written, duplicates included."""
    messages = []
    for file in sorted(path.glob("*.log")):
        for message in _split(file.read_text(errors="replace")):
            messages.append((message["To"], str(email.header.make_header(email.header.decode_header(message["Subject"])))))
    return messages


def _split(text: str) -> list[email.message.Message]:
    separator = "\n" + "-" * 79 + "\n"
    return [email.message_from_string(part.strip("\n")) for part in text.split(separator) if part.strip()]
