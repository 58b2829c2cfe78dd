"""End to end on benchmark scenes: the model's accuracy must reach the faces on screen.

A small run of ``bench.accuracy`` (FER2013 PublicTest faces placed in scenes, the worker's own
prepare_frame and the shipped model on LiteRT) with the default detector: it fails when faces
go missing or when the crops drift from the framing the model learned (the gap between the
accuracy on found faces and the same faces at their own framing grows). Figures of the full
run (400 scenes) are in docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import accuracy
from stages.classifier import load_classifier
from stages.framing import Framing

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
FER2013 = ROOT.parent / "shared" / "datasets" / "fer2013"


@pytest.fixture(scope="module")
def public_test() -> tuple[np.ndarray, np.ndarray]:
    """FER2013 PublicTest's faces and labels, read once for the module."""
    if not (FER2013 / "test").is_dir():
        pytest.skip(f"{FER2013}/test not present")
    return accuracy.load_faces(FER2013, "test")


@pytest.fixture(scope="module")
def run(public_test: tuple[np.ndarray, np.ndarray]) -> tuple[list[object], np.ndarray, object]:
    faces, labels = public_test
    scenes = accuracy.build_scenes(faces, labels, 120, seed=11)
    classifier = load_classifier(ROOT / "models" / "emotion_model.keras")
    return scenes, accuracy.ceiling(classifier, scenes, faces), classifier


def test_the_default_detector_finds_the_faces_and_the_model_keeps_its_accuracy(
    run: tuple[list[object], np.ndarray, object],
) -> None:
    scenes, right_at_own_framing, classifier = run
    detections, _, _ = accuracy.run_ours("blazeface", scenes, classifier)
    result = accuracy.score(scenes, detections, right_at_own_framing)
    # These 120 scenes give recall 0.944, 0.017 false per frame, a gap of -0.009 (the faces
    # found are a little easier than the rest) and the right emoji on 0.610 of the faces. The
    # detector with the network's looks alone, no Haar votes: recall 0.952 and 0.025 false per
    # frame; without the second look: 0.935 and 0.067.
    assert result["recall"] >= 0.93, result
    assert result["false_per_frame"] <= 0.05, result
    assert result["gap"] <= 0.05, result
    assert result["right_emoji"] >= 0.58, result


def test_the_fitted_framing_is_where_the_faces_are(
    run: tuple[list[object], np.ndarray, object],
) -> None:
    """Measured afresh on these PublicTest scenes, the FER2013 frame lies where the fit (on
    train/ scenes) puts it, relative to the default detector's boxes."""
    from stages.detectors import plugin

    scenes, _, classifier = run
    _, _, boxes = accuracy.run_ours("blazeface", scenes, classifier, Framing())
    fit = accuracy.fit_framing(scenes, boxes)
    shipped = plugin("blazeface").framing
    assert fit["faces"] >= 100
    # The median over some 200 faces moves by a few hundredths from one set of scenes to another.
    assert abs(fit["scale"] - shipped.scale) <= 0.07, fit
    assert abs(fit["shift_x"] - shipped.shift_x) <= 0.03, fit
    assert abs(fit["shift_y"] - shipped.shift_y) <= 0.03, fit


def test_the_label_shown_keeps_the_per_frame_accuracy_on_clips(
    run: tuple[list[object], np.ndarray, object], public_test: tuple[np.ndarray, np.ndarray]
) -> None:
    """The tracker's label (smoothing and hold at the worker's defaults) must not lose the
    faces the per-frame argmax gets right."""
    from bench.scenes import backgrounds, make_clip

    _, _, classifier = run
    faces, labels = public_test
    rng = np.random.default_rng(12)
    photos = backgrounds()
    # 60 clips: on 30 the two differ by a point either way from one draw to the next.
    clips = [make_clip(rng, faces, labels, photos, 12) for _ in range(60)]
    followed = accuracy.follow("blazeface_tracking", clips, classifier)
    shown = accuracy.shown_vs_raw([scene for clip in clips for scene in clip], followed)
    # Here the argmax is right on 69.9% of 1,382 faces found and the label shown on 70.4%.
    assert shown["faces_found"] >= 1000, shown
    assert shown["shown_accuracy_found"] >= shown["raw_accuracy_found"] - 0.01, shown


def test_levelling_the_eye_line_keeps_the_accuracy_of_tilted_heads(
    run: tuple[list[object], np.ndarray, object], public_test: tuple[np.ndarray, np.ndarray]
) -> None:
    """Heads tilted by up to 40 degrees, beyond the 15 the network learned: the crops turned
    level (``--align-roll``, off by default) keep the faces' accuracy, the crops left tilted
    lose it."""
    from stages.detectors import framing_for

    _, _, classifier = run
    faces, labels = public_test
    scenes = accuracy.build_scenes(faces, labels, 120, seed=11, roll_deg=40.0)
    right_at_own_framing = accuracy.ceiling(classifier, scenes, faces)
    scores = {}
    for align_roll in (True, False):
        framing = framing_for("blazeface", align_roll=align_roll)
        detections, _, _ = accuracy.run_ours("blazeface", scenes, classifier, framing)
        scores[align_roll] = accuracy.score(scenes, detections, right_at_own_framing)
    # Here: 68.0% of the faces found right levelled (gap -0.5 points), 61.7% left tilted.
    assert scores[True]["gap"] <= 0.05, scores
    assert scores[True]["accuracy_found"] >= scores[False]["accuracy_found"] + 0.03, scores


def test_the_tracking_detector_keeps_recall_and_labels_through_moves_and_cuts(
    run: tuple[list[object], np.ndarray, object], public_test: tuple[np.ndarray, np.ndarray]
) -> None:
    """Shots with cuts between them, faces moving, turning, entering and leaving, as one
    stream: the tracking detector (the default) finds nearly every face its full pass finds
    on every frame, with fewer full passes (both without YuNet's sweep, which the full pass on
    every frame would run three times as often), YuNet's sweep loses none of them, and the
    label shown, whose history starts afresh at each cut, is right as often as the per-frame
    argmax."""
    from bench.scenes import backgrounds, make_shots

    _, _, classifier = run
    faces, labels = public_test
    scenes, starts = make_shots(np.random.default_rng(5), faces, labels, backgrounds(), 12)
    right = accuracy.ceiling(classifier, scenes, faces)
    results, followed = {}, {}
    for key, name, options in (
        ("default", "blazeface_tracking", {}),
        ("no sweep", "blazeface_tracking", {"sweep_every": 0}),
        ("full pass every frame, no sweep", "blazeface", {"sweep_every": 0}),
    ):
        followed[key] = accuracy.follow(name, [scenes], classifier, None, options)
        results[key] = {
            **accuracy.score(scenes, followed[key].detections, right),
            **accuracy.shown_vs_raw(scenes, followed[key]),
        }
    tracked, full = results["default"], results["full pass every frame, no sweep"]
    # Here: recall 0.910 with the sweep and without it, 0.922 with the full pass every frame.
    assert tracked["recall"] >= results["no sweep"]["recall"], results
    assert results["no sweep"]["recall"] >= full["recall"] - 0.03, results
    assert len(starts) == 12 and len(scenes) >= 12 * 8
    # After a cut no face inherits a label: on a shot's first frame each face shows what the
    # classifier says of it in that frame.
    first = followed["default"]
    cut_faces = [(first.shown[i], [d.label for d in first.detections[i]]) for i in starts]
    assert sum(len(raw) for _, raw in cut_faces) >= 12
    assert all(shown == raw for shown, raw in cut_faces), cut_faces
    # The tracker keeps following a face-like thing between two full passes where the full
    # pass, on every frame, drops it now and then: on the bench's 40 shots +0.005 and +0.012
    # false detections a frame (docs/benchmarks.md, "Tracking"; here none either way). A tracker
    # that held on to what is gone would add more.
    assert tracked["false_per_frame"] <= full["false_per_frame"] + 0.03, results
    # Here: the label shown right on 66.5% of 233 faces found against 65.7% for the argmax. On
    # so few faces (about 30 people) the two differ by a few points from one draw to the next
    # (four draws of 40 shots of test/ faces: -0.3 to +3.3 points, docs/benchmarks.md,
    # "Tracking"); a label carried over a cut costs far more.
    assert tracked["shown_accuracy_found"] >= tracked["raw_accuracy_found"] - 0.04, results
