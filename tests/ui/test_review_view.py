"""ReviewQueue in a real browser: a decision made by key and by click lands in the store (review
events of the review round); typing in the note field and choosing in a filter are never taken by
the shortcuts; nothing clipped or overlapping.

DOM contract relied on (``add_class`` names): ``.wb-review`` root; ``.wb-image``,
``.wb-progress``, ``.wb-status`` (the confirmation), ``.wb-info`` (which item), ``.wb-labels``,
``.wb-consensus``, ``.wb-class`` (class buttons), ``.wb-accept``, ``.wb-unsure``, ``.wb-skip``,
``.wb-undo``, ``.wb-note`` (Text), ``.wb-filter-reason`` (Dropdown).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ui

CLASSES = ["red", "green", "blue"]
VIEW = ".wb-review"


def _make_workspace(path: Path, ui: Any) -> None:
    from workbench.labels import LabelStore

    _, catalog = ui.colour_workspace(path)
    store = LabelStore(path / "review.db", catalog=catalog)
    store.add_classes(CLASSES)
    # red_0: a tie; green_0 and blue_0: 2 to 1; the rest unanimous.
    for sid in catalog.ids:
        truth = sid.split("/")[0]
        votes = {"ana": truth, "bo": truth, "cy": truth}
        if sid == "red/red_0.png":
            votes = {"ana": "red", "bo": "green"}
        elif sid in ("green/green_0.png", "blue/blue_0.png"):
            votes["cy"] = "red"
        for who, v in votes.items():
            store.label(sid, v, annotator=who)


def _reviews(db: Path) -> list[tuple]:
    from workbench.labels import LabelStore

    h = LabelStore(db).history(kind="review")
    return list(zip(h["id"], h["annotator"], h["round"], h["value"], strict=True))


def _wait_text(page: Any, selector: str, text: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator(selector).first).to_contain_text(text, timeout=30_000)


def test_review_keys_clicks_filters_and_layout(page, jupyter_lab, ui, tmp_path):
    workspace = jupyter_lab.workspace / "review-view"
    _make_workspace(workspace, ui)
    db = workspace / "review.db"
    cells = [
        "from workbench import Workspace\n"
        "from workbench.labels import LabelStore\n"
        "from workbench.views.review import ReviewQueue\n"
        f"ws = Workspace({str(workspace)!r}, create=False)\n"
        "catalog = ws.load_catalog()\n"
        f"store = LabelStore({str(db)!r}, catalog=catalog)\n"
        "queue = ReviewQueue(catalog, store, reviewer='rita', image_size=220)\n"
        "queue",
    ]
    ui.write_notebook(jupyter_lab.root / "review_view.ipynb", cells)
    ui.open_notebook(page, jupyter_lab, "review_view.ipynb")
    ui.run_all(page, timeout=120)
    errors = ui.error_outputs(page, include_stderr=False)
    assert not errors, "notebook raised:\n\n" + "\n\n".join(errors)
    view = page.locator(VIEW).first
    info, status, progress = (
        f"{VIEW} >> .wb-info",
        f"{VIEW} >> .wb-status",
        f"{VIEW} >> .wb-progress",
    )
    try:
        _wait_text(page, progress, "0 / 3 reviewed")
        _wait_text(page, info, "red/red_0.png")  # the tie comes first
        _wait_text(page, f"{VIEW} >> .wb-labels", "bo")
        _wait_text(page, f"{VIEW} >> .wb-consensus", "tied")
        found = ui.layout_problems(page, VIEW)
        assert found == {"clipped": [], "overlapping": []}, found

        # Typing in the note field: u, s, a, digits and Backspace type; nothing is decided.
        ui.type_into(page, f"{VIEW} >> .wb-note input", "a1su2", over=f"{VIEW} >> .wb-image")
        page.keyboard.press("Backspace")
        page.keyboard.press("Enter")
        assert view.locator(".wb-note input").input_value() == "a1su"
        assert _reviews(db) == []

        # A key with the focus outside any text field: 2 = green, bo's label: an accept.
        page.locator(f"{VIEW} >> .wb-progress").first.click()  # focus out of the note
        view.locator(".wb-image").hover()
        page.keyboard.press("2")
        _wait_text(page, status, "green ✓ accepted")
        _wait_text(page, progress, "1 / 3 reviewed")
        assert _reviews(db) == [("red/red_0.png", "rita", 1, "accept")]
        from workbench.labels import LabelStore

        assert LabelStore(db).history(kind="review")["extra"].iloc[-1] == {"note": "a1su"}

        # Enter accepts the consensus of the next item; Backspace undoes it.
        page.keyboard.press("Enter")
        _wait_text(page, status, "✓ accepted")
        assert [r[3] for r in _reviews(db)] == ["accept", "accept"]
        page.keyboard.press("Backspace")
        _wait_text(page, status, "undone")
        _wait_text(page, progress, "1 / 3 reviewed")

        # Clicks: unsure, then a class button (a correction: reject + the reviewer's label).
        page.mouse.move(0, 0)
        view.locator(".wb-unsure").click()
        _wait_text(page, status, "marked unsure")
        view.locator(".wb-class", has_text="blue").click()
        # blue_0 was marked unsure; on green_0 nobody said blue: a correction
        _wait_text(page, status, "blue ✓ corrected")
        reviews = _reviews(db)
        assert reviews[-2:] == [("blue/blue_0.png", "rita", 1, "unsure"),
                                ("green/green_0.png", "rita", 1, "reject")]  # fmt: skip
        assert all(r[1:3] == ("rita", 1) for r in reviews)

        # A filter: the dropdown gets the keys while it has the focus; the queue changes.
        before = _reviews(db)
        reason = view.locator(".wb-filter-reason select")
        reason.select_option("tie")
        _wait_text(page, info, "item 1 of 1 · accept")  # the decided tie, shown again
        reason.focus()
        view.locator(".wb-image").hover()
        page.keyboard.press("u")
        page.keyboard.press("s")
        assert _reviews(db) == before
        found = ui.layout_problems(page, VIEW)
        assert found == {"clipped": [], "overlapping": []}, found
    except AssertionError:
        print(f"console errors: {page.wb_console_errors}")
        raise
    finally:
        ui.screenshot(page, tmp_path, "review-view.png")
