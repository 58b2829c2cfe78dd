"""``python -m commands.keys``: CurveZMQ key pairs for the services (``generate``) in pyzmq's
format, the move of an old key folder to it (``migrate``), and the live page's credentials
(``http-token``, ``http-user``)."""

from __future__ import annotations

import getpass
import re
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field
from pydantic_settings import CliPositionalArg, CliSubCommand, SettingsConfigDict, get_subcommand

from shared.key_files import (
    NAME_PATTERN,
    PUBLIC_SUFFIX,
    SECRET_SUFFIX,
    CurveError,
    generate_keypair,
    load_keypair,
    migrate_key_folder,
)
from shared.passwords import MIN_PASSWORD_CHARS, hash_password
from shared.settings import EXIT_CANNOT_START, CommandSettings, Subcommand, load_settings

__all__ = ["main"]


class Generate(Subcommand):
    """Write a key pair per --name."""

    dir: Path = Field(description="Folder for the key files.")
    name: list[str] = Field(
        description="Service name, e.g. capture, display, worker (repeat or comma-separate)."
    )
    force: bool = Field(default=False, description="Replace existing key files.")


class Migrate(Subcommand):
    """Rename an old key folder (NAME.key secret, NAME.key.pub public) and its subfolders to
    pyzmq's names (NAME.key_secret, NAME.key), in place."""

    dir: CliPositionalArg[list[Path]] = Field(description="Key folder(s).")


class HttpToken(Subcommand):
    """Write a random access token for the page (mode 0600)."""

    file: CliPositionalArg[Path] = Field(
        description="Token file (the display's --http-token-file)."
    )
    force: bool = Field(default=False, description="Replace an existing file.")


class HttpUser(Subcommand):
    """Add or replace a user of the page; the password is read from the terminal (or one line
    of standard input) and stored hashed."""

    file: CliPositionalArg[Path] = Field(
        description="Users file (the display's --http-users-file)."
    )
    user: CliPositionalArg[str] = Field(description="User name (letters, digits, '_', '.', '-').")


class KeysSettings(CommandSettings):
    """Make CurveZMQ key pairs in pyzmq's format: NAME.key_secret (secret, mode 0600; stays on
    its host) and NAME.key (public; copy it to the peers); and the page's credentials."""

    model_config = SettingsConfigDict(
        env_prefix="EMOJIFY_KEYS_", cli_prog_name="python -m commands.keys"
    )

    generate: CliSubCommand[Generate] = Field(description=Generate.__doc__)
    migrate: CliSubCommand[Migrate] = Field(description=Migrate.__doc__)
    http_token: CliSubCommand[HttpToken] = Field(description=HttpToken.__doc__)
    http_user: CliSubCommand[HttpUser] = Field(description=HttpUser.__doc__)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


def _http_token(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise OSError(f"{path} exists (pass --force to replace it)")
    _write_private(path, secrets.token_urlsafe(32) + "\n")
    print(f"page token written to {path}: use --http-token-file {path}")


def _http_user(path: Path, user: str) -> None:
    if not re.match(NAME_PATTERN, user):
        raise CurveError(f"user: expected letters, digits, '_', '.', '-' (1-64), found {user!r}")
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {user}: ")
        if getpass.getpass("again: ") != password:
            raise CurveError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_PASSWORD_CHARS:
        raise CurveError(f"password: expected {MIN_PASSWORD_CHARS} characters or more")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [line for line in lines if line.partition(":")[0] != user]
    _write_private(path, "\n".join([*kept, f"{user}:{hash_password(password)}"]) + "\n")
    print(f"user {user} written to {path}: use --http-users-file {path}")


def _names(values: Sequence[str]) -> list[str]:
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    bad = [name for name in names if not re.match(NAME_PATTERN, name)]
    if bad:
        raise CurveError(f"--name: expected letters, digits, '_', '.', '-' (1-64), found {bad}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the key pairs asked for; exit 2 on a bad name or an existing file."""
    command = get_subcommand(load_settings(KeysSettings, argv), is_required=False)
    if command is None:
        print(
            "commands.keys: name a command: generate, migrate, http-token or http-user "
            "(--help says more)",
            file=sys.stderr,
        )
        return EXIT_CANNOT_START
    try:
        if isinstance(command, HttpToken):
            _http_token(command.file, command.force)
            return 0
        if isinstance(command, HttpUser):
            _http_user(command.file, command.user)
            return 0
        if isinstance(command, Migrate):
            for folder in command.dir:
                moved = migrate_key_folder(folder)
                print("\n".join(moved) if moved else f"{folder}: already in pyzmq's format")
            return 0
        assert isinstance(command, Generate)
        for name in _names(command.name):
            secret_path, public_path = generate_keypair(command.dir, name, overwrite=command.force)
            public = load_keypair(secret_path).public.decode()
            print(f"{name}: secret {secret_path} (keep it here), public {public_path} ({public})")
    except (CurveError, OSError) as error:
        print(f"commands.keys: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    print(
        f"Copy each *{PUBLIC_SUFFIX} (public) to the hosts that need it, never a "
        f"*{SECRET_SUFFIX}: a server's allowed folder "
        "(curve_allowed_dir) holds its clients' public keys; a client names its server's "
        "public key (curve_capture_public_key, curve_display_public_key)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
