"""CurveZMQ: key files (pyzmq's format, migration), the loopback rule, and a real CURVE
ROUTER/DEALER pair on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from pydantic import ValidationError

from commands.keys import main as keys_main
from services.capture.settings import CaptureSettings
from services.display.settings import DisplaySettings
from services.inference.settings import WorkerSettings
from shared.curve import ClientKeys, check_network_security, curve_server, start_authenticator
from shared.key_files import (
    CurveError,
    KeyPair,
    generate_keypair,
    load_allowed_keys,
    load_keypair,
    load_public_key,
    migrate_key_folder,
)
from shared.messages import WorkRequest
from shared.settings import load_settings
from shared.transport import (
    Socket,
    bind,
    connect,
    make_socket,
    recv_multipart_timeout,
    send_nowait,
)
from shared.wire import decode, encode, split_envelope

pytestmark = pytest.mark.timeout(20)

#: How long a refused client is watched for a message that must not come.
REFUSED_WAIT_MS = 1500


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """capture, worker and rogue key pairs; allowed/ holds only the worker's public key."""
    folder = tmp_path / "keys"
    for name in ("capture", "worker", "rogue"):
        generate_keypair(folder, name)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "worker.key").write_bytes((folder / "worker.key").read_bytes())
    return tmp_path


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


# --- key files -----------------------------------------------------------------------------


def test_generate_writes_a_private_secret_and_a_public_key(tmp_path: Path) -> None:
    secret_path, public_path = generate_keypair(tmp_path / "k", "capture")
    assert (secret_path.name, public_path.name) == ("capture.key_secret", "capture.key")
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    pair = load_keypair(secret_path)
    assert len(pair.public) == len(pair.secret) == 40
    assert load_public_key(public_path) == pair.public
    assert b"secret-key" not in public_path.read_bytes()
    # Only the two key files are left: the temporary folder is gone.
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == [
        "capture.key",
        "capture.key_secret",
    ]


def test_generate_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    secret_path, _ = generate_keypair(tmp_path, "worker")
    before = load_keypair(secret_path)
    with pytest.raises(CurveError, match="exists"):
        generate_keypair(tmp_path, "worker")
    generate_keypair(tmp_path, "worker", overwrite=True)
    assert load_keypair(secret_path) != before


def test_keys_command_makes_each_name_and_exits_2_on_a_clash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["generate", "--dir", str(tmp_path), "--name", "capture,display", "--name", "worker"]
    assert keys_main(args) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        f"{n}.key{s}" for n in ("capture", "display", "worker") for s in ("", "_secret")
    ]
    assert keys_main(["generate", "--dir", str(tmp_path), "--name", "worker"]) == 2
    assert "--force" in capsys.readouterr().err
    assert keys_main(["generate", "--dir", str(tmp_path), "--name", "../evil"]) == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.key_secret", "no such file"),
        (lambda d: d, "a folder"),
        (lambda d: d / "worker.key", "only a public key"),
    ],
)
def test_load_keypair_says_what_is_wrong(
    keys: Path, make: Callable[[Path], Path], message: str
) -> None:
    with pytest.raises(CurveError, match=message):
        load_keypair(make(keys / "keys"))


def test_allowed_dir_must_hold_public_keys(keys: Path, tmp_path: Path) -> None:
    assert load_allowed_keys(keys / "allowed") == {load_public_key(keys / "keys/worker.key")}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CurveError, match=r"no \*\.key file"):
        load_allowed_keys(empty)
    with pytest.raises(CurveError, match="no such file"):
        load_allowed_keys(tmp_path / "absent")


def test_key_files_are_pyzmqs_own_both_ways(tmp_path: Path) -> None:
    """Ours read by pyzmq's loaders, and pyzmq's (create_certificates) used as ours."""
    from zmq.auth.certs import create_certificates, load_certificate, load_certificates

    secret_path, public_path = generate_keypair(tmp_path / "ours", "capture")
    pair = load_keypair(secret_path)
    assert load_certificate(secret_path) == (pair.public, pair.secret)
    assert load_certificate(public_path) == (pair.public, None)
    assert load_certificates(tmp_path / "ours") == {pair.public: True}
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    public_file, secret_file = create_certificates(theirs, "worker")
    assert (Path(public_file).name, Path(secret_file).name) == ("worker.key", "worker.key_secret")
    assert load_keypair(Path(secret_file)).public == load_public_key(Path(public_file))
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(public_file, allowed)
    assert load_allowed_keys(allowed) == {load_public_key(Path(public_file))}


def test_a_secret_where_a_public_key_belongs_is_refused(keys: Path) -> None:
    folder = keys / "keys"
    leaked = keys / "allowed" / "capture.key"
    shutil.copy(folder / "capture.key_secret", leaked)  # "the .key file", copied by hand
    with pytest.raises(CurveError, match="holds a secret key where a public key is expected"):
        load_public_key(leaked)
    with pytest.raises(CurveError, match="holds a secret key where a public key is expected"):
        load_allowed_keys(keys / "allowed")
    leaked.unlink()
    shutil.copy(folder / "capture.key_secret", keys / "allowed")
    with pytest.raises(CurveError, match=r"holds a secret one, capture\.key_secret"):
        load_allowed_keys(keys / "allowed")
    with pytest.raises(ValidationError, match="where a public key is expected"):
        WorkerSettings(
            curve_secret_key=folder / "worker.key_secret",
            curve_capture_public_key=folder / "capture.key_secret",
            curve_display_public_key=folder / "capture.key",
        )


def _old_layout(folder: Path, name: str) -> KeyPair:
    """A key pair as the project wrote it before pyzmq's names: NAME.key secret, .key.pub."""
    secret_path, public_path = generate_keypair(folder, name)
    pair = load_keypair(secret_path)
    os.replace(public_path, folder / f"{name}.key.pub")
    os.replace(secret_path, folder / f"{name}.key")
    return pair


def test_migrate_moves_an_old_key_folder_to_pyzmqs_names_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    capture, display = _old_layout(keys, "capture"), _old_layout(keys, "display")
    clients = keys / "clients"
    clients.mkdir()
    shutil.copy(keys / "display.key.pub", clients / "display.key.pub")
    # Before: the services refuse the old layout and say how to move it.
    with pytest.raises(CurveError, match=r"commands\.keys migrate"):
        load_keypair(keys / "capture.key")
    with pytest.raises(CurveError, match=r"commands\.keys migrate"):
        load_allowed_keys(clients)

    assert keys_main(["migrate", str(keys)]) == 0
    assert "capture.key -> " in capsys.readouterr().out
    assert sorted(p.name for p in keys.iterdir()) == [
        "capture.key",
        "capture.key_secret",
        "clients",
        "display.key",
        "display.key_secret",
    ]
    assert load_keypair(keys / "capture.key_secret") == capture
    assert load_public_key(keys / "display.key") == display.public
    assert stat.S_IMODE((keys / "display.key_secret").stat().st_mode) == 0o600
    assert load_allowed_keys(clients) == {display.public}
    # Again: nothing left to do, nothing changed.
    assert keys_main(["migrate", str(keys)]) == 0
    assert "already in pyzmq's format" in capsys.readouterr().out
    assert load_keypair(keys / "capture.key_secret") == capture


def test_migrate_finishes_an_interrupted_move(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    pair = _old_layout(keys, "worker")
    os.replace(keys / "worker.key", keys / "worker.key_secret")  # stopped after the first rename
    migrate_key_folder(keys)
    assert load_keypair(keys / "worker.key_secret") == pair
    assert load_public_key(keys / "worker.key") == pair.public
    assert not (keys / "worker.key.pub").exists()


# --- the loopback rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "curve", "allow", "refused"),
    [
        ("tcp://127.0.0.1:5555", False, False, False),
        ("tcp://localhost:5555", False, False, False),
        ("ipc:///tmp/x", False, False, False),
        ("tcp://0.0.0.0:5555", False, False, True),
        ("tcp://*:5555", False, False, True),
        ("tcp://10.20.0.1:5555", False, False, True),
        ("tcp://camera-host:5555", False, False, True),
        ("tcp://0.0.0.0:5555", True, False, False),
        ("tcp://0.0.0.0:5555", False, True, False),
    ],
)
def test_off_host_endpoints_need_keys_or_the_opt_out(
    endpoint: str, curve: bool, allow: bool, refused: bool
) -> None:
    def check() -> None:
        check_network_security(
            {"frames_endpoint": endpoint}, curve=curve, allow_insecure=allow, env_prefix="X_"
        )

    if refused:
        with pytest.raises(
            ValueError, match=rf"frames_endpoint={re.escape(endpoint)}.*X_ALLOW_INSECURE"
        ):
            check()
    else:
        check()


def test_each_service_refuses_a_network_bind_without_keys(
    keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_settings(CaptureSettings, ["--frames-endpoint", "tcp://0.0.0.0:5555"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "frames_endpoint=tcp://0.0.0.0:5555 leaves this host" in err
    assert "--allow-insecure-network" in err
    with pytest.raises(ValidationError, match="results_endpoint"):
        DisplaySettings(results_endpoint="tcp://0.0.0.0:5557", sinks=["http"])
    with pytest.raises(ValidationError, match=r"capture_endpoints\[0\]"):
        WorkerSettings(capture_endpoints=["tcp://192.168.77.1:5555"])
    opted_out = CaptureSettings(frames_endpoint="tcp://0.0.0.0:5555", allow_insecure_network=True)
    assert opted_out.allow_insecure_network
    secured = CaptureSettings(
        frames_endpoint="tcp://0.0.0.0:5555",
        curve_secret_key=keys / "keys/capture.key_secret",
        curve_allowed_dir=keys / "allowed",
    )
    assert secured.keypair() is not None


def test_keys_must_come_complete(keys: Path) -> None:
    with pytest.raises(ValidationError, match="also needs curve_allowed_dir"):
        CaptureSettings(curve_secret_key=keys / "keys/capture.key_secret")
    with pytest.raises(ValidationError, match="curve_display_public_key"):
        WorkerSettings(
            curve_secret_key=keys / "keys/worker.key_secret",
            curve_capture_public_key=keys / "keys/capture.key",
        )
    with pytest.raises(ValidationError, match="set but curve_secret_key is not"):
        WorkerSettings(curve_capture_public_key=keys / "keys/capture.key")
    with pytest.raises(ValidationError, match="no such file"):
        WorkerSettings(curve_capture_public_key=keys / "keys/nope.key")


# --- a real CURVE pair ---------------------------------------------------------------------


def _curve_router(ctx: zmq.Context[Any], keys: Path) -> tuple[Socket, str, Callable[[], None]]:
    router = make_socket(ctx, zmq.ROUTER)
    stop = start_authenticator(ctx, load_allowed_keys(keys / "allowed"), "test")
    curve_server(router, load_keypair(keys / "keys/capture.key_secret"))
    return router, bind(router, "tcp://127.0.0.1:*"), stop


def _dealer(ctx: zmq.Context[Any], endpoint: str, curve: ClientKeys | None) -> Socket:
    dealer = make_socket(ctx, zmq.DEALER, identity=b"worker-1")
    if curve is not None:
        curve.apply(dealer)
    connect(dealer, endpoint)
    return dealer


def test_curve_pair_with_the_right_keys_talks(keys: Path) -> None:
    server_ctx: zmq.Context[Any] = zmq.Context()
    client_ctx: zmq.Context[Any] = zmq.Context()
    router, endpoint, stop = _curve_router(server_ctx, keys)
    try:
        client = ClientKeys(
            load_keypair(keys / "keys/worker.key_secret"),
            load_public_key(keys / "keys/capture.key"),
        )
        dealer = _dealer(client_ctx, endpoint, client)
        request = WorkRequest(worker_id="worker-1", credit=2)
        assert send_nowait(dealer, encode(request))
        frames = recv_multipart_timeout(router, 5000)
        assert frames is not None
        identity, rest = split_envelope(frames)
        assert identity == b"worker-1" and decode(rest)[0] == request
        assert send_nowait(router, [identity, *encode(request)])
        assert recv_multipart_timeout(dealer, 5000) is not None
    finally:
        stop()
        server_ctx.destroy(linger=0)
        client_ctx.destroy(linger=0)


def _rogue(keys: Path) -> ClientKeys:
    return ClientKeys(
        load_keypair(keys / "keys/rogue.key_secret"), load_public_key(keys / "keys/capture.key")
    )


def _wrong_server(keys: Path) -> ClientKeys:
    # An allowed client that trusts the wrong server key (a man in the middle, say).
    return ClientKeys(
        load_keypair(keys / "keys/worker.key_secret"), load_public_key(keys / "keys/rogue.key")
    )


@pytest.mark.parametrize(
    "client",
    [_rogue, _wrong_server, lambda _: None],
    ids=["client-key-not-allowed", "wrong-server-key", "no-curve"],
)
def test_curve_server_gives_nothing_to_a_wrong_client(
    keys: Path, client: Callable[[Path], ClientKeys | None], caplog: pytest.LogCaptureFixture
) -> None:
    server_ctx: zmq.Context[Any] = zmq.Context()
    client_ctx: zmq.Context[Any] = zmq.Context()
    router, endpoint, stop = _curve_router(server_ctx, keys)
    try:
        dealer = _dealer(client_ctx, endpoint, client(keys))
        send_nowait(dealer, encode(WorkRequest(worker_id="worker-1", credit=2)))
        assert recv_multipart_timeout(router, REFUSED_WAIT_MS) is None
        # Nothing reaches the client either (it has no session to receive on).
        assert recv_multipart_timeout(dealer, 100) is None
    finally:
        stop()
        server_ctx.destroy(linger=0)
        client_ctx.destroy(linger=0)
    if client is _rogue:
        assert "refused a CURVE client" in caplog.text
