"""The model card: its results table is the shipped figures', it is short, and its history and links exist."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from fervid.models.expression_weights import WEIGHTS_DIR
from fervid.train.card import current_block, generated_block, results_table, update_card

REPO = Path(__file__).resolve().parents[1]
CARD = WEIGHTS_DIR / "README.md"
#: Mitchell et al. 2019's sections, as the card names them.
SECTIONS = ("Model details", "Licence and data terms", "Intended use", "Factors", "Metrics",
            "Evaluation and training data", "Results", "Ethical considerations", "Caveats and recommendations",
            "Citation")  # fmt: skip


def test_results_table_is_generated_from_the_shipped_figures():
    assert current_block(CARD.read_text()) == generated_block(WEIGHTS_DIR)


def test_a_changed_figure_changes_the_table(tmp_path: Path):
    """The check above can fail: a figure in metrics.json that the card does not show is found, and rewritten."""
    copy = tmp_path / "weights"
    (copy / "cards").mkdir(parents=True)
    shutil.copy(CARD, copy / "README.md")
    shutil.copy(WEIGHTS_DIR / "cards" / "robustness.json", copy / "cards" / "robustness.json")
    metrics = json.loads((WEIGHTS_DIR / "metrics.json").read_text())
    metrics["ferplus"]["test"]["accuracy"] = 0.5
    (copy / "metrics.json").write_text(json.dumps(metrics))
    assert current_block((copy / "README.md").read_text()) != generated_block(copy)
    assert update_card(copy)
    assert "| `ferplus` | 50.00% |" in (copy / "README.md").read_text()
    assert not update_card(copy)


def test_table_rows_and_missing_figures():
    metrics = {"fer2013": {"dataset": "FER2013", "test": {"accuracy": 0.684, "macro_f1": 0.66, "ece": 0.02}},
               "ferplus-rule": {"dataset": "FER+", "test": {"accuracy": 0.8144, "macro_f1": 0.7, "ece": 0.017},
                                "real_footage": {"correct": 92, "n": 104, "accuracy": 92 / 104}}}  # fmt: skip
    rows = results_table(metrics, {}).splitlines()[2:]
    assert rows[0].startswith("| `ferplus-rule` (default) | 81.44% | – | – |") and "92 of 104 (88.5%)" in rows[0]
    assert rows[1].startswith("| `fer2013` | – | – | 68.40% |") and rows[1].endswith("| – | – |")


def test_card_is_short_with_every_section_and_its_history_beside_it():
    card = CARD.read_text()
    assert len(card.encode()) <= 15 * 1024, f"the card has {len(card.encode())} bytes"
    headings = re.findall(r"^## (.+)$", card, flags=re.MULTILINE)
    for section in SECTIONS:
        assert section in headings, section
    assert "Which labels to believe" in headings  # docs/outputs.md and fervid/reliability.py point here
    assert card.count("\n| model |") == 1  # one results table
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
