"""What a face goes through between a camera and the model, as training-time jitter.

FER2013 faces are cut by one detector at one framing; on screen a face arrives through another
detector's box (a little larger or smaller, off-centre, tilted) and a webcam (gamma, blur, noise,
JPEG). ``jitter_faces`` draws those changes on training faces so that the network learns to
tolerate them. Pure numpy/OpenCV on uint8 arrays; seeded by the caller's generator.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["Faces", "Jitter", "jitter_face", "jitter_faces", "reframe"]

Faces = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Jitter:
    """Ranges of the changes drawn per face (each photometric one applied with its chance)."""

    #: Crop side relative to the FER2013 frame, drawn log-uniformly.
    scale: tuple[float, float] = (0.8, 1.3)
    #: Centre shift, a fraction of the frame's side, uniform in +-shift on each axis.
    shift: float = 0.1
    #: In-plane rotation, degrees, uniform in +-roll.
    roll: float = 10.0
    gamma: tuple[float, float] = (0.6, 1.6)
    contrast: tuple[float, float] = (0.7, 1.3)
    blur_p: float = 0.25
    blur_sigma: tuple[float, float] = (0.4, 1.2)
    noise_p: float = 0.25
    noise_sigma: tuple[float, float] = (2.0, 10.0)
    jpeg_p: float = 0.25
    jpeg_quality: tuple[int, int] = (30, 90)
    #: Chance of a face seen at low resolution (down to ``low_res`` px, then back up).
    low_res_p: float = 0.15
    low_res: tuple[int, int] = (20, 40)


def reframe(
    face: Faces, scale: float, shift_xy: tuple[float, float] = (0.0, 0.0), roll_deg: float = 0.0
) -> Faces:
    """The face as another crop would frame it, at the same size.

    The crop's side is ``scale`` x the face's side, its centre moved by ``shift_xy`` x that side
    (positive: right and down) and turned by ``roll_deg``; what falls outside the face is
    mirrored in from its edges.
    """
    height, width = face.shape[:2]
    centre = ((width - 1) / 2, (height - 1) / 2)
    # Output pixel u maps to source centre + shift + R(roll) * (u - centre) * scale.
    angle = math.radians(roll_deg)
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    src_cx = centre[0] + shift_xy[0] * width
    src_cy = centre[1] + shift_xy[1] * height
    to_source = np.array(
        [
            [cos, -sin, src_cx - cos * centre[0] + sin * centre[1]],
            [sin, cos, src_cy - sin * centre[0] - cos * centre[1]],
        ],
        dtype=np.float64,
    )
    out = cv2.warpAffine(
        face,
        to_source,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    return np.asarray(out, dtype=np.uint8).reshape(face.shape)


def jitter_face(face: Faces, rng: np.random.Generator, jitter: Jitter) -> Faces:
    """One face (H, W) or (H, W, 1) uint8 with framing and camera changes drawn from ``jitter``."""
    shape = face.shape
    image = face.reshape(shape[:2])
    low, high = jitter.scale
    scale = math.exp(rng.uniform(math.log(low), math.log(high)))
    shift = (rng.uniform(-jitter.shift, jitter.shift), rng.uniform(-jitter.shift, jitter.shift))
    image = reframe(image, scale, shift, rng.uniform(-jitter.roll, jitter.roll))
    values: npt.NDArray[np.float32] = image.astype(np.float32) / 255.0
    values = values ** rng.uniform(*jitter.gamma)
    mean = float(values.mean())
    values = (values - mean) * rng.uniform(*jitter.contrast) + mean
    if rng.random() < jitter.blur_p:
        values = np.asarray(cv2.GaussianBlur(values, (0, 0), rng.uniform(*jitter.blur_sigma)))
    if rng.random() < jitter.noise_p:
        noise = rng.normal(0.0, rng.uniform(*jitter.noise_sigma) / 255.0, values.shape)
        values = values + noise.astype(np.float32)
    image = np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < jitter.low_res_p:
        side = int(rng.integers(jitter.low_res[0], jitter.low_res[1] + 1))
        small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
        image = np.asarray(cv2.resize(small, shape[1::-1], interpolation=cv2.INTER_LINEAR))
    if rng.random() < jitter.jpeg_p:
        quality = int(rng.integers(jitter.jpeg_quality[0], jitter.jpeg_quality[1] + 1))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            image = np.asarray(cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE))
    return np.asarray(image, dtype=np.uint8).reshape(shape)


def jitter_faces(faces: Faces, rng: np.random.Generator, jitter: Jitter, threads: int = 0) -> Faces:
    """A jittered copy of every face in (N, H, W[, 1]); ``threads`` 0 uses every core.

    Each chunk of faces gets its own generator spawned from ``rng``, so the result depends on
    the seed alone, not on the number of threads.
    """
    chunk = 512
    starts = range(0, len(faces), chunk)
    seeds = rng.spawn(len(starts))
    out = np.empty_like(faces)

    def work(index: int) -> None:
        start = starts[index]
        local = seeds[index]
        for i in range(start, min(start + chunk, len(faces))):
            out[i] = jitter_face(faces[i], local, jitter)

    workers = threads if threads > 0 else (os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(len(starts))))
    return out
