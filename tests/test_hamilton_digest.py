"""Hamilton's tables are byte-identical to the stored digests (issue 35: refactors must not change a number).

A default ``fervid annotate`` of the Hamilton clip is hashed table by table (``tests/_hamilton_digest.py``) and
compared with ``tests/data/hamilton_digest.json``, where the libraries and the CPU's vector instructions are those
the digests were made with (elsewhere the last digits may differ for reasons outside fervid: the test skips and says
so). A change meant to alter the tables regenerates that file with
``scripts/hamilton_digest.py`` and commits it with the change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _hamilton_digest import CLIP, DIGEST_FILE, REGENERATE, annotate, differences, environment, table_digests
from conftest import shared_path


def test_differences_name_each_changed_new_and_missing_table() -> None:
    stored = {"faces.csv": "a", "summary.csv": "b", "blinks.csv": "c"}
    assert differences(stored, dict(stored)) == []
    found = {"faces.csv": "a", "summary.csv": "x", "moments.csv": "d"}
    assert differences(stored, found) == ["summary.csv changed", "blinks.csv no longer written", "moments.csv new"]


def test_the_stored_digests_cover_the_main_tables() -> None:
    tables = json.loads(DIGEST_FILE.read_text())["tables"]
    assert {"faces.csv", "summary.csv", "persons.csv", "blinks.csv"} <= set(tables)
    assert all(len(digest) == 64 for digest in tables.values())


@pytest.mark.slow  # one default run of the 10 s clip: about a minute on two CPU cores
def test_hamilton_tables_are_byte_identical_to_the_stored_digests(tmp_path: Path) -> None:
    folder = annotate(shared_path(CLIP), tmp_path)
    stored = json.loads(DIGEST_FILE.read_text())
    here = environment(folder)
    other = {k: (v, here.get(k)) for k, v in stored["environment"].items() if here.get(k) != v}
    if other:  # not the code's doing: the same code gives other last digits on other libraries or CPUs
        pytest.skip(
            f"{DIGEST_FILE.name} was made with another environment ({other}, stored vs here); to use this "
            f"check here, regenerate it with `{REGENERATE}` on the commit it names, then compare"
        )
    changed = differences(stored["tables"], table_digests(folder))
    assert not changed, (
        f"Hamilton's tables differ from {DIGEST_FILE.name} (made at commit {stored['commit'][:10]} with "
        f"{stored['environment']}; this run: {environment(folder)}): {'; '.join(changed)}. "
        f"If the change is intended, regenerate it with `{REGENERATE}` and commit it with the change."
    )
