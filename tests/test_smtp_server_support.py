"""The test SMTP server itself (tests/support/smtp_server.py): accepts, greylists, refuses, drops."""

import smtplib

import pytest

from tests.support.smtp_server import SmtpServer

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nbody\r\n"


def test_accepts_and_records_each_message(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        client.sendmail("a@example.com", ["c@example.com"], MESSAGE)
    assert smtp_server.recipients() == ["b@example.com", "c@example.com"]
    assert smtp_server.accepted()[0].message["Subject"] == "hi"


def test_greylists_refuses_and_drops_once(tmp_path):
    server = SmtpServer(tmp_path, drop_after=1, temp_fail=r"^grey@", perm_fail=r"^nobody@").start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as grey:
                client.sendmail("a@example.com", ["grey@example.com"], MESSAGE)
            assert grey.value.recipients["grey@example.com"][0] == 451
            with pytest.raises(smtplib.SMTPRecipientsRefused) as nobody:
                client.sendmail("a@example.com", ["nobody@example.com"], MESSAGE)
            assert nobody.value.recipients["nobody@example.com"][0] == 550
            client.sendmail("a@example.com", ["first@example.com"], MESSAGE)
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.sendmail("a@example.com", ["second@example.com"], MESSAGE)
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.sendmail("a@example.com", ["third@example.com"], MESSAGE)
        assert server.recipients() == ["first@example.com", "third@example.com"]
    finally:
        server.stop()
