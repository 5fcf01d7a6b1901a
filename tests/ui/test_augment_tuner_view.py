"""The AugmentTuner in a real browser: every control kind driven with mouse and keyboard.

A dedicated notebook (written into the server's root) builds two tuners: one over a small
catalog of generated images with 8 steps and a workspace, and a boxes tuner on the ``photos``
sample's astronaut. Every change of the first tuner's pipeline is written to ``state.json``
(``tuner.on_change``), so the test compares what the page shows with the exact values the
kernel holds.

DOM contract of ``workbench.views.augment.AugmentTuner`` relied on here (classes added with
``add_class``, which ipywidgets puts on the widget's own element):

- ``.wb-augment``                          root of a tuner (the first one has 8 steps)
- ``.wb-steps``                            the step column (scrolls as a whole)
- ``.wb-step``                             one step card; ``.wb-step-header`` its header with
  ``.wb-collapse``, ``.wb-step-title``, ``.wb-enabled`` (check box "on"), ``.wb-up``,
  ``.wb-down``, ``.wb-only``, ``.wb-remove``; ``.wb-step-body`` its parameter rows;
  ``.wb-step-off`` on the card of a disabled step (dimmed)
- ``.wb-param-<name>``                     the control of parameter ``<name>`` (``p``: the apply
  probability); sliders are noUiSlider (``.noUi-handle``), no readout of their own
- ``.wb-number-<name> input``              the number field next to a slider (its readout)
- ``.wb-add-name select``, ``.wb-add``     add a step
- ``.wb-save``, ``.wb-status``, ``.wb-reroll``, ``.wb-seed``, ``.wb-lock``, ``.wb-shuffle``,
  ``.wb-show-code``, ``.wb-code``          the preview's buttons and what they show
- ``img.wb-draw``                          the seeded draws (blob: ``src``, new per change)
- ``.wb-error``                            inline error banner
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError

pytestmark = pytest.mark.ui

NOTEBOOK = "augment_tuner_ui.ipynb"
TUNER = ".wb-augment >> nth=0"
STEPS = [
    "ColorJitter",
    "RandomAffine",
    "RandomErasing",
    "GaussianBlur",
    "RandomPerspective",
    "JPEG",
    "RandAugment",
    "RandomResizedCrop",
]

CELLS = [
    # a small catalog of generated images (two classes, smooth colour and a square)
    "import json\n"
    "from pathlib import Path\n"
    "import numpy as np\n"
    "from PIL import Image\n"
    "from workbench import Catalog, Workspace, samples\n"
    "from workbench.augment import Pipeline\n"
    "from workbench.views.augment import AugmentTuner\n"
    "root = Path('tuner_images')\n"
    "for k, cls in enumerate(['warm', 'cool']):\n"
    "    (root / cls).mkdir(parents=True, exist_ok=True)\n"
    "    for i in range(3):\n"
    "        yy, xx = np.mgrid[0:96, 0:128]\n"
    "        a = np.stack([xx * 2, yy * 2, (xx + yy + 60 * k) % 256], -1).astype(np.uint8)\n"
    "        a[20 + 10 * i:60, 30:70] = (250, 40 + 80 * k, 40)\n"
    "        Image.fromarray(a).save(root / cls / f'{cls}_{i}.png')\n"
    "catalog = Catalog.from_folder(root, progress=False)\n"
    "ws = Workspace(Path('tuner_ws'))",
    # the tuner under test: 8 steps, every change written to state.json
    "pipeline = Pipeline()\n"
    f"for name in {STEPS!r}:\n"
    "    pipeline.add(name, **({'size': (64, 64)} if name == 'RandomResizedCrop' else {}))\n"
    "tuner = AugmentTuner(catalog, pipeline, workspace=ws, rows=2, draws=3, size=128)\n"
    "def dump(p):  # atomic: the test reads it at any moment\n"
    "    Path('state.tmp').write_text(p.to_json())\n"
    "    Path('state.tmp').replace('state.json')\n"
    "tuner.on_change(dump)\n"
    "dump(tuner.pipeline)\n"
    "tuner",
    # a boxes tuner on a real photo, no workspace (Save says why it is off)
    "photos = samples.load('photos', ws, progress=False)\n"
    "box_tuner = AugmentTuner.for_boxes(\n"
    "    photos.image('astronaut.png'),\n"
    "    [[170, 20, 300, 200], [350, 0, 470, 270]],\n"
    "    ['face', 'shuttle'],\n"
    "    Pipeline().add('RandomHorizontalFlip').add('ColorJitter', hue=0.05),\n"
    "    draws=2, size=160,\n"
    ")\n"
    "box_tuner.add_class('wb-augment-boxes')",
]


# Drawn: both tuners' grids hold their draws, and every step card of both is in the page (the
# first tuner's 8 with their sliders). Waiting for the grids alone let a test look for cards the
# page had not drawn, or, after a widget-manager failure, would never draw.
_DRAWN_JS = """() => {
  const roots = document.querySelectorAll('.wb-augment');
  if (roots.length < 2) return false;
  const drawn = [...roots].every(r => {
    const imgs = [...r.querySelectorAll('img.wb-draw')];
    return imgs.length > 0 && imgs.every(i => /^(blob|data):/.test(i.src))
      && r.querySelectorAll('.wb-step').length > 0;
  });
  const first = roots[0].querySelectorAll('.wb-step');
  return drawn && first.length === 8
    && [...first].every(c => c.querySelector('.wb-param-p .noUi-handle'));
}"""


def _open(page: Any, lab: Any, ui: Any, tmp_path: Path) -> None:
    ui.write_notebook(lab.root / NOTEBOOK, CELLS)
    (lab.root / "state.json").unlink(missing_ok=True)
    ui.open_notebook(page, lab, NOTEBOOK)
    ui.run_all(page, timeout=240)
    errors = ui.error_outputs(page, include_stderr=False)
    assert not errors, "\n\n".join(errors)
    try:
        page.wait_for_function(_DRAWN_JS, timeout=60_000)
    except PlaywrightError:
        counts = page.evaluate(
            """() => [...document.querySelectorAll('.wb-augment')].map(r => ({
                 steps: r.querySelectorAll('.wb-step').length,
                 column: r.querySelectorAll('.wb-steps').length,
                 draws: r.querySelectorAll('img.wb-draw').length}))"""
        )
        print(f"tuners drawn: {counts}")
        _report(page, ui, tmp_path, "tuner-open.png")  # console errors name the widget at fault
        raise


# --------------------------------------------------------------------------- helpers


def _state(lab: Any) -> list[dict[str, Any]]:
    """The first tuner's pipeline steps as the kernel holds them (exact JSON floats)."""
    return json.loads((lab.root / "state.json").read_text())["steps"]


def _wait_state(page: Any, lab: Any, pred: Any, what: str, timeout: float = 30.0) -> list:
    """Poll ``state.json`` until ``pred(steps)`` holds."""
    steps: list = []
    for _ in range(int(timeout * 5)):
        steps = _state(lab)
        if pred(steps):
            return steps
        page.wait_for_timeout(200)
    raise AssertionError(f"state never showed {what}: {json.dumps(steps)[:2000]}")


def _built_here() -> list[dict[str, Any]]:
    """The notebook's pipeline built in this process (registry defaults, exact)."""
    from workbench.augment import Pipeline

    pipe = Pipeline()
    for name in STEPS:
        pipe.add(name, **({"size": (64, 64)} if name == "RandomResizedCrop" else {}))
    return json.loads(pipe.to_json())["steps"]


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.split(r"[,\s]+", text.strip()) if x]


def _elements(value: Any) -> list[float]:
    return [float(v) for v in (value if isinstance(value, list) else [value])]


def _value(step: dict[str, Any], name: str) -> Any:
    return step["p"] if name == "p" else step["params"][name]


def _card(page: Any, i: int, root: str = TUNER) -> Any:
    return page.locator(root).locator(".wb-step").nth(i)


def _field(page: Any, i: int, name: str) -> Any:
    return _card(page, i).locator(f".wb-number-{name} input")


def _draw_srcs(page: Any, root_index: int = 0) -> list[str]:
    return page.evaluate(
        """(k) => [...document.querySelectorAll('.wb-augment')[k].querySelectorAll(
             'img.wb-draw')].map(i => i.src)""",
        root_index,
    )


def _wait_draws_change(page: Any, before: list[str]) -> None:
    page.wait_for_function(
        """(before) => {
          const now = [...document.querySelector('.wb-augment').querySelectorAll('img.wb-draw')]
            .map(i => i.src);
          return now.length === before.length && now.some((s, i) => s !== before[i]);
        }""",
        arg=before,
        timeout=30_000,
    )


def _type(page: Any, field: Any, text: str) -> None:
    """Type into ``field`` as a user does: pointer over the view, click, select all, type,
    Enter. (``ui.type_into`` types after the current text; a number field needs replacing.)"""
    page.locator(".wb-augment").first.hover()
    field.scroll_into_view_if_needed()
    field.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(text, delay=10)
    page.keyboard.press("Enter")


def _readout_agrees(page: Any, lab: Any, i: int, name: str, changed: Any) -> list:
    """Wait until step ``i``'s ``name`` satisfies ``changed`` and its number field shows
    exactly the value the kernel holds (the same value twice, 0.5 s apart)."""
    field = _field(page, i, name)
    last = None
    for _ in range(150):
        steps = _state(lab)
        value = _value(steps[i], name)
        shown = _numbers(field.input_value())
        if changed(value) and shown == _elements(value):
            if last == (shown, value):
                return steps
            last = (shown, value)
        page.wait_for_timeout(250)
    raise AssertionError(
        f"step {i} {name}: field {field.input_value()!r}, kernel {_value(_state(lab)[i], name)!r}"
    )


def _report(page: Any, ui: Any, tmp_path: Path, name: str) -> None:
    print("error/stderr outputs:\n" + "\n\n".join(ui.error_outputs(page, include_stderr=True)))
    print(f"console errors: {page.wb_console_errors}")
    ui.print_widget_trace(page)
    print(f"screenshot: {ui.screenshot(page, tmp_path, name)}")


# Every step header control, as (selector, what it is).
_HEADER = (".wb-collapse", ".wb-step-title", ".wb-enabled", ".wb-up", ".wb-down", ".wb-only",
           ".wb-remove")  # fmt: skip

_HEADER_VISIBLE_JS = """([card, selectors]) => {
  const column = document.querySelector('.wb-augment .wb-steps').getBoundingClientRect();
  const el = document.querySelectorAll('.wb-augment')[0].querySelectorAll('.wb-step')[card];
  const bad = [];
  if (el.scrollHeight > el.clientHeight + 1) bad.push(`card scrolls inside (${el.scrollHeight}`
    + ` > ${el.clientHeight})`);
  for (const sel of selectors) {
    const part = el.querySelector('.wb-step-header ' + sel);
    const r = part.getBoundingClientRect();
    if (r.width < 8 || r.height < 8) { bad.push(`${sel} has no size`); continue; }
    if (r.top < column.top - 1 || r.bottom > column.bottom + 1 || r.left < column.left - 1
        || r.right > column.right + 1) bad.push(`${sel} outside the column`);
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (!hit || !(part === hit || part.contains(hit))) bad.push(`${sel} covered`);
  }
  return bad;
}"""


# --------------------------------------------------------------------------- tests


def test_eight_step_headers_are_visible_and_nothing_is_cut(
    page: Any, jupyter_lab: Any, ui: Any, tmp_path: Path
) -> None:
    """With 8 steps every card keeps its height; the column scrolls; every header control is
    visible, uncovered and inside the column once scrolled to; no control text is cut."""
    from playwright.sync_api import expect

    _open(page, jupyter_lab, ui, tmp_path)
    try:
        tuner = page.locator(TUNER)
        expect(tuner.locator(".wb-step")).to_have_count(8)
        column = tuner.locator(".wb-steps")
        assert column.evaluate("c => c.scrollHeight > c.clientHeight + 100")  # it scrolls
        for i in range(8):
            header = _card(page, i).locator(".wb-step-header")
            header.scroll_into_view_if_needed()
            assert page.evaluate(_HEADER_VISIBLE_JS, [i, list(_HEADER)]) == [], f"card {i}"
            p_row = _card(page, i).locator(".wb-param-p")
            p_row.scroll_into_view_if_needed()
            expect(p_row).to_be_visible()
            expect(_field(page, i, "p")).to_be_visible()
        _card(page, 6).locator(".wb-step-header").scroll_into_view_if_needed()
        ui.screenshot(page, tmp_path, "tuner-steps.png")  # the policy's long names, for a look
        # sliders wide enough to aim (they were 144 px: 20 px moved saturation by 0.7)
        widths = tuner.locator(".wb-steps .noUi-target").evaluate_all(
            "els => els.map(e => Math.round(e.getBoundingClientRect().width))"
        )
        print(f"slider widths: min {min(widths)} px, max {max(widths)} px, n {len(widths)}")
        assert min(widths) >= 200, widths
        # layout_problems counts controls scrolled out of the step column as overlapping the
        # controls above it: check with the column scrolled to the top (nothing below it).
        column.evaluate("c => { c.scrollTop = 0; }")
        for root in (".wb-augment", ".wb-augment-boxes"):
            page.locator(root).first.scroll_into_view_if_needed()
            problems = ui.layout_problems(page, root)
            assert problems == {"clipped": [], "overlapping": []}, (root, problems)
        # the boxes tuner offers no image-only policy and says why Save is off
        boxes = page.locator(".wb-augment-boxes")
        options = boxes.locator(".wb-add-name select option").all_inner_texts()
        assert "RandomRotation" in options
        assert not {"AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix"} & set(options)
        expect(boxes.locator(".wb-save")).to_be_disabled()
        expect(boxes.locator(".wb-status")).to_contain_text("workspace")
    except (AssertionError, PlaywrightError):
        _report(page, ui, tmp_path, "tuner-layout.png")
        raise
    finally:
        ui.screenshot(page, tmp_path, "tuner-layout.png")


# (card, parameter, slider kind, handle, pixels to drag)
DRAGS = [
    (4, "distortion_scale", "float", ".noUi-handle", 40),
    (6, "num_ops", "int", ".noUi-handle", 60),
    (0, "saturation", "float range", ".noUi-handle-upper", 25),
    (5, "quality", "int range", ".noUi-handle-lower", -40),
    (2, "p", "probability", ".noUi-handle", -50),
]


def test_sliders_and_number_fields_set_exactly_what_they_show(
    page: Any, jupyter_lab: Any, ui: Any, tmp_path: Path
) -> None:
    """Drag every slider kind with the mouse and type into every field: the kernel holds
    exactly what the field shows, untouched parameters keep their values, previews change."""
    from playwright.sync_api import expect

    _open(page, jupyter_lab, ui, tmp_path)
    lab = jupyter_lab
    expected = _built_here()
    page.wait_for_timeout(1000)  # let every slider's start-up echo reach the kernel
    assert _state(lab) == expected  # rendering the sliders changed nothing
    try:
        tuner = page.locator(TUNER)
        for i, name, kind, handle_sel, dx in DRAGS:
            slider = _card(page, i).locator(f".wb-param-{name}")
            slider.scroll_into_view_if_needed()
            handle = slider.locator(handle_sel).first
            box = handle.bounding_box()
            assert box is not None, (name, kind)
            before_draws = _draw_srcs(page)
            old = _value(_state(lab)[i], name)
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + dx, y, steps=8)
            page.mouse.up()
            steps = _readout_agrees(page, lab, i, name, lambda v, old=old: v != old)
            # one parameter moved: every other parameter of every step is exactly as it was
            if name == "p":
                expected[i]["p"] = steps[i]["p"]
            else:
                expected[i]["params"][name] = steps[i]["params"][name]
            assert steps == expected, (name, kind)
            _wait_draws_change(page, before_draws)  # the preview shows the change

        # typing: a float, a range, an int, an int range, a probability and a size
        typed = [
            (1, "translate_x", "0.237", 0.237),
            (0, "hue", "-0.1, 0.1", [-0.1, 0.1]),
            (3, "kernel_size", "7", 7),
            (5, "quality", "60, 90", [60, 90]),
            (2, "p", "0.3", 0.3),
        ]
        for i, name, text, value in typed:
            _type(page, _field(page, i, name), text)
            steps = _readout_agrees(page, lab, i, name, lambda v, value=value: v == value)
            if name == "p":
                expected[i]["p"] = value
            else:
                expected[i]["params"][name] = value
            assert steps == expected, name
        size = _card(page, 7).locator(".wb-param-size input")
        _type(page, size, "48, 56")
        _wait_state(page, lab, lambda s: s[7]["params"]["size"] == [48, 56], "size 48, 56")
        # a bad text is refused inline and the view keeps working
        _type(page, _field(page, 1, "translate_y"), "lots")
        error = tuner.locator(".wb-error").first
        expect(error).to_contain_text("translate_y", timeout=15_000)
        _type(page, _field(page, 1, "translate_y"), "0.2")
        _wait_state(page, lab, lambda s: s[1]["params"]["translate_y"] == 0.2, "translate_y")
        expect(error).to_be_hidden(timeout=15_000)
    except (AssertionError, PlaywrightError):
        _report(page, ui, tmp_path, "tuner-values.png")
        raise


def test_every_button_does_what_it_says(
    page: Any, jupyter_lab: Any, ui: Any, tmp_path: Path
) -> None:
    """on, ↑, ↓, only, ✕, collapse, add, save, reroll, lock seed, show code, shuffle."""
    from playwright.sync_api import expect

    _open(page, jupyter_lab, ui, tmp_path)
    lab = jupyter_lab
    tuner = page.locator(TUNER)

    def names() -> list[str]:
        return [s["name"] for s in _state(lab)]

    try:
        order = list(STEPS)
        # on: off and on again
        _card(page, 1).locator(".wb-enabled input").click()
        _wait_state(page, lab, lambda s: not s[1]["enabled"], "step 1 disabled")
        expect(_card(page, 1)).to_have_css("opacity", "0.55")  # a step that is off is dimmed
        _card(page, 1).locator(".wb-enabled input").click()
        _wait_state(page, lab, lambda s: s[1]["enabled"], "step 1 enabled")
        expect(_card(page, 1)).to_have_css("opacity", "1")
        # ↑ and ↓
        _card(page, 2).locator(".wb-up").click()
        order[1], order[2] = order[2], order[1]
        _wait_state(page, lab, lambda s: [x["name"] for x in s] == order, "moved up")
        # the cards are rebuilt: wait for the new ones before clicking again
        expect(_card(page, 1).locator(".wb-step-title")).to_contain_text(order[1])
        _card(page, 0).locator(".wb-down").click()
        order[0], order[1] = order[1], order[0]
        _wait_state(page, lab, lambda s: [x["name"] for x in s] == order, "moved down")
        expect(_card(page, 1).locator(".wb-step-title")).to_contain_text(order[1])
        expect(_card(page, 0).locator(".wb-step-title")).to_contain_text(order[0])
        # only: the draws show one step; off again
        before = _draw_srcs(page)
        only = _card(page, 3).locator(".wb-only")
        only.click()
        expect(only).to_have_class(re.compile("mod-active"))
        _wait_draws_change(page, before)
        only.click()
        expect(only).not_to_have_class(re.compile("mod-active"))
        # ✕ removes the last step
        last = _card(page, 7)
        last.scroll_into_view_if_needed()
        last.locator(".wb-remove").click()
        _wait_state(page, lab, lambda s: len(s) == 7, "7 steps")
        expect(tuner.locator(".wb-step")).to_have_count(7)
        # collapse and expand
        card = _card(page, 2)
        card.scroll_into_view_if_needed()
        card.locator(".wb-collapse").click()
        expect(card.locator(".wb-step-body")).to_be_hidden()
        assert card.evaluate("c => c.getBoundingClientRect().height") < 60
        card.locator(".wb-collapse").click()
        expect(card.locator(".wb-step-body")).to_be_visible()
        # add
        tuner.locator(".wb-add-name select").select_option("RandomInvert")
        tuner.locator(".wb-add").click()
        _wait_state(page, lab, lambda s: s[-1]["name"] == "RandomInvert", "RandomInvert added")
        expect(tuner.locator(".wb-step")).to_have_count(8)
        # save
        tuner.locator(".wb-save").click()
        expect(tuner.locator(".wb-status")).to_contain_text("saved", timeout=15_000)
        saved = json.loads((lab.root / "tuner_ws" / "pipeline.json").read_text())
        assert saved["steps"] == _state(lab)
        # reroll: a new seed and new draws
        seed = tuner.locator(".wb-seed").inner_text()
        before = _draw_srcs(page)
        tuner.locator(".wb-reroll").click()
        expect(tuner.locator(".wb-seed")).not_to_have_text(seed, timeout=15_000)
        _wait_draws_change(page, before)
        # lock seed: off, then a change draws anew (the seed changes)
        lock = tuner.locator(".wb-lock")
        expect(lock).to_have_class(re.compile("mod-active"))
        lock.click()
        expect(lock).not_to_have_class(re.compile("mod-active"))
        seed = tuner.locator(".wb-seed").inner_text()
        _card(page, 0).locator(".wb-enabled input").click()
        expect(tuner.locator(".wb-seed")).not_to_have_text(seed, timeout=15_000)
        # an edit after the save says so; undoing it says saved again
        status = tuner.locator(".wb-status")
        expect(status).to_contain_text("changed since saved", timeout=15_000)
        expect(status).to_contain_text("not saved")
        _card(page, 0).locator(".wb-enabled input").click()
        expect(status).not_to_contain_text("changed", timeout=15_000)
        expect(status).to_contain_text("saved")
        # show code
        tuner.locator(".wb-show-code").click()
        expect(tuner.locator(".wb-code")).to_be_visible()
        expect(tuner.locator(".wb-code")).to_contain_text("v2.Compose(")
        # shuffle: other originals
        originals = page.evaluate(
            """() => [...document.querySelector('.wb-augment')
                 .querySelectorAll('img.wb-original')].map(i => i.src)"""
        )
        tuner.locator(".wb-shuffle").click()
        page.wait_for_function(
            """(before) => {
              const now = [...document.querySelector('.wb-augment')
                .querySelectorAll('img.wb-original')].map(i => i.src);
              return now.some((s, i) => s !== before[i]);
            }""",
            arg=originals,
            timeout=30_000,
        )
        expect(tuner.locator(".wb-error").first).to_be_hidden()
        assert not ui.error_outputs(page, include_stderr=False)
    except (AssertionError, PlaywrightError):
        _report(page, ui, tmp_path, "tuner-buttons.png")
        raise
