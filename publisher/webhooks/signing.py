"""The signature header (the Stripe scheme): `t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`.

The timestamp is signed with the body, so a receiver that checks it is recent (a few minutes)
rejects a replayed request even though the signature itself is valid."""

import hashlib
import hmac
import time

HEADER = "X-Publisher-Signature"
DEFAULT_TOLERANCE = 300


def signature(*, secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def sign(*, secret: str, body: bytes, now: float | None = None) -> str:
    return signature(secret=secret, body=body, timestamp=int(time.time() if now is None else now))


def verify(*, secret: str, body: bytes, header: str, tolerance: int = DEFAULT_TOLERANCE,
           now: float | None = None) -> bool:
    """True if `header` signs `body` with `secret` and its timestamp is within `tolerance` s."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret=secret, body=body, timestamp=timestamp).split(",v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
