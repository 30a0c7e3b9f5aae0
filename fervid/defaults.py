"""Defaults that stages read without importing :mod:`fervid.options`.

:mod:`fervid.options` builds the stages (the classifier, the smoother) and checks its values with their code, so a
stage that took a default from there would import it back: a cycle. These few values live here, in a module that
imports nothing, and the option fields take their defaults from here, so each is still written once.
"""

from __future__ import annotations

#: The expression model ``fervid annotate`` runs (``--model``): a name from ``fervid models``.
MODEL = "ferplus-rule"
#: ``--min-p-correct``: conclusions rest on readable faces whose ``p_correct`` reaches this (0: every face counts).
MIN_P_CORRECT = 0.5
