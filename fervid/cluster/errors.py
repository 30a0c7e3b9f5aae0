"""What the cluster modules raise and need first: :class:`ClusterError` and :func:`require_ray`.

A module of its own so that :mod:`fervid.cluster.executor` and :mod:`fervid.cluster.pool` import them without
importing the package ``fervid.cluster``, which offers ``RayExecutor`` from the executor module.
"""

from __future__ import annotations

from types import ModuleType

from fervid.batch import ExecutorError

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
