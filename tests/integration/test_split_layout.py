"""The split layout on one machine: `run_pipeline.sh camera-host` and `gpu-host`, keys as in the
README, every link CurveZMQ (over loopback here; test_remote_worker.py crosses a real link)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.keys import main as keys_main
from tests.integration.display_harness import free_port
from tests.integration.pipeline_harness import MODEL, RECORDING, open_supervisord_log
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "run_pipeline.sh"


def _keys(tmp_path: Path) -> tuple[Path, Path]:
    """The README's steps: keys on the camera host, on the GPU host, public ones copied."""
    camera, gpu = tmp_path / "camera-keys", tmp_path / "gpu-keys"
    assert keys_main(["generate", "--dir", str(camera), "--name", "capture,display"]) == 0
    (camera / "clients").mkdir()
    shutil.copy(camera / "display.key", camera / "clients")
    assert keys_main(["generate", "--dir", str(gpu), "--name", "worker"]) == 0
    for name in ("capture", "display"):
        shutil.copy(camera / f"{name}.key", gpu)
    shutil.copy(gpu / "worker.key", camera / "clients" / "gpu-box-1.key")
    return camera, gpu


@contextlib.contextmanager
def _side(layout: str, env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open_supervisord_log(log_path) as log:
        process = subprocess.Popen(
            [str(SCRIPT), layout],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def test_camera_host_and_gpu_host_talk_curve(tmp_path: Path) -> None:
    camera_keys, gpu_keys = _keys(tmp_path)
    frames, preview, results, http, status = (free_port() for _ in range(5))
    jsonl = tmp_path / "results.jsonl"
    base = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    base.pop("DISPLAY", None)
    camera_env = {
        **base,
        "EMOJIFY_RUN_DIR": str(tmp_path / "camera-run"),
        "EMOJIFY_KEYS_DIR": str(camera_keys),
        "EMOJIFY_BIND_HOST": "127.0.0.1",
        "EMOJIFY_CAPTURE_SOURCE": str(RECORDING),
        "EMOJIFY_CAPTURE_FRAMES_ENDPOINT": f"tcp://127.0.0.1:{frames}",
        "EMOJIFY_CAPTURE_PREVIEW_ENDPOINT": f"tcp://127.0.0.1:{preview}",
        "EMOJIFY_CAPTURE_STATUS_PORT": str(status),
        "EMOJIFY_DISPLAY_PREVIEW_ENDPOINTS": f"tcp://127.0.0.1:{preview}",
        "EMOJIFY_DISPLAY_RESULTS_ENDPOINT": f"tcp://127.0.0.1:{results}",
        "EMOJIFY_DISPLAY_SINKS": "http,jsonl",
        "EMOJIFY_DISPLAY_HTTP_PORT": str(http),
        "EMOJIFY_DISPLAY_JSONL_PATH": str(jsonl),
    }
    gpu_env = {
        **base,
        "EMOJIFY_RUN_DIR": str(tmp_path / "gpu-run"),
        "EMOJIFY_KEYS_DIR": str(gpu_keys),
        "EMOJIFY_CAMERA_HOST": "127.0.0.1",
        "EMOJIFY_WORKER_ID_PREFIX": "gpu-box-1",
        "EMOJIFY_WORKER_STATUS_PORT_PREFIX": "0",
        "EMOJIFY_WORKER_CAPTURE_ENDPOINTS": f"tcp://127.0.0.1:{frames}",
        "EMOJIFY_WORKER_RESULTS_ENDPOINT": f"tcp://127.0.0.1:{results}",
        "EMOJIFY_WORKER_MODEL_PATH": str(MODEL),
    }
    # Missing keys stop a side before supervisord starts, with the README's pointer.
    missing = subprocess.run(
        [str(SCRIPT), "gpu-host"],
        env={**gpu_env, "EMOJIFY_KEYS_DIR": str(tmp_path / "none")},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert missing.returncode == 2 and b"Split layout" in missing.stderr, missing.stderr
    bad = subprocess.run([str(SCRIPT), "two-host"], capture_output=True, timeout=30, check=False)
    assert bad.returncode == 2 and b"usage" in bad.stderr

    with (
        _side("camera-host", camera_env, tmp_path / "camera.out") as camera,
        _side("gpu-host", gpu_env, tmp_path / "gpu.out") as gpu,
    ):

        def logs() -> str:
            return "\n".join(
                f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                for p in (tmp_path / "camera.out", tmp_path / "gpu.out")
            )

        def results_arrived() -> bool:
            assert camera.poll() is None and gpu.poll() is None, logs()
            if not jsonl.exists():
                return False
            lines = [line for line in jsonl.read_text().splitlines() if line.endswith("}")]
            return len(lines) >= 10

        wait_for(results_arrived, 240, lambda: f"10 results through the split layout\n{logs()}")
        first = json.loads(jsonl.read_text().splitlines()[0])
        assert first["worker_id"] == "gpu-box-1-0"
        camera_log = (tmp_path / "camera.out").read_text(errors="replace")
        assert "curve=on" in camera_log and "CURVE on: 2 allowed client key(s)" in camera_log
        assert "refused a CURVE client" not in camera_log
