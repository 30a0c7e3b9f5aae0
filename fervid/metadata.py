"""``<stem>.run.json``: how an input was processed, written last so its presence means "complete".

The record holds what a researcher needs to reproduce or cite a run (versions, device,
model files and their sha256, every option, facts about the input, counts and wall time)
and the list of outputs it wrote. It is written atomically after every other output of
the input, and removed when a run of the same stem starts, so:

* :func:`is_complete` is the one test for "this input is done" (resume-on-rerun builds on it);
* a crash, Ctrl-C or error mid-run never leaves a run.json next to half-written outputs.

Example::

    from fervid.metadata import is_complete, read_run
    if is_complete("fervid-out/clip", "clip"):
        print(read_run("fervid-out/clip", "clip")["wall_time_s"])
"""

from __future__ import annotations

import contextlib
import json
import platform
import sys
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fervid.io.atomic import atomic_path

FORMAT = "fervid-run/1"
SUFFIX = ".run.json"


def run_path(outdir: str | Path, stem: str) -> Path:
    return Path(outdir) / f"{stem}{SUFFIX}"


def read_run(outdir: str | Path, stem: str) -> dict[str, Any] | None:
    """The run record, or None when it is missing, unreadable or not a fervid run record."""
    try:
        record = json.loads(run_path(outdir, stem).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    return record


def is_complete(outdir: str | Path, stem: str) -> bool:
    """True when ``outdir/<stem>.run.json`` is a valid record and every output it lists still exists.

    Cheap (no hashing): one JSON read and a ``stat`` per output.
    """
    record = read_run(outdir, stem)
    if record is None or record.get("stem") != stem:
        return False
    outdir = Path(outdir)
    return all((outdir / name).exists() for name in record.get("outputs", []))


def run_records(outdir: str | Path) -> list[tuple[Path, str]]:
    """(folder, stem) of every run record in ``outdir`` or one level below (a ``fervid annotate -o`` folder)."""
    outdir = Path(outdir)
    found = sorted([*outdir.glob(f"*{SUFFIX}"), *outdir.glob(f"*/*{SUFFIX}")])
    return [(path.parent, path.name[: -len(SUFFIX)]) for path in found]


def invalidate(outdir: str | Path, stem: str) -> None:
    """Remove a previous run's record before its outputs get overwritten (the input is no longer complete)."""
    with contextlib.suppress(FileNotFoundError):
        run_path(outdir, stem).unlink()


def write_run(outdir: str | Path, stem: str, record: dict[str, Any]) -> Path:
    """Write the record atomically (temp name, then rename); call it after every other output."""
    path = run_path(outdir, stem)
    body = {"format": FORMAT, "stem": stem, **record}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(body, indent=2, default=_jsonable) + "\n")
    return path


def environment(device: Any) -> dict[str, Any]:
    """Versions of fervid, Python and the libraries that shape the numbers, plus the device used."""
    import av
    import numpy
    import pandas
    import torch

    from fervid.version import __version__

    device_name = platform.processor() or platform.machine()
    if getattr(device, "type", str(device)) == "cuda":
        with contextlib.suppress(Exception):
            device_name = torch.cuda.get_device_name(device)
    return {
        "fervid": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyav": av.__version__,
        "ffmpeg": _ffmpeg_version(av),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name,
        "torch_threads": torch.get_num_threads(),
        "argv": list(sys.argv),
    }


def input_facts(source: Path, info: Any = None) -> dict[str, Any]:
    """Path, size in bytes and what probing says (duration, fps, resolution, frames, codecs); for an image
    folder, its pictures' sizes (:func:`picture_sizes`).

    ``info`` is the input's :class:`~fervid.io.media_info.MediaInfo` when the caller has it (the
    run loop does), so the file is not probed again.
    """
    from fervid.io.errors import InputError
    from fervid.io.probe import probe

    source = Path(source)
    files = [p for p in source.iterdir() if p.is_file()] if source.is_dir() else [source]
    size = sum(p.stat().st_size for p in files)
    facts: dict[str, Any] = {"path": str(source.resolve()), "size_bytes": size}
    if info is None:
        try:
            info = probe(source)
        except (InputError, OSError, ValueError) as exc:
            facts["probe_error"] = str(exc)
            return facts
    facts.update(
        kind=info.kind, duration_s=info.duration_s, fps=info.fps, width=info.width, height=info.height,
        frame_count=info.frame_count, video_codec=info.video_codec, has_audio=info.has_audio,
        audio_codec=info.audio_codec, rotation=info.rotation,
    )  # fmt: skip
    if info.kind == "image_folder":
        facts.update(picture_sizes(source))
    return facts


def picture_sizes(folder: Path) -> dict[str, Any]:
    """The picture sizes of a folder's images: how many sizes, the smallest and the largest (by pixels).

    Photos in a folder rarely share one size, so ``width``/``height`` are given only when they
    all do (else None: one photo's size would be wrong for the others). Header reads only.
    """
    from fervid.io.errors import InputError
    from fervid.io.images import image_size, list_images

    sizes = []
    for path in list_images(folder, on_skip=lambda skipped, reason: None):  # the run reported skipped files
        with contextlib.suppress(InputError, OSError):
            sizes.append(image_size(path))
    if not sizes:
        return {}
    distinct = sorted(set(sizes), key=lambda wh: (wh[0] * wh[1], wh))
    facts = {"sizes": len(distinct), "smallest": list(distinct[0]), "largest": list(distinct[-1])}
    return {"picture_sizes": facts, **({"width": None, "height": None} if len(distinct) > 1 else {})}


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _ffmpeg_version(av: Any) -> str | None:
    with contextlib.suppress(Exception):
        return str(av.ffmpeg_version_info)
    return None


def _jsonable(value: Any) -> Any:
    """JSON fallback for paths, tuples inside dataclasses, numpy scalars and the like."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)
