"""What a trained model gets wrong, like fastai's ``ClassificationInterpretation``.

:class:`Interpretation` runs a run's best network once over the validation split and keeps the
probabilities. From them: accuracy, a per-class precision / recall / F1 table (scikit-learn's
``precision_recall_fscore_support``, laid out as ``classification_report(output_dict=True)``),
the confusion matrix and its figure, the most confused class pairs, the validation samples with
the highest loss (a grid of their thumbnail tiles, given vs predicted) and :meth:`to_review`,
which hands those samples to the review queue in the shape of a
:class:`~workbench.quality.label_errors.LabelIssueReport` (train -> review -> retrain).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench._validation import check_int, check_positive_int

if TYPE_CHECKING:
    from workbench.quality.label_errors import LabelIssueReport
    from workbench.train.data import TrainingData
    from workbench.train.runs import Run

__all__ = ["Interpretation"]


class Interpretation:
    """Predictions of a network on the validation split and what follows from them.

    Attributes
    ----------
    ids : list of str
        Validation sample ids, in ``data.val`` order.
    classes : list of str
    targets, preds : numpy.ndarray
        Given and predicted class indices.
    probs : numpy.ndarray
        ``(n, len(classes))`` softmax probabilities.
    losses : numpy.ndarray
        Per-sample cross-entropy (no label smoothing): ``-log p(given)``.
    """

    def __init__(
        self, ids: list[str], classes: list[str], probs: np.ndarray, targets: np.ndarray,
        catalog: Any = None,
    ) -> None:  # fmt: skip
        self.ids = list(ids)
        self.classes = list(classes)
        self.probs = np.asarray(probs, dtype=np.float64)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.preds = self.probs.argmax(axis=1) if len(self.probs) else np.zeros(0, np.int64)
        given = self.probs[np.arange(len(self.targets)), self.targets]
        self.losses = -np.log(np.clip(given, 1e-12, 1.0))
        self.catalog = catalog

    def __repr__(self) -> str:
        return f"Interpretation({len(self.ids)} samples, accuracy {self.accuracy:.3f})"

    @classmethod
    def from_run(cls, run: Run, data: TrainingData, *, which: str = "best") -> Interpretation:
        """Predict ``data``'s validation split with the run's ``"best"`` (or ``"last"``)
        weights."""
        import torch

        from workbench.train.config import TrainError

        if list(run.classes) != list(data.classes):
            raise TrainError(
                f"run {run.id} was trained on the classes {run.classes}, the data has "
                f"{data.classes}; interpret it on the data it was trained on"
            )
        net = run.model(which)
        probs, targets = [], []
        with torch.inference_mode():
            for x, y in data.loader("val"):
                probs.append(torch.softmax(net(x), dim=1))
                targets.append(y)
        return cls(data.val_ids, data.classes, torch.cat(probs).numpy(),
                   torch.cat(targets).numpy(), catalog=data.catalog)  # fmt: skip

    # ------------------------------------------------------------------ metrics
    @property
    def accuracy(self) -> float:
        return float((self.preds == self.targets).mean()) if len(self.targets) else float("nan")

    def report(self) -> pd.DataFrame:
        """Per class: ``precision, recall, f1-score, support``; then ``macro avg`` and
        ``weighted avg`` rows, as scikit-learn's ``classification_report`` computes them."""
        from sklearn.metrics import precision_recall_fscore_support

        labels = list(range(len(self.classes)))
        rows = {}
        p, r, f, s = precision_recall_fscore_support(
            self.targets, self.preds, labels=labels, zero_division=0
        )
        for k, c in enumerate(self.classes):
            rows[c] = (p[k], r[k], f[k], s[k])
        for avg in ("macro", "weighted"):
            p, r, f, _ = precision_recall_fscore_support(
                self.targets, self.preds, labels=labels, average=avg, zero_division=0
            )
            rows[f"{avg} avg"] = (p, r, f, len(self.targets))
        out = pd.DataFrame.from_dict(
            rows, orient="index", columns=["precision", "recall", "f1-score", "support"]
        )
        return out.astype({"support": int})

    def confusion(self) -> pd.DataFrame:
        """Counts: rows the given class, columns the predicted one."""
        from sklearn.metrics import confusion_matrix

        m = confusion_matrix(self.targets, self.preds, labels=list(range(len(self.classes))))
        return pd.DataFrame(
            m,
            index=pd.Index(self.classes, name="actual"),
            columns=pd.Index(self.classes, name="predicted"),
        )

    def plot_confusion(self, ax: Any = None) -> Any:
        """The confusion matrix as a heatmap; returns the axes."""
        from workbench.plots import plot_confusion_matrix

        title = f"Confusion matrix (accuracy {self.accuracy:.3f})"
        return plot_confusion_matrix(self.confusion(), ax=ax, title=title)

    def most_confused(self, min_count: int = 1) -> pd.DataFrame:
        """Off-diagonal cells with at least ``min_count`` samples, most first: ``actual,
        predicted, count``."""
        min_count = check_int(min_count, "min_count", low=1)
        m = self.confusion()
        rows = [(a, p, int(m.loc[a, p])) for a in m.index for p in m.columns
                if a != p and m.loc[a, p] >= min_count]  # fmt: skip
        rows.sort(key=lambda r: (-r[2], r[0], r[1]))
        return pd.DataFrame(rows, columns=["actual", "predicted", "count"])

    # ------------------------------------------------------------------ samples
    def top_losses(self, k: int | None = 9) -> pd.DataFrame:
        """The ``k`` validation samples with the highest loss (``None``: all), highest first:
        ``id, given, predicted, loss, probability`` (of the prediction), ``given_probability``."""
        order = np.argsort(-self.losses, kind="stable")
        if k is not None:
            order = order[: check_positive_int(k, "k")]
        rows = np.arange(len(self.ids))[order]
        return pd.DataFrame({
            "id": [self.ids[i] for i in rows],
            "given": [self.classes[self.targets[i]] for i in rows],
            "predicted": [self.classes[self.preds[i]] for i in rows],
            "loss": self.losses[rows],
            "probability": self.probs[rows, self.preds[rows]],
            "given_probability": self.probs[rows, self.targets[rows]],
        })  # fmt: skip

    def plot_top_losses(self, k: int = 9, *, ncols: int = 3, size: int = 96) -> Any:
        """A grid of the ``k`` highest-loss samples' thumbnail tiles, captioned
        ``given / predicted`` and ``loss / probability`` (red where the prediction is wrong);
        returns the figure."""
        from workbench.plots import plot_top_losses

        if self.catalog is None:
            from workbench.errors import ParameterError

            raise ParameterError("plot_top_losses needs the catalog: use from_run(run, data)")
        t = self.top_losses(k)
        tiles = [self.catalog.thumbnail(i, size) for i in t["id"]]
        cols = zip(t["given"], t["predicted"], t["loss"], t["probability"], strict=True)
        titles = [f"{g} / {p}\n{loss:.2f} / {pr:.2f}" for g, p, loss, pr in cols]
        return plot_top_losses(tiles, titles, (t["given"] != t["predicted"]).tolist(), ncols=ncols)

    def to_review(self, k: int = 20) -> LabelIssueReport:
        """The ``k`` highest-loss validation samples as a label-issue report for the review
        queue: ``ReviewQueue(catalog, store, reviewer=..., report=interp.to_review(k))``.

        Every validation sample is a row (``score = 1 - p(given)``, ``suggested`` the
        prediction, ``confidence`` its probability); the ``k`` highest losses are ``flagged``
        (what the queue shows, most severe first).
        """
        from workbench.quality.label_errors import ISSUE, TABLE_COLUMNS, LabelIssueReport

        k = check_positive_int(k, "k")
        n = len(self.ids)
        order = np.argsort(-self.losses, kind="stable")
        flagged = np.zeros(n, dtype=bool)
        flagged[order[:k]] = True
        given_p = self.probs[np.arange(n), self.targets]
        score = np.clip(1.0 - given_p, 0.0, 1.0)
        table = pd.DataFrame({
            "id": self.ids, "issue": pd.Categorical([ISSUE] * n, categories=[ISSUE]),
            "score": score, "flagged": flagged, "group": None, "keeper": False,
            "given": [self.classes[t] for t in self.targets],
            "suggested": [self.classes[p] for p in self.preds],
            "confidence": self.probs[np.arange(n), self.preds], "found": flagged.copy(),
        })[TABLE_COLUMNS]  # fmt: skip
        hashes = None
        if self.catalog is not None:
            h = self.catalog.df.set_index("id")["hash"]
            hashes = h.reindex(self.ids).tolist()
        return LabelIssueReport(
            table=table,
            pairs=pd.DataFrame({"a": [], "b": [], "distance": []}),
            thresholds={ISSUE: float(score[flagged].min()) if flagged.any() else 1.0},
            samples=pd.DataFrame({"id": self.ids, "hash": hashes, "area": np.nan}),
            probs=self.probs.copy(),
            classes=np.asarray(self.classes, dtype=object),
            ranked=[self.ids[i] for i in order[:k]],
            filter_by="top_losses",
            rank_by="loss",
        )
