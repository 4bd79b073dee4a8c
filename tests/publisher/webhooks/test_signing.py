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
