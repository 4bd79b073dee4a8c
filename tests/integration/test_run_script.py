"""./scripts/run as a user runs it: no terminal, the embedded default, the admin in a browser's
shoes (login, schedule an article a few seconds ahead, see it go live), then Ctrl-C (SIGINT)
stops every process it started."""

import http.cookiejar
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent has not reaped it yet).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


class Browser:
    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.read().decode()

    def post(self, path: str, fields: dict) -> str:
        page = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Referer": self.base + path})
        with self.opener.open(request, timeout=10) as response:
            return response.read().decode()


def test_run_serves_admin_publishes_and_stops_everything_on_ctrl_c(tmp_path):
    var = tmp_path / "var"
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DJANGO_SETTINGS_MODULE",
                        "EMAIL_BACKEND", "EMAIL_FILE_PATH", "MEDIA_ROOT"}}
    env.update(PUBLISHER_VAR_DIR=str(var), PORT=str(port), PUBLISHER_SCAN_INTERVAL="1")
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        run = subprocess.Popen([str(ROOT / "scripts" / "run")], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    pids = []
    try:
        wait_for(lambda: "[run] admin:" in log.read_text() or run.poll() is not None, timeout=180,
                 message="./scripts/run to print the admin URL")
        output = log.read_text()
        assert run.poll() is None, output[-3000:]
        pids = [int(p) for p in re.findall(r"\[run\] started \w+ \(pid (\d+)\)", output)]
        assert len(pids) == 4, output  # redis, web, worker, beat
        assert f"http://127.0.0.1:{port}/admin/" in output
        assert f"[run] site: http://127.0.0.1:{port}/ " in output  # the public site, beside the admin
        password = (var / "admin-password.txt").read_text().strip()
        assert password in output

        browser = Browser(f"http://127.0.0.1:{port}")
        wait_for(lambda: _answers(browser), timeout=30, message="the web server to answer")
        browser.post("/admin/login/?next=/admin/", {"username": "admin", "password": password,
                                                    "next": "/admin/"})
        assert "Log out" in browser.get("/admin/") or "logout" in browser.get("/admin/")
        assert "Nothing published yet." in browser.get("/")  # *View site* opens the public index

        worker_ready = lambda: "ready." in log.read_text()  # noqa: E731
        wait_for(worker_ready, timeout=60, message="the worker to be ready")
        publish_at = datetime.now(timezone.utc) + timedelta(seconds=3)
        page = browser.post("/admin/publisher/article/add/", {
            "title": "Hello from the admin", "body": "Body text.",
            "publish_at_0": publish_at.strftime("%Y-%m-%d"), "publish_at_1": publish_at.strftime("%H:%M:%S"),
            "unpublish_at_0": "", "unpublish_at_1": "",
        })
        assert "“Hello from the admin” is scheduled for" in page, page[:3000]

        def status():
            with sqlite3.connect(var / "db.sqlite3", timeout=10) as db:
                return db.execute("select status, published_at from publisher_article").fetchone()

        # Due within the look-ahead, so the save already claimed it for an on-time dispatch.
        assert status()[0] in ("scheduled", "publishing", "published")
        wait_for(lambda: status()[0] == "published", timeout=30, message="the article to go live")
        assert "published" in browser.get("/admin/publisher/article/")
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGINT)  # what Ctrl-C sends
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            raise
    assert run.returncode == 0, log.read_text()[-3000:]
    assert "[run] stopped" in log.read_text()
    leftovers = [pid for pid in pids if alive(pid)]
    assert not leftovers, f"still running after Ctrl-C: {leftovers}"


def _answers(browser: Browser) -> bool:
    try:
        browser.get("/admin/login/")
        return True
    except OSError:
        time.sleep(0.2)
        return False
