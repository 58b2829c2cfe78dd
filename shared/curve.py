"""CurveZMQ for every socket of the services: key files, settings, ZAP authenticator, checks."""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import zmq
from pydantic import AfterValidator, Field

from shared.log_throttle import LogThrottle, and_more
from shared.settings import ServiceSettings
from shared.transport import Socket, is_loopback_endpoint

__all__ = [
    "PUBLIC_SUFFIX",
    "SECRET_SUFFIX",
    "ClientKeys",
    "CurveError",
    "CurveServerSettings",
    "CurveSettings",
    "KeyPair",
    "PublicKeyFile",
    "check_network_security",
    "client_keys",
    "curve_client",
    "curve_server",
    "generate_keypair",
    "load_allowed_keys",
    "load_keypair",
    "load_public_key",
    "migrate_key_folder",
    "require_settings",
    "secure_servers",
    "start_authenticator",
]

log = logging.getLogger(__name__)

#: pyzmq's names (``zmq.auth.create_certificates``): ``NAME.key`` is the public certificate,
#: ``NAME.key_secret`` the secret one (mode 0600); ``zmq.auth.load_certificates`` reads every
#: ``*.key`` of a folder as public.
PUBLIC_SUFFIX: Final = ".key"
SECRET_SUFFIX: Final = ".key_secret"
#: The public key's name before the project took pyzmq's (its ``NAME.key`` was the secret).
OLD_PUBLIC_SUFFIX: Final = ".key.pub"
MIGRATE_HINT: Final = "python -m services.keys migrate DIR moves an old key folder to pyzmq's names"
NAME_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,64}$"
#: A z85-encoded CURVE key is 40 characters.
Z85_KEY_LEN: Final = 40
#: The ZAP domain our server sockets announce; the authenticator judges keys for it alone.
ZAP_DOMAIN: Final = "emojify"
REFUSED_LOG_INTERVAL_S: Final = 5.0


class CurveError(ValueError):
    """A key file or key folder is missing, unreadable or not a CURVE certificate."""


@dataclass(frozen=True)
class KeyPair:
    """A service's own CURVE keys, z85-encoded (40 bytes each)."""

    public: bytes
    secret: bytes


@dataclass(frozen=True)
class ClientKeys:
    """What a client socket needs: its own key pair and the server's public key."""

    own: KeyPair
    server_public: bytes

    def apply(self, socket: Socket) -> None:
        """Make ``socket`` a CURVE client (call before connect)."""
        curve_client(socket, self.own, self.server_public)


# --- key files -----------------------------------------------------------------------------


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
            f"{path}: expected {Z85_KEY_LEN}-character z85 keys (python -m services.keys)"
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
            f"written by `python -m services.keys generate` ({MIGRATE_HINT})"
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


# --- sockets -------------------------------------------------------------------------------


def curve_server(socket: Socket, keys: KeyPair) -> None:
    """Make ``socket`` a CURVE server (call before bind); clients are checked over ZAP."""
    socket.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
    socket.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
    socket.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    socket.setsockopt(zmq.CURVE_SERVER, 1)


def curve_client(socket: Socket, keys: KeyPair, server_public: bytes) -> None:
    """Make ``socket`` a CURVE client of the server with ``server_public`` (before connect)."""
    socket.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
    socket.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    socket.setsockopt(zmq.CURVE_SERVERKEY, server_public)


class _AllowedKeys:
    """ZAP credentials provider: a fixed set of z85 public keys; refusals logged, throttled."""

    def __init__(self, allowed: frozenset[bytes], service: str) -> None:
        self._allowed = allowed
        self._service = service
        self._throttle = LogThrottle(REFUSED_LOG_INTERVAL_S)

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self._allowed:
            return True
        suppressed = self._throttle.ready()
        if suppressed is not None:
            more = and_more(suppressed)
            log.warning(
                "%s: refused a CURVE client with public key %s: not in the allowed keys%s",
                self._service,
                key.decode(errors="replace"),
                more,
            )
        return False


def start_authenticator(
    ctx: zmq.Context[Any], allowed: frozenset[bytes], service: str
) -> Callable[[], None]:
    """Start a ZAP handler on ``ctx`` admitting only ``allowed`` keys; returns its stop.

    Start it before binding a CURVE server socket: without a ZAP handler libzmq lets every
    client with any key in. One per context (it binds ``inproc://zeromq.zap.01``).
    """
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(ctx, log=logging.getLogger("zmq.auth"))
    auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=_AllowedKeys(allowed, service))
    try:
        auth.start()
    except zmq.ZMQError as error:
        auth.stop()
        raise CurveError(f"cannot start the ZAP authenticator: {error}") from error
    log.info("CURVE on: %d allowed client key(s)", len(allowed))
    return auth.stop


def secure_servers(
    ctx: zmq.Context[Any], settings: CurveServerSettings, sockets: Iterable[Socket], service: str
) -> Callable[[], None]:
    """With keys set: start the authenticator and make ``sockets`` CURVE servers (before bind).

    Returns what stops the authenticator (nothing to stop with CURVE off).
    """
    keys = settings.keypair()
    if keys is None or settings.curve_allowed_dir is None:
        return lambda: None
    stop = start_authenticator(ctx, load_allowed_keys(settings.curve_allowed_dir), service)
    try:
        for socket in sockets:
            curve_server(socket, keys)
    except BaseException:
        stop()
        raise
    return stop


def client_keys(settings: CurveSettings, server_public_key: Path | None) -> ClientKeys | None:
    """Keys for a client socket to the server whose public key file is given; None when off."""
    keys = settings.keypair()
    if keys is None or server_public_key is None:
        return None
    return ClientKeys(keys, load_public_key(server_public_key))


# --- settings ------------------------------------------------------------------------------


def _secret_key_file(path: Path) -> Path:
    load_keypair(path)
    return path


def _public_key_file(path: Path) -> Path:
    load_public_key(path)
    return path


def _allowed_dir(path: Path) -> Path:
    load_allowed_keys(path)
    return path


#: Paths checked when settings load: a missing or unreadable file stops the service (exit 2).
SecretKeyFile = Annotated[Path, AfterValidator(_secret_key_file)]
PublicKeyFile = Annotated[Path, AfterValidator(_public_key_file)]
AllowedKeysDir = Annotated[Path, AfterValidator(_allowed_dir)]


class CurveSettings(ServiceSettings):
    """Own key pair and the opt-out; every service's settings derive from this."""

    curve_secret_key: SecretKeyFile | None = Field(
        default=None,
        description="This service's secret key file NAME.key_secret (python -m services.keys "
        "generate). Set: every socket uses CurveZMQ. Unset: plain text, loopback only.",
    )
    allow_insecure_network: bool = Field(
        default=False,
        description="Allow endpoints off this host without CURVE keys (frames of people's "
        "faces in plain text on the network); only for a trusted, isolated network.",
    )

    def check_curve(self, endpoints: Mapping[str, str], **peer_keys: Path | None) -> None:
        """ValueError when keys are given in part, or an endpoint leaves the host in plain text.

        ``peer_keys``: the other key settings of the service (public keys of its servers, its
        allowed-clients folder), all needed with ``curve_secret_key`` and none without it.
        """
        if self.curve_secret_key is not None:
            require_settings(peer_keys.items(), "curve_secret_key")
        else:
            given = [name for name, value in peer_keys.items() if value is not None]
            if given:
                raise ValueError(f"{', '.join(given)} set but curve_secret_key is not")
        check_network_security(
            endpoints,
            curve=self.curve_secret_key is not None,
            allow_insecure=self.allow_insecure_network,
            env_prefix=str(self.model_config.get("env_prefix", "")),
        )

    def keypair(self) -> KeyPair | None:
        """The service's own keys, None when CURVE is off."""
        return None if self.curve_secret_key is None else load_keypair(self.curve_secret_key)


class CurveServerSettings(CurveSettings):
    """A service that binds: it also needs the public keys of the clients it admits."""

    curve_allowed_dir: AllowedKeysDir | None = Field(
        default=None,
        description="Folder of NAME.key files (public keys) of the clients allowed to connect "
        "(needed with curve_secret_key).",
    )


def check_network_security(
    endpoints: Mapping[str, str],
    *,
    curve: bool,
    allow_insecure: bool,
    env_prefix: str,
) -> None:
    """Refuse an endpoint off this host without CURVE unless the opt-out is set (ValueError).

    ``endpoints`` maps setting names to endpoints; the message names the first one that would
    carry plain text over the network and the two ways to fix it.
    """
    if curve or allow_insecure:
        return
    for name, endpoint in endpoints.items():
        if not is_loopback_endpoint(endpoint):
            raise ValueError(
                f"{name}={endpoint} leaves this host but no CURVE keys are set, so frames "
                f"would cross the network in plain text; set --curve-secret-key (and the peer "
                f"keys, see README 'Split layout') or, on a trusted isolated network only, "
                f"--allow-insecure-network ({env_prefix}ALLOW_INSECURE_NETWORK=true)"
            )


def require_settings(present: Iterable[tuple[str, object]], why: str) -> None:
    """ValueError naming every setting in ``present`` whose value is None."""
    missing = [name for name, value in present if value is None]
    if missing:
        raise ValueError(f"{why} also needs {', '.join(missing)}")
