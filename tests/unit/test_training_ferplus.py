"""FER+ votes as soft targets: matched by file name, mixed into the label, errors named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.campaign import CampaignConfig, Restart
from training.data import DatasetError, Examples
from training.ferplus import label_targets, read_votes
from training.train import TrainConfig

HEADER = (
    "file,fer2013_label,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
)


def _votes(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "train.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def _examples(names: tuple[str, ...], labels: list[int]) -> Examples:
    images = np.zeros((len(labels), 48, 48, 1), np.uint8)
    return Examples(images, np.asarray(labels, np.int64), "train", names)


def test_votes_are_mixed_into_the_label_where_a_face_has_them(tmp_path: Path) -> None:
    csv = _votes(
        tmp_path,
        [
            # 8 anger, 2 neutral; contempt, unknown and "not a face" are left out.
            "angry/a.png,angry,2,0,0,0,8,0,0,3,1,1",
            # No vote for any of the seven emotions: the label alone.
            "sad/b.png,sad,0,0,0,0,0,0,0,5,5,0",
        ],
    )
    examples = _examples(("angry/a.png", "sad/b.png", "happy/c.png"), [0, 4, 3])
    targets = label_targets(examples, 0.5, csv)
    expected_a = np.zeros(7, np.float32)
    expected_a[0], expected_a[6] = 0.5 + 0.5 * 0.8, 0.5 * 0.2
    np.testing.assert_allclose(targets[0], expected_a, atol=1e-6)
    np.testing.assert_allclose(targets[1], np.eye(7)[4])  # no emotion votes
    np.testing.assert_allclose(targets[2], np.eye(7)[3])  # not in the file
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    # Weight 0 is the label alone and reads no file.
    np.testing.assert_allclose(
        label_targets(examples, 0.0, tmp_path / "none.csv"), np.eye(7)[[0, 4, 3]]
    )


def test_bad_votes_and_faces_without_names_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        read_votes(tmp_path / "missing.csv")
    with pytest.raises(DatasetError, match=r"train\.csv:3: not a FER\+ votes row"):
        read_votes(_votes(tmp_path, ["angry/a.png,angry,2,0,0,0,8,0,0,0,0,0", "x,y,z"]))
    csv = _votes(tmp_path, ["angry/a.png,angry,2,0,0,0,8,0,0,0,0,0"])
    from_csv = _examples((), [0])  # FER2013 as a CSV: no file names to match
    with pytest.raises(DatasetError, match="class-folder form"):
        label_targets(from_csv, 0.3, csv)
    with pytest.raises(DatasetError, match="no votes for any face"):
        label_targets(_examples(("happy/z.png",), [3]), 0.3, csv)


def test_each_schedule_keeps_its_own_ferplus_weight() -> None:
    config = CampaignConfig(
        TrainConfig(epochs=100),
        teacher="t",
        teacher_weight=0.6,
        init="",
        restarts=(Restart(60, 20, 0.005), Restart(80, 20, 0.002, ferplus_weight=0.3)),
        ferplus_weight=0.1,
    )
    assert [config.ferplus_weight_at(e) for e in (0, 59, 60, 79, 80, 99)] == [
        0.1,
        0.1,
        0.0,
        0.0,
        0.3,
        0.3,
    ]


def test_a_restart_may_change_the_teachers_weight_and_later_ones_keep_it() -> None:
    config = CampaignConfig(
        TrainConfig(epochs=120),
        teacher="t",
        teacher_weight=0.6,
        init="",
        restarts=(
            Restart(60, 20, 0.005),
            Restart(80, 20, 0.002, teacher_weight=0.3),
            Restart(100, 20, 0.002, arch="vgg-student-wide"),
        ),
    )
    assert [config.teacher_weight_at(e) for e in (0, 79, 80, 99, 100, 119)] == [
        0.6,
        0.6,
        0.3,
        0.3,
        0.3,
        0.3,
    ]
