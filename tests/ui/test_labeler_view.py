"""Every control of the two labeling views, in a real browser: keys, buttons, the class search
box (typing types, never labels), the confirmation line, blind labeling, layout.

Small dedicated notebooks are written into the server's root, over a 9-image workspace (3 per
class). Decisions are checked on disk in the store, not only in the DOM.

DOM contract relied on (``add_class`` names): ``.wb-labeler`` / ``.wb-boxlabeler`` roots;
``.wb-image``, ``.wb-progress``, ``.wb-status`` (the confirmation), ``.wb-info`` (which item),
``.wb-class`` (class buttons), ``.wb-class-search`` (Combobox), ``.wb-skip``, ``.wb-undo``,
``.wb-prev``, ``.wb-next``, ``.wb-submit``, ``.wb-box-tools`` (the box toolbar), ``.wb-bbox``
(jupyter_bbox_widget; its class list is ``.class-label``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ui

CLASSES = ["red", "green", "blue"]
LAB = ".wb-labeler >> nth=0"
BLIND = ".wb-labeler >> nth=1"


def _setup_cell(workspace: Path) -> str:
    return (
        "from workbench import Workspace\n"
        "from workbench.labels import LabelStore\n"
        "from workbench.views.boxes import BoxLabeler\n"
        "from workbench.views.labeler import Labeler\n"
        f"ws = Workspace({str(workspace)!r}, create=False)\n"
        "catalog = ws.load_catalog()"
    )


def _open(page: Any, ui: Any, jupyter_lab: Any, name: str, cells: list[str]) -> None:
    ui.write_notebook(jupyter_lab.root / name, cells)
    ui.open_notebook(page, jupyter_lab, name)
    ui.run_all(page, timeout=120)
    errors = ui.error_outputs(page, include_stderr=False)
    assert not errors, "notebook raised:\n\n" + "\n\n".join(errors)


def _text(page: Any, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def _wait_text(page: Any, selector: str, text: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator(selector).first).to_contain_text(text, timeout=30_000)


def _current(db: Path, task: str = "class") -> dict[str, Any]:
    from workbench.labels import LabelStore

    cur = LabelStore(db).current(annotator="ui", task=task)
    return dict(zip(cur["id"], cur["value"], strict=True))


def _kinds(db: Path, task: str = "class") -> list[str]:
    from workbench.labels import LabelStore

    return LabelStore(db).history(annotator="ui", task=task)["kind"].tolist()


def _no_layout_problems(ui: Any, page: Any, root: str) -> None:
    found = ui.layout_problems(page, root)
    assert found == {"clipped": [], "overlapping": []}, found


def test_labeler_keys_buttons_search_confirmation_and_blind(page, jupyter_lab, ui, tmp_path):
    workspace = jupyter_lab.workspace / "labeler-view"
    ui.colour_workspace(workspace)
    db, shared = workspace / "keys.db", workspace / "shared.db"
    cells = [
        _setup_cell(workspace),
        f"store = LabelStore({str(db)!r}, catalog=catalog)\n"
        f"labeler = Labeler(catalog, store, annotator='ui', classes={CLASSES!r},\n"
        "                  pinned=['red', 'green'], image_size=200)\n"
        "labeler",
        # Another annotator labeled one item of the queue: blind by default.
        f"shared = LabelStore({str(shared)!r}, catalog=catalog)\n"
        f"shared.add_classes({CLASSES!r})\n"
        "shared.label(catalog.ids[0], 'red', annotator='bo')\n"
        "blind = Labeler(catalog, shared, annotator='ui', image_size=120)\n"
        "blind",
    ]
    try:
        _open(page, ui, jupyter_lab, "labeler_view.ipynb", cells)
        lab = page.locator(LAB)
        image = lab.locator(".wb-image")
        page.wait_for_function(
            "() => /^(blob|data):/.test((document.querySelector('.wb-labeler .wb-image')"
            " || {}).src || '')",
            timeout=30_000,
        )
        progress, status, info = (
            f"{LAB} >> .wb-progress",
            f"{LAB} >> .wb-status",
            f"{LAB} >> .wb-info",
        )
        _wait_text(page, progress, "0 / 9 done")
        assert "blue/blue_0.png" in _text(page, info)  # not blind: the id shows
        _no_layout_problems(ui, page, ".wb-labeler")

        # Keys, focus outside any text field, pointer over the image.
        image.scroll_into_view_if_needed()
        image.hover()
        page.keyboard.press("2")
        _wait_text(page, status, "green ✓ saved")
        _wait_text(page, progress, "1 / 9 done")
        assert _current(db) == {"blue/blue_0.png": "green"}
        assert "per minute" not in _text(page, progress)  # two quick keys are no rate
        page.keyboard.press("s")
        _wait_text(page, status, "skipped")
        _wait_text(page, progress, "2 / 9 done")
        page.keyboard.press("Backspace")
        _wait_text(page, status, "undone")
        _wait_text(page, progress, "1 / 9 done (11 %) · 1 this session")
        assert _kinds(db) == ["label", "skip", "undo"]
        _wait_text(page, info, "item 2 of 9")  # back on the skipped item
        page.keyboard.press("ArrowRight")
        _wait_text(page, info, "item 3 of 9")
        page.keyboard.press("ArrowLeft")
        _wait_text(page, info, "item 2 of 9")
        page.keyboard.press("Enter")  # single-label: Enter records nothing
        page.keyboard.press("1")
        _wait_text(page, status, "red ✓ saved")
        assert _current(db)["blue/blue_1.png"] == "red"

        # The class search box: focus in the field, pointer over the image. Class keys,
        # s and Backspace type and edit; nothing is labeled.
        search = lab.locator(".wb-class-search input")
        before = _kinds(db)
        search.click()
        image.hover()
        page.keyboard.type("1s2", delay=20)
        assert search.input_value() == "1s2"
        page.keyboard.press("Backspace")
        page.keyboard.press("ArrowLeft")
        assert search.input_value() == "1s"
        assert _kinds(db) == before and "item 3 of 9" in _text(page, info)
        page.keyboard.press("Control+a")
        page.keyboard.press("Backspace")
        page.keyboard.type("blue", delay=20)
        page.keyboard.press("Enter")  # the search's own Enter: label with the typed class
        _wait_text(page, status, "blue ✓ saved")
        assert _current(db)["blue/blue_2.png"] == "blue"
        ui.screenshot(page, tmp_path, "labeler-search.png")

        # Every button.
        page.mouse.move(0, 0)  # pointer off the view: buttons only
        lab.locator(".wb-skip").click()
        _wait_text(page, status, "skipped")
        lab.locator(".wb-undo").click()
        _wait_text(page, status, "undone")
        lab.locator(".wb-next").click()
        _wait_text(page, info, "item 5 of 9")
        lab.locator(".wb-prev").click()
        _wait_text(page, info, "item 4 of 9")
        lab.locator(".wb-class", has_text="green").click()
        _wait_text(page, status, "green ✓ saved")
        assert _current(db)["green/green_0.png"] == "green"
        assert _kinds(db)[-3:] == ["skip", "undo", "label"]
        _no_layout_problems(ui, page, ".wb-labeler")

        # Blind labeling: no id, no path, only the place in the queue.
        blind_info = _text(page, f"{BLIND} >> .wb-info")
        assert "item 1 of 9" in blind_info and ".png" not in blind_info, blind_info
        assert "/" not in blind_info
    except AssertionError:
        print(f"console errors: {page.wb_console_errors}")
        raise
    finally:
        ui.screenshot(page, tmp_path, "labeler-view.png")


def test_box_labeler_one_toolbar_one_picker_shared_keys(page, jupyter_lab, ui, tmp_path):
    from playwright.sync_api import expect

    workspace = jupyter_lab.workspace / "boxes-view"
    ui.colour_workspace(workspace)
    db = workspace / "boxes.db"
    cells = [
        _setup_cell(workspace),
        f"box_store = LabelStore({str(db)!r}, catalog=catalog)\n"
        "boxer = BoxLabeler(catalog, box_store, annotator='ui', classes=['spot', 'blob'],\n"
        "                   display_size=240)\n"
        "boxer",
        # A busy kernel while a box is drawn (as on a loaded machine): the browser holds the
        # box's final state back until the kernel has handled the press, so Enter overtakes it.
        "import time\n"
        "def busy(change):\n"
        "    if any(b['width'] == 0 for b in change['new']):\n"
        "        time.sleep(0.6)\n"
        "boxer.bbox.observe(busy, 'bboxes')",
    ]
    root = ".wb-boxlabeler"
    status, progress = f"{root} .wb-status", f"{root} .wb-progress"
    try:
        _open(page, ui, jupyter_lab, "boxes_view.ipynb", cells)
        img = page.locator(f"{root} .wb-bbox img").first
        page.wait_for_function(
            "() => { const i = document.querySelector('.wb-boxlabeler .wb-bbox img');"
            " return i && i.naturalWidth === 240; }",
            timeout=30_000,
        )
        # One class picker (the widget's), one toolbar (the widget's buttons hidden).
        expect(page.locator(f"{root} .class-label")).to_have_count(2)
        expect(page.locator(f"{root} .wb-class")).to_have_count(0)
        expect(page.locator(f"{root} .wb-bbox button")).to_have_count(0)
        buttons = page.locator(f"{root} button")
        tools = page.locator(f"{root} .wb-box-tools button")
        assert buttons.count() == tools.count() == 5
        assert tools.all_inner_texts() == [
            "Submit (Enter)", "Skip (s)", "Undo (⌫)", "◀ Back", "Forward ▶",
        ]  # fmt: skip
        _no_layout_problems(ui, page, root)

        # Choose the class with a digit key, draw a box, Enter (the Labeler's submit key).
        img.scroll_into_view_if_needed()
        selected = page.locator(f"{root} .class-label[style*='1px solid']")
        expect(selected).to_contain_text("spot", timeout=30_000)
        page.locator(progress).hover()
        page.keyboard.press("2")
        expect(selected).to_contain_text("blob", timeout=30_000)
        r = img.bounding_box()
        page.mouse.move(r["x"] + 0.2 * r["width"], r["y"] + 0.2 * r["height"])
        page.mouse.down()
        page.mouse.move(r["x"] + 0.7 * r["width"], r["y"] + 0.6 * r["height"], steps=8)
        page.mouse.up()
        page.keyboard.press("Enter")
        _wait_text(page, status, "1 box ✓ saved")
        _wait_text(page, progress, "1 / 9 done")
        (x, y, w, h, cls), *rest = _current(db, "boxes")["blue/blue_0.png"]
        assert not rest and cls == "blob"  # the class chosen for that image
        assert [x, y, w, h] == pytest.approx([4.8, 4.8, 12.0, 9.6], abs=0.6)

        # The next image starts from the first class, not from the one chosen before.
        expect(selected).to_contain_text("spot", timeout=30_000)
        # Digit keys choose the class; s skips (Escape first leaves the image's own keys).
        page.keyboard.press("Escape")
        page.locator(f"{root} .wb-progress").hover()
        page.keyboard.press("2")
        expect(selected).to_contain_text("blob", timeout=30_000)
        page.keyboard.press("s")
        _wait_text(page, status, "skipped")
        page.keyboard.press("Backspace")
        _wait_text(page, status, "undone")
        assert _kinds(db, "boxes") == ["label", "skip", "undo"]
        page.keyboard.press("ArrowRight")
        _wait_text(page, f"{root} .wb-info", "item 3 of 9")
        page.keyboard.press("ArrowLeft")
        _wait_text(page, f"{root} .wb-info", "item 2 of 9")

        # Every button of the toolbar.
        page.mouse.move(0, 0)
        page.locator(f"{root} .wb-skip").click()
        _wait_text(page, status, "skipped")
        page.locator(f"{root} .wb-undo").click()
        _wait_text(page, status, "undone")
        page.locator(f"{root} .wb-next").click()
        _wait_text(page, f"{root} .wb-info", "item 3 of 9")
        page.locator(f"{root} .wb-prev").click()
        _wait_text(page, f"{root} .wb-info", "item 2 of 9")
        page.locator(f"{root} .wb-submit").click()  # no boxes drawn: "nothing to box"
        _wait_text(page, status, "no boxes ✓ saved")
        assert _current(db, "boxes")["blue/blue_1.png"] == []
        _no_layout_problems(ui, page, root)
    except AssertionError:
        print(f"console errors: {page.wb_console_errors}")
        raise
    finally:
        ui.screenshot(page, tmp_path, "box-labeler-view.png")
