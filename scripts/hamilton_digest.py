"""Write ``tests/data/hamilton_digest.json``: the sha256 of each table of a default Hamilton run.

Run it deliberately, after a change meant to alter the tables (a new column, a better model), and commit the file
with that change; ``tests/test_hamilton_digest.py`` then holds every later change to the tables' bytes. What is
hashed and why: ``tests/_hamilton_digest.py``. Usage:

    python scripts/hamilton_digest.py                 # annotate the clip (about a minute on two CPU cores)
    python scripts/hamilton_digest.py --folder DIR    # digest a run already made (OUT/short_hamilton_clip),
                                                      # by fervid.annotate(clip, OUT, device="cpu")
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _hamilton_digest import CLIP, DIGEST_FILE, annotate, differences, record  # noqa: E402 - lives with the tests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="an existing run's folder (made with the test's options)")
    parser.add_argument("--commit", help="the commit whose code made the run (default: this checkout's HEAD)")
    args = parser.parse_args()
    commit = (
        args.commit
        or subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    with tempfile.TemporaryDirectory(prefix="fervid-hamilton-digest-") as temp:
        if args.folder is not None:
            folder = args.folder
        else:
            clip = ROOT.parent / "shared" / CLIP
            if not clip.exists():
                print(f"{clip}: not found (the real media live in ../shared)", file=sys.stderr)
                return 1
            folder = annotate(clip, Path(temp))
        new = record(folder, commit)
    old = json.loads(DIGEST_FILE.read_text())["tables"] if DIGEST_FILE.exists() else {}
    DIGEST_FILE.write_text(json.dumps(new, indent=2) + "\n")
    print("\n".join(differences(old, new["tables"])) or "no table changed")
    print(f"wrote {DIGEST_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
