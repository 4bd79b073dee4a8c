"""A real HTTP webhook receiver in a subprocess (webhook_receiver_server.py) that verifies signatures."""

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path


SERVER = Path(__file__).with_name("webhook_receiver_server.py")
SECRET = "whsec_test-secret"


class Receiver:
    def __init__(self, tmp_path: Path):
        self.log = tmp_path / "receiver.jsonl"
        self.proc: subprocess.Popen | None = None
        self.port = self._free_port()

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def url(self, path: str = "/ok") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(SERVER), "--port", str(self.port), "--secret", SECRET,
                                      "--log", str(self.log)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on"), line

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def requests(self, path: str | None = None) -> list[dict]:
        if not self.log.exists():
            return []
        entries = [json.loads(line) for line in self.log.read_text().splitlines() if line]
        return [entry for entry in entries if path is None or entry["path"] == path]
