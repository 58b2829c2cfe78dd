"""BlazeFace and MTCNN on real faces (a portrait, recorded frames) and on faceless frames.

Each detector is tested where it is installed in the dev environment: BlazeFace always (its
models are committed assets), MTCNN when the ``[mtcnn]`` extra is installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import pytest

from shared.image import BoxXYWH, iou_xywh
from shared.recording import load_recording
from stages.detectors import DetectorError, FaceDetector, build_detector
from stages.detectors.blazeface import BlazeFaceDetector
from stages.detectors.letterbox import Letterbox, letterbox_rgb, to_frame_xyxy
from stages.detectors.second_look import CANDIDATE_SCORE
from stages.detectors.tiler import tile_regions
from stages.detectors.yunet_look import YuNetLook
from tests.conftest import ASTRONAUT_FACE_XYWH

pytestmark = pytest.mark.timeout(120)

RECORDING: Final = Path(__file__).resolve().parents[2] / "recordings" / "demo"
#: A spread of frames: one face, two faces, near the start, middle and end.
RECORDED_FRAMES: Final = (0, 30, 60, 90, 134)
HAS_MTCNN: Final = importlib.util.find_spec("mtcnn") is not None

NAMES = [
    "haar",
    "blazeface",
    "blazeface_full",
    pytest.param(
        "mtcnn",
        # MTCNN runs on TensorFlow: seconds a call, so out of the quick loop (make unit).
        marks=[
            pytest.mark.skipif(not HAS_MTCNN, reason="needs the [mtcnn] extra"),
            pytest.mark.slow,
        ],
    ),
]

_built: dict[str, FaceDetector] = {}


def _detector(name: str) -> FaceDetector:
    # Built once per test session: MTCNN takes seconds to load.
    if name not in _built:
        _built[name] = build_detector(name)
    return _built[name]


@pytest.fixture(scope="module")
def recorded() -> list[tuple[np.ndarray, list[BoxXYWH]]]:
    recording = load_recording(RECORDING)
    frames = []
    for index in RECORDED_FRAMES:
        frame = recording.frames[index]
        image = cv2.imread(str(RECORDING / frame.file), cv2.IMREAD_COLOR)
        assert image is not None, frame.file
        frames.append((image, [face.box_xywh for face in frame.faces]))
    return frames


@pytest.mark.parametrize("name", NAMES)
def test_finds_the_astronauts_face(name: str, astronaut_bgr: np.ndarray) -> None:
    boxes = [face.box_xywh for face in _detector(name).detect(astronaut_bgr)]
    assert len(boxes) == 1, boxes
    assert iou_xywh(boxes[0], ASTRONAUT_FACE_XYWH) >= 0.5, boxes[0]
    assert all(isinstance(value, int) for value in boxes[0])


@pytest.mark.parametrize("name", NAMES)
def test_finds_every_recorded_face(
    name: str, recorded: list[tuple[np.ndarray, list[BoxXYWH]]]
) -> None:
    detector = _detector(name)
    for image, truth in recorded:
        boxes = [face.box_xywh for face in detector.detect(image)]
        assert len(boxes) == len(truth), (boxes, truth)
        for face in truth:
            assert max(iou_xywh(face, box) for box in boxes) >= 0.5, (face, boxes)


def test_tiled_blazeface_finds_the_same_faces_on_one_interpreter_or_several(
    recorded: list[tuple[np.ndarray, list[BoxXYWH]]],
) -> None:
    """The regions shared out over interpreters in threads give what one interpreter gives."""
    alone = BlazeFaceDetector("short", tiled=True, threads=1)
    shared = BlazeFaceDetector("short", tiled=True, threads=3)
    for image, _ in recorded[::10]:
        assert shared.detect(image) == alone.detect(image)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((480, 640, 3), np.uint8),
        np.full((480, 640, 3), 200, np.uint8),
        np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8),
    ],
    ids=["black", "grey", "noise"],
)
def test_no_faces_in_faceless_frames(name: str, frame: np.ndarray) -> None:
    assert _detector(name).detect(frame) == []


@pytest.mark.parametrize("name", NAMES)
def test_does_not_mutate_the_frame(name: str, astronaut_bgr: np.ndarray) -> None:
    frame = astronaut_bgr.copy()
    _detector(name).detect(frame)
    assert np.array_equal(frame, astronaut_bgr)


def test_blazeface_min_face_px_skips_small_faces(astronaut_bgr: np.ndarray) -> None:
    assert build_detector("blazeface", min_face_px=150).detect(astronaut_bgr) == []


def test_missing_blazeface_model_is_a_clear_error(tmp_path: Path) -> None:
    from stages.detectors.blazeface import BlazeFaceDetector

    with pytest.raises(DetectorError, match=r"BlazeFace model not found: .*nope\.tflite"):
        BlazeFaceDetector(model_path=tmp_path / "nope.tflite")


def test_mtcnn_without_its_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mtcnn", None)  # what an install without the extra sees
    with pytest.raises(DetectorError, match=r"pip install -e '\.\[mtcnn\]'"):
        build_detector("mtcnn")


@pytest.mark.parametrize(
    ("size_hw", "scale", "pad_xy"),
    [((480, 640), 0.2, (0, 16)), ((640, 480), 0.2, (16, 0)), ((128, 128), 1.0, (0, 0))],
    ids=["landscape", "portrait", "square"],
)
def test_letterbox_keeps_aspect_and_centres(
    size_hw: tuple[int, int], scale: float, pad_xy: tuple[int, int]
) -> None:
    frame = np.full((*size_hw, 3), 255, np.uint8)
    tensor, box = letterbox_rgb(frame, 128)
    assert tensor.shape == (128, 128, 3)
    assert tensor.dtype == np.float32
    assert box.scale == pytest.approx(scale)
    assert (box.pad_x, box.pad_y) == pad_xy
    assert tensor.max() == pytest.approx(1.0)
    if pad_xy != (0, 0):
        assert tensor.min() == pytest.approx(-1.0)  # the black bars


def test_boxes_map_back_through_the_letterbox() -> None:
    # A 640x480 frame in a 128 input: scale 0.2, 16 px bars above and below.
    letterbox = Letterbox(scale=0.2, pad_x=0, pad_y=16)
    x0, y0 = 100 * 0.2 / 128, (200 * 0.2 + 16) / 128
    x1, y1 = 180 * 0.2 / 128, (280 * 0.2 + 16) / 128
    boxes = np.array([[x0, y0, x1, y1]], np.float32)
    np.testing.assert_allclose(to_frame_xyxy(boxes, letterbox, 128), [[100, 200, 180, 280]])
    # The same box found in a tile whose corner is at (320, 160) of the frame.
    moved = to_frame_xyxy(boxes, letterbox, 128, (320, 160))
    np.testing.assert_allclose(moved, [[420, 360, 500, 440]], atol=1e-3)


def test_tiles_overlap_by_half_and_cover_the_frame() -> None:
    tiles = tile_regions(640, 480)
    assert tiles == [
        (0, 0, 320, 320), (160, 0, 320, 320), (320, 0, 320, 320),
        (0, 160, 320, 320), (160, 160, 320, 320), (320, 160, 320, 320),
    ]  # fmt: skip
    covered = np.zeros((480, 640), bool)
    for x, y, w, h in tiles:
        covered[y : y + h, x : x + w] = True
    assert covered.all()


@pytest.mark.parametrize(("frame_wh", "face_px"), [((640, 480), 60), ((1000, 700), 94)])
def test_small_faces_are_found_in_tiles(
    astronaut_bgr: np.ndarray, frame_wh: tuple[int, int], face_px: int
) -> None:
    """The astronaut shrunk so that her face is a tenth of the frame's width: too small for
    one pass of the short-range model over the whole frame, found by the tiles (cut from one
    resized copy of the frame; at 1000x700 they start between its pixels)."""
    x, y, w, h = ASTRONAUT_FACE_XYWH
    scale = face_px / w
    head = astronaut_bgr[: y + h + h // 2]  # her suit, at this scale, looks like a face too
    small = cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((frame_wh[1], frame_wh[0], 3), 128, np.uint8)
    frame[100 : 100 + small.shape[0], 150 : 150 + small.shape[1]] = small
    face = (150 + round(x * scale), 100 + round(y * scale), face_px, round(h * scale))
    single = BlazeFaceDetector("short", min_face_px=20)
    tiled = BlazeFaceDetector("short", min_face_px=20, tiled=True)
    assert not any(iou_xywh(found.box_xywh, face) >= 0.3 for found in single.detect(frame))
    found = tiled.detect(frame)
    assert len(found) == 1 and iou_xywh(found[0].box_xywh, face) >= 0.5, found


def _roll_of_the_astronaut(astronaut_bgr: np.ndarray, turn_deg: float) -> float:
    """The roll BlazeFace gives the astronaut's face once the image is turned clockwise on
    screen by ``turn_deg`` about her face."""
    x, y, w, h = ASTRONAUT_FACE_XYWH
    # cv2 turns counter-clockwise for a positive angle.
    turn = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), -turn_deg, 1.0)
    frame = cv2.warpAffine(astronaut_bgr, turn, (512, 512), borderValue=(128, 128, 128))
    found = build_detector("blazeface").detect(frame)
    (face,) = [f for f in found if iou_xywh(f.box_xywh, ASTRONAUT_FACE_XYWH) >= 0.4]
    return face.roll_deg


@pytest.mark.parametrize("turn_deg", [-20.0, 10.0, 25.0])
def test_blazeface_measures_the_roll_of_a_tilted_face(
    astronaut_bgr: np.ndarray, turn_deg: float
) -> None:
    upright = _roll_of_the_astronaut(astronaut_bgr, 0.0)
    assert abs(upright) <= 10.0  # her head leans a little
    turned = _roll_of_the_astronaut(astronaut_bgr, turn_deg)
    assert abs(turned - upright - turn_deg) <= 6.0, (upright, turned)


def _photo_640(name: str) -> np.ndarray:
    """One of skimage's photos, stretched to a 640x480 BGR frame."""
    from bench.scenes import photo_bgr

    stretched = cv2.resize(photo_bgr(name), (640, 480), interpolation=cv2.INTER_AREA)
    return np.asarray(stretched, np.uint8)


@pytest.mark.parametrize(
    ("photo", "faces"),
    [("chelsea", 0), ("coffee", 0), ("camera", 1)],
    ids=["a cat", "a cup", "a man and his camera"],
)
def test_the_second_look_drops_what_only_looked_like_a_face(photo: str, faces: int) -> None:
    frame = _photo_640(photo)
    without = BlazeFaceDetector(
        "short", tiled=True, second_look=False, min_score=CANDIDATE_SCORE
    ).detect(frame)
    looked = BlazeFaceDetector("short", tiled=True).detect(frame)
    assert len(without) > faces, without  # a cat's face, the cup's rim, the camera
    assert len(looked) == faces, looked
    # The candidates are the same: what is kept is kept as it was found.
    assert {face.box_xywh for face in looked} <= {face.box_xywh for face in without}


@pytest.mark.parametrize(
    ("photo", "guesses"),
    [
        ("chelsea", [(7, 0, 408, 385), (352, 0, 288, 341), (434, 310, 122, 122)]),
        ("coffee", [(346, 308, 62, 62)]),
    ],
    ids=["a cat", "a cup's rim"],
)
def test_yunet_finds_no_face_where_blazeface_only_guessed_one(
    photo: str, guesses: list[tuple[int, int, int, int]]
) -> None:
    # Boxes BlazeFace's tiled pass, without second looks, guesses on these photos.
    frame = _photo_640(photo)
    look = YuNetLook()
    assert not any(look.finds(frame, box) for box in guesses)
    assert (look.looks_taken, look.faces_dropped) == (len(guesses), len(guesses))


def test_yunet_finds_the_faces(
    astronaut_bgr: np.ndarray, recorded: list[tuple[np.ndarray, list[BoxXYWH]]]
) -> None:
    look = YuNetLook()
    assert look.finds(astronaut_bgr, ASTRONAUT_FACE_XYWH)
    for image, boxes in recorded:
        assert all(look.finds(image, box) for box in boxes), boxes
    assert look.faces_dropped == 0


def test_yunet_looks_at_the_unsure_faces_that_the_second_look_keeps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the second look keeping every candidate, YuNet's look leaves the man's face (which
    BlazeFace is sure of, so it needs no look) and drops the rest (the camera, the tripod)."""
    frame = _photo_640("camera")
    shipped = BlazeFaceDetector("short", tiled=True).detect(frame)
    monkeypatch.setattr(
        "stages.detectors.blazeface.confirm", lambda scores, look, votes: [True] * len(scores)
    )
    detector = BlazeFaceDetector("short", tiled=True)
    faces = detector.detect(frame)
    assert detector.yunet is not None
    assert detector.yunet.looks_taken >= 1
    assert detector.yunet.faces_dropped == detector.yunet.looks_taken
    assert len(faces) == 1
    assert faces == shipped


def test_a_missing_or_corrupt_yunet_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match=r"YuNet model not found: .*nope\.onnx"):
        YuNetLook(tmp_path / "nope.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a network")
    with pytest.raises(DetectorError, match=r"YuNet model could not be loaded: .*corrupt\.onnx"):
        YuNetLook(corrupt)


def test_weak_candidates_leave_the_boxes_of_sure_faces_as_they_were(
    recorded: list[tuple[np.ndarray, list[BoxXYWH]]],
) -> None:
    """The weak detections kept for the second look are merged apart from those at the model's
    own threshold, so a face's box (and so its crop) is the one the detector gave before (all
    merged together, the boxes moved by a pixel or two in 123 of the recording's 135 frames)."""
    before = BlazeFaceDetector("short", tiled=True, second_look=False)
    now = BlazeFaceDetector("short", tiled=True)
    for frame, truth in recorded:
        boxes = [face.box_xywh for face in now.detect(frame)]
        assert boxes == [face.box_xywh for face in before.detect(frame)]
        assert len(boxes) == len(truth)
