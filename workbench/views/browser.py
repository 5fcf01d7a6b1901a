"""DataBrowser: a paged thumbnail grid over a Catalog, with filters, sorting and a detail pane.

Keyboard shortcuts (← / → flip pages, Esc closes the detail pane) are read by the views' key
reader, :class:`~workbench.views._common.KeyReader`, which leaves every key typed into a text
field (the query box, a menu, a notebook cell) to that field. ipyevents is not used for keys: while
the pointer is over its source it cancels every key on the page, whatever
``prevent_default_action`` says, and it moves the focus out of a field the user is typing in
(ipyevents issue #57).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from workbench._validation import check_positive_int
from workbench.catalog import Catalog
from workbench.errors import ParameterError
from workbench.plots import summary_png
from workbench.thumbs import Thumb
from workbench.views._common import ErrorBanner, HtmlBoard, KeyReader, escape, guarded, path_html

if TYPE_CHECKING:
    import pandas as pd

PAGE_SIZES = (12, 24, 48, 96)
_ALL = "(all)"
_FILTER_COLUMNS = ("label", "split", "status", "mode", "format")
_GAP = 6  # px between tiles, both ways
_DETAIL_WIDTH = 340
_instances = itertools.count()
log = logging.getLogger("workbench.views")


def _columns_css(scope: str, page_size: int, tile: int) -> str:
    """Grid columns that divide the page: the most that fit the grid's width, by container query.

    A page of 24 fills 8, 6, 4, 3 or 2 columns (never 7 with 3 orphans). Container queries follow
    the grid's own width, so opening the detail pane re-flows the tiles into whole rows too.
    """
    rules = [f".{scope} .wb-grid {{ grid-template-columns: minmax({tile}px, 1fr); }}"]
    for k in range(2, page_size + 1):
        if page_size % k == 0:
            width = k * tile + (k - 1) * _GAP
            rules.append(
                f"@container (min-width: {width}px) {{ .{scope} .wb-grid "
                f"{{ grid-template-columns: repeat({k}, minmax({tile}px, 1fr)); }} }}"
            )
    return "\n".join(rules)


_STYLE = """
.{scope} .wb-grid-wrap {{ container-type: inline-size; }}
.{scope} .wb-grid {{ display: grid; gap: {gap}px; width: 100%; align-content: flex-start; }}
.{scope} .wb-tile {{ border-radius: 4px; padding: 2px 0; display: flex; flex-direction: column;
  align-items: center; cursor: pointer; min-width: 0; }}
.{scope} .wb-tile img {{ display: block; }}
.{scope} .wb-pager {{ display: flex; align-items: center; gap: 8px; margin: 0 0 6px; }}
.{scope} .wb-pager button {{ width: 80px; }}
.{scope} .wb-pager button:disabled {{ opacity: 0.45; cursor: default; }}
.{scope} .wb-tile.wb-selected {{ outline: 3px solid #1976d2; background: #e3f0fc; }}
.{scope} .wb-detail-meta table {{ font-size: 12px; line-height: 1.35; table-layout: fixed;
  width: 100%; border-collapse: collapse; }}
.{scope} .wb-detail-meta th {{ text-align: left; vertical-align: top; width: 68px;
  padding-right: 6px; }}
.{scope} .wb-detail-meta td {{ overflow-wrap: break-word; }}
.{scope} .wb-seg {{ display: inline-block; max-width: 100%; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; vertical-align: bottom; }}
.{scope} .wb-common {{ color: #555; font-size: 12px; }}
"""


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """``df.to_dict("records")`` column by column: 0.6 ms for a page of 24, not 1.0 (arrow
    string columns are taken row by row there)."""
    names = list(df.columns)
    rows = zip(*(df[c].tolist() for c in names), strict=True)
    return [dict(zip(names, values, strict=True)) for values in rows]


def _when_done(futures: list[Future], fn: Callable[[], Any]) -> None:
    """Call ``fn()`` once every future is done (at once when there are none), on the thread that
    finished the last; no thread waits meanwhile."""
    left, lock = [len(futures)], threading.Lock()

    def one_done(_future: Future) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            fn()

    if not futures:
        fn()
    for f in futures:
        f.add_done_callback(one_done)


def _detail_html(row: dict[str, Any]) -> str:
    """All metadata of one sample as a key/value table, escaped; paths break only at ``/``."""
    cells = []
    for k, v in row.items():
        shown = path_html(str(v), f"wb-{k}") if k in ("id", "path") else escape(v)
        cells.append(f"<tr><th>{escape(k)}</th><td>{shown}</td></tr>")
    return f"<table>{''.join(cells)}</table>"


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
        Metadata columns shown under each tile, after the file name. A column whose value is the
        same for every row of the (filtered) view is said once above the grid instead.
    sort_by
        Initial sort column (``None`` keeps catalog order).

    Notes
    -----
    Keyboard: with the pointer over the browser and the focus not in a text field, ← / → flip
    pages and Esc closes the detail pane; in the query box every key is the box's. Click a tile
    to see the sample large with all its metadata (✕ or Esc closes it). The grid uses as many
    columns as fit and divide the page size, so rows are full. Thumbnails come from
    ``catalog.thumbs`` (a memory LRU, plus the workspace's disk cache when the catalog came from a
    Workspace). The next page is made in the background and sent to the page ahead (with the
    previous one while its thumbnails are in memory), so ◀ Prev and Next ▶ draw it at the click,
    without waiting for the kernel.
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
        self.varying_columns: list[str] = list(self.columns)
        self.page = 0
        self.selected_id: str | None = None
        self._selected_slot: int | None = None
        self._select_callbacks: list[Callable[[str], None]] = []
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="wb-thumbs")
        self._ahead_lock = threading.Lock()  # the shown page's key, read by the pool's threads
        try:  # a kernel runs cells inside its event loop: widget messages are sent from there
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._key = ""
        self._shown: list[tuple[dict[str, Any], Thumb]] = []  # the page's rows and thumbnails
        self._scope = f"wb-browser-{next(_instances)}"

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
                    options=[_ALL, *sorted(values)], value=_ALL, description=c,
                    layout=W.Layout(width="auto", max_width="320px"),
                    style={"description_width": "initial"},
                )  # fmt: skip
                dd.add_class(f"wb-filter-{c}")
                dd.observe(self._on_filter_change, "value")
                self.column_filters[c] = dd
        self.sort_column = W.Dropdown(
            options=["(catalog order)", *catalog.df.columns],
            value=sort_by if sort_by in catalog.df.columns else "(catalog order)",
            description="sort",
            layout=W.Layout(width="auto"),
            style={"description_width": "initial"},
        ).add_class("wb-sort")
        self.sort_order = W.ToggleButtons(
            options=[("↑", True), ("↓", False)], value=True, tooltips=["ascending", "descending"],
            style={"button_width": "32px"},
        ).add_class("wb-order")  # fmt: skip
        self.page_size = W.Dropdown(
            options=sorted({*PAGE_SIZES, page_size}),
            value=page_size,
            description="per page",
            layout=W.Layout(width="auto"),
            style={"description_width": "initial"},
        ).add_class("wb-page-size")
        self.common = W.HTML().add_class("wb-common")

        self._style = W.HTML(layout=W.Layout(display="none"))
        # The pager and the page's tiles are one widget value: a page flip is one message, not
        # one per tile, and the page draws the next (previous) page sent ahead at the click.
        self.grid = HtmlBoard(layout=W.Layout(width="100%")).add_class("wb-grid-board")
        self.grid.on_action(self._on_grid_action)
        self.grid.key_actions = {"ArrowRight": "next", "ArrowLeft": "prev"}  # as _on_key does
        grid_wrap = W.Box(
            [self.grid], layout=W.Layout(flex="1 1 0%", min_width="0")
        ).add_class("wb-grid-wrap")  # fmt: skip
        self.detail_image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.detail_meta = W.HTML(layout=W.Layout(width="100%")).add_class("wb-detail-meta")
        self.close_button = W.Button(
            description="✕", tooltip="Close (Esc)", layout=W.Layout(width="32px")
        ).add_class("wb-detail-close")
        self.close_button.on_click(self._on_close_click)
        header = W.HBox(
            [W.HTML("<b>Selected sample</b>", layout=W.Layout(flex="1 1 auto")), self.close_button],
            layout=W.Layout(align_items="center", width="100%"),
        )
        self.detail = W.VBox(
            [header, self.detail_image, self.detail_meta],
            layout=W.Layout(
                width=f"{_DETAIL_WIDTH}px", min_width=f"{_DETAIL_WIDTH}px", display="none",
                padding="0 0 0 8px",
            ),
        ).add_class("wb-detail")  # fmt: skip
        self.summary_button = W.ToggleButton(description="Summary plots", icon="bar-chart")
        self.summary_button.add_class("wb-summary-toggle")
        self.summary_image = W.Image(format="png", layout=W.Layout(display="none"))
        self.summary_image.add_class("wb-summary")

        self.query.observe(self._on_query_change, "value")
        self.sort_column.observe(self._on_sort_change, "value")
        self.sort_order.observe(self._on_sort_change, "value")
        self.page_size.observe(self._on_page_size_change, "value")
        self.summary_button.observe(self._on_summary_toggle, "value")

        toolbar = W.HBox(
            [self.query, *self.column_filters.values()],
            layout=W.Layout(flex_flow="row wrap", align_items="center", grid_gap="4px 12px"),
        )
        nav = W.HBox(
            [self.sort_column, self.sort_order, self.page_size, self.summary_button],
            layout=W.Layout(flex_flow="row wrap", align_items="center", grid_gap="4px 8px"),
        )  # fmt: skip
        # The pane's height must not stretch the grid's rows: align to the top.
        body = W.HBox(
            [grid_wrap, self.detail], layout=W.Layout(width="100%", align_items="flex-start")
        )
        self.shortcut_keys = KeyReader(self._scope, ["ArrowLeft", "ArrowRight", "Escape"])
        self.shortcut_keys.on_key(self._on_key)
        super().__init__(
            [self._style, self.shortcut_keys, toolbar, nav, self.error, self.common, body,
             self.summary_image]
        )  # fmt: skip
        self.add_class("wb-browser")
        self.add_class(self._scope)
        self._set_style()
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
        """Show one sample large, with all its metadata, in the detail pane; mark its tile."""
        row = self._page_row(sample_id) or self.catalog.row(sample_id)
        thumb = self.catalog.row_thumbnail(row, size=320)
        with self.hold_sync():
            self.detail_image.format = thumb.format
            self.detail_image.value = thumb.data
            self.detail_meta.value = _detail_html(row)
            self.detail.layout.display = None
            self.selected_id = sample_id
            self._draw_grid()
        for fn in self._select_callbacks:
            fn(sample_id)

    def _page_row(self, sample_id: str) -> dict[str, Any] | None:
        """The row of a sample on the current page, read by position: a click on a tile then
        needs no index over every id of the catalog (16 MiB and seconds at a million rows)."""
        first = self.page * self.page_size.value
        for k, (row, _) in enumerate(self._shown):
            if row["id"] == sample_id and first + k < len(self.view):
                found = self.view.row_at(first + k)
                return found if found["id"] == sample_id else None
        return None

    def close_detail(self) -> None:
        """Hide the detail pane and unmark the selected tile."""
        with self.hold_sync():
            self.detail.layout.display = "none"
            self.selected_id = None
            self._draw_grid()

    def on_select(self, fn: Callable[[str], None]) -> None:
        """Call ``fn(sample_id)`` whenever a tile is clicked."""
        self._select_callbacks.append(fn)

    def close(self) -> None:
        pool = getattr(self, "_pool", None)  # absent when the constructor refused its arguments
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        keys = self.__dict__.get("shortcut_keys")
        if keys is not None:
            keys.close()
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
        self._set_style()
        self.page = first // change["new"]
        self._render_page()

    @guarded
    def _on_close_click(self, _button: W.Button) -> None:
        self.close_detail()

    @guarded
    def _on_grid_action(self, action: str, index: int, _item: str | None) -> None:
        if action == "select":
            self._on_tile_click(index)
        elif action in ("next", "prev"):
            before = self.grid.html
            self.go(self.page + (1 if action == "next" else -1))
            if self.grid.html == before:  # the page may show what it drew ahead: not this
                self.grid.send_state("html")

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
        elif key == "Escape":
            self.close_detail()

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
            # no query: the catalog itself, not a copy of every row (1M rows are 100s of MB)
            query = self.query.value
            view = self.catalog.filter(query) if query.strip() else self.catalog
        except ParameterError as e:  # keep the other filters working while the query is fixed
            self.error.show(str(e))
            view = self.catalog
        for c, dd in self.column_filters.items():
            if dd.value != _ALL:
                view = view.filter(view.df[c].astype(str) == dd.value)
        if self.sort_column.value in self.catalog.df.columns:
            view = view.sort(self.sort_column.value, ascending=self.sort_order.value)
        self.view = view
        self._split_columns()
        self.page = 0
        self._render_page()

    def _split_columns(self) -> None:
        """Captions show the columns that differ between rows of the view; the rest, once."""
        df = self.view.df
        same = [c for c in self.columns if len(df) > 1 and df[c].nunique(dropna=False) == 1]
        self.varying_columns = [c for c in self.columns if c not in same]
        if same:
            shared = " · ".join(f"<b>{escape(c)}</b> {escape(df[c].iloc[0])}" for c in same)
            self.common.value = f"<span>All {len(df):,} shown: {shared}</span>"
            self.common.layout.display = None
        else:
            self.common.value = ""
            self.common.layout.display = "none"

    def _set_style(self) -> None:
        css = _STYLE.format(scope=self._scope, gap=_GAP)
        columns = _columns_css(self._scope, self.page_size.value, self.thumb_size + 8)
        self._style.value = f"<style>{css}\n{columns}</style>"

    @property
    def tile_ids(self) -> list[str]:
        """Ids of the tiles drawn now, in order."""
        return [row["id"] for row, _ in self._shown]

    @property
    def page_label(self) -> str:
        """The pager's text, as drawn between ◀ Prev and Next ▶ (HTML)."""
        return self._page_label(self.page, len(self._shown), self.view)

    def _draw_grid(self) -> None:
        """Show the pager and the page's tiles, then work out ahead what ◀ Prev and Next ▶
        will show."""
        key, html = HtmlBoard.keyed(self._page_html(self.page, self._shown, self.view))
        with self._ahead_lock:
            self._key = key
        if self.grid.html != html:
            self.grid.html = html
        self._look_ahead(key)

    def _page_label(self, page: int, shown: int, view: Catalog) -> str:
        n, total = self.page_size.value, len(view)
        span = f"{page * n + 1:,}–{page * n + shown:,}" if shown else "0"
        filtered = "" if total == len(self.catalog) else f" (filtered from {len(self.catalog):,})"
        pages = max(1, math.ceil(total / n))
        return f"Page <b>{page + 1}</b> / {pages} · {span} of {total:,}{filtered}"

    def _page_html(
        self, page: int, shown: list[tuple[dict[str, Any], Thumb]], view: Catalog
    ) -> str:
        """The pager and the page's tiles as one HTML value; the selected sample is marked."""
        last = page >= max(1, math.ceil(len(view) / self.page_size.value)) - 1
        pager = (
            '<div class="wb-pager">'
            '<button class="jupyter-button wb-prev" data-wb-action="prev" title="Previous page '
            f'(←)"{" disabled" if page == 0 else ""}>◀ Prev</button>'
            f'<span class="wb-page">{self._page_label(page, len(shown), view)}</span>'
            '<button class="jupyter-button wb-next" data-wb-action="next" title="Next page '
            f'(→)"{" disabled" if last else ""}>Next ▶</button></div>'
        )
        size = self.thumb_size
        tiles = []
        for k, (row, thumb) in enumerate(shown):
            marked = " wb-selected" if row["id"] == self.selected_id else ""
            tiles.append(
                f'<div class="wb-tile{marked}" data-wb-action="select" data-wb-index="{k}">'
                f'<img class="wb-thumb" src="{thumb.data_uri()}" width="{size}" '
                f'alt="{escape(row["id"])}" style="width:{size}px;height:auto">'
                f'<div class="wb-caption" style="width:{size + 8}px">{self._caption(row)}</div>'
                "</div>"
            )
        return f'{pager}<div class="wb-grid">{"".join(tiles)}</div>'

    def _caption(self, row: dict) -> str:
        name = escape(row["id"].rsplit("/", 1)[-1])
        parts = [f'<div title="{escape(row["id"])}" style="overflow:hidden;'
                 f'text-overflow:ellipsis;white-space:nowrap"><b>{name}</b></div>']  # fmt: skip
        if row["status"] != "ok":
            parts.append(
                f'<div style="color:#b00020" title="{escape(row["error"])}">'
                f"{escape(row['status'])}: {escape(str(row['error'])[:60])}</div>"
            )
        for c in self.varying_columns:
            v = row.get(c)
            if v is not None and str(v) != "nan":
                parts.append(f"<div>{escape(c)}: {escape(v)}</div>")
        return f'<div style="font-size:11px;line-height:1.2">{"".join(parts)}</div>'

    def _page_rows(self, view: Catalog, page: int) -> list[dict[str, Any]]:
        n = self.page_size.value
        return _records(view.df.iloc[page * n : (page + 1) * n])

    def _render_page(self) -> None:
        view = self.view  # one snapshot for the tiles and the label
        rows = self._page_rows(view, self.page)
        size, thumbs_cache = self.thumb_size, self.catalog.thumbs
        if all(thumbs_cache.in_memory(r["hash"], size) for r in rows):  # prefetched: no hand-off
            thumbs = [self.catalog.row_thumbnail(r, size) for r in rows]
        else:
            thumbs = list(self._pool.map(lambda r: self.catalog.row_thumbnail(r, size), rows))
        self._shown = list(zip(rows, thumbs, strict=True))
        self._draw_grid()

    def _send_ahead(self, key: str, drawn: dict[str, str]) -> None:
        with self._ahead_lock:
            if self._key == key:  # else the page changed meanwhile: a newer look-ahead runs
                self.grid.show_ahead(key, drawn)

    def _on_main_thread(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the kernel's event loop (widgets are not thread-safe), or at once when
        the view was made outside one (a script)."""
        if self._loop is None or self._loop.is_closed():
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _look_ahead(self, key: str) -> None:
        """Send the page what ◀ Prev and Next ▶ will show from the page keyed ``key``, once the
        next page's thumbnails are made (in the background); the previous page only when its
        thumbnails are still in memory. Dropped when the page has changed meanwhile."""
        view, page, size, n = self.view, self.page, self.thumb_size, self.page_size.value
        pages = {"next": page + 1, "prev": page - 1}
        pages = {a: p for a, p in pages.items() if 0 <= p < self.pages}

        def compose() -> None:  # in a worker: the flip's thread only queues work
            try:
                cache, drawn = self.catalog.thumbs, {}
                for action, p in pages.items():
                    rows = self._page_rows(view, p)
                    if action == "prev" and not all(cache.in_memory(r["hash"], size) for r in rows):
                        continue  # not made again just in case
                    shown = [(r, self.catalog.row_thumbnail(r, size)) for r in rows]
                    drawn[action] = HtmlBoard.keyed(self._page_html(p, shown, view))[1]
                if drawn:
                    self._on_main_thread(lambda: self._send_ahead(key, drawn))
            except Exception:  # only speed is lost: the click then waits for the kernel
                log.debug("could not draw ahead", exc_info=True)

        def later() -> None:
            with contextlib.suppress(RuntimeError):  # the view was closed meanwhile
                self._pool.submit(compose)

        # the next page's thumbnails first, both workers, by position: a lookup by id would
        # build an index over every id of the catalog, which a page flip does not need
        nxt = range(page * n + n, min(page * n + 2 * n, len(view))) if "next" in pages else ()
        _when_done([self._pool.submit(view.thumbnail_at, i, size) for i in nxt], later)
