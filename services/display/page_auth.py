"""Who may see the live page: a token, or users with hashed passwords, from files.

Off loopback the page shows people's faces to a network, so every route but ``/healthz`` asks
for a credential: ``Authorization: Bearer <token>`` (scripts), or a session cookie that the
login form (``/login``) sets after a right token or user and password (``Secure`` when the page
is served over https).

Guessing is slow and costs the server nothing: after a wrong attempt the address must wait
before its next one (a wait that doubles with each failure, up to MAX_DELAY_S); an attempt
within the wait is answered 429 with ``Retry-After`` at once, without checking anything. At
most ``max_checks`` credentials are checked at the same time (a password hash takes tens of
milliseconds on purpose); one more is answered 429 at once. The failure table is bounded
(FAILURES_KEPT addresses, least recent forgotten) and forgets an address FORGET_S after its
last failure; the session table is bounded the same way.

Passwords are stored as argon2id hashes (``python -m commands.keys http-user``, argon2-cffi's
defaults). Hashes of older releases (``pbkdf2_sha256$...``) are still accepted and replaced by
argon2id in the users file at the user's next sign-in.
"""

from __future__ import annotations

import hmac
import html
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs

import anyio.to_thread

from shared.http_server import Request, Response, Route, reply
from shared.passwords import (
    UsersFileError,
    hash_password,
    needs_rehash,
    read_users,
    verify_password,
    write_users,
)

__all__ = ["AuthError", "PageAuth", "load_page_auth", "protect"]

log = logging.getLogger(__name__)

COOKIE: Final = "emojify_session"
SESSION_S: Final = 12 * 3600.0
FIRST_DELAY_S: Final = 0.25
MAX_DELAY_S: Final = 8.0
#: Addresses whose failures are remembered, at most; the least recent is forgotten first.
FAILURES_KEPT: Final = 4096
#: An address's failures are forgotten this long after its last one.
FORGET_S: Final = 900.0
#: Sessions kept at most (each sign-in makes one); the oldest goes first.
SESSIONS_KEPT: Final = 4096
#: Credentials checked at the same time, at most (``http_max_sign_ins``).
MAX_CHECKS: Final = 4
#: Routes anyone may reach: the health check and the login form itself.
OPEN_PATHS: Final = frozenset({"/healthz", "/login"})
MAX_FORM_BYTES: Final = 4096


class AuthError(ValueError):
    """A token or users file is missing, unreadable or malformed."""


@dataclass
class _Failures:
    count: int
    last_at: float
    wait_until: float


class PageAuth:
    """Checks credentials, keeps login sessions, and makes wrong attempts wait."""

    def __init__(
        self,
        token: str | None,
        users: Mapping[str, str],
        *,
        users_file: Path | None = None,
        max_checks: int = MAX_CHECKS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not token and not users:
            raise AuthError("a token or at least one user is needed")
        self._token = token
        self._users = dict(users)
        self._users_file = users_file
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, float] = OrderedDict()
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._checks = threading.BoundedSemaphore(max_checks)

    # --- credentials ---------------------------------------------------------------------

    def token_ok(self, token: str) -> bool:
        return self._token is not None and hmac.compare_digest(token.encode(), self._token.encode())

    def password_ok(self, user: str, password: str) -> bool:
        """Whether the password is the user's; an old hash is replaced on success."""
        stored = self._users.get(user)
        if stored is None or not verify_password(password, stored):
            return False
        if needs_rehash(stored):
            self._rehash(user, password)
        return True

    def _rehash(self, user: str, password: str) -> None:
        fresh = hash_password(password)
        with self._lock:
            self._users[user] = fresh
            users = dict(self._users)
        if self._users_file is None:
            return
        try:
            write_users(self._users_file, users)
        except OSError as error:
            log.warning("page: cannot store %s's new password hash: %s", user, error)
            return
        log.info("page: %s's password hash is now argon2id (%s)", user, self._users_file)

    def try_check(self) -> bool:
        """Take one of the ``max_checks`` places for checking a credential; False when none
        is free (the caller answers 429). Give it back with ``end_check``."""
        return self._checks.acquire(blocking=False)

    def end_check(self) -> None:
        self._checks.release()

    # --- sessions ------------------------------------------------------------------------

    def new_session(self) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            while self._sessions and (
                len(self._sessions) >= SESSIONS_KEPT or next(iter(self._sessions.values())) <= now
            ):
                self._sessions.popitem(last=False)
            self._sessions[session] = now + SESSION_S
        return session

    def session_ok(self, session: str) -> bool:
        with self._lock:
            expires = self._sessions.get(session)
        return expires is not None and expires > self._clock()

    def allowed(self, request: Request) -> bool:
        """Whether the request carries a valid bearer token or session cookie."""
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and self.token_ok(header.removeprefix("Bearer ").strip()):
            return True
        session = request.cookies.get(COOKIE)
        return session is not None and self.session_ok(session)

    # --- wrong attempts ------------------------------------------------------------------

    def wait_s(self, client: str) -> float:
        """How long ``client`` must still wait before its next attempt is looked at."""
        with self._lock:
            self._forget_old()
            entry = self._failures.get(client)
            return 0.0 if entry is None else max(0.0, entry.wait_until - self._clock())

    def failed(self, client: str) -> float:
        """Count a wrong attempt from ``client``; the wait it now has before the next one."""
        with self._lock:
            now = self._clock()
            self._forget_old()
            entry = self._failures.pop(client, None) or _Failures(0, now, now)
            entry.count += 1
            entry.last_at = now
            delay = float(min(MAX_DELAY_S, FIRST_DELAY_S * 2.0 ** min(entry.count - 1, 32)))
            entry.wait_until = now + delay
            self._failures[client] = entry  # most recent last
            while len(self._failures) > FAILURES_KEPT:
                self._failures.popitem(last=False)
        return delay

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def addresses_remembered(self) -> int:
        with self._lock:
            self._forget_old()
            return len(self._failures)

    def _forget_old(self) -> None:
        """Drop the addresses whose last failure is FORGET_S old (the lock is held)."""
        horizon = self._clock() - FORGET_S
        while self._failures and next(iter(self._failures.values())).last_at <= horizon:
            self._failures.popitem(last=False)


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise AuthError(f"http_token_file {path}: {error}") from error
    if len(token) < 16:
        raise AuthError(f"http_token_file {path}: expected a token of 16 characters or more")
    return token


def load_page_auth(
    token_file: Path | None, users_file: Path | None, max_checks: int = MAX_CHECKS
) -> PageAuth | None:
    """The page's credentials from the settings' files; None when neither is set."""
    if token_file is None and users_file is None:
        return None
    token = _read_token(token_file) if token_file is not None else None
    try:
        users = read_users(users_file) if users_file is not None else {}
    except UsersFileError as error:
        raise AuthError(str(error)) from error
    return PageAuth(token, users, users_file=users_file, max_checks=max_checks)


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


def _login_page(status: HTTPStatus = HTTPStatus.OK, message: str = "", **headers: str) -> Response:
    note = f'<p class="error">{html.escape(message)}</p>' if message else ""
    body = _LOGIN_PAGE.format(message=note).encode()
    return reply(status, "text/html; charset=utf-8", body, **headers)


def _too_soon(wait_s: float) -> Response:
    seconds = max(1, math.ceil(wait_s))
    return _login_page(
        HTTPStatus.TOO_MANY_REQUESTS,
        f"Too many attempts: wait {seconds} s.",
        **{"Retry-After": str(seconds)},
    )


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "?"


async def _read_form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST, at most MAX_FORM_BYTES of it."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) >= MAX_FORM_BYTES:
            break
    text = body[:MAX_FORM_BYTES].decode("utf-8", errors="replace")
    return {key: values[-1] for key, values in parse_qs(text).items()}


def _login_route(auth: PageAuth) -> Route:
    async def login(request: Request) -> Response:
        if request.method != "POST":
            return _login_page()
        client = _client(request)
        wait_s = auth.wait_s(client)
        if wait_s > 0:
            return _too_soon(wait_s)
        if not auth.try_check():
            return _login_page(
                HTTPStatus.TOO_MANY_REQUESTS, "Busy: try again.", **{"Retry-After": "1"}
            )
        try:
            form = await _read_form(request)
            token, user = form.get("token", ""), form.get("user", "")
            password = form.get("password", "")
            right = (bool(token) and auth.token_ok(token)) or (
                bool(user) and await anyio.to_thread.run_sync(auth.password_ok, user, password)
            )
        finally:
            auth.end_check()
        if not right:
            delay = auth.failed(client)
            log.warning("page: wrong credentials from %s (next attempt in %.2f s)", client, delay)
            return _login_page(HTTPStatus.UNAUTHORIZED, "Wrong user, password or token.")
        auth.succeeded(client)
        secure = "; Secure" if request.url.scheme == "https" else ""
        log.info("page: %s signed in%s", client, f" as {user}" if user and not token else "")
        return Response(
            status_code=HTTPStatus.SEE_OTHER,
            headers={
                "Location": "/",
                "Cache-Control": "no-store",
                "Set-Cookie": f"{COOKIE}={auth.new_session()}; HttpOnly; SameSite=Strict; "
                f"Path=/; Max-Age={int(SESSION_S)}{secure}",
            },
        )

    return login


def protect(routes: Mapping[str, Route], auth: PageAuth) -> dict[str, Route]:
    """``routes`` behind ``auth`` (all but OPEN_PATHS), plus ``/login``."""

    def guarded(route: Route, path: str) -> Route:
        async def serve(request: Request) -> Response:
            if auth.allowed(request):
                return await route(request)
            if request.headers.get("authorization"):
                client = _client(request)
                wait_s = auth.wait_s(client)
                if wait_s > 0:
                    return _too_soon(wait_s)
                auth.failed(client)
            if path in ("/", "/index.html"):
                return Response(
                    status_code=HTTPStatus.SEE_OTHER,
                    headers={"Location": "/login", "Cache-Control": "no-store"},
                )
            return reply(
                HTTPStatus.UNAUTHORIZED,
                "text/plain",
                b"sign in at /login, or send 'Authorization: Bearer <token>'\n",
                **{"WWW-Authenticate": 'Bearer realm="emojify"'},
            )

        return serve

    protected = {
        path: route if path in OPEN_PATHS else guarded(route, path)
        for path, route in routes.items()
    }
    protected["/login"] = _login_route(auth)
    return protected
