"""The ``--ray`` pieces that need no Ray: worker planning, the progress summary, the CLI without Ray installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fervid.cli import app
from fervid.cluster.plan import Slot, check_shares, plan_workers, wants_gpus
from fervid.cluster.view import Counts, summary


def _node(name: str, cpus: float, gpus: float = 0, alive: bool = True) -> dict:
    resources = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    return {"NodeID": name, "NodeManagerAddress": f"10.0.0.{name[-1]}", "Alive": alive, "Resources": resources}


def _shares(slots: list[Slot]) -> list[tuple[str, float, float]]:
    return [(s.node_id, s.gpus, s.cpus) for s in slots]


@pytest.mark.parametrize(
    ("nodes", "gpu", "gpus_per_worker", "cpus_per_worker", "limit", "expected"),
    [
        ([], False, 1.0, 4, None, []),
        ([_node("n1", 2)], False, 1.0, 4, None, [("n1", 0, 2)]),  # fewer CPUs than asked: one worker with all
        ([_node("n1", 16)], False, 1.0, 4, None, [("n1", 0, 4)] * 4),
        ([_node("n1", 6)], False, 1.0, 4, None, [("n1", 0, 6)]),  # the remainder goes to the worker
        ([_node("n1", 0)], False, 1.0, 4, None, []),  # a head started with --num-cpus=0 gets none
        ([_node("n1", 16, 2)], True, 1.0, 4, None, [("n1", 1.0, 8)] * 2),  # one per GPU, CPUs split
        ([_node("n1", 16, 2)], True, 0.5, 4, None, [("n1", 0.5, 4)] * 4),  # two per GPU
        ([_node("n1", 2, 4)], True, 0.5, 4, None, [("n1", 0.5, 0.25)] * 8),  # fractions below one CPU
        ([_node("n1", 8), _node("n2", 32, 4)], True, 1.0, 4, None, [("n2", 1.0, 8)] * 4),  # CPU-only node: none
        ([_node("n1", 8), _node("n2", 8)], False, 1.0, 4, 3, [("n1", 0, 4), ("n2", 0, 4), ("n1", 0, 4)]),  # dealt
        ([_node("n1", 8, alive=False), _node("n2", 4)], False, 1.0, 4, None, [("n2", 0, 4)]),  # dead nodes skipped
    ],
)
def test_plan_workers(
    nodes: list[dict], gpu: bool, gpus_per_worker: float, cpus_per_worker: int, limit: int | None, expected: list
) -> None:
    assert _shares(plan_workers(nodes, gpu, gpus_per_worker, cpus_per_worker, limit)) == expected


def test_worker_cores_are_whole_and_at_least_one() -> None:
    assert [Slot("n", "ip", 0.5, c).cores for c in (0.25, 1.0, 7.0)] == [1, 1, 7]


@pytest.mark.parametrize(
    ("device", "gpus", "expected"),
    [("auto", 0, False), ("auto", 2, True), ("cpu", 2, False), ("cuda", 1, True), ("cuda:0", 1, True)],
)
def test_gpu_or_cpu_workers(device: str, gpus: int, expected: bool) -> None:
    assert wants_gpus(device, [_node("n1", 8, gpus)]) is expected


def test_cuda_without_gpus_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="has no GPUs"):
        wants_gpus("cuda", [_node("n1", 8)])


@pytest.mark.parametrize(("gpus", "cpus"), [(0, 4), (1.5, 4), (-1, 4), (1, 0)])
def test_worker_sizes_ray_cannot_reserve_are_refused(gpus: float, cpus: int) -> None:
    with pytest.raises(ValueError, match="--ray-"):
        check_shares(gpus, cpus)


@pytest.mark.parametrize(
    ("counts", "elapsed", "expected"),
    [
        (Counts(left=3), 0.0, ("0 done, 0 failed, 0 running, 3 left", "0.0 frames/s · ETA -:--:--")),
        (  # frames left at the cluster's speed
            Counts(done=1, running=1, left=2, frames=100, frames_left=300), 10.0,
            ("1 done, 0 failed, 1 running, 2 left", "10.0 frames/s · ETA 0:00:30"),
        ),
        (  # no frame counts known: 10 s per finished input, 3 to go
            Counts(done=2, failed=1, left=3, frames=50), 30.0,
            ("2 done, 1 failed, 0 running, 3 left", "1.7 frames/s · ETA 0:00:30"),
        ),
    ],
)  # fmt: skip
def test_progress_summary(counts: Counts, elapsed: float, expected: tuple[str, str]) -> None:
    assert summary(counts, elapsed) == expected


def test_ray_missing_is_a_one_line_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.delitem(sys.modules, "fervid.cluster.executor", raising=False)
    (tmp_path / "clip.mp4").write_bytes(b"x")
    result = CliRunner().invoke(app, ["annotate", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "out"), "--ray"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "error: --ray needs Ray, an optional extra: pip install 'fervid[ray]'"


def test_ray_options_are_explained_in_help() -> None:
    result = CliRunner().invoke(app, ["annotate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("--ray-address", "ray://HEAD:10001", "--ray-gpus-per-worker", "--ray-cpus-per-worker", "fervid[ray]"):
        assert text in result.output, text


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_an_address_that_does_not_answer_is_a_quick_usage_error(tmp_path: Path, address: str) -> None:
    """Ray itself would retry for minutes; the run says so at once."""
    pytest.importorskip("ray", reason="needs Ray: pip install 'fervid[ray]' (the test extra brings it)")
    (tmp_path / "clip.mp4").write_bytes(b"x")
    args = ["annotate", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "out"), "--ray-address", address]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert (
        result.output.strip() == f"error: cannot connect to the Ray cluster at {address}: 127.0.0.1:1 does not "
        "answer (Connection refused)"
    )
