"""What the second look costs: the default (tiled) BlazeFace detector against the same detector
without looks, on the accuracy bench's scenes, each frame detected by both in turn in one
process, so that both see the same machine load.

    .venv/bin/python -m bench.second_look [--scenes 150] [--rounds 3] [--seed 7]
        [--out var/bench/second_look.json]

Prints the median ms a frame of each, their ratio, and how many candidates a frame got a look
(and a second, wider one) and the Haar cascade's votes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/<name>.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bench.accuracy import DEFAULT_DATA, build_scenes, load_faces
from bench.common import BenchSettings, print_table, write_result
from shared.image import decode_jpeg
from shared.settings import load_settings
from stages.detectors.blazeface import BlazeFaceDetector


def count_looks(detector: BlazeFaceDetector, frames: Sequence[Any]) -> tuple[float, float]:
    """Looks a frame (every kind together) and Haar votes counted a frame."""
    looks, votes = detector.single_pass.looks_taken, detector.single_pass.votes_counted
    for frame in frames:
        detector.detect(frame)
    looks = detector.single_pass.looks_taken - looks
    votes = detector.single_pass.votes_counted - votes
    return looks / len(frames), votes / len(frames)


class SecondLookBench(BenchSettings):
    """What the second look costs: the default (tiled) BlazeFace detector against the same
    detector without looks."""

    model_config = SettingsConfigDict(cli_prog_name="python -m bench.second_look")

    data: Path = Field(default=DEFAULT_DATA, description="FER2013 class folders.")
    scenes: int = Field(default=150, ge=1, description="Scenes of test/ faces.")
    rounds: int = Field(default=3, ge=1, description="Passes over the scenes.")
    seed: int = 7


def main(argv: Sequence[str] | None = None) -> int:
    args = load_settings(SecondLookBench, argv)

    faces, labels = load_faces(args.data, "test")
    frames = [decode_jpeg(s.jpeg) for s in build_scenes(faces, labels, args.scenes, args.seed)]
    detectors = {
        "without looks": BlazeFaceDetector("short", tiled=True, second_look=False),
        "with looks (default)": BlazeFaceDetector("short", tiled=True),
    }
    for detector in detectors.values():
        detector.detect(frames[0])  # warm-up
    spent: dict[str, list[float]] = {name: [] for name in detectors}
    for _ in range(args.rounds):
        for frame in frames:
            for name, detector in detectors.items():
                start = time.perf_counter()
                detector.detect(frame)
                spent[name].append((time.perf_counter() - start) * 1000)
    median = {name: float(np.median(values)) for name, values in spent.items()}
    looks, votes = count_looks(detectors["with looks (default)"], frames)
    print(f"{len(frames)} scenes x {args.rounds} rounds; {looks:.2f} looks and {votes:.2f} "
          "Haar votes a frame")  # fmt: skip
    baseline = median["without looks"]
    print_table(
        ["detector", "ms/frame (median)", "x without looks"],
        [[name, value, value / baseline] for name, value in median.items()],
    )
    result = {"scenes": len(frames), "rounds": args.rounds, "ms": median}
    write_result(
        args.out_file("second_look"), "second_look", {**result, "looks": looks, "votes": votes}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
