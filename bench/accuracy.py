"""End-to-end accuracy: does the model's accuracy reach the faces on screen?

Builds scenes of FER2013 faces (``bench.scenes``: 1-3 faces of 60-300 px per 640x480 frame,
photo or synthetic backgrounds, lighting, blur, noise, JPEG; by default each face inside a
drawn head with hair, ears, neck and shoulders, its border blended, among clutter) and runs
the worker's own ``prepare_frame`` (decode, detect, ``model_crop``) and classifier on each, as
the service does.
Per detector (and for the truth boxes, which show what the camera alone costs) it reports
recall (a truth face matched by a detection with IoU >= 0.3, or by one lying within its
square at a smaller scale: a loosely framed FER2013 face), false detections per frame
(all, and "away": those whose centre lies on no face, the detector's own false alarms),
accuracy on the faces found, the same faces' accuracy at their own FER2013 framing (the
ceiling), the gap, the share of all faces with the right emoji, detect ms per frame, and the
spread of the detector's box side against the true square (10th, 50th, 90th percentile)
(and, for a BlazeFace detector, the same with the crops' eye line left tilted);
``fer`` (its ``FER().detect_emotions``, in its own venv, see bench.fer_baseline) runs on the
very same JPEGs. Scores use ``test/`` faces only.

    .venv/bin/python -m bench.accuracy [--scenes 400] [--clips 120] [--detectors blazeface,...]
        [--kind heads|pasted]
        [--fer-python .venv-bench/bin/python] [--framing-curve] [--out var/bench/accuracy.json]

On clips (12 frames each, the faces moving a little) it compares the label the user sees (the
worker's tracker: smoothing and hold) with the raw per-frame argmax. ``--framing-curve`` adds
the model's accuracy on the test faces re-framed (crop side x0.8-1.3,
centre moved +-10% of the side) for ``--model``. ``--fit`` instead measures, on scenes of
``train/`` faces, where each detector's box lies relative to the FER2013 frame, and prints the
``Framing`` to give the detector's ``@register`` (``stages/detectors/``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field
from pydantic_settings import SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/accuracy.py` as well as `python -m bench.accuracy`
    sys.path.insert(0, str(ROOT))

from bench.common import BenchSettings  # noqa: E402
from shared.image import iou_matrix_xywh, overlap_matrix_xyxy  # noqa: E402
from shared.settings import load_settings  # noqa: E402
from stages.views import DEFAULT_POLICY, MirrorPolicy  # noqa: E402

MATCH_IOU = 0.3
#: A detection with this share of its area inside a face's square, and at least this share of
#: the square's side, is that face where no detection overlaps it by MATCH_IOU (``match``).
INSIDE_AREA = 0.9
INSIDE_SIDE = 0.35
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "fer2013"


@dataclass(frozen=True)
class Detection:
    box_xywh: tuple[int, int, int, int]
    label: int


def match(
    truth: Sequence[Sequence[int]], found: Sequence[Sequence[int]], *, inside: bool = True
) -> dict[int, int]:
    """truth -> detection, one to one: greedy by IoU (highest first, >= MATCH_IOU); then, with
    ``inside``, each truth square left over takes the largest detection left over that lies
    within it (``lies_within``).

    A FER2013 square holds one face, and a loosely framed one shows it at half the square's
    side or less (face and shoulders): the detector's box on that face overlaps the square by
    an IoU of 0.25 or less, yet it is that face, found (docs/benchmarks.md, "Tracking")."""
    from stages.tracker import match_greedy

    if not len(truth) or not len(found):
        return {}
    matched = match_greedy(iou_matrix_xywh(found, truth), MATCH_IOU)
    if inside:
        left = [i for i in range(len(found)) if i not in matched.values()]
        for ti in (t for t in range(len(truth)) if t not in matched):
            within = [i for i in left if lies_within(found[i], truth[ti])]
            if within:
                best = max(within, key=lambda i: found[i][2] * found[i][3])
                matched[ti] = best
                left.remove(best)
    return matched


def lies_within(box: Sequence[int], square: Sequence[int]) -> bool:
    """Whether ``box`` lies within ``square`` (``INSIDE_AREA`` of its area) and is no smaller
    than ``INSIDE_SIDE`` of its side (both x, y, w, h)."""
    x, y, w, h = box
    sx, sy, sw, sh = square
    shared = float(overlap_matrix_xyxy([(x, y, x + w, y + h)], [(sx, sy, sx + sw, sy + sh)])[0, 0])
    return w * h > 0 and shared >= INSIDE_AREA * w * h and max(w, h) >= INSIDE_SIDE * max(sw, sh)


def _visible(box: Sequence[int], size_wh: tuple[int, int] = (640, 480)) -> tuple[int, ...]:
    x, y, w, h = box
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, size_wh[0]), min(y + h, size_wh[1])
    return (x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def _centre_in(box: Sequence[int], square: Sequence[int]) -> bool:
    """Whether ``box``'s centre lies inside ``square`` (both x, y, w, h)."""
    x, y, w, h = box
    sx, sy, sw, sh = square
    return sx <= x + w / 2 < sx + sw and sy <= y + h / 2 < sy + sh


def score(
    scenes: Sequence[Any],
    detections: Sequence[Sequence[Detection]],
    ceiling_correct: npt.NDArray[np.bool_],
) -> dict[str, float]:
    """Recall, false detections, accuracy on found faces and its ceiling, right emoji overall.

    ``ceiling_correct[i]`` says whether the model is right on the i-th truth face (scene order)
    at its own framing.
    """
    faces = found = right = ceiling_found = false = away = 0
    offset = 0
    for scene, dets in zip(scenes, detections, strict=True):
        truth = [_visible(face.box_xywh) for face in scene.faces]
        hidden = [_visible(box) for box in scene.ignored]
        matched = match(truth, [d.box_xywh for d in dets])
        rest = [d.box_xywh for i, d in enumerate(dets) if i not in matched.values()]
        on_hidden = match(hidden, rest).values()
        unexplained = [box for i, box in enumerate(rest) if i not in on_hidden]
        false += len(unexplained)
        faces_here = truth + hidden
        away += sum(not any(_centre_in(box, face) for face in faces_here) for box in unexplained)
        for ti, face in enumerate(scene.faces):
            faces += 1
            if ti in matched:
                found += 1
                right += dets[matched[ti]].label == face.label
                ceiling_found += bool(ceiling_correct[offset + ti])
        offset += len(scene.faces)
    return {
        "faces": faces,
        "recall": found / max(faces, 1),
        "false_per_frame": false / max(len(scenes), 1),
        # Of those, the ones with their centre on no face: the detector's own false alarms. The
        # others are a second box on a face, or a box on a face larger than its FER2013
        # square (docs/benchmarks.md, "Tracking").
        "false_away_per_frame": away / max(len(scenes), 1),
        "accuracy_found": right / max(found, 1),
        "ceiling_found": ceiling_found / max(found, 1),
        "gap": (ceiling_found - right) / max(found, 1),
        "right_emoji": right / max(faces, 1),
        "ceiling_all": float(np.mean(ceiling_correct)) if len(ceiling_correct) else 0.0,
    }


def load_faces(data: Path, split: str) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    from training.data import load_split

    examples = load_split(data, split)  # type: ignore[arg-type]
    return examples.images, examples.labels


def build_scenes(
    faces: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    count: int,
    seed: int,
    *,
    roll_deg: float = 0.0,
    kind: str = "pasted",
) -> list[Any]:
    from bench.scenes import backgrounds, make_scene

    rng = np.random.default_rng(seed)
    photos = backgrounds()
    return [
        make_scene(rng, faces, labels, photos, roll_deg=roll_deg, kind=kind) for _ in range(count)
    ]


def worker_prepare(
    detector_name: str,
    classifier: Any,
    framing: Any = None,
    options: Mapping[str, Any] | None = None,
) -> Callable[[Any, str, int], Any]:
    """``prepare(scene, stream_id, seq)``: the scene's JPEG through the worker's
    ``prepare_frame`` (decode, detect, crop) with ``detector_name`` (its config's ``options``
    where given, else the defaults) and its fitted framing (or ``framing``), as a frame of that
    stream would arrive."""
    from shared.messages import FrameHeader
    from stages.detectors import build_detector, framing_for
    from stages.faces import prepare_frame

    detector = build_detector(detector_name, **(options or {}))
    chosen = framing or framing_for(detector_name)

    def prepare(scene: Any, stream_id: str, seq: int) -> Any:
        header = FrameHeader(
            stream_id=stream_id, seq=seq, captured_at_ns=time.time_ns(), width=640, height=480
        )
        return prepare_frame(
            header, scene.jpeg, detector=detector, input_hw=classifier.input_hw, framing=chosen
        )

    return prepare


def run_ours(
    detector_name: str, scenes: Sequence[Any], classifier: Any, framing: Any = None
) -> tuple[list[list[Detection]], float, list[list[tuple[int, ...]]]]:
    """The worker's prepare_frame and classifier on every scene: detections, detect ms/frame,
    and the raw detector boxes."""
    prepare = worker_prepare(detector_name, classifier, framing)
    out: list[list[Detection]] = []
    boxes: list[list[tuple[int, ...]]] = []
    detect_ms: list[float] = []
    for seq, scene in enumerate(scenes):
        prepared = prepare(scene, "bench", seq)
        detect_ms.append(prepared.detect_ms)
        labels = np.argmax(classifier.classify(prepared.faces_gray), axis=1)
        out.append(
            [
                Detection(tuple(box), int(label))
                for box, label in zip(prepared.boxes_xywh, labels, strict=True)
            ]
        )
        boxes.append([tuple(box) for box in prepared.boxes_xywh])
    return out, float(np.median(detect_ms)) if detect_ms else 0.0, boxes


@dataclass
class Followed:
    """A stream of frames through the worker: per frame, the detections with the per-frame
    argmax, the label shown for each (tracker: smoothing and hold) and detect ms."""

    detections: list[list[Detection]]
    shown: list[list[int]]
    detect_ms: list[float]


def follow(
    detector_name: str,
    streams: Sequence[Sequence[Any]],
    classifier: Any,
    mirror: MirrorPolicy | None = None,
    options: Mapping[str, Any] | None = None,
) -> Followed:
    """Each of ``streams`` (frames in order) as one stream through the worker's detector (its
    config's ``options`` where given), classifier and tracker at their default settings (the
    views of each face as ``mirror``
    chooses, else as the worker's default; a followed face classified every
    ``classify_every`` frames, which ``EMOJIFY_WORKER_CLASSIFY_EVERY`` sets); the frames' results,
    streams in order. The per-frame argmax is every face's own at every frame (the same views,
    no face skipped), so that the label shown is compared with the classifier alone."""
    from services.inference.settings import WorkerSettings
    from shared.labels import EMOTIONS
    from stages.batching import classify_frames
    from stages.faces import label_faces
    from stages.tracker import tracker_for

    settings = WorkerSettings()
    prepare = worker_prepare(detector_name, classifier, options=options)
    tracker = tracker_for(settings)
    out = Followed([], [], [])
    for number, frames in enumerate(streams):
        for seq, scene in enumerate(frames):
            prepared = prepare(scene, f"stream-{number}", seq)
            policy = mirror or settings.mirror
            (every_frame,), _, _ = classify_frames([prepared], classifier, policy)
            (as_worker,), _, _ = classify_frames(
                [prepared],
                classifier,
                policy,
                every=settings.classify_every,
                carried=tracker.smoothed,
            )
            shown = label_faces(prepared, as_worker, tracker)
            raw = np.argmax(every_frame, axis=1)
            out.detections.append(
                [Detection(tuple(b), int(r)) for b, r in zip(prepared.boxes_xywh, raw, strict=True)]
            )
            out.shown.append([EMOTIONS.index(face.label) for face in shown])
            out.detect_ms.append(prepared.detect_ms)
    return out


def shown_vs_raw(scenes: Sequence[Any], followed: Followed) -> dict[str, float]:
    """The label shown against the per-frame argmax, on the faces found."""
    found = raw_right = shown_right = 0
    for scene, detections, shown in zip(scenes, followed.detections, followed.shown, strict=True):
        truth = [_visible(face.box_xywh) for face in scene.faces]
        for ti, fi in match(truth, [d.box_xywh for d in detections]).items():
            found += 1
            raw_right += detections[fi].label == scene.faces[ti].label
            shown_right += shown[fi] == scene.faces[ti].label
    return {
        "frames": len(scenes),
        "faces_found": found,
        "raw_accuracy_found": raw_right / max(found, 1),
        "shown_accuracy_found": shown_right / max(found, 1),
    }


def truth_boxes(scenes: Sequence[Any], classifier: Any) -> list[list[Detection]]:
    """Every face cropped at its truth box (perfect detection and framing) from the decoded
    scene: what the camera alone (lighting, blur, noise, JPEG, resampling) costs."""
    from shared.image import decode_jpeg
    from stages.framing import Framing, model_crop

    out = []
    for scene in scenes:
        frame = decode_jpeg(scene.jpeg)
        crops = [model_crop(frame, f.box_xywh, Framing(), classifier.input_hw) for f in scene.faces]
        labels = np.argmax(classifier.classify(np.stack(crops)[..., None]), axis=1)
        out.append(
            [
                Detection(_visible(face.box_xywh), int(label))  # type: ignore[arg-type]
                for face, label in zip(scene.faces, labels, strict=True)
            ]
        )
    return out


def ceiling(classifier: Any, scenes: Sequence[Any], faces: npt.NDArray[np.uint8]) -> Any:
    """Whether the model is right on every truth face at its own framing (scene order)."""
    indices = [face.index for scene in scenes for face in scene.faces]
    truth = np.asarray([face.label for scene in scenes for face in scene.faces])
    probabilities = np.concatenate(
        [classifier.classify(faces[indices[i : i + 64]]) for i in range(0, len(indices), 64)]
    )
    return np.argmax(probabilities, axis=1) == truth


def run_fer(python: Path, scenes: Sequence[Any]) -> tuple[list[list[Detection]], float]:
    """fer's detect_emotions on the same JPEGs, in its own interpreter (``bench/fer_half.py``)."""
    from bench.fer_half import run_fer_half

    with tempfile.TemporaryDirectory() as folder:
        for i, scene in enumerate(scenes):
            (Path(folder) / f"{i:05d}.jpg").write_bytes(scene.jpeg)
        payload = run_fer_half(python, "scenes", folder, 3600)
    detections = [
        [Detection(tuple(face["box"]), int(face["label"])) for face in frame]
        for frame in payload["frames"]
    ]
    return detections, float(payload["detect_ms"])


def box_ratios(
    scenes: Sequence[Any], boxes: Sequence[Sequence[tuple[int, ...]]]
) -> tuple[list[float], list[float], list[float]]:
    """For every wholly visible face a detector found: the pasted FER2013 square's side over
    the box's side, and the square's centre minus the box's, in box sides (x, then y)."""
    scales, shifts_x, shifts_y = [], [], []
    for scene, found in zip(scenes, boxes, strict=True):
        inside = [face for face in scene.faces if _visible(face.box_xywh) == face.box_xywh]
        # IoU alone, as the spread measured on held-out material was.
        matched = match([face.box_xywh for face in inside], found, inside=False)
        for ti, fi in matched.items():
            tx, ty, tside, _ = inside[ti].box_xywh
            x, y, w, h = found[fi]
            side = (w + h) / 2
            scales.append(tside / side)
            shifts_x.append((tx + tside / 2 - (x + w / 2)) / side)
            shifts_y.append((ty + tside / 2 - (y + h / 2)) / side)
    return scales, shifts_x, shifts_y


def box_spread(
    scenes: Sequence[Any], boxes: Sequence[Sequence[tuple[int, ...]]]
) -> dict[str, float]:
    """Percentiles (10, 50, 90) of the detector box's side over the true square's side."""
    scales, _, _ = box_ratios(scenes, boxes)
    sides = 1.0 / np.asarray(scales) if scales else np.ones(1)
    p10, p50, p90 = (float(v) for v in np.percentile(sides, [10, 50, 90]))
    return {"box_side_p10": p10, "box_side_p50": p50, "box_side_p90": p90}


def fit_framing(
    scenes: Sequence[Any], boxes: Sequence[Sequence[tuple[int, ...]]]
) -> dict[str, float]:
    """Median ratios of the pasted FER2013 square to each detector box that found it."""
    scales, shifts_x, shifts_y = box_ratios(scenes, boxes)
    return {
        "faces": len(scales),
        "scale": float(np.median(scales)) if scales else 1.0,
        "shift_x": float(np.median(shifts_x)) if scales else 0.0,
        "shift_y": float(np.median(shifts_y)) if scales else 0.0,
    }


def framing_curve(
    classifier: Any, faces: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]
) -> list[dict[str, float]]:
    """Accuracy on ``faces`` re-framed: crop side x scale, centre moved by shift x side."""
    from training.augment import reframe

    rows = []
    grid = [(s, 0.0, 0.0) for s in (0.8, 0.85, 0.9, 1.0, 1.1, 1.2, 1.3)]
    grid += [(1.0, 0.0, d) for d in (-0.1, -0.08, 0.08, 0.1)]
    grid += [(1.0, d, 0.0) for d in (-0.08, 0.08)]
    for scale, shift_x, shift_y in grid:
        moved = np.stack([reframe(face[..., 0], scale, (shift_x, shift_y)) for face in faces])
        probabilities = np.concatenate(
            [classifier.classify(moved[i : i + 64, ..., None]) for i in range(0, len(moved), 64)]
        )
        accuracy = float(np.mean(np.argmax(probabilities, axis=1) == labels))
        rows.append({"scale": scale, "shift_x": shift_x, "shift_y": shift_y, "accuracy": accuracy})
    return rows


def moving(
    args: AccuracyBench,
    detectors: Sequence[str],
    faces: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    classifier: Any,
) -> list[dict[str, Any]]:
    """Every detector on the same shots (faces moving, turning, entering, leaving; cuts), as
    one stream: recall, false detections, accuracy on found faces, detect ms per frame, and
    the label shown against the per-frame argmax."""
    from bench.common import print_table
    from bench.scenes import backgrounds, make_shots

    rng = np.random.default_rng(args.seed + 2)
    scenes, starts = make_shots(rng, faces, labels, backgrounds(), args.shots, kind=args.kind)
    right = ceiling(classifier, scenes, faces)
    rows = []
    for name in detectors:
        followed = follow(name, [scenes], classifier, args.mirror)
        rows.append(
            {
                "path": f"ours, {name}",
                **score(scenes, followed.detections, right),
                "detect_ms": float(np.mean(followed.detect_ms)),
                "detect_ms_p50": float(np.median(followed.detect_ms)),
                **shown_vs_raw(scenes, followed),
            }
        )
    print(f"\n{args.shots} shots ({len(scenes)} frames, {len(starts) - 1} cuts), {args.kind}:")
    print_table(
        ["path", "recall", "false/frame", "away", "acc found", "gap", "ms mean", "ms p50",
         "argmax", "shown"],
        [
            [
                r["path"], r["recall"], r["false_per_frame"], r["false_away_per_frame"],
                r["accuracy_found"], r["gap"], r["detect_ms"], r["detect_ms_p50"],
                r["raw_accuracy_found"], r["shown_accuracy_found"],
            ]
            for r in rows
        ],
    )  # fmt: skip
    return rows


class AccuracyBench(BenchSettings):
    """End-to-end accuracy: does the model's accuracy reach the faces on screen?"""

    model_config = SettingsConfigDict(cli_prog_name="python -m bench.accuracy")

    data: Path = Field(default=DEFAULT_DATA, description="FER2013 class folders.")
    scenes: int = Field(default=400, ge=1, description="Still scenes.")
    seed: int = 7
    kind: Literal["heads", "pasted"] = Field(
        default="heads",
        description="Faces in drawn heads among clutter, or bare squares (bench.scenes).",
    )
    roll: float = Field(default=0.0, ge=0, description="Tilt each face by up to this many degrees.")
    detectors: list[str] = Field(
        default=["blazeface_tracking", "blazeface", "haar", "blazeface_full"],
        description="Detectors; the clips use the first.",
    )
    model: Path = Field(default=ROOT / "models" / "emotion_model.keras", description="Model file.")
    fer_python: Path = Field(
        default=ROOT / ".venv-bench" / "bin" / "python", description="fer's venv's Python."
    )
    framing_curve: bool = Field(default=False, description="Accuracy over re-framed faces.")
    clips: int = Field(
        default=120,
        ge=0,
        description="Clips of 12 frames for the label shown (tracker) vs the per-frame argmax.",
    )
    shots: int = Field(
        default=40,
        ge=0,
        description="Shots of 8-24 frames, cut one to the next, faces moving (every detector).",
    )
    fit: bool = Field(default=False, description="Fit each detector's framing on train/.")
    mirror: MirrorPolicy = Field(
        default=DEFAULT_POLICY,
        description="The views of each face in shots and clips (stages.views; the worker's "
        "default); still scenes see both views of every face.",
    )


def main(argv: Sequence[str] | None = None) -> int:
    from bench.common import print_table, write_result
    from stages.classifier import load_classifier
    from stages.detectors import framing_for
    from stages.framing import Framing

    args = load_settings(AccuracyBench, argv)
    classifier = load_classifier(args.model)
    detectors = args.detectors
    if args.fit:
        faces, labels = load_faces(args.data, "train")
        scenes = build_scenes(faces, labels, args.scenes, args.seed, kind=args.kind)
        fits = {}
        for name in detectors:
            _, _, boxes = run_ours(name, scenes, classifier, Framing())
            fits[name] = fit_framing(scenes, boxes)
            print(f"{name}: {fits[name]}")
        write_result(
            args.out_file("accuracy_fit"), "accuracy_fit", {"scenes": len(scenes), "fits": fits}
        )
        return 0

    faces, labels = load_faces(args.data, "test")
    scenes = build_scenes(faces, labels, args.scenes, args.seed, roll_deg=args.roll, kind=args.kind)
    right_at_own_framing = ceiling(classifier, scenes, faces)
    rows: list[dict[str, Any]] = [
        {
            "path": "ours, truth boxes (perfect detection and framing)",
            **score(scenes, truth_boxes(scenes, classifier), right_at_own_framing),
            "detect_ms": float("nan"),
            **box_spread(scenes, [[f.box_xywh for f in s.faces] for s in scenes]),
        }
    ]
    paths: list[tuple[str, str, Framing | None]] = [(f"ours, {n}", n, None) for n in detectors]
    if detectors and detectors[0].startswith("blazeface"):
        # What levelling the eye line (off by default) would change: the same detector.
        levelled = framing_for(detectors[0], align_roll=True)
        paths.append((f"ours, {detectors[0]}, eye line levelled", detectors[0], levelled))
    for path, name, framing in paths:
        detections, detect_ms, boxes = run_ours(name, scenes, classifier, framing)
        rows.append(
            {
                "path": path,
                **score(scenes, detections, right_at_own_framing),
                "detect_ms": detect_ms,
                **box_spread(scenes, boxes),
            }
        )
    if args.fer_python.is_file():
        detections, detect_ms = run_fer(args.fer_python, scenes)
        fer_ceiling = np.zeros(len(right_at_own_framing), dtype=bool)
        rows.append(
            {
                "path": "fer (Haar + its model)",
                **score(scenes, detections, fer_ceiling),
                "detect_ms": detect_ms,
                **box_spread(scenes, [[d.box_xywh for d in frame] for frame in detections]),
            }
        )
        rows[-1]["ceiling_found"] = rows[-1]["gap"] = float("nan")
    else:
        print(f"(fer skipped: {args.fer_python} not found; see bench/fer_baseline.py)")
    print(
        f"{len(scenes)} {args.kind} scenes, {rows[0]['faces']} faces; model {classifier.version}; "
        f"right at their own framing (ceiling): {rows[0]['ceiling_all']:.3f}"
    )
    print_table(
        ["path", "recall", "false/frame", "away", "acc found", "ceiling", "gap", "right emoji",
         "ms", "box p10", "p50", "p90"],
        [
            [
                r["path"], r["recall"], r["false_per_frame"], r["false_away_per_frame"],
                r["accuracy_found"], r["ceiling_found"], r["gap"], r["right_emoji"],
                r["detect_ms"], r["box_side_p10"], r["box_side_p50"], r["box_side_p90"],
            ]
            for r in rows
        ],
    )  # fmt: skip
    result: dict[str, Any] = {
        "scenes": len(scenes),
        "kind": args.kind,
        "model": classifier.version,
        "rows": rows,
    }
    if args.clips:
        from bench.scenes import backgrounds, make_clip

        rng = np.random.default_rng(args.seed + 1)
        photos = backgrounds()
        clips = [
            make_clip(rng, faces, labels, photos, 12, kind=args.kind) for _ in range(args.clips)
        ]
        shown = shown_vs_raw(
            [scene for clip in clips for scene in clip],
            follow(detectors[0], clips, classifier, args.mirror),
        )
        print(
            f"\nclips ({detectors[0]}): {shown['frames']} frames, {shown['faces_found']} faces "
            f"found; per-frame argmax right {shown['raw_accuracy_found']:.3f}, label shown "
            f"(smoothed and held) right {shown['shown_accuracy_found']:.3f}"
        )
        result["clips"] = shown
    if args.shots:
        result["shots"] = moving(args, detectors, faces, labels, classifier)
    if args.framing_curve:
        curve = framing_curve(classifier, faces, labels)
        print_table(
            ["scale", "shift x", "shift y", "accuracy"],
            [[r["scale"], r["shift_x"], r["shift_y"], r["accuracy"]] for r in curve],
        )
        result["framing_curve"] = curve
    write_result(args.out_file("accuracy"), "accuracy", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
