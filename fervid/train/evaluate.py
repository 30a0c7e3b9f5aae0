"""Classification metrics for ``fervid evaluate``: accuracy, macro-F1, per-class scores, confusion matrix, ECE.

A lab's own data often has only some of the model's classes (CK+ has no neutral, FER2013
no contempt). The model still chooses among all of its classes, as it does in annotate,
so a face it calls "contempt" in data without contempt counts as an error; scores are
given for the classes the data has, and ``missing_classes`` says which model classes the
data lacks. A data class the model does not know cannot be scored at all: see
:func:`check_classes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fervid.train.calibrate import ECE_BINS, expected_calibration_error
from fervid.train.data import ExpressionData


class ClassMismatchError(ValueError):
    """The data has a class the model cannot predict."""


def check_classes(data_classes: tuple[str, ...], model_classes: tuple[str, ...], where: str) -> None:
    """Raise a one-line ClassMismatchError when the data has classes outside the model's."""
    unknown = [c for c in data_classes if c not in model_classes]
    if unknown:
        raise ClassMismatchError(
            f"{where}: the data has class(es) {', '.join(unknown)} that the model does not know "
            f"(model classes: {', '.join(model_classes)})"
        )


@dataclass
class Evaluation:
    classes: tuple[str, ...]  # the model's classes (columns of the confusion matrix)
    confusion: np.ndarray  # (D, K) counts: rows = the data's classes, columns = predicted model classes
    data_classes: tuple[str, ...] = ()  # empty: the same as ``classes``
    ece: float | None = None  # expected calibration error (15 bins) when probabilities were given

    def __post_init__(self) -> None:
        if not self.data_classes:
            self.data_classes = self.classes

    @classmethod
    def from_labels(
        cls, true: np.ndarray, pred: np.ndarray, classes: tuple[str, ...], data_classes: tuple[str, ...] = ()
    ) -> Evaluation:
        """``true`` indexes ``data_classes`` (default: ``classes``), ``pred`` indexes the model's ``classes``."""
        data_classes = data_classes or classes
        check_classes(data_classes, classes, "evaluation")
        d, k = len(data_classes), len(classes)
        confusion = np.bincount(np.asarray(true) * k + np.asarray(pred), minlength=d * k).reshape(d, k)
        return cls(classes, confusion, tuple(data_classes))

    @classmethod
    def from_probs(
        cls, true: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], data_classes: tuple[str, ...] = ()
    ) -> Evaluation:
        """As :meth:`from_labels` with the argmax of ``probs``, plus the ECE over the faces' true classes."""
        result = cls.from_labels(true, probs.argmax(1), classes, data_classes)
        column = np.array([classes.index(c) for c in result.data_classes])
        result.ece = expected_calibration_error(probs, column[np.asarray(true)])
        return result

    @property
    def missing_classes(self) -> list[str]:
        """Model classes the data has no examples of (not scored for recall)."""
        return [c for c in self.classes if c not in self.data_classes]

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    def _true_positives(self) -> np.ndarray:
        """Correct predictions per model class (0 for a class the data lacks)."""
        tp = np.zeros(len(self.classes))
        for row, name in enumerate(self.data_classes):
            tp[self.classes.index(name)] = self.confusion[row, self.classes.index(name)]
        return tp

    @property
    def accuracy(self) -> float:
        return float(self._true_positives().sum() / max(self.n, 1))

    def per_class(self) -> pd.DataFrame:
        """Precision, recall, F1 and support per model class; a class the data lacks has support 0."""
        tp = self._true_positives()
        support = np.zeros(len(self.classes), dtype=np.int64)
        for row, name in enumerate(self.data_classes):
            support[self.classes.index(name)] = self.confusion[row].sum()
        predicted = self.confusion.sum(axis=0)
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
        return pd.DataFrame(
            {"class": self.classes, "precision": precision, "recall": recall, "f1": f1, "support": support}
        )

    @property
    def macro_f1(self) -> float:
        """Mean F1 over the classes present in the data (a class with no test images is left out)."""
        table = self.per_class()
        return float(table.loc[table["support"] > 0, "f1"].mean())

    def to_json(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "n": self.n,
            "classes": list(self.classes),
            "data_classes": list(self.data_classes),
            "missing_classes": self.missing_classes,
            **({"ece": self.ece, "ece_bins": ECE_BINS} if self.ece is not None else {}),
            "per_class": self.per_class().to_dict(orient="records"),
            "confusion": self.confusion.tolist(),
        }

    def confusion_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.confusion, index=pd.Index(self.data_classes, name="true"), columns=list(self.classes))

    def save_confusion_png(self, path: Path, title: str) -> None:
        """Row-normalised heat map with counts, readable in a model card."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.confusion.sum(axis=1, keepdims=True)
        norm = np.divide(self.confusion, rows, out=np.zeros(self.confusion.shape), where=rows > 0)
        d, k = self.confusion.shape
        fig, ax = plt.subplots(figsize=(1.0 + 0.8 * k, 0.8 + 0.7 * d), dpi=110)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(d):
            for j in range(k):
                colour = "white" if norm[i, j] > 0.6 else "black"
                ax.text(j, i, f"{norm[i, j]:.2f}\n{self.confusion[i, j]}", ha="center", va="center",
                        fontsize=7, color=colour)  # fmt: skip
        ax.set_xticks(range(k), self.classes, rotation=45, ha="right")
        ax.set_yticks(range(d), self.data_classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


def majority_protocol(data: ExpressionData, probs: np.ndarray, classes: tuple[str, ...]) -> Evaluation | None:
    """Scores on the images FER+'s own test protocol keeps (a clear majority of votes), or None without votes.

    Published FER+ figures (the FER+ paper's 85.0 %, the 87-90 % of later networks) come from
    Microsoft's reader, which scores only images whose top class has more than half of the votes
    (:func:`fervid.train.data.ferplus_majority`). Our headline FER+ figure keeps the split-vote
    images too, so this is the one to set beside a published number.
    """
    if data.majority is None:
        return None
    keep = np.asarray(data.majority, dtype=bool)
    return Evaluation.from_probs(data.labels[keep], probs[keep], classes, data.classes)
