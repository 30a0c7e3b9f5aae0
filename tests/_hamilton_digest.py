"""Hamilton's tables as sha256 digests: proof that a refactor left every number of a real run as it was.

``fervid annotate`` with its default options (on the CPU, so a GPU's arithmetic does not enter) writes the Hamilton
clip's tables; each CSV table the run lists in its run.json (faces, summary, persons, blinks, moments, codebook...)
is hashed. run.json, the video, the pictures, the ELAN file and the report are not: they hold times, paths or
encoder output. The stored digests are in ``tests/data/hamilton_digest.json``; ``tests/test_hamilton_digest.py``
compares a fresh run with them and ``scripts/hamilton_digest.py`` writes them again after an intended change.

This is a helper, not a test: the test and the script call it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

CLIP = "media/face_recognition/short_hamilton_clip.mp4"  # under ../shared
DIGEST_FILE = Path(__file__).resolve().parent / "data" / "hamilton_digest.json"
#: annotate's options besides its defaults: the CPU, so the digests do not depend on which accelerator is there.
OPTIONS: dict[str, Any] = {"device": "cpu"}
REGENERATE = "python scripts/hamilton_digest.py"


def annotate(clip: Path, out: Path) -> Path:
    """Run ``fervid.annotate`` on ``clip`` into ``out`` with :data:`OPTIONS`; the input's folder (``out/<stem>``)."""
    import fervid

    fervid.annotate(clip, out, **OPTIONS)
    return out / clip.stem


def table_digests(folder: Path) -> dict[str, str]:
    """sha256 of each CSV table the run in ``folder`` lists, by its name without the stem (``faces.csv``)."""
    (record,) = folder.glob("*.run.json")
    stem = record.name.removesuffix(".run.json")
    names = [n for n in json.loads(record.read_text())["outputs"] if n.endswith(".csv") and "/" not in n]
    return {n.removeprefix(f"{stem}."): hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in sorted(names)}


def environment(folder: Path) -> dict[str, str]:
    """What the digests depend on besides fervid's code: the versions run.json records (torch, numpy...), OpenCV's
    (head pose) and the vector instructions torch's CPU kernels use (``AVX2``, ``AVX512``...): kernels for another
    instruction set sum in another order, which can move a sixth significant digit of a table."""
    import cv2
    import torch

    (record,) = folder.glob("*.run.json")
    env = json.loads(record.read_text())["environment"]
    found = {k: str(env[k]) for k in ("torch", "numpy", "pandas", "pyav", "ffmpeg", "device") if k in env}
    return {**found, "opencv": str(cv2.__version__), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def record(folder: Path, commit: str) -> dict[str, Any]:
    """What ``tests/data/hamilton_digest.json`` holds for the run in ``folder``, made by ``commit``."""
    return {
        "clip": CLIP,
        "options": OPTIONS,
        "commit": commit,
        "environment": environment(folder),
        "regenerate": REGENERATE,
        "tables": table_digests(folder),
    }


def differences(stored: dict[str, str], found: dict[str, str]) -> list[str]:
    """The tables that changed, appeared or disappeared, one readable phrase each (empty: byte-identical)."""
    changed = [f"{n} changed" for n in sorted(stored) if n in found and found[n] != stored[n]]
    gone = [f"{n} no longer written" for n in sorted(stored) if n not in found]
    new = [f"{n} new" for n in sorted(found) if n not in stored]
    return changed + gone + new
