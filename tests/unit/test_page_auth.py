"""The page's credentials: hashed passwords, tokens, sessions, and slower wrong attempts."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.display.page_auth import (
    FIRST_DELAY_S,
    MAX_DELAY_S,
    SESSION_S,
    AuthError,
    PageAuth,
    hash_password,
    load_page_auth,
    verify_password,
)


def test_a_password_hash_verifies_only_its_password() -> None:
    stored = hash_password("correct horse", iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$") and "correct" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("correct horse", "md5$1$00$00")
    assert not verify_password("correct horse", "garbage")
    assert hash_password("same", iterations=1000) != hash_password("same", iterations=1000)


def test_wrong_attempts_wait_longer_each_time_until_a_success() -> None:
    auth = PageAuth("t" * 20, {})
    delays = [auth.failed("10.0.0.1") for _ in range(8)]
    assert delays[0] == FIRST_DELAY_S and delays[1] == 2 * FIRST_DELAY_S
    assert delays[-1] == MAX_DELAY_S and delays == sorted(delays)
    assert auth.failed("10.0.0.2") == FIRST_DELAY_S, "counted per address"
    auth.succeeded("10.0.0.1")
    assert auth.failed("10.0.0.1") == FIRST_DELAY_S


def test_sessions_expire() -> None:
    now = [0.0]
    auth = PageAuth(None, {"ada": hash_password("pw", iterations=1000)}, clock=lambda: now[0])
    session = auth.new_session()
    assert auth.session_ok(session) and not auth.session_ok("forged")
    now[0] = SESSION_S + 1
    assert not auth.session_ok(session)
    assert auth.password_ok("ada", "pw") and not auth.password_ok("bob", "pw")
    assert not auth.token_ok("anything")


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
    with pytest.raises(AuthError, match=r"users:1: expected 'user:pbkdf2_sha256"):
        load_page_auth(None, users)
    users.write_text(f"# the page's users\nada:{hash_password('pw', iterations=1000)}\n")
    auth = load_page_auth(None, users)
    assert auth is not None and auth.password_ok("ada", "pw")
