"""The emotion classifier alone: faces per second by batch size, compiled path vs model.predict.

Ours is ``Classifier.classify`` as the worker runs it on a CPU (the ``.tflite`` on LiteRT);
the baseline is what most code does, ``model.predict(batch)`` per call on the same model.
Faces are real crops from the demo recording. TensorFlow uses the GPU by itself when it sees
one (the JSON's machine.gpus says which). Each (batch size, path) runs ``--seconds``.

    .venv/bin/python -m bench.classifier [--seconds 3] [--batches 1,2,4,8,16,32,64]
        [--model models/emotion_model.keras] [--against OTHER.keras]
        [--out var/bench/classifier.json]

With ``--against``, another model file's compiled path runs on the same faces right after
ours at every batch size, and the table adds its faces/s and our cost as a share of its cost.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):  # run as `python bench/<name>.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bench.common import MODEL, BenchSettings, load_frames, print_table, write_result
from shared.settings import load_settings
from stages.classifier import load_classifier
from stages.framing import Framing, model_crop

BATCHES = (1, 2, 4, 8, 16, 32, 64)


def real_faces(input_hw: tuple[int, int], count: int) -> npt.NDArray[np.uint8]:
    """``count`` face crops (N, H, W, 1) from the recording's ground truth, repeated as needed."""
    crops = [
        model_crop(frame.frame_bgr, box, Framing(), input_hw)
        for frame in load_frames()
        for box in frame.faces_xywh
    ]
    picked = [crops[i % len(crops)] for i in range(count)]
    return np.stack(picked)[..., np.newaxis]


def faces_per_s(run: Callable[[], object], batch: int, seconds: float) -> tuple[float, float]:
    """(faces per second, median ms per call) of ``run`` over ``seconds``, after 2 warm-ups."""
    run()
    run()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 3:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return batch * len(times) / sum(times), float(np.median(times) * 1000)


class ClassifierBench(BenchSettings):
    """The emotion classifier alone: faces per second by batch size, compiled path vs
    model.predict."""

    model_config = SettingsConfigDict(cli_prog_name="python -m bench.classifier")

    seconds: float = Field(default=3.0, gt=0, description="Per batch size and path.")
    batches: list[int] = Field(default=list(BATCHES), description="Batch sizes.")
    model: Path = Field(default=MODEL, description="Model file.")
    against: Path | None = Field(
        default=None, description="Another model file whose compiled path to time beside ours."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = load_settings(ClassifierBench, argv)
    batches = args.batches

    from shared.keras_layers import load_model

    classifier = load_classifier(args.model)
    other = load_classifier(args.against) if args.against is not None else None
    model = load_model(args.model)
    faces = real_faces(classifier.input_hw, max(batches))
    rows: list[dict[str, Any]] = []
    for batch in batches:
        chunk = np.ascontiguousarray(faces[:batch])
        ours, ours_ms = faces_per_s(partial(classifier.classify, chunk), batch, args.seconds)
        base, base_ms = faces_per_s(partial(model.predict, chunk, verbose=0), batch, args.seconds)
        row: dict[str, Any] = {
            "batch": batch,
            "compiled_faces_per_s": ours,
            "compiled_ms_per_call": ours_ms,
            "predict_faces_per_s": base,
            "predict_ms_per_call": base_ms,
            "speedup": ours / base,
        }
        if other is not None:
            theirs, _ = faces_per_s(partial(other.classify, chunk), batch, args.seconds)
            row |= {"against_faces_per_s": theirs, "cost_vs_against": theirs / ours}
        rows.append(row)
    headers = ["batch", "compiled faces/s", "ms/call", "predict faces/s", "ms/call", "x predict"]
    keys = ["batch", "compiled_faces_per_s", "compiled_ms_per_call", "predict_faces_per_s",
            "predict_ms_per_call", "speedup"]  # fmt: skip
    if other is not None:
        headers += ["against faces/s", "cost / against"]
        keys += ["against_faces_per_s", "cost_vs_against"]
    print_table(headers, [[r[k] for k in keys] for r in rows])
    write_result(
        args.out_file("classifier"),
        "classifier",
        {
            "model": str(args.model),
            "model_version": classifier.version,
            "against": str(args.against) if args.against is not None else None,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
