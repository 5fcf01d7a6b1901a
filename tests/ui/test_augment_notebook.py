"""Notebook 03 (augment) in a real browser: dragging a slider of the AugmentTuner re-renders.

Notebook 03 reads the catalog notebook 01 saves, and the UI server starts with an empty
workspace, so 01 is run first unless an earlier test of this session already did.

DOM contract of ``workbench.views.augment.AugmentTuner`` relied on here (custom classes added
with ``add_class``, which ipywidgets puts on the widget's own element):

- ``.wb-augment``                        root box of a tuner (the first one is the dataset's)
- ``img.wb-draw``                        the seeded draws of the preview grid (blob:/data: ``src``)
- ``.wb-param-distortion_scale``         the RandomPerspective slider (noUiSlider ``.noUi-handle``)
- ``.wb-number-distortion_scale input``  its number field, the slider's readout
- ``.wb-timing``                         "last render N ms · ..." line
- ``.wb-error``                          inline error banner (hidden when empty)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ui

ACQUIRE = "01_acquire.ipynb"
NOTEBOOK = "03_augment.ipynb"
SLIDER = ".wb-param-distortion_scale"

# ``src`` of every draw of the first tuner, in DOM order.
_DRAW_SRCS_JS = """() => {
  const root = document.querySelector('.wb-augment');
  return root ? [...root.querySelectorAll('img.wb-draw')].map(i => i.src) : [];
}"""


def _run(page: Any, lab: Any, ui: Any, name: str, timeout: float) -> None:
    ui.open_notebook(page, lab, name)
    ui.run_all(page, timeout=timeout)
    errors = ui.error_outputs(page, include_stderr=False)
    assert not errors, f"{name} raised:\n\n" + "\n\n".join(errors)


def test_augment_tuner_slider_drag_updates_the_preview(
    page: Any, jupyter_lab: Any, ui: Any, tmp_path: Path
) -> None:
    """Run 01 (if needed) and 03, drag a parameter slider, and see the draws change."""
    from playwright.sync_api import expect

    if not (jupyter_lab.root / NOTEBOOK).exists():
        pytest.fail(f"notebooks/{NOTEBOOK} is missing")
    try:
        if not (jupyter_lab.workspace / "catalog.parquet").exists():
            _run(page, jupyter_lab, ui, ACQUIRE, timeout=300)
            jupyter_lab.shutdown_kernels()  # one kernel at a time on two cores
        _run(page, jupyter_lab, ui, NOTEBOOK, timeout=180)

        tuner = page.locator(".wb-augment").first
        expect(tuner).to_be_visible(timeout=30_000)
        page.wait_for_function(
            """() => {
              const root = document.querySelector('.wb-augment');
              const imgs = root ? [...root.querySelectorAll('img.wb-draw')] : [];
              return imgs.length >= 4 &&
                imgs.every(i => /^(blob|data):/.test(i.getAttribute('src') || ''));
            }""",
            timeout=30_000,
        )
        expect(tuner.locator(".wb-timing").first).to_contain_text("ms")
        before = page.evaluate(_DRAW_SRCS_JS)

        slider = tuner.locator(SLIDER).first
        slider.scroll_into_view_if_needed()
        handle = slider.locator(".noUi-handle").first
        expect(handle).to_be_visible()
        box = handle.bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 90, y, steps=12)  # continuous updates, coalesced by the tuner
        page.mouse.up()

        # The draws that apply the perspective step get new bytes, hence new blob URLs.
        page.wait_for_function(
            f"""(before) => {{
              const now = ({_DRAW_SRCS_JS})();
              return now.length === before.length && now.some((s, i) => s !== before[i]);
            }}""",
            arg=before,
            timeout=30_000,
        )
        # the number field next to the slider is its readout (the notebook sets 0.2)
        readout = tuner.locator(".wb-number-distortion_scale input").first
        expect(readout).not_to_have_value("0.2", timeout=15_000)
        expect(tuner.locator(".wb-error").first).to_be_hidden()
    except AssertionError:
        stderr = ui.error_outputs(page, include_stderr=True)
        print("error/stderr outputs:\n" + "\n\n".join(stderr))
        print(f"console errors: {page.wb_console_errors}")
        raise
    finally:
        ui.screenshot(page, tmp_path, "augment.png")
