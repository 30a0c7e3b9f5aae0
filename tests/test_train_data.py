"""Dataset readers on small real samples (built from ../shared's archives) and on broken layouts."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

from fervid.train.data import (
    FER2013_CLASSES,
    FERPLUS_CLASSES,
    DatasetLayoutError,
    ferplus_distribution,
    ferplus_majority,
    load_dataset,
    load_fer2013_csv,
    load_fer2013_folders,
    load_ferplus,
)


def _subset_zip(src: Path, dst: Path, keep: int, predicate=lambda name: True) -> list[str]:
    """Copy the first ``keep`` matching members of a real archive (plus label.csv) into a small zip."""
    names = []
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        members = [n for n in zin.namelist() if predicate(n)]
        for name in members[:keep] + [n for n in zin.namelist() if n.endswith("label.csv")]:
            zout.writestr(name, zin.read(name))
            names.append(name)
    return names


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        # neutral happy surprise sad anger disgust fear contempt unknown NF
        ([10, 0, 0, 0, 0, 0, 0, 0, 0, 0], {"neutral": 1.0}),
        ([6, 4, 0, 0, 0, 0, 0, 0, 0, 0], {"neutral": 0.6, "happy": 0.4}),
        ([8, 1, 1, 0, 0, 0, 0, 0, 0, 0], {"neutral": 1.0}),  # single votes are noise
        ([2, 0, 0, 0, 0, 0, 0, 0, 8, 0], None),  # mostly unknown: discarded
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], None),  # not a face: discarded
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], None),  # nothing left after noise removal
        ([0, 0, 0, 0, 3, 2, 0, 5, 0, 0], {"contempt": 0.5, "angry": 0.3, "disgust": 0.2}),
    ],
)
def test_ferplus_distribution(votes, expected):
    dist = ferplus_distribution(np.array(votes, dtype=np.float32))
    if expected is None:
        assert dist is None
        return
    want = np.zeros(len(FERPLUS_CLASSES))
    for cls, p in expected.items():
        want[FERPLUS_CLASSES.index(cls)] = p
    np.testing.assert_allclose(dist, want, atol=1e-6)


@pytest.mark.parametrize(
    ("votes", "kept"),
    [
        # neutral happy surprise sad anger disgust fear contempt unknown NF
        ([10, 0, 0, 0, 0, 0, 0, 0, 0, 0], True),
        ([6, 4, 0, 0, 0, 0, 0, 0, 0, 0], True),
        ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], False),  # a tie is no majority: exactly half is not more than half
        ([4, 3, 3, 0, 0, 0, 0, 0, 0, 0], False),  # split votes: the top class has 40 %
        ([5, 1, 1, 1, 1, 1, 0, 0, 0, 0], True),  # single votes are noise, so 5 of 5 remain
        ([4, 0, 0, 0, 0, 0, 0, 0, 4, 2], False),  # unknown and NF votes count against the majority
        ([2, 0, 0, 0, 0, 0, 0, 0, 8, 0], False),  # the majority is unknown: not an emotion
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], False),  # nothing left after noise removal
    ],
)
def test_ferplus_majority_is_the_ferplus_test_protocol(votes, kept):
    assert ferplus_majority(np.array(votes, dtype=np.float32)) is kept


def test_fer2013_folders_from_real_zip(tmp_path):
    src = shared_path("data/fer2013/test.zip")
    small = tmp_path / "test.zip"
    _subset_zip(src, small, 40, lambda n: "/happy/" in n or "/disgust/" in n)
    data = load_fer2013_folders(small)
    assert data.images.shape[1:] == (48, 48) and data.images.dtype == np.uint8
    assert data.classes == FER2013_CLASSES
    assert set(data.labels) <= {FER2013_CLASSES.index("happy"), FER2013_CLASSES.index("disgust")}
    np.testing.assert_allclose(data.targets.sum(1), 1.0)
    # the same data unpacked in a directory reads the same
    with zipfile.ZipFile(small) as z:
        z.extractall(tmp_path / "unpacked")
    again = load_dataset(tmp_path / "unpacked")
    np.testing.assert_array_equal(np.sort(again.labels), np.sort(data.labels))


def test_ferplus_from_real_zip(tmp_path):
    src = shared_path("data/ferplus/FER2013Test.zip")
    small = tmp_path / "FER2013Test.zip"
    _subset_zip(src, small, 30, lambda n: n.endswith(".png"))
    data = load_ferplus(small)
    assert 0 < len(data) <= 30  # only the images present (and not discarded) are kept
    assert data.classes == FERPLUS_CLASSES
    np.testing.assert_allclose(data.targets.sum(1), 1.0, atol=1e-6)
    assert load_dataset(small).names == data.names  # auto-detected as FER+
    assert data.majority is not None and data.majority.dtype == bool and len(data.majority) == len(data)


def test_ferplus_test_split_has_the_published_protocol_size():
    """FER+'s majority protocol keeps 3,137 test faces: the count papers report beside their accuracy."""
    data = load_ferplus(shared_path("data/ferplus/FER2013Test.zip"))
    assert len(data) == 3545 and int(data.majority.sum()) == 3137
    assert load_dataset(shared_path("data/fer2013/test.zip")).majority is None  # hard labels: every image counts


def test_fer2013_csv(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "fer2013.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["emotion", "pixels", "Usage"])
        for i, usage in enumerate(["Training", "Training", "PublicTest", "PrivateTest"]):
            writer.writerow([i % 7, " ".join(map(str, rng.integers(0, 256, 2304))), usage])
    assert len(load_fer2013_csv(path, "train")) == 2
    assert len(load_dataset(path, "val")) == 1
    assert load_fer2013_csv(path, "test").labels.tolist() == [3]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "expected FER2013 folders"),
        (lambda p: (p.mkdir(), (p / "label.csv").write_text("a,b\n"), (p / "x" / "label.csv").parent.mkdir(),
                    (p / "x" / "label.csv").write_text("a\n")), "found 2 label.csv"),
        (lambda p: p.write_text("not a zip"), "expected a directory or a .zip"),
    ],
)  # fmt: skip
def test_wrong_layouts_name_what_was_expected(tmp_path, make, message):
    path = tmp_path / "data"
    make(path)
    with pytest.raises(DatasetLayoutError, match=message):
        load_dataset(path)


def test_csv_with_wrong_columns(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetLayoutError, match="expected fer2013.csv columns"):
        load_dataset(path)


def test_missing_path():
    with pytest.raises(DatasetLayoutError, match="no such file"):
        load_dataset("/nonexistent/train.zip")


def test_non_48px_images_are_resized(tmp_path):
    folder = tmp_path / "train" / "happy"
    folder.mkdir(parents=True)
    buf = io.BytesIO()
    Image.fromarray(np.full((96, 96, 3), 200, np.uint8)).save(buf, "PNG")
    (folder / "a.png").write_bytes(buf.getvalue())
    data = load_fer2013_folders(tmp_path / "train")
    assert data.images.shape == (1, 48, 48)
