"""TrainingMonitor over the real Trainer (a tiny network on tiny images): its curves, bars and text
follow the trainer's events; Stop ends the run at a batch boundary with a checkpoint on disk and
the hint it shows resumes the run; an error in training shows in the banner, never a traceback;
the training figure draws exactly the numbers it is given."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workbench import Catalog, Workspace
from workbench.errors import ParameterError, WorkbenchError
from workbench.labels import LabelStore
from workbench.plots import plot_training, smooth_losses, training_png
from workbench.train import TrainConfig, Trainer, TrainingData
from workbench.views import TrainingMonitor

CLASSES = ["red", "green", "blue"]
PER_CLASS = 10


def tiny_config(**kw) -> TrainConfig:
    """A network small enough to train in a blink on 16-px images."""
    base = dict(model="mobilenet_v3_small", pretrained=False, image_size=16, batch_size=4,
                epochs=3, frozen_epochs=1, patience=0, workers=0, seed=0, augment=False,
                device="cpu")  # fmt: skip
    return TrainConfig(**{**base, **kw})


@pytest.fixture
def workspace(tmp_path):
    """A workspace of 30 colour images in 3 classes, each labeled once in its label store."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images" / "colours"
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            a = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8)
            a[..., k] += np.uint8(100 + 10 * i)
            Image.fromarray(a).save(root / name / f"{name}_{i}.png")
    ws = Workspace(tmp_path / "ws")
    catalog = Catalog.from_folder(root, progress=False)
    ws.save_catalog(catalog)
    store = LabelStore(ws, catalog=catalog)
    store.add_classes(CLASSES)
    for sid in catalog.ids:
        store.label(sid, sid.split("/")[0], annotator="ana")
    return ws


def make_trainer(ws: Workspace, **kw) -> Trainer:
    config = tiny_config(**kw)
    data = TrainingData.from_workspace(ws, LabelStore(ws), config=config, pipeline=None,
                                       normalizer=None)  # fmt: skip
    return Trainer(data, config, workspace=ws)


def recorder(trainer: Trainer) -> list[dict]:
    """Every event the trainer sends, in order (the trainer's own callback API)."""
    seen: list[dict] = []
    trainer.on_event(lambda e: seen.append(dict(e)))
    return seen


def batch_series(events: list[dict]) -> pd.Series:
    """Per-batch losses at their position in epochs, as the figure takes them."""
    bs = [e for e in events if e["kind"] == "batch"]
    x = [e["epoch"] + e["batch"] / e["batches"] for e in bs]
    return pd.Series([e["loss"] for e in bs], index=x, dtype=float)


def test_curves_bars_and_summary_follow_the_real_events(workspace):
    trainer = make_trainer(workspace)
    events = recorder(trainer)
    monitor = TrainingMonitor(trainer)
    assert "wb-train" in monitor._dom_classes and monitor.trainer is trainer
    assert "wb-train-stop" in monitor.stop_button._dom_classes and monitor.stop_button.disabled
    assert monitor.start() is monitor
    result = monitor.wait()

    assert result.status == "finished" and not monitor.running
    epochs = [e for e in events if e["kind"] == "epoch"]
    start = events[0]
    assert start["kind"] == "start" and len(epochs) == start["epochs"] == 3
    # the curves' points are the epoch events, and the core's history says the same
    assert [r["val_acc"] for r in monitor.epochs] == [e["val_acc"] for e in epochs]
    assert monitor.epochs[-1]["train_loss"] == pytest.approx(trainer.history["train_loss"].iloc[-1])
    # the figure shown is the one drawn from every event: nothing dropped, the last epoch in it
    assert monitor.curves.value == training_png(
        [{k: v for k, v in e.items() if k != "kind"} for e in epochs],
        batch_series(events), total_epochs=3,
    )  # fmt: skip
    assert (monitor.epoch_bar.value, monitor.epoch_bar.max) == (3, 3)
    assert (monitor.batch_bar.value, monitor.batch_bar.max) == (start["batches"],) * 2
    assert monitor.epoch_bar.bar_style == "success"
    assert f"epoch 3/3 · batch {start['batches']}/{start['batches']}" in monitor.progress.value
    assert "/epoch" in monitor.progress.value
    run_dir = workspace.file("runs") / trainer.run_id
    best = f"best val accuracy {result.best_val_acc:.3f} (epoch {result.best_epoch + 1},"
    assert "finished 3 epoch(s)" in monitor.status.value and best in monitor.status.value
    assert str(run_dir) in monitor.status.value and run_dir.is_dir()
    assert monitor.stop_button.disabled and monitor.error.message == ""
    # started again, the complete run ends at once (no events): the view still says how it ended
    summary = monitor.status.value
    assert monitor.start().wait().status == "finished" and monitor.status.value == summary
    monitor.close()


def test_stop_ends_the_run_at_a_batch_boundary_and_its_hint_resumes_it(workspace):
    trainer = make_trainer(workspace, epochs=50)  # ends only through Stop
    events = recorder(trainer)
    monitor = TrainingMonitor(trainer)
    second_start: list[Exception] = []

    def user(event: dict) -> None:
        """What a person does mid-run (called on the training thread, so the run is going)."""
        if event["kind"] != "batch" or event["epoch"] != 1:  # the second epoch
            return
        if event["batch"] == 1:
            with pytest.raises(ParameterError) as err:
                monitor.start()
            second_start.append(err.value)
        elif event["batch"] == 2:
            monitor.stop_button.click()
            assert "stopping after this batch" in monitor.status.value

    trainer.on_event(user)
    monitor.start()
    result = monitor.wait()

    assert "a run is in progress" in str(second_start[0])
    batches = [e for e in events if e["kind"] == "batch"]
    end, end_batches = events[-1], events[0]["batches"]
    assert result.status == end["status"] == "stopped"
    # no batch ran after the one the click came in; the run ends where that batch ended
    assert (batches[-1]["epoch"], batches[-1]["batch"]) == (end["epoch"], end["batch"]) == (1, 2)
    checkpoint = workspace.file("runs") / trainer.run_id / "checkpoint.pt"
    assert checkpoint.is_file()
    text = monitor.status.value
    assert "stopped at epoch 2, batch 2 — checkpoint saved; resume with" in text
    assert monitor.epoch_bar.bar_style == "warning" and monitor.stop_button.disabled
    assert monitor.stop_button.description == "Stopped"
    assert (monitor.epoch_bar.value, monitor.batch_bar.value) == (1, 2)

    # the hint is code that resumes this run where it stopped
    hint = re.search(r"<code>(.*?)</code>", text).group(1)
    resumed = eval(hint.replace("&#x27;", "'"), {"Trainer": Trainer, "ws": workspace})
    assert resumed.run_id == trainer.run_id
    again = recorder(resumed)
    resumed.on_event(lambda e: resumed.stop() if e["kind"] == "batch" else None)
    view = TrainingMonitor(resumed)
    view.start()
    assert view.wait().status == "stopped"
    assert again[0]["resumed_from"] == (1, 2)
    assert "stopped at epoch 2, batch 3" in view.status.value
    # the curves go on where they stopped: the first epoch and every batch loss before
    assert [r["val_acc"] for r in view.epochs] == [r["val_acc"] for r in monitor.epochs]
    assert view._batch_x[:-1] == monitor._batch_x and view._batch_x[-1] == 1 + 3 / end_batches
    assert view._batch_loss[:-1] == pytest.approx(monitor._batch_loss)
    monitor.close()
    view.close()


def test_an_error_in_training_shows_inline_and_raises_to_wait(workspace):
    trainer = make_trainer(workspace)
    bad = next(p for p in (workspace.path / ".." / "images" / "colours" / "red").glob("*.png"))
    bad.write_bytes(b"this is not a png any more")  # the file changed after the data was built
    monitor = TrainingMonitor(trainer)
    monitor.start()
    with pytest.raises(WorkbenchError) as err:
        monitor.wait()
    shown = monitor.error.message
    assert shown and str(err.value) in shown and "Traceback" not in shown
    assert "red_" in shown  # says which file
    assert "failed" in monitor.status.value and monitor.stop_button.disabled
    assert monitor.epoch_bar.bar_style == "danger"
    # the view keeps working: a fixed file, a new run
    monitor.close()


def test_wait_before_start_and_bad_smoothing_say_what_to_do(workspace):
    trainer = make_trainer(workspace)
    with pytest.raises(ParameterError, match="smoothing"):
        TrainingMonitor(trainer, smoothing=1.0)
    monitor = TrainingMonitor(trainer)
    with pytest.raises(ParameterError, match="start"):
        monitor.wait()
    monitor.close()


# ------------------------------------------------------------------------------- the figure
def test_training_figure_draws_the_numbers_it_is_given():
    epochs = pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [2.0, 1.0, 0.5],
                           "val_loss": [2.2, 1.3, 0.9], "train_acc": [0.3, 0.6, 0.8],
                           "val_acc": [0.25, 0.5, np.nan]})  # fmt: skip
    x = np.arange(1, 13) / 4
    batches = pd.Series(np.linspace(2.5, 0.4, 12), index=x)
    fig = plot_training(epochs, batches, smoothing=0.8, total_epochs=6)
    loss_ax, acc_ax = fig.axes
    lines = {ln.get_label(): ln for ln in loss_ax.lines}
    np.testing.assert_allclose(lines["batch"].get_ydata(), batches.to_numpy())
    np.testing.assert_allclose(lines["batch (smoothed)"].get_xdata(), x)
    np.testing.assert_allclose(lines["train"].get_ydata(), [2.0, 1.0, 0.5])
    np.testing.assert_allclose(lines["val"].get_xdata(), [1, 2, 3])  # at each epoch's end
    acc = {ln.get_label(): ln for ln in acc_ax.lines}
    np.testing.assert_allclose(acc["val"].get_ydata(), [0.25, 0.5, np.nan])
    assert loss_ax.get_xlim() == (0, 6)
    long = plot_training(epochs, batches, total_epochs=100_000)  # the axis follows the data
    assert long.axes[0].get_xlim()[1] < 10
    assert training_png(epochs, batches)[:8] == b"\x89PNG\r\n\x1a\n"
    empty = plot_training([], None)  # before the first epoch: empty axes, no error
    assert [len(a.lines) for a in empty.axes] == [0, 0]


def test_smoothed_loss_is_the_debiased_moving_average():
    losses = np.array([3.0, 1.0, 2.0, 0.5, 0.25])
    beta, avg, out = 0.9, 0.0, []
    for i, v in enumerate(losses, start=1):  # fastai's SmoothenValue, written out
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    np.testing.assert_allclose(smooth_losses(losses, beta), out)
    np.testing.assert_allclose(smooth_losses(losses, 0.0), losses)
