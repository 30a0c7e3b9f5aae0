"""The same work at two fervid versions, for "is the new code slower?" checks across a refactor.

Run once per version, alternating (old, new, old, new), each in its own process so each imports
its own fervid; each process warms up, then times two rounds of timeline only (tables) and full
annotate (tables + annotated H.264 video), and prints one JSON line: wall and process CPU seconds
per run. ``--old`` runs with the API of commits before the architecture refactor (no identity or
report options); without it, identity and the report are switched off so both sides do the same
work. Example (the old commit checked out in a worktree)::

    git worktree add /tmp/old 7833738
    PYTHONPATH=/tmp/old python benchmarks/compare_commits.py VIDEO --old --end 6
    python benchmarks/compare_commits.py VIDEO --end 6
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import fervid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--end", type=float, default=6.0, help="seconds of the video to process")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--old", action="store_true", help="a version without the identity/report options")
    args = parser.parse_args(argv)
    same_work = {} if args.old else {"identity": False, "report": False}
    fervid.annotate(args.video, None, end=1.0, plots=False, video=False, **same_work)  # warm-up: models, threads
    runs: dict[str, list[dict[str, float]]] = {"timeline": [], "full": []}
    for _ in range(args.rounds):
        for work, video in (("timeline", False), ("full", True)):
            with tempfile.TemporaryDirectory() as out:
                wall, cpu = time.perf_counter(), time.process_time()
                result = fervid.annotate(args.video, out, end=args.end, plots=False, video=video, **same_work)
                runs[work].append({"frames": result.frames, "wall_s": round(time.perf_counter() - wall, 2),
                                   "cpu_s": round(time.process_time() - cpu, 2)})  # fmt: skip
    print(json.dumps({"fervid": fervid.__file__, **runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
