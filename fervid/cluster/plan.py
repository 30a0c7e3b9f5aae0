"""How many workers go on which node, with what share of it: a pure function of Ray's node list.

* GPU workers (``--device cuda``, or ``auto`` when the cluster has a GPU): each GPU node gets
  ``GPUs / gpus_per_worker`` workers (1.0: one per GPU; 0.5: two share each GPU), and its CPUs
  are split evenly between them (they decode and encode the video). Nodes without a GPU get none:
  a CPU worker is many times slower and would hold up the end of the run.
* CPU workers (``--device cpu``, or a cluster without GPUs): each node gets ``CPUs // cpus_per_worker``
  workers (at least one), its CPUs split evenly; each sets torch's threads from its share.

Never more workers than inputs; they are dealt round-robin over the nodes, so a short run
still spreads out. Ray's resource amounts above 1 must be whole numbers, so shares are rounded down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any


@dataclass(frozen=True)
class Slot:
    """One worker to start: the node it goes to and the share of that node it reserves."""

    node_id: str
    node_ip: str
    gpus: float
    cpus: float

    @property
    def cores(self) -> int:
        """CPU cores its torch threads are planned for (at least one)."""
        return max(1, int(self.cpus))


def check_shares(gpus_per_worker: float, cpus_per_worker: int) -> None:
    """ValueError unless the worker sizes are ones Ray can reserve."""
    if not (0 < gpus_per_worker <= 1 or float(gpus_per_worker).is_integer() and gpus_per_worker > 0):
        raise ValueError(f"--ray-gpus-per-worker must be in (0, 1] or a whole number, got {gpus_per_worker}")
    if cpus_per_worker < 1:
        raise ValueError(f"--ray-cpus-per-worker must be >= 1, got {cpus_per_worker}")


def wants_gpus(device: str, nodes: Sequence[Mapping[str, Any]]) -> bool:
    """GPU workers or CPU workers, from ``--device`` and what the cluster has (ValueError: cuda without GPUs)."""
    has_gpu = any(_amount(n, "GPU") > 0 for n in _alive(nodes))
    if device.startswith("cuda") and not has_gpu:
        raise ValueError(f"--device {device} was asked for, but the Ray cluster has no GPUs")
    return device != "cpu" and has_gpu


def plan_workers(
    nodes: Sequence[Mapping[str, Any]], gpu: bool, gpus_per_worker: float = 1.0, cpus_per_worker: int = 4,
    limit: int | None = None,
) -> list[Slot]:  # fmt: skip
    """The workers to start on the alive nodes of ``ray.nodes()``, at most ``limit``, spread over the nodes."""
    per_node = [_node_slots(node, gpu, gpus_per_worker, cpus_per_worker) for node in _alive(nodes)]
    dealt = [slot for row in zip_longest(*per_node) for slot in row if slot is not None]
    return dealt if limit is None else dealt[:limit]


def _node_slots(node: Mapping[str, Any], gpu: bool, gpus_per_worker: float, cpus_per_worker: int) -> list[Slot]:
    cpus, gpus = _amount(node, "CPU"), _amount(node, "GPU")
    if gpu:
        count = math.floor(gpus / gpus_per_worker + 1e-9)
        share = 0.0 if count == 0 else _share(cpus, count)
        return [Slot(node["NodeID"], node.get("NodeManagerAddress", "?"), gpus_per_worker, share)] * count
    if cpus < 1:
        return []
    count = max(1, int(cpus) // cpus_per_worker)
    return [Slot(node["NodeID"], node.get("NodeManagerAddress", "?"), 0.0, _share(cpus, count))] * count


def _share(cpus: float, count: int) -> float:
    """``cpus / count`` as Ray can reserve it: a whole number, or a fraction below one."""
    each = cpus / count
    return float(math.floor(each)) if each >= 1 else math.floor(each * 1000) / 1000


def _alive(nodes: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [n for n in nodes if n.get("Alive", n.get("alive", False))]


def _amount(node: Mapping[str, Any], resource: str) -> float:
    return float(node.get("Resources", {}).get(resource, 0.0))
