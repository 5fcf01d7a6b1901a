"""Labeling in a real browser: a key press labels and moves on; a dragged box lands in the store.

A tiny dedicated notebook (written into the server's root) builds a Labeler over a small
workspace catalog, so this test does not depend on notebooks 01-02 (which take minutes).

DOM contract of ``workbench.views.labeler.Labeler`` relied on here (classes added with
``add_class``, which ipywidgets puts on the widget's own element):

- ``.wb-labeler``              root box
- ``.wb-labeler img.wb-image`` the large image (a blob: ``src`` that changes per item)
- ``.wb-labeler .wb-progress`` progress text "<done> / <total> done ..."
- ``.wb-board``                image, class buttons and tools (keys are read over the whole view)

and of ``workbench.views.boxes.BoxLabeler``: ``.wb-boxlabeler``, ``.wb-bbox img`` (the image in
jupyter_bbox_widget, natural size = the display size), ``.wb-submit`` (the toolbar's Submit),
``.wb-progress``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ui

NOTEBOOK = "label_ui.ipynb"
CLASSES = ["red", "green", "blue"]
IMAGE = ".wb-labeler img.wb-image"
PROGRESS = ".wb-labeler .wb-progress"


def _write_notebook(target: Path, workspace: Path, ui: Any) -> None:
    cells = [
        "from workbench import Workspace\n"
        "from workbench.labels import LabelStore\n"
        "from workbench.views.labeler import Labeler\n"
        f"ws = Workspace({str(workspace)!r}, create=False)\n"
        "catalog = ws.load_catalog()\n"
        "store = LabelStore(ws, catalog=catalog)",
        f"labeler = Labeler(catalog, store, annotator='ui', classes={CLASSES!r}, image_size=256)\n"
        "labeler",
        "from workbench.views.boxes import BoxLabeler\n"
        "box_store = LabelStore(ws.path / 'boxes.db', catalog=catalog)\n"
        "boxer = BoxLabeler(catalog, box_store, annotator='ui', classes=['spot'],\n"
        "                   display_size=240)\n"
        "boxer",
    ]
    ui.write_notebook(target, cells)


def _state(page: Any) -> dict[str, str]:
    return page.evaluate(
        f"""() => ({{
          src: (document.querySelector({IMAGE!r}) || {{}}).src || '',
          progress: (document.querySelector({PROGRESS!r}) || {{}}).innerText || '',
        }})"""
    )


def _wait_change(page: Any, before: dict[str, str], timeout: float = 30_000) -> dict[str, str]:
    page.wait_for_function(
        f"""(before) => {{
          const img = document.querySelector({IMAGE!r});
          const prog = document.querySelector({PROGRESS!r});
          return img && prog && img.src !== before.src && prog.innerText !== before.progress;
        }}""",
        arg=before,
        timeout=timeout,
    )
    return _state(page)


def test_digit_key_labels_in_the_browser(page: Any, jupyter_lab: Any, ui: Any, tmp_path: Path):
    from playwright.sync_api import expect

    from workbench.labels import LabelStore

    workspace = jupyter_lab.workspace / "label-ui"
    ui.colour_workspace(workspace)
    _write_notebook(jupyter_lab.root / NOTEBOOK, workspace, ui)

    ui.open_notebook(page, jupyter_lab, NOTEBOOK)
    try:
        ui.run_all(page, timeout=90)
        errors = ui.error_outputs(page, include_stderr=False)
        assert not errors, "notebook raised:\n\n" + "\n\n".join(errors)

        image = page.locator(IMAGE).first
        expect(image).to_be_visible(timeout=30_000)
        page.wait_for_function(
            f"() => /^(blob|data):/.test((document.querySelector({IMAGE!r}) || {{}}).src || '')",
            timeout=30_000,
        )
        expect(page.locator(PROGRESS).first).to_contain_text("0 / 9 done")
        before = _state(page)

        image.scroll_into_view_if_needed()
        image.click()  # the pointer over the labeler: ipyevents now reads the keyboard
        page.keyboard.press("2")
        after = _wait_change(page, before)
        assert after["progress"].startswith("1 / 9 done"), after

        labels = LabelStore(workspace).current(annotator="ui")
        assert labels["value"].tolist() == ["green"], labels
        assert labels["id"].tolist() == ["blue/blue_0.png"]  # the first image in catalog order

        page.keyboard.press("Backspace")  # undo: back to the first image, nothing labeled
        undone = _wait_change(page, after)
        assert undone["progress"].startswith("0 / 9 done") and undone["src"] != after["src"]
        assert LabelStore(workspace).current(annotator="ui").empty

        # BoxLabeler: drag a box on the 240 px view of a 24 px image, press the widget's Submit;
        # the store gets the box in original pixels (a tenth of the display pixels).
        box_image = page.locator(".wb-boxlabeler .wb-bbox img").first
        box_image.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => { const i = document.querySelector('.wb-boxlabeler .wb-bbox img');"
            " return i && i.naturalWidth === 240; }",
            timeout=30_000,
        )
        r = box_image.bounding_box()
        page.mouse.move(r["x"] + 0.2 * r["width"], r["y"] + 0.2 * r["height"])
        page.mouse.down()
        page.mouse.move(r["x"] + 0.7 * r["width"], r["y"] + 0.6 * r["height"], steps=8)
        page.mouse.up()
        page.locator(".wb-boxlabeler .wb-submit").first.click()  # the one toolbar
        expect(page.locator(".wb-boxlabeler .wb-progress").first).to_contain_text("1 / 9 done")
        stored = LabelStore(workspace / "boxes.db").current(annotator="ui", task="boxes")
        (x, y, w, h, cls), *rest = stored["value"].iloc[0]
        assert not rest and cls == "spot" and stored["id"].iloc[0] == "blue/blue_0.png"
        assert [x, y, w, h] == pytest.approx([4.8, 4.8, 12.0, 9.6], abs=0.6), stored
    except AssertionError:
        print("error/stderr outputs:\n" + "\n\n".join(ui.error_outputs(page, include_stderr=True)))
        print(f"console errors: {page.wb_console_errors}")
        raise
    finally:
        ui.screenshot(page, tmp_path, "labeler.png")
