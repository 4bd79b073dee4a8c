"""Outbound safety of one POST, against a real receiver process."""

import pytest

from publisher.webhooks import delivery


@pytest.mark.parametrize("url, kind", [
    ("http://127.0.0.1:9/hook", "loopback"),
    ("http://localhost:9/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]:9/hook", "loopback"),
    ("http://0.0.0.0/hook", "reserved"),
])
def test_private_loopback_and_link_local_addresses_are_refused_without_the_flag(url, kind):
    with pytest.raises(delivery.DeliveryRefused, match=f"a {kind} address.*PUBLISHER_WEBHOOKS_ALLOW_PRIVATE=1"):
        delivery.resolve(url, allow_private=False)


def test_the_flag_allows_them_and_the_connection_goes_to_the_resolved_address():
    target = delivery.resolve("http://localhost:8123/hook?x=1", allow_private=True)
    assert target.address in ("127.0.0.1", "::1")
    assert (target.host, target.port, target.path) == ("localhost", 8123, "/hook?x=1")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http:///nohost", "gopher://a/b"])
def test_other_schemes_are_refused(url):
    with pytest.raises(delivery.DeliveryRefused, match="Only http and https"):
        delivery.resolve(url, allow_private=True)


def test_a_redirect_is_returned_not_followed(receiver):
    target = delivery.resolve(receiver.url("/redirect"), allow_private=True)
    response = delivery.post(target, body=b"{}", headers={"Content-Type": "application/json"}, timeout=5)
    assert (response.status, response.location) == (302, "/ok")
    assert [entry["path"] for entry in receiver.requests()] == ["/redirect"]


def test_a_dead_port_is_a_connection_error_within_the_timeout(receiver):
    receiver.stop()
    target = delivery.resolve(receiver.url(), allow_private=True)
    with pytest.raises(ConnectionRefusedError):
        delivery.post(target, body=b"{}", headers={}, timeout=2)
