"""Only the people meant to see the page see it: credentials, slowed wrong attempts, a refusal
to serve the network without one, and https."""

from __future__ import annotations

import hashlib
import http.client
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.loopback import free_loopback_port
from tests.integration.display_harness import REPO, http_get, running_display, self_signed_cert
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = "s3cret-token-for-the-page-0123456789"


def _request(
    url: str, method: str = "GET", path: str = "/", body: str = "", **headers: str
) -> tuple[int, dict[str, str], bytes, float]:
    host, port = url.split("//")[1].rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=20)
    started = time.monotonic()
    try:
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
            time.monotonic() - started,
        )
    finally:
        connection.close()


def _display(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.display", "--sinks", "http", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_page_off_loopback_without_a_credential_refuses_to_start() -> None:
    port = str(free_loopback_port())
    done = _display("--http-host", "0.0.0.0", "--http-port", port)
    assert done.returncode == 2, done.stderr
    assert "http_token_file" in done.stderr and "--http-users-file" in done.stderr
    assert "Traceback" not in done.stderr


def test_half_a_tls_setting_is_refused(tmp_path: Path) -> None:
    done = _display("--http-tls-cert-file", str(tmp_path / "cert.pem"))
    assert done.returncode == 2 and "http_tls_key_file" in done.stderr, done.stderr


def test_every_route_but_healthz_needs_the_token_and_wrong_ones_are_slowed(
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "page.token"
    token_file.write_text(TOKEN + "\n")
    with running_display(tmp_path, "--sinks", "http", "--http-token-file", str(token_file)) as d:
        url = d.http_url
        assert _request(url, path="/healthz")[0] == 200
        status, headers, _, _ = _request(url, path="/")
        assert status == 303 and headers["location"] == "/login"
        for path in ("/state.json", "/stream.mjpg", "/snapshot.jpg", "/metrics"):
            status, headers, _, _ = _request(url, path=path)
            assert status == 401 and "bearer" in headers["www-authenticate"].lower(), path
        assert _request(url, path="/state.json", Authorization=f"Bearer {TOKEN}")[0] == 200
        assert b"<form" in _request(url, path="/login")[2]

        # Wrong attempts: 401 at once; any attempt from the address within its wait (which
        # doubles) is answered 429 with Retry-After, at once, and not checked (even the right
        # token); once the wait has passed, a wrong attempt is a 401 again.
        def wrong() -> int:
            return _request(url, "POST", "/login", "token=wrong-token-guess")[0]

        assert wrong() == 401
        waits, last = [], time.monotonic()
        for _ in range(2):
            status, headers, _, took = _request(url, "POST", "/login", f"token={TOKEN}")
            assert status == 429 and int(headers["retry-after"]) >= 1 and took < 1.0
            wait_for(lambda: wrong() == 401, 10, "the wait after a wrong attempt to pass")
            waits.append(time.monotonic() - last)
            last = time.monotonic()
        assert waits[0] >= 0.25 and waits[1] >= 0.5, waits
        assert "wrong credentials" in d.log_text()

        # The right token signs in once the wait has passed: a session cookie opens every route.
        signed: list[dict[str, str]] = []

        def sign_in() -> bool:
            status, headers, _, _ = _request(url, "POST", "/login", f"token={TOKEN}")
            assert status in (303, 429), status
            signed.append(headers)
            return status == 303

        wait_for(sign_in, 10, "the right token to sign in after the wait")
        headers = signed[-1]
        assert headers["location"] == "/"
        cookie = headers["set-cookie"].split(";")[0]
        assert "HttpOnly" in headers["set-cookie"] and "Secure" not in headers["set-cookie"]
        assert _request(url, path="/state.json", Cookie=cookie)[0] == 200
        assert _request(url, path="/", Cookie=cookie)[0] == 200
        assert _request(url, path="/state.json", Cookie="emojify_session=forged")[0] == 401


def test_users_with_hashed_passwords_sign_in(tmp_path: Path) -> None:
    users = tmp_path / "page.users"
    made = subprocess.run(
        [sys.executable, "-m", "commands.keys", "http-user", str(users), "ada"],
        cwd=REPO,
        input="correct horse battery\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    stored = users.read_text()
    assert stored.startswith("ada:$argon2id$") and "correct horse" not in stored
    assert users.stat().st_mode & 0o777 == 0o600
    with running_display(tmp_path, "--sinks", "http", "--http-users-file", str(users)) as d:
        status, headers, _, _ = _request(
            d.http_url, "POST", "/login", "user=ada&password=correct+horse+battery"
        )
        assert status == 303 and headers["set-cookie"].startswith("emojify_session=")
        wrong = _request(d.http_url, "POST", "/login", "user=ada&password=wrong-password")
        assert wrong[0] == 401


def test_a_password_under_12_characters_is_refused(tmp_path: Path) -> None:
    users = tmp_path / "page.users"
    made = subprocess.run(
        [sys.executable, "-m", "commands.keys", "http-user", str(users), "ada"],
        cwd=REPO,
        input="eleven-char\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 2 and "12 characters or more" in made.stderr
    assert not users.exists()


def test_an_old_pbkdf2_hash_still_signs_in_and_is_rehashed_to_argon2id(tmp_path: Path) -> None:
    salt = bytes(range(16))
    digest = hashlib.pbkdf2_hmac("sha256", b"correct horse battery", salt, 200_000)
    users = tmp_path / "page.users"
    users.write_text(f"ada:pbkdf2_sha256$200000${salt.hex()}${digest.hex()}\n")
    users.chmod(0o600)
    with running_display(tmp_path, "--sinks", "http", "--http-users-file", str(users)) as d:
        status, headers, _, _ = _request(
            d.http_url, "POST", "/login", "user=ada&password=correct+horse+battery"
        )
        assert status == 303 and headers["set-cookie"].startswith("emojify_session=")
        wait_for(lambda: "$argon2id$" in users.read_text(), 10, "the users file to be rehashed")
        assert users.read_text().startswith("ada:$argon2id$")
        assert users.stat().st_mode & 0o777 == 0o600
        status = _request(d.http_url, "POST", "/login", "user=ada&password=correct+horse+battery")[
            0
        ]
        assert status == 303  # the new hash is the one in use
    # The next start reads the argon2id hash.
    with running_display(tmp_path, "--sinks", "http", "--http-users-file", str(users)) as d:
        status = _request(d.http_url, "POST", "/login", "user=ada&password=correct+horse+battery")[
            0
        ]
        assert status == 303


def test_the_page_over_https(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    with running_display(
        tmp_path,
        "--sinks", "http", "--http-tls-cert-file", str(cert), "--http-tls-key-file", str(key),
        scheme="https",
    ) as display:  # fmt: skip
        status, body = http_get(display.http_url)
        assert status == 200 and b"stream.mjpg" in body
        assert "display: open https://127.0.0.1:" in display.log_text()
        # Plain http to the https port: one log line, the server goes on.
        try:
            plain = _request(display.http_url.replace("https", "http"), path="/healthz")[0]
        except (http.client.HTTPException, ConnectionError):
            plain = None  # the server closed the connection: no page in plain text
        assert plain != 200
        assert http_get(display.http_url + "healthz")[0] == 200
        assert "Traceback" not in display.log_text()


def test_the_session_cookie_is_secure_over_https(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    token_file = tmp_path / "page.token"
    token_file.write_text(TOKEN + "\n")
    with running_display(
        tmp_path,
        "--sinks", "http", "--http-tls-cert-file", str(cert), "--http-tls-key-file", str(key),
        "--http-token-file", str(token_file),
        scheme="https",
    ) as display:  # fmt: skip
        host, port = display.http_url.split("//")[1].rstrip("/").split(":")
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        connection = http.client.HTTPSConnection(host, int(port), timeout=20, context=context)
        try:
            connection.request(
                "POST",
                "/login",
                body=f"token={TOKEN}",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            response = connection.getresponse()
            cookie = response.getheader("Set-Cookie") or ""
            assert response.status == 303, response.read()
        finally:
            connection.close()
        assert cookie.startswith("emojify_session=") and "; Secure" in cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
