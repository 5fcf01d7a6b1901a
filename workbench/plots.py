"""Summary figures (the only module that draws them). matplotlib is imported inside each
function, never at module import."""

from __future__ import annotations

import functools
import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

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
    return _count_bars(ax, counts, "samples", f"Class balance ({len(ok):,} readable samples)")


def _count_bars(ax: Any, counts: Any, ylabel: str, title: str) -> Any:
    """Bars of a count Series labelled by its index, with a dashed line at the mean."""
    ax.bar(range(len(counts)), counts.to_numpy(), color="#4c78a8")
    ax.set_xticks(range(len(counts)), [str(i) for i in counts.index], rotation=45, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
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


# ---------------------------------------------------------------------------- quality control
def new_axes(figsize: tuple[float, float] = (5, 4)) -> Any:
    """Axes on a new figure made without pyplot (no global state: safe off the main thread)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize).subplots()


def _matrix(ax: Any, values: Any, rows: list[str], cols: list[str], fmt: str, **kw: Any) -> Any:
    """Heatmap with each cell's value written in it."""
    import numpy as np

    a = np.asarray(values, dtype=float)
    im = ax.imshow(a, **kw)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    lo, hi = im.get_clim()
    for (i, j), v in np.ndenumerate(a):
        if np.isfinite(v):
            dark = (v - lo) / ((hi - lo) or 1) > 0.6
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")  # fmt: skip
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return im


def plot_agreement_heatmap(pairwise: Any, annotators: Any = None, ax: Any = None,
                           value: str = "kappa") -> Any:  # fmt: skip
    """Annotator × annotator heatmap of one column of
    :func:`workbench.quality.agreement.pairwise` (Cohen's kappa by default; blank where a pair
    shares no item or kappa is undefined); returns the axes."""
    import numpy as np

    names = list(annotators) if annotators is not None else sorted(
        set(map(str, pairwise["a"])) | set(map(str, pairwise["b"]))
    )  # fmt: skip
    pos = {n: i for i, n in enumerate(names)}
    m = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(m, 1.0)
    for a, b, v in zip(pairwise["a"], pairwise["b"], pairwise[value], strict=True):
        if str(a) in pos and str(b) in pos:
            m[pos[str(a)], pos[str(b)]] = m[pos[str(b)], pos[str(a)]] = v
    ax = ax if ax is not None else new_axes((1.2 + 0.7 * len(names), 0.8 + 0.6 * len(names)))
    _matrix(ax, m, names, names, ".2f", vmin=-1 if np.nanmin(m) < 0 else 0, vmax=1,
            cmap="viridis")  # fmt: skip
    ax.set_title(f"Agreement between annotators ({value})")
    ax.figure.tight_layout()
    return ax


def plot_annotator_confusion(confusion: Any, ax: Any = None) -> Any:
    """Counts of annotator ``a``'s classes (rows) against ``b``'s (columns), as
    :func:`workbench.quality.agreement.annotator_confusion` gives them; returns the axes."""
    rows, cols = [str(c) for c in confusion.index], [str(c) for c in confusion.columns]
    ax = ax if ax is not None else new_axes((1.5 + 0.5 * len(cols), 1.2 + 0.45 * len(rows)))
    _matrix(ax, confusion.to_numpy(), rows, cols, ".0f", cmap="Blues")
    ax.set_ylabel(str(confusion.index.name or "a"))
    ax.set_xlabel(str(confusion.columns.name or "b"))
    ax.set_title(f"{confusion.index.name} vs {confusion.columns.name}")
    ax.figure.tight_layout()
    return ax


def plot_class_counts(counts: Any, ax: Any = None, title: str = "Class balance") -> Any:
    """Bar chart of a per-class count Series (e.g. of the final labels); returns the axes."""
    ax = ax if ax is not None else new_axes((6, 3))
    return _count_bars(ax, counts, "labels", f"{title} ({int(counts.sum()):,} labels)")


def plot_annotator_quality(quality: Any, ax: Any = None) -> Any:
    """Grouped bars of per-annotator accuracy: one bar per ``accuracy_*`` column of ``quality``
    (a table with an ``annotator`` column); returns the axes."""
    import numpy as np

    cols = [c for c in quality.columns if str(c).startswith("accuracy")]
    names = [str(a) for a in quality["annotator"]]
    ax = ax if ax is not None else new_axes((1.5 + 0.8 * max(len(names), 3), 3))
    width = 0.8 / max(len(cols), 1)
    x = np.arange(len(names))
    for k, c in enumerate(cols):
        ax.bar(x + k * width, quality[c].to_numpy(dtype=float), width,
               label=str(c).replace("accuracy_", "vs "))  # fmt: skip
    ax.set_xticks(x + width * (len(cols) - 1) / 2, names, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title("Per-annotator quality")
    if cols:
        ax.legend(loc="lower right")
    ax.figure.tight_layout()
    return ax


def plot_coverage(coverage: Any, ax: Any = None) -> Any:
    """Samples labeled and reviewed per round
    (:func:`workbench.quality.completeness.coverage_by_round`); returns the axes."""
    import numpy as np

    ax = ax if ax is not None else new_axes((5, 3))
    x = np.arange(len(coverage))
    ax.bar(x - 0.2, coverage["labeled"].to_numpy(), 0.4, label="labeled", color="#4c78a8")
    ax.bar(x + 0.2, coverage["reviewed"].to_numpy(), 0.4, label="reviewed", color="#f58518")
    ax.set_xticks(x, [str(r) for r in coverage["round"]])
    ax.set_xlabel("round")
    ax.set_ylabel("samples")
    ax.set_title("Coverage by round")
    ax.legend(loc="upper right")
    ax.figure.tight_layout()
    return ax


_HIST_DPI = 80
_HIST_BASES: OrderedDict[tuple, tuple[Any, tuple[float, float, float, float]]] = OrderedDict()


_HIST_BINS = np.linspace(0.0, 1.0, 51)


def _histogram_base(
    chunks: Iterable[np.ndarray], xlabel: str, size: tuple[int, int]
) -> tuple[Any, tuple[float, float, float, float]]:
    """The histogram without its threshold: a PIL image and the plot area in pixels
    (x of score 0, x of score 1, top, bottom), drawn once per set of scores.

    The scores come in float64 chunks, read one at a time (the key and the counts are summed
    over them), so a caller can feed a million scores without holding them all at once.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter
    from PIL import Image

    digest, counts, n = hashlib.sha1(), np.zeros(50, np.int64), 0
    for chunk in chunks:
        chunk = np.ascontiguousarray(chunk, dtype=np.float64)
        digest.update(chunk.data)  # the same digest as of the whole array's bytes
        counts += np.histogram(chunk, bins=50, range=(0, 1))[0]
        n += len(chunk)
    key = (digest.hexdigest(), xlabel, size)
    with DRAW_LOCK:  # also guards the kept bases: a view warms them on a worker thread
        if key in _HIST_BASES:
            _HIST_BASES.move_to_end(key)
            return _HIST_BASES[key]
        fig = Figure(figsize=(size[0] / _HIST_DPI, size[1] / _HIST_DPI), dpi=_HIST_DPI)
        canvas = FigureCanvasAgg(fig)
        fig.subplots_adjust(left=0.11, right=0.98, top=0.86, bottom=0.27)
        ax = fig.add_subplot()
        if n:
            ax.stairs(counts, _HIST_BINS, fill=True, color="#4c78a8")  # one artist, not 50 bars
            if n > 200:
                ax.set_yscale("log")
                # plain numbers: mathtext labels (10^2) cost more than the rest of the figure
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(0, 1)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.tick_params(labelsize=8)
        canvas.draw()
        height = canvas.get_width_height()[1]
        (x0, y0), (x1, y1) = ax.transAxes.transform([(0, 0), (1, 1)])
        im = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).copy()
        area = (float(x0), float(x1), float(height - y1), float(height - y0))  # PIL: y down
        _HIST_BASES[key] = (im.convert("RGB"), area)
        while len(_HIST_BASES) > 32:
            _HIST_BASES.popitem(last=False)
        return _HIST_BASES[key]


def score_histogram_png(
    scores: Any, threshold: float, *, xlabel: str = "score", size: tuple[int, int] = (420, 150)
) -> bytes:
    """Histogram of scores in [0, 1] with the threshold marked, as PNG bytes (``size`` in px).

    The threshold and how many scores reach it are written above the plot, not in a legend over
    the bars; the count axis turns logarithmic past 200 scores so a few flagged samples stay
    visible next to thousands of clean ones. The bars are drawn once per set of scores and kept
    (32 sets at most): moving the threshold only draws its line and caption onto a copy, so a
    slider can redraw it on every step.
    """
    from PIL import ImageDraw

    scores = np.ascontiguousarray(scores, dtype=np.float64)
    base, (x0, x1, top, bottom) = _histogram_base([scores], xlabel, tuple(size))
    im = base.copy()
    draw = ImageDraw.Draw(im)
    x = x0 + (x1 - x0) * min(max(float(threshold), 0.0), 1.0)
    draw.line([(x, top), (x, bottom)], fill="#e45756", width=2)
    flagged = int((scores >= threshold - 1e-12).sum())
    text = f"threshold {threshold:.3f} · {flagged:,} of {len(scores):,} flagged"
    draw.text((x0, top - 4), text, fill="#c0392b", font=_font(11), anchor="ls")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def warm_score_histogram(
    chunks: Iterable[Any], *, xlabel: str = "score", size: tuple[int, int] = (420, 150)
) -> None:
    """Draw and keep the histogram :func:`score_histogram_png` will show for the scores
    ``np.concatenate(chunks)``, reading one chunk at a time: a view warms it on a background
    thread, whose heap would otherwise keep the high-water mark of a million scores' copies."""
    _histogram_base(chunks, xlabel, tuple(size))


# ---------------------------------------------------------------------------- training
def plot_confusion_matrix(confusion: Any, ax: Any = None, title: str = "Confusion matrix") -> Any:
    """Counts of actual classes (rows) against predicted ones (columns), a DataFrame as
    :meth:`workbench.train.Interpretation.confusion` gives it; returns the axes (the heatmap's
    values are ``ax.images[0].get_array()``)."""
    rows, cols = [str(c) for c in confusion.index], [str(c) for c in confusion.columns]
    ax = ax if ax is not None else new_axes((1.8 + 0.5 * len(cols), 1.4 + 0.45 * len(rows)))
    with DRAW_LOCK:
        _matrix(ax, confusion.to_numpy(), rows, cols, ".0f", cmap="Blues")
        ax.set_ylabel("actual")
        ax.set_xlabel("predicted")
        ax.set_title(title)
        ax.figure.tight_layout()
    return ax


def plot_top_losses(
    tiles: Any, titles: Any, wrong: Any = None, *, ncols: int = 4, tile_inches: float = 1.8
) -> Any:
    """A grid of thumbnail tiles (:class:`workbench.thumbs.Thumb` or encoded bytes) with a
    caption each (e.g. given / predicted, loss / probability); captions of ``wrong`` items are
    red. Returns the figure (made without pyplot: safe off the main thread)."""
    from matplotlib.figure import Figure
    from PIL import Image

    tiles, titles = list(tiles), [str(t) for t in titles]
    wrong = [True] * len(tiles) if wrong is None else [bool(w) for w in wrong]
    n = max(len(tiles), 1)
    ncols = max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    with DRAW_LOCK:
        fig = Figure(figsize=(tile_inches * ncols, (tile_inches + 0.45) * nrows))
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        for ax in axes:
            ax.set_axis_off()
        for ax, tile, title, bad in zip(axes, tiles, titles, wrong, strict=False):
            data = tile.data if hasattr(tile, "data") else tile
            im = Image.open(io.BytesIO(data))
            ax.imshow(np.asarray(im), cmap="gray" if im.mode == "L" else None,
                      interpolation="nearest")  # fmt: skip
            ax.set_title(title, fontsize=8, color="#c0392b" if bad else "#1d6b2f")
        if not tiles:
            axes[0].text(0.5, 0.5, "no samples", ha="center", va="center")
        fig.tight_layout()
    return fig


@functools.cache
def _font(size: int) -> Any:
    """matplotlib's own DejaVu Sans, so the caption matches the axes' lettering."""
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


# ------------------------------------------------------------------------------------ training
_TRAINING_SIZE = (9.0, 3.0)  # inches: loss and accuracy side by side
_STEADY_EPOCHS = 200


def smooth_losses(losses: Any, smoothing: float = 0.9) -> np.ndarray:
    """Exponential moving average of per-batch losses, bias-corrected so the first values are
    not pulled towards zero (fastai's smoothed loss): ``pandas.Series.ewm(alpha=1 - smoothing,
    adjust=True)``."""
    import pandas as pd

    values = pd.Series(np.asarray(losses, dtype=float))
    if not len(values) or smoothing <= 0:
        return values.to_numpy()
    return values.ewm(alpha=1.0 - float(smoothing), adjust=True).mean().to_numpy()


def plot_training(
    epochs: Any,
    batches: Any = None,
    *,
    smoothing: float = 0.9,
    total_epochs: int | None = None,
    fig: Any = None,
) -> Any:
    """Loss (left) and accuracy (right) of a training run; returns the figure.

    Parameters
    ----------
    epochs
        One row per finished epoch (a DataFrame such as ``Trainer.history`` or ``Run.history``,
        or a list of dicts) with ``epoch`` (counted from 0, as there) and any of
        ``train_loss, val_loss, train_acc, val_acc``; each is drawn at the end of its epoch
        (x = epoch + 1).
    batches
        Per-batch training losses as a Series indexed by position in epochs (the ``b``-th batch
        of ``B`` in epoch ``e`` at ``e + b / B``), drawn faint, with their moving average
        (:func:`smooth_losses`) over them.
    smoothing
        Weight of the past in the moving average (0: no smoothing).
    total_epochs
        Fix the x axis to the whole schedule, so the curves grow into a steady frame (up to
        :data:`_STEADY_EPOCHS` epochs; a longer schedule would squeeze the curves into its
        first pixels, so there the axis follows the data).
    fig
        A matplotlib figure to draw into (cleared first); default: a new one made without
        pyplot, so a background thread can draw it.
    """
    import pandas as pd
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with DRAW_LOCK:
        fig = fig if fig is not None else Figure(figsize=_TRAINING_SIZE)
        fig.clear()
        loss_ax, acc_ax = fig.subplots(1, 2)
        rows = pd.DataFrame(epochs)
        if batches is not None and len(batches):
            x = np.asarray(batches.index, dtype=float)
            loss_ax.plot(x, batches.to_numpy(dtype=float), color="#9ecae9", lw=0.8,
                         label="batch")  # fmt: skip
            loss_ax.plot(x, smooth_losses(batches, smoothing), color="#4c78a8", lw=1.5,
                         label="batch (smoothed)")  # fmt: skip
        styles = {
            "train": {"color": "#4c78a8", "marker": "o", "ls": "--"},
            "val": {"color": "#f58518", "marker": "s", "ls": "-"},
        }
        for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
            for side, style in styles.items():
                col = f"{side}_{metric}"
                if col in rows and rows[col].notna().any():
                    x = rows["epoch"].to_numpy(dtype=float) + 1
                    ax.plot(x, rows[col].to_numpy(dtype=float), ms=4, label=side, **style)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if total_epochs and total_epochs <= _STEADY_EPOCHS:
                ax.set_xlim(0, max(int(total_epochs), 1))
            elif len(rows) or (batches is not None and len(batches)):
                ax.set_xlim(left=0)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                # a fixed corner: "best" searches every point on each redraw
                ax.legend(loc="upper right" if metric == "loss" else "lower right", fontsize=8)
        loss_ax.set_ylabel("loss")
        loss_ax.set_title("Loss")
        acc_ax.set_ylabel("accuracy")
        acc_ax.set_ylim(0, 1.02)
        acc_ax.set_title("Accuracy")
        # fixed margins: tight_layout would measure every label again on each redraw
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.9, wspace=0.22)
    return fig


def training_png(epochs: Any, batches: Any = None, *, dpi: int = 80, **kwargs: Any) -> bytes:
    """:func:`plot_training` as PNG bytes (for an ``Image`` widget)."""
    with DRAW_LOCK:
        return figure_png(plot_training(epochs, batches, **kwargs), dpi)


def plot_comparison(
    table: Any,
    value: str = "mean",
    error: str | None = "std",
    *,
    ax: Any = None,
    ylabel: str = "validation accuracy",
    title: str = "What each step bought",
) -> Any:
    """One bar per row of ``table`` (its index names the bars) at ``table[value]``, with
    ``table[error]`` as error bars and the value written over each bar; returns the axes."""
    ax = ax if ax is not None else new_axes((1.5 + 1.3 * max(len(table), 3), 3.2))
    with DRAW_LOCK:
        heights = table[value].to_numpy(dtype=float)
        spread = table[error].fillna(0).to_numpy(dtype=float) if error else None
        x = np.arange(len(table))
        ax.bar(x, heights, yerr=spread, capsize=4, color="#4c78a8")
        for xi, h in zip(x, heights, strict=True):
            ax.annotate(f"{h:.3f}", (xi, h), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8)  # fmt: skip
        ax.set_xticks(x, [str(i) for i in table.index], rotation=20, ha="right")
        ax.set_ylim(0, 1.08)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.figure.tight_layout()
    return ax
