"""The fine-tuning loop: it learns, stops at a batch boundary, resumes to the same weights (also
after SIGKILL), records its run, and refuses bad settings with an error that says what to do."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_train_data import folder_labels, tiny_workspace

from workbench.augment import Pipeline
from workbench.errors import ParameterError, WeightsError, WorkbenchError
from workbench.train import Run, TrainConfig, Trainer, TrainError, TrainingData, list_runs

REPO = Path(__file__).resolve().parents[2]
# A small architecture with dropout (so the saved RNG state matters) and a final Linear layer.
SMALL = dict(model="mobilenet_v3_small", pretrained=False, image_size=32, batch_size=8,
             epochs=3, frozen_epochs=1, patience=0)  # fmt: skip


def _pipeline() -> Pipeline:
    return Pipeline().add("RandomHorizontalFlip").add("RandomRotation", degrees=20.0)


def _weights_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    ws, cat = tiny_workspace(tmp_path_factory.mktemp("loop"))
    cfg = TrainConfig(**SMALL)
    data = TrainingData.from_workspace(ws, labels=folder_labels(cat), config=cfg,
                                       pipeline=_pipeline())  # fmt: skip
    ref = Trainer(data)
    result = ref.fit(progress=False)
    return ws, cat, data, ref, result


def test_loop_overfits_a_tiny_batch(tmp_path):
    ws, cat = tiny_workspace(tmp_path, classes=2, per_class=6)
    cfg = TrainConfig(model="shufflenet_v2_x0_5", pretrained=False, image_size=32, batch_size=8,
                      epochs=25, frozen_epochs=0, lr=1e-2, augment=False, patience=0,
                      max_batches=1)  # fmt: skip
    data = TrainingData.from_workspace(ws, labels=folder_labels(cat), config=cfg)
    result = Trainer(data).fit(progress=False)
    h = result.history
    assert result.status == "finished" and len(h) == 25
    assert h["train_loss"].iloc[-1] < 0.1 * h["train_loss"].iloc[0]
    assert h["train_acc"].iloc[-1] == 1.0


def test_a_run_is_recorded(setup):
    ws, _, data, ref, result = setup
    run = Run.load(ws, result.run_id)
    assert result.status == "finished" and result.epoch == SMALL["epochs"]
    assert run.config.to_dict() == ref.config.to_dict()
    assert {k: run.versions[k] for k in ("labels", "catalog", "pipeline", "split")} == {
        k: data.versions[k] for k in ("labels", "catalog", "pipeline", "split")}  # fmt: skip
    assert run.versions["pipeline"] is not None and run.versions["normalizer"] == "imagenet"
    pd.testing.assert_frame_equal(run.history, result.history, check_dtype=False)
    assert run.file("checkpoint").exists() and run.file("best").exists()
    best = run.history["val_loss"].idxmin()
    assert run.status["best_epoch"] == best == result.best_epoch
    row = list_runs(ws).set_index("run").loc[result.run_id]
    assert row["status"] == "finished" and row["epoch"] == SMALL["epochs"]
    # the best weights are the ones of the best epoch: their validation loss is the recorded one
    trainer = Trainer(data)
    loss, _ = trainer.evaluate(run.model(), torch.nn.CrossEntropyLoss(), "cpu")
    assert loss == pytest.approx(run.history["val_loss"].min(), rel=1e-5)


def test_stop_then_resume_equals_an_uninterrupted_run(setup):
    ws, _, data, ref, result = setup
    trainer = Trainer(data)
    events = []

    def on_event(e):
        events.append(e)
        if e["kind"] == "batch" and (e["epoch"], e["batch"]) == (1, 2):
            trainer.stop()

    trainer.on_event(on_event)
    stopped = trainer.fit(progress=False)
    assert stopped.status == "stopped" and (stopped.epoch, stopped.batch) == (1, 2)
    assert events[-1] == {"kind": "end", "status": "stopped", "epoch": 1, "batch": 2,
                          "error": None}  # fmt: skip
    assert events[-2]["kind"] == "batch" and events[-2]["batch"] == 2  # ended at that boundary
    assert Run.load(ws, stopped.run_id).status["status"] == "stopped"

    torch.manual_seed(12345)  # the kernel did other random things before resuming
    torch.rand(100)
    # resume: the consumed batches are skipped without loading a single image
    loaded = []
    data.train.transform, tf = (lambda im: loaded.append(1) or tf(im)), data.train.transform
    try:
        again = Trainer.resume(ws, stopped.run_id, data)
        starts = []
        again.on_event(lambda e: starts.append(e) if e["kind"] == "start" else None)
        final = again.fit(progress=False)
    finally:
        data.train.transform = tf
    assert starts[0]["resumed_from"] == (1, 2)
    per_epoch = starts[0]["batches"]
    n_train = len(data.train_ids)
    assert len(loaded) == n_train * 2 - 2 * SMALL["batch_size"]  # epochs 1 (from batch 2), 2
    assert per_epoch * SMALL["batch_size"] >= n_train
    assert final.status == "finished" and final.run_id == stopped.run_id
    assert _weights_equal(again.model, ref.model)
    assert again.batch_losses == ref.batch_losses
    cols = ["train_loss", "train_acc", "val_loss", "val_acc", "best"]
    pd.testing.assert_frame_equal(final.history[cols], result.history[cols])
    # a finished run resumed again does nothing
    assert Trainer.resume(ws, stopped.run_id, data).fit(progress=False).status == "finished"


KILLED = r"""
import json, sys
import torch
torch.set_num_threads(int(sys.argv[3]))  # resume equals uninterrupted on the same thread count
sys.path.insert(0, sys.argv[2])
from test_train_data import folder_labels
from test_train_loop import SMALL, _pipeline
from workbench.train import TrainConfig, Trainer, TrainingData
from workbench.workspace import Workspace
ws = Workspace(sys.argv[1])
cat = ws.load_catalog()
cfg = TrainConfig(**SMALL, checkpoint_every=1)
data = TrainingData.from_workspace(ws, labels=folder_labels(cat), config=cfg, pipeline=_pipeline())
t = Trainer(data, cfg)
t.on_event(lambda e: print(json.dumps(e), flush=True))
t.fit(progress=False)
"""


def test_resume_after_sigkill_equals_an_uninterrupted_run(setup):
    ws, _, _, ref, _ = setup
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(ws.path), str(Path(__file__).parent),
         str(torch.get_num_threads())],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    run_id = None
    for line in proc.stdout:
        e = json.loads(line)
        run_id = e.get("run", run_id)
        if e["kind"] == "batch" and (e["epoch"], e["batch"]) == (1, 2):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    assert run_id is not None
    run = Run.load(ws, run_id)
    assert run.status["status"] == "running"  # killed: nobody wrote an end
    # the labels were given, so the data must be given to resume
    with pytest.raises(TrainError, match="pass data="):
        Trainer.resume(ws, run_id)
    cfg = run.config
    assert cfg.checkpoint_every == 1
    again = Trainer.resume(ws, run_id, data=_data_for(ws, cfg))
    starts = []
    again.on_event(lambda e: starts.append(e) if e["kind"] == "start" else None)
    final = again.fit(progress=False)
    assert starts[0]["resumed_from"] is not None and starts[0]["resumed_from"] >= (1, 2)
    assert final.status == "finished"
    assert _weights_equal(again.model, ref.model)


def _data_for(ws, cfg):
    cat = ws.load_catalog()
    return TrainingData.from_workspace(ws, labels=folder_labels(cat), config=cfg,
                                       pipeline=_pipeline())  # fmt: skip


def test_resume_refuses_changed_data(setup):
    ws, cat, _, _, result = setup
    labels = folder_labels(cat)
    labels.iloc[0] = "c2" if labels.iloc[0] != "c2" else "c1"
    other = TrainingData.from_workspace(ws, labels=labels, config=TrainConfig(**SMALL),
                                        pipeline=_pipeline())  # fmt: skip
    with pytest.raises(TrainError, match=r"data changed.*\(labels\).*new run"):
        Trainer.resume(ws, result.run_id, other)


# ---------------------------------------------------------------------------------- bad settings
def test_unknown_model_names_the_choices():
    with pytest.raises(ParameterError, match=r"unknown model 'mobilenet_v9'.*mobilenet_v2"):
        TrainConfig(model="mobilenet_v9").check()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("epochs", 0, "epochs must be"), ("frozen_epochs", 9, "frozen_epochs must be"),
     ("label_smoothing", 1.0, "label_smoothing must be"), ("batch_size", 1, "batch_size must"),
     ("device", "tpu", "device must be")],
)  # fmt: skip
def test_bad_settings_name_the_field(field, value, match):
    with pytest.raises(ParameterError, match=match):
        TrainConfig(**{field: value}).check()


def test_no_labels_says_how_to_get_some(tmp_path, workspace_labels):
    ws, _ = tiny_workspace(tmp_path, per_class=3)
    if workspace_labels.startswith("sqlite"):  # a server's database is there before any label
        with pytest.raises(TrainError, match=r"no labels.*notebook 04.*labels="):
            TrainingData.from_workspace(ws, config=TrainConfig(**SMALL))
    from workbench.labels import LabelStore

    LabelStore(ws).add_classes(["c0", "c1"])  # a store, but nothing labelled yet
    with pytest.raises(TrainError, match=r"no labelled sample.*labels="):
        TrainingData.from_workspace(ws, config=TrainConfig(**SMALL))


def test_one_class_says_to_label_another(tmp_path):
    ws, cat = tiny_workspace(tmp_path, per_class=3)
    labels = pd.Series("c0", index=cat.df["id"])
    with pytest.raises(TrainError, match=r"at least two classes.*another class"):
        TrainingData.from_workspace(ws, labels=labels, config=TrainConfig(**SMALL))


def test_missing_weights_offline_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty weights cache
    ws, cat = tiny_workspace(tmp_path, per_class=3)
    cfg = TrainConfig(**{**SMALL, "model": "resnet18", "pretrained": True})
    data = TrainingData.from_workspace(ws, labels=folder_labels(cat), config=cfg)
    trainer = Trainer(data)
    events = []
    trainer.on_event(events.append)
    with pytest.raises(WeightsError, match=r"never downloads.*resnet18.*pretrained=False"):
        trainer.fit(progress=False)
    assert events[-1]["kind"] == "end" and events[-1]["status"] == "failed"
    assert "WeightsError" in events[-1]["error"]
    assert Run.load(ws, trainer.run_id).status["status"] == "failed"
    assert issubclass(WeightsError, WorkbenchError)


def test_stop_between_epochs_and_after_the_last(setup):
    """A stop asked during validation ends the run at that epoch's end (resumable there); one
    asked during the last epoch's validation leaves the run finished, not stopped."""
    ws, _, data, _, _ = setup
    for epoch, expected in ((0, ("stopped", 1)), (SMALL["epochs"] - 1, ("finished", 3))):
        trainer = Trainer(data)

        def on_event(e, epoch=epoch, trainer=trainer):
            if e["kind"] == "epoch" and e["epoch"] == epoch:
                trainer.stop()  # as a click during validation lands: after the epoch's record

        trainer.on_event(on_event)
        result = trainer.fit(progress=False)
        assert (result.status, result.epoch, result.batch) == (*expected, 0)
        run = Run.load(ws, result.run_id)
        assert run.status["status"] == expected[0]
        assert run.load_checkpoint()["state"]["epoch"] == expected[1]


def test_predict_proba_names_an_unknown_id(setup):
    ws, cat, _, _, result = setup
    run = Run.load(ws, result.run_id)
    with pytest.raises(TrainError, match="not readable samples"):
        run.predict_proba(cat, [cat.df["id"].iloc[0], "no/such.png"])
