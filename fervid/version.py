"""fervid's version, in a module that imports nothing.

Modules that record the version (run.json, the cluster's version check) import it from here rather than from the
package ``fervid``, whose ``__init__`` loads :mod:`fervid.api` on first use, so they never depend on the API they
are part of. The packaging reads it from here too (pyproject.toml).
"""

__version__ = "0.1.0"
