"""CurveZMQ for every socket of the services: settings, ZAP authenticator, checks (the key
files themselves: ``shared.key_files``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import zmq
from pydantic import AfterValidator, Field

from shared.key_files import CurveError, KeyPair, load_allowed_keys, load_keypair, load_public_key
from shared.log_throttle import LogThrottle, and_more
from shared.settings import ServiceSettings
from shared.transport import Socket, is_loopback_endpoint

__all__ = [
    "ClientKeys",
    "CurveError",
    "CurveServerSettings",
    "CurveSettings",
    "PublicKeyFile",
    "check_network_security",
    "client_keys",
    "curve_client",
    "curve_server",
    "require_settings",
    "secure_servers",
    "start_authenticator",
]

log = logging.getLogger(__name__)

#: The ZAP domain our server sockets announce; the authenticator judges keys for it alone.
ZAP_DOMAIN: Final = "emojify"
REFUSED_LOG_INTERVAL_S: Final = 5.0


@dataclass(frozen=True)
class ClientKeys:
    """What a client socket needs: its own key pair and the server's public key."""

    own: KeyPair
    server_public: bytes

    def apply(self, socket: Socket) -> None:
        """Make ``socket`` a CURVE client (call before connect)."""
        curve_client(socket, self.own, self.server_public)


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
        description="This service's secret key file NAME.key_secret (python -m commands.keys "
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
