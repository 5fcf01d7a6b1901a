"""Notebook 01 (acquire) in a real browser: the DataBrowser renders, pages and selects.

DOM contract of ``workbench.views.DataBrowser`` relied on here (custom classes added with
``add_class``, which ipywidgets puts on the widget's own element):

- ``.wb-browser``                root box of the browser
- ``.wb-browser .wb-tile img``   thumbnail ``<img>`` elements (blob:/data: ``src``)
- ``button.wb-next``             next-page button
- ``.wb-page``                   page label (HTML widget)
- ``.wb-detail img``             image of the detail pane, shown after a tile click
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ui

NOTEBOOK = "01_acquire.ipynb"
TILE_IMGS = ".wb-browser .wb-tile img"
MIN_TILES = 8
RUN_TIMEOUT = 300.0  # scans and writes the 10,000-image sample on two cores

# Current ``src`` of every tile image, in DOM order.
_SRCS_JS = f"() => [...document.querySelectorAll({TILE_IMGS!r})].map(i => i.src)"


def _tile_srcs(page: Any) -> list[str]:
    """Return the ``src`` attribute of every tile image."""
    return page.evaluate(_SRCS_JS)


def test_acquire_notebook_browser(page: Any, jupyter_lab: Any, ui: Any, tmp_path: Path) -> None:
    """Run 01_acquire, page the DataBrowser forward and open a tile in the detail pane."""
    from playwright.sync_api import expect

    if not (jupyter_lab.root / NOTEBOOK).exists():
        pytest.fail(f"notebooks/{NOTEBOOK} is missing")

    ui.open_notebook(page, jupyter_lab, NOTEBOOK)
    try:
        ui.run_all(page, timeout=RUN_TIMEOUT)
        errors = ui.error_outputs(page, include_stderr=False)
        assert not errors, "notebook raised:\n\n" + "\n\n".join(errors)

        browser = page.locator(".wb-browser").first
        expect(browser).to_be_visible(timeout=30_000)
        browser.scroll_into_view_if_needed()

        # Thumbnails: at least MIN_TILES images, each with a blob:/data: URL.
        page.wait_for_function(
            f"""() => {{
              const imgs = [...document.querySelectorAll({TILE_IMGS!r})];
              return imgs.length >= {MIN_TILES} &&
                imgs.every(i => /^(blob|data):/.test(i.getAttribute('src') || ''));
            }}""",
            timeout=30_000,
        )
        before = _tile_srcs(page)
        assert len(before) >= MIN_TILES, before
        assert all(src.startswith(("blob:", "data:")) for src in before), before

        page_label = page.locator(".wb-page").first
        label_before = page_label.inner_text()

        next_button = page.locator("button.wb-next").first
        expect(next_button).to_be_enabled()
        next_button.click()

        # Image values are replaced in place: every changed value gets a new blob URL.
        page.wait_for_function(
            f"""(before) => {{
              const now = [...document.querySelectorAll({TILE_IMGS!r})].map(i => i.src);
              return now.length > 0 && now.join('\\n') !== before.join('\\n');
            }}""",
            arg=before,
            timeout=30_000,
        )
        expect(page_label).not_to_have_text(label_before, timeout=15_000)

        # Selecting a tile (ipyevents click on the thumbnail) opens the detail pane.
        page.locator(TILE_IMGS).first.click()
        expect(page.locator(".wb-detail img").first).to_be_visible(timeout=30_000)
    except AssertionError:
        stderr = ui.error_outputs(page, include_stderr=True)
        print("error/stderr outputs:\n" + "\n\n".join(stderr))
        print(f"console errors: {page.wb_console_errors}")
        raise
    finally:
        ui.screenshot(page, tmp_path, "browser.png")
