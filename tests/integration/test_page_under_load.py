"""The page under a crowd: 500 idle connections and 500 wrong sign-ins, over http and https,
and still a new client connects and a signed-in one is served within a second."""

from __future__ import annotations

import http.client
import resource
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.display_harness import running_display, self_signed_cert

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TOKEN = "s3cret-token-for-the-page-0123456789"
IDLE = 500
WRONG = 500


def _connection(url: str, timeout_s: float) -> http.client.HTTPConnection:
    host, port = url.split("//")[1].rstrip("/").split(":")
    if url.startswith("https"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(host, int(port), timeout=timeout_s, context=context)
    return http.client.HTTPConnection(host, int(port), timeout=timeout_s)


def _request(
    url: str, method: str, path: str, body: str = "", timeout_s: float = 10.0, **headers: str
) -> tuple[int, dict[str, str], float]:
    connection = _connection(url, timeout_s)
    started = time.monotonic()
    try:
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        response.read()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            (time.monotonic() - started),
        )
    finally:
        connection.close()


def _tls_args(tmp_path: Path) -> list[str]:
    cert, key = self_signed_cert(tmp_path)
    return ["--http-tls-cert-file", str(cert), "--http-tls-key-file", str(key)]


@pytest.fixture(autouse=True)
def _enough_file_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE + 256
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"needs {wanted} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_idle_crowds_and_wrong_sign_ins_leave_the_page_to_its_users(
    tmp_path: Path, scheme: str
) -> None:
    token_file = tmp_path / "page.token"
    token_file.write_text(TOKEN + "\n")
    tls = _tls_args(tmp_path) if scheme == "https" else []
    args = ["--sinks", "http", "--http-token-file", str(token_file), *tls]
    with running_display(tmp_path, *args, scheme=scheme) as display:
        url = display.http_url
        status, headers, _ = _request(url, "POST", "/login", f"token={TOKEN}")
        assert status == 303
        cookie = headers["set-cookie"].split(";")[0]

        host, port = url.split("//")[1].rstrip("/").split(":")
        idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(IDLE)]
        try:
            # 500 wrong sign-ins from 8 clients at once: each answered at once, 401 or 429.
            def wrong(_: int) -> tuple[int, float]:
                status, _, took = _request(url, "POST", "/login", "token=wrong-guess-000000")
                return status, took

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(wrong, range(WRONG)))
            assert {status for status, _ in answers} <= {401, 429}, answers[:5]
            assert sum(status == 429 for status, _ in answers) >= WRONG - 50
            assert max(took for _, took in answers) < 2.0

            # With all that open: a new client connects, the signed-in one is served.
            assert _request(url, "GET", "/healthz", timeout_s=1.0)[0] == 200
            status, _, took = _request(url, "GET", "/state.json", timeout_s=1.0, Cookie=cookie)
            assert status == 200 and took < 1.0
            status, _, took = _request(url, "GET", "/snapshot.jpg", timeout_s=1.0, Cookie=cookie)
            assert status == 200 and took < 1.0
        finally:
            for sock in idle:
                sock.close()
        assert "Traceback" not in display.log_text()
