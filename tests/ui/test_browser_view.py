"""DataBrowser in a real browser: every text field, menu, button and key, and the layout.

A small notebook (written into the server's root) builds ``DataBrowser(catalog)`` over 36 generated
images: two classes (cat, dog), each with nine 28×28 and nine 40×40 images, so filters and
captions have something to tell apart. Three tests, one kernel each.

DOM contract of ``workbench.views.DataBrowser`` relied on here (classes added with ``add_class``,
which ipywidgets puts on the widget's own element):

- ``.wb-browser``                      root box (reads ← / → / Esc when focus is not in a field)
- ``.wb-query input``                  the pandas query box
- ``.wb-filter-<column> select``       per-column menus (label, format, ...)
- ``.wb-sort select``, ``.wb-order button``, ``.wb-page-size select``
- ``button.wb-prev`` / ``button.wb-next``, ``.wb-page`` (page label), ``.wb-common`` (values
  all shown tiles share)
- ``.wb-grid``, ``.wb-tile`` (``.wb-selected`` on the selected one), ``.wb-tile img``
- ``.wb-detail`` (display none when closed), ``.wb-detail img``, ``button.wb-detail-close``,
  ``.wb-detail-meta`` (metadata table)
- ``button.wb-summary-toggle``, ``img.wb-summary``
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.ui

NOTEBOOK = "browser_ui.ipynb"
ROOT = ".wb-browser"
GRID = ".wb-browser .wb-grid"
QUERY = ".wb-browser .wb-query input"
PAGE = ".wb-browser .wb-page"
TILE_IMGS = ".wb-browser .wb-tile img"
DETAIL = ".wb-browser .wb-detail"
# In the kernel: wait until what the pager can show next was sent ahead for the page shown
# (it is sent from the kernel's event loop, which this waits on).
AHEAD_SENT = (
    "import asyncio, time\n"
    "while browser.grid.ahead.get('base', '?') not in browser.grid.html:\n"
    "    await asyncio.sleep(0.02)"
)


def _make_images(root: Path) -> None:
    """36 images: cat/ and dog/, each with nine 28×28 and nine 40×40, all different."""
    rng = np.random.default_rng(0)
    for k, cls in enumerate(("cat", "dog")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(18):
            size = 28 if i < 9 else 40
            a = rng.integers(0, 200, (size, size, 3), dtype=np.uint8)
            a[..., k] += 50
            Image.fromarray(a).save(root / cls / f"{cls}_{i:02d}.png")


def _open(page: Any, jupyter_lab: Any, ui: Any) -> None:
    """Write the notebook (once), run it, wait for a full first page of thumbnails."""
    from playwright.sync_api import expect

    images = jupyter_lab.workspace / "browser-ui" / "a fairly long folder name" / "images"
    if not images.exists():
        _make_images(images)
    ui.write_notebook(
        jupyter_lab.root / NOTEBOOK,
        [
            "from workbench import Catalog\n"
            "from workbench.views import DataBrowser\n"
            f"catalog = Catalog.from_folder({str(images)!r}, progress=False)\n"
            "browser = DataBrowser(catalog, columns=('label', 'width', 'height'))\n"
            "browser",
        ],
    )
    ui.open_notebook(page, jupyter_lab, NOTEBOOK)
    ui.run_all(page, timeout=120)
    errors = ui.error_outputs(page, include_stderr=False)
    assert not errors, "notebook raised:\n\n" + "\n\n".join(errors)
    expect(page.locator(ROOT).first).to_be_visible(timeout=30_000)
    page.wait_for_function(
        f"""() => {{
          const imgs = [...document.querySelectorAll({TILE_IMGS!r})];
          return imgs.length === 24 && imgs.every(i => /^(blob|data):/.test(i.src || ''));
        }}""",
        timeout=30_000,
    )
    page.locator(ROOT).first.scroll_into_view_if_needed()


@contextlib.contextmanager
def _diagnosed(page: Any, ui: Any, tmp_path: Path, shot: str) -> Iterator[None]:
    """On a failed check, print the browser's console errors; always save a screenshot."""
    try:
        yield
    except AssertionError:
        print(f"console errors: {page.wb_console_errors}")
        raise
    finally:
        ui.screenshot(page, tmp_path, shot)


def _page_text(page: Any) -> str:
    return page.locator(PAGE).first.inner_text()


def _expect_page(page: Any, text: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator(PAGE).first).to_contain_text(text, timeout=15_000)


def _kernel_run(page: Any, code: str, wait: bool = True) -> str:
    """Run ``code`` in the notebook's kernel (not in a cell); its printed output when waited."""
    return page.evaluate(
        """([code, wait]) => {
        const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
        const f = k.requestExecute({code, silent: false, store_history: false});
        let out = "";
        f.onIOPub = (m) => { if (m.header.msg_type === "stream") out += m.content.text; };
        return wait ? f.done.then(() => out) : "";
      }""",
        [code, wait],
    )


def _rows(page: Any, selector: str = ".wb-browser .wb-grid > .wb-tile") -> list[dict[str, float]]:
    """Rows of the grid: for each distinct tile top, the top, the tile count and the height of
    the tallest tile content (image and caption)."""
    return page.evaluate(
        """(sel) => {
          const rows = new Map();
          for (const t of document.querySelectorAll(sel)) {
            const r = t.getBoundingClientRect();
            // Height of what the tile shows (image and caption), not of its stretched box.
            const shown = [...t.children].map(c => c.getBoundingClientRect().bottom);
            const key = Math.round(r.top);
            const row = rows.get(key) || {top: r.top, count: 0, height: 0};
            row.count += 1;
            row.height = Math.max(row.height, Math.max(...shown) - r.top);
            rows.set(key, row);
          }
          return [...rows.values()].sort((a, b) => a.top - b.top);
        }""",
        selector,
    )


def _assert_rows_tight_and_full(page: Any, tiles: int) -> None:
    """Every row holds the same number of tiles, and the next row starts right under a row."""
    rows = _rows(page)
    assert sum(r["count"] for r in rows) == tiles, rows
    assert len({r["count"] for r in rows}) == 1, f"orphan tiles in the last row: {rows}"
    gap = page.evaluate(
        f"() => parseFloat(getComputedStyle(document.querySelector({GRID!r})).rowGap) || 0"
    )
    for above, below in itertools.pairwise(rows):
        blank = below["top"] - above["top"] - above["height"] - gap
        assert blank <= 8, f"{blank:.0f} px blank under a row of the grid: {rows}"  # padding: 4


def _layout_ok(page: Any, ui: Any) -> None:
    problems = ui.layout_problems(page, ROOT)
    assert problems == {"clipped": [], "overlapping": []}, problems


def _hover_grid(page: Any) -> None:
    """Pointer over the thumbnails (not over a control)."""
    box = page.locator(GRID).first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 40)


def test_typing_in_the_query_box_with_the_pointer_over_the_view(
    page: Any, jupyter_lab: Any, ui: Any, tmp_path: Path
) -> None:
    """Typing reaches the query box; keys in it never flip pages; outside it ← / → flip."""
    _open(page, jupyter_lab, ui)
    with _diagnosed(page, ui, tmp_path, "browser-typing.png"):
        _expect_page(page, "1–24 of 36")
        query = page.locator(QUERY).first
        # The pointer rests on the thumbnails, then moves into the field (as a user's does).
        ui.type_into(page, QUERY, "label == 'dog'", over=GRID)
        assert query.input_value() == "label == 'dog'"
        # Focus stays in the field while the pointer leaves the view and comes back over the
        # thumbnails: the arrow keys move the caret and the typed text goes into the field.
        page.mouse.move(5, 5)
        _hover_grid(page)
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowRight")
        page.keyboard.type(" and width > 30", delay=10)
        assert query.input_value() == "label == 'dog' and width > 30"
        page.keyboard.press("Enter")
        _expect_page(page, "1–9 of 9 (filtered from 36)")
        assert query.evaluate("e => e === document.activeElement")

        # A bad query shows an inline message; the field keeps what was typed.
        query.fill("")
        ui.type_into(page, QUERY, "width >", over=GRID)
        page.keyboard.press("Enter")
        from playwright.sync_api import expect

        expect(page.locator(".wb-browser .wb-error").first).to_contain_text(
            "cannot filter", timeout=15_000
        )
        assert query.input_value() == "width >"
        query.fill("")
        page.keyboard.press("Enter")
        _expect_page(page, "1–24 of 36")
        expect(page.locator(".wb-browser .wb-error").first).to_be_hidden()

        # Focus out of the field (a click on the page label), pointer over the thumbnails:
        # → and ← flip pages, and the field is left as it was.
        page.locator(PAGE).first.click()
        _hover_grid(page)
        page.keyboard.press("ArrowRight")
        _expect_page(page, "25–36 of 36")
        page.keyboard.press("ArrowLeft")
        _expect_page(page, "1–24 of 36")
        assert query.input_value() == ""

        # A menu owns its keys too: Esc with the focus on the label menu leaves the pane open
        # (the summary toggle goes through the kernel after the key: a close would show first).
        page.locator(TILE_IMGS).first.click()
        expect(page.locator(DETAIL).first).to_be_visible(timeout=30_000)
        page.locator(".wb-filter-label select").first.focus()
        page.mouse.move(5, 5)
        _hover_grid(page)
        page.keyboard.press("Escape")
        page.locator("button.wb-summary-toggle").first.click()
        expect(page.locator("img.wb-summary").first).to_be_visible(timeout=30_000)
        expect(page.locator(DETAIL).first).to_be_visible()

        # Back into the field with the detail pane open: ← / → / Esc are the field's keys.
        page.locator(TILE_IMGS).first.click()
        expect(page.locator(DETAIL).first).to_be_visible(timeout=30_000)
        query.click()
        page.keyboard.type("label", delay=10)
        _hover_grid(page)
        page.keyboard.press("ArrowLeft")  # (a flip back from page 1 would show nothing)
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Escape")
        # Enter goes through the kernel after those keys: once its message shows, a flip or a
        # close sent before it would show too.
        page.keyboard.press("Enter")
        expect(page.locator(".wb-browser .wb-error").first).to_contain_text("True or False")
        assert "1–24 of 36" in _page_text(page)
        expect(page.locator(DETAIL).first).to_be_visible()
        assert query.input_value() == "label"

        # Typing in a notebook cell while the pointer drifts over the view: the cell keeps the
        # focus and every key (← / → included) stays in the cell.
        editor = page.locator(".jp-CodeCell .cm-content").first
        editor.click()
        page.keyboard.press("Control+End")
        _hover_grid(page)
        page.keyboard.type("  # still typing", delay=10)
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowRight")
        expect(editor).to_contain_text("browser  # still typing")
        page.locator("button.wb-summary-toggle").first.click()  # a round trip after the keys
        expect(page.locator("img.wb-summary").first).to_be_hidden()
        assert "1–24 of 36" in _page_text(page)


def test_menus_buttons_captions_and_layout(
    page: Any, jupyter_lab: Any, ui: Any, tmp_path: Path
) -> None:
    """Every menu and button changes the view; rows are full; nothing is cut or overlaps."""
    from playwright.sync_api import expect

    _open(page, jupyter_lab, ui)
    with _diagnosed(page, ui, tmp_path, "browser-menus.png"):
        _layout_ok(page, ui)
        _assert_rows_tight_and_full(page, 24)

        # The next page is sent ahead: the click draws it without the kernel, which is kept
        # busy here for 6 s; then the kernel takes the click and agrees.
        _kernel_run(page, AHEAD_SENT)
        _kernel_run(page, "import time; time.sleep(6)", wait=False)
        page.wait_for_timeout(300)
        page.locator("button.wb-next").first.click()
        expect(page.locator(PAGE).first).to_contain_text("25–36 of 36", timeout=2_000)
        expect(page.locator("button.wb-next").first).to_be_disabled()
        assert ui.kernel_state(page)["kernel"] == "busy", "the kernel answered: nothing was ahead"
        assert _kernel_run(page, "print(browser.page)").strip() == "1"
        _expect_page(page, "25–36 of 36")
        # The same with ← (the pointer over the grid, the focus in no field).
        _kernel_run(page, AHEAD_SENT)
        _kernel_run(page, "time.sleep(6)", wait=False)
        page.wait_for_timeout(300)
        page.locator(GRID).first.hover()
        page.keyboard.press("ArrowLeft")
        expect(page.locator(PAGE).first).to_contain_text("1–24 of 36", timeout=2_000)
        assert ui.kernel_state(page)["kernel"] == "busy", "the kernel answered: nothing was ahead"
        assert _kernel_run(page, "print(browser.page)").strip() == "0"
        page.locator("button.wb-next").first.click()
        _expect_page(page, "25–36 of 36")
        page.locator("button.wb-prev").first.click()
        _expect_page(page, "1–24 of 36")
        expect(page.locator("button.wb-prev").first).to_be_disabled()

        # Per-column menus: label, then format (its label must be readable, not "for…").
        page.locator(".wb-filter-label select").first.select_option("cat")
        _expect_page(page, "1–18 of 18 (filtered from 36)")
        page.locator(".wb-filter-format select").first.select_option("PNG")
        page.locator(".wb-filter-label select").first.select_option("dog")
        expect(page.locator(".wb-browser .wb-tile").first).to_contain_text("dog_00.png")
        _expect_page(page, "1–18 of 18 (filtered from 36)")
        page.locator(".wb-filter-label select").first.select_option("(all)")
        _expect_page(page, "1–24 of 36")

        # Captions show what differs between tiles; what all share is said once.
        captions = page.locator(".wb-browser .wb-tile").all_inner_texts()
        assert any("40" in c for c in captions) and any("28" in c for c in captions), captions
        ui.type_into(page, QUERY, "width == 28", over=GRID)
        page.keyboard.press("Enter")
        _expect_page(page, "1–18 of 18")
        common = page.locator(".wb-browser .wb-common").first
        expect(common).to_contain_text("width 28")
        expect(common).to_contain_text("height 28")
        captions = page.locator(".wb-browser .wb-tile").all_inner_texts()
        assert not any("28" in c for c in captions), captions
        page.locator(QUERY).first.fill("")
        page.keyboard.press("Enter")
        _expect_page(page, "1–24 of 36")

        # Sort by width, both directions: the first tile is a 28 px, then a 40 px image.
        page.locator(".wb-sort select").first.select_option("width")
        expect(page.locator(".wb-browser .wb-tile").first).to_contain_text("28")
        page.locator(".wb-browser .wb-order button", has_text="↓").first.click()
        expect(page.locator(".wb-browser .wb-tile").first).to_contain_text("40")

        # Page size: 12 per page → 3 pages, rows still full.
        page.locator(".wb-page-size select").first.select_option("12")
        _expect_page(page, "Page 1 / 3")
        page.wait_for_function(
            f"() => document.querySelectorAll({TILE_IMGS!r}).length === 12", timeout=15_000
        )
        _assert_rows_tight_and_full(page, 12)
        _layout_ok(page, ui)

        page.locator("button.wb-summary-toggle").first.click()
        expect(page.locator("img.wb-summary").first).to_be_visible(timeout=30_000)
        page.locator("button.wb-summary-toggle").first.click()
        expect(page.locator("img.wb-summary").first).to_be_hidden()
        _layout_ok(page, ui)


def test_detail_pane_opens_highlights_and_closes(
    page: Any, jupyter_lab: Any, ui: Any, tmp_path: Path
) -> None:
    """A click opens the detail pane and marks the tile; rows stay tight; ✕ and Esc close it."""
    from playwright.sync_api import expect

    _open(page, jupyter_lab, ui)
    detail = page.locator(DETAIL).first
    tiles = page.locator(".wb-browser .wb-grid > .wb-tile")
    with _diagnosed(page, ui, tmp_path, "browser-detail-end.png"):
        # 12 per page: two rows, shorter than the pane, which must not stretch them.
        page.locator(".wb-page-size select").first.select_option("12")
        page.wait_for_function(
            f"() => document.querySelectorAll({TILE_IMGS!r}).length === 12", timeout=15_000
        )
        expect(detail).to_be_hidden()
        page.locator(TILE_IMGS).nth(2).click()
        expect(page.locator(f"{DETAIL} img").first).to_be_visible(timeout=30_000)
        expect(tiles.nth(2)).to_have_class(_has("wb-selected"))
        assert page.locator(".wb-browser .wb-tile.wb-selected").count() == 1
        _assert_rows_tight_and_full(page, 12)
        rows = _rows(page)
        assert (
            rows[-1]["top"] + rows[-1]["height"] - rows[0]["top"] < detail.bounding_box()["height"]
        ), "the pane is not taller than the rows: the check above proves nothing"
        _layout_ok(page, ui)
        ui.screenshot(page, tmp_path, "browser-detail.png")

        # The path breaks only after a "/" (no word is split): every line of the path cell ends
        # with "/" except the last, and the full path is in the title.
        path_cell = page.locator(f"{DETAIL} .wb-path").first
        full = path_cell.get_attribute("title") or ""
        assert full.endswith("cat_02.png") and "a fairly long folder name" in full
        lines = _rendered_lines(page, f"{DETAIL} .wb-path")
        assert "".join(lines) == full, lines
        assert len(lines) > 1 and all(line.endswith("/") for line in lines[:-1]), lines

        # Another tile moves the highlight; flipping the page away and back keeps it.
        page.locator(TILE_IMGS).nth(5).click()
        expect(tiles.nth(5)).to_have_class(_has("wb-selected"))
        assert page.locator(".wb-browser .wb-tile.wb-selected").count() == 1

        page.locator("button.wb-detail-close").first.click()
        expect(detail).to_be_hidden()
        # The pane and the grid are two widgets, updated by two messages: wait for the second.
        expect(page.locator(".wb-browser .wb-tile.wb-selected")).to_have_count(0)
        _assert_rows_tight_and_full(page, 12)
        _layout_ok(page, ui)

        # Esc closes it too (pointer over the grid, focus not in a text field).
        page.locator(TILE_IMGS).nth(0).click()
        expect(detail).to_be_visible(timeout=30_000)
        _hover_grid(page)
        page.keyboard.press("Escape")
        expect(detail).to_be_hidden()


def _has(cls: str) -> Any:
    import re

    return re.compile(rf"(^|\s){re.escape(cls)}(\s|$)")


def _rendered_lines(page: Any, selector: str) -> list[str]:
    """The text of ``selector`` split where the browser wrapped it (one entry per line box)."""
    return page.evaluate(
        """(sel) => {
          const el = document.querySelector(sel);
          const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
          const lines = []; let top = null;
          for (let n = walker.nextNode(); n; n = walker.nextNode()) {
            for (let i = 0; i < n.length; i++) {
              const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + 1);
              const rect = r.getClientRects()[0];
              if (!rect) continue;
              if (top === null || rect.top > top + 2) { lines.push(''); top = rect.top; }
              lines[lines.length - 1] += n.data[i];
            }
          }
          return lines;
        }""",
        selector,
    )
