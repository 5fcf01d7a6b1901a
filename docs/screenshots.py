"""Regenerate the README screenshots from a real JupyterLab in headless Chromium.

Usage (from the repository root)::

    .venv/bin/python docs/screenshots.py

Starts a throw-away JupyterLab on 127.0.0.1 exactly like the UI test harness
(``tests/ui/conftest.py``: temp copy of ``notebooks/``, temp ``WORKBENCH_WORKSPACE``,
``windowingMode`` none, every Jupyter dir redirected to a temp dir), runs
``01_acquire.ipynb`` then ``02_clean_and_normalize.ipynb`` in the same workspace and writes

- ``docs/browser.png``  the DataBrowser (``.wb-browser``), sorted by hash so the page mixes
  classes, with one tile opened in the detail pane
- ``docs/issues.png``   the IssueReview (``.wb-issues``) on ``near_duplicate`` (else
  ``exact_duplicate``): controls, histogram and the duplicate groups that fit in the window

If the review shows an error banner after the issue change (matplotlib's mathtext is not
thread-safe and the histogram sometimes fails with ``ParseException``), the change is
repeated and the error is reported on stderr. On failure a full-page screenshot is written
to the temp dir (``wb-screenshots-failure.png``). ``--out DIR`` writes elsewhere.

The server is stopped by its own process group; its kernels by PID. Needs
``/usr/bin/chromium`` and the ``playwright`` Python package (no browser download).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
REPO_ROOT = DOCS.parent
HARNESS_PATH = REPO_ROOT / "tests" / "ui" / "conftest.py"

VIEWPORT = {"width": 1480, "height": 1200}
RUN_TIMEOUT = 420.0  # 01 scans and writes the 10,000-image sample
TILE_SRCS_JS = "() => [...document.querySelectorAll('.wb-browser .wb-tile img')].map(i => i.src)"
# "groups" once duplicate groups with thumbnails show, the error text if the view failed.
GROUPS_OR_ERROR_JS = """
() => {
  const err = document.querySelector('.wb-issues .wb-error');
  const text = err ? err.innerText.trim() : '';
  if (text) return text;
  const imgs = document.querySelectorAll('.wb-issues .wb-group .wb-tile img');
  return imgs.length >= 2 ? 'groups' : false;
}
"""
IMAGES_JS = """
(sel) => {
  const imgs = [...document.querySelectorAll(sel + ' img')]
    .filter(i => i.getClientRects().length > 0);  // skip hidden ones (display: none)
  return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
}
"""


def _load_harness() -> Any:
    """Import ``tests/ui/conftest.py`` under a private name (no pytest run needed)."""
    spec = importlib.util.spec_from_file_location("_wb_ui_harness", HARNESS_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


H = _load_harness()


def _run_notebook(page: Any, lab: Any, name: str) -> None:
    """Open ``name``, run all cells, fail on tracebacks; hide the left sidebar."""
    H.open_notebook(page, lab, name)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    H.run_all(page, timeout=RUN_TIMEOUT)
    errors = H.error_outputs(page, include_stderr=False)
    if errors:
        raise RuntimeError(f"{name} raised:\n\n" + "\n\n".join(errors))


def _wait_images(page: Any, selector: str) -> None:
    """Wait until every ``<img>`` below ``selector`` has loaded, then let layout settle."""
    page.wait_for_function(IMAGES_JS, arg=selector, timeout=30_000)
    page.wait_for_timeout(500)


def _shoot(page: Any, widget: Any, out: Path, parts: Any = None) -> None:
    """Screenshot ``widget``, cropped to what fits in the notebook panel.

    The widget's top is scrolled to the top of the notebook. If it is taller than the
    panel, the picture ends below the last of ``parts`` (a locator of the widget's
    blocks, e.g. its rows) that fits completely.
    """
    page.mouse.move(0, 0)  # no hover highlight in the picture
    widget.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    box = widget.bounding_box()
    panel = page.locator(H._PANEL + " .jp-Notebook").first.bounding_box()
    limit = panel["y"] + panel["height"]
    bottom = box["y"] + box["height"]
    if bottom > limit:
        bottom = box["y"]
        for part in parts.all() if parts is not None else []:
            pbox = part.bounding_box()
            if pbox and pbox["y"] + pbox["height"] <= limit:
                bottom = max(bottom, pbox["y"] + pbox["height"])
        if bottom <= box["y"]:
            raise RuntimeError(f"{out.name}: nothing of the widget fits in the window")
    clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": bottom - box["y"]}
    page.screenshot(path=str(out), clip=clip, scale="css", animations="disabled")


def shoot_browser(page: Any, lab: Any, out: Path) -> None:
    """Run 01_acquire, open one tile in the detail pane, screenshot ``.wb-browser``."""
    _run_notebook(page, lab, "01_acquire.ipynb")
    widget = page.locator(".wb-browser").first
    widget.wait_for(state="visible", timeout=30_000)
    widget.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => document.querySelectorAll('.wb-browser .wb-tile img').length >= 8",
        timeout=30_000,
    )
    # Sort by content hash: a page mixing all classes instead of the first 24 bears.
    before = page.evaluate(TILE_SRCS_JS)
    page.locator(".wb-browser .wb-sort select").first.select_option("hash")
    page.wait_for_function(
        f"(before) => ({TILE_SRCS_JS})().join(' ') !== before.join(' ')",
        arg=before,
        timeout=30_000,
    )
    _wait_images(page, ".wb-browser .wb-grid")
    page.locator(".wb-browser .wb-tile img").nth(3).click()
    page.locator(".wb-browser .wb-detail img").first.wait_for(state="visible", timeout=30_000)
    _wait_images(page, ".wb-browser")
    _shoot(page, widget, out)


def _settle(page: Any, timeout: float = 60.0) -> None:
    """Wait until the kernel has been idle for one second (widget messages handled)."""
    deadline = time.monotonic() + timeout
    since: float | None = None
    while time.monotonic() < deadline:
        if H._kernel_idle(H.kernel_state(page)):
            since = since or time.monotonic()
            if time.monotonic() - since >= 1.0:
                return
        else:
            since = None
        page.wait_for_timeout(100)


def _select_issue(page: Any, select: Any, index: int, attempts: int = 3) -> None:
    """Select option ``index`` of the issue dropdown and wait for its duplicate groups.

    If the view shows an error instead (its banner, ``.wb-error``), it is logged and the
    selection is repeated via another option.
    """
    for attempt in range(1, attempts + 1):
        select.select_option(index=index)
        _settle(page)
        state = page.wait_for_function(GROUPS_OR_ERROR_JS, timeout=30_000).json_value()
        if state == "groups":
            return
        print(f"issues.png: attempt {attempt}: the view showed {state!r}", file=sys.stderr)
        select.select_option(index=0 if index else 1)
        _settle(page)
    raise RuntimeError(f"issues.png: no duplicate groups after {attempts} attempts")


def shoot_issues(page: Any, lab: Any, out: Path) -> None:
    """Run 02_clean_and_normalize, select a duplicate issue, screenshot ``.wb-issues``."""
    _run_notebook(page, lab, "02_clean_and_normalize.ipynb")
    widget = page.locator(".wb-issues").first
    widget.wait_for(state="visible", timeout=30_000)
    select = page.locator(".wb-issues .wb-issue-select select").first
    labels = [t.strip() for t in select.locator("option").all_inner_texts()]
    counts = {}  # option labels look like "near_duplicate (208)", with a no-break space
    for index, label in enumerate(labels):
        m = re.match(r"(\w+)\s*\((\d+)\)", label)
        if m:
            counts[m.group(1)] = (int(m.group(2)), index)
    choice = next(
        (counts[k][1] for k in ("near_duplicate", "exact_duplicate") if counts.get(k, (0,))[0]),
        None,
    )
    if choice is None:
        raise RuntimeError(f"no duplicate issue with flagged samples among {labels}")
    print(f"issues.png: showing {labels[choice].split()[0]}")
    _select_issue(page, select, choice)
    _wait_images(page, ".wb-issues")
    # Eight groups per page are taller than the window: keep the controls and the
    # groups that fit.
    _shoot(page, widget, out, parts=page.locator(".wb-issues .wb-group"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="output folder (default: docs/)")
    args = parser.parse_args(argv)
    if not H.CHROMIUM.exists():
        parser.error(f"{H.CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="wb-screenshots-") as tmp,
        H.start_lab(Path(tmp)) as lab,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(
            executable_path=str(H.CHROMIUM), headless=True, args=H.CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(30_000)
            page = context.new_page()
            try:
                shoot_browser(page, lab, args.out / "browser.png")
                lab.shutdown_kernels()  # 02 starts its own kernel on the same workspace
                shoot_issues(page, lab, args.out / "issues.png")
            except Exception:
                H.screenshot(page, Path(tmp).parent, "wb-screenshots-failure.png")
                print(f"failure screenshot: {Path(tmp).parent / 'wb-screenshots-failure.png'}")
                raise
        finally:
            browser.close()
    for name in ("browser.png", "issues.png"):
        path = args.out / name
        print(f"{path}: {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
