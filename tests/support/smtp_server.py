"""A real SMTP server in a subprocess (smtp_server_main.py, aiosmtpd) and what it accepted."""

import email
import email.policy
import json
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

SERVER = Path(__file__).with_name("smtp_server_main.py")


@dataclass
class Accepted:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class SmtpServer:
    """`SmtpServer(tmp_path, drop_after=3, temp_fail=r"^grey", perm_fail=r"^nobody")`; start()
    returns once it accepts connections; point Django at it with `env()` (EMAIL_* variables)."""

    def __init__(self, directory: Path, *, drop_after: int | None = None, temp_fail: str | None = None,
                 perm_fail: str | None = None):
        self.directory = directory
        self.options = {"--drop-after": drop_after, "--temp-fail": temp_fail, "--perm-fail": perm_fail}
        self.port = self._free_port()
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def env(self) -> dict[str, str]:
        return {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(self.port), "EMAIL_USE_TLS": "off", "EMAIL_USE_SSL": "off"}

    def start(self) -> "SmtpServer":
        command = [sys.executable, str(SERVER), "--port", str(self.port), "--dir", str(self.directory)]
        for flag, value in self.options.items():
            if value is not None:
                command += [flag, str(value)]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on"), line
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def accepted(self) -> list[Accepted]:
        log = self.directory / "accepted.jsonl"
        if not log.exists():
            return []
        found = []
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            raw = (self.directory / entry["file"]).read_bytes()
            found.append(Accepted(entry["mail_from"], entry["rcpt_tos"],
                                  email.message_from_bytes(raw, policy=email.policy.default)))
        return found

    def recipients(self) -> list[str]:
        """Every envelope recipient of every accepted message, duplicates included."""
        return [rcpt for accepted in self.accepted() for rcpt in accepted.rcpt_tos]
