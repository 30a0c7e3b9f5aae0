"""``fervid annotate --ray``: the same batch run, spread over a Ray cluster.

Only the ``--ray`` path imports this package; single-machine runs never import Ray. The
batch itself (discovery, stems, resume, the report) is :mod:`fervid.batch`'s; this package
only changes where ``BatchRunner.process`` runs (:class:`fervid.batch.Executor`):

* :mod:`fervid.cluster.plan`: how many workers go on which node, with what share of it;
* :mod:`fervid.cluster.worker`: the Ray actor, one Pipeline loaded once, whole inputs written
  straight into the shared output folder;
* :mod:`fervid.cluster.pool`: starting the actors, checking them (models load, output folder
  reachable, same fervid version), restarting one that dies;
* :mod:`fervid.cluster.executor`: :class:`RayExecutor`, which hands inputs to idle workers,
  retries an input once when its worker dies, and stops cleanly on Ctrl-C;
* :mod:`fervid.cluster.view`: the driver's one progress view;
* :mod:`fervid.cluster.errors`: :class:`ClusterError` and :func:`require_ray`, which the modules above import
  from there (not from this package, whose ``RayExecutor`` is the executor module: that would be a cycle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fervid.cluster.errors import RAY_MISSING, ClusterError, require_ray

if TYPE_CHECKING:
    from fervid.cluster.executor import RayExecutor

__all__ = ["RAY_MISSING", "ClusterError", "RayExecutor", "require_ray"]


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":  # imported on first use: the module needs Ray
        from fervid.cluster.executor import RayExecutor

        return RayExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
