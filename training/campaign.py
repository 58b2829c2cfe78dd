"""A training campaign: one framing-tolerant network, trained over as many sessions as it takes.

``python -m training.campaign --run-dir runs/campaign --budget-minutes 120``

starts the run, or continues it from its last epoch, and stops at an epoch boundary before the
budget is spent, saying how many epochs and minutes are left. Every epoch draws new framing and
camera jitter (``training.augment``, as wide as the detector's box errs) on the training faces,
and trains on a mix of the labels and the teacher's probabilities; ``--ferplus-weight`` moves
that share of the label's part to the ten FER+ raters' votes (``training.ferplus``), for a new
run or from a warm restart on. The teacher (the served model) answers once per training face,
on the face as FER2013 framed it, and its answers are kept in the run folder, so an epoch costs
the student's pass alone.

At every stop the run's resumable state (config, history, last and best checkpoints) is also
copied to ``--carry`` (``models/campaign/`` in the repository, committed), so a machine without
the run folder continues from there instead of starting again. ``training.train --export-only
--run-dir RUN`` writes the served model file from the best checkpoint, as for any run.

SIGINT or SIGTERM stops the run at once (in training, at the end of the batch under way, never
inside TensorFlow): the epoch under way is abandoned, the run folder keeps
every whole epoch (an epoch's files are written before the signal is taken), its state is
carried, and the command exits with 128 + the signal's number.

A finished run goes on with a warm restart: ``--extend-to 80 --restart-lr 0.005`` adds epochs up
to 80 on a new cosine schedule from that learning rate, starting from the last epoch's weights
(the first schedule ended at a learning rate of zero, so more epochs on it would learn nothing).
The restart is kept in the run's ``campaign.json``; giving the same options again changes nothing.
``--restart-arch vgg-student-lean`` has the weights go on in another network of the same
weighted layers (here: with less regularisation around them) from the restart on;
``--restart-sam-rho 0.05`` has it take sharpness-aware steps (``training.sharpness``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.model_file import write_atomic
from shared.settings import CommandSettings, load_settings
from training.augment import Jitter, jitter_faces
from training.data import Examples, class_weights, load_split
from training.ferplus import label_targets
from training.stop_signals import StopOnSignal, Stopped
from training.train import (
    DEFAULT_DATA,
    INPUT_HW,
    TimeKeeper,
    TrainConfig,
    compile_model,
    limited,
    one_hot,
    read_config,
    split_train,
    write_config,
)
from training.widen import carry_weights

log = logging.getLogger("training.campaign")

#: The detector's box against FER2013's square on held-out clips: side x0.71-1.17 (10th-90th
#: percentile), so the jitter spans a little more, with the centre and roll errors beside it.
CAMPAIGN_JITTER = Jitter(scale=(0.7, 1.35), shift=0.12, roll=15.0)
#: What ``--carry`` holds: enough to resume, and the teacher's answers (0.7 MB that take the
#: teacher 16-21 minutes on two CPU cores to give again).
CARRIED = (
    "config.json",
    "campaign.json",
    "history.csv",
    "time.json",
    "last.keras",
    "best.keras",
    "teacher.npy",
)
DEFAULT_CARRY = Path("models/campaign")


@dataclass(frozen=True)
class Restart:
    """A new cosine schedule from ``learning_rate``, begun after epoch ``epoch`` of the run,
    with ``ferplus_weight`` of the label's share of the target on the FER+ votes from then on;
    ``arch``, when given, is the network the weights go on in (the same weighted layers, as
    wide or wider, others around them: ``training.widen.carry_weights``); ``teacher_weight``,
    when given, the teacher's share of the target from then on (else the run's); ``start``,
    when given, a served model file whose first network the weights come from instead of the
    run's last epoch (back to an earlier, shipped network, in ``arch`` or the run's);
    ``sam_rho``, when given, the radius of sharpness-aware steps from then on (0: plain
    steps; ``training.sharpness``)."""

    epoch: int
    epochs: int
    learning_rate: float
    ferplus_weight: float = 0.0
    arch: str = ""
    teacher_weight: float | None = None
    start: str = ""
    sam_rho: float | None = None


@dataclass(frozen=True)
class CampaignConfig:
    """The run; ``train`` is what ``training.train --export-only`` reads back."""

    train: TrainConfig
    teacher: str
    #: Weight of the teacher's probabilities in the target (the rest: the one-hot label).
    teacher_weight: float
    #: The served model whose first network the student starts from ("" for random weights).
    init: str
    restarts: tuple[Restart, ...] = ()
    #: Share of the label's part of the target given to the FER+ votes (``training.ferplus``)
    #: in the first schedule; each restart says its own.
    ferplus_weight: float = 0.0

    def ferplus_weight_at(self, epoch: int) -> float:
        """The FER+ weight of the schedule that ``epoch`` (0-based) belongs to."""
        begun = [r for r in self.restarts if r.epoch <= epoch]
        return begun[-1].ferplus_weight if begun else self.ferplus_weight

    def teacher_weight_at(self, epoch: int) -> float:
        """The teacher's weight in the target at ``epoch`` (0-based): that of the last restart
        begun by then that gave one, else the run's."""
        return _last_given(
            [r.teacher_weight for r in self.restarts if r.epoch <= epoch], self.teacher_weight
        )

    def sam_rho_at(self, epoch: int) -> float:
        """The sharpness-aware radius at ``epoch`` (0-based), as ``teacher_weight_at`` finds
        the teacher's weight; a run's first schedule takes plain steps."""
        return _last_given([r.sam_rho for r in self.restarts if r.epoch <= epoch], 0.0)


def _last_given(values: Sequence[float | None], default: float) -> float:
    """The last of ``values`` that is given (not None), else ``default``."""
    return next((value for value in reversed(values) if value is not None), default)


def teacher_answers(
    run_dir: Path, teacher_path: Path, images: npt.NDArray[np.uint8]
) -> npt.NDArray[np.float32]:
    """The teacher's probabilities for every training face (each averaged with its mirror
    image's, as the worker answers for a face it sees once), computed once and kept."""
    path = run_dir / "teacher.npy"
    if path.is_file():
        answers = np.load(path)
        if len(answers) == len(images):
            return np.asarray(answers, np.float32)
        log.warning("%s is for another set of faces; asking the teacher again", path)
    from shared.keras_layers import load_model
    from shared.model_file import read_metadata
    from training.evaluate import predict_probabilities

    started = time.monotonic()
    mirror = read_metadata(teacher_path).mirror == "worker"
    answers = predict_probabilities(load_model(teacher_path), images, mirror=mirror)
    np.save(path, answers)
    log.info(
        "teacher %s answered on %d faces in %.0f s",
        teacher_path,
        len(images),
        time.monotonic() - started,
    )
    return answers


def warm_start(student: Any, served_path: Path) -> None:
    """Copy the weights of the served model's first network into ``student`` (same layout)."""
    import keras

    from shared.keras_layers import load_model

    served = load_model(served_path)
    members = [layer for layer in served.layers if isinstance(layer, keras.Model)]
    if not members:
        raise SystemExit(f"--init {served_path}: no network inside the served model")
    carry_weights(members[0], student, f"--init {served_path}: its first network")
    log.info("student starts from %s's network %s", served_path, members[0].name)


class Budget:
    """Wall-clock budget of one invocation, and whether one more epoch fits in it."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60.0
        self.started = time.monotonic()

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def fits(self, epoch_seconds: float) -> bool:
        return self.left() > 1.1 * epoch_seconds


def fit_campaign(
    config: CampaignConfig,
    run_dir: Path,
    train: Examples,
    val: Examples,
    *,
    teacher: npt.NDArray[np.float32],
    budget: Budget,
    stop: StopOnSignal,
) -> list[dict[str, float]]:
    """Train (or resume) until the last epoch or the budget; ``last.keras`` every epoch,
    ``best.keras`` by val accuracy, each written whole (a temporary file renamed over it), and
    a signal (``stop``) waits for an epoch's files. Returns the run's whole history."""
    import keras

    from training.models import build_model
    from training.sharpness import sharpness_aware

    train_config = config.train
    clock = TimeKeeper(run_dir / "time.json")
    history_path = run_dir / "history.csv"
    done = read_history(history_path)
    last_path, best_path = run_dir / "last.keras", run_dir / "best.keras"
    steps = int(np.ceil(len(train) / train_config.batch_size))
    restart = next((r for r in config.restarts if r.epoch == len(done)), None) if done else None
    from_served = restart is not None and bool(restart.start)
    if done and not last_path.is_file() and not from_served:
        # Starting over would train from scratch again under a history that says otherwise.
        raise SystemExit(
            f"{run_dir}: {len(done)} epochs in history.csv but no {last_path.name} to go on "
            "from; put the run's last checkpoint back (a carried copy is in --carry's folder)"
        )
    if done:
        log.info("resuming %s after epoch %d", run_dir, len(done))
        if restart is not None and restart.start:
            student = build_model(train_config.arch, INPUT_HW)
            warm_start(student, Path(restart.start))
            log.info("the weights come from %s", restart.start)
        else:
            student = keras.saving.load_model(
                last_path, custom_objects=_custom_objects(), compile=True
            )
            if restart is not None and restart.arch:
                # The network changes here; a run resumed later has the new one in last.keras.
                switched = build_model(restart.arch, INPUT_HW)
                carry_weights(
                    student,
                    switched,
                    f"{last_path} (epoch {len(done)})",
                    seed=train_config.seed + len(done),
                )
                student = switched
                log.info("the weights go on in %s", restart.arch)
        if restart is not None:
            # Its schedule begins here; a run resumed later within it has it in last.keras.
            compile_model(student, restart_config(train_config, restart), steps)
            log.info(
                "warm restart after epoch %d: %d epochs on a cosine schedule from %g",
                restart.epoch,
                restart.epochs,
                restart.learning_rate,
            )
    else:
        done = []
        student = build_model(train_config.arch, INPUT_HW)
        if config.init:
            warm_start(student, Path(config.init))
        compile_model(student, train_config, steps)
    best = max((row["val_accuracy"] for row in done), default=-1.0)
    weights = class_weights(train.class_counts(), train_config.class_weight_power)
    sample_weight = np.asarray([weights[int(label)] for label in train.labels], np.float32)
    label_parts: dict[float, npt.NDArray[np.float32]] = {}
    votes = Path(train_config.data) / "ferplus" / "train.csv"
    val_targets = one_hot(val.labels)
    trainers: dict[float, Any] = {0.0: student}
    for epoch in range(len(done), train_config.epochs):
        # Guessed from the run's last epochs; a run with none yet trains one to find out.
        expected = max((row["seconds"] for row in done[-3:]), default=0.0)
        if expected and not budget.fits(expected):
            log.info("budget: %.0f s left, an epoch takes about %.0f s", budget.left(), expected)
            break
        started = time.monotonic()
        weight = config.ferplus_weight_at(epoch)
        if weight not in label_parts:
            label_parts[weight] = label_targets(train, weight, votes)
        taught = config.teacher_weight_at(epoch)
        targets = taught * teacher + (1 - taught) * label_parts[weight]
        faces = jitter_faces(train.images, epoch_rng(train_config.seed, epoch), CAMPAIGN_JITTER)
        jitter_s = time.monotonic() - started
        order = np.random.default_rng([train_config.seed, epoch]).permutation(len(faces))
        rho = config.sam_rho_at(epoch)
        if rho not in trainers:
            trainers[rho] = sharpness_aware(student, rho)
            log.info("sharpness-aware steps of radius %g from epoch %d", rho, epoch + 1)
        with stop.held():  # a signal stops the epoch at a batch's end, not inside TensorFlow
            result = trainers[rho].fit(
                faces[order],
                targets[order],
                sample_weight=sample_weight[order],
                batch_size=train_config.batch_size,
                initial_epoch=epoch,
                epochs=epoch + 1,
                shuffle=False,
                validation_data=(val.images, val_targets),
                verbose=0,
                callbacks=[_stop_at_batch_ends(stop)],
            )
        row = {key: float(values[-1]) for key, values in result.history.items()}
        row["epoch"] = epoch
        row["seconds"] = round(time.monotonic() - started, 1)
        row["jitter_seconds"] = round(jitter_s, 1)
        with stop.writing():
            write_atomic(last_path, student.save, suffix=".keras")
            if row["val_accuracy"] > best:
                best = row["val_accuracy"]
                # The same bytes as last.keras: no second serialisation, and git keeps one blob.
                write_atomic(best_path, partial(shutil.copyfile, last_path), suffix=".keras")
            append_history(history_path, row)
            done.append(row)
            clock.save()
        log.info(
            "epoch %d/%d: loss %.4f, accuracy %.4f, val_accuracy %.4f (best %.4f), %.0f s",
            epoch + 1,
            train_config.epochs,
            row["loss"],
            row["accuracy"],
            row["val_accuracy"],
            best,
            row["seconds"],
        )
    return done


def _stop_at_batch_ends(stop: StopOnSignal) -> Any:
    """A Keras callback that stops ``fit`` at the end of a batch when a signal came."""
    import keras

    class StopAtBatchEnds(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            stop.check()

        def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            stop.check()

    return StopAtBatchEnds()


def restart_config(train_config: TrainConfig, restart: Restart) -> TrainConfig:
    """The run's config with the restart's epochs and peak learning rate, for its schedule."""
    return train_config.model_copy(
        update={"epochs": restart.epochs, "learning_rate": restart.learning_rate}
    )


def extend(
    run_dir: Path,
    config: CampaignConfig,
    epochs: int,
    learning_rate: float,
    *,
    ferplus_weight: float = 0.0,
    arch: str = "",
    teacher_weight: float | None = None,
    start: str = "",
    sam_rho: float | None = None,
) -> CampaignConfig:
    """``config`` with the run extended to ``epochs`` epochs by a warm restart (in ``arch``,
    with ``teacher_weight``, from ``start``'s network, with sharpness-aware steps of radius
    ``sam_rho``, when given), written to the run folder; unchanged when the run already has
    that many."""
    done = len(read_history(run_dir / "history.csv"))
    if epochs <= config.train.epochs:
        return config
    if done < config.train.epochs:
        raise SystemExit(
            f"{run_dir}: epoch {done} of {config.train.epochs}; finish the run before extending it"
        )
    if start and not Path(start).is_file():
        raise SystemExit(f"--restart-from {start}: no such model file")
    restart = Restart(
        epoch=config.train.epochs,
        epochs=epochs - config.train.epochs,
        learning_rate=learning_rate,
        ferplus_weight=ferplus_weight,
        arch=arch,
        teacher_weight=teacher_weight,
        start=start,
        sam_rho=sam_rho,
    )
    update: dict[str, Any] = {"epochs": epochs, "patience": epochs}
    if arch:
        from training.models import ARCHITECTURES

        if arch not in ARCHITECTURES:
            raise SystemExit(f"--restart-arch {arch}: choose one of {sorted(ARCHITECTURES)}")
        update["arch"] = arch
    extended = CampaignConfig(
        config.train.model_copy(update=update),
        config.teacher,
        config.teacher_weight,
        config.init,
        (*config.restarts, restart),
        config.ferplus_weight,
    )
    write_config(run_dir, extended.train)
    write_extra(run_dir, extended)
    log.info("%s extended to %d epochs: %s", run_dir, epochs, restart)
    return extended


def write_extra(run_dir: Path, config: CampaignConfig) -> None:
    extra = {
        "teacher": config.teacher,
        "teacher_weight": config.teacher_weight,
        "init": config.init,
        "restarts": [asdict(restart) for restart in config.restarts],
        "ferplus_weight": config.ferplus_weight,
    }
    (run_dir / "campaign.json").write_text(json.dumps(extra, indent=2) + "\n")


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch's jitter: the same faces whether resumed or not."""
    return np.random.default_rng([seed, epoch, 1])


def summary(history: list[dict[str, float]], epochs: int, run_dir: Path) -> str:
    """What a stop says: where the run is, its best, and what is left."""
    if not history:
        return f"{run_dir}: no epoch yet of {epochs}"
    best = max(history, key=lambda row: row["val_accuracy"])
    left = epochs - len(history)
    recent = [row["seconds"] for row in history[-5:]]
    per_epoch = float(np.median(recent))
    text = (
        f"{run_dir}: epoch {len(history)} of {epochs}, best PublicTest "
        f"{best['val_accuracy']:.4f} at epoch {int(best['epoch']) + 1}; "
    )
    if left <= 0:
        return text + "finished"
    return text + (
        f"{left} epochs left, about {left * per_epoch / 60:.0f} min at {per_epoch:.0f} s an epoch"
    )


def _custom_objects() -> dict[str, Any]:
    from shared.keras_layers import CUSTOM_OBJECTS

    return dict(CUSTOM_OBJECTS)


def read_history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def append_history(path: Path, row: dict[str, float]) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def copy_state(source: Path, destination: Path) -> None:
    """Copy the carried files of a run folder, each through a temporary name and a rename."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in CARRIED:
        if (source / name).is_file():
            write_atomic(destination / name, partial(shutil.copyfile, source / name))


def prepare(run_dir: Path, carry: Path | None, fresh: CampaignConfig) -> CampaignConfig:
    """The run's config: the run folder's, else the carried state's (copied in), else ``fresh``
    written to a new run folder."""
    config_path = run_dir / "config.json"
    if not config_path.is_file() and carry is not None and (carry / "config.json").is_file():
        log.info("no run in %s: continuing the carried run %s", run_dir, carry)
        copy_state(carry, run_dir)
    if config_path.is_file():
        extra = json.loads((run_dir / "campaign.json").read_text())
        return CampaignConfig(
            read_config(run_dir),
            extra["teacher"],
            extra["teacher_weight"],
            extra["init"],
            tuple(Restart(**restart) for restart in extra.get("restarts", [])),
            extra.get("ferplus_weight", 0.0),
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, fresh.train)
    write_extra(run_dir, fresh)
    return fresh


class CampaignSettings(CommandSettings):
    """Start or continue a training campaign within a time budget. Every option is also read
    from EMOJIFY_CAMPAIGN_<OPTION>; the options of a new run are ignored when continuing one."""

    model_config = SettingsConfigDict(
        env_prefix="EMOJIFY_CAMPAIGN_", cli_prog_name="python -m training.campaign"
    )

    run_dir: Path = Field(default=Path("runs/campaign"), description="The run's folder.")
    carry: Path | None = Field(
        default=DEFAULT_CARRY,
        description="Where every stop copies the run's resumable state, and where a missing "
        "run folder is continued from ('' for neither).",
    )
    budget_minutes: float = Field(
        default=float("inf"),
        ge=0,
        description="Stop at an epoch boundary before this much wall-clock time has passed.",
    )
    data: Path = Field(default=DEFAULT_DATA, description="A new run's class-folder root.")
    teacher: Path = Field(
        default=Path("models/emotion_model.keras"), description="A new run's teacher."
    )
    init: str = Field(
        default="models/emotion_model.keras",
        description="Served model whose first network a new run's student starts from ('' for "
        "random weights).",
    )
    arch: str = Field(default="vgg-student", description="A new run's network.")
    epochs: int = Field(default=60, ge=1)
    batch_size: int = Field(default=128, ge=1)
    learning_rate: float = Field(default=0.02, gt=0)
    teacher_weight: float = Field(
        default=0.6, ge=0, le=1, description="Weight of the teacher's answers in the target."
    )
    seed: int = 2026
    limit: int = Field(default=0, ge=0, description="Faces per split (0: all; smoke tests).")
    extend_to: int = Field(
        default=0,
        ge=0,
        description="Extend a finished run to this many epochs by a warm restart (0: no).",
    )
    restart_lr: float = Field(
        default=0.005, gt=0, description="The warm restart's peak learning rate."
    )
    ferplus_weight: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="A new run's or a warm restart's share of the label's part of the target "
        "given to the ten FER+ raters' votes (<data>/ferplus/train.csv; 0: the FER2013 label "
        "alone).",
    )
    restart_arch: str = Field(
        default="",
        description="The network a warm restart goes on in, with the same weights (one of "
        "training.models.ARCHITECTURES whose weighted layers match the run's; '': the run's).",
    )
    restart_from: str = Field(
        default="",
        description="A served model file whose first network a warm restart takes its weights "
        "from, instead of the run's last epoch ('': the last epoch's).",
    )
    restart_teacher_weight: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The teacher's weight in the target from a warm restart on (default: as "
        "before it).",
    )
    restart_sam_rho: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The radius of sharpness-aware steps (training.sharpness: two passes a "
        "step) from a warm restart on (0: plain steps; default: as before it).",
    )

    @field_validator("carry", mode="before")
    @classmethod
    def _no_carry(cls, value: object) -> object:
        return None if value in ("", ".") else value

    def new_run(self) -> CampaignConfig:
        """The config of a run started with these settings."""
        return CampaignConfig(
            TrainConfig(
                data=str(self.data),
                arch=self.arch,
                epochs=self.epochs,
                batch_size=self.batch_size,
                learning_rate=self.learning_rate,
                weight_decay=5e-4,
                label_smoothing=0.0,
                class_weight_power=0.5,
                holdout=0.1,
                patience=self.epochs,
                seed=self.seed,
                limit=self.limit,
            ),
            teacher=str(self.teacher),
            teacher_weight=self.teacher_weight,
            init=self.init,
            ferplus_weight=self.ferplus_weight,
        )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = load_settings(CampaignSettings, argv)
    budget = Budget(settings.budget_minutes)
    carry, run_dir = settings.carry, settings.run_dir
    config = prepare(run_dir, carry, settings.new_run())
    if settings.extend_to:
        config = extend(
            run_dir,
            config,
            settings.extend_to,
            settings.restart_lr,
            ferplus_weight=settings.ferplus_weight,
            arch=settings.restart_arch,
            teacher_weight=settings.restart_teacher_weight,
            start=settings.restart_from,
            sam_rho=settings.restart_sam_rho,
        )
    import keras

    keras.utils.set_random_seed(config.train.seed)
    data = Path(config.train.data)
    train, _ = split_train(load_split(data, "train"), config.train)
    val = limited(load_split(data, "test"), config.train.limit, config.train.seed)
    log.info(
        "campaign %s (%s, teacher %s at %g now): train %d, val %d",
        run_dir,
        config.train.arch,
        config.teacher,
        config.teacher_weight_at(len(read_history(run_dir / "history.csv"))),
        len(train),
        len(val),
    )
    with StopOnSignal() as stop:
        try:
            teacher = teacher_answers(run_dir, Path(config.teacher), train.images)
            history = fit_campaign(
                config, run_dir, train, val, teacher=teacher, budget=budget, stop=stop
            )
        except Stopped as stopped:
            history = read_history(run_dir / "history.csv")
            log.warning(
                "%s: the run keeps its %d whole epochs (an epoch under way is abandoned)",
                stopped,
                len(history),
            )
        if carry is not None and carry.resolve() != run_dir.resolve():
            # A signal that comes while the state is carried waits for all of it.
            with suppress(Stopped), stop.writing():
                copy_state(run_dir, carry)
                log.info("carried the run's state to %s", carry)
    print(summary(history, config.train.epochs, run_dir), flush=True)
    return 0 if stop.signum is None else 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
