"""The whole pipeline under supervisord, as `make run` starts it, on free loopback ports."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bench.loopback import free_loopback_port as free_port
from bench.loopback import free_loopback_port_prefix, scrape
from tests.integration.display_harness import http_get
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
RECORDING = REPO / "recordings" / "demo"
MODEL = REPO / "models" / "emotion_model.keras"


@dataclass
class Pipeline:
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path
    jsonl_path: Path
    http_url: str
    capture_status_url: str
    worker_status_urls: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def child_pids(self) -> dict[str, int]:
        """The latest pid supervisord spawned for each program."""
        spawned = re.findall(r"spawned: '([\w-]+)' with pid (\d+)", self.log())
        return {name: int(pid) for name, pid in spawned}

    def running(self, *programs: str) -> bool:
        """Whether supervisord reported each of ``programs`` RUNNING; fails if it exited."""
        assert self.process.poll() is None, self.log()[-4000:]
        log = self.log()
        return all(f"success: {p} entered RUNNING state" in log for p in programs)

    def wait_running(self, *programs: str, timeout_s: float) -> None:
        """Wait until supervisord reports each of ``programs`` RUNNING."""
        wait_for(
            lambda: self.running(*programs),
            timeout_s,
            lambda: f"{', '.join(programs)} running\n{self.log()[-3000:]}",
        )

    def spawn_count(self, program: str) -> int:
        return len(re.findall(rf"spawned: '{re.escape(program)}' with pid", self.log()))

    def ctl(self, *args: str, timeout_s: float = 60) -> str:
        """``supervisorctl`` against this pipeline's supervisord."""
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "supervisorctl"),
                "-c",
                str(REPO / "deploy" / "supervisord.conf"),
                *args,
            ],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
        return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")

    def results(self) -> list[dict[str, Any]]:
        if not self.jsonl_path.exists():
            return []
        lines = self.jsonl_path.read_text(encoding="utf-8").splitlines()
        # The display may be killed in the middle of a line.
        return [json.loads(line) for line in lines if line.strip().endswith("}")]


def metrics(url: str) -> dict[str, float]:
    """``/metrics`` of a service as {name without emojify_<service>_: value}."""
    return scrape(url)


def metrics_when_up(url: str) -> dict[str, float]:
    """``metrics``, or {} while the service does not listen yet: supervisord says a program
    runs once its process has lived a second, which on a busy machine is before its page."""
    try:
        return scrape(url)
    except OSError:
        return {}


def wait_all_results_in(pipeline: Pipeline, timeout_s: float = 30.0) -> None:
    """Wait until nothing is in flight at capture and the display has received every result
    the workers sent (duplicates included): after that no result can still arrive."""

    def settled() -> bool:
        capture = metrics(pipeline.capture_status_url)
        sent = sum(metrics(url)["results_total"] for url in pipeline.worker_status_urls.values())
        received = metrics(pipeline.http_url)["results_total"]
        return capture["in_flight"] == 0 and capture["requeued"] == 0 and received >= sent

    wait_for(settled, timeout_s, "every result the workers sent to reach the display")


def health(url: str) -> tuple[int, dict[str, Any]]:
    status, body = http_get(url + "healthz")
    return status, dict(json.loads(body))


def open_supervisord_log(path: Path) -> BinaryIO:
    """Open the file that supervisord's stdout goes to, in append mode.

    supervisord writes to it through its own stdout while each program's log reopens
    /dev/stdout with its own offset; without O_APPEND they overwrite each other's lines.
    """
    return path.open("ab")


@contextlib.contextmanager
def running_pipeline(
    tmp_path: Path,
    workers: int = 2,
    more_captures: Sequence[tuple[str, str]] = (),
    **settings: str,
) -> Iterator[Pipeline]:
    """``scripts/run_pipeline.sh`` with ``settings`` (EMOJIFY_* names), killed afterwards.

    ``more_captures``: (frames, preview) endpoints of captures the caller runs itself, which
    the workers and the display are to serve beside the pipeline's own.
    """
    frames, preview, results, http, capture_status = (free_port() for _ in range(5))
    frames_endpoints = [f"tcp://127.0.0.1:{frames}", *(f for f, _ in more_captures)]
    preview_endpoints = [f"tcp://127.0.0.1:{preview}", *(p for _, p in more_captures)]
    prefix = free_loopback_port_prefix(workers)
    jsonl = tmp_path / "results.jsonl"
    env = {
        **os.environ,
        "EMOJIFY_RUN_DIR": str(tmp_path / "run"),
        "EMOJIFY_WORKERS": str(workers),
        "EMOJIFY_WORKER_STATUS_PORT_PREFIX": str(prefix),
        "EMOJIFY_CAPTURE_SOURCE": str(RECORDING),
        "EMOJIFY_CAPTURE_LOOP": "false",
        "EMOJIFY_CAPTURE_MODE": "lossless",
        "EMOJIFY_CAPTURE_PACE": "fast",
        "EMOJIFY_CAPTURE_FRAMES_ENDPOINT": f"tcp://127.0.0.1:{frames}",
        "EMOJIFY_CAPTURE_PREVIEW_ENDPOINT": f"tcp://127.0.0.1:{preview}",
        "EMOJIFY_CAPTURE_STATUS_PORT": str(capture_status),
        "EMOJIFY_WORKER_CAPTURE_ENDPOINTS": ",".join(frames_endpoints),
        "EMOJIFY_WORKER_RESULTS_ENDPOINT": f"tcp://127.0.0.1:{results}",
        "EMOJIFY_WORKER_MODEL_PATH": str(MODEL),
        "EMOJIFY_DISPLAY_PREVIEW_ENDPOINTS": ",".join(preview_endpoints),
        "EMOJIFY_DISPLAY_RESULTS_ENDPOINT": f"tcp://127.0.0.1:{results}",
        "EMOJIFY_DISPLAY_MODE": "sync",
        "EMOJIFY_DISPLAY_SINKS": "http,jsonl",
        "EMOJIFY_DISPLAY_HTTP_PORT": str(http),
        "EMOJIFY_DISPLAY_JSONL_PATH": str(jsonl),
        **settings,
    }
    env.pop("DISPLAY", None)
    log_path = tmp_path / "supervisord.out"
    with open_supervisord_log(log_path) as log:
        process = subprocess.Popen(
            [str(REPO / "scripts" / "run_pipeline.sh")],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Pipeline(
        process,
        env,
        log_path,
        jsonl,
        f"http://127.0.0.1:{http}/",
        f"http://127.0.0.1:{capture_status}/",
        {f"worker-{n}": f"http://127.0.0.1:{prefix * 100 + n}/" for n in range(workers)},
    )
    try:
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # Every pid supervisord ever spawned: a restarted program has several.
        for pid in re.findall(r"spawned: '[\w-]+' with pid (\d+)", running.log()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
