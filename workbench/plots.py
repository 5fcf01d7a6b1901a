"""Summary plots. matplotlib is imported inside each function, never at module import."""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.catalog import Catalog


#: Hold while building and rendering a figure: matplotlib's text parser is not thread-safe, and
#: widget handlers and background refreshes can draw at the same time.
DRAW_LOCK = threading.RLock()
_SUMMARY_SIZE = (10, 3.5)  # inches: class balance and sizes side by side


def _axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_class_balance(catalog: Catalog, ax: Any = None) -> Any:
    """Bar chart of readable samples per label (unlabeled shown as '(none)'); returns the axes."""
    ax = _axes(ax, (6, 3))
    ok = catalog.df[catalog.df["status"] == "ok"]
    counts = ok["label"].fillna("(none)").astype(str).value_counts().sort_index()
    ax.bar(range(len(counts)), counts.to_numpy(), color="#4c78a8")
    ax.set_xticks(range(len(counts)), counts.index.tolist(), rotation=45, ha="right")
    ax.set_ylabel("samples")
    ax.set_title(f"Class balance ({len(ok):,} readable samples)")
    if len(counts):
        ax.axhline(counts.mean(), color="#e45756", lw=1, ls="--", label="mean")
        ax.legend(loc="lower right")
    ax.figure.tight_layout()
    return ax


def plot_sizes(catalog: Catalog, ax: Any = None) -> Any:
    """Width × height scatter of readable samples (point size grows with repeats); returns axes."""
    ax = _axes(ax, (4, 3.5))
    ok = catalog.df[catalog.df["status"] == "ok"]
    sizes = ok.groupby(["width", "height"]).size().reset_index(name="n")
    ax.scatter(sizes["width"], sizes["height"], s=10 + 60 * (sizes["n"] / max(1, sizes["n"].max())),
               alpha=0.6, color="#4c78a8")  # fmt: skip
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title(f"Image sizes ({len(sizes)} distinct)")
    ax.figure.tight_layout()
    return ax


def _draw_summary(fig: Any, catalog: Catalog) -> None:
    a, b = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    plot_class_balance(catalog, a)
    plot_sizes(catalog, b)
    fig.tight_layout()


def plot_summary(catalog: Catalog) -> Any:
    """Both plots side by side in one pyplot figure (a notebook shows it); returns the figure."""
    import matplotlib.pyplot as plt

    with DRAW_LOCK:
        fig = plt.figure(figsize=_SUMMARY_SIZE)
        _draw_summary(fig, catalog)
    return fig


def summary_png(catalog: Catalog, dpi: int = 90) -> bytes:
    """The figure of :func:`plot_summary` as PNG bytes, drawn without pyplot (no global figure
    state), so a widget handler or a background thread can draw it."""
    from matplotlib.figure import Figure

    with DRAW_LOCK:
        fig = Figure(figsize=_SUMMARY_SIZE)
        _draw_summary(fig, catalog)
        return figure_png(fig, dpi)


def figure_png(fig: Any, dpi: int = 90) -> bytes:
    """Render a figure to PNG bytes and close it (for ``Image`` widgets, not ``Output``)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()
