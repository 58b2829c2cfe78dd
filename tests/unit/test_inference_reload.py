"""Hot reload with a fake clock, file states and loader: when it loads, and what it keeps."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from services.inference.reload import FileState, ModelReloader, file_state
from shared.image import SizeHW
from shared.labels import NUM_EMOTIONS
from shared.model_file import ModelFileError, ModelPairMismatchError, metadata_path, tflite_path
from shared.runtime import Stats
from stages.views import View

PATH = Path("/models/emotion_model.keras")


class FakeClassifier:
    input_hw: SizeHW = (48, 48)

    def __init__(self, version: str) -> None:
        self.version = version

    def classify(
        self, faces_gray: npt.NDArray[np.uint8], views: Sequence[View] | None = None
    ) -> npt.NDArray[np.float32]:
        return np.full((len(faces_gray), NUM_EMOTIONS), 1 / NUM_EMOTIONS, np.float32)


class World:
    """The clock, the model file's state and what loading it gives, all set by the test."""

    def __init__(self) -> None:
        self.now = 0.0
        self.state: FileState = ((1, 100, 1), (2, 50, 1))
        self.content: str | Exception = "v1"
        self.loads: list[Path] = []
        self.pending: list[Callable[[], None]] = []

    def clock(self) -> float:
        return self.now

    def state_of(self, path: Path) -> FileState:
        return self.state

    def load(self, path: Path) -> FakeClassifier:
        self.loads.append(path)
        if isinstance(self.content, Exception):
            raise self.content
        return FakeClassifier(self.content)

    def replace(self, content: str | Exception) -> None:
        inode = (self.state[0] or (0, 0, 0))[0] + 10
        self.state = ((inode, 100, int(self.now * 1e9)), (inode + 1, 50, int(self.now * 1e9)))
        self.content = content


@pytest.fixture
def world() -> World:
    return World()


def _reloader(
    world: World, stats: Stats, spawn: Callable[..., None] | None = None
) -> ModelReloader:
    return ModelReloader(
        PATH,
        world.load,
        "v1",
        2.0,
        stats,
        clock=world.clock,
        state_of=world.state_of,
        spawn=spawn or (lambda work: work()),
    )


def test_nothing_happens_while_the_file_stays_the_same(world: World) -> None:
    reloader = _reloader(world, Stats())
    for _ in range(10):
        world.now += 1.0
        assert reloader.poll() is None
    assert world.loads == []


def test_a_new_file_is_loaded_at_the_next_check_and_handed_over_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    stats = Stats()
    reloader = _reloader(world, stats)
    world.replace("v2")
    world.now += 1.0
    assert reloader.poll() is None, "checked before reload_check_s passed"
    world.now += 1.5
    with caplog.at_level(logging.INFO):
        new = reloader.poll()
    assert new is not None and new.version == "v2"
    assert "model reloaded: v1 -> v2" in caplog.text
    assert stats.get("reloads") == 1
    world.now += 5.0
    assert reloader.poll() is None
    assert world.loads == [PATH]


def test_a_bad_file_keeps_the_old_model_and_is_not_tried_again(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    stats = Stats()
    reloader = _reloader(world, stats)
    world.replace(ModelFileError(f"cannot load model file {PATH}: BadZipFile: not a zip"))
    world.now += 2.0
    with caplog.at_level(logging.WARNING):
        assert reloader.poll() is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(PATH) in warnings[0].getMessage() and "not a zip" in warnings[0].getMessage()
    assert "keeping v1" in warnings[0].getMessage()
    assert stats.get("reload_failed") == 1
    for _ in range(5):  # the same bad pair: not loaded again
        world.now += 2.0
        assert reloader.poll() is None
    assert len(world.loads) == 1
    assert stats.get("reload_failed") == 1
    # Fixed by a new file: loaded, swapped in.
    world.replace("v3")
    world.now += 2.0
    new = reloader.poll()
    assert new is not None and new.version == "v3"
    assert len(world.loads) == 2


def test_a_rewrite_of_the_same_model_is_not_a_reload(world: World) -> None:
    stats = Stats()
    reloader = _reloader(world, stats)
    world.replace("v1")
    world.now += 2.0
    assert reloader.poll() is None
    assert stats.get("reloads") == 0 and stats.get("reload_failed") == 0


def test_the_load_runs_in_the_background_and_poll_never_waits(world: World) -> None:
    reloader = _reloader(world, Stats(), spawn=world.pending.append)
    world.replace("v2")
    world.now += 2.0
    assert reloader.poll() is None
    assert reloader.loading
    assert reloader.poll() is None, "handed over before the load finished"
    world.pending.pop()()  # the background thread finishes
    new = reloader.poll()
    assert new is not None and new.version == "v2"
    assert not reloader.loading


@pytest.mark.parametrize("replaced", [".keras", ".tflite", ".json"])
def test_file_state_changes_when_any_file_of_the_model_is_replaced(
    tmp_path: Path, replaced: str
) -> None:
    model = tmp_path / "m.keras"
    assert file_state(model) == (None, None, None)
    for path in (model, tflite_path(model), metadata_path(model)):
        path.write_bytes(b"a")
    before = file_state(model)
    assert None not in before
    replacement = tmp_path / "new"
    replacement.write_bytes(b"b ")
    replacement.replace(model.with_suffix(replaced))
    assert file_state(model) != before


def test_a_pair_caught_between_its_two_renames_is_refused_once_or_not_at_all(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    stats = Stats()
    reloader = _reloader(world, stats)
    # The model is renamed first: the old metadata does not match it.
    world.replace(ModelPairMismatchError(f"{PATH} does not match its metadata"))
    world.now += 2.0
    with caplog.at_level(logging.INFO):
        assert reloader.poll() is None
    assert stats.get("reload_failed") == 0
    assert "looking again at the next check" in caplog.text
    # Then the metadata: the pair is whole, and good.
    world.replace("v2")
    world.now += 2.0
    new = reloader.poll()
    assert new is not None and new.version == "v2"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_pair_that_stays_mismatched_is_refused_at_the_second_look(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    stats = Stats()
    reloader = _reloader(world, stats)
    world.replace(ModelPairMismatchError(f"{PATH} does not match its metadata"))
    world.now += 2.0
    assert reloader.poll() is None
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            world.now += 2.0
            assert reloader.poll() is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "does not match its metadata" in warnings[0].getMessage()
    assert stats.get("reload_failed") == 1
    assert len(world.loads) == 2


def test_a_load_during_which_the_files_change_is_dropped_and_the_new_pair_loaded(
    world: World,
) -> None:
    stats = Stats()
    reloader = _reloader(world, stats, spawn=world.pending.append)
    world.replace(ModelFileError("cannot load model file: half of a new pair"))
    world.now += 2.0
    assert reloader.poll() is None
    world.replace("v2")  # the second rename lands while the first state loads
    world.pending.pop()()
    assert reloader.poll() is None
    assert stats.get("reload_failed") == 0
    world.now += 2.0
    assert reloader.poll() is None  # the new pair's load starts
    world.pending.pop()()
    new = reloader.poll()
    assert new is not None and new.version == "v2"
    assert stats.get("reload_failed") == 0
