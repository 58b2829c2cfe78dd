"""Copy MediaPipe's BlazeFace TFLite models out of the ``mediapipe`` wheel into the stages' assets.

The worker runs these files with TensorFlow's own ``tf.lite.Interpreter``, so ``mediapipe``
(which requires ``opencv-contrib-python``, clashing with our ``opencv-python``) is never
installed. Newer mediapipe wheels (1.x) no longer carry the ``.tflite`` files; 0.10.21 does.
The files, MediaPipe's Apache-2.0 licence and a PROVENANCE.json (package, version, path inside
the wheel, sha256) are committed, so nothing is downloaded at run time.

    .venv/bin/python scripts/extract_blazeface.py              # pip download, then extract
    .venv/bin/python scripts/extract_blazeface.py --wheel mediapipe-0.10.21-...whl
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommandSettings, load_settings

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_OUT: Final = ROOT / "stages" / "assets" / "blazeface"
PACKAGE: Final = "mediapipe"
VERSION: Final = "0.10.21"
#: Name in our assets folder -> path inside the wheel.
MODELS: Final = {
    "face_detection_short_range.tflite": (
        "mediapipe/modules/face_detection/face_detection_short_range.tflite"
    ),
    "face_detection_full_range_sparse.tflite": (
        "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite"
    ),
}
LICENSE_IN_WHEEL: Final = f"{PACKAGE}-{VERSION}.dist-info/LICENSE"


def download_wheel(folder: Path) -> Path:
    """``pip download`` the pinned wheel (no dependencies) into ``folder``; its path."""
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
            f"{PACKAGE}=={VERSION}",
        ],
        check=True,
    )
    wheels = sorted(folder.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download left no {PACKAGE}-{VERSION} wheel in {folder}")
    return wheels[0]


def extract(wheel: Path, out: Path) -> dict[str, object]:
    """Write the models, LICENSE and PROVENANCE.json into ``out``; the provenance written."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, str]] = {}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name, inside in [*MODELS.items(), ("LICENSE", LICENSE_IN_WHEEL)]:
            if inside not in names:
                raise SystemExit(f"{wheel.name}: expected {inside} inside the wheel, not found")
            data = archive.read(inside)
            (out / name).write_bytes(data)
            files[name] = {"path_in_wheel": inside, "sha256": hashlib.sha256(data).hexdigest()}
    provenance: dict[str, object] = {
        "package": PACKAGE,
        "version": VERSION,
        "wheel": wheel.name,
        "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "license": "Apache-2.0 (see LICENSE, copied from the wheel)",
        "source": "https://pypi.org/project/mediapipe/" + VERSION + "/",
        "files": files,
    }
    (out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


class ExtractSettings(CommandSettings):
    """Copy MediaPipe's BlazeFace TFLite models out of the ``mediapipe`` wheel into the stages'
    assets."""

    model_config = SettingsConfigDict(cli_prog_name="python scripts/extract_blazeface.py")

    wheel: Path | None = Field(
        default=None, description=f"A {PACKAGE}-{VERSION} wheel already here."
    )
    out: Path = Field(default=DEFAULT_OUT, description="Assets folder.")


def main(argv: Sequence[str] | None = None) -> int:
    args = load_settings(ExtractSettings, argv)
    with tempfile.TemporaryDirectory() as scratch:
        wheel = args.wheel or download_wheel(Path(scratch))
        provenance = extract(wheel, args.out)
    print(json.dumps(provenance, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
