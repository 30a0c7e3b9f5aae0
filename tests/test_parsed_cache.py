"""The per-user cache of parsed model files (fervid.models.parsed_cache), and the shape predictor read through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fervid.models.parsed_cache import CACHE_ENV, cache_dir, parsed_arrays

SHA = "ab" * 32


class CountingParse:
    """A parse that counts its calls and returns fixed arrays."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        return {"leaves": np.arange(12, dtype=np.float32).reshape(3, 4), "splits": np.array([[1, 2]], np.int64)}


def assert_same(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(expected)
    for name, array in expected.items():
        assert got[name].dtype == array.dtype and np.array_equal(got[name], array), name


def test_a_second_load_reads_the_entry_instead_of_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    parse = CountingParse()
    first = parsed_arrays("model", SHA, parse)
    second = parsed_arrays("model", SHA, parse)
    assert parse.calls == 1
    assert_same(second, first)
    assert (tmp_path / "model" / f"{SHA}.npz").is_file()
    assert not [p for p in (tmp_path / "model").iterdir() if p.name.startswith(".")], "a partial file was left"


def test_another_sha256_is_another_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    parse = CountingParse()
    parsed_arrays("model", SHA, parse)
    parsed_arrays("model", "cd" * 32, parse)
    assert parse.calls == 2


def test_a_truncated_entry_is_parsed_again_and_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    parse = CountingParse()
    expected = parsed_arrays("model", SHA, parse)
    entry = tmp_path / "model" / f"{SHA}.npz"
    entry.write_bytes(entry.read_bytes()[:40])
    assert_same(parsed_arrays("model", SHA, parse), expected)
    assert parse.calls == 2
    assert_same(parsed_arrays("model", SHA, parse), expected)
    assert parse.calls == 2, "the bad entry was not replaced"


def test_an_unwritable_cache_only_costs_the_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv(CACHE_ENV, str(blocker))
    parse = CountingParse()
    assert_same(parsed_arrays("model", SHA, parse), CountingParse()())
    parsed_arrays("model", SHA, parse)
    assert parse.calls == 2


def test_an_empty_setting_turns_the_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() is None
    parse = CountingParse()
    parsed_arrays("model", SHA, parse)
    parsed_arrays("model", SHA, parse)
    assert parse.calls == 2
    assert not any(tmp_path.iterdir())


def test_the_folder_follows_xdg_when_fervid_s_variable_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "fervid"


def test_the_shape_predictor_from_the_cache_equals_the_parsed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The packaged 68-point model: loaded with no cache, then twice through an empty one (parse, then read)."""
    from fervid.models.shape_predictor_weights import load_shape_predictor

    monkeypatch.setenv(CACHE_ENV, "")
    parsed_loaded = load_shape_predictor()
    parsed = parsed_loaded.model
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    load_shape_predictor()
    assert len(list((tmp_path / "shape_predictor").glob("*.npz"))) == 1
    cached_loaded = load_shape_predictor()
    cached = cached_loaded.model
    for name in ("mean_shape", "anchors", "deltas", "splits", "thresholds", "leaves"):
        a, b = getattr(parsed, name), getattr(cached, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert cached_loaded.info == parsed_loaded.info
