"""IssueReview in a real browser: every control, the header after decisions taken in code, layout.

A small generated workspace (planted exact duplicates: one group of 15, so 3 members start
hidden, and three pairs; a near copy; a dark image) keeps the run short and independent of
notebooks 01-02.

DOM contract of ``workbench.views.issues.IssueReview`` relied on here (``add_class`` names):

- ``.wb-issues``                      root box
- ``.wb-issue-select select``         the issue dropdown
- ``.wb-threshold``                   the threshold slider (``.noUi-handle`` is its handle)
- ``.wb-counts`` / ``.wb-page``       header counts / page label
- ``button.wb-prev`` / ``button.wb-next``
- ``.wb-group``                       a duplicate group; in it ``button.wb-exclude-group``,
  ``button.wb-keep-group``, ``button.wb-more`` ("Show all N") and ``.wb-hidden-members img``
- ``.wb-tile`` (``.wb-excluded`` when excluded, ``.wb-keeper`` for the keeper), ``img.wb-thumb``,
  ``.wb-caption`` (ids break only after a ``/``: ``.wb-seg`` parts)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.ui

NOTEBOOK = "issues_ui.ipynb"
ROOT = ".wb-issues"
COUNTS = f"{ROOT} .wb-counts"
PAGE = f"{ROOT} .wb-page"


def _make_workspace(path: Path) -> None:
    from workbench import Catalog, Workspace

    rng = np.random.default_rng(3)
    root = path / "images" / "planted"
    root.mkdir(parents=True)

    def noise() -> Image.Image:  # smooth random images: distinct perceptual hashes
        small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        return Image.fromarray(small).resize((48, 48), Image.Resampling.BICUBIC)

    for i in range(20):
        noise().save(root / f"plain_{i:02d}.png")
    same = noise()
    for i in range(15):  # one group of 15 identical images: 12 tiles, 3 hidden
        same.save(root / f"same_{i:02d}.png")
    for i in range(3):
        im = noise()
        im.save(root / f"pair_{i}_a.png")
        im.save(root / f"pair_{i}_b.png")
    noise().save(root / "near_a.png")
    Image.open(root / "near_a.png").save(root / "near_b.jpg", "JPEG", quality=60)
    Image.new("RGB", (48, 48), (3, 3, 3)).save(root / "dark.png")
    Workspace(path).save_catalog(Catalog.from_folder(root, progress=False))


def _cells(workspace: Path) -> list[str]:
    return [
        "from workbench import Workspace\n"
        "from workbench.clean import check\n"
        "from workbench.decisions import Decisions\n"
        "from workbench.views import IssueReview\n"
        f"ws = Workspace({str(workspace)!r}, create=False)\n"
        "catalog = ws.load_catalog()\n"
        "report = check(catalog, workspace=ws, progress=False)",
        "review = IssueReview(catalog, report, workspace=ws, page_size=6, thumb_size=80)\nreview",
        # each run of this cell excludes one more plain image, in code, not through the view
        "todo = iter(sorted(i for i in catalog.ids if i.startswith('plain_')))",
        "Decisions(ws).exclude([next(todo)], issue='in code')",
    ]


def _total(page: Any) -> int:
    text = page.locator(COUNTS).first.inner_text()
    m = re.search(r"([\d,]+) excluded in total", text)
    assert m, text
    return int(m.group(1).replace(",", ""))


def _wait_total(page: Any, n: int) -> None:
    page.wait_for_function(
        f"""(n) => {{
          const e = document.querySelector({COUNTS!r});
          const m = e && e.innerText.match(/([\\d,]+) excluded in total/);
          return m && Number(m[1].replace(/,/g, '')) === n;
        }}""",
        arg=n,
        timeout=30_000,
    )


def _select_issue(page: Any, issue: str) -> None:
    """Pick an issue in the dropdown as a user does (its options read "issue (count)")."""
    select = page.locator(f"{ROOT} .wb-issue-select select").first
    labels = select.evaluate("s => [...s.options].map(o => o.text)")
    label = next((t for t in labels if t.replace("\xa0", " ").startswith(f"{issue} (")), None)
    assert label, labels
    select.select_option(label=label)


def _no_layout_problems(page: Any, ui: Any) -> None:
    problems = ui.layout_problems(page, ROOT)
    assert problems == {"clipped": [], "overlapping": []}, problems


def test_every_control_of_the_issue_review(page: Any, jupyter_lab: Any, ui: Any, tmp_path: Path):
    from playwright.sync_api import expect

    from workbench import Workspace
    from workbench.decisions import Decisions

    workspace = jupyter_lab.workspace / "issues-ui"
    _make_workspace(workspace)
    ui.write_notebook(jupyter_lab.root / NOTEBOOK, _cells(workspace))
    decisions = Decisions(Workspace(workspace, create=False))

    ui.open_notebook(page, jupyter_lab, NOTEBOOK)
    try:
        ui.run_all(page, timeout=120)
        errors = ui.error_outputs(page, include_stderr=False)
        assert not errors, "notebook raised:\n\n" + "\n\n".join(errors)
        root = page.locator(ROOT).first
        expect(root).to_be_visible(timeout=30_000)
        root.scroll_into_view_if_needed()
        _wait_total(page, 1)  # the last cell ran after the view was shown: the header follows
        _no_layout_problems(page, ui)

        # issue switch: the duplicate groups; the threshold arrives on the new issue's step,
        # never the old value snapped to it and sent back (it showed 0.955, not 1.000)
        _select_issue(page, "near_duplicate")
        readout = page.locator(f"{ROOT} .wb-threshold .widget-readout").first
        expect(readout).not_to_have_text("1.000")
        _select_issue(page, "exact_duplicate")
        expect(readout).to_have_text("1.000")
        expect(page.locator(PAGE).first).to_contain_text("4 groups (21 images)")
        expect(page.locator(PAGE).first).to_contain_text("Page 1 / 2")
        expect(readout).to_have_text("1.000")  # after the redraw too: nothing came back
        big = page.locator(f"{ROOT} .wb-group").first
        drop = big.locator("button.wb-exclude-group")
        keep_all = big.locator("button.wb-keep-group")
        expect(drop).to_be_disabled()  # 3 members hidden: nothing acts on them unseen
        expect(big.locator(".wb-tile")).to_have_count(12)
        big.locator("button.wb-more", has_text="Show all 15").click()
        expect(big.locator(".wb-hidden-members img")).to_have_count(3)
        expect(drop).to_be_enabled()
        _no_layout_problems(page, ui)
        ui.screenshot(page, tmp_path, "expanded.png")
        # captions: an id breaks only after a "/", each part on one line (never mid-word)
        heights = page.evaluate(
            """(root) => [...document.querySelectorAll(root + ' .wb-caption .wb-seg')].map(
                 e => e.offsetHeight / parseFloat(getComputedStyle(e).lineHeight))""",
            ROOT,
        )
        assert heights and all(h < 1.5 for h in heights), heights

        # exclude all but keeper, then keep all: the code's exclusion stands throughout
        first_thumb = f"{ROOT} .wb-group img.wb-thumb"
        page.evaluate("(s) => { document.querySelector(s).wbKept = true; }", first_thumb)
        drop.click()
        _wait_total(page, 15)
        # the redraw patched the tiles: the same image element, not loaded again
        assert page.evaluate("(s) => document.querySelector(s).wbKept === true", first_thumb)
        assert len(decisions.excluded) == 15
        expect(big.locator(".wb-tile.wb-excluded")).to_have_count(11)
        expect(big.locator(".wb-hidden-members img.wb-excluded")).to_have_count(3)
        dimmed = big.locator(".wb-tile.wb-excluded img.wb-thumb").first
        assert float(dimmed.evaluate("e => getComputedStyle(e).opacity")) < 0.5
        keeper = big.locator(".wb-tile.wb-keeper img.wb-thumb").first
        assert float(keeper.evaluate("e => getComputedStyle(e).opacity")) == 1.0
        ui.screenshot(page, tmp_path, "excluded.png")
        keep_all.click()
        _wait_total(page, 1)
        assert len(decisions.excluded) == 1

        # a tile's own button
        tile = big.locator(".wb-tile").nth(1)
        tile.locator("button", has_text="Exclude").click()
        _wait_total(page, 2)
        expect(tile).to_have_class(re.compile(r"\bwb-excluded\b"))
        tile.locator("button", has_text="Keep").click()
        _wait_total(page, 1)

        # pages
        page.locator(f"{ROOT} button.wb-next").first.click()
        expect(page.locator(PAGE).first).to_contain_text("Page 2 / 2")
        expect(page.locator(f"{ROOT} .wb-group")).to_have_count(2)
        page.locator(f"{ROOT} button.wb-prev").first.click()
        expect(page.locator(PAGE).first).to_contain_text("Page 1 / 2")

        # the threshold slider, dragged with the mouse
        _select_issue(page, "dark")
        expect(page.locator(PAGE).first).to_have_text(re.compile(r"· 1 image$"))
        handle = page.locator(f"{ROOT} .wb-threshold .noUi-handle").first
        box = handle.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] - 250, box["y"] + box["height"] / 2, steps=10)
        page.mouse.up()
        page.wait_for_function(  # a lower threshold flags more than the dark image
            f"""() => {{
              const m = document.querySelector({PAGE!r}).innerText.match(/· (\\d+) images?$/);
              return m && Number(m[1]) > 1;
            }}""",
            timeout=30_000,
        )
        assert page.locator(f"{ROOT} .wb-threshold .widget-readout").first.inner_text() != "0.800"
        _no_layout_problems(page, ui)

        # a decision taken in a code cell shows in the header at once
        cell = page.locator(".jp-Notebook .jp-Cell").nth(3)
        cell.locator(".cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        _wait_total(page, 2)
        assert len(decisions.excluded) == 2
    except AssertionError:
        print("error/stderr outputs:\n" + "\n\n".join(ui.error_outputs(page, include_stderr=True)))
        print(f"console errors: {page.wb_console_errors}")
        raise
    finally:
        ui.screenshot(page, tmp_path, "issues.png")
