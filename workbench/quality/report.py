"""QualityReport: agreement, annotator confusion, class balance, per-annotator quality and
completeness of a label store, as tables and figures, saved as one self-contained HTML file.

Every figure is drawn by a function of :mod:`workbench.plots` (matplotlib is imported there,
lazily, and figures are made without pyplot). :meth:`QualityReport.save_report` writes ONE HTML
file: figures and thumbnails are embedded as PNG/JPEG ``data:`` URIs, no script, no stylesheet
or image from elsewhere, every piece of user text (sample ids, class and annotator names, notes)
HTML-escaped; the file is written atomically (:func:`workbench.fsutil.atomic_write`), by default
into the workspace's ``reports`` folder.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.errors import ParameterError
from workbench.fsutil import atomic_write
from workbench.quality import agreement
from workbench.quality._votes import Votes
from workbench.quality.completeness import (
    balance,
    class_counts,
    completeness,
    coverage_by_round,
)
from workbench.quality.consensus import METHODS, consensus
from workbench.quality.final import final_labels

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels import LabelStore
    from workbench.quality.review import ReviewSession

__all__ = ["REPORT_NAME", "QualityReport"]

#: File name of the report inside the reports folder.
REPORT_NAME = "quality.html"
_CSS = (
    "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}"
    "table{border-collapse:collapse;font-size:13px;margin:8px 0}"
    "td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f4f4f4}"
    "img.fig{max-width:100%;margin:8px 0}.thumbs{display:flex;flex-wrap:wrap;gap:12px}"
    ".thumb{width:150px;font-size:12px;word-break:break-all}.thumb img{width:150px}"
)


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _data_uri(data: bytes, fmt: str) -> str:
    return f"data:image/{fmt};base64,{base64.b64encode(data).decode('ascii')}"


def _table_html(df: pd.DataFrame, floats: str = "{:.3f}") -> str:
    """A DataFrame as an HTML table, every cell escaped (pandas' to_html escapes too; this keeps
    the rule in one visible place)."""
    head = "".join(f"<th>{_esc(c)}</th>" for c in df.columns)

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else floats.format(v)
        return _esc(v)

    body = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


class QualityReport:
    """The quality figures of one label store.

    Parameters
    ----------
    store
        The :class:`~workbench.labels.LabelStore`.
    catalog
        The samples (default: the store's catalog): completeness needs it, thumbnails of the
        items to review come from it.
    gold
        Known answers, sample id → class: per-annotator accuracy against gold.
    method
        Consensus method for per-annotator accuracy against consensus (see
        :data:`~workbench.quality.consensus.METHODS`).
    task
        The store's task.
    title
        Heading of the HTML report.

    Attributes
    ----------
    votes : Votes
        The annotators' votes (consensus annotators left out).
    """

    def __init__(
        self,
        store: LabelStore,
        catalog: Catalog | None = None,
        *,
        gold: Mapping[str, Any] | pd.Series | None = None,
        method: str = "majority",
        task: str = "class",
        title: str = "Label quality report",
    ) -> None:
        if not all(hasattr(store, m) for m in ("current", "history", "classes")):
            raise ParameterError(f"store must be a LabelStore, got {type(store).__name__}")
        if method not in METHODS or method == "crowdlab":
            raise ParameterError(
                f"method must be one of {[m for m in METHODS if m != 'crowdlab']}, got {method!r}"
            )
        if gold is not None and not isinstance(gold, (Mapping, pd.Series)):
            raise ParameterError("gold must map sample ids to their known class")
        self.store = store
        self.catalog = catalog if catalog is not None else getattr(store, "catalog", None)
        self.gold = None if gold is None else {str(k): v for k, v in dict(gold).items()}
        self.method = method
        self.task = task
        self.title = str(title)
        self.votes = Votes.from_store(store, task=task)

    # ------------------------------------------------------------------ tables
    @cached_property
    def pairwise(self) -> pd.DataFrame:
        """Pairwise agreement (:func:`~workbench.quality.agreement.pairwise`)."""
        return agreement.pairwise(self.votes)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """Percent agreement, Krippendorff's alpha, Fleiss' kappa."""
        return agreement.summary(self.votes)

    @cached_property
    def consensus(self) -> pd.DataFrame:
        """The consensus table computed with ``method``."""
        return consensus(self.votes, self.method)

    @cached_property
    def quality(self) -> pd.DataFrame:
        """Per annotator: ``annotator, labels, accuracy_gold, accuracy_consensus`` (NaN where
        there is nothing to compare; against consensus the annotator's own vote counts, so the
        figure is optimistic with few annotators per item)."""
        out = pd.DataFrame(
            {"annotator": self.votes.annotators, "labels": self.votes.votes_per_annotator()}
        )
        if self.gold:
            out["accuracy_gold"] = agreement.accuracy(self.votes, self.gold)["accuracy"].to_numpy()
        out["accuracy_consensus"] = agreement.accuracy(self.votes, self.consensus)[
            "accuracy"
        ].to_numpy()
        return out

    def confusion(self, a: Any = None, b: Any = None) -> pd.DataFrame:
        """Annotator confusion of ``a`` against ``b`` (default: the pair with most items in
        common)."""
        if a is None or b is None:
            if self.pairwise.empty:
                raise ParameterError("no two annotators labeled an item in common")
            best = self.pairwise.sort_values("n", ascending=False, kind="stable").iloc[0]
            a, b = best["a"], best["b"]
        return agreement.annotator_confusion(self.votes, a, b)

    @cached_property
    def final(self) -> pd.DataFrame:
        """:func:`~workbench.quality.final.final_labels` of the store."""
        return final_labels(self.store, task=self.task, catalog=self.catalog)

    @cached_property
    def class_counts(self) -> pd.Series:
        """Per-class counts of the final labels."""
        labels = self.final["label"].dropna()
        return class_counts(labels, self.store.classes)

    @cached_property
    def coverage(self) -> pd.DataFrame:
        """:func:`~workbench.quality.completeness.coverage_by_round`."""
        return coverage_by_round(self.store, self.catalog, task=self.task)

    @cached_property
    def completeness(self) -> dict[str, Any]:
        """:func:`~workbench.quality.completeness.completeness` (needs a catalog), else the
        class balance alone."""
        if self.catalog is not None:
            return completeness(self.store, self.catalog, task=self.task)
        counts = self.class_counts
        return {"class_counts": counts, "balance": balance(counts) if len(counts) else None}

    # ------------------------------------------------------------------ figures
    def figures(self) -> dict[str, Any]:
        """Title → matplotlib Figure, each drawn by a :mod:`workbench.plots` function."""
        from workbench import plots

        figs: dict[str, Any] = {}
        with plots.DRAW_LOCK:
            names = [str(a) for a in self.votes.annotators]
            if not self.pairwise.empty:
                figs["Agreement heatmap (Cohen's kappa)"] = plots.plot_agreement_heatmap(
                    self.pairwise, names
                ).figure
                conf = self.confusion()
                figs["Annotator confusion"] = plots.plot_annotator_confusion(conf).figure
            figs["Class balance of the final labels"] = plots.plot_class_counts(
                self.class_counts
            ).figure
            figs["Per-annotator quality"] = plots.plot_annotator_quality(self.quality).figure
            if not self.coverage.empty:
                figs["Completeness: coverage by round"] = plots.plot_coverage(self.coverage).figure
        return figs

    # ------------------------------------------------------------------ HTML
    def to_html(self, *, review: ReviewSession | None = None, thumbnails: int = 12) -> str:
        """The whole report as one self-contained HTML document (see the module docstring).

        ``review``: a :class:`~workbench.quality.review.ReviewSession` whose first
        ``thumbnails`` items are listed with their image; default: one made here for the
        reviewer ``"report"`` when there is a catalog (nothing is written to the store).
        """
        from workbench import plots

        parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>{_esc(self.title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{_esc(self.title)}</h1>",
            f"<p>{_esc(repr(self.votes))} · generated "
            f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC</p>",
            "<h2>Agreement</h2>",
            _table_html(self.summary),
            _table_html(self.pairwise),
        ]
        figs = self.figures()
        for title, fig in figs.items():
            png = plots.figure_png(fig, dpi=80)
            parts.append(f"<h2>{_esc(title)}</h2>")
            parts.append(f'<img class="fig" alt="{_esc(title)}" src="{_data_uri(png, "png")}">')
            if title.startswith("Per-annotator"):
                parts.append(_table_html(self.quality))
        comp = self.completeness
        flat = {k: v for k, v in comp.items() if k not in ("class_counts", "balance")}
        if comp.get("balance"):
            flat.update({f"balance {k}": v for k, v in comp["balance"].items()})
        parts += [
            "<h2>Completeness</h2>",
            _table_html(pd.DataFrame({"figure": list(flat), "value": list(flat.values())})),
            _table_html(self.coverage),
        ]
        parts.append(self._review_html(review, thumbnails))
        parts.append("</body></html>")
        return "\n".join(parts)

    def _review_html(self, review: ReviewSession | None, n: int) -> str:
        if review is None and self.catalog is not None:
            from workbench.quality.review import ReviewSession

            review = ReviewSession(
                self.store, reviewer="report", catalog=self.catalog, gold=self.gold,
                task=self.task,
            )  # fmt: skip
        if review is None:
            return ""
        table = review.table()
        cards = []
        catalog = self.catalog if self.catalog is not None else review.catalog
        for row in table.head(n).itertuples(index=False):
            img = ""
            if catalog is not None:
                try:
                    t = catalog.thumbnail(row.id, 150)
                    img = f'<img alt="" src="{_data_uri(t.data, t.format)}">'
                except Exception:  # an id without an image still gets its card
                    img = ""
            cards.append(
                f'<div class="thumb">{img}<div><b>{_esc(row.id)}</b></div>'
                f"<div>{_esc(row.reasons)} · {row.severity:.2f}</div>"
                f"<div>{_esc(row.labels)}</div></div>"
            )
        return (
            f"<h2>Items to review ({len(table):,})</h2>"
            f'<div class="thumbs">{"".join(cards)}</div>' + _table_html(table)
        )

    def save_report(
        self,
        target: Any,
        *,
        name: str = REPORT_NAME,
        review: ReviewSession | None = None,
        thumbnails: int = 12,
    ) -> Path:
        """Write the report as one HTML file, atomically; returns its path.

        Parameters
        ----------
        target
            A :class:`~workbench.workspace.Workspace` (the file goes into its ``reports``
            folder), a folder, or a file path ending in ``.html``.
        name
            File name inside a workspace or folder.
        """
        if hasattr(target, "file"):
            path = Path(target.file("reports")) / name
        elif isinstance(target, (str, os.PathLike)):
            path = Path(target)
            if path.suffix.lower() not in (".html", ".htm"):
                path = path / name
        else:
            raise ParameterError(
                f"save_report needs a Workspace, a folder or an .html path, got "
                f"{type(target).__name__}"
            )
        if "/" in name or not name.lower().endswith((".html", ".htm")):
            raise ParameterError(f"name must be a file name ending in .html, got {name!r}")
        text = self.to_html(review=review, thumbnails=thumbnails)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
        return path
