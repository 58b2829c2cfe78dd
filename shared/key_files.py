"""CURVE key files in pyzmq's certificate format: make them, read them, check them, migrate.

``NAME.key`` is the public certificate and ``NAME.key_secret`` the secret one, as pyzmq's
``zmq.auth.create_certificates`` writes them and its ``load_certificates`` reads them. A secret
where a public key is expected, and a folder of the project's old layout (``NAME.key`` secret,
``NAME.key.pub`` public), are refused; ``migrate_key_folder`` moves an old folder in place.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "MIGRATE_HINT",
    "NAME_PATTERN",
    "OLD_PUBLIC_SUFFIX",
    "PUBLIC_SUFFIX",
    "SECRET_SUFFIX",
    "CurveError",
    "KeyPair",
    "generate_keypair",
    "load_allowed_keys",
    "load_keypair",
    "load_public_key",
    "migrate_key_folder",
]

log = logging.getLogger(__name__)

#: pyzmq's names (``zmq.auth.create_certificates``): ``NAME.key`` is the public certificate,
#: ``NAME.key_secret`` the secret one (mode 0600); ``zmq.auth.load_certificates`` reads every
#: ``*.key`` of a folder as public.
PUBLIC_SUFFIX: Final = ".key"
SECRET_SUFFIX: Final = ".key_secret"
#: The public key's name before the project took pyzmq's (its ``NAME.key`` was the secret).
OLD_PUBLIC_SUFFIX: Final = ".key.pub"
MIGRATE_HINT: Final = "python -m commands.keys migrate DIR moves an old key folder to pyzmq's names"
NAME_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,64}$"
#: A z85-encoded CURVE key is 40 characters.
Z85_KEY_LEN: Final = 40


class CurveError(ValueError):
    """A key file or key folder is missing, unreadable or not a CURVE certificate."""


@dataclass(frozen=True)
class KeyPair:
    """A service's own CURVE keys, z85-encoded (40 bytes each)."""

    public: bytes
    secret: bytes


def _read_certificate(path: Path) -> tuple[bytes, bytes | None]:
    from zmq.auth.certs import load_certificate

    if not path.is_file():
        raise CurveError(f"expected a key file at {path}, found {_what_is(path)}")
    try:
        public, secret = load_certificate(path)
    except (OSError, ValueError) as error:
        raise CurveError(f"cannot read CURVE key file {path}: {error}") from error
    if len(public) != Z85_KEY_LEN or (secret is not None and len(secret) != Z85_KEY_LEN):
        raise CurveError(
            f"{path}: expected {Z85_KEY_LEN}-character z85 keys (python -m commands.keys)"
        )
    return public, secret


def _what_is(path: Path) -> str:
    if not path.exists():
        return "nothing (no such file)"
    return "a folder" if path.is_dir() else "something that is not a regular file"


def load_keypair(path: Path) -> KeyPair:
    """The key pair in a secret key file ``NAME.key_secret``; CurveError if it has no secret
    key, or if it is named as a public one (``NAME.key``: a key folder of the old layout)."""
    public, secret = _read_certificate(path)
    if secret is None:
        raise CurveError(
            f"{path} holds only a public key; expected the secret key file NAME{SECRET_SUFFIX} "
            f"written by `python -m commands.keys generate` ({MIGRATE_HINT})"
        )
    if path.name.endswith(PUBLIC_SUFFIX):
        raise CurveError(
            f"{path} holds a secret key under a public key's name (NAME{PUBLIC_SUFFIX} is "
            f"public in pyzmq's format, NAME{SECRET_SUFFIX} secret): {MIGRATE_HINT}"
        )
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "%s is readable by other users (mode %o): chmod 600 it", path, stat.S_IMODE(mode)
        )
    return KeyPair(public, secret)


def load_public_key(path: Path) -> bytes:
    """The public key in ``NAME.key``; CurveError when the file holds a secret key too (a
    secret never goes where public keys are copied)."""
    public, secret = _read_certificate(path)
    if secret is not None:
        raise CurveError(
            f"{path} holds a secret key where a public key is expected: copy NAME{PUBLIC_SUFFIX} "
            f"(public) to peers, never NAME{SECRET_SUFFIX} ({MIGRATE_HINT})"
        )
    return public


def load_allowed_keys(folder: Path) -> frozenset[bytes]:
    """Public keys of every ``*.key`` in ``folder``, as ``zmq.auth.load_certificates`` reads
    them; CurveError when there is none, when one holds a secret, or when the folder is of the
    old layout (``*.key.pub``) or holds a ``*.key_secret``."""
    if not folder.is_dir():
        raise CurveError(
            f"expected a folder of allowed public keys at {folder}, found {_what_is(folder)}"
        )
    try:
        files = sorted(folder.glob("*" + PUBLIC_SUFFIX))
        old = sorted(folder.glob("*" + OLD_PUBLIC_SUFFIX))
        secrets = sorted(folder.glob("*" + SECRET_SUFFIX))
    except OSError as error:
        raise CurveError(f"cannot list {folder}: {error}") from error
    if old:
        raise CurveError(
            f"{folder} holds public keys under the old name {old[0].name}: {MIGRATE_HINT}"
        )
    if secrets:
        raise CurveError(
            f"{folder} is a folder of public keys and holds a secret one, {secrets[0].name}: "
            "move it out"
        )
    if not files:
        raise CurveError(
            f"{folder} holds no *{PUBLIC_SUFFIX} file, so no client could connect; copy the "
            f"public keys of the services allowed to connect there"
        )
    return frozenset(load_public_key(path) for path in files)


def generate_keypair(folder: Path, name: str, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``NAME.key_secret`` (secret, mode 0600) and ``NAME.key`` (public) in ``folder``.

    Uses pyzmq's ``create_certificates`` in a private temporary folder, then renames both files
    into place, so a reader never sees half a key. Returns (secret path, public path).
    """
    from zmq.auth.certs import create_certificates

    secret_path = folder / f"{name}{SECRET_SUFFIX}"
    public_path = folder / f"{name}{PUBLIC_SUFFIX}"
    if not overwrite:
        for path in (secret_path, public_path):
            if path.exists():
                raise CurveError(f"{path} exists; pass --force to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".keys-") as scratch:
        # The scratch folder is 0700 (mkdtemp): the secret is never readable by others, even
        # before the chmod, and appears at its final name only complete.
        public_tmp, secret_tmp = create_certificates(scratch, name)
        os.chmod(secret_tmp, 0o600)
        os.chmod(public_tmp, 0o644)
        os.replace(secret_tmp, secret_path)
        os.replace(public_tmp, public_path)
    return secret_path, public_path


def migrate_key_folder(folder: Path) -> list[str]:
    """Rename the key files of ``folder`` and its subfolders from the old layout (``NAME.key``
    secret, ``NAME.key.pub`` public) to pyzmq's (``NAME.key_secret``, ``NAME.key``), in place.

    Each file moves by one rename, the secret first, so an interrupted migration is finished
    by running it again; files already in pyzmq's layout are left alone. Returns one line per
    file moved. CurveError when a name is taken by a different key.
    """
    if not folder.is_dir():
        raise CurveError(f"expected a key folder at {folder}, found {_what_is(folder)}")
    done: list[str] = []
    for old_secret in sorted(folder.rglob("*" + PUBLIC_SUFFIX)):
        if _read_certificate(old_secret)[1] is None:
            continue  # a public key already in pyzmq's layout
        new_secret = old_secret.with_name(old_secret.name[: -len(PUBLIC_SUFFIX)] + SECRET_SUFFIX)
        if new_secret.exists():
            raise CurveError(f"{old_secret} holds a secret key and {new_secret} exists: keep one")
        os.chmod(old_secret, 0o600)
        os.replace(old_secret, new_secret)
        done.append(f"{old_secret} -> {new_secret} (secret)")
    for old_public in sorted(folder.rglob("*" + OLD_PUBLIC_SUFFIX)):
        public = _read_certificate(old_public)[0]
        new_public = old_public.with_name(
            old_public.name[: -len(OLD_PUBLIC_SUFFIX)] + PUBLIC_SUFFIX
        )
        if new_public.exists():
            if _read_certificate(new_public)[0] != public:
                raise CurveError(f"{old_public} and {new_public} hold different public keys")
            old_public.unlink()
            done.append(f"{old_public} removed (the same key is in {new_public})")
            continue
        os.chmod(old_public, 0o644)
        os.replace(old_public, new_public)
        done.append(f"{old_public} -> {new_public} (public)")
    return done
