"""TrainingMonitor in a real browser: the run goes on in the background while the kernel is idle,
the curves and bars move, and a click on Stop ends the run at a batch boundary with its
checkpoint on disk and the stopped status in the view; nothing clipped or overlapping.

DOM contract relied on (``add_class`` names): ``.wb-train`` root; ``.wb-train-stop`` (Button),
``.wb-train-progress`` (the progress line), ``.wb-train-status``, ``.wb-train-curves`` (Image),
``.wb-train-epochs`` and ``.wb-train-batches`` (progress bars).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ui

VIEW = ".wb-train"


def _make_workspace(path: Path, ui: Any) -> None:
    """The harness's colour workspace, each image labeled with its class by one annotator."""
    from workbench.labels import LabelStore

    ws, catalog = ui.colour_workspace(path)
    store = LabelStore(ws, catalog=catalog)
    store.add_classes(sorted({sid.split("/")[0] for sid in catalog.ids}))
    for sid in catalog.ids:
        store.label(sid, sid.split("/")[0], annotator="ana")


def _wait_text(page: Any, selector: str, text: str | re.Pattern, timeout: float = 60) -> None:
    from playwright.sync_api import expect

    expect(page.locator(selector).first).to_contain_text(text, timeout=timeout * 1000)


def test_stop_clicked_in_the_browser_ends_the_run_at_a_batch_boundary(page, jupyter_lab, ui,
                                                                      tmp_path):  # fmt: skip
    workspace = jupyter_lab.workspace / "train-view"
    _make_workspace(workspace, ui)
    cells = [
        "from workbench import Workspace\n"
        "from workbench.labels import LabelStore\n"
        "from workbench.train import TrainConfig, Trainer, TrainingData\n"
        "from workbench.views import TrainingMonitor\n"
        f"ws = Workspace({str(workspace)!r}, create=False)\n"
        # a schedule far longer than the test: the run can only end through Stop
        "config = TrainConfig(model='mobilenet_v3_small', pretrained=False, image_size=16,\n"
        "                     batch_size=2, epochs=100_000, frozen_epochs=1, patience=0,\n"
        "                     workers=0, augment=False, device='cpu')\n"
        "data = TrainingData.from_workspace(ws, LabelStore(ws), config=config, pipeline=None,\n"
        "                                   normalizer=None)\n"
        "monitor = TrainingMonitor(Trainer(data, config, workspace=ws))\n"
        "monitor.start()",
    ]
    ui.write_notebook(jupyter_lab.root / "train_view.ipynb", cells)
    ui.open_notebook(page, jupyter_lab, "train_view.ipynb")
    ui.run_all(page, timeout=120)  # returns with the kernel idle: the run goes on in a thread
    errors = ui.error_outputs(page, include_stderr=False)
    assert not errors, "notebook raised:\n\n" + "\n\n".join(errors)
    view = page.locator(VIEW).first
    progress, status = f"{VIEW} >> .wb-train-progress", f"{VIEW} >> .wb-train-status"
    try:
        _wait_text(page, progress, re.compile(r"epoch [2-9]\d*/100000 · batch \d+/\d+"))
        from playwright.sync_api import expect

        expect(view.locator("img.wb-train-curves")).to_have_attribute("src", re.compile(r"\S"))
        found = ui.layout_problems(page, VIEW)
        assert found == {"clipped": [], "overlapping": []}, found
        ui.screenshot(page, tmp_path, "train-running.png")

        view.locator(".wb-train-stop").click()
        _wait_text(page, status, "stopped at ", timeout=60)
        text = view.locator(".wb-train-status").inner_text()
        # inside an epoch "epoch E, batch B"; a click that lands in validation or between epochs
        # stops at the boundary: "the end of epoch N" (N epochs done, no batch of the next)
        saved = " — checkpoint saved; resume with"
        inside = re.search(r"stopped at epoch (\d+), batch (\d+)" + saved, text)
        between = re.search(r"stopped at the end of epoch (\d+)" + saved, text)
        assert inside or between, text
        done, batch = (
            (int(inside.group(1)) - 1, int(inside.group(2)))
            if inside
            else (int(between.group(1)), 0)
        )
        assert (batch > 0) if inside else done >= 1, text
        stop = view.locator(".wb-train-stop").first
        assert stop.is_disabled() and stop.inner_text().strip() == "Stopped"

        # on disk: one run, recorded as stopped where the view says (the record and the
        # checkpoint count epochs done and batches done in the next epoch)
        from workbench import Workspace
        from workbench.train import Run, list_runs

        ws = Workspace(workspace, create=False)
        runs = list_runs(ws)
        assert len(runs) == 1 and runs["status"].iloc[0] == "stopped"
        run = Run.load(ws, runs["run"].iloc[0])
        recorded = run.status
        assert (recorded["epoch"], recorded["batch"]) == (done, batch), (recorded, text)
        checkpoint = run.load_checkpoint()
        assert (checkpoint["state"]["epoch"], checkpoint["state"]["batch"]) == (done, batch)
        assert run.id in text  # the resume hint names this run

        found = ui.layout_problems(page, VIEW)
        assert found == {"clipped": [], "overlapping": []}, found
    except AssertionError:
        ui.report_failure(page, tmp_path, "train-view-failure.png")
        raise
    finally:
        ui.screenshot(page, tmp_path, "train-view.png")
