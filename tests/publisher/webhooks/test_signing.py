from publisher.webhooks import signing

BODY = b'{"event":"published"}'


def test_signature_follows_the_stripe_scheme():
    header = signing.signature(secret="s3cret", body=BODY, timestamp=1700000000)
    # hmac.new(b"s3cret", b'1700000000.{"event":"published"}', sha256).hexdigest()
    assert header == "t=1700000000,v1=" + __import__("hmac").new(
        b"s3cret", b'1700000000.{"event":"published"}', "sha256").hexdigest()


def test_verify_accepts_a_fresh_signature_and_rejects_tampering_wrong_secret_and_replays():
    header = signing.sign(secret="s3cret", body=BODY, now=1700000000)
    assert signing.verify(secret="s3cret", body=BODY, header=header, now=1700000100)
    assert not signing.verify(secret="s3cret", body=BODY + b" ", header=header, now=1700000100)
    assert not signing.verify(secret="other", body=BODY, header=header, now=1700000100)
    assert not signing.verify(secret="s3cret", body=BODY, header=header, now=1700000000 + 301), "replay accepted"
    assert not signing.verify(secret="s3cret", body=BODY, header="garbage", now=1700000000)
    assert not signing.verify(secret="s3cret", body=BODY, header="t=1700000000", now=1700000000)


def test_the_docs_example_request_verifies_with_the_docs_snippet_and_with_signing():
    import re
    from pathlib import Path

    import time_machine

    text = (Path(__file__).resolve().parents[3] / "docs" / "webhooks.md").read_text()
    header = re.search(r"X-Publisher-Signature: (t=\S+)", text).group(1)
    body = re.search(r"\n(\{\"article\".*\})\n", text).group(1).encode()
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(snippet, namespace)  # the receiver's code exactly as the docs show it
    with time_machine.travel(1796594400 + 10, tick=False):
        assert namespace["verify"]("whsec_example", body, header)
        assert not namespace["verify"]("whsec_example", body.replace(b"42", b"43"), header)
    assert signing.verify(secret="whsec_example", body=body, header=header, now=1796594400)
    assert not namespace["verify"]("whsec_example", body, header), "an old request must be rejected as a replay"
