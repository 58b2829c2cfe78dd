"""``python -m services.keys generate``: CurveZMQ key pairs for the services."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from shared.curve import NAME_PATTERN, PUBLIC_SUFFIX, CurveError, generate_keypair, load_keypair
from shared.settings import EXIT_CANNOT_START

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.keys",
        description="Make CurveZMQ key pairs: NAME.key (secret, mode 0600; stays on its host) "
        "and NAME.key.pub (public; copy it to the peers).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write a key pair per --name")
    generate.add_argument("--dir", type=Path, required=True, help="folder for the key files")
    generate.add_argument(
        "--name",
        action="append",
        required=True,
        help="service name, e.g. capture, display, worker (repeat or comma-separate)",
    )
    generate.add_argument("--force", action="store_true", help="replace existing key files")
    return parser


def _names(values: Sequence[str]) -> list[str]:
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    bad = [name for name in names if not re.match(NAME_PATTERN, name)]
    if bad:
        raise CurveError(f"--name: expected letters, digits, '_', '.', '-' (1-64), found {bad}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the key pairs asked for; exit 2 on a bad name or an existing file."""
    args = _parser().parse_args(argv)
    try:
        for name in _names(args.name):
            secret_path, public_path = generate_keypair(args.dir, name, overwrite=args.force)
            public = load_keypair(secret_path).public.decode()
            print(f"{name}: secret {secret_path} (keep it here), public {public_path} ({public})")
    except (CurveError, OSError) as error:
        print(f"services.keys: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    print(
        f"Copy each *{PUBLIC_SUFFIX} to the hosts that need it: a server's allowed folder "
        "(curve_allowed_dir) holds its clients' public keys; a client names its server's "
        "public key (curve_capture_public_key, curve_display_public_key)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
