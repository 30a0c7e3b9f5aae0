"""The default model's decision rule (issue 31): its file, its errors, and that every path applies it alike."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import shared_path
from typer.testing import CliRunner

from fervid.classify import ExpressionClassifier
from fervid.cli import app
from fervid.io.images import read_image
from fervid.models.expression_input import prepare
from fervid.models.expression_rule import Member, RuleConfig, mix_probabilities, read_rule, save_rule
from fervid.models.expression_weights import (
    WEIGHTS_DIR,
    WeightsError,
    is_rule,
    load_expression_model,
    resolve_model,
    sha256_file,
    shipped_models,
)
from fervid.options import AnnotateOptions, ClassificationOptions
from fervid.train.predict import predict_probs
from fervid.types import EMOTIONS

DEFAULT = ClassificationOptions().model
STILL = "media/pyfeat/happy_black.jpg"
runner = CliRunner()


def _needs_default() -> None:
    if DEFAULT not in shipped_models():
        pytest.skip(f"the default model {DEFAULT} is not in fervid/weights")


def _members_beside(folder: Path) -> dict[str, str]:
    """Links to the shipped heads in ``folder`` (a rule's members live beside it); name -> sha256."""
    out = {}
    for name in ("ferplus.pt", "fer2013.pt"):
        (folder / name).symlink_to(WEIGHTS_DIR / name)
        out[name] = sha256_file(WEIGHTS_DIR / name)
    return out


def _rule(folder: Path, **changes: object) -> Path:
    """A valid two-member rule in ``folder``, with ``changes`` made to its JSON."""
    sha = _members_beside(folder)
    rule = RuleConfig(tuple(Member(f, s) for f, s in sha.items()), EMOTIONS, (0.1,) * 8, 0.9)
    raw = {**rule.to_json(), **changes}
    path = folder / "test.rule.json"
    path.write_text(json.dumps(raw))
    return path


def test_the_default_is_a_shipped_rule_whose_file_round_trips(tmp_path: Path) -> None:
    _needs_default()
    assert is_rule(DEFAULT) and not is_rule("ferplus")
    path = resolve_model(DEFAULT)
    rule = read_rule(path)
    save_rule(tmp_path / path.name, rule)
    assert (tmp_path / path.name).read_text() == path.read_text()
    assert read_rule(tmp_path / path.name) == rule
    for member in rule.members:  # it names the shipped heads it was tuned on
        assert sha256_file(WEIGHTS_DIR / member.file) == member.sha256
    config = load_expression_model(DEFAULT).config
    assert config.info["rule"] == json.loads(path.read_text())  # what run.json records
    assert (config.classes, config.temperature) == (rule.classes, rule.temperature)


def test_the_default_rule_is_its_members_mix_offsets_and_temperature() -> None:
    """Worked by hand from the heads: softmax((log mix(softmax(z_i / T_i)) + offsets) / T)."""
    _needs_default()
    rule = read_rule(resolve_model(DEFAULT))
    crops = torch.rand(6, 1, 48, 48, generator=torch.Generator().manual_seed(0)) * 255
    heads = [load_expression_model(WEIGHTS_DIR / m.file) for m in rule.members]
    with torch.inference_mode():
        probs = [torch.softmax(h.model(prepare(crops, h.config)) / h.config.temperature, 1) for h in heads]
        mixed = probs[0].clone()
        if len(probs) == 2:  # contempt from ferplus, the other seven shared by the weighted mean
            w = torch.tensor(rule.weights)
            mixed[:, :7] = w[0] * probs[0][:, :7] + w[1] * (1 - probs[0][:, 7:]) * probs[1]
        expected = torch.softmax((torch.log(mixed) + torch.tensor(rule.offsets)) / rule.temperature, 1)
    np.testing.assert_allclose(ExpressionClassifier(DEFAULT).outputs(crops)[0], expected.numpy(), atol=1e-5)


def test_the_mix_keeps_contempt_from_the_first_member_and_averages_the_rest() -> None:
    first = torch.tensor([[0.2, 0.0, 0.0, 0.5, 0.0, 0.0, 0.1, 0.2]])
    second = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    mixed = mix_probabilities([first, second], [EMOTIONS, EMOTIONS[:7]], EMOTIONS)
    expected = torch.tensor([[0.1, 0.0, 0.0, 0.25, 0.0, 0.0, 0.05 + 0.4, 0.2]])
    torch.testing.assert_close(mixed, expected)
    weighted = mix_probabilities([first, second], [EMOTIONS, EMOTIONS[:7]], EMOTIONS, (3.0, 1.0))
    torch.testing.assert_close(weighted[0, 6], torch.tensor(0.75 * 0.1 + 0.25 * 0.8))
    assert mix_probabilities([first], [EMOTIONS], EMOTIONS) is first


def test_a_valid_rule_loads_and_annotates_like_its_config_says(tmp_path: Path) -> None:
    loaded = load_expression_model(_rule(tmp_path))
    net, config = loaded.model, loaded.config
    assert config.classes == EMOTIONS and config.temperature == 0.9 and len(net.members) == 2
    assert config.alignment == load_expression_model("ferplus").config.alignment


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"offsets": [0.0] * 7}, "7 offsets for 8 classes"),
        ({"members": [{"file": "nope.pt", "sha256": "0"}]}, "unknown member 'nope.pt'"),
        ({"members": [{"file": "../ferplus.pt", "sha256": "0"}]}, "unknown member"),
        ({"members": [{"file": "ferplus.pt", "sha256": "0" * 64}]}, "not the file the rule was tuned on"),
        ({"members": []}, "at least one member"),
        ({"classes": list(EMOTIONS[:7]), "offsets": [0.0] * 7}, "are not its first member's"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"format": "something/1"}, "not a fervid decision rule"),
        ({"mix": "max"}, "unknown mix"),
    ],
)
def test_a_bad_rule_is_a_one_line_error_naming_the_file(tmp_path: Path, change: dict, message: str) -> None:
    path = _rule(tmp_path, **change)
    with pytest.raises(WeightsError, match=message) as caught:
        load_expression_model(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_rule_that_is_not_json_or_whose_members_do_not_fit(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rule.json"
    broken.write_text("{not json")
    with pytest.raises(WeightsError, match="broken.rule.json: not a readable decision rule"):
        load_expression_model(broken)
    path = _rule(tmp_path)
    loaded = load_expression_model(WEIGHTS_DIR / "fer2013.pt")
    net, config = loaded.model, loaded.config
    from fervid.models.expression_weights import save_weights

    save_weights(tmp_path / "other.pt", net, replace(config, input_size=64))
    raw = json.loads(path.read_text())
    raw["members"][1] = {"file": "other.pt", "sha256": sha256_file(tmp_path / "other.pt")}
    path.write_text(json.dumps(raw))
    with pytest.raises(WeightsError, match="member other.pt does not fit the first member \\(input_size\\)"):
        load_expression_model(path)


def test_the_cli_rejects_a_bad_rule_with_exit_2(tmp_path: Path) -> None:
    path = _rule(tmp_path, offsets=[0.0] * 3)
    result = runner.invoke(app, ["evaluate", "--data", str(tmp_path), "--model", str(path)])
    assert result.exit_code == 2, result.output
    assert "3 offsets for 8 classes" in result.output and "Traceback" not in result.output
    still = shared_path(STILL)
    result = runner.invoke(app, ["annotate", str(still), "-o", str(tmp_path / "out"), "--model", str(path)])
    assert result.exit_code == 2, result.output
    assert "3 offsets for 8 classes" in result.output and not (tmp_path / "out").exists()


def test_annotate_evaluate_and_the_api_give_one_face_the_same_probabilities(tmp_path: Path) -> None:
    """The same face through `fervid annotate`, `fervid.annotate` and evaluate's path (predict_probs on the crop
    annotate cuts) gets the same probabilities from the default rule, and both runs record the rule."""
    import fervid

    _needs_default()
    still = shared_path(STILL)
    api = fervid.annotate(still, identity=False)
    cli = runner.invoke(app, ["annotate", str(still), "-o", str(tmp_path), "--no-video", "--no-plots",
                              "--no-report", "--no-identity"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    written = pd.read_csv(tmp_path / "happy_black" / "happy_black.faces.csv")
    columns = [f"p_{c}" for c in EMOTIONS]
    area = (api.faces["x2"] - api.faces["x1"]) * (api.faces["y2"] - api.faces["y1"])
    face = int(np.argmax(area))
    from_api = api.faces[columns].to_numpy(dtype=np.float64)[face]
    np.testing.assert_allclose(written[columns].to_numpy()[face], from_api, atol=1e-5)
    image = read_image(still)
    dets = AnnotateOptions().detection.build("cpu").detect([image])[0]
    dets = dets[[int(np.argmax(dets.area))]]
    crop = ExpressionClassifier(DEFAULT).crops(torch.from_numpy(image)[None], [dets])[:, 0].numpy()
    loaded = load_expression_model(DEFAULT)
    net, config = loaded.model, loaded.config
    np.testing.assert_allclose(predict_probs(net, config, crop, "cpu")[0], from_api, atol=1e-5)
    rule = json.loads(resolve_model(DEFAULT).read_text())
    record = json.loads((tmp_path / "happy_black" / "happy_black.run.json").read_text())
    for models in (record["models"], api.run["models"]):
        assert models["expression"]["name"] == DEFAULT and models["expression"]["rule"] == rule
