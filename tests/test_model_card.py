"""The model card: its results table is the shipped figures', it is short, and its history and links exist."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from fervid.models.expression_weights import WEIGHTS_DIR
from fervid.train.card import (
    BLOCKS,
    current_block,
    generated_block,
    recall_table,
    reliability_table,
    results_table,
    update_card,
)

REPO = Path(__file__).resolve().parents[1]
CARD = WEIGHTS_DIR / "README.md"
#: Mitchell et al. 2019's sections, as the card names them.
SECTIONS = ("Model details", "Licence and data terms", "Intended use", "Factors", "Metrics",
            "Evaluation and training data", "Results", "Ethical considerations", "Caveats and recommendations",
            "Citation")  # fmt: skip


@pytest.mark.parametrize("name", list(BLOCKS))
def test_each_table_is_generated_from_the_shipped_figures(name: str):
    assert current_block(CARD.read_text(), name) == generated_block(WEIGHTS_DIR, name)


def test_a_changed_figure_changes_the_table(tmp_path: Path):
    """The check above can fail: a figure in metrics.json that the card does not show is found, and rewritten."""
    copy = tmp_path / "weights"
    (copy / "cards").mkdir(parents=True)
    shutil.copy(CARD, copy / "README.md")
    for name in ("robustness.json", "reliability.json"):
        shutil.copy(WEIGHTS_DIR / "cards" / name, copy / "cards" / name)
    metrics = json.loads((WEIGHTS_DIR / "metrics.json").read_text())
    metrics["ferplus"]["test"]["accuracy"] = 0.5
    metrics["ferplus"]["test"]["per_class"][0]["recall"] = 0.25
    (copy / "metrics.json").write_text(json.dumps(metrics))
    reliability = json.loads((WEIGHTS_DIR / "cards" / "reliability.json").read_text())
    reliability["real footage"]["ece_p_correct"] = 0.5
    (copy / "cards" / "reliability.json").write_text(json.dumps(reliability))
    for name in BLOCKS:
        assert current_block((copy / "README.md").read_text(), name) != generated_block(copy, name), name
    assert update_card(copy)
    card = (copy / "README.md").read_text()
    assert "| `ferplus` | 50.00% |" in card and "| `ferplus` | 0.250 |" in card
    assert "| real footage | 104 |" in card and "| 0.500 |" in card
    assert not update_card(copy)


def test_table_rows_and_missing_figures():
    metrics = {"fer2013": {"dataset": "FER2013", "test": {"accuracy": 0.684, "macro_f1": 0.66, "ece": 0.02}},
               "ferplus-rule": {"dataset": "FER+", "test": {"accuracy": 0.8144, "macro_f1": 0.7, "ece": 0.017},
                                "real_footage": {"correct": 92, "n": 104, "accuracy": 92 / 104}}}  # fmt: skip
    rows = results_table(metrics, {}).splitlines()[2:]
    assert rows[0].startswith("| `ferplus-rule` (default) | 81.44% | – | – |") and "92 of 104 (88.5%)" in rows[0]
    assert rows[1].startswith("| `fer2013` | – | – | 68.40% |") and rows[1].endswith("| – | – |")


def test_recall_table_puts_each_model_beside_the_default():
    def recall(*values: float) -> list[dict]:
        return [{"class": c, "recall": v} for c, v in zip(("happy", "neutral", "contempt"), values)]

    happy, neutral = {"predicted": "happy"}, {"predicted": "neutral"}
    metrics = {"ferplus": {"classes": ["happy", "neutral", "contempt"], "test": {"per_class": recall(0.9, 0.8, 0.4)},
                           "real_footage": {"hamilton_240": [happy, neutral, happy]}},
               "fer2013": {"classes": ["happy", "neutral"], "test": {"per_class": recall(0.85, 0.7)}},
               "ferplus-rule": {"classes": ["happy", "neutral", "contempt"],
                                "test": {"per_class": recall(0.91, 0.75, 0.4)},
                                "real_footage": {"hamilton_240": [happy, happy, happy, neutral, happy]}}}  # fmt: skip
    lines = recall_table(metrics).splitlines()
    assert lines[0] == "| recall, own test | happy | neutral | contempt | Hamilton 240: smiles read `happy` |"
    assert lines[2] == "| `ferplus-rule` (default) | 0.910 | 0.750 | 0.400 | 4 of 5 |"
    assert lines[3] == "| `ferplus` | 0.900 | 0.800 | 0.400 | 2 of 3 |"
    assert lines[4] == "| `fer2013` | 0.850 | 0.700 | – | – |"


def test_reliability_table_shows_ranking_calibration_and_what_each_threshold_keeps():
    figures = {"n": 104, "aurc_p_correct": 0.0218, "aurc_top": 0.0204, "aurc_ratio": 1.0686,
               "accuracy_top70_p_correct": 0.9726, "ece_p_correct": 0.0612,
               "by_threshold": [{"threshold": 0.0, "coverage": 1.0, "accuracy": 0.8846},
                                {"threshold": 0.5, "coverage": 0.9712, "accuracy": 0.8812},
                                {"threshold": 0.9, "coverage": 0.0, "accuracy": None}]}  # fmt: skip
    lines = reliability_table({"threshold": 0.5, "ece_bins": 15, "real footage": figures}).splitlines()
    assert "ECE (15 bins)" in lines[0] and "`--min-p-correct` 0 · 0.5 (default) · 0.9 |" in lines[0]
    assert lines[2] == ("| real footage | 104 | 0.0218 / 0.0204 (1.069×) | 97.3% | 0.061 | "
                        "100 / 88.5 · 97 / 88.1 · 0 / – |")  # fmt: skip


def test_card_is_short_with_every_section_and_its_history_beside_it():
    card = CARD.read_text()
    assert len(card.encode()) <= 15 * 1024, f"the card has {len(card.encode())} bytes"
    headings = re.findall(r"^## (.+)$", card, flags=re.MULTILINE)
    for section in SECTIONS:
        assert section in headings, section
    assert "Which labels to believe" in headings  # docs/outputs.md and fervid/reliability.py point here
    assert card.count("\n| model |") == 1  # one results table
    assert card.count("\n| recall, own test |") == 1 and card.count("\n| judged set |") == 1
    for plot in ("cards/readability.png", "cards/reliability.png"):  # issue 30: the curves beside the tables
        assert f"]({plot})" in card, plot
    assert "research-only" in card and "MIT" in card and "@inproceedings{barsoum2016ferplus" in card


def test_card_links_resolve():
    card = CARD.read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", card)
    assert "../../docs/model-history.md" in links
    for link in links:
        assert (CARD.parent / link).resolve().exists(), link


def test_history_keeps_the_runs():
    history = (REPO / "docs" / "model-history.md").read_text()
    for section in ("Training recipe", "Choosing what ships", "Real footage", "Against the targets",
                    "What was tried", "Head pose in FER"):  # fmt: skip
        assert section in history, section
    for link in re.findall(r"\]\(([^)#]+)\)", history):
        assert (REPO / "docs" / link).resolve().exists(), link


@pytest.mark.parametrize("name", ["README.md", "metrics.json"])
def test_card_and_figures_ship_in_the_package(name: str):
    package_data = (REPO / "pyproject.toml").read_text()
    assert f'"weights/{name}"' in package_data or '"weights/*.json"' in package_data


def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


def test_history_and_docs_give_the_shipped_reliability_figures():
    """The shipped p_correct (round 3) is judged in cards/reliability.json; the history's round-3 table and targets,
    the card's prose and docs/outputs.md quote it as printed there (round 2's figures are labelled round 2)."""
    judged = json.loads((WEIGHTS_DIR / "cards" / "reliability.json").read_text())
    history = (REPO / "docs" / "model-history.md").read_text()
    shipped = history[history.index("**Round 3, judged once: the shipped file**") :]
    shipped = shipped[: shipped.index("So `readable` does what it is for")]
    assert judged["ece_bins"] == 15 and "ECE `p_correct` / top (15 bins)" in shipped
    for name in ("real footage", "FER+ test, clean", "FER+ test, conditions"):
        r = judged[name]
        row = (f"| {name} | {r['n']:,} | {_pct(r['accuracy'])} | {r['aurc_p_correct']:.3f} / {r['aurc_top']:.3f} "
               f"({r['aurc_ratio']:.3f}) | {r['accuracy_top70_p_correct'] * 100:.1f} / "
               f"{r['accuracy_top70_top'] * 100:.1f} % | {r['ece_p_correct']:.3f} / {r['ece_top']:.3f} |")  # fmt: skip
        assert row in shipped, row
        trusted = f"| {_pct(r['trusted_share'])}, {_pct(r['accuracy_trusted'])} |"
        assert shipped.split(row)[1].split("\n")[0].endswith(trusted), name
    real, conditions = judged["real footage"], judged["FER+ test, conditions"]
    assert f"| 1.35 × | {real['aurc_ratio']:.3f} × | **missed** |" in shipped
    assert f"| 1.08 × | {conditions['aurc_ratio']:.3f} × | **missed** |" in shipped
    assert f"| 0.093 (10 bins) | {real['ece_p_correct']:.3f} (15 bins;" in shipped
    assert f"| 97.3 % | {_pct(real['accuracy_top70_p_correct'])} | met |" in shipped
    assert "| round 2 (replaced) |" in history and "(round 2's choice; replaced by round 3)" in history
    ece = real["ece_p_correct"]
    assert f"ECE ≤ 0.05: {'met' if ece <= 0.05 else 'missed'} ({ece:.3f})" in CARD.read_text()
    kept = {name: next(b for b in judged[name]["by_threshold"] if b["threshold"] == judged["threshold"])
            for name in ("real footage", "FER+ test, conditions")}  # fmt: skip
    outputs = " ".join((REPO / "docs" / "outputs.md").read_text().split())
    real_kept, conditions_kept = kept["real footage"], kept["FER+ test, conditions"]
    expected = (f"keeps {real_kept['coverage'] * 100:.0f} % of the real-footage faces, {_pct(real_kept['accuracy'])} "
                f"of them right ({_pct(real['accuracy'])} of all), and {conditions_kept['coverage'] * 100:.0f} % of "
                f"FER+ test faces under the video conditions, {_pct(conditions_kept['accuracy'])} right "
                f"({_pct(conditions['accuracy'])} of all)")  # fmt: skip
    assert expected in outputs, expected
