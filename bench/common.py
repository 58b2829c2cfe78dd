"""What every bench shares: the recording's frames, timing statistics, tables and JSON output."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from pydantic import Field
from pydantic_settings import SettingsConfigDict

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/<name>.py` as well as `python -m bench.<name>`
    sys.path.insert(0, str(ROOT))

from shared.image import BoxXYWH, ImageU8, decode_jpeg  # noqa: E402
from shared.recording import load_recording  # noqa: E402
from shared.settings import CommandSettings  # noqa: E402

__all__ = [
    "MODEL",
    "RECORDING",
    "ROOT",
    "BenchSettings",
    "RecordedFrame",
    "Timings",
    "load_frames",
    "machine",
    "print_table",
    "time_calls",
    "write_result",
]

RECORDING: Final = ROOT / "recordings" / "demo"
MODEL: Final = ROOT / "models" / "emotion_model.keras"


@dataclass(frozen=True)
class RecordedFrame:
    """A decoded recording frame, its JPEG bytes and its ground-truth faces."""

    frame_bgr: ImageU8
    jpeg: bytes
    faces_xywh: list[BoxXYWH]


def load_frames(folder: Path = RECORDING, limit: int | None = None) -> list[RecordedFrame]:
    """The recording's frames in order (at most ``limit``)."""
    recording = load_recording(folder)
    frames = []
    for frame in recording.frames[:limit]:
        jpeg = (folder / frame.file).read_bytes()
        frames.append(
            RecordedFrame(decode_jpeg(jpeg), jpeg, [face.box_xywh for face in frame.faces])
        )
    return frames


@dataclass(frozen=True)
class Timings:
    """Milliseconds per call: median, 95th percentile, mean and the number of calls."""

    median_ms: float
    p95_ms: float
    mean_ms: float
    calls: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timings:
        if not seconds:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        ms = np.asarray(seconds, dtype=np.float64) * 1000
        return cls(float(np.median(ms)), float(np.percentile(ms, 95)), float(ms.mean()), len(ms))


def time_calls(call: Callable[[int], object], count: int, budget_s: float) -> list[float]:
    """Seconds per ``call(i)``, for i in range(count) or until ``budget_s`` has passed."""
    seconds: list[float] = []
    deadline = time.perf_counter() + budget_s
    for index in range(count):
        start = time.perf_counter()
        call(index)
        seconds.append(time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return seconds


#: CPU features that decide what the classifier's int8 weights cost (VNNI: int8 dot products;
#: without it XNNPACK's int8 kernels run no faster than float32 here).
SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_model_and_simd(cpuinfo: str) -> tuple[str, list[str]]:
    """The first processor's model name in ``/proc/cpuinfo`` text and which of ``SIMD_FLAGS``
    it has ('' and [] where the text does not say)."""
    first: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            first.setdefault(key.strip(), value.strip())
    present = set(first.get("flags", "").split())
    return first.get("model name", ""), [flag for flag in SIMD_FLAGS if flag in present]


def machine() -> dict[str, Any]:
    """Where a result was measured: CPU, its SIMD features, cores, load, GPU (when TensorFlow
    sees one)."""
    try:
        cpu, simd = cpu_model_and_simd(Path("/proc/cpuinfo").read_text())
    except OSError:
        cpu, simd = "", []
    info: dict[str, Any] = {
        "cpu": cpu or platform.processor() or platform.machine(),
        "simd": simd,
        "cores": os.cpu_count(),
        "load_1m": os.getloadavg()[0],
        "python": platform.python_version(),
    }
    if "tensorflow" in sys.modules:
        gpus = sys.modules["tensorflow"].config.list_physical_devices("GPU")
        info["gpus"] = [gpu.name for gpu in gpus]
    return info


class BenchSettings(CommandSettings):
    """The options every bench has; each bench's settings add their own. Every option is also
    read from EMOJIFY_BENCH_<OPTION>."""

    model_config = SettingsConfigDict(env_prefix="EMOJIFY_BENCH_")

    out: Path | None = Field(
        default=None, description="JSON result file (default var/bench/<bench>.json)."
    )

    def out_file(self, bench: str) -> Path:
        return self.out or ROOT / "var" / "bench" / f"{bench}.json"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned text table on stdout."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        first, *rest = zip(row, widths, strict=True)
        print("  ".join([first[0].ljust(first[1]), *(c.rjust(w) for c, w in rest)]))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "nan" if np.isnan(value) else f"{value:.2f}"
    return str(value)


def write_result(path: Path, bench: str, result: dict[str, Any]) -> None:
    """``{"bench", "measured_at", "machine", **result}`` as JSON at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "bench": bench,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **result,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwritten: {path}")
