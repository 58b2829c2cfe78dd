"""Render the bundled demo recording (recordings/demo/) from two portraits that ship in packages.

Run once, commit the output: ``.venv/bin/python scripts/make_recording.py``. Deterministic.
Grace Hopper (matplotlib sample data) and Eileen Collins (scikit-image ``astronaut``) move along
smooth paths and scale slowly over a textured background; every frame's face boxes come from one
Haar-cascade box measured on each portrait, mapped through that frame's scale and translation.
"""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import cv2.data
import numpy as np
import numpy.typing as npt
from matplotlib import cbook
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommandSettings, load_settings

Image = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]

WIDTH, HEIGHT, FPS, FRAME_COUNT, SEED, JPEG_QUALITY = 640, 480, 15.0, 135, 7, 80
STREAM_ID = "demo"
CASCADE = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
# Head and shoulders: margins around the face box, as fractions of the face size.
MARGIN_SIDE, MARGIN_TOP, MARGIN_BOTTOM = 0.4, 0.35, 0.75
FEATHER_PX = 9


@dataclass(frozen=True)
class Portrait:
    who: str
    crop_bgr: Image  # head and shoulders
    face_xywh: Box  # in crop coordinates
    first_frame: int  # visible in frames [first_frame, last_frame)
    last_frame: int


def detect_faces(detector: cv2.CascadeClassifier, image_bgr: Image) -> list[Box]:
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    found = detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
    return [(int(x), int(y), int(w), int(h)) for x, y, w, h in found]


def make_portrait(
    detector: cv2.CascadeClassifier, who: str, image_bgr: Image, frames: tuple[int, int]
) -> Portrait:
    faces = detect_faces(detector, image_bgr)
    if len(faces) != 1:
        raise SystemExit(f"{who}: expected one face in the portrait, found {len(faces)}")
    x, y, w, h = faces[0]
    left, top = max(0, round(x - MARGIN_SIDE * w)), max(0, round(y - MARGIN_TOP * h))
    right = min(image_bgr.shape[1], round(x + w + MARGIN_SIDE * w))
    bottom = min(image_bgr.shape[0], round(y + h + MARGIN_BOTTOM * h))
    crop = image_bgr[top:bottom, left:right].copy()
    return Portrait(who, crop, (x - left, y - top, w, h), *frames)


def make_background(rng: np.random.Generator) -> Image:
    """A soft diagonal gradient with blurred low-frequency blotches: plain but not flat."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    t = (0.6 * xx / WIDTH + 0.4 * yy / HEIGHT)[..., None]
    start, end = np.array([150, 120, 95], np.float32), np.array([210, 190, 170], np.float32)
    gradient = start * (1 - t) + end * t
    blotches = cv2.GaussianBlur(
        cv2.resize(rng.normal(0, 12, (12, 16, 3)).astype(np.float32), (WIDTH, HEIGHT)), (0, 0), 15
    )
    grain = cv2.GaussianBlur(rng.normal(0, 2.5, (HEIGHT, WIDTH, 1)).astype(np.float32), (0, 0), 1.0)
    grain = grain[..., None]  # the same grain in every channel: texture, not colour noise
    return np.asarray(np.clip(gradient + blotches + grain, 0, 255), np.uint8)


def face_size_and_centre(who: str, t: float) -> tuple[float, float, float]:
    """Face width in pixels and sprite centre (x, y) at time ``t`` seconds; smooth paths."""
    if who == "hopper":  # left half
        return (
            140 + 45 * math.sin(0.9 * t),
            165 + 20 * math.sin(1.3 * t + 0.5),
            245 + 35 * math.sin(1.1 * t + 1.0),
        )
    return (  # astronaut, right half
        115 + 25 * math.sin(0.7 * t + 2.0),
        505 + 25 * math.sin(1.2 * t + 2.5),
        235 + 40 * math.sin(0.8 * t + 0.3),
    )


def place(portrait: Portrait, t: float) -> tuple[Image, tuple[int, int], Box]:
    """The scaled sprite, its top-left corner in the frame, and the face box in the frame."""
    face_w, centre_x, centre_y = face_size_and_centre(portrait.who, t)
    scale = face_w / portrait.face_xywh[2]
    crop_h, crop_w = portrait.crop_bgr.shape[:2]
    size_wh = (round(crop_w * scale), round(crop_h * scale))
    sprite = cv2.resize(portrait.crop_bgr, size_wh, interpolation=cv2.INTER_AREA)
    left = min(max(0, round(centre_x - size_wh[0] / 2)), WIDTH - size_wh[0])
    top = min(max(0, round(centre_y - size_wh[1] / 2)), HEIGHT - size_wh[1])
    sx, sy = size_wh[0] / crop_w, size_wh[1] / crop_h
    fx, fy, fw, fh = portrait.face_xywh
    box = (round(left + fx * sx), round(top + fy * sy), round(fw * sx), round(fh * sy))
    return np.asarray(sprite, np.uint8), (left, top), box


def paste_feathered(frame: Image, sprite: Image, left: int, top: int) -> None:
    """Blend ``sprite`` into ``frame`` in place with soft edges, like a photo card."""
    h, w = sprite.shape[:2]
    mask = np.zeros((h, w), np.float32)
    mask[FEATHER_PX:-FEATHER_PX, FEATHER_PX:-FEATHER_PX] = 1.0
    alpha = cv2.GaussianBlur(mask, (0, 0), FEATHER_PX / 2)[..., None]
    region = frame[top : top + h, left : left + w].astype(np.float32)
    blended = alpha * sprite.astype(np.float32) + (1 - alpha) * region
    frame[top : top + h, left : left + w] = blended.round().astype(np.uint8)


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


class RecordingSettings(CommandSettings):
    """Render the bundled demo recording (recordings/demo/) from two portraits that ship in
    packages."""

    model_config = SettingsConfigDict(cli_prog_name="python scripts/make_recording.py")

    out: Path = Field(
        default=Path(__file__).parents[1] / "recordings/demo", description="Recording folder."
    )


def main() -> int:
    out = load_settings(RecordingSettings).out

    rng = np.random.default_rng(SEED)
    detector = cv2.CascadeClassifier(CASCADE)
    hopper_path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    hopper_bgr = np.asarray(cv2.imread(str(hopper_path)), np.uint8)
    # skimage's lazy loader hides ``data`` from type checkers; import it by name.
    skimage_data = importlib.import_module("skimage.data")
    astronaut_rgb = np.asarray(skimage_data.astronaut(), np.uint8)
    astronaut_bgr = np.asarray(cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR), np.uint8)
    portraits = [  # some frames show one face, most show two
        make_portrait(detector, "hopper", hopper_bgr, (0, 110)),
        make_portrait(detector, "astronaut", astronaut_bgr, (25, FRAME_COUNT)),
    ]
    background = make_background(rng)

    (out / "frames").mkdir(parents=True, exist_ok=True)
    for stale in (out / "frames").glob("*.jpg"):
        stale.unlink()
    frames_json, found, expected, total_bytes = [], 0, 0, 0
    for index in range(FRAME_COUNT):
        frame = background.copy()
        boxes: list[tuple[str, Box]] = []
        cards: list[Box] = []
        for portrait in portraits:
            if portrait.first_frame <= index < portrait.last_frame:
                sprite, (left, top), box = place(portrait, index / FPS)
                paste_feathered(frame, sprite, left, top)
                cards.append((left, top, sprite.shape[1], sprite.shape[0]))
                boxes.append((portrait.who, box))
        if len(cards) == 2 and iou(cards[0], cards[1]) > 0:
            raise SystemExit(f"frame {index}: the two portraits overlap: {cards}")
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok
        name = f"frames/{index:06d}.jpg"
        (out / name).write_bytes(jpeg.tobytes())
        total_bytes += len(jpeg)
        faces = [{"box_xywh": list(box), "who": who} for who, box in boxes]
        frames_json.append({"file": name, "faces": faces})

        # The worker's default detector must see these faces, or the demo shows nothing.
        decoded = np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), np.uint8)
        detections = detect_faces(detector, decoded)
        expected += len(boxes)
        found += sum(any(iou(box, d) >= 0.5 for d in detections) for _, box in boxes)

    recording = {
        "stream_id": STREAM_ID,
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "frames": frames_json,
    }
    (out / "recording.json").write_text(json.dumps(recording, indent=1) + "\n")
    print(
        f"wrote {FRAME_COUNT} frames ({total_bytes / 1e6:.2f} MB) to {out}; Haar recall "
        f"{found}/{expected} = {found / expected:.1%} (IoU >= 0.5 with the ground truth)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
