"""Browser-side latency of the views: from the input event to the visible change, in Chromium.

    .venv/bin/python benchmarks/bench_ui.py [--quick] [--actions 20] [--workspace PATH]
        [--warmup 1] [--think 0.3] [--quiet-ms 500] [--timeout 60] [--screenshot FILE]
        [--windowing contentVisibility]
        [--views browser,issues,tuner,labeler,boxer] [--trace N]

What a user waits for, measured in the page. One notebook builds each view in its own cell over
the 10,000-image animals workspace (``--quick``: 2,000 images, 3 actions each): DataBrowser,
IssueReview (on ``workbench.clean.check``'s report), AugmentTuner (notebook 03's pipeline),
Labeler and BoxLabeler (the photos sample). JupyterLab runs on 127.0.0.1 as in the UI tests
(``tests/ui/conftest.py``, imported under a private name) but with the notebook windowing a
user's JupyterLab has (``--windowing``, JupyterLab's default); Debian's Chromium
(``/usr/bin/chromium``, headless, the harness's flags) is driven by Playwright with the real
mouse and keyboard.

Each timed action:

1. prepares untimed (scroll the control into view, move the pointer onto it, fill the query
   text, press the mouse on a slider handle, draw a box, ...) and waits for an idle kernel;
2. arms a probe in the page: a capture-phase listener on ``window`` notes ``performance.now()``
   at the first input event of the action's kind (``click``, ``keydown``, ``pointermove``,
   ``change``), before any widget's own listener runs; a MutationObserver on the view's root
   (and ``load`` of its images) schedules one ``requestAnimationFrame`` per change;
3. sends the input (mouse up, key, a 12 px handle move, an option pick);
4. waits until the target (images' ``src``, texts; per action below) differs from before,
   the kernel is idle, and the view has not changed for ``--quiet-ms``.

The latency is from the input event to the animation frame after the view's last change: the
change is complete and painted (a page flip counts when all its tiles are there, not the first).
"first" is the frame after the first change of the target, for comparison. The quiet period only
decides when to stop looking; it is not part of the latency.

Actions (one of each per round; rounds interleave the views, one warm-up round is not counted):

- DataBrowser: page flip (click "Next", "Prev" on the last page), query (type a pandas query,
  time the Enter: one class at a time, then none), sort (pick another sort column);
- IssueReview: issue switch (near_duplicate <-> exact_duplicate, or the two issues with most
  flagged), threshold (drag the slider handle to 12 px left of where it started, then back to
  exactly there: the workload does not drift), exclude group ("Exclude all but keeper" on the
  first group), keep all (the same group's "Keep all", restoring it), next page ("Prev" on the
  last page; skipped when there is one page);
- AugmentTuner: slider -> preview (RandomAffine's upper ``degrees`` handle, 12 px and back;
  every draw rotates, so every draw changes);
- Labeler: key -> next image (the pointer over the image, key "1");
- BoxLabeler: box submit (draw a box, time the click on Submit). The photos sample has 10
  images: when one is left, the submitted ones are undone (untimed) and labeling starts again,
  so from the second cycle on the thumbnails come from the memory cache.

Targets (issue 15): p95 <= 100 ms for page flip, slider -> preview and key -> next image;
p95 <= 300 ms for every IssueReview action. Printed: a table per action (n, median, p95, max,
target, met?), the load average before and after, the Chromium and JupyterLab versions.

The query is typed with the pointer outside the browser, as in earlier runs (the views' key
reader leaves a focused text field its keys, so this no longer matters).

The workspace is built once into a temp folder (``--workspace PATH`` builds it there, or reuses
the catalog already saved there). Label stores and review decisions go to a per-run temp folder,
never into the workspace. A control that cannot be found (class names change) makes its row
"n/a" instead of stopping the run.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
HARNESS_PATH = REPO_ROOT / "tests" / "ui" / "conftest.py"
NOTEBOOK = "bench_ui.ipynb"
DRAG_PX = 12  # one slider move: several steps of every slider used here


def _load_harness() -> Any:
    """Import ``tests/ui/conftest.py`` under a private name (no pytest run needed)."""
    spec = importlib.util.spec_from_file_location("_wb_bench_ui_harness", HARNESS_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


H = _load_harness()
# The user's JupyterLab (``make lab`` sets no notebook settings) renders off-screen cells
# lazily (CSS content-visibility); the browser tests attach every cell ("none"), which makes
# each frame of a long notebook costlier. Latency is measured as the user gets it.
TRACKER_SETTINGS = "@jupyterlab/notebook-extension/tracker.jupyterlab-settings"
WINDOWING = "contentVisibility"

# ------------------------------------------------------------------------------ in the page

# Arm the probe on the view ``root``: input time, last change, frames after the first relevant
# and the last change. ``targets`` (a selector inside the root) is what must change.
ARM_JS = """([root, targets, types, trace]) => {
  const el = document.querySelector(root);
  if (!el) return false;
  if (window.__wbProbe) window.__wbProbe.stop();
  const log = [];  // --trace: [ms since the input, what] for kernel messages and changes
  const note = (what) => {
    if (trace && p.t0 !== null) log.push([performance.now() - p.t0, what]);
  };
  const name = n => (n && n.nodeType !== 1 ? n.parentElement : n);
  const tag = n => { n = name(n); return n ? n.tagName.toLowerCase() + (n.classList.length ?
    '.' + [...n.classList].filter(c => c.startsWith('wb-') || c.startsWith('widget-'))
      .slice(0, 2).join('.') : '') : '?'; };
  const sig = () => [...el.querySelectorAll(targets)]
    .map(e => e.tagName === 'IMG' ? e.getAttribute('src') : e.textContent).join('\\u0001');
  const p = {t0: null, last: null, frame: null, first: null, changed: false, before: sig(), sig};
  const relevant = n => {
    if (n && n.nodeType !== 1) n = n.parentElement;
    return !!(n && n.closest && n.closest(targets));
  };
  const touched = (isRelevant) => {
    if (p.t0 === null) return;
    p.last = performance.now();
    const firstOne = isRelevant && p.first === null;
    if (firstOne) p.first = -1;
    requestAnimationFrame(() => {
      const now = performance.now();
      p.frame = now;
      if (firstOne) p.first = now;
    });
  };
  const mo = new MutationObserver(records => {
    if (trace) note('change ' + [...new Set(records.map(r => tag(r.target)))].join(' '));
    touched(records.some(r => relevant(r.target)));
  });
  mo.observe(el, {subtree: true, childList: true, attributes: true, characterData: true});
  const onLoad = e => {
    if (!e.target || e.target.tagName !== 'IMG') return;
    note('load ' + tag(e.target));
    touched(relevant(e.target));
  };
  const onInput = (e) => {
    if (p.t0 === null) { p.t0 = performance.now(); note('input ' + e.type); }
  };
  el.addEventListener('load', onLoad, true);
  for (const t of types) window.addEventListener(t, onInput, true);
  const app = window.jupyterapp, w = app && app.shell.currentWidget;
  const kernel = trace && w && w.sessionContext && w.sessionContext.session
    && w.sessionContext.session.kernel;
  const onMsg = (_, {msg, direction}) => {
    const c = msg.content || {}, d = c.data || {};
    const keys = d.state ? Object.keys(d.state).join(',') : (d.method || c.execution_state || '');
    note(`${direction} ${msg.header.msg_type} ${keys}`.trim());
  };
  if (kernel) kernel.anyMessage.connect(onMsg);
  p.log = log;
  p.stop = () => {
    mo.disconnect();
    el.removeEventListener('load', onLoad, true);
    for (const t of types) window.removeEventListener(t, onInput, true);
    if (kernel) kernel.anyMessage.disconnect(onMsg);
  };
  window.__wbProbe = p;
  return true;
}"""

# Done: the target changed, the kernel is idle, the view quiet for ``quiet`` ms and painted.
DONE_JS = """(quiet) => {
  const p = window.__wbProbe;
  if (!p || p.t0 === null || p.last === null || p.frame === null) return false;
  if (!p.changed) { if (p.sig() === p.before) return false; p.changed = true; }
  const now = performance.now();
  if (now - p.last < quiet || p.frame < p.last) return false;
  const app = window.jupyterapp, w = app && app.shell.currentWidget;
  const s = w && w.sessionContext && w.sessionContext.session;
  if (!s || !s.kernel || s.kernel.status !== 'idle') return false;
  p.stop();
  return {ms: p.frame - p.t0, first: p.first > 0 ? p.first - p.t0 : null, log: p.log};
}"""

STOP_JS = "() => { if (window.__wbProbe) window.__wbProbe.stop(); }"
OPTIONS_JS = "s => [...s.options].map(o => o.textContent.trim())"
SELECTED_JS = "s => s.selectedIndex"


class Unavailable(Exception):
    """A view or control an action needs is not on the page."""


class Skip(Exception):
    """The action cannot be done this round (one page only: nowhere to flip to)."""


# ------------------------------------------------------------------------------ the workspace


def build_workspace(path: Path, per_class: int | None) -> dict[str, Any]:
    """Build (or reuse) the animals workspace at ``path``; warm the check's feature cache."""
    from workbench import Catalog, Workspace, samples
    from workbench.clean import check

    t = time.perf_counter()
    ws = Workspace(path)
    if ws.has_catalog:
        catalog = ws.load_catalog()
        how = "reused"
    else:
        root = samples.materialize("animals", ws, progress=False)
        catalog = ws.attach(Catalog.from_folder(root, progress=False))
        if per_class:
            keep = catalog.df.groupby("label", observed=True).cumcount() < per_class
            catalog = catalog.filter(keep)
        ws.save(catalog)
        how = "built"
    check(catalog, workspace=ws, progress=False)  # the notebook's check reads the cache
    samples.load("photos", ws, progress=False)
    return {
        "images": len(catalog),
        "classes": list(catalog.classes),
        "how": how,
        "seconds": time.perf_counter() - t,
    }


def notebook_cells(workspace: Path, scratch: Path) -> list[str]:
    """One cell per view, over the workspace; stores and decisions in ``scratch``."""
    return [
        "from pathlib import Path\n"
        "from workbench import Workspace, samples\n"
        "from workbench.augment import Pipeline\n"
        "from workbench.clean import check\n"
        "from workbench.labels import LabelStore\n"
        "from workbench.views import DataBrowser, IssueReview\n"
        "from workbench.views.augment import AugmentTuner\n"
        "from workbench.views.boxes import BoxLabeler\n"
        "from workbench.views.labeler import Labeler\n"
        f"ws = Workspace({str(workspace)!r}, create=False)\n"
        f"scratch = Path({str(scratch)!r})\n"
        "catalog = ws.load_catalog()\n"
        "len(catalog)",
        'browser = DataBrowser(catalog, columns=("label", "width", "height"))\nbrowser',
        "report = check(catalog, workspace=ws, progress=False)\n"
        'review = IssueReview(catalog, report, workspace=Workspace(scratch / "decisions"))\n'
        "review",
        "pipeline = (\n"
        "    Pipeline()\n"
        '    .add("RandomHorizontalFlip")\n'
        '    .add("RandomAffine", degrees=(-15, 15), translate_x=0.1, translate_y=0.1,'
        " scale=(0.9, 1.1))\n"
        '    .add("RandomPerspective", distortion_scale=0.2, p=0.3)\n'
        '    .add("RandomErasing", scale=(0.02, 0.1), p=0.25)\n'
        ")\n"
        "tuner = AugmentTuner(catalog, pipeline)\n"
        "tuner",
        'store = LabelStore(scratch / "labels.db", catalog=catalog)\n'
        "store.add_classes(catalog.classes)\n"
        'labeler = Labeler(catalog, store, annotator="bench", order="random")\n'
        "labeler",
        'photos = samples.load("photos", ws, progress=False)\n'
        'box_store = LabelStore(scratch / "boxes.db", catalog=photos)\n'
        'boxer = BoxLabeler(photos, box_store, annotator="bench",'
        ' classes=["face", "rocket", "helmet"])\n'
        "boxer",
    ]


# ------------------------------------------------------------------------------ the actions


@dataclass
class Action:
    """One kind of timed input on one view.

    ``prepare(bench)`` does the untimed part and returns ``(fire, after)``: ``fire`` sends the
    timed input, ``after`` (or ``None``) tidies up once the change is complete.
    """

    view: str
    name: str
    root: str
    targets: str
    types: tuple[str, ...]
    target_ms: float | None
    prepare: Callable[[Bench], tuple[Callable[[], None], Callable[[], None] | None]]
    samples: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    logs: list[tuple[float, list]] = field(default_factory=list)  # (ms, timeline) per sample
    failures: list[str] = field(default_factory=list)
    skipped: int = 0
    unavailable: str | None = None

    @property
    def label(self) -> str:
        return f"{self.view}: {self.name}"


class Bench:
    """The page, the probe and the state the actions keep between rounds."""

    def __init__(self, page: Any, args: argparse.Namespace, classes: list[str]) -> None:
        self.page = page
        self.args = args
        self.classes = classes
        self.state: dict[str, Any] = {}

    # ---------------------------------------------------------------- helpers for the actions
    def find(self, selector: str, timeout: float = 5.0) -> Any:
        """The first visible match of ``selector``, scrolled into view; else Unavailable."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        loc = self.page.locator(selector).first
        try:
            loc.wait_for(state="visible", timeout=timeout * 1000)
            loc.scroll_into_view_if_needed(timeout=timeout * 1000)
        except PlaywrightTimeout:
            raise Unavailable(selector) from None
        return loc

    def click(self, loc: Any) -> tuple[Callable[[], None], None]:
        """Pointer onto ``loc`` now; the timed part is the press and release."""
        loc.hover()

        def fire() -> None:
            self.page.mouse.down()
            self.page.mouse.up()

        return fire, None

    def drag(self, handle: Any, key: str, first: int) -> tuple[Callable[[], None], Callable]:
        """Press on a slider handle now; the timed part is one move to ``DRAG_PX`` beside the
        handle's first position (direction ``first``: +1 right, -1 left), then back to it.

        The targets are absolute: the value returns exactly to where it started, whatever moved
        it in between, so the workload does not drift from round to round.
        """
        box = self._settled_box(handle, key)
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        home = self.state.setdefault(f"{key}-home", x)
        # where the handle stands decides the move (a failed move must not flip a toggle)
        to = home + first * DRAG_PX if abs(x - home) < 1 else home
        self.page.mouse.move(x, y)
        self.page.mouse.down()
        return (lambda: self.page.mouse.move(to, y)), self.page.mouse.up

    def _settled_box(self, loc: Any, key: str) -> dict[str, float]:
        """``loc``'s box once it stopped moving: scrolling renders cells that were skipped
        off-screen (content-visibility), which can shift what is below them for a frame or two.
        """
        box, height = None, self.page.viewport_size["height"]
        for _ in range(40):
            now = loc.bounding_box()
            if now is not None and not 0 <= now["y"] <= height - now["height"]:
                loc.scroll_into_view_if_needed()
                now = None
            elif now is not None and now == box:
                return now
            box = now
            self.page.wait_for_timeout(50)
        raise Unavailable(f"{key}: the handle does not stand still")

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until the kernel is idle (work left by the previous action)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if H._kernel_idle(H.kernel_state(self.page)):
                return
            self.page.wait_for_timeout(50)

    def untimed(self, root: str, targets: str, fire: Callable[[], None]) -> None:
        """Send an input that is not measured, and wait for its change like a timed one."""
        self.page.evaluate(ARM_JS, [root, targets, ["click", "keydown"], False])
        fire()
        self.page.wait_for_function(
            DONE_JS, arg=self.args.quiet_ms, polling=100, timeout=self.args.timeout * 1000
        )

    # ---------------------------------------------------------------- one measurement
    def measure(self, action: Action) -> dict[str, float | None]:
        self.settle()
        time.sleep(self.args.think)
        fire, after = action.prepare(self)
        try:
            self.settle()
            armed = [action.root, action.targets, list(action.types), self.args.trace > 0]
            if not self.page.evaluate(ARM_JS, armed):
                raise Unavailable(action.root)
            fire()
            handle = self.page.wait_for_function(
                DONE_JS, arg=self.args.quiet_ms, polling=100, timeout=self.args.timeout * 1000
            )
            return handle.json_value()
        finally:
            self.page.evaluate(STOP_JS)
            if after is not None:
                after()


# DataBrowser -------------------------------------------------------------------------------
BROWSER = ".wb-browser"
BROWSER_TARGETS = ".wb-grid img, .wb-page"


def _flip(b: Bench, root: str) -> tuple[Callable[[], None], None]:
    """Click "Next" (on the last page "Prev"); Skip when there is one page only."""
    for name in ("wb-next", "wb-prev"):
        button = b.find(f"{root} .{name}")
        if button.is_enabled():
            return b.click(button)
    raise Skip("one page only")


def page_flip(b: Bench) -> tuple[Callable[[], None], None]:
    return _flip(b, BROWSER)


def query(b: Bench) -> tuple[Callable[[], None], None]:
    queries = [f"label == {c!r}" for c in b.classes] + [""]
    k = b.state["query"] = (b.state.get("query", -1) + 1) % len(queries)
    field = b.find(f"{BROWSER} .wb-query input")
    b.page.mouse.move(2, 2)  # outside the browser: its key listener would take the Enter
    field.fill(queries[k])
    return (lambda: b.page.keyboard.press("Enter")), None


def sort(b: Bench) -> tuple[Callable[[], None], None]:
    select = b.find(f"{BROWSER} .wb-sort select")
    options = select.evaluate(OPTIONS_JS)
    columns = [c for c in ("hash", "bytes", "id") if c in options]
    if len(columns) < 2:
        raise Unavailable(f"sort columns hash/bytes/id among {options}")
    current = options[select.evaluate(SELECTED_JS)]
    pick = columns[(columns.index(current) + 1) % len(columns)] if current in columns else "hash"
    select.hover()
    return (lambda: select.select_option(pick)), None


# IssueReview -------------------------------------------------------------------------------
ISSUES = ".wb-issues"
ISSUE_TARGETS = ".wb-counts, .wb-histogram, .wb-issue-body, .wb-issue-body img, .wb-page"


def _issue_options(select: Any) -> list[tuple[str, int]]:
    """(issue name, flagged count) per option of the issue menu."""
    out = []
    for text in select.evaluate(OPTIONS_JS):
        m = re.match(r"(\w+)\s*\((\d+)\)", text)
        out.append((m.group(1), int(m.group(2))) if m else (text, 0))
    return out


def issue_switch(b: Bench) -> tuple[Callable[[], None], None]:
    select = b.find(f"{ISSUES} .wb-issue-select select")
    options = _issue_options(select)
    names = [n for n, _ in options]
    pair = ["near_duplicate", "exact_duplicate"]
    if not all(dict(options).get(n, 0) for n in pair):
        pair = [n for n, _ in sorted(options, key=lambda o: -o[1])[:2]]
    current = names[select.evaluate(SELECTED_JS)]
    index = names.index(pair[1] if current == pair[0] else pair[0])
    select.hover()
    return (lambda: select.select_option(index=index)), None


def threshold(b: Bench) -> tuple[Callable[[], None], Callable]:
    select = b.find(f"{ISSUES} .wb-issue-select select")
    issue = _issue_options(select)[select.evaluate(SELECTED_JS)][0]
    handle = b.find(f"{ISSUES} .wb-threshold .noUi-handle")
    return b.drag(handle, f"threshold-{issue}", first=-1)  # thresholds sit at the right end


# A group's buttons stay disabled until its hidden members are shown (the first page holds the
# largest groups): "Show all" is clicked first, untimed, as a user would before acting.
def _first_group_button(b: Bench, button: str) -> Any:
    selector = f"{ISSUES} .wb-group button.{button}"
    group = b.find(f"{ISSUES} .wb-group")
    target = group.locator(f"button.{button}").first
    more = group.locator("button.wb-more").first
    if not target.is_enabled() and more.count() and more.is_visible() and more.is_enabled():
        more.click()
    try:  # by selector: a redraw replaces the elements, a handle would stay on the old one
        b.page.wait_for_function(
            "(sel) => { const el = document.querySelector(sel); return !!el && !el.disabled; }",
            arg=selector,
            timeout=10_000,
        )
    except Exception:
        raise Unavailable(f"{selector} (enabled)") from None
    return b.page.locator(selector).first


def exclude_group(b: Bench) -> tuple[Callable[[], None], None]:
    return b.click(_first_group_button(b, "wb-exclude-group"))


def keep_group(b: Bench) -> tuple[Callable[[], None], None]:
    return b.click(_first_group_button(b, "wb-keep-group"))


def issue_next_page(b: Bench) -> tuple[Callable[[], None], None]:
    return _flip(b, ISSUES)


# AugmentTuner, Labeler, BoxLabeler ---------------------------------------------------------
TUNER = ".wb-augment"
LABELER = ".wb-labeler"
BOXER = ".wb-boxlabeler"
BOX_TARGETS = ".wb-bbox img, .wb-progress"


def slider_preview(b: Bench) -> tuple[Callable[[], None], Callable]:
    try:
        handle = b.find(f"{TUNER} .wb-param-degrees .noUi-handle-upper")
    except Unavailable:
        handle = b.find(f"{TUNER} .wb-param .noUi-handle")
    return b.drag(handle, "tuner", first=+1)


def key_next_image(b: Bench) -> tuple[Callable[[], None], None]:
    image = b.find(f"{LABELER} img.wb-image")
    image.click()  # pointer over the image: the labeler reads the keyboard
    return (lambda: b.page.keyboard.press("1")), None


def _box_progress(b: Bench) -> tuple[int, int] | None:
    text = b.find(f"{BOXER} .wb-progress").inner_text()
    m = re.search(r"([\d,]+)\s*/\s*([\d,]+)\s*done", text)
    return (int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))) if m else None


def box_submit(b: Bench) -> tuple[Callable[[], None], None]:
    progress = _box_progress(b)
    if progress and progress[0] >= progress[1] - 1:  # one left: undo them all, label again
        undo = b.find(f"{BOXER} .wb-undo")
        for _ in range(progress[0]):
            b.settle()
            undo.hover()
            b.untimed(BOXER, BOX_TARGETS, lambda: (b.page.mouse.down(), b.page.mouse.up()))
    image = b.find(f"{BOXER} .wb-bbox img")
    b.page.wait_for_function(
        "(sel) => { const i = document.querySelector(sel); return i && i.naturalWidth > 0; }",
        arg=f"{BOXER} .wb-bbox img",
        timeout=30_000,
    )
    r = image.bounding_box()
    if r is None:
        raise Unavailable("box image has no box")
    b.page.mouse.move(r["x"] + 0.3 * r["width"], r["y"] + 0.3 * r["height"])
    b.page.mouse.down()
    b.page.mouse.move(r["x"] + 0.6 * r["width"], r["y"] + 0.6 * r["height"], steps=6)
    b.page.mouse.up()
    b.page.wait_for_timeout(200)  # the drawn box syncs to the kernel
    submit = b.page.locator(f"{BOXER} .wb-submit")
    if not submit.count():
        submit = b.page.locator(f"{BOXER} button", has_text=re.compile(r"^\s*Submit"))
    if not submit.count():
        raise Unavailable("BoxLabeler Submit button")
    submit.first.scroll_into_view_if_needed(timeout=5000)
    return b.click(submit.first)


def make_actions() -> dict[str, list[Action]]:
    """The actions per view, in the order they run inside a round."""
    browser = [
        Action("DataBrowser", "page flip", BROWSER, BROWSER_TARGETS, ("click",), 100, page_flip),
        Action("DataBrowser", "query", BROWSER, BROWSER_TARGETS, ("keydown",), None, query),
        Action("DataBrowser", "sort", BROWSER, BROWSER_TARGETS, ("change",), None, sort),
    ]
    move = ("pointermove", "mousemove")
    issues = [
        Action(
            "IssueReview", "issue switch", ISSUES, ISSUE_TARGETS, ("change",), 300, issue_switch
        ),
        Action("IssueReview", "threshold", ISSUES, ISSUE_TARGETS, move, 300, threshold),
        Action(
            "IssueReview", "exclude group", ISSUES, ISSUE_TARGETS, ("click",), 300, exclude_group
        ),
        Action(
            "IssueReview", "keep all (restores)", ISSUES, ISSUE_TARGETS, ("click",), 300, keep_group
        ),
        Action("IssueReview", "next page", ISSUES, ISSUE_TARGETS, ("click",), 300, issue_next_page),
    ]
    return {
        "browser": browser,
        "issues": issues,
        "tuner": [
            Action(
                "AugmentTuner", "slider -> preview", TUNER, "img.wb-draw", move, 100, slider_preview
            )
        ],
        "labeler": [
            Action(
                "Labeler",
                "key -> next image",
                LABELER,
                "img.wb-image, .wb-progress",
                ("keydown",),
                100,
                key_next_image,
            )
        ],
        "boxer": [
            Action("BoxLabeler", "box submit", BOXER, BOX_TARGETS, ("click",), None, box_submit)
        ],
    }


# ------------------------------------------------------------------------------ the run


def run_rounds(bench: Bench, views: dict[str, list[Action]], rounds: int, warmup: int) -> None:
    """``warmup + rounds`` rounds; each runs every action once, interleaving the views."""
    from playwright.sync_api import Error as PlaywrightError

    order = [a for group in zip_longest(*views.values()) for a in group if a is not None]
    for r in range(warmup + rounds):
        counted = r >= warmup
        t = time.perf_counter()
        for action in order:
            if action.unavailable:
                continue
            try:
                result = bench.measure(action)
            except Unavailable as e:
                action.unavailable = f"not found: {e}"
                continue
            except Skip:
                action.skipped += 1
                continue
            except PlaywrightError as e:  # a timeout or a detached element: count, go on
                action.failures.append(str(e).splitlines()[0][:160])
                _failure_shot(bench.page, action)
                continue
            if counted:
                action.samples.append(result["ms"])
                action.logs.append((result["ms"], result["log"]))
                if result["first"] is not None:
                    action.firsts.append(result["first"])
        kind = "round" if counted else "warm-up"
        n = r - warmup + 1 if counted else r + 1
        print(
            f"{kind} {n}: {time.perf_counter() - t:.0f} s, load {os.getloadavg()[0]:.2f}",
            flush=True,
        )


def _failure_shot(page: Any, action: Action) -> None:
    name = re.sub(r"\W+", "-", action.label.lower()).strip("-")
    path = Path(tempfile.gettempdir()) / f"wb-bench-ui-{name}.png"
    try:
        page.screenshot(path=str(path), full_page=True)
        print(f"{action.label}: {action.failures[-1]} (screenshot {path})", flush=True)
    except Exception:  # a diagnostic only: never stop the run for it
        print(f"{action.label}: {action.failures[-1]}", flush=True)


def _fmt(values: list[float], q: float | None = None) -> str:
    if not values:
        return "n/a"
    v = float(np.max(values)) if q is None else float(np.percentile(values, q))
    return f"{v:.0f}"


def print_traces(views: dict[str, list[Action]], slowest: int) -> None:
    """The timelines of each action's ``slowest`` and median samples (``--trace``): kernel
    messages (sent/recv, type, the traits in a state update) and changes in the view, in ms
    after the input event."""
    for action in (a for group in views.values() for a in group):
        logs = sorted(action.logs, key=lambda x: x[0])
        if not logs:
            continue
        picked = [("median", logs[len(logs) // 2])]
        picked += [("slow", log) for log in logs[::-1][:slowest]]
        for kind, (ms, log) in picked:
            print(f"\n{action.label}: {kind} sample, {ms:.0f} ms")
            for t, what in log:
                print(f"  {t:7.1f}  {what[:110]}")


def report(views: dict[str, list[Action]]) -> None:
    header = ["action", "n", "median ms", "p95 ms", "max ms", "target", "met?", "first ms"]
    rows = []
    for action in (a for group in views.values() for a in group):
        s = action.samples
        target = f"p95 <= {action.target_ms:.0f}" if action.target_ms else "-"
        if not s:
            met = "n/a"
        elif action.target_ms is None:
            met = "-"
        else:
            met = "yes" if np.percentile(s, 95) <= action.target_ms else "NO"
        rows.append(
            [
                action.label,
                str(len(s)),
                _fmt(s, 50),
                _fmt(s, 95),
                _fmt(s),
                target,
                met,
                _fmt(action.firsts, 50),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    rule = ["-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join(rule) + "|")
    for r in rows:
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        print("| " + " | ".join(cells) + " |")
    print("first ms: median time to the frame after the first change of the target.")
    for action in (a for group in views.values() for a in group):
        if action.unavailable:
            print(f"n/a {action.label}: {action.unavailable}")
        if action.failures:
            print(f"{action.label}: {len(action.failures)} failed: {action.failures[0]}")
        if action.skipped:
            print(f"{action.label}: skipped {action.skipped} times (one page only)")


def _versions(browser: Any) -> str:
    import ipywidgets
    import jupyterlab

    return (
        f"Chromium {browser.version} (headless, {' '.join(H.CHROMIUM_ARGS)}); "
        f"JupyterLab {jupyterlab.__version__}; ipywidgets {ipywidgets.__version__}"
    )


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + f" (1/5/15 min, {os.cpu_count()} CPUs)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 images, 3 actions")
    parser.add_argument("--actions", type=int, default=None, help="timed actions of each kind")
    parser.add_argument("--workspace", type=Path, help="build here once, or reuse the catalog")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--think", type=float, default=0.3, help="pause before each action, s")
    parser.add_argument("--quiet-ms", type=float, default=500, help="no change this long: done")
    parser.add_argument("--timeout", type=float, default=60, help="per action, s")
    parser.add_argument("--screenshot", type=Path, help="save the page here at the end")
    parser.add_argument(
        "--windowing",
        default=WINDOWING,
        choices=("contentVisibility", "defer", "full", "none"),
        help="JupyterLab's notebook windowing mode (default: JupyterLab's own default, which "
        "`make lab` keeps; the browser tests attach every cell: none)",
    )
    parser.add_argument(
        "--views", default="", help="only these views' actions, e.g. 'issues,tuner' (of: "
        "browser, issues, tuner, labeler, boxer); default all"
    )  # fmt: skip
    parser.add_argument(
        "--trace", type=int, default=0, metavar="N", help="print the timelines of each action's "
        "median and N slowest samples (kernel messages and changes in the view)"
    )  # fmt: skip
    args = parser.parse_args(argv)
    rounds = args.actions or (3 if args.quick else 20)
    if not H.CHROMIUM.exists():
        parser.error(f"{H.CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    with tempfile.TemporaryDirectory(prefix="wb-bench-ui-") as tmp_s:
        tmp = Path(tmp_s)
        ws_path = args.workspace or tmp / "workspace"
        built = build_workspace(ws_path, 200 if args.quick else None)
        scratch = tmp / "scratch"
        scratch.mkdir()
        print("# bench_ui: input event -> visible change, in the browser")
        print(
            f"workspace {ws_path}: {built['images']:,} images ({built['how']} in "
            f"{built['seconds']:.0f} s); {rounds} rounds + {args.warmup} warm-up, views "
            f"interleaved; think {args.think} s, quiet {args.quiet_ms:.0f} ms; notebook "
            f"windowing {args.windowing}"
        )
        print(f"load before: {_load()}", flush=True)
        views = make_actions()
        if args.views:
            wanted = [v.strip() for v in args.views.split(",") if v.strip()]
            unknown = sorted(set(wanted) - set(views))
            if unknown:
                parser.error(f"--views: unknown {unknown}; choose from {list(views)}")
            views = {k: v for k, v in views.items() if k in wanted}
        H.LAB_SETTINGS[TRACKER_SETTINGS] = {"windowingMode": args.windowing}
        with H.start_lab(tmp / "lab") as lab, sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(H.CHROMIUM), headless=True, args=H.CHROMIUM_ARGS
            )
            try:
                print(_versions(browser), flush=True)
                context = browser.new_context(viewport=H.VIEWPORT)
                context.set_default_timeout(30_000)
                page = context.new_page()
                H.write_notebook(lab.root / NOTEBOOK, notebook_cells(ws_path, scratch))
                H.open_notebook(page, lab, NOTEBOOK)
                page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
                H.run_all(page, timeout=900)
                for error in H.error_outputs(page, include_stderr=False):
                    print(f"notebook error (its views are n/a):\n{error[:2000]}")
                bench = Bench(page, args, built["classes"])
                run_rounds(bench, views, rounds, args.warmup)
                if args.screenshot:
                    page.screenshot(path=str(args.screenshot), full_page=True)
            finally:
                browser.close()
    print(f"load after: {_load()}\n")
    report(views)
    if args.trace:
        print_traces(views, args.trace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
