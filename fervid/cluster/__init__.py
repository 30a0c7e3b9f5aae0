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
* :mod:`fervid.cluster.view`: the driver's one progress view.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from fervid.batch import ExecutorError

if TYPE_CHECKING:
    from fervid.cluster.executor import RayExecutor

__all__ = ["RAY_MISSING", "ClusterError", "RayExecutor", "require_ray"]

#: What a user without Ray is told (plain text: the CLI escapes it for Rich).
RAY_MISSING = "--ray needs Ray, an optional extra: pip install 'fervid[ray]'"


class ClusterError(ExecutorError):
    """The cluster run cannot start: no cluster to join, no workers, models or output folder unusable there."""


def require_ray() -> ModuleType:
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    return ray


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":  # imported on first use: the module needs Ray
        from fervid.cluster.executor import RayExecutor

        return RayExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
