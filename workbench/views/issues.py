"""IssueReview: flagged samples per issue type, duplicate groups side by side, live thresholds.

The view stays quick on large datasets: the body (every tile, group head and button of a page) is
one widget value, so a page flip, a threshold move or a decision reaches the browser as one
message (a widget per tile made a page dozens of messages, drawn one after another); thumbnails'
data URIs and a large group's hidden members are kept between redraws; the histogram is redrawn
only when the issue or its threshold changes; groups and counts are computed once per threshold.
It listens to its :class:`~workbench.decisions.Decisions` store, so decisions taken in a notebook
cell or another view show here at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as W

from workbench._validation import check_positive_int
from workbench.background import Latest
from workbench.catalog import Catalog
from workbench.clean import CHECKS, DUPLICATE_CHECKS, HASH_BITS, IssueReport
from workbench.decisions import Decisions
from workbench.errors import ParameterError
from workbench.plots import score_histogram_png, warm_score_histogram
from workbench.views._common import ErrorBanner, HtmlBoard, escape, guarded, path_html
from workbench.workspace import Workspace

_MAX_GROUP_TILES = 12  # a chained group of hundreds shows 12 tiles, the rest as small images
# The body (every tile, group head and button of the page) is ONE widget value: a page flip,
# a threshold move or a decision is one message, not one per tile. Classes, not inline styles.
_CSS = """<style>
.wb-issues .wb-issue-body .wb-tiles { display: flex; flex-wrap: wrap; }
.wb-issues .wb-tile { display: flex; flex-direction: column; align-items: center; margin: 2px;
  padding: 2px; }
.wb-issues .wb-tile img { display: block; }
.wb-issues .wb-tile.wb-excluded .wb-thumb, .wb-issues img.wb-excluded { opacity: 0.35; }
.wb-issues .wb-tile.wb-keeper { outline: 2px solid #2e7d32; outline-offset: -2px; }
.wb-issues .wb-caption { font-size: 11px; line-height: 1.3; margin: 2px 0; }
.wb-issues .wb-caption .wb-seg { display: inline-block; max-width: 100%; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; vertical-align: bottom; }
.wb-issues .wb-group { margin: 4px 0; }
.wb-issues .wb-group-head { display: flex; align-items: center; gap: 6px; margin: 2px 0; }
.wb-issues .wb-hidden-members { display: flex; flex-wrap: wrap; }
.wb-issues .wb-hidden-members img { margin: 1px; }
.wb-issues .widget-button { margin-right: 6px; }
.wb-issues .wb-issue-body .jupyter-button { width: auto; flex: 0 0 auto; }
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


def _button(label: str, cls: str, action: str, item: str, *, style: str = "",
            disabled: bool = False, tooltip: str = "", width: str = "") -> str:  # fmt: skip
    """A button inside the body: looks like an ipywidgets button, clicks reach the board."""
    mod = f" mod-{style}" if style else ""
    extra = (" disabled" if disabled else "") + (f' title="{escape(tooltip)}"' if tooltip else "")
    size = f' style="width:{width}"' if width else ""
    return (
        f'<button class="jupyter-button widget-button{mod} {cls}" data-wb-action="{action}" '
        f'data-wb-item="{escape(item)}"{extra}{size}>{escape(label)}</button>'
    )


class _Body:
    """The body's HTML from the view's state: per duplicate group (or one row of single samples)
    its head, tiles and hidden members. Thumbnails' data URIs and the hidden members' HTML are
    kept (a group can hold hundreds of members)."""

    def __init__(self) -> None:
        self._uris: dict[tuple[str, int], str] = {}  # thumbnails as data URIs, by id and size
        self._mosaics: dict[str, tuple[tuple, str]] = {}  # hidden members' HTML, by keeper

    def uri(self, view: IssueReview, sid: str, size: int) -> str:
        key = (sid, size)
        uri = self._uris.get(key)
        if uri is None:
            if len(self._uris) > 4096:  # a bound on memory; thumbnails stay in the catalog's cache
                self._uris.clear()
            uri = self._uris[key] = view.catalog.thumbnail(sid, size).data_uri()
        return uri

    def mosaic(self, view: IssueReview, group: list[str]) -> str:
        """Small thumbnails of a group's members beyond its tiles (made again only when they or
        their decisions change: a group can hold hundreds)."""
        rest = group[_MAX_GROUP_TILES:]
        key = (tuple(rest), frozenset(i for i in rest if i in view._excluded))
        cached = self._mosaics.get(group[0])
        if cached is not None and cached[0] == key:
            return cached[1]
        size = max(24, view.thumb_size // 2)
        imgs = []
        for sid in rest:
            out = " class='wb-excluded'" if sid in view._excluded else ""
            why = " (excluded)" if out else ""
            imgs.append(
                f"<img src='{self.uri(view, sid, size)}' width='{size}' height='{size}'{out}"
                f" title='{escape(sid)}{why}' alt='{escape(sid)}'>"
            )
        html = f"<div class='wb-hidden-members'>{''.join(imgs)}</div>"
        self._mosaics[group[0]] = (key, html)
        return html

    def tile(
        self, view: IssueReview, sid: str, *, keeper: bool = False, note: str = ""
    ) -> dict[str, Any]:
        """One sample's tile: its state, caption (id, score, why excluded) and button."""
        reason = view._excluded.get(sid)
        score = view._scores().get(sid)
        badge = "<b style='color:#2e7d32'>keeper</b><br>" if keeper else ""
        score_s = "" if score is None else f"score {score:.3f}"
        state = ""
        if reason is not None:
            issue, why_note = reason
            why = ""  # say so when the exclusion is not this tile's own: its buttons keep it
            if issue != view.issue.value:
                why = f" ({escape(issue or 'in code')})"
            elif why_note != note:
                why = " (earlier)"
            state = f"<br><b style='color:#b00020'>excluded</b>{why}"
        # ids break only after a "/", never inside a name
        caption = f"{badge}{path_html(sid, 'wb-id')}<br>{score_s}{state}"
        return {"id": sid, "keeper": keeper, "excluded": reason is not None, "caption": caption}

    def rows(self, view: IssueReview) -> list[dict[str, Any]]:
        """What the body shows: per duplicate group (or one row of single samples) the tiles,
        the group's state and its hidden members."""
        items = view.visible()
        if not view.is_group_view:
            return [{"group": None, "tiles": [self.tile(view, sid) for (sid,) in items]}]
        rows = []
        for group in items:
            note = _group_note(group)
            tiles = [
                self.tile(view, sid, keeper=k == 0, note=note)
                for k, sid in enumerate(group[:_MAX_GROUP_TILES])
            ]
            rows.append(
                {
                    "group": group,
                    "tiles": tiles,
                    "expanded": view._all_shown(group),
                    "excluded": sum(i in view._excluded for i in group),
                }
            )
        return rows

    def tile_html(self, view: IssueReview, tile: dict[str, Any]) -> str:
        size = view.thumb_size
        classes = "wb-tile" + (" wb-keeper" if tile["keeper"] else "")
        out = tile["excluded"]
        classes += " wb-excluded" if out else ""
        sid = tile["id"]
        button = _button(
            "Keep" if out else "Exclude", "wb-keep" if out else "wb-exclude", "toggle", sid,
            style="" if out else "warning", width=f"{size}px",
        )  # fmt: skip
        return (
            f'<div class="{classes}"><img class="wb-thumb" src="{self.uri(view, sid, size)}" '
            f'width="{size}" height="{size}" alt="{escape(sid)}">'
            f'<div class="wb-caption" style="width:{size + 8}px">{tile["caption"]}</div>'
            f"{button}</div>"
        )

    def row_html(self, view: IssueReview, row: dict[str, Any]) -> str:
        tiles = "".join(self.tile_html(view, t) for t in row["tiles"])
        group = row["group"]
        if group is None:
            return f'<div class="wb-tiles">{tiles}</div>'
        keeper, expanded, hidden = group[0], row["expanded"], len(group) - _MAX_GROUP_TILES
        title = f"<b>{_n(len(group), 'image')}</b>" + (
            f" · {row['excluded']:,} excluded" if row["excluded"] else ""
        )
        note = "" if expanded else f"show all {len(group)} first: {hidden} are hidden"
        head = [
            f'<span class="wb-group-title">{title}</span>',
            _button("Exclude all but keeper", "wb-exclude-group", "exclude-group", keeper,
                    style="warning", disabled=not expanded, tooltip=note),
            _button("Keep all", "wb-keep-group", "keep-group", keeper, disabled=not expanded,
                    tooltip=note),
        ]  # fmt: skip
        if not expanded:
            head.append(_button(f"Show all {len(group)}", "wb-more", "more", keeper))
        more = self.mosaic(view, group) if hidden > 0 and expanded else ""
        return (
            f'<div class="wb-group"><div class="wb-group-head">{"".join(head)}</div>'
            f'<div class="wb-tiles">{tiles}</div>{more}</div>'
        )

    def html(self, view: IssueReview, rows: list[dict[str, Any]]) -> str:
        return "".join(self.row_html(view, r) for r in rows)


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
        self.body = HtmlBoard(layout=W.Layout(width="100%")).add_class("wb-issue-body")
        self.body.on_action(self._on_body_action)
        #: What the body draws now: per group (or one row of single samples) its ids, tiles
        #: and buttons; the body's HTML is made from it.
        self.shown: list[dict[str, Any]] = []
        self._html = _Body()
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
        return [list(g) for g in self._items()[self.page * n : (self.page + 1) * n]]

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
        self._draw_body()

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
        self._refresh(slider=True)

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
    def _on_body_action(self, action: str, _index: int, item: str | None) -> None:
        """A click in the body: a tile's Exclude / Keep (``item``: its id) or a group's button
        (``item``: the group's keeper). A click on what is no longer shown does nothing."""
        if item is None:
            return
        items = self.visible()
        if action == "toggle":
            group = next((g for g in items if item in g), None)
            if group is None:
                return
            note = _group_note(group) if self.is_group_view else ""
            if item in self._excluded:
                self.keep([item], note=note)
            else:
                self.exclude([item], note=note)
            return
        group = next((g for g in items if g[0] == item), None)
        if group is None or not self.is_group_view:
            return
        if action == "more":
            self.expand(group)
        elif not self._all_shown(group):  # members hidden: nothing acts on what was not shown
            return
        elif action == "exclude-group":
            self.exclude_duplicates(group)
        elif action == "keep-group":
            self.keep_group(group)

    @guarded
    def _on_decisions_change(self, _action: str, _ids: list[str]) -> None:
        """Any decision on the store (this view, code, another view): restyle, recount."""
        self._excluded = self.decisions.excluded_for()
        html, counts = self._body_html(), self._counts_html()  # both ready, then both sent
        if self.body.html != html:
            self.body.html = html
        self.counts.value = counts

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

    def _current(self, kind: str, make: Callable[[], Any]) -> Any:
        """``make()`` for the current issue and threshold, kept until they change (one value
        per kind: these grow with the flagged samples, so older thresholds' are dropped)."""
        held = self._cache.get((kind,))
        if held is None or held[0] != self._key():  # type: ignore[index]
            held = self._cache[(kind,)] = (self._key(), make())
        return held[1]  # type: ignore[index]

    def _members(self) -> tuple[set[str], int]:
        """The ids the current issue shows (all pages) and how many its items hold: counted
        once per threshold, not per page flip."""
        items = self._items()
        return self._current(
            "members", lambda: ({i for g in items for i in g}, sum(map(len, items)))
        )

    def _scores(self) -> dict[str, float]:
        """Score per id of what the current issue can show (flagged or in a group): not one
        entry per catalog row, which costs tens of MB at a million rows."""

        def make() -> dict[str, float]:
            t = self.report.table
            t = t[t["issue"] == self.issue.value]
            t = t[t["flagged"] | t["group"].notna()]
            return dict(zip(t["id"], t["score"].astype(float), strict=True))

        return self._current("scores", make)

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
            self._cache[key] = score_histogram_png(
                self.report.scores(issue), self.report.thresholds[issue], xlabel=_xlabel(issue)
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
        for issue in list(self.report.thresholds):
            warm_score_histogram(self.report.score_chunks(issue), xlabel=_xlabel(issue))

    def _all_shown(self, group: list[str]) -> bool:
        return len(group) <= _MAX_GROUP_TILES or group[0] in self._expanded

    def _body_html(self) -> str:
        """The page's tiles, group heads and buttons as one HTML value (``shown`` follows)."""
        self.shown = self._html.rows(self)
        return self._html.html(self, self.shown)

    def _draw_body(self) -> None:
        html = self._body_html()
        if self.body.html != html:
            self.body.html = html

    def _set_slider(self, issue: str) -> None:
        """Range, step and value of the issue's threshold, as ONE message and unobserved: the
        browser never sees the old value on the new step (it would snap it and send it back)."""
        self.threshold.unobserve(self._on_threshold_change, "value")
        try:
            with self.threshold.hold_sync():
                self.threshold.min, self.threshold.max = 0.0, 1.0
                self.threshold.step = _step(issue)
                self.threshold.value = self.report.thresholds[issue]
        finally:
            self.threshold.observe(self._on_threshold_change, "value")

    def _update_counts(self) -> None:
        self.counts.value = self._counts_html()

    def _counts_html(self) -> str:
        issue = self.issue.value
        shown, excluded = self._members()[0], self._excluded
        # the shown ids that are excluded: walk the smaller of the two
        if len(excluded) < len(shown):
            here = sum(i in shown for i in excluded)
        else:
            here = sum(i in excluded for i in shown)
        what = "in groups" if self.is_group_view else "flagged"
        return (
            f"<span>{_n(len(shown), 'image')} {what} · {here:,} of them excluded · "
            f"{len(self._excluded):,} excluded in total</span>"
            if issue in DUPLICATE_CHECKS
            else f"<span>{self._count(issue):,} flagged · {here:,} of them excluded · "
            f"{len(self._excluded):,} excluded in total</span>"
        )

    def _refresh(self, slider: bool = False) -> None:
        """Redraw for a new issue (``slider``: its threshold range too) or threshold.

        Everything is computed first and the changes are sent back to back at the end, so
        they reach the page together instead of one by one as each is ready."""
        self.error.clear()
        issue = self.issue.value
        self._excluded = self.decisions.excluded_for()
        options = self._options()
        png = self._histogram_png()
        note = ""
        if issue == "near_duplicate":
            note = f"pHash + dHash distance ≤ <b>{self.report.radius}</b> of 128 bits"
        page = self._page_values()
        if slider:
            self._set_slider(issue)
        if list(self.issue.options) != options:
            self.issue.unobserve(self._on_issue_change, "value")
            try:
                with self.issue.hold_sync():  # new labels and the same choice: one message
                    self.issue.options = options
                    self.issue.value = issue
            finally:
                self.issue.observe(self._on_issue_change, "value")
        self.histogram.value = png
        self.threshold_note.value = f"<span style='font-size:12px'>{note}</span>"
        self.threshold_note.layout.display = None if note else "none"
        self._show_page(page)

    def _render_body(self) -> None:
        self._show_page(self._page_values())

    def _page_values(self) -> dict[str, Any]:
        """The body's HTML, the page label, the buttons' states and the counts, computed."""
        body = self._body_html()
        total = len(self._items())
        what = (
            f"{_n(total, 'group')} ({_n(self._members()[1], 'image')})"
            if self.is_group_view
            else _n(total, "image")
        )
        return {
            "body": body,
            "label": f"<span>Page {self.page + 1} / {self._pages()} · {what}</span>",
            "first": self.page == 0,
            "last": self.page >= self._pages() - 1,
            "counts": self._counts_html(),
        }

    def _show_page(self, values: dict[str, Any]) -> None:
        """Send what :meth:`_page_values` computed (only what changed), then warm the next
        page's thumbnails."""
        if self.body.html != values["body"]:
            self.body.html = values["body"]
        self.page_label.value = values["label"]
        self.prev_button.disabled = values["first"]
        self.next_button.disabled = values["last"]
        self.counts.value = values["counts"]
        n = self._per_page()
        upcoming = self._items()[(self.page + 1) * n : (self.page + 2) * n]
        if upcoming:
            self._warmer.submit(
                self._warm_thumbnails, [i for g in upcoming for i in g[:_MAX_GROUP_TILES]]
            )
