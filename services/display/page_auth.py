"""Who may see the live page: a token, or users with hashed passwords, from files.

Off loopback the page shows people's faces to a network, so every route but ``/healthz`` asks
for a credential: ``Authorization: Bearer <token>`` (scripts), or a session cookie that the
login form (``/login``) sets after a right token or user and password. A wrong attempt is
answered 401 after a delay that doubles with each failure from that address (up to
MAX_DELAY_S), so guessing is slow. Passwords are stored as PBKDF2-SHA256 hashes
(``python -m services.keys http-user``), never in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs

from shared.http_server import Route, reply

__all__ = [
    "AuthError",
    "PageAuth",
    "hash_password",
    "load_page_auth",
    "protect",
    "verify_password",
]

log = logging.getLogger(__name__)

COOKIE: Final = "emojify_session"
SESSION_S: Final = 12 * 3600.0
FIRST_DELAY_S: Final = 0.25
MAX_DELAY_S: Final = 8.0
PBKDF2_ITERATIONS: Final = 200_000
#: The shortest password ``python -m services.keys http-user`` accepts.
MIN_PASSWORD_CHARS: Final = 12
#: Routes anyone may reach: the health check and the login form itself.
OPEN_PATHS: Final = frozenset({"/healthz", "/login"})
MAX_FORM_BYTES: Final = 4096


class AuthError(ValueError):
    """A token or users file is missing, unreadable or malformed."""


def hash_password(
    password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a ``hash_password`` string (constant-time compare)."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        actual = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), bytes.fromhex(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


class PageAuth:
    """Checks credentials, keeps login sessions and slows down wrong attempts."""

    def __init__(
        self,
        token: str | None,
        users: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not token and not users:
            raise AuthError("a token or at least one user is needed")
        self._token = token
        self._users = dict(users)
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def token_ok(self, token: str) -> bool:
        return self._token is not None and hmac.compare_digest(token.encode(), self._token.encode())

    def password_ok(self, user: str, password: str) -> bool:
        stored = self._users.get(user)
        return stored is not None and verify_password(password, stored)

    def new_session(self) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            self._sessions = {s: t for s, t in self._sessions.items() if t > now}
            self._sessions[session] = now + SESSION_S
        return session

    def session_ok(self, session: str) -> bool:
        with self._lock:
            expires = self._sessions.get(session)
        return expires is not None and expires > self._clock()

    def allowed(self, handler: BaseHTTPRequestHandler) -> bool:
        """Whether the request carries a valid bearer token or session cookie."""
        header = handler.headers.get("Authorization", "")
        if header.startswith("Bearer ") and self.token_ok(header.removeprefix("Bearer ").strip()):
            return True
        for part in handler.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and self.session_ok(value):
                return True
        return False

    def failed(self, client: str) -> float:
        """Count a wrong attempt from ``client``; the delay to wait before answering it."""
        with self._lock:
            count = self._failures.get(client, 0) + 1
            self._failures[client] = count
        return float(min(MAX_DELAY_S, FIRST_DELAY_S * 2.0 ** (count - 1)))

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise AuthError(f"http_token_file {path}: {error}") from error
    if len(token) < 16:
        raise AuthError(f"http_token_file {path}: expected a token of 16 characters or more")
    return token


def _read_users(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise AuthError(f"http_users_file {path}: {error}") from error
    users = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, stored = line.strip().partition(":")
        if not sep or not user or not stored.startswith("pbkdf2_sha256$"):
            raise AuthError(
                f"http_users_file {path}:{number}: expected 'user:pbkdf2_sha256$...' "
                "(python -m services.keys http-user)"
            )
        users[user] = stored
    if not users:
        raise AuthError(f"http_users_file {path}: no user in it")
    return users


def load_page_auth(token_file: Path | None, users_file: Path | None) -> PageAuth | None:
    """The page's credentials from the settings' files; None when neither is set."""
    if token_file is None and users_file is None:
        return None
    token = _read_token(token_file) if token_file is not None else None
    users = _read_users(users_file) if users_file is not None else {}
    return PageAuth(token, users)


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Emojify: sign in</title>
<style>body {{ background: #111; color: #ddd; font: 16px system-ui, sans-serif;
display: flex; justify-content: center; padding-top: 10vh; }}
form {{ background: #1b1b1b; padding: 1.5em; border-radius: 8px; display: grid; gap: 0.6em; }}
input, button {{ font: inherit; padding: 0.4em; }} .error {{ color: #f66; }}</style></head>
<body><form method="post" action="/login">
<h1>Emojify</h1>{message}
<label>User <input name="user" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<label>or token <input name="token" type="password"></label>
<button type="submit">Sign in</button></form></body></html>
"""


def _login_page(message: str = "") -> bytes:
    note = f'<p class="error">{html.escape(message)}</p>' if message else ""
    return _LOGIN_PAGE.format(message=note).encode()


def _login_route(auth: PageAuth) -> Route:
    def login(handler: BaseHTTPRequestHandler) -> None:
        if handler.command != "POST":
            reply(handler, HTTPStatus.OK, "text/html; charset=utf-8", _login_page())
            return
        length = min(int(handler.headers.get("Content-Length") or 0), MAX_FORM_BYTES)
        form = {k: v[-1] for k, v in parse_qs(handler.rfile.read(length).decode()).items()}
        client = handler.client_address[0]
        token, user = form.get("token", ""), form.get("user", "")
        if (token and auth.token_ok(token)) or (
            user and auth.password_ok(user, form.get("password", ""))
        ):
            auth.succeeded(client)
            handler.send_response(HTTPStatus.SEE_OTHER)
            handler.send_header(
                "Set-Cookie",
                f"{COOKIE}={auth.new_session()}; HttpOnly; SameSite=Strict; Path=/; "
                f"Max-Age={int(SESSION_S)}",
            )
            handler.send_header("Location", "/")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            log.info("page: %s signed in%s", client, f" as {user}" if user and not token else "")
            return
        delay = auth.failed(client)
        log.warning("page: wrong credentials from %s (answered after %.2f s)", client, delay)
        time.sleep(delay)
        reply(
            handler,
            HTTPStatus.UNAUTHORIZED,
            "text/html; charset=utf-8",
            _login_page("Wrong user, password or token."),
        )

    return login


def protect(routes: Mapping[str, Route], auth: PageAuth) -> dict[str, Route]:
    """``routes`` behind ``auth`` (all but OPEN_PATHS), plus ``/login``."""

    def guarded(route: Route, path: str) -> Route:
        def serve(handler: BaseHTTPRequestHandler) -> None:
            if auth.allowed(handler):
                route(handler)
                return
            if handler.headers.get("Authorization"):
                time.sleep(auth.failed(handler.client_address[0]))
            if path in ("/", "/index.html"):
                handler.send_response(HTTPStatus.SEE_OTHER)
                handler.send_header("Location", "/login")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(HTTPStatus.UNAUTHORIZED)
            body = b"sign in at /login, or send 'Authorization: Bearer <token>'\n"
            handler.send_header("WWW-Authenticate", 'Bearer realm="emojify"')
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(body)

        return serve

    protected = {
        path: route if path in OPEN_PATHS else guarded(route, path)
        for path, route in routes.items()
    }
    protected["/login"] = _login_route(auth)
    return protected
