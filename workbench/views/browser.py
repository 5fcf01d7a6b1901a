"""DataBrowser: a paged thumbnail grid over a Catalog, with filters, sorting and a detail pane."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import ipywidgets as W
from ipyevents import Event

from workbench._validation import check_positive_int
from workbench.catalog import Catalog
from workbench.errors import ParameterError
from workbench.plots import summary_png
from workbench.thumbs import escape
from workbench.views._common import ErrorBanner, guarded, table_html

PAGE_SIZES = (12, 24, 48, 96)
_ALL = "(all)"
_FILTER_COLUMNS = ("label", "split", "status", "mode", "format")


class DataBrowser(W.VBox):
    """Browse a catalog page by page.

    Parameters
    ----------
    catalog
        What to browse. Kept as ``browser.catalog``; the filtered, sorted rows are ``browser.view``.
    page_size
        Tiles per page (one of 12, 24, 48, 96 in the control; any positive number from code).
    thumb_size
        Tile edge in pixels.
    columns
        Metadata columns shown under each tile, after the id.
    sort_by
        Initial sort column (``None`` keeps catalog order).

    Notes
    -----
    Keyboard: with the pointer over the browser, ← / → flip pages. Click a tile to see the
    sample large with all its metadata. Thumbnails come from ``catalog.thumbs`` (a memory LRU,
    plus the workspace's disk cache when the catalog came from a Workspace); the next page is
    rendered in the background so flipping forward is instant too.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        page_size: int = 24,
        thumb_size: int = 112,
        columns: Sequence[str] = ("label",),
        sort_by: str | None = None,
    ) -> None:
        check_positive_int(page_size, "page_size")
        self.catalog = catalog
        self.view = catalog
        self.thumb_size = check_positive_int(thumb_size, "thumb_size")
        self.columns = [c for c in columns if c in catalog.df.columns]
        self.page = 0
        self.selected_id: str | None = None
        self._select_callbacks: list[Callable[[str], None]] = []
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="wb-thumbs")
        self._events: list[Event] = []

        self.error = ErrorBanner()
        self.query = W.Text(
            placeholder="pandas query, e.g. label == 'cat' and width > 20  (Enter to apply)",
            continuous_update=False,
            layout=W.Layout(width="420px"),
        ).add_class("wb-query")
        self.column_filters: dict[str, W.Dropdown] = {}
        for c in _FILTER_COLUMNS:
            values = catalog.df[c].dropna().astype(str).unique() if c in catalog.df else []
            if 1 <= len(values) <= 60 and not (c == "status" and len(values) == 1):
                dd = W.Dropdown(
                    options=[_ALL, *sorted(values)],
                    value=_ALL,
                    description=c,
                    layout=W.Layout(width="190px"),
                    style={"description_width": "40px"},
                )
                dd.add_class(f"wb-filter-{c}")
                dd.observe(self._on_filter_change, "value")
                self.column_filters[c] = dd
        self.sort_column = W.Dropdown(
            options=["(catalog order)", *catalog.df.columns],
            value=sort_by if sort_by in catalog.df.columns else "(catalog order)",
            description="sort",
            layout=W.Layout(width="220px"),
            style={"description_width": "32px"},
        ).add_class("wb-sort")
        self.sort_order = W.ToggleButtons(
            options=[("↑", True), ("↓", False)], value=True, tooltips=["ascending", "descending"],
            style={"button_width": "32px"},
        ).add_class("wb-order")  # fmt: skip
        self.page_size = W.Dropdown(
            options=sorted({*PAGE_SIZES, page_size}),
            value=page_size,
            description="per page",
            layout=W.Layout(width="150px"),
            style={"description_width": "60px"},
        ).add_class("wb-page-size")
        self.prev_button = W.Button(description="◀ Prev", layout=W.Layout(width="80px"))
        self.prev_button.add_class("wb-prev")
        self.next_button = W.Button(description="Next ▶", layout=W.Layout(width="80px"))
        self.next_button.add_class("wb-next")
        self.page_label = W.HTML().add_class("wb-page")

        self.grid = W.GridBox(
            layout=W.Layout(
                grid_template_columns=f"repeat(auto-fill, minmax({thumb_size + 8}px, 1fr))",
                grid_gap="6px",
                width="100%",
            )
        ).add_class("wb-grid")
        self.detail_image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.detail_meta = W.HTML()
        self.detail = W.VBox(
            [W.HTML("<b>Selected sample</b>"), self.detail_image, self.detail_meta],
            layout=W.Layout(width="340px", min_width="340px", display="none", padding="0 0 0 8px"),
        ).add_class("wb-detail")
        self.summary_button = W.ToggleButton(description="Summary plots", icon="bar-chart")
        self.summary_button.add_class("wb-summary-toggle")
        self.summary_image = W.Image(format="png", layout=W.Layout(display="none"))
        self.summary_image.add_class("wb-summary")

        self.query.observe(self._on_query_change, "value")
        self.sort_column.observe(self._on_sort_change, "value")
        self.sort_order.observe(self._on_sort_change, "value")
        self.page_size.observe(self._on_page_size_change, "value")
        self.prev_button.on_click(self._on_prev_click)
        self.next_button.on_click(self._on_next_click)
        self.summary_button.observe(self._on_summary_toggle, "value")

        toolbar = W.HBox(
            [self.query, *self.column_filters.values()], layout=W.Layout(flex_flow="row wrap")
        )
        nav = W.HBox(
            [self.sort_column, self.sort_order, self.page_size, self.prev_button,
             self.page_label, self.next_button, self.summary_button],
            layout=W.Layout(flex_flow="row wrap", align_items="center"),
        )  # fmt: skip
        body = W.HBox([self.grid, self.detail], layout=W.Layout(width="100%"))
        super().__init__([toolbar, nav, self.error, body, self.summary_image])
        self.add_class("wb-browser")
        keys = Event(source=self, watched_events=["keydown"], prevent_default_action=False)
        keys.on_dom_event(self._on_key)
        self._keys = keys
        self._build_tiles()
        self._apply()

    # ------------------------------------------------------------------ public API
    @property
    def pages(self) -> int:
        """Number of pages for the current filter (at least 1)."""
        return max(1, math.ceil(len(self.view) / self.page_size.value))

    @property
    def visible_ids(self) -> list[str]:
        """Ids of the samples on the current page, in order."""
        n = self.page_size.value
        return self.view.df["id"].iloc[self.page * n : (self.page + 1) * n].tolist()

    def go(self, page: int) -> None:
        """Show page ``page`` (0-based; clipped to the valid range)."""
        self.page = min(max(0, int(page)), self.pages - 1)
        self._render_page()

    def next_page(self) -> None:
        self.go(self.page + 1)

    def prev_page(self) -> None:
        self.go(self.page - 1)

    def set_query(self, query: str) -> None:
        """Filter with a pandas query string (as typed in the query box)."""
        self.query.value = query

    def inspect(self, sample_id: str) -> None:
        """Show one sample large, with all its metadata, in the detail pane."""
        row = self.catalog.row(sample_id)
        thumb = self.catalog.thumbnail(sample_id, size=320)
        with self.detail.hold_sync():
            self.detail_image.format = thumb.format
            self.detail_image.value = thumb.data
            self.detail_meta.value = table_html(row)
            self.detail.layout.display = None
        self.selected_id = sample_id
        for fn in self._select_callbacks:
            fn(sample_id)

    def on_select(self, fn: Callable[[str], None]) -> None:
        """Call ``fn(sample_id)`` whenever a tile is clicked."""
        self._select_callbacks.append(fn)

    def close(self) -> None:
        pool = getattr(self, "_pool", None)  # absent when the constructor refused its arguments
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        super().close()

    # ------------------------------------------------------------------ handlers
    @guarded
    def _on_query_change(self, change: dict) -> None:
        self._apply()

    @guarded
    def _on_filter_change(self, change: dict) -> None:
        self._apply()

    @guarded
    def _on_sort_change(self, change: dict) -> None:
        self._apply()

    @guarded
    def _on_page_size_change(self, change: dict) -> None:
        first = self.page * change["old"]
        self._build_tiles()
        self.page = first // change["new"]
        self._render_page()

    @guarded
    def _on_prev_click(self, _button: W.Button) -> None:
        self.prev_page()

    @guarded
    def _on_next_click(self, _button: W.Button) -> None:
        self.next_page()

    @guarded
    def _on_tile_click(self, slot: int) -> None:
        ids = self.visible_ids
        if slot < len(ids):
            self.inspect(ids[slot])

    @guarded
    def _on_key(self, event: dict) -> None:
        key = event.get("key")
        if key == "ArrowRight":
            self.next_page()
        elif key == "ArrowLeft":
            self.prev_page()

    @guarded
    def _on_summary_toggle(self, change: dict) -> None:
        if change["new"]:
            self.summary_image.value = summary_png(self.view)
            self.summary_image.layout.display = None
        else:
            self.summary_image.layout.display = "none"

    # ------------------------------------------------------------------ internals
    def _apply(self) -> None:
        """Recompute the view from query + column filters + sort, then show page 1."""
        self.error.clear()
        try:
            view = self.catalog.filter(self.query.value)
        except ParameterError as e:  # keep the other filters working while the query is fixed
            self.error.show(str(e))
            view = self.catalog
        for c, dd in self.column_filters.items():
            if dd.value != _ALL:
                view = view.filter(view.df[c].astype(str) == dd.value)
        if self.sort_column.value in self.catalog.df.columns:
            view = view.sort(self.sort_column.value, ascending=self.sort_order.value)
        self.view = view
        self.page = 0
        self._render_page()

    def _build_tiles(self) -> None:
        for ev in self._events:
            ev.close()
        self.tiles, self._events = [], []
        for slot in range(self.page_size.value):
            img = W.Image(format="png", layout=W.Layout(width=f"{self.thumb_size}px"))
            img.add_class("wb-thumb")
            caption = W.HTML(layout=W.Layout(width=f"{self.thumb_size + 8}px"))
            tile = W.VBox([img, caption], layout=W.Layout(align_items="center"))
            tile.add_class("wb-tile")
            ev = Event(source=img, watched_events=["click"])
            ev.on_dom_event(lambda _e, slot=slot: self._on_tile_click(slot))
            self.tiles.append(tile)
            self._events.append(ev)

    def _caption(self, row: dict) -> str:
        name = escape(row["id"].rsplit("/", 1)[-1])
        parts = [f'<div title="{escape(row["id"])}" style="overflow:hidden;'
                 f'text-overflow:ellipsis;white-space:nowrap"><b>{name}</b></div>']  # fmt: skip
        if row["status"] != "ok":
            parts.append(
                f'<div style="color:#b00020" title="{escape(row["error"])}">'
                f"{escape(row['status'])}: {escape(str(row['error'])[:60])}</div>"
            )
        for c in self.columns:
            v = row.get(c)
            if v is not None and str(v) != "nan":
                parts.append(f"<div>{escape(c)}: {escape(v)}</div>")
        return f'<div style="font-size:11px;line-height:1.2">{"".join(parts)}</div>'

    def _render_page(self) -> None:
        n = self.page_size.value
        rows = self.view.df.iloc[self.page * n : (self.page + 1) * n].to_dict("records")
        thumbs = list(
            self._pool.map(lambda r: self.catalog.thumbnail(r["id"], self.thumb_size), rows)
        )
        with self.hold_sync():
            for tile, row, thumb in zip(self.tiles, rows, thumbs, strict=False):
                img, caption = tile.children
                img.format = thumb.format
                img.value = thumb.data
                caption.value = self._caption(row)
            self.grid.children = self.tiles[: len(rows)]
            total = len(self.view)
            shown = f"{self.page * n + 1:,}–{self.page * n + len(rows):,}" if rows else "0"
            self.page_label.value = (
                f"<span>Page <b>{self.page + 1}</b> / {self.pages} · {shown} of {total:,}"
                f"{'' if total == len(self.catalog) else f' (filtered from {len(self.catalog):,})'}"
                "</span>"
            )
            self.prev_button.disabled = self.page == 0
            self.next_button.disabled = self.page >= self.pages - 1
        self._prefetch(self.page + 1)

    def _prefetch(self, page: int) -> None:
        n = self.page_size.value
        ids = self.view.df["id"].iloc[page * n : (page + 1) * n].tolist()
        for i in ids:
            self._pool.submit(self.catalog.thumbnail, i, self.thumb_size)
