"""The page's credentials: hashed passwords (argon2id, older PBKDF2 rehashed), tokens,
sessions, and the bounded table of addresses that must wait after a wrong attempt."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.display.page_auth import (
    FAILURES_KEPT,
    FIRST_DELAY_S,
    FORGET_S,
    MAX_DELAY_S,
    SESSION_S,
    SESSIONS_KEPT,
    AuthError,
    PageAuth,
    load_page_auth,
)
from shared.passwords import (
    hash_password,
    needs_rehash,
    read_users,
    verify_password,
)


def _pbkdf2(password: str, iterations: int = 1000) -> str:
    """A hash as releases before argon2id wrote it."""
    salt = bytes(range(16))
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def test_a_password_hash_is_argon2id_and_verifies_only_its_password() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batter", stored)
    assert not verify_password("correct horse battery", "md5$1$00$00")
    assert not verify_password("correct horse battery", "garbage")
    assert hash_password("same") != hash_password("same")  # salted
    assert not needs_rehash(stored)


def test_an_old_pbkdf2_hash_verifies_and_asks_for_a_rehash() -> None:
    old = _pbkdf2("correct horse battery")
    assert verify_password("correct horse battery", old)
    assert not verify_password("wrong", old)
    assert needs_rehash(old)


def test_a_sign_in_with_an_old_hash_rewrites_the_users_file(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"ada:{_pbkdf2('correct horse battery')}\nbob:{hash_password('x' * 12)}\n")
    auth = load_page_auth(None, users)
    assert auth is not None
    assert not auth.password_ok("ada", "wrong password")
    assert users.read_text().startswith("ada:pbkdf2_sha256$")  # nothing written on a failure
    assert auth.password_ok("ada", "correct horse battery")
    stored = read_users(users)
    assert stored["ada"].startswith("$argon2id$") and set(stored) == {"ada", "bob"}
    assert users.stat().st_mode & 0o777 == 0o600
    assert auth.password_ok("ada", "correct horse battery")


def test_wrong_attempts_wait_longer_each_time_until_a_success() -> None:
    now = [100.0]
    auth = PageAuth("t" * 20, {}, clock=lambda: now[0])
    delays = [auth.failed("10.0.0.1") for _ in range(8)]
    assert delays[0] == FIRST_DELAY_S and delays[1] == 2 * FIRST_DELAY_S
    assert delays[-1] == MAX_DELAY_S and delays == sorted(delays)
    assert auth.wait_s("10.0.0.1") == MAX_DELAY_S
    now[0] += MAX_DELAY_S
    assert auth.wait_s("10.0.0.1") == 0.0
    assert auth.failed("10.0.0.2") == FIRST_DELAY_S, "counted per address"
    auth.succeeded("10.0.0.1")
    assert auth.wait_s("10.0.0.1") == 0.0
    assert auth.failed("10.0.0.1") == FIRST_DELAY_S


def test_the_failure_table_is_bounded_and_forgets() -> None:
    now = [0.0]
    auth = PageAuth("t" * 20, {}, clock=lambda: now[0])
    for i in range(FAILURES_KEPT + 100):  # a scan of many addresses
        auth.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert auth.addresses_remembered() == FAILURES_KEPT
    assert auth.wait_s("10.0.0.0") == 0.0, "the least recent went first"
    now[0] += FORGET_S + 1
    assert auth.addresses_remembered() == 0


def test_sessions_expire_and_are_bounded() -> None:
    now = [0.0]
    auth = PageAuth(None, {"ada": hash_password("p" * 12)}, clock=lambda: now[0])
    session = auth.new_session()
    assert auth.session_ok(session) and not auth.session_ok("forged")
    now[0] = SESSION_S + 1
    assert not auth.session_ok(session)
    assert auth.password_ok("ada", "p" * 12) and not auth.password_ok("bob", "p" * 12)
    assert not auth.token_ok("anything")
    first = auth.new_session()
    for _ in range(SESSIONS_KEPT):
        auth.new_session()
    assert not auth.session_ok(first), "the oldest session goes when the table is full"


def test_checks_are_limited_to_max_checks_at_once() -> None:
    auth = PageAuth("t" * 20, {}, max_checks=2)
    assert auth.try_check() and auth.try_check()
    assert not auth.try_check()
    auth.end_check()
    assert auth.try_check()


def test_files_are_checked_when_loaded(tmp_path: Path) -> None:
    assert load_page_auth(None, None) is None
    short = tmp_path / "short.token"
    short.write_text("abc\n")
    with pytest.raises(AuthError, match="16 characters"):
        load_page_auth(short, None)
    with pytest.raises(AuthError, match="No such file"):
        load_page_auth(tmp_path / "missing", None)
    users = tmp_path / "users"
    users.write_text("ada:plaintext\n")
    with pytest.raises(AuthError, match=r"users:1: expected 'user:\$argon2id"):
        load_page_auth(None, users)
    users.write_text(f"# the page's users\nada:{hash_password('p' * 12)}\n")
    auth = load_page_auth(None, users)
    assert auth is not None and auth.password_ok("ada", "p" * 12)
