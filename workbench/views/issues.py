"""IssueReview: flagged samples per issue type, duplicate groups side by side, live thresholds.

The view stays quick on large datasets by never rebuilding what did not change: tile widgets are
made once and refilled (a page flip sets images and captions; a decision only restyles the tiles
whose state changed), the histogram is redrawn only when the issue or its threshold changes, and
groups and counts are computed once per threshold. It listens to its
:class:`~workbench.decisions.Decisions` store, so decisions taken in a notebook cell or another
view show here at once.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import ipywidgets as W

from workbench._validation import check_positive_int
from workbench.background import Latest
from workbench.catalog import Catalog
from workbench.clean import CHECKS, DUPLICATE_CHECKS, HASH_BITS, IssueReport
from workbench.decisions import Decisions
from workbench.errors import ParameterError
from workbench.plots import score_histogram_png
from workbench.views._common import ErrorBanner, escape, guarded
from workbench.workspace import Workspace

_MAX_GROUP_TILES = 12  # a chained group of hundreds must not become hundreds of widgets
# Classes, not inline styles, so a decision restyles a tile by toggling one class.
_CSS = """<style>
.wb-issues .wb-tile.wb-excluded .wb-thumb, .wb-issues img.wb-excluded { opacity: 0.35; }
.wb-issues .wb-tile.wb-keeper { outline: 2px solid #2e7d32; outline-offset: -2px; }
.wb-issues .wb-caption, .wb-issues .wb-caption .widget-html-content {
  font-size: 11px; line-height: 1.3; overflow-wrap: anywhere; height: auto; }
.wb-issues .wb-hidden-members img { margin: 1px; }
.wb-issues .widget-button { margin-right: 6px; }
</style>"""


def _step(issue: str) -> float:
    """Slider step that every threshold of the issue sits on exactly (the browser snaps the
    value to the step and sends it back: a coarser step would move the threshold)."""
    return 1 / HASH_BITS if issue == "near_duplicate" else 0.005


def _xlabel(issue: str) -> str:
    return f"{issue} score (flagged ≥ threshold)"


def _group_note(group: list[str]) -> str:
    """The note a group's decisions carry: its keeper names it (stable across pages)."""
    return f"group {group[0]}"


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


class _Tile(W.VBox):
    """One sample: thumbnail, caption (id, score, state) and an Exclude / Keep button; refilled
    in place for another sample instead of being rebuilt."""

    def __init__(self, view: IssueReview) -> None:
        size = view.thumb_size
        self.sample_id: str | None = None
        self.note = ""  # what decisions taken on this tile carry: its group, if any
        self.image = W.Image(format="png", layout=W.Layout(width=f"{size}px", height=f"{size}px"))
        self.image.add_class("wb-thumb")
        self.caption = W.HTML(layout=W.Layout(width=f"{size + 8}px"))
        self.caption.add_class("wb-caption")
        self.button = W.Button(layout=W.Layout(width=f"{size}px"))
        self.button.on_click(lambda _b: view._on_tile_click(self))
        super().__init__(
            [self.image, self.caption, self.button],
            layout=W.Layout(margin="2px", padding="2px", align_items="center"),
        )
        self.add_class("wb-tile")
        self._key: tuple = ()

    def show(
        self, view: IssueReview, sample_id: str, *, keeper: bool = False, note: str = ""
    ) -> None:
        self.note = note
        if sample_id != self.sample_id:
            thumb = view.catalog.thumbnail(sample_id, view.thumb_size)
            self.image.format = thumb.format
            self.image.value = thumb.data
            self.sample_id = sample_id
            self._key = ()
        self.restyle(view, keeper=keeper)

    def restyle(self, view: IssueReview, *, keeper: bool | None = None) -> None:
        """Caption, button and classes from the current decisions (only what changed is sent)."""
        sid = self.sample_id
        assert sid is not None
        keeper = ("wb-keeper" in self._dom_classes) if keeper is None else keeper
        reason = view._excluded.get(sid)
        score = view._scores().get(sid)
        key = (sid, keeper, reason, score, view.issue.value, self.note)
        if key == self._key:
            return
        self._key = key
        badge = "<b style='color:#2e7d32'>keeper</b><br>" if keeper else ""
        score_s = "" if score is None else f"score {score:.3f}"
        state = ""
        if reason is not None:
            issue, note = reason
            why = ""  # say so when the exclusion is not this tile's own: its buttons keep it
            if issue != view.issue.value:
                why = f" ({escape(issue or 'in code')})"
            elif note != self.note:
                why = " (earlier)"
            state = f"<br><b style='color:#b00020'>excluded</b>{why}"
        self.caption.value = (
            f"<div title='{escape(sid)}'>{badge}{escape(sid)}<br>{score_s}{state}</div>"
        )
        out = reason is not None
        self.button.description = "Keep" if out else "Exclude"
        self.button.button_style = "" if out else "warning"
        self.button._dom_classes = ("wb-keep",) if out else ("wb-exclude",)
        classes = ["wb-tile"] + (["wb-keeper"] if keeper else []) + (["wb-excluded"] if out else [])
        self._dom_classes = tuple(classes)


class _GroupRow(W.VBox):
    """One duplicate group: a head (size, group buttons, "show all"), tiles, hidden members."""

    def __init__(self, view: IssueReview) -> None:
        self.group: list[str] = []
        self._mosaic_key: tuple = ()
        self.title = W.HTML()
        auto = W.Layout(width="auto")
        self.drop = W.Button(description="Exclude all but keeper", button_style="warning",
                             layout=auto)  # fmt: skip
        self.drop.add_class("wb-exclude-group")
        self.back = W.Button(description="Keep all", layout=W.Layout(width="auto"))
        self.back.add_class("wb-keep-group")
        self.more = W.Button(layout=W.Layout(width="auto"))
        self.more.add_class("wb-more")
        self.drop.on_click(lambda _b: view._on_group_click("exclude", self))
        self.back.on_click(lambda _b: view._on_group_click("keep", self))
        self.more.on_click(lambda _b: view._on_more_click(self))
        self.tiles = [_Tile(view) for _ in range(_MAX_GROUP_TILES)]
        self.box = W.HBox(layout=W.Layout(flex_flow="row wrap"))
        self.hidden = W.HTML(layout=W.Layout(display="none"))
        self.hidden.add_class("wb-hidden-members")
        head = W.HBox([self.title, self.drop, self.back, self.more],
                      layout=W.Layout(align_items="center"))  # fmt: skip
        super().__init__([head, self.box, self.hidden], layout=W.Layout(margin="4px 0"))
        self.add_class("wb-group")

    def show(self, view: IssueReview, group: list[str]) -> None:
        self.group = group
        shown = group[:_MAX_GROUP_TILES]
        for k, sid in enumerate(shown):
            self.tiles[k].show(view, sid, keeper=k == 0, note=_group_note(group))
        if len(self.box.children) != len(shown):
            self.box.children = self.tiles[: len(shown)]
        self.restyle(view)

    def restyle(self, view: IssueReview) -> None:
        group = self.group
        for tile in self.box.children:
            tile.restyle(view)
        hidden = len(group) - _MAX_GROUP_TILES
        expanded = hidden <= 0 or group[0] in view._expanded
        out = sum(i in view._excluded for i in group)
        self.title.value = f"<b>{_n(len(group), 'image')}</b>" + (
            f" · {out:,} excluded" if out else ""
        )
        self.drop.disabled = self.back.disabled = not expanded
        note = "" if expanded else f"show all {len(group)} first: {hidden} are hidden"
        self.drop.tooltip = self.back.tooltip = note or None
        self.more.description = f"Show all {len(group)}"
        self.more.layout.display = "none" if expanded else None
        if hidden > 0 and expanded:
            rest = group[_MAX_GROUP_TILES:]
            key = (tuple(rest), frozenset(i for i in rest if i in view._excluded))
            if key != self._mosaic_key:  # hundreds of thumbnails: rebuilt only when they change
                self.hidden.value = view._mosaic(rest)
                self._mosaic_key = key
            self.hidden.layout.display = None
        else:
            self.hidden.layout.display = "none"


class IssueReview(W.VBox):
    """Review what :func:`workbench.clean.check` found and decide what to exclude.

    A duplicate group shows its first 12 members as tiles; "Show all" reveals the rest, and the
    group's buttons act only once every member they act on is shown. Decisions taken on a group
    carry it in their note: "Exclude all but keeper" leaves an exclusion made for another reason
    as it is, and "Keep all" takes back only the group's own exclusions
    (:meth:`Decisions.exclude_new` / :meth:`Decisions.restore`), so a group's buttons never undo
    what code, another issue or another group decided; a tile says why it is excluded when the
    reason is not its own. A tile's own Keep button restores its sample whatever the reason.

    Parameters
    ----------
    catalog
        The checked catalog (thumbnails and metadata come from it).
    report
        The :class:`~workbench.clean.IssueReport` (``review.report``); thresholds moved here
        change it.
    workspace
        Where exclude / keep decisions are saved (:class:`~workbench.decisions.Decisions`); in
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
        self._expanded: set[str] = set()  # groups (by keeper) whose hidden members are shown
        self._excluded: dict[str, tuple[str, str]] = self.decisions.excluded_for()
        self._cache: dict[tuple, object] = {}

        self.error = ErrorBanner()
        issues = [c for c in CHECKS if c in report.thresholds]
        counts = self._counts()
        first = next((c for c in issues if counts.get(c)), issues[0])
        self.issue = W.Dropdown(options=self._options(), value=first, description="issue")
        self.issue.add_class("wb-issue-select")
        self.threshold = W.FloatSlider(
            min=0.0, max=1.0, step=_step(first), value=report.thresholds[first],
            description="threshold",
            continuous_update=True, readout_format=".3f", layout=W.Layout(width="420px"),
        )  # fmt: skip
        self.threshold.add_class("wb-threshold")
        self.threshold_note = W.HTML()
        self.histogram = W.Image(format="png", layout=W.Layout(width="420px", height="150px"))
        self.histogram.add_class("wb-histogram")
        self.counts = W.HTML().add_class("wb-counts")
        auto = W.Layout(width="auto")
        self.prev_button = W.Button(description="◀ Prev", layout=auto)
        self.next_button = W.Button(description="Next ▶", layout=W.Layout(width="auto"))
        self.prev_button.add_class("wb-prev")
        self.next_button.add_class("wb-next")
        self.page_label = W.HTML().add_class("wb-page")
        self.exclude_all = W.Button(description="Exclude all flagged", button_style="warning",
                                    layout=W.Layout(width="auto"))  # fmt: skip
        self.exclude_all.add_class("wb-exclude-all")
        self.body = W.VBox().add_class("wb-issue-body")
        # made once and refilled: building widgets is what made every click slow
        self._singles = [_Tile(self) for _ in range(self.page_size)]
        self._single_box = W.HBox(layout=W.Layout(flex_flow="row wrap"))
        self._rows = [_GroupRow(self) for _ in range(max(1, self.page_size // 3))]
        # thumbnails of the next page and the other issues' histograms, made while the user looks
        self._warmer = Latest("wb-issues-warm")

        self.issue.observe(self._on_issue_change, "value")
        self.threshold.observe(self._on_threshold_change, "value")
        self.prev_button.on_click(self._on_prev_click)
        self.next_button.on_click(self._on_next_click)
        self.exclude_all.on_click(self._on_exclude_all_click)
        self.decisions.on_change(self._on_decisions_change)

        controls = W.VBox(
            [
                self.issue,
                self.counts,
                self.threshold,
                self.threshold_note,
                W.HBox(
                    [self.prev_button, self.page_label, self.next_button, self.exclude_all],
                    layout=W.Layout(align_items="center"),
                ),
            ]
        )
        style = W.HTML(_CSS, layout=W.Layout(height="0px", margin="0"))
        super().__init__(
            [style, W.HBox([controls, self.histogram], layout=W.Layout(align_items="flex-start")),
             self.error, self.body]
        )  # fmt: skip
        self.add_class("wb-issues")
        self._refresh()
        self._warmer.submit(self._warm_histograms)

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
        return [list(g) for g in self._items()]

    def visible(self) -> list[list[str]]:
        """The items on the current page."""
        n = self._per_page()
        return self.items()[self.page * n : (self.page + 1) * n]

    def exclude(self, ids: list[str], *, note: str = "") -> None:
        """Exclude samples (saved; reversible with :meth:`keep`)."""
        ids = [str(i) for i in ids]
        self.decisions.exclude(ids, issue=self.issue.value, note=note)
        self._decide("exclude", ids)

    def keep(self, ids: list[str], *, note: str = "") -> None:
        """Keep samples (undoes an exclusion, whatever it was made for)."""
        ids = [str(i) for i in ids]
        self.decisions.keep(ids, issue=self.issue.value, note=note)
        self._decide("keep", ids)

    def exclude_duplicates(self, group: list[str]) -> None:
        """Exclude every member of a duplicate group except its keeper (the first id); members
        already excluded for another reason stay excluded for that reason."""
        ids = self.decisions.exclude_new(group[1:], issue=self.issue.value, note=_group_note(group))
        self._decide("exclude", ids)

    def keep_group(self, group: list[str]) -> None:
        """Take back the exclusions this group's buttons and tiles made ("Keep all"); those
        made for another reason (in code, another issue, another group) stay."""
        ids = self.decisions.restore(group, issue=self.issue.value, note=_group_note(group))
        self._decide("keep", ids)

    def expand(self, group: list[str]) -> None:
        """Show every member of a group (the first 12 are tiles, the rest small thumbnails)."""
        self._expanded.add(group[0])
        for row in self.body.children:
            if isinstance(row, _GroupRow) and row.group and row.group[0] == group[0]:
                row.restyle(self)

    @property
    def excluded(self) -> set[str]:
        return self.decisions.excluded

    def on_decision(self, fn: Callable[[str, list[str]], None]) -> None:
        """Call ``fn(action, ids)`` after every exclude / keep taken in this view."""
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
        ids = [i for g in self._items() for i in (g[1:] if self.is_group_view else g)]
        self._decide("exclude", self.decisions.exclude_new(ids, issue=self.issue.value))

    @guarded
    def _on_tile_click(self, tile: _Tile) -> None:
        if tile.sample_id is None:
            return
        if tile.sample_id in self._excluded:
            self.keep([tile.sample_id], note=tile.note)
        else:
            self.exclude([tile.sample_id], note=tile.note)

    @guarded
    def _on_group_click(self, action: str, row: _GroupRow) -> None:
        if row.drop.disabled:  # members hidden: nothing acts on what was not shown
            return
        if action == "exclude":
            self.exclude_duplicates(row.group)
        else:
            self.keep_group(row.group)

    @guarded
    def _on_more_click(self, row: _GroupRow) -> None:
        self.expand(row.group)

    @guarded
    def _on_decisions_change(self, _action: str, _ids: list[str]) -> None:
        """Any decision on the store (this view, code, another view): restyle, recount."""
        self._excluded = self.decisions.excluded_for()
        for row in self.body.children:
            if isinstance(row, _GroupRow):
                row.restyle(self)
            else:
                for tile in row.children:
                    tile.restyle(self)
        self._update_counts()

    # ------------------------------------------------------------------ internals
    def _decide(self, action: str, ids: list[str]) -> None:
        """Tell :meth:`on_decision` callbacks (the view itself follows the store's listener)."""
        if ids:
            for fn in self._callbacks:
                fn(action, list(ids))

    def _key(self) -> tuple:
        issue = self.issue.value
        return (issue, self.report.thresholds[issue])

    def _items(self) -> list[list[str]]:
        key = ("items", *self._key())
        if key not in self._cache:
            issue = self.issue.value
            if issue in DUPLICATE_CHECKS:
                items = self.report.groups(issue)
            else:
                ids = self.report.flagged(issue)["id"].drop_duplicates()
                items = [[i] for i in ids]
            self._cache[key] = items
        return self._cache[key]  # type: ignore[return-value]

    def _scores(self) -> dict[str, float]:
        key = ("scores", self.issue.value)
        if key not in self._cache:
            t = self.report.table
            t = t[t["issue"] == self.issue.value]
            self._cache[key] = dict(zip(t["id"], t["score"].astype(float), strict=True))
        return self._cache[key]  # type: ignore[return-value]

    def _counts(self) -> dict[str, int]:
        key = ("counts", tuple(sorted(self.report.thresholds.items())))
        if key not in self._cache:
            t = self.report.table
            n = t[t["flagged"]].groupby("issue", observed=True)["id"].nunique()
            self._cache[key] = {str(k): int(v) for k, v in n.items()}
        return self._cache[key]  # type: ignore[return-value]

    def _count(self, issue: str) -> int:
        return self._counts().get(issue, 0)

    def _options(self) -> list[tuple[str, str]]:
        return [(f"{c} ({self._count(c)})", c) for c in CHECKS if c in self.report.thresholds]

    def _per_page(self) -> int:
        return max(1, self.page_size // 3) if self.is_group_view else self.page_size

    def _pages(self) -> int:
        n = len(self._items())
        return max(1, -(-n // self._per_page()))

    def _histogram_png(self) -> bytes:
        key = ("histogram", *self._key())
        if key not in self._cache:
            issue = self.issue.value
            t = self.report.table
            scores = t.loc[t["issue"] == issue, "score"].to_numpy()
            self._cache[key] = score_histogram_png(
                scores, self.report.thresholds[issue], xlabel=_xlabel(issue)
            )
        return self._cache[key]  # type: ignore[return-value]

    def close(self) -> None:
        warmer = getattr(self, "_warmer", None)  # None when __init__ refused its arguments
        if warmer is not None:
            warmer.close()
        super().close()

    def _warm_thumbnails(self, ids: list[str]) -> None:
        for sid in ids:
            self.catalog.thumbnail(sid, self.thumb_size)

    def _warm_histograms(self) -> None:
        t = self.report.table
        for issue in self.report.thresholds:
            scores = t.loc[t["issue"] == issue, "score"].to_numpy()
            score_histogram_png(scores, 0.5, xlabel=_xlabel(issue))

    def _mosaic(self, ids: list[str]) -> str:
        """Small thumbnails of a group's members beyond its tiles (one widget for hundreds)."""
        size = max(24, self.thumb_size // 2)
        imgs = []
        for sid in ids:
            thumb = self.catalog.thumbnail(sid, size)
            src = f"data:image/{thumb.format};base64,{base64.b64encode(thumb.data).decode()}"
            out = " class='wb-excluded'" if sid in self._excluded else ""
            why = " (excluded)" if out else ""
            imgs.append(
                f"<img src='{src}' width='{size}' height='{size}'{out}"
                f" title='{escape(sid)}{why}' alt='{escape(sid)}'>"
            )
        return f"<div style='display:flex;flex-wrap:wrap'>{''.join(imgs)}</div>"

    def _update_counts(self) -> None:
        issue = self.issue.value
        shown = {i for g in self._items() for i in g}
        here = sum(i in self._excluded for i in shown)
        what = "in groups" if self.is_group_view else "flagged"
        self.counts.value = (
            f"<span>{_n(len(shown), 'image')} {what} · {here:,} of them excluded · "
            f"{len(self._excluded):,} excluded in total</span>"
            if issue in DUPLICATE_CHECKS
            else f"<span>{self._count(issue):,} flagged · {here:,} of them excluded · "
            f"{len(self._excluded):,} excluded in total</span>"
        )

    def _refresh(self) -> None:
        self.error.clear()
        issue = self.issue.value
        self._excluded = self.decisions.excluded_for()
        with self.hold_sync():
            options = self._options()
            if list(self.issue.options) != options:
                self.issue.unobserve(self._on_issue_change, "value")
                self.issue.options = options
                self.issue.value = issue
                self.issue.observe(self._on_issue_change, "value")
            self.histogram.value = self._histogram_png()
            note = ""
            if issue == "near_duplicate":
                note = f"pHash + dHash distance ≤ <b>{self.report.radius}</b> of 128 bits"
            self.threshold_note.value = f"<span style='font-size:12px'>{note}</span>"
            self.threshold_note.layout.display = None if note else "none"
        self._render_body()

    def _render_body(self) -> None:
        items = self.visible()
        if self.is_group_view:
            for row, group in zip(self._rows, items, strict=False):
                row.show(self, group)
            rows: list[W.Widget] = self._rows[: len(items)]
        else:
            for tile, (sid,) in zip(self._singles, items, strict=False):
                tile.show(self, sid)
            if len(self._single_box.children) != len(items):
                self._single_box.children = self._singles[: len(items)]
            rows = [self._single_box]
        if list(self.body.children) != rows:
            self.body.children = rows
        n = self._per_page()
        upcoming = self._items()[(self.page + 1) * n : (self.page + 2) * n]
        if upcoming:
            self._warmer.submit(
                self._warm_thumbnails, [i for g in upcoming for i in g[:_MAX_GROUP_TILES]]
            )
        total = len(self._items())
        what = (
            f"{_n(total, 'group')} ({_n(sum(map(len, self._items())), 'image')})"
            if self.is_group_view
            else _n(total, "image")
        )
        with self.hold_sync():
            self.page_label.value = f"<span>Page {self.page + 1} / {self._pages()} · {what}</span>"
            self.prev_button.disabled = self.page == 0
            self.next_button.disabled = self.page >= self._pages() - 1
        self._update_counts()
