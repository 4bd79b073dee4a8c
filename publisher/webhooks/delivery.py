"""One outbound POST, safely: the host is resolved once, a loopback, private, link-local or
reserved address is refused (unless PUBLISHER_WEBHOOKS_ALLOW_PRIVATE), the connection goes to
the address that was checked (so a second DNS answer cannot point it elsewhere: no DNS
rebinding), every socket operation has a timeout, and a redirect is an answer, never followed.

Standard library only (http.client): it never follows redirects and lets us choose the
address we connect to while keeping the URL's host name for the Host header and TLS (SNI and
certificate check)."""

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_RESPONSE_BYTES = 64 * 1024


class DeliveryRefused(Exception):
    """The URL may not be called at all (bad scheme, a private address): retrying cannot help."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str  # the resolved IP we connect to
    path: str


@dataclass(frozen=True)
class Response:
    status: int
    location: str
    body: bytes


def resolve(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host once and check the address. Raises DeliveryRefused, or OSError
    when the name does not resolve (temporary: DNS may come back)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryRefused(f"Only http and https URLs with a host can receive webhooks, got {url!r}.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise DeliveryRefused(f"Bad port in {url!r}: {exc}.") from None
    infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    address = infos[0][4][0]
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if not ip.is_global and not allow_private:
        kind = next((name for name, flag in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                                             ("reserved", ip.is_unspecified or ip.is_reserved),
                                             ("multicast", ip.is_multicast), ("private", ip.is_private))
                     if flag), "non-public")
        raise DeliveryRefused(
            f"Refused to call {parts.hostname} ({address}): a {kind} address. Webhooks go to public addresses "
            "only unless PUBLISHER_WEBHOOKS_ALLOW_PRIVATE=1.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, address, path)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(target: Target, *, body: bytes, headers: dict[str, str], timeout: float) -> Response:
    """POST once. Raises OSError (including timeouts) or http.client.HTTPException on
    transport trouble; any HTTP answer, 3xx included, is returned as it is."""
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = connection_class(target, timeout)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        content = response.read(MAX_RESPONSE_BYTES)
        return Response(response.status, response.getheader("Location", ""), content)
    finally:
        conn.close()
