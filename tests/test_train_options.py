"""`fervid train`'s options: defined once (fervid.train.config), the CLI's flags generated from them, so the
CLI and the API run one recipe; a checkpoint records its run's options and a resume is checked against them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import typer.main
from conftest import ferplus_validation_subset
from typer.testing import CliRunner

from fervid.cli import app
from fervid.cli_options import train_cli_values, train_config_from_cli, train_fields
from fervid.models.expression_weights import load_expression_model
from fervid.options import flag
from fervid.train.config import AugmentConfig, TrainConfig, changed_options

runner = CliRunner()
#: Flags of `fervid train` that are about where data and outputs are, not the recipe.
NOT_RECIPE = {"out", "data", "val", "pack", "device", "threads", "resume"}
#: A value for every training option other than its default (the test fails when an option is added without one).
CHANGED = {
    "epochs": 3, "batch_size": 16, "optimizer": "sgd", "lr": 0.01, "weight_decay": 0.01, "class_weight_power": 0.6,
    "seed": 5, "arch": "face-resnet", "widths": (8, 8, 16, 16), "blocks": (1, 2, 2), "photometric": "none",
    "alignment": "landmarks", "init": ("a.pt", "b.pt"), "pose_balance": True, "mixup": 0.2,
    "teachers": ("ferplus",), "distill": 0.7, "degrade_p": 0.3, "yaw_p": 0.4, "hand_p": 0.25, "max_yaw_deg": 60.0,
    "yaw_model": "cylinder",
}  # fmt: skip


def _parsed(args: list[str]) -> dict:
    """The values `fervid train` parses from ``args`` (nothing is run)."""
    command = typer.main.get_command(app).commands["train"]
    with command.make_context("train", ["--out", "x.pt", *args]) as ctx:
        return {k: v for k, v in ctx.params.items() if k not in NOT_RECIPE}


def test_cli_defaults_are_the_api_defaults():
    """The bug this guards: `--degrade` defaulted to 0.15 on the CLI and degrade_p to 0.0 in the API."""
    assert train_config_from_cli(_parsed([])) == TrainConfig()


def test_the_default_recipe_degrades_as_the_shipped_models_were_trained():
    """The CLI's 0.15 was right: every shipped network records it (its own recipe, in the weight file)."""
    recorded = {
        load_expression_model(name).config.info["recipe"]["augment"]["degrade_p"] for name in ("ferplus", "fer2013")
    }
    assert recorded == {TrainConfig().augment.degrade_p} == {0.15}


def test_every_option_has_a_flag_and_a_changed_value_here():
    names = [f.name for _, f in train_fields()]
    assert len(names) == len(set(names)) and set(names) == set(CHANGED)
    flags = {opt for p in typer.main.get_command(app).commands["train"].params for opt in p.opts}
    assert {flag(f) for _, f in train_fields()} <= flags


def test_cli_flags_reach_the_same_config_as_the_api():
    args: list[str] = []
    for _, f in train_fields():
        value = CHANGED[f.name]
        if isinstance(value, bool):
            args.append(flag(f))
        elif isinstance(value, tuple) and f.name in ("init", "teachers"):
            args += [a for v in value for a in (flag(f), v)]
        else:
            args += [flag(f), ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    augment = {f.name for f in dataclasses.fields(AugmentConfig)}
    api = TrainConfig(**{k: v for k, v in CHANGED.items() if k not in augment},
                      augment=AugmentConfig(**{k: v for k, v in CHANGED.items() if k in augment}))  # fmt: skip
    parsed = _parsed(args)
    assert train_config_from_cli(parsed) == api
    assert train_cli_values(api) == parsed  # and back: what a recorded command spells out


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--widths", "32,x"], "--widths takes whole numbers"), (["--optimizer", "adam"], "unknown optimizer 'adam'")],
)
def test_a_malformed_option_is_a_one_line_usage_error(tmp_path, args, message):
    result = runner.invoke(app, ["train", "--data", str(tmp_path), "--val", str(tmp_path), "--out",
                                 str(tmp_path / "x.pt"), *args])  # fmt: skip
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_api_values_are_checked_in_the_cli_ranges():
    with pytest.raises(ValueError, match=r"degrade_p must be in \[0.0, 1.0\], got 1.5"):
        AugmentConfig(degrade_p=1.5)
    with pytest.raises(ValueError, match="epochs must be in"):
        TrainConfig(epochs=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3  # type: ignore[misc]


def test_changes_are_named_as_the_cli_spells_them():
    then = TrainConfig(epochs=12, augment=AugmentConfig(yaw_p=0.3)).to_dict()
    now = TrainConfig(epochs=24, pose_balance=True, label_smoothing=0.0)
    assert changed_options(then, now) == [
        "--epochs 12 then, 24 now", "label_smoothing 0.1 then, 0 now", "--pose-balance not given then, given now",
        "--yaw 0.3 then, 0 now",
    ]  # fmt: skip
    assert changed_options(now.to_dict(), now) == []
    assert TrainConfig.from_dict(now.to_dict()) == now


@pytest.fixture(scope="module")
def small_ferplus(tmp_path_factory):
    """The first 96 images of the real FER+ validation split, in Microsoft's layout."""
    return ferplus_validation_subset(tmp_path_factory.mktemp("data"), 96)


def _train(data: Path, out: Path, *extra: str):
    return runner.invoke(app, ["train", "--data", str(data), "--val", str(data), "--out", str(out), "--batch-size",
                               "32", "--widths", "8,8,16,16", "--device", "cpu", *extra])  # fmt: skip


def test_a_checkpoint_of_other_options_is_refused_unless_resume_is_asked(small_ferplus, tmp_path):
    out = tmp_path / "tiny.pt"
    assert _train(small_ferplus, out, "--epochs", "1").exit_code == 0
    checkpoint = out.with_suffix(".last.pt")
    recorded = json.loads(torch.load(checkpoint, weights_only=True)["config"])
    assert recorded["epochs"] == 1 and recorded["widths"] == [8, 8, 16, 16]
    stamp = checkpoint.stat().st_mtime_ns

    refused = _train(small_ferplus, out, "--epochs", "2", "--lr", "0.001")
    assert refused.exit_code == 2, refused.output
    line = " ".join(refused.output.split())
    assert "--epochs 1 then, 2 now; --lr 0.003 then, 0.001 now" in line and "give --resume" in line
    assert "Traceback" not in refused.output and checkpoint.stat().st_mtime_ns == stamp

    resumed = _train(small_ferplus, out, "--epochs", "2", "--lr", "0.001", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "its own options kept: --epochs 1 then, 2 now" in " ".join(resumed.output.split())
    info = load_expression_model(out).config.info  # the run continued as it was: one epoch, its own learning rate
    assert info["recipe"]["epochs"] == 1 and info["recipe"]["lr"] == 0.003 and "--epochs 1" in info["command"]
    history = json.loads(out.with_suffix(".history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1]
    assert not list(tmp_path.glob(".*partial*"))


def test_resume_without_a_checkpoint_is_a_usage_error(small_ferplus, tmp_path):
    result = _train(small_ferplus, tmp_path / "tiny.pt", "--epochs", "1", "--resume")
    assert result.exit_code == 2 and "tiny.last.pt: no checkpoint to resume" in " ".join(result.output.split())
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_without_its_options_continues_only_when_asked(small_ferplus, tmp_path):
    """A checkpoint from before options were recorded (as an older fervid wrote it)."""
    out = tmp_path / "tiny.pt"
    assert _train(small_ferplus, out, "--epochs", "1").exit_code == 0
    checkpoint = out.with_suffix(".last.pt")
    state = torch.load(checkpoint, weights_only=True)
    del state["config"]
    torch.save(state, checkpoint)
    refused = _train(small_ferplus, out, "--epochs", "1")
    assert refused.exit_code == 2 and "does not record its options" in " ".join(refused.output.split())
    assert _train(small_ferplus, out, "--epochs", "1", "--resume").exit_code == 0
