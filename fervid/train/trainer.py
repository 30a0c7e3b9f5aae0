"""Training loop for expression models (``fervid train``).

Recipe (chosen for accuracy in a short schedule, and to run on a CPU too):
- whole split held on the device as uint8; augmentation batched on the device;
- soft-target cross-entropy (FER+ vote distributions; label smoothing for hard labels);
- class imbalance: loss weights proportional to inverse class frequency to a power
  (0.5 by default, a compromise between accuracy and recall of rare classes);
- AdamW with a one-cycle learning-rate schedule (SGD is available; see ``make_optimizer``);
- an exponential moving average (EMA) of the weights, which is what gets evaluated
  and saved: it is smoother and more accurate than the raw weights late in training;
- bf16 autocast on CUDA, and on CPUs with native bf16 (AVX512-BF16/AMX);
- model selection on the validation split only; best and last checkpoints each epoch,
  so a run can resume;
- an optional warm restart (``init``): start from a trained model's weights and run another
  one-cycle schedule, which lets a long schedule be split over several shorter runs.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fervid.devices import cpu_name
from fervid.models.expression_weights import ExpressionConfig, load_weights, save_weights, sha256_file
from fervid.train.augment import AugmentConfig, augment
from fervid.train.data import ExpressionData
from fervid.train.predict import predict_probs


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    class_weight_power: float = 0.5
    ema_decay: float = 0.999
    warmup_frac: float = 0.15
    seed: int = 0
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: tuple[int, ...] = (1, 1, 1)
    dropout: float = 0.3
    init: str | None = None  # weights to start from (architecture and normalisation taken from them)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    val_accuracy: float
    lr: float
    seconds: float


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the hardware runs it natively, else None (full fp32)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        try:
            if torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return torch.bfloat16
        except (AttributeError, RuntimeError):
            return None
    return None


def class_weights(data: ExpressionData, power: float) -> torch.Tensor:
    """Inverse-frequency weights to ``power``, normalised so the average sample weight is 1."""
    freq = data.targets.sum(axis=0) / len(data)
    w = np.where(freq > 0, np.maximum(freq, 1e-6) ** -power, 0.0)
    w = w / float((freq * w).sum())
    return torch.tensor(w, dtype=torch.float32)


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU: {cpu_name()}, {torch.get_num_threads()} threads"


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a target distribution, each sample weighted by its target's class weights."""
    logp = F.log_softmax(logits.float(), dim=1)
    per_sample = -(targets * logp).sum(dim=1)
    sample_w = targets @ weights
    return (per_sample * sample_w).sum() / sample_w.sum()


OPTIMIZERS = ("adamw", "sgd")


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW by default: in our runs SGD (lr 0.05-0.1) stayed at the class prior for epochs on FER."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


def _warm_start(cfg: TrainConfig, train_data: ExpressionData) -> tuple[torch.nn.Module, ExpressionConfig]:
    """The model in ``cfg.init``, checked against the data; ``cfg`` is updated to the architecture used."""
    model, init_cfg = load_weights(cfg.init, verify=False)
    if init_cfg.classes != train_data.classes:
        raise ValueError(f"{cfg.init}: model classes {init_cfg.classes} differ from the data's {train_data.classes}")
    if init_cfg.input_size != train_data.images.shape[-1]:
        raise ValueError(f"{cfg.init}: model input {init_cfg.input_size} px, data {train_data.images.shape[-1]} px")
    cfg.widths, cfg.blocks, cfg.dropout = init_cfg.widths, init_cfg.blocks, init_cfg.dropout
    # The hash is taken now, when the weights are read, not when the result is saved.
    return model.train(), replace(init_cfg, info={"init_sha256": sha256_file(Path(cfg.init))})


def train(
    train_data: ExpressionData,
    val_data: ExpressionData,
    out: Path,
    cfg: TrainConfig,
    device: torch.device,
    command: str = "",
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> ExpressionConfig:
    """Train, selecting the EMA weights with the best validation accuracy; writes ``out`` and ``out``.last.pt."""
    if train_data.classes != val_data.classes:
        raise ValueError(f"train classes {train_data.classes} differ from validation classes {val_data.classes}")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)

    mean = float(train_data.images.mean() / 255.0)
    std = float(train_data.images.std() / 255.0)
    model_cfg = ExpressionConfig(
        classes=train_data.classes, widths=tuple(cfg.widths), blocks=tuple(cfg.blocks),
        dropout=cfg.dropout, input_size=train_data.images.shape[-1], mean=mean, std=std,
    )  # fmt: skip
    if cfg.init:
        model, model_cfg = _warm_start(cfg, train_data)
        mean, std = model_cfg.mean, model_cfg.std
    else:
        model = model_cfg.build()
    model = model.to(device).to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)

    images = torch.from_numpy(train_data.images).to(device)
    targets = torch.from_numpy(train_data.targets).to(device)
    smooth = cfg.label_smoothing if train_data.targets.max(axis=1).min() == 1.0 else 0.0
    if smooth:
        targets = targets * (1 - smooth) + smooth / targets.shape[1]
    weights = class_weights(train_data, cfg.class_weight_power).to(device)

    steps_per_epoch = len(train_data) // cfg.batch_size
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=cfg.warmup_frac
    )
    amp = autocast_dtype(device)
    last_path = out.with_suffix(".last.pt")
    start_epoch, best_acc, best_epoch, history = 0, -1.0, -1, []
    if last_path.exists():  # resume an interrupted run
        ckpt = torch.load(last_path, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        sched.load_state_dict(ckpt["sched"])
        gen.set_state(ckpt["gen"].to(gen.get_state().device) if device.type != "cuda" else ckpt["gen"].cpu())
        start_epoch, best_acc, best_epoch = ckpt["epoch"] + 1, ckpt["best_acc"], ckpt["best_epoch"]
        history = json.loads(ckpt["history"])

    started = time.perf_counter()
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_data), device=device, generator=gen)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = images[idx].float().unsqueeze(1) / 255.0
            x = augment(x, cfg.augment, gen)
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                logits = model(x)
            loss = soft_cross_entropy(logits, targets[idx], weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))  # short warm-up for the average
            with torch.no_grad():
                for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
                    if e.dtype.is_floating_point:
                        e.lerp_(m, 1 - decay)
                    else:
                        e.copy_(m)
            total += float(loss.detach())
        probs = predict_probs(ema, model_cfg, val_data.images, device)
        val_acc = float((probs.argmax(1) == val_data.labels).mean())
        log = EpochLog(epoch + 1, total / steps_per_epoch, val_acc, sched.get_last_lr()[0], time.perf_counter() - t0)
        history.append(asdict(log))
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch + 1
            model_cfg.info = {
                **({"init_sha256": model_cfg.info["init_sha256"]} if cfg.init else {}),
                "command": command, "epochs": cfg.epochs, "best_epoch": best_epoch, "val_accuracy": best_acc,
                "hardware": hardware_description(device), "train_images": len(train_data),
                "val_images": len(val_data), "recipe": json.loads(json.dumps(asdict(cfg), default=list)),
            }  # fmt: skip
            save_weights(out, ema, model_cfg)
        torch.save(
            {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
             "sched": sched.state_dict(), "gen": gen.get_state(), "epoch": epoch, "best_acc": best_acc,
             "best_epoch": best_epoch, "history": json.dumps(history)},
            last_path,
        )  # fmt: skip
        if on_epoch:
            on_epoch(log)
    elapsed = time.perf_counter() - started
    history_path = out.with_suffix(".history.json")
    history_path.write_text(json.dumps({"history": history, "train_seconds": elapsed}, indent=1))
    return model_cfg
