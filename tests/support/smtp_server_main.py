"""A real SMTP server for the tests (aiosmtpd), run as a subprocess by smtp_server.SmtpServer.

Every accepted message is written to <dir>/<n>.eml with a line in <dir>/accepted.jsonl
(file, mail_from, rcpt_tos). Faults, each optional:
  --drop-after N     accept N messages, then drop the connection at the next message's end of
                     DATA without answering (that message is in doubt); only once
  --temp-fail REGEX  answer RCPT TO of matching recipients with 451 (greylisting)
  --perm-fail REGEX  answer RCPT TO of matching recipients with 550 (no such user)
Prints "listening on <port>" once it accepts connections; SIGTERM stops it.
"""

import argparse
import json
import re
import signal
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, directory: Path, drop_after: int | None, temp_fail: str | None, perm_fail: str | None):
        self.directory, self.drop_after = directory, drop_after
        self.temp_fail = re.compile(temp_fail) if temp_fail else None
        self.perm_fail = re.compile(perm_fail) if perm_fail else None
        self.accepted = 0
        self.dropped = False
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.perm_fail and self.perm_fail.search(address):
            return f"550 5.1.1 <{address}>: no such user here"
        if self.temp_fail and self.temp_fail.search(address):
            return f"451 4.7.1 <{address}>: greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.drop_after is not None and not self.dropped and self.accepted >= self.drop_after:
                self.dropped = True
                server.transport.abort()  # no answer: the client cannot know whether it was taken
                return "421 4.4.2 connection dropped"
            self.accepted += 1
            name = f"{self.accepted:06d}.eml"
            (self.directory / name).write_bytes(envelope.original_content)
            with (self.directory / "accepted.jsonl").open("a") as log:
                log.write(json.dumps({"file": name, "mail_from": envelope.mail_from,
                                      "rcpt_tos": envelope.rcpt_tos}) + "\n")
        return "250 2.0.0 queued"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--drop-after", type=int)
    parser.add_argument("--temp-fail")
    parser.add_argument("--perm-fail")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    handler = Handler(args.dir, args.drop_after, args.temp_fail, args.perm_fail)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port, decode_data=False)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"listening on {args.port}", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
