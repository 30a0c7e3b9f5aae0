"""``scripts/draw_landmarks.py``: the 68 points of a real run, drawn where the face's parts are.

docs/behaviour.md's "Looked at" rests on pictures this script makes, so it is checked on a frontal still where
the answer is plain: the eyes' points fall in the upper half of the face's box, the mouth's below them, every
part's points on the box (within a tenth of its width), and the picture is the photo's size.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import load_script, shared_path
from PIL import Image

from fervid.io.images import read_image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "draw_landmarks.py"


def _where(picture: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """(n, 2) x, y of the pixels of exactly ``colour`` (the points' filled dots keep it)."""
    ys, xs = np.nonzero((picture == np.array(colour, np.uint8)).all(axis=-1))
    return np.stack([xs, ys], axis=1)


def test_draws_the_68_points_of_a_run_on_a_real_photo(tmp_path: Path, capsys) -> None:
    draw_landmarks = load_script("draw_landmarks")
    photo = shared_path("media/pyfeat/single_face.jpg")
    out = tmp_path / "points.png"
    assert draw_landmarks.main([str(photo), str(out)]) == 0
    printed = capsys.readouterr().out
    found = re.search(r"face 1 box \((\d+), (\d+), (\d+), (\d+)\) pose_source 68 ", printed)
    assert found and printed.count("\n") == 1, printed  # one frontal face, fitted by the 68 points
    x1, y1, x2, y2 = (int(v) for v in found.groups())
    picture = np.asarray(Image.open(out).convert("RGB"))
    assert picture.shape == read_image(photo).shape
    colours = {name: colour for name, _, _, colour in draw_landmarks.PARTS}
    eyes, mouth = _where(picture, colours["right eye"]), _where(picture, colours["outer lips"])
    jaw = _where(picture, colours["jaw"])
    margin = 0.1 * (x2 - x1)  # the jaw may pass RetinaFace's box a little (dlib's framing is wider)
    for part in (eyes, mouth, jaw):
        assert len(part) > 20
        assert ((part >= [x1 - margin, y1 - margin]) & (part <= [x2 + margin, y2 + margin])).all()  # on the face
    assert y1 < eyes[:, 1].mean() < (y1 + y2) / 2 < mouth[:, 1].mean() < y2
    left, right = eyes[eyes[:, 0] < (x1 + x2) / 2], eyes[eyes[:, 0] >= (x1 + x2) / 2]
    assert len(left) and len(right)  # two eyes, one each side of the box's middle
    assert jaw[:, 1].max() > mouth[:, 1].max()  # the chin under the mouth


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    done = subprocess.run([sys.executable, str(SCRIPT), str(bad), str(tmp_path / "out.png")], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and str(bad) in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.png").exists()
