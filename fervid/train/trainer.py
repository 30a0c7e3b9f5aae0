"""Training loop for expression models (``fervid train``).

Recipe (chosen for accuracy in a short schedule, and to run on a CPU too):
- whole split held on the device as uint8; augmentation batched on the device, including
  the video conditions the robustness benchmark measures (:mod:`fervid.train.degrade`);
- the model input is made by :func:`fervid.models.expression_input.prepare`, the function
  annotate uses, with the photometric normalisation recorded in the weight file;
- one backbone, one head per label set: a single dataset trains one head, FER2013 + FER+
  train a FER2013 head and a FER+ head on the same faces (:mod:`fervid.train.joint`), and
  each head is saved as a model of its own;
- soft-target cross-entropy (FER+ vote distributions; label smoothing for hard labels);
- class imbalance: loss weights proportional to inverse class frequency to a power;
- optional mixup (``mixup``: blends of two faces against the blend of their losses, :mod:`fervid.train.mixup`);
- optional distillation (``teachers``): targets moved towards teacher models' calibrated
  probabilities on the same augmented faces (:mod:`fervid.train.distill`);
- AdamW with a one-cycle learning-rate schedule (SGD is available; see ``make_optimizer``);
- an exponential moving average (EMA) of the weights, which is what gets evaluated
  and saved: it is smoother and more accurate than the raw weights late in training;
- bf16 autocast on CUDA, and on CPUs with native bf16 (AVX512-BF16/AMX);
- model selection on the validation split only, per head; a softmax temperature fitted on
  the same split is saved with each model (calibrated probabilities); best and last
  checkpoints each epoch, so a run can resume;
- an optional warm restart (``init``): start from trained models' weights and run another
  one-cycle schedule, which lets a long schedule be split over several shorter runs. The first
  file gives the backbone; each file's classifier seeds the head with its classes, so a joint
  network restarts with both of its heads (give the models of one joint run, as shipped).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fervid.devices import cpu_name
from fervid.io.atomic import atomic_path
from fervid.models.expression_input import photometric, prepare
from fervid.models.expression_interface import ExpressionNetwork, body_shapes
from fervid.models.expression_pretrained import pretrained_face_resnet
from fervid.models.expression_weights import (
    ExpressionConfig,
    load_expression_model,
    save_weights,
)
from fervid.models.face_embedding import DLIB_UNITS, DLIB_WIDTHS
from fervid.train.augment import augment
from fervid.train.calibrate import fit_temperature
from fervid.train.config import OPTIMIZERS, TrainConfig, changed_options
from fervid.train.data import ExpressionData
from fervid.train.distill import Teachers, distilled_targets
from fervid.train.joint import LabelSet, TrainingSet
from fervid.train.mixup import mix_batch
from fervid.train.occluders import hand_occluders
from fervid.train.pose import BIN_NAMES, pose_bins, pose_class_weights
from fervid.train.predict import predict_logits


@dataclass
class Head:
    """One output of the network: its label set, validation split and weight file."""

    labels: LabelSet
    val: ExpressionData
    out: Path


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    val_accuracy: dict[str, float]
    lr: float
    seconds: float


class MultiHead(nn.Module):
    """A network (any :class:`ExpressionNetwork`) as backbone, one linear head per label set (its own head unused)."""

    def __init__(self, body: ExpressionNetwork, heads: dict[str, int]) -> None:
        super().__init__()
        self.body = body
        self.heads = nn.ModuleDict({name: nn.Linear(body.feature_dim, k) for name, k in heads.items()})

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.body.forward_head(self.body.features(x), pre_logits=True)
        return [head(features) for head in self.heads.values()]

    def single(self, name: str) -> nn.Module:
        """A plain network of the body's kind computing head ``name``: what annotate loads."""
        net, head = copy.deepcopy(self.body), self.heads[name]
        assert isinstance(net, nn.Module) and isinstance(head, nn.Linear)
        net.reset_classifier(copy.deepcopy(head))
        return net.eval()


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the hardware runs it natively, else None (full fp32).

    On a CPU, oneDNN reports bf16 "supported" on any AVX-512 machine, but without the
    AVX512-BF16 or AMX instructions it emulates it: measured on a Xeon with AVX-512 only,
    a training step took 2.5-3.0 s in bf16 against 0.9 s in fp32. So the CPU flags decide.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def class_weights(targets: np.ndarray, power: float) -> torch.Tensor:
    """Inverse-frequency weights to ``power``, normalised so the average sample weight is 1."""
    freq = targets.sum(axis=0) / max(len(targets), 1)
    w = np.where(freq > 0, np.maximum(freq, 1e-6) ** -power, 0.0)
    w = w / float((freq * w).sum())
    return torch.tensor(w, dtype=torch.float32)


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU: {cpu_name()}, {torch.get_num_threads()} threads"


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a target distribution, each sample weighted by its target's class weights.

    ``weights`` is (K,) for all rows alike, or (B, K) per row (pose-balanced weights differ by row).
    """
    logp = F.log_softmax(logits.float(), dim=1)
    per_sample = -(targets * logp).sum(dim=1)
    sample_w = (targets * weights).sum(dim=1)
    return (per_sample * sample_w).sum() / sample_w.sum().clamp_min(1e-6)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW by default: in our runs SGD (lr 0.05-0.1) stayed at the class prior for epochs on FER."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


def _build(
    cfg: TrainConfig, data: TrainingSet, heads: Sequence[Head]
) -> tuple[MultiHead, ExpressionConfig, TrainConfig]:
    """The network, the config its heads share, and the training config in effect: fresh, or from ``cfg.init``
    (a warm restart).

    A warm restart takes the first init model's architecture, backbone and mean/std (its
    features were learned on that scale) and copies each init model's classifier into the
    head with the same classes. Further init models lend only their classifier, so they must
    have the same architecture and should come from the same network (the shipped heads do: they
    are best epochs of successive warm restarts of one joint network, so their backbones differ by
    the epochs in between).
    The config in effect is ``cfg`` with the architecture actually built (the first init model's, or dlib's
    for ``face-resnet``), so the recorded recipe is true; ``cfg`` itself is not changed.
    """
    size = data.images.shape[-1]
    loads = [load_expression_model(path, verify=False) for path in cfg.init]
    inits: list[tuple[str, ExpressionNetwork, ExpressionConfig]] = []
    for path, loaded in zip(cfg.init, loads):
        if not isinstance(loaded.model, ExpressionNetwork):
            raise ValueError(f"{path}: a decision rule cannot start training; give its member .pt files")
        inits.append((path, loaded.model, loaded.config))
    if inits:
        _, body, init_cfg = inits[0]
        for path, net, c in inits:
            if c.input_size != size:
                raise ValueError(f"{path}: model input {c.input_size} px, data {size} px")
            if not any(h.labels.classes == c.classes for h in heads):
                raise ValueError(f"{path}: model classes {c.classes} match no training label set")
            if not _same_architecture(body, net):
                raise ValueError(f"{path}: its architecture differs from {cfg.init[0]}'s")
        if len({tuple(c.classes) for _, _, c in inits}) < len(inits):
            raise ValueError("two --init models have the same classes; give one per head")
        cfg = replace(cfg, arch=init_cfg.arch, widths=init_cfg.widths, blocks=init_cfg.blocks, dropout=init_cfg.dropout)
        # The hashes were taken when the weights were read, not when the result is saved.
        hashes = [loaded.info.sha256 for loaded in loads]
        shared = replace(init_cfg, photometric=cfg.photometric, alignment=cfg.alignment, info={"init_sha256": hashes})
    else:
        cfg, body, shared = _fresh(cfg, data, heads[0].labels.classes)
    model = MultiHead(body, {h.labels.name: len(h.labels.classes) for h in heads})
    for _, net, c in inits:
        for h in heads:
            if h.labels.classes == c.classes:
                model.heads[h.labels.name].load_state_dict(net.head.state_dict())
    return model, shared, cfg


def _fresh(
    cfg: TrainConfig, data: TrainingSet, classes: tuple[str, ...]
) -> tuple[TrainConfig, ExpressionNetwork, ExpressionConfig]:
    """The config in effect, a new network of ``cfg.arch`` and its config: a ``face-resnet`` starts from dlib's
    trunk (dlib's widths and blocks) at dlib's input scale (``pretrained_sha256`` recorded), a ``resnet`` from
    random weights at the data's own scale."""
    body: ExpressionNetwork | None = None
    info: dict = {}
    if cfg.arch == "face-resnet":
        trunk = pretrained_face_resnet(len(classes), cfg.dropout)
        cfg = replace(cfg, widths=tuple(DLIB_WIDTHS), blocks=tuple(DLIB_UNITS))
        body, mean, std, info = trunk.net, trunk.mean, trunk.std, {"pretrained_sha256": trunk.sha256}
    else:
        scaled = photometric(torch.from_numpy(data.images[:4096]).float().unsqueeze(1), cfg.photometric)
        mean, std = float(scaled.mean()), float(scaled.std())
    shared = ExpressionConfig(
        classes=classes, arch=cfg.arch, widths=tuple(cfg.widths), blocks=tuple(cfg.blocks), dropout=cfg.dropout,
        input_size=data.images.shape[-1], mean=mean, std=std, photometric=cfg.photometric, alignment=cfg.alignment,
        info=info,
    )  # fmt: skip
    return cfg, (shared.build() if body is None else body), shared


def _same_architecture(a: ExpressionNetwork, b: ExpressionNetwork) -> bool:
    """Whether two networks have the same tensors (names and shapes) everywhere but their classifier."""
    return type(a) is type(b) and body_shapes(a) == body_shapes(b)


@dataclass
class _Labels:
    """Each label set's soft targets, valid rows and per-row class weights (N, K), on the training device.

    ``distill`` is the teachers' share in a target where a batch comes with teacher probabilities.
    """

    targets: list[torch.Tensor]
    valid: list[torch.Tensor]
    weights: list[torch.Tensor]
    distill: float = 0.0

    @classmethod
    def on(cls, data: TrainingSet, cfg: TrainConfig, device: torch.device) -> _Labels:
        """Class weights per row: the same for every row, or times the row's pose-bin weights (``pose_balance``)."""
        labels = cls([], [], [], cfg.distill)
        bins = None
        if cfg.pose_balance:
            if data.head_turns is None:
                raise ValueError("pose balance needs the training faces' head turns (fervid.train.pose)")
            bins = pose_bins(data.head_turns)
        for ls in data.label_sets:
            t = torch.from_numpy(ls.targets).to(device)
            if ls.targets[ls.valid].max(axis=1).min() == 1.0 and cfg.label_smoothing:  # hard labels: smooth them
                t = t * (1 - cfg.label_smoothing) + cfg.label_smoothing / t.shape[1]
            labels.targets.append(t)
            labels.valid.append(torch.from_numpy(ls.valid).to(device))
            rows = class_weights(ls.targets[ls.valid], cfg.class_weight_power).numpy()[None].repeat(len(data), 0)
            if bins is not None:
                rows = rows * pose_class_weights(ls.targets[ls.valid], bins[ls.valid], len(BIN_NAMES))[bins]
            labels.weights.append(torch.from_numpy(rows).to(device))
        return labels

    def loss(
        self, outputs: list[torch.Tensor], idx: torch.Tensor, taught: dict[int, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Sum over heads of each head's loss on the batch rows it has labels for.

        ``taught``: teacher probabilities (B, K) of the batch by head, mixed into those heads' targets.
        """
        total = outputs[0].new_zeros(())
        for k, out in enumerate(outputs):
            rows = self.valid[k][idx]
            targets = distilled_targets(self.targets[k][idx], (taught or {}).get(k), self.distill)
            total = total + soft_cross_entropy(out[rows], targets[rows], self.weights[k][idx][rows])
        return total

    def mixed_loss(
        self, outputs: list[torch.Tensor], idx: torch.Tensor, lam: float, partner: torch.Tensor,
        taught: dict[int, torch.Tensor] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """The loss on a mixup batch: each row's own labels weigh ``lam``, its partner's ``1 - lam``.

        The teachers saw the blend itself, so their probabilities enter both terms alike.
        """
        return lam * self.loss(outputs, idx, taught) + (1 - lam) * self.loss(outputs, idx[partner], taught)


@dataclass
class _Session:
    """What a training run updates step by step, and what its checkpoint holds."""

    model: MultiHead
    ema: MultiHead
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator
    step: int = 0

    def update_ema(self, cfg: TrainConfig) -> None:
        decay = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))  # short warm-up for the average
        with torch.no_grad():
            for e, m in zip(self.ema.state_dict().values(), self.model.state_dict().values()):
                if e.dtype.is_floating_point:
                    e.lerp_(m, 1 - decay)
                else:
                    e.copy_(m)

    def save(self, path: Path, epoch: int, best: dict, history: list, cfg: TrainConfig) -> None:
        """The resumable state after ``epoch``, with the config in effect (a resume is checked against it)."""
        with atomic_path(path) as tmp:
            torch.save(
                {"model": self.model.state_dict(), "ema": self.ema.state_dict(), "opt": self.opt.state_dict(),
                 "sched": self.sched.state_dict(), "gen": self.gen.get_state(), "epoch": epoch,
                 "best": json.dumps(best), "history": json.dumps(history), "config": json.dumps(cfg.to_dict())},
                tmp,
            )  # fmt: skip

    def resume(self, ckpt: dict, device: torch.device) -> tuple[int, dict, list]:
        """Restore a ``.last.pt`` checkpoint's state; returns the next epoch, the best scores so far and the history."""
        self.model.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.opt.load_state_dict(ckpt["opt"])
        self.sched.load_state_dict(ckpt["sched"])
        state = ckpt["gen"]
        self.gen.set_state(state.to(self.gen.get_state().device) if device.type != "cuda" else state.cpu())
        best = {k: tuple(v) for k, v in json.loads(ckpt["best"]).items()}
        return ckpt["epoch"] + 1, best, json.loads(ckpt["history"])


def checkpoint_path(heads: Sequence[Head]) -> Path:
    """The resumable checkpoint of a run: beside the first ``--out``; the same command resumes from it."""
    return heads[0].out.with_suffix(".last.pt")


def _load_checkpoint(path: Path, device: torch.device) -> dict:
    """A ``.last.pt`` checkpoint; ValueError (one line naming it) when it cannot be read."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: torch raises several kinds
        raise ValueError(f"{path}: not a readable training checkpoint ({type(exc).__name__}); delete it to start "
                         "afresh") from None  # fmt: skip


def resume_config(path: Path, ckpt: dict, cfg: TrainConfig, resume: bool) -> tuple[TrainConfig, list[str]]:
    """The config to continue a checkpoint's run with, and how the command's options differ from it.

    The same options resume silently. Different ones (a changed ``--epochs`` would restore the old one-cycle
    schedule under a new length) are refused with a ValueError naming them, unless ``resume`` is asked: then
    the checkpoint's run continues as it was recorded, its own options kept. A checkpoint from before configs
    were recorded continues only when asked, with ``cfg``.
    """
    if "config" not in ckpt:
        if not resume:
            raise ValueError(f"{path}: the checkpoint does not record its options (an older fervid wrote it); "
                             "give --resume to continue it with these, or delete it to start afresh")  # fmt: skip
        return cfg, []
    recorded = json.loads(ckpt["config"])
    changes = changed_options(recorded, cfg)
    if changes and not resume:
        raise ValueError(f"{path}: its run had other options ({'; '.join(changes)}); give --resume to continue "
                         "it with its own options, or delete it to start afresh")  # fmt: skip
    return TrainConfig.from_dict(recorded), changes


def _start(
    cfg: TrainConfig, data: TrainingSet, heads: Sequence[Head], device: torch.device
) -> tuple[_Session, ExpressionConfig, TrainConfig]:
    """Seeded model (fresh or warm-started), its EMA copy, optimiser and one-cycle schedule; the shared model
    config and the training config in effect (see :func:`_build`)."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    model, shared, cfg = _build(cfg, data, heads)
    # Module.to takes memory_format (torch's docs); its stub's overloads leave it out.
    model = model.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # no memory_format in stub
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = make_optimizer(model, cfg)
    steps = cfg.epochs * (len(data) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=cfg.warmup_frac)
    return _Session(model, ema, opt, sched, gen), shared, cfg


def _train_epoch(
    session: _Session, images: torch.Tensor, labels: _Labels, cfg: TrainConfig, shared: ExpressionConfig,
    teachers: Teachers | None = None,
) -> float:  # fmt: skip
    """One pass over the training set in a random order; returns the mean loss."""
    model, device = session.model, images.device
    model.train()
    amp = autocast_dtype(device)
    order = torch.randperm(len(images), device=device, generator=session.gen)
    steps = len(images) // cfg.batch_size
    total = 0.0
    for i in range(steps):
        idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        crops = augment(images[idx].float().unsqueeze(1) / 255.0, cfg.augment, session.gen) * 255.0
        seen = crops  # what the student sees; teachers see ``crops``: their targets are for the face, not a hand
        if cfg.augment.hand_p > 0:  # no extra random draws otherwise: runs without it stay reproducible
            seen = hand_occluders(crops / 255.0, cfg.augment.hand_p, session.gen) * 255.0
        x = prepare(seen, shared)
        blend = None
        if cfg.mixup > 0:
            x, lam, partner = mix_batch(x, session.gen, cfg.mixup)
            blend = (lam, partner)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            taught = teachers.probabilities(crops, blend) if teachers else None
            outputs = model(x)
        loss = labels.mixed_loss(outputs, idx, *blend, taught) if blend else labels.loss(outputs, idx, taught)
        session.opt.zero_grad(set_to_none=True)
        loss.backward()
        session.opt.step()
        session.sched.step()
        session.step += 1
        session.update_ema(cfg)
        total += float(loss.detach())
    return total / max(steps, 1)


def _select(
    session: _Session, heads: Sequence[Head], shared: ExpressionConfig, best: dict, epoch: int, info: dict
) -> dict[str, float]:
    """Score each head's EMA weights on its validation split; save the heads that improved (with a temperature)."""
    accuracies = {}
    for h in heads:
        name = h.labels.name
        config = replace(shared, classes=h.labels.classes, temperature=1.0)
        logits = predict_logits(session.ema.single(name), config, h.val.images, session.gen.device)
        accuracies[name] = accuracy = float((logits.argmax(1).numpy() == h.val.labels).mean())
        if accuracy > best[name][0]:
            best[name] = (accuracy, epoch)
            config.temperature = fit_temperature(logits, torch.from_numpy(h.val.labels))
            config.info = {**info, "best_epoch": epoch, "val_accuracy": accuracy, "dataset": h.labels.dataset,
                           "train_labelled": int(h.labels.valid.sum()), "val_images": len(h.val)}  # fmt: skip
            save_weights(h.out, session.ema.single(name), config)
    return accuracies


def _check_heads(data: TrainingSet, heads: Sequence[Head]) -> list[str]:
    """The label sets' names, after checking that ``heads`` are in their order and share their classes."""
    names = [ls.name for ls in data.label_sets]
    if [h.labels.name for h in heads] != names:
        raise ValueError(f"heads {[h.labels.name for h in heads]} do not match the label sets {names}")
    for h in heads:
        if h.labels.classes != h.val.classes:
            raise ValueError(
                f"{h.labels.name}: classes {h.labels.classes} differ from the validation's {h.val.classes}"
            )
    return names


def train(
    data: TrainingSet,
    heads: Sequence[Head],
    cfg: TrainConfig,
    device: torch.device,
    command: Callable[[TrainConfig], str] | str = "",
    on_epoch: Callable[[EpochLog], None] | None = None,
    resume: bool = False,
    on_resume: Callable[[Path, TrainConfig, list[str]], None] | None = None,
) -> dict[str, ExpressionConfig]:
    """Train, saving each head's best EMA weights on its validation split to ``head.out``.

    ``data.label_sets`` and ``heads`` are in the same order. The resumable checkpoint is
    ``heads[0].out`` with suffix ``.last.pt``; it records the config in effect, and a run with the same
    options continues from it (``on_resume(path, config, [])``). With other options it is refused unless
    ``resume`` is asked (see :func:`resume_config`): then the checkpoint's own config is kept
    (``on_resume(path, config, changes)``). ``resume`` without a checkpoint is an error. ``command`` (or
    ``command(config)``, called once the effective architecture is known) is recorded in each weight file
    with the config in effect (``recipe``).
    """
    names = _check_heads(data, heads)
    last_path = checkpoint_path(heads)
    ckpt = _load_checkpoint(last_path, device) if last_path.exists() else None
    if resume and ckpt is None:
        raise ValueError(f"{last_path}: no checkpoint to resume")
    session, shared, cfg = _start(cfg, data, heads, device)
    history: list[dict[str, Any]]
    start_epoch, best, history = 0, {n: (-1.0, -1) for n in names}, []  # best: accuracy, epoch
    if ckpt is not None:  # resume an interrupted run
        kept, changes = resume_config(last_path, ckpt, cfg, resume)
        if changes:  # asked to resume a run of other options: its own
            session, shared, cfg = _start(kept, data, heads, device)
        if on_resume:
            on_resume(last_path, cfg, changes)
        start_epoch, best, history = session.resume(ckpt, device)
    teachers = Teachers.load(cfg.teachers, [h.labels.classes for h in heads], device) if cfg.teachers else None
    info = {
        **shared.info,  # where the weights started: init_sha256 (a warm restart) or pretrained_sha256
        **({"teacher_sha256": teachers.sha256} if teachers else {}),
        "command": command(cfg) if callable(command) else command, "epochs": cfg.epochs,
        "hardware": hardware_description(device), "train_images": len(data), "heads": names,
        "recipe": cfg.to_dict(),
    }  # fmt: skip
    images = torch.from_numpy(data.images).to(device)
    labels = _Labels.on(data, cfg, device)
    session.step = start_epoch * (len(data) // cfg.batch_size)
    started = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        loss = _train_epoch(session, images, labels, cfg, shared, teachers)
        accuracies = _select(session, heads, shared, best, epoch + 1, info)
        log = EpochLog(epoch + 1, loss, accuracies, float(session.sched.get_last_lr()[0]), time.perf_counter() - t0)
        history.append(asdict(log))
        session.save(last_path, epoch, best, history, cfg)
        if on_epoch:
            on_epoch(log)
    elapsed = time.perf_counter() - started
    for h in heads:
        with atomic_path(h.out.with_suffix(".history.json")) as tmp:
            tmp.write_text(json.dumps({"history": history, "train_seconds": elapsed}, indent=1))
    return {h.labels.name: load_expression_model(h.out, verify=False).config for h in heads}
