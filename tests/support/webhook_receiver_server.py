"""A webhook receiver for the tests, run as its own process: it verifies each request's
signature the way docs/webhooks.md tells receivers to (its own code, not the product's) and
appends one JSON line per request to a log.

    python tests/webhook_receiver_server.py --port 0 --secret S --log FILE

Prints "listening on <port>" once it accepts connections. Paths choose the answer:
/ok 200; /flaky 500 to a delivery id's first request, then 200; /redirect 302 to /ok;
/hang-first holds a delivery id's first request for 60 s (a sender killed mid-request), then 200.
"""

import argparse
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    lock = threading.Lock()
    seen: dict[tuple[str, str], int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            delivery_id = self.headers.get("X-Publisher-Delivery", "")
            with lock:
                count = seen[(self.path, delivery_id)] = seen.get((self.path, delivery_id), 0) + 1
            status = 200
            if self.path == "/flaky" and count == 1:
                status = 500
            elif self.path == "/redirect":
                status = 302
            entry = {"path": self.path, "delivery_id": delivery_id, "event": self.headers.get("X-Publisher-Event"),
                     "verified": verify(args.secret, body, self.headers.get("X-Publisher-Signature", "")),
                     "body": json.loads(body or b"null"), "status": status, "at": time.time()}
            with lock, open(args.log, "a") as log:
                log.write(json.dumps(entry) + "\n")
            if self.path == "/hang-first" and count == 1:
                time.sleep(60)
            self.send_response(status)
            if status == 302:
                self.send_header("Location", "/ok")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
