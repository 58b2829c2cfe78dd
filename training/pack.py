"""FER2013's class folders as a few files that travel to a training box, and back into folders.

    python -m training.pack --data ../shared/datasets/fer2013 --out var/fer_pack
    python -m training.pack --unpack var/fer_pack --data /srv/fer2013

A split's 48x48 faces go into mosaics (``MOSAIC_ROWS`` rows of ``MOSAIC_COLS`` faces each), the
file names and labels into ``index.npz``, and the FER+ votes are copied beside them. Tens of
thousands of PNG files become a few images a fraction of their size: 66 MB of train/ faces
are 45 MB as lossless WebP, or 24-34 MB as JPEG at quality 90-95 (``--train-quality``), which
moves a pixel by 1-2 grey levels on average. PublicTest, which chooses the epochs, is always
packed losslessly. Unpacked, the folders load as the originals do: the same names in the same
order, so the same holdout and the same FER+ matches.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.labels import EMOTIONS
from shared.settings import CommandSettings, load_settings
from training.data import Examples, Split, load_split
from training.train import DEFAULT_DATA

log = logging.getLogger("training.pack")

SPLITS: tuple[Split, ...] = ("train", "test")
FACE_HW = (48, 48)
MOSAIC_COLS = 128
#: WebP's sides stop at 16,383 px: 256 rows of 48 px stay under it.
MOSAIC_ROWS = 256
#: ``--train-quality`` above JPEG's 100: lossless WebP.
LOSSLESS = 101
INDEX = "index.npz"


def mosaics(faces: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.uint8]]:
    """Faces (N, 48, 48[, 1]) tiled row by row into mosaics of at most ``MOSAIC_ROWS`` rows; the
    last row is filled out with black."""
    height, width = FACE_HW
    faces = faces.reshape(-1, height, width)
    per_mosaic = MOSAIC_COLS * MOSAIC_ROWS
    out = []
    for start in range(0, len(faces), per_mosaic):
        chunk = faces[start : start + per_mosaic]
        rows = -(-len(chunk) // MOSAIC_COLS)
        filled = np.zeros((rows * MOSAIC_COLS, height, width), np.uint8)
        filled[: len(chunk)] = chunk
        grid = filled.reshape(rows, MOSAIC_COLS, height, width).transpose(0, 2, 1, 3)
        out.append(np.ascontiguousarray(grid.reshape(rows * height, MOSAIC_COLS * width)))
    return out


def faces_of(images: Sequence[npt.NDArray[np.uint8]], count: int) -> npt.NDArray[np.uint8]:
    """The first ``count`` faces (N, 48, 48) of mosaics made by ``mosaics``."""
    height, width = FACE_HW
    tiles = [
        image.reshape(-1, height, MOSAIC_COLS, width).transpose(0, 2, 1, 3).reshape(-1, *FACE_HW)
        for image in images
    ]
    faces = np.concatenate(tiles) if tiles else np.zeros((0, *FACE_HW), np.uint8)
    if len(faces) < count:
        raise ValueError(f"the mosaics hold {len(faces)} faces, the index names {count}")
    return np.asarray(faces[:count], np.uint8)


def pack(data: Path, out: Path, train_quality: int = LOSSLESS) -> list[Path]:
    """Write ``data``'s splits as mosaics and an index (and its FER+ votes) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {}
    written: list[Path] = []
    for split in SPLITS:
        examples = load_split(data, split)
        if len(examples.names) != len(examples):
            raise SystemExit(f"{data}/{split}: packing needs class folders of image files")
        quality = train_quality if split == "train" else LOSSLESS
        for number, image in enumerate(mosaics(examples.images)):
            path = out / f"{split}-{number:03d}{'.webp' if quality > 100 else '.jpg'}"
            params = (
                [cv2.IMWRITE_WEBP_QUALITY, LOSSLESS]
                if quality > 100
                else [cv2.IMWRITE_JPEG_QUALITY, quality]
            )
            ok, encoded = cv2.imencode(path.suffix, image, params)
            if not ok:
                raise SystemExit(f"could not encode {path.name}")
            path.write_bytes(encoded.tobytes())
            written.append(path)
        index[f"{split}_names"] = np.asarray(examples.names, dtype=np.str_)
        index[f"{split}_labels"] = examples.labels
        log.info("%s: %d faces", split, len(examples))
    np.savez_compressed(out / INDEX, **index)
    written.append(out / INDEX)
    written += _copy_votes(data / "ferplus", out / "ferplus")
    return written


def _copy_votes(source: Path, destination: Path) -> list[Path]:
    """The FER+ folder's files copied (their contents only: the source may be read-only)."""
    if not source.is_dir():
        return []
    destination.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(source.iterdir()):
        if path.is_file():
            copied.append(Path(shutil.copyfile(path, destination / path.name)))
    return copied


def read_pack(source: Path, split: Split) -> Examples:
    """One split of a pack, as ``load_split`` gives it from the folders."""
    with np.load(source / INDEX) as index:
        names = tuple(str(name) for name in index[f"{split}_names"])
        labels = np.asarray(index[f"{split}_labels"], np.int64)
    images = []
    for path in sorted(source.glob(f"{split}-*.*")):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise SystemExit(f"{path}: not an image")
        images.append(np.asarray(image, np.uint8))
    faces = faces_of(images, len(names))
    return Examples(faces[..., None], labels, str(source / split), names)


def unpack(source: Path, data: Path) -> int:
    """Write a pack back as class folders of PNG files under ``data``; returns the faces
    written."""
    written = 0
    for split in SPLITS:
        examples = read_pack(source, split)
        for emotion in EMOTIONS:
            (data / split / emotion).mkdir(parents=True, exist_ok=True)
        for name, face in zip(examples.names, examples.images, strict=True):
            if not cv2.imwrite(str(data / split / name), face):
                raise SystemExit(f"could not write {data / split / name}")
        written += len(examples)
    _copy_votes(source / "ferplus", data / "ferplus")
    return written


class PackSettings(CommandSettings):
    """Pack FER2013's class folders into a few files, or unpack them."""

    model_config = SettingsConfigDict(
        env_prefix="EMOJIFY_PACK_", cli_prog_name="python -m training.pack"
    )

    data: Path = Field(
        default=DEFAULT_DATA, description="The class-folder root to pack, or to unpack into."
    )
    out: Path = Field(default=Path("var/fer_pack"), description="Where the pack is written.")
    unpack: Path | None = Field(
        default=None, description="A pack to write back as class folders under --data."
    )
    train_quality: int = Field(
        default=LOSSLESS,
        ge=50,
        le=LOSSLESS,
        description=f"JPEG quality of train/'s mosaics ({LOSSLESS}: lossless WebP).",
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings(PackSettings, argv)
    if settings.unpack is not None:
        count = unpack(settings.unpack, settings.data)
        print(f"unpacked {count} faces into {settings.data}", flush=True)
        return 0
    written = pack(settings.data, settings.out, settings.train_quality)
    size = sum(path.stat().st_size for path in written if path.is_file())
    print(f"packed {settings.data} into {settings.out}: {size / 1e6:.1f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
