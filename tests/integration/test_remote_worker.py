"""A worker on another host talks CurveZMQ to capture and display; a wrong key gets nothing.

The other host is a network namespace joined to this one by a veth pair with addresses that
exist only inside the test (10.213.N.1/30 here, .2 there); a raw AF_PACKET socket on the veth
records every byte that crosses it. Where namespaces cannot be made (not root, no ``ip``,
EPERM in a container, or EMOJIFY_TEST_NO_NETNS=1) the same check runs over loopback, through
a TCP relay in the test that records what it forwards, and the test says so with a warning:
the encryption is tested either way, the network crossing only with namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared.key_files import generate_keypair, load_public_key
from shared.recording import load_recording
from tests.integration.display_harness import free_port
from tests.integration.pipeline_harness import MODEL, RECORDING, metrics
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(360)]

REPO = Path(__file__).resolve().parents[2]
#: Two workers loading TensorFlow at once on a small, busy machine.
WORKER_START_S = 200
#: How long the wrong-key worker is watched, once it is up, for a frame it must not get.
REFUSED_WATCH_S = 5.0
#: Most bytes of traffic kept for the search (a few seconds of frames are far less).
TRAFFIC_LIMIT = 64 << 20
ETH_P_ALL = 0x0003


class Recorder:
    """Bytes seen on the link, from any thread, up to TRAFFIC_LIMIT."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = bytearray()

    def add(self, chunk: bytes) -> None:
        with self._lock:
            if len(self._data) < TRAFFIC_LIMIT:
                self._data += chunk

    def data(self) -> bytes:
        with self._lock:
            return bytes(self._data)


@dataclass
class Link:
    """Where the worker runs and how it reaches capture and display."""

    kind: str
    #: Address capture's frames and display's results bind on.
    bind_host: str
    #: Command prefix that runs the worker on the other side.
    worker_prefix: list[str]
    #: Address the worker's status page binds on, reachable from here.
    worker_status_host: str
    traffic: Recorder
    #: Endpoint the worker connects to for a port bound here (a relay in loopback mode).
    reach: Callable[[int], str]
    #: Sends ``payload`` in plain text across the link (proves the recorder sees payloads).
    send_plain: Callable[[bytes], None]
    closers: list[Callable[[], None]] = field(default_factory=list)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


def _netns_problem() -> str | None:
    if os.environ.get("EMOJIFY_TEST_NO_NETNS"):
        return "EMOJIFY_TEST_NO_NETNS is set"
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "no `ip` binary (Debian package iproute2)"
    return None


def _sniff(ifname: str, recorder: Recorder, stop: threading.Event) -> Callable[[], None]:
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sniffer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sniffer.bind((ifname, 0))
    sniffer.settimeout(0.2)

    def loop() -> None:
        while not stop.is_set():
            try:
                recorder.add(sniffer.recv(1 << 18))
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=loop, name=f"sniff-{ifname}", daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(timeout=5)
        sniffer.close()

    return close


@contextlib.contextmanager
def _netns_link() -> Iterator[Link]:
    tag = f"{os.getpid() % 100000}"
    ns, host_if, ns_if = f"emjw{tag}", f"emjh{tag}", f"emjn{tag}"
    net = random.randint(1, 254)
    host_ip, ns_ip = f"10.213.{net}.1", f"10.213.{net}.2"
    closers: list[Callable[[], None]] = []
    try:
        _run("ip", "netns", "add", ns)
        closers.append(lambda: _run("ip", "netns", "del", ns))
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        # Deleting the namespace deletes its end; this one goes with it, or here if never moved.
        closers.append(lambda: subprocess.run(["ip", "link", "del", host_if], check=False))
        _run("ip", "link", "set", ns_if, "netns", ns)
        _run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        for args in (
            ("ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if),
            ("ip", "link", "set", ns_if, "up"),
            ("ip", "link", "set", "lo", "up"),
        ):
            _run("ip", "netns", "exec", ns, *args)
        recorder = Recorder()
        closers.append(_sniff(host_if, recorder, threading.Event()))

        def send_plain(payload: bytes) -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
                server.bind((host_ip, 0))
                server.listen(1)
                port = server.getsockname()[1]
                code = (
                    "import socket,sys;"
                    f"s=socket.create_connection(('{host_ip}',{port}),timeout=10);"
                    f"s.sendall(bytes.fromhex('{payload.hex()}'));s.close()"
                )
                _run("ip", "netns", "exec", ns, sys.executable, "-c", code)
                server.settimeout(10)
                peer, _ = server.accept()
                peer.close()

        yield Link(
            kind=f"network namespace {ns} over veth {host_if} ({host_ip} <-> {ns_ip})",
            bind_host=host_ip,
            worker_prefix=["ip", "netns", "exec", ns],
            worker_status_host=ns_ip,
            traffic=recorder,
            reach=lambda port: f"tcp://{host_ip}:{port}",
            send_plain=send_plain,
        )
    finally:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                close()


def _pump(source: socket.socket, sink: socket.socket, recorder: Recorder) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(1 << 16):
            recorder.add(chunk)
            sink.sendall(chunk)
    for end in (source, sink):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)


def _relay(upstream_port: int, recorder: Recorder, stop: threading.Event) -> int:
    """A TCP relay 127.0.0.1:<returned port> -> 127.0.0.1:upstream_port recording both ways."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)

    def accept() -> None:
        with listener:
            while not stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection(("127.0.0.1", upstream_port), timeout=5)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                client.settimeout(None)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pump, args=(a, b, recorder), daemon=True).start()

    threading.Thread(target=accept, name="relay", daemon=True).start()
    return int(listener.getsockname()[1])


@contextlib.contextmanager
def _loopback_link(why: str) -> Iterator[Link]:
    warnings.warn(
        f"network namespaces unavailable ({why}): the remote worker runs over loopback "
        "through a recording TCP relay instead; encryption is tested, the network hop is not",
        stacklevel=1,
    )
    recorder = Recorder()
    stop = threading.Event()

    def send_plain(payload: bytes) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            port = _relay(server.getsockname()[1], recorder, stop)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                client.sendall(payload)
            server.settimeout(10)
            peer, _ = server.accept()
            with peer:
                peer.settimeout(10)
                peer.recv(len(payload))

    try:
        yield Link(
            kind="loopback through a recording relay",
            bind_host="127.0.0.1",
            worker_prefix=[],
            worker_status_host="127.0.0.1",
            traffic=recorder,
            reach=lambda port: f"tcp://127.0.0.1:{_relay(port, recorder, stop)}",
            send_plain=send_plain,
        )
    finally:
        stop.set()


@pytest.fixture
def link() -> Iterator[Link]:
    problem = _netns_problem()
    if problem is None:
        try:
            with _netns_link() as made:
                yield made
                return
        except subprocess.CalledProcessError as error:
            problem = f"{' '.join(error.cmd)}: {error.stderr.decode(errors='replace').strip()}"
        except PermissionError as error:
            problem = str(error)
    with _loopback_link(problem) as made:
        yield made


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _start(name: str, command: list[str], tmp_path: Path) -> Service:
    log_path = tmp_path / f"{name}.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("DISPLAY", None)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name, proc, log_path)


def _stop(service: Service) -> None:
    if service.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.proc.pid, signal.SIGKILL)
        service.proc.wait(timeout=10)


def _keys(tmp_path: Path) -> Path:
    """Key pairs of every party; allowed folders hold only the legitimate clients' keys."""
    keys = tmp_path / "keys"
    for name in ("capture", "display", "worker", "rogue"):
        generate_keypair(keys, name)
    for server, clients in (("capture", ("worker", "display")), ("display", ("worker",))):
        allowed = tmp_path / f"allowed-{server}"
        allowed.mkdir()
        for client in clients:
            shutil.copy(keys / f"{client}.key", allowed)
    return keys


def _results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip().endswith("}")]


def test_remote_worker_needs_the_right_key_and_frames_cross_encrypted(
    link: Link, tmp_path: Path
) -> None:
    recording = load_recording(RECORDING)
    jpegs = [(RECORDING / frame.file).read_bytes() for frame in recording.frames[:20]]
    # A JPEG starts FF D8 FF; three bytes also turn up by chance about once per 16 MiB of
    # ciphertext, so the search is for the frames' full start (SOI, APP0, "JFIF") and for
    # pieces of their entropy-coded middles, which chance never repeats.
    signature = jpegs[0][:11]
    assert signature.startswith(b"\xff\xd8\xff") and b"JFIF" in signature
    pieces = [jpeg[len(jpeg) // 2 : len(jpeg) // 2 + 32] for jpeg in jpegs]

    # The recorder sees plain text on this link: otherwise its silence would prove nothing.
    link.send_plain(b"plain " + jpegs[0][:64])
    wait_for(lambda: jpegs[0][:64] in link.traffic.data(), 5, "the plain-text probe")
    probe_bytes = len(link.traffic.data())

    keys = _keys(tmp_path)
    frames_port, preview_port, results_port = free_port(), free_port(), free_port()
    capture_status, display_status = free_port(), free_port()
    worker_ports = {"remote-good": free_port(), "remote-rogue": free_port()}
    jsonl = tmp_path / "results.jsonl"
    python = [sys.executable, "-m"]
    services: list[Service] = []
    try:
        services.append(
            _start(
                "display",
                [
                    *python,
                    "services.display",
                    "--sinks",
                    "jsonl",
                    "--jsonl-path",
                    str(jsonl),
                    "--preview-endpoints",
                    f"tcp://127.0.0.1:{preview_port}",
                    "--results-endpoint",
                    f"tcp://{link.bind_host}:{results_port}",
                    "--status-port",
                    str(display_status),
                    "--curve-secret-key",
                    str(keys / "display.key_secret"),
                    "--curve-allowed-dir",
                    str(tmp_path / "allowed-display"),
                    "--curve-capture-public-key",
                    str(keys / "capture.key"),
                ],
                tmp_path,
            )
        )
        services.append(
            _start(
                "capture",
                [
                    *python,
                    "services.capture",
                    "--source",
                    str(RECORDING),
                    "--loop",
                    "--mode",
                    "live",
                    "--frames-endpoint",
                    f"tcp://{link.bind_host}:{frames_port}",
                    "--preview-endpoint",
                    f"tcp://127.0.0.1:{preview_port}",
                    "--status-port",
                    str(capture_status),
                    "--curve-secret-key",
                    str(keys / "capture.key_secret"),
                    "--curve-allowed-dir",
                    str(tmp_path / "allowed-capture"),
                ],
                tmp_path,
            )
        )
        frames_at, results_at = link.reach(frames_port), link.reach(results_port)
        for worker_id, key in (("remote-good", "worker"), ("remote-rogue", "rogue")):
            services.append(
                _start(
                    worker_id,
                    [
                        *link.worker_prefix,
                        *python,
                        "services.inference",
                        "--worker-id",
                        worker_id,
                        "--model-path",
                        str(MODEL),
                        "--tf-threads",
                        "1",
                        "--capture-endpoints",
                        frames_at,
                        "--results-endpoint",
                        results_at,
                        "--status-host",
                        link.worker_status_host,
                        "--status-port",
                        str(worker_ports[worker_id]),
                        "--curve-secret-key",
                        str(keys / f"{key}.key_secret"),
                        "--curve-capture-public-key",
                        str(keys / "capture.key"),
                        "--curve-display-public-key",
                        str(keys / "display.key"),
                    ],
                    tmp_path,
                )
            )

        def logs() -> str:
            return "\n".join(f"--- {s.name}\n{s.log()[-2500:]}" for s in services)

        def from_worker(worker_id: str) -> list[dict[str, Any]]:
            for service in services:
                assert service.proc.poll() is None, f"{service.name} exited\n{logs()}"
            return [r for r in _results(jsonl) if r.get("worker_id") == worker_id]

        wait_for(
            lambda: len(from_worker("remote-good")) >= 20,
            WORKER_START_S,
            lambda: f"20 results from the worker with the right key over {link.kind}\n{logs()}",
        )

        # The wrong key: its worker is up (its status page answers) yet gets no frame.
        rogue_url = f"http://{link.worker_status_host}:{worker_ports['remote-rogue']}/"
        wait_for(
            lambda: _answers(rogue_url),
            WORKER_START_S,
            lambda: f"the wrong-key worker up\n{logs()}",
        )
        good_before = len(from_worker("remote-good"))
        time.sleep(REFUSED_WATCH_S)  # deliberate: a window in which nothing may reach it
        rogue = metrics(rogue_url)
        assert rogue["frames_total"] == 0 and rogue["results_total"] == 0, rogue
        assert from_worker("remote-rogue") == []
        assert len(from_worker("remote-good")) > good_before, "frames stopped flowing"
        rogue_public = load_public_key(keys / "rogue.key").decode()
        for server in ("capture", "display"):
            text = next(s for s in services if s.name == server).log()
            assert f"refused a CURVE client with public key {rogue_public}" in text, logs()
        capture = metrics(f"http://127.0.0.1:{capture_status}/")
        assert capture["frames_sent_total"] >= 20 and capture["workers"] == 1, capture
    finally:
        for service in reversed(services):
            _stop(service)

    traffic = link.traffic.data()[probe_bytes:]
    frames_bytes = len(traffic)
    # At least the JPEG bytes of the results checked above crossed the link (encrypted).
    assert frames_bytes > sum(len(j) for j in jpegs[:10]), (link.kind, frames_bytes)
    # Shown with `pytest -rP`: which link was tested and how much crossed it.
    chance = traffic.count(b"\xff\xd8\xff")
    print(
        f"{link.kind}: {frames_bytes} bytes recorded; bare FF D8 FF {chance} times "
        f"(chance predicts {frames_bytes / (1 << 24):.2f})"
    )
    assert traffic.count(signature) == 0, f"JPEG frame starts in plain text on {link.kind}"
    leaked = [n for n, piece in enumerate(pieces) if piece in traffic]
    assert leaked == [], f"pieces of frames {leaked} in plain text on {link.kind}"


def _answers(url: str) -> bool:
    try:
        metrics(url)
    except (OSError, AssertionError):
        return False
    return True
