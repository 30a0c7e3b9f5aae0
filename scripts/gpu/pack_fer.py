"""Pack the joint FER2013 + FER+ training set and both validation splits into one file a GPU machine can take.

The device machine gets only the checkout (64 MiB in all), not ``../shared``; the pack (about 30 MB,
see ``fervid.train.pack``) goes with it under ``gpu/`` (ignored by git through ``.git/info/exclude``,
named in the call's ``carry``). It holds exactly what ``fervid train --data ... --val ...`` would train
on, plus the head turns that ``--pose-balance`` needs (read from the ``--turns`` cache, or measured
into it: ~5 minutes on a CPU). Usage:

    python scripts/gpu/pack_fer.py --shared ../shared --out gpu/fer_joint.npz --turns runs/face28/fer2013.turns.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fervid.train.heads import load_training_heads
from fervid.train.pack import QUALITY, save_pack
from fervid.train.pose import cached_head_turns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("gpu/fer_joint.npz"))
    parser.add_argument("--turns", type=Path,
                        help="head-turn cache (.npz) of these faces, measured into it if it does not hold them "
                             "(default: beside --out); the GPU run's --pose-balance needs them, and the "
                             "detector that measures them does not travel")  # fmt: skip
    parser.add_argument("--quality", type=int, default=QUALITY, help="WebP quality of the faces")
    parser.add_argument("--lossless", action="store_true", help="exact pixels (about 1.8x the size)")
    args = parser.parse_args(argv)
    data = [args.shared / "data/fer2013/train.zip", args.shared / "data/ferplus/FER2013Train.zip"]
    val = [args.shared / "data/fer2013/validation.zip", args.shared / "data/ferplus/FER2013Valid.zip"]
    missing = [str(p) for p in data + val if not p.exists()]
    if missing:
        print(f"error: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    training, heads = load_training_heads(data, val, [Path("fer2013.pt"), Path("ferplus.pt")])
    training.head_turns = cached_head_turns(training.images, args.turns or args.out.with_suffix(".turns.npz"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_pack(args.out, training, [h.val for h in heads], quality=args.quality, lossless=args.lossless)
    sets = ", ".join(f"{h.labels.name} {int(h.labels.valid.sum())}" for h in heads)
    turns = "yes" if training.head_turns is not None else "no"
    vals = ", ".join(str(len(h.val)) for h in heads)
    size_mb = args.out.stat().st_size / 1e6
    print(f"{args.out}: {len(training)} training faces ({sets} labelled), validation {vals}, head turns {turns}; "
          f"{size_mb:.1f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
