"""Classification metrics for ``fervid evaluate``: accuracy, macro-F1, per-class scores, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class Evaluation:
    classes: tuple[str, ...]
    confusion: np.ndarray  # (K, K) counts, rows = true class, columns = predicted

    @classmethod
    def from_labels(cls, true: np.ndarray, pred: np.ndarray, classes: tuple[str, ...]) -> Evaluation:
        k = len(classes)
        confusion = np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
        return cls(classes, confusion)

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(self.n, 1))

    def per_class(self) -> pd.DataFrame:
        tp = np.diag(self.confusion).astype(float)
        support = self.confusion.sum(axis=1)
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
            "per_class": self.per_class().to_dict(orient="records"),
            "confusion": self.confusion.tolist(),
        }

    def confusion_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.confusion, index=pd.Index(self.classes, name="true"), columns=list(self.classes))

    def save_confusion_png(self, path: Path, title: str) -> None:
        """Row-normalised heat map with counts, readable in a model card."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.confusion.sum(axis=1, keepdims=True)
        norm = np.divide(self.confusion, rows, out=np.zeros(self.confusion.shape), where=rows > 0)
        k = len(self.classes)
        fig, ax = plt.subplots(figsize=(1.0 + 0.8 * k, 0.8 + 0.7 * k), dpi=110)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                colour = "white" if norm[i, j] > 0.6 else "black"
                ax.text(j, i, f"{norm[i, j]:.2f}\n{self.confusion[i, j]}", ha="center", va="center",
                        fontsize=7, color=colour)  # fmt: skip
        ax.set_xticks(range(k), self.classes, rotation=45, ha="right")
        ax.set_yticks(range(k), self.classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
