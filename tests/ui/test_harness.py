"""Smoke test of the UI harness: JupyterLab + ipywidgets + Chromium, end to end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

pytestmark = pytest.mark.ui

SMOKE_CELL = """\
import os
import sys

import ipywidgets as widgets

button = widgets.Button(description="Press me")
button.add_class("wb-smoke")
label = widgets.Label("not pressed")
label.add_class("wb-smoke-label")
info = widgets.Label(f"{sys.prefix}|{os.environ.get('WORKBENCH_WORKSPACE', '')}")
info.add_class("wb-smoke-info")


def on_click(_):
    label.value = "pressed"


button.on_click(on_click)
widgets.VBox([button, label, info])
"""


def _write_smoke_notebook(path: Path) -> None:
    """Write the one-cell smoke notebook to ``path``."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(SMOKE_CELL))
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_button_click_updates_label(page: Any, jupyter_lab: Any, ui: Any, tmp_path: Path) -> None:
    """A widget button rendered in Chromium round-trips a click through the kernel."""
    from playwright.sync_api import expect

    _write_smoke_notebook(jupyter_lab.root / "ui_smoke.ipynb")
    ui.open_notebook(page, jupyter_lab, "ui_smoke.ipynb")
    ui.run_all(page)
    errors = ui.error_outputs(page)
    assert not errors, "\n\n".join(errors)

    button = page.locator("button.wb-smoke")
    label = page.locator(".wb-smoke-label")
    try:
        expect(button).to_be_visible(timeout=30_000)
        expect(button).to_have_text("Press me")
        expect(label).to_have_text("not pressed")
        # The kernel is the venv's interpreter and sees the temp workspace.
        expect(page.locator(".wb-smoke-info")).to_have_text(f"{sys.prefix}|{jupyter_lab.workspace}")
        button.click()
        expect(label).to_have_text("pressed", timeout=15_000)
    except AssertionError:
        shot = ui.screenshot(page, tmp_path, "smoke-failure.png")
        print(f"screenshot: {shot}\nconsole errors: {page.wb_console_errors}")
        raise


BOARD_CELL = """\
import ipywidgets as widgets
from workbench.views._common import HtmlBoard

board = HtmlBoard(html=(
    '<div style="display:flex;gap:8px">'
    '<div class="t-ok" style="width:120px">fits/ok.png</div>'
    '<div style="width:60px;overflow:hidden"><span class="t-cut" style="white-space:nowrap">'
    'a caption far too long for its tile</span></div>'
    '<div style="width:60px"><span class="t-seg" style="display:inline-block;max-width:100%;'
    'overflow:hidden;text-overflow:ellipsis;white-space:nowrap">cow_000457_long.png</span></div>'
    '</div>'
))
box = widgets.VBox([board])
box.add_class("wb-board-check")
box
"""


def test_layout_problems_sees_text_cut_inside_an_html_board(
    page: Any, jupyter_lab: Any, ui: Any, tmp_path: Path
) -> None:
    """Captions drawn inside one HTML value count: cut by their tile, or ended in an ellipsis."""
    from playwright.sync_api import expect

    ui.write_notebook(jupyter_lab.root / "ui_board.ipynb", [BOARD_CELL])
    ui.open_notebook(page, jupyter_lab, "ui_board.ipynb")
    ui.run_all(page)
    assert not ui.error_outputs(page)
    expect(page.locator(".wb-board-check .t-ok")).to_be_visible(timeout=30_000)
    found = ui.layout_problems(page, ".wb-board-check")
    clipped = " | ".join(found["clipped"])
    assert "a caption far too long" in clipped and "(cut by" in clipped, found
    assert "cow_000457_long.png" in clipped, found
    assert "fits/ok.png" not in clipped and not found["overlapping"], found
