"""IssueReview: flagged samples per issue type, duplicate groups side by side, live thresholds."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as W

from workbench._validation import check_positive_int
from workbench.catalog import Catalog
from workbench.clean import CHECKS, DUPLICATE_CHECKS, HASH_BITS, Decisions, IssueReport
from workbench.errors import ParameterError
from workbench.thumbs import escape
from workbench.views._common import ErrorBanner, guarded
from workbench.workspace import Workspace

_EXCLUDED_STYLE = "opacity:0.35"
_MAX_GROUP_TILES = 12  # a chained group of hundreds must not become hundreds of widgets


def _step(issue: str) -> float:
    """Slider step that every threshold of the issue sits on exactly (the browser snaps the
    value to the step and sends it back: a coarser step would move the threshold)."""
    return 1 / HASH_BITS if issue == "near_duplicate" else 0.005


class IssueReview(W.VBox):
    """Review what :func:`workbench.clean.check` found and decide what to exclude.

    Parameters
    ----------
    catalog
        The checked catalog (thumbnails and metadata come from it).
    report
        The :class:`~workbench.clean.IssueReport` (``review.report``); thresholds moved here
        change it.
    workspace
        Where exclude / keep decisions are saved (:class:`~workbench.clean.Decisions`); in
        memory without one.
    page_size
        Samples (or duplicate groups / 3) per page.
    thumb_size
        Tile edge in pixels.
    """

    def __init__(
        self,
        catalog: Catalog,
        report: IssueReport,
        *,
        workspace: Workspace | None = None,
        page_size: int = 24,
        thumb_size: int = 96,
    ) -> None:
        if not isinstance(report, IssueReport):
            raise ParameterError("IssueReview needs the IssueReport from workbench.clean.check()")
        self.catalog = catalog
        self.report = report
        self.decisions = Decisions(workspace)
        self.page_size = check_positive_int(page_size, "page_size")
        self.thumb_size = check_positive_int(thumb_size, "thumb_size")
        self.page = 0
        self._callbacks: list[Callable[[str, list[str]], None]] = []

        self.error = ErrorBanner()
        issues = [c for c in CHECKS if c in report.thresholds]
        first = next((c for c in issues if self._count(c)), issues[0])
        self.issue = W.Dropdown(options=self._options(), value=first, description="issue")
        self.issue.add_class("wb-issue-select")
        self.threshold = W.FloatSlider(
            min=0.0, max=1.0, step=_step(first), value=report.thresholds[first],
            description="threshold",
            continuous_update=True, readout_format=".3f", layout=W.Layout(width="420px"),
        )  # fmt: skip
        self.threshold.add_class("wb-threshold")
        self.threshold_note = W.HTML()
        self.histogram = W.Image(format="png", layout=W.Layout(width="420px"))
        self.histogram.add_class("wb-histogram")
        self.counts = W.HTML().add_class("wb-counts")
        self.prev_button = W.Button(description="◀ Prev", layout=W.Layout(width="80px"))
        self.next_button = W.Button(description="Next ▶", layout=W.Layout(width="80px"))
        self.prev_button.add_class("wb-prev")
        self.next_button.add_class("wb-next")
        self.page_label = W.HTML().add_class("wb-page")
        self.exclude_all = W.Button(description="Exclude all flagged", button_style="warning")
        self.exclude_all.add_class("wb-exclude-all")
        self.body = W.VBox().add_class("wb-issue-body")

        self.issue.observe(self._on_issue_change, "value")
        self.threshold.observe(self._on_threshold_change, "value")
        self.prev_button.on_click(self._on_prev_click)
        self.next_button.on_click(self._on_next_click)
        self.exclude_all.on_click(self._on_exclude_all_click)

        controls = W.VBox(
            [
                W.HBox([self.issue, self.counts], layout=W.Layout(align_items="center")),
                self.threshold,
                self.threshold_note,
                W.HBox(
                    [self.prev_button, self.page_label, self.next_button, self.exclude_all],
                    layout=W.Layout(align_items="center"),
                ),
            ]
        )
        super().__init__([W.HBox([controls, self.histogram]), self.error, self.body])
        self.add_class("wb-issues")
        self._refresh()

    # ------------------------------------------------------------------ public API
    @property
    def is_group_view(self) -> bool:
        return self.issue.value in DUPLICATE_CHECKS

    def select(self, issue: str) -> None:
        """Show one issue type."""
        if issue not in self.report.thresholds:
            raise ParameterError(f"no results for {issue!r}; shown: {list(self.report.thresholds)}")
        self.issue.value = issue

    def set_threshold(self, value: float) -> None:
        """Move the current issue's threshold (the flagged set and groups follow)."""
        self.threshold.value = value

    def items(self) -> list[list[str]]:
        """What the current issue shows, all pages: groups (keeper first) or single ids."""
        if self.is_group_view:
            return self.report.groups(self.issue.value)
        return [[i] for i in self.report.flagged(self.issue.value)["id"].drop_duplicates()]

    def visible(self) -> list[list[str]]:
        """The items on the current page."""
        n = self._per_page()
        return self.items()[self.page * n : (self.page + 1) * n]

    def exclude(self, ids: list[str]) -> None:
        """Exclude samples (saved; reversible with :meth:`keep`)."""
        self._decide("exclude", ids)

    def keep(self, ids: list[str]) -> None:
        """Keep samples (undoes an exclusion)."""
        self._decide("keep", ids)

    def exclude_duplicates(self, group: list[str]) -> None:
        """Exclude every member of a duplicate group except its keeper (the first id)."""
        self._decide("exclude", group[1:])

    @property
    def excluded(self) -> set[str]:
        return self.decisions.excluded

    def on_decision(self, fn: Callable[[str, list[str]], None]) -> None:
        """Call ``fn(action, ids)`` after every exclude / keep."""
        self._callbacks.append(fn)

    # ------------------------------------------------------------------ handlers
    @guarded
    def _on_issue_change(self, change: dict) -> None:
        self.page = 0
        with self.hold_sync():
            self.threshold.unobserve(self._on_threshold_change, "value")
            self.threshold.step = _step(change["new"])
            self.threshold.value = self.report.thresholds[change["new"]]
            self.threshold.observe(self._on_threshold_change, "value")
        self._refresh()

    @guarded
    def _on_threshold_change(self, change: dict) -> None:
        self.report.set_threshold(self.issue.value, change["new"])
        self.page = 0
        self._refresh()

    @guarded
    def _on_prev_click(self, _b: W.Button) -> None:
        self.page = max(0, self.page - 1)
        self._render_body()

    @guarded
    def _on_next_click(self, _b: W.Button) -> None:
        self.page = min(self._pages() - 1, self.page + 1)
        self._render_body()

    @guarded
    def _on_exclude_all_click(self, _b: W.Button) -> None:
        items = self.items()
        ids = [i for g in items for i in (g[1:] if self.is_group_view else g)]
        self._decide("exclude", ids)

    @guarded
    def _on_decision_click(self, action: str, ids: list[str]) -> None:
        self._decide(action, ids)

    # ------------------------------------------------------------------ internals
    def _decide(self, action: str, ids: list[str]) -> None:
        self.decisions.record(ids, action, issue=str(self.issue.value))
        for fn in self._callbacks:
            fn(action, list(ids))
        self._refresh()

    def _count(self, issue: str) -> int:
        t = self.report.table
        return int(t.loc[(t["issue"] == issue) & t["flagged"], "id"].nunique())

    def _options(self) -> list[tuple[str, str]]:
        return [(f"{c} ({self._count(c)})", c) for c in CHECKS if c in self.report.thresholds]

    def _per_page(self) -> int:
        return max(1, self.page_size // 3) if self.is_group_view else self.page_size

    def _pages(self) -> int:
        n = len(self.items())
        return max(1, -(-n // self._per_page()))

    def _refresh(self) -> None:
        self.error.clear()
        issue = self.issue.value
        with self.hold_sync():
            self.issue.unobserve(self._on_issue_change, "value")
            self.issue.options = self._options()
            self.issue.value = issue
            self.issue.observe(self._on_issue_change, "value")
            self.histogram.value = self._histogram_png()
            excluded = self.decisions.excluded
            self.counts.value = (
                f"<span>{self._count(issue)} flagged · {len(excluded)} excluded in total</span>"
            )
            note = ""
            if issue == "near_duplicate":
                note = f"pHash + dHash distance ≤ <b>{self.report.radius}</b> of 128 bits"
            self.threshold_note.value = f"<span style='font-size:12px'>{note}</span>"
        self._render_body()

    def _render_body(self) -> None:
        excluded = self.decisions.excluded
        items = self.visible()
        scores = self._scores()
        rows = []
        if self.is_group_view:
            for group in items:
                tiles = [self._tile(i, scores.get(i), excluded, keeper=k == 0)
                         for k, i in enumerate(group[:_MAX_GROUP_TILES])]  # fmt: skip
                if len(group) > _MAX_GROUP_TILES:
                    more = W.HTML(f"<i>… and {len(group) - _MAX_GROUP_TILES} more</i>")
                    tiles.append(more.add_class("wb-more"))
                drop = W.Button(description="Exclude all but keeper", button_style="warning")
                drop.add_class("wb-exclude-group")
                drop.on_click(lambda _b, g=group: self._on_decision_click("exclude", g[1:]))
                back = W.Button(description="Keep all")
                back.add_class("wb-keep-group")
                back.on_click(lambda _b, g=group: self._on_decision_click("keep", g))
                head = W.HBox([W.HTML(f"<b>{len(group)} samples</b>"), drop, back])
                rows.append(W.VBox([head, W.HBox(tiles, layout=W.Layout(flex_flow="row wrap"))]))
                rows[-1].add_class("wb-group")
        else:
            tiles = [self._tile(g[0], scores.get(g[0]), excluded) for g in items]
            rows.append(W.HBox(tiles, layout=W.Layout(flex_flow="row wrap")))
        with self.hold_sync():
            self.body.children = rows
            total = len(self.items())
            self.page_label.value = (
                f"<span>Page {self.page + 1} / {self._pages()} · {total} items</span>"
            )
            self.prev_button.disabled = self.page == 0
            self.next_button.disabled = self.page >= self._pages() - 1

    def _scores(self) -> dict[str, float]:
        t = self.report.table
        t = t[t["issue"] == self.issue.value]
        return dict(zip(t["id"], t["score"], strict=True))

    def _tile(
        self, sample_id: str, score: float | None, excluded: set[str], keeper: bool = False
    ) -> W.VBox:
        thumb = self.catalog.thumbnail(sample_id, self.thumb_size)
        img = W.Image(
            value=thumb.data, format=thumb.format, layout=W.Layout(width=f"{self.thumb_size}px")
        )
        img.add_class("wb-thumb")
        is_out = sample_id in excluded
        badge = "<b style='color:#2e7d32'>keeper</b> " if keeper else ""
        state = "<b style='color:#b00020'>excluded</b>" if is_out else ""
        score_s = "" if score is None else f"score {score:.3f}"
        caption = W.HTML(
            f"<div style='font-size:11px;width:{self.thumb_size + 8}px;overflow:hidden;"
            f"text-overflow:ellipsis;white-space:nowrap;{_EXCLUDED_STYLE if is_out else ''}'"
            f" title='{escape(sample_id)}'>{badge}{escape(sample_id)}<br>{score_s} {state}</div>"
        )
        button = W.Button(
            description="Keep" if is_out else "Exclude",
            button_style="" if is_out else "warning",
            layout=W.Layout(width=f"{self.thumb_size}px"),
        )
        button.add_class("wb-keep" if is_out else "wb-exclude")
        action = "keep" if is_out else "exclude"
        button.on_click(lambda _b: self._on_decision_click(action, [sample_id]))
        tile = W.VBox([img, caption, button], layout=W.Layout(margin="2px", align_items="center"))
        tile.add_class("wb-tile")
        if keeper:
            tile.add_class("wb-keeper")
            tile.layout.border = "2px solid #2e7d32"
        return tile

    def _histogram_png(self) -> bytes:
        from workbench.plots import DRAW_LOCK

        with DRAW_LOCK:
            return self._draw_histogram()

    def _draw_histogram(self) -> bytes:
        from matplotlib.figure import Figure

        from workbench.plots import figure_png

        issue = self.issue.value
        t = self.report.table
        scores = t.loc[t["issue"] == issue, "score"].to_numpy()
        fig = Figure(figsize=(4.6, 2.0))
        ax = fig.subplots()
        if len(scores):
            ax.hist(scores, bins=50, range=(0, 1), color="#4c78a8")
            ax.set_yscale("log" if len(scores) > 200 else "linear")
        th = self.report.thresholds[issue]
        ax.axvline(th, color="#e45756", lw=2, label=f"threshold {th:.3f}")
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"{issue} score (flagged ≥ threshold)")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        return figure_png(fig, dpi=80)
