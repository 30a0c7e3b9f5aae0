"""Every option of ``fervid train``, defined once: the training recipe as frozen dataclasses.

:class:`TrainConfig` (with its nested :class:`AugmentConfig`) is what :func:`fervid.train.trainer.train`
takes, and ``fervid train``'s flags are generated from its fields (:mod:`fervid.cli_options`), as
``annotate``'s are from :mod:`fervid.options`: a field with :func:`~fervid.options.option` metadata is a
flag with that help, range and spelling; a field without it (``label_smoothing``, ``ema_decay``, the
augmentation's geometry) is set from Python only. So the CLI and the API cannot run different recipes.

The defaults are the recipe the shipped models were trained with where a choice is the recipe's own
rather than a stage's: every video condition with probability 0.15 per face (``degrade_p``; each shipped
file's ``recipe`` records 0.15, and ``fervid train`` has defaulted to it since). What changed from stage
to stage (epochs, learning rate, seed, head turns, pose balance, teachers) is given on the command line;
the shipped files record their full commands (``docs/model-history.md``).

No torch here, so ``fervid --help`` stays fast; choices that name torch modules are checked on construction.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from fervid.checks import check_range
from fervid.options import flag, option, spec_of

YAW_MODELS: tuple[str, ...] = ("plane", "cylinder")
OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd")


def _check_ranges(config: Any) -> None:
    """Every option's ``min``/``max`` (the CLI's range) holds for the API too."""
    for f in dataclasses.fields(config):
        spec = f.metadata.get("option")
        if spec is not None and (spec.min is not None or spec.max is not None):
            low = float("-inf") if spec.min is None else spec.min
            high = float("inf") if spec.max is None else spec.max
            check_range(f.name, getattr(config, f.name), low, high)


@dataclass(frozen=True)
class AugmentConfig:
    """Batched augmentation (:func:`fervid.train.augment.augment`): geometry, colour, video conditions, head turns."""

    max_rotation_deg: float = 15.0
    scale_range: tuple[float, float] = (0.85, 1.15)
    max_shift: float = 0.1  # fraction of the image size
    flip_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    erase_p: float = 0.5
    erase_area: tuple[float, float] = (0.02, 0.2)
    #: Chance of each video condition of fervid.train.degrade, per image (the shipped recipe's 0.15).
    degrade_p: float = option(
        0.15, "Chance of each video condition (low light, blur, ...) per image.", name="--degrade", min=0.0, max=1.0
    )
    yaw_p: float = option(
        0.0, "Chance of a synthetic head turn (up to --max-yaw) per image.", name="--yaw", min=0.0, max=1.0
    )
    #: Applied by the trainer after :func:`augment`, to the student's view only (teachers see the face without it).
    hand_p: float = option(
        0.0,
        "Chance of a synthetic hand at the chin per image (the label is kept; --teacher models see the face without "
        "it), so a hand resting on the face is no cue against a smile.",
        name="--hands",
        min=0.0,
        max=1.0,
    )
    max_yaw_deg: float = option(
        35.0, "Largest synthetic head turn, in degrees either way.", name="--max-yaw", min=0.0, max=90.0
    )
    #: ``plane`` (a flat face in perspective, :func:`~fervid.train.augment.yaw`) or ``cylinder``
    #: (the face wrapped round a vertical cylinder, :func:`~fervid.train.augment.cylinder_yaw`).
    yaw_model: str = option(
        "plane",
        "How a face is turned: plane (a flat face in perspective) or cylinder (the face round a cylinder: its far "
        "side goes out of view, as on a real three-quarter or profile view).",
    )
    #: Distance of the (flat) face from the camera's centre of projection, in half crop widths.
    yaw_distance: float = 2.5
    #: Half-width of the face on its cylinder, in half crop widths (FER's faces span about 0.8 of the crop).
    yaw_radius: float = 0.8

    def __post_init__(self) -> None:
        if self.yaw_model not in YAW_MODELS:
            raise ValueError(f"unknown head-turn model {self.yaw_model!r}; choose one of: {', '.join(YAW_MODELS)}")
        _check_ranges(self)


@dataclass(frozen=True)
class TrainConfig:
    """A training run's recipe. Frozen: what a run really trained (a warm restart's architecture) is a new
    config (:func:`fervid.train.trainer.train` records it), never an edit of the one asked for."""

    epochs: int = option(40, "Training epochs (one-cycle schedule).", min=1)
    batch_size: int = option(128, "Batch size.", min=8)
    optimizer: str = option("adamw", "adamw or sgd.")
    lr: float = option(3e-3, "Peak learning rate of the one-cycle schedule.", min=0.0)
    weight_decay: float = option(0.05, "Weight decay.", min=0.0)
    label_smoothing: float = 0.1
    class_weight_power: float = option(0.5, "Loss weight = class frequency ** -power.")
    ema_decay: float = 0.999
    warmup_frac: float = 0.15
    seed: int = option(0, "Random seed.")
    #: The network (fervid.models.expression_weights.ARCHITECTURES); face-resnet starts pretrained.
    arch: str = option(
        "resnet",
        "Network: resnet (small and fast, the shipped default) or face-resnet (dlib's face-recognition ResNet, "
        "started from its weights; about twice the time per face on a CPU).",
    )
    widths: tuple[int, ...] = option(
        (32, 64, 128, 256), "Channel widths of a resnet: stem, then one per stage (face-resnet: dlib's)."
    )
    blocks: tuple[int, ...] = option((1, 1, 1), "Residual blocks per stage.")
    dropout: float = 0.3
    photometric: str = option(
        "equalize", "Per-crop normalisation stored with the model: equalize, standardize or none."
    )
    alignment: str = option(
        "box",
        "How annotate frames faces for the model, stored with it: box (the detector's box, as FER's crops are) or "
        "landmarks (five-point alignment, for data aligned that way).",
    )
    #: Weights to start from (architecture and mean/std from the first).
    init: tuple[str, ...] = option(
        (),
        "Warm restart: start from these weights (their architecture replaces --widths/--blocks). Repeat it with "
        "each model of one joint run to seed every head.",
        metavar="PATH",
    )
    pose_balance: bool = option(
        False,
        "Weight each head-pose bin's faces to the overall class mix, so profile is no cue for angry (head turns "
        "measured once with the detector, cached beside the first --out).",
        switch="--pose-balance",
    )
    mixup: float = option(
        0.0,
        "Mixup: train on blends of two faces (blend weight ~ Beta(ALPHA, ALPHA) per batch) against the same blend "
        "of their losses. 0: off; 0.1-0.4 is usual.",
        min=0.0,
        metavar="ALPHA",
    )
    teachers: tuple[str, ...] = option(
        (),
        "Distillation: a trained model whose calibrated probabilities on each augmented face the head with its "
        "classes learns from too. Repeat it to distil the average of several (an ensemble).",
        name="--teacher",
        metavar="PATH",
    )
    distill: float = option(
        0.5,
        "Share of the --teacher probabilities in each training target (the rest is the label).",
        min=0.0,
        max=1.0,
        metavar="WEIGHT",
    )
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        """Choices stored in the weight file are checked here, before any data is read."""
        from fervid.models.expression_weights import check_input_choices

        check_input_choices(self.photometric, self.alignment, self.arch)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if not self.mixup >= 0:
            raise ValueError(f"mixup alpha must be >= 0 (0: off), got {self.mixup}")
        if not 0 <= self.distill <= 1:
            raise ValueError(f"distillation weight must be within 0-1, got {self.distill}")
        _check_ranges(self)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as JSON holds it (tuples as lists): what weight files and checkpoints record."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The config :meth:`to_dict` recorded."""

        def tuples(d: dict[str, Any]) -> dict[str, Any]:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

        values = tuples(values)
        return cls(**{**values, "augment": AugmentConfig(**tuples(values.get("augment", {})))})


def changed_options(then: dict[str, Any], now: TrainConfig) -> list[str]:
    """How a recorded config (:meth:`TrainConfig.to_dict`) differs from ``now``, in the CLI's words where an
    option has a flag (``--epochs 12 then, 24 now``) and by field name otherwise."""
    current = now.to_dict()
    changes = []
    for cls, was, wanted in (
        (TrainConfig, then, current),
        (AugmentConfig, then.get("augment", {}), current["augment"]),
    ):
        for f in dataclasses.fields(cls):
            if f.name == "augment" or was.get(f.name) == wanted[f.name]:
                continue
            name = flag(f) if "option" in f.metadata else f.name
            if "option" in f.metadata and spec_of(f).switch:
                changes.append(f"{name} {'given' if was.get(f.name) else 'not given'} then, "
                               f"{'given' if wanted[f.name] else 'not'} now")  # fmt: skip
            else:
                changes.append(f"{name} {_shown(was.get(f.name))} then, {_shown(wanted[f.name])} now")
    return changes


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)
