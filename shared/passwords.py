"""The page's users and their password hashes: argon2id (argon2-cffi), and the PBKDF2 hashes
of earlier releases, still accepted and replaced by argon2id at the next sign-in."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "ARGON2_PREFIX",
    "MIN_PASSWORD_CHARS",
    "PBKDF2_PREFIX",
    "UsersFileError",
    "hash_password",
    "needs_rehash",
    "read_users",
    "verify_password",
    "write_users",
]

#: The shortest password ``python -m commands.keys http-user`` accepts.
MIN_PASSWORD_CHARS: Final = 12
#: Hashes of earlier releases: PBKDF2-SHA256, accepted and replaced at the next sign-in.
PBKDF2_PREFIX: Final = "pbkdf2_sha256$"
ARGON2_PREFIX: Final = "$argon2id$"

_HASHER: Final = PasswordHasher()


class UsersFileError(ValueError):
    """A users file is missing, unreadable or malformed."""


def hash_password(password: str) -> str:
    """An argon2id hash (argon2-cffi's ``$argon2id$...`` string, salt and parameters in it)."""
    return _HASHER.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (argon2id, or a PBKDF2 hash of a release
    before it); constant-time either way."""
    if stored.startswith(PBKDF2_PREFIX):
        try:
            _, iterations, salt, digest = stored.split("$")
            actual = hashlib.pbkdf2_hmac(
                "sha256", password.encode(), bytes.fromhex(salt), int(iterations)
            )
        except ValueError:
            return False
        return hmac.compare_digest(actual.hex(), digest)
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` is older than today's hash (PBKDF2, or weaker argon2 settings)."""
    if stored.startswith(PBKDF2_PREFIX):
        return True
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return False


def write_users(path: Path, users: Mapping[str, str]) -> None:
    """The users file, replaced whole through a private temporary file (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{user}:{stored}\n" for user, stored in users.items()))
    os.replace(tmp, path)


def read_users(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UsersFileError(f"http_users_file {path}: {error}") from error
    users = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, stored = line.strip().partition(":")
        if not sep or not user or not stored.startswith((ARGON2_PREFIX, PBKDF2_PREFIX)):
            raise UsersFileError(
                f"http_users_file {path}:{number}: expected 'user:$argon2id$...' "
                "(python -m commands.keys http-user)"
            )
        users[user] = stored
    if not users:
        raise UsersFileError(f"http_users_file {path}: no user in it")
    return users
