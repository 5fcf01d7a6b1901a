"""Interpretation of a trained run against scikit-learn, the review hand-off, and the fine-tuned
embedder that backs the Assistant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import classification_report, confusion_matrix
from test_train_data import folder_labels, tiny_workspace

from workbench.labels import LabelStore
from workbench.quality.review import ReviewSession
from workbench.train import Interpretation, Run, TrainConfig, Trainer, TrainingData

CFG = dict(model="shufflenet_v2_x0_5", pretrained=False, image_size=32, batch_size=8, epochs=2,
           frozen_epochs=0, patience=0, lr=5e-3, augment=False)  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ws, cat = tiny_workspace(tmp_path_factory.mktemp("interp"), classes=4, per_class=12)
    data = TrainingData.from_workspace(ws, labels=folder_labels(cat), config=TrainConfig(**CFG))
    result = Trainer(data).fit(progress=False)
    run = Run.load(ws, result.run_id)
    return ws, cat, data, run, Interpretation.from_run(run, data)


def _independent(run, data):
    """Predictions computed here, one item at a time, with the run's best network."""
    net = run.model()
    logits, y = [], []
    with torch.inference_mode():
        for k in range(len(data.val)):
            x, t = data.val[k]
            logits.append(net(x[None])[0])
            y.append(t)
    logits = torch.stack(logits)
    y = torch.tensor(y)
    losses = torch.nn.functional.cross_entropy(logits, y, reduction="none").numpy()
    return y.numpy(), logits.argmax(1).numpy(), losses


def test_report_and_confusion_equal_sklearn(trained):
    _, _, data, run, interp = trained
    y, pred, _ = _independent(run, data)
    assert 0 < (y == pred).mean() < 1  # some right, some confused: every cell type is checked
    assert interp.accuracy == pytest.approx((y == pred).mean())
    ref = classification_report(y, pred, labels=range(len(data.classes)), output_dict=True,
                                target_names=data.classes, zero_division=0)  # fmt: skip
    rep = interp.report()
    for row in [*data.classes, "macro avg", "weighted avg"]:
        for col in ("precision", "recall", "f1-score", "support"):
            assert rep.loc[row, col] == pytest.approx(ref[row][col]), (row, col)
    cm = confusion_matrix(y, pred, labels=range(len(data.classes)))
    assert (interp.confusion().to_numpy() == cm).all()
    ax = interp.plot_confusion()
    assert np.array_equal(np.asarray(ax.images[0].get_array()), cm)  # the figure shows them
    assert [t.get_text() for t in ax.get_yticklabels()] == data.classes
    # most confused: the off-diagonal cells, largest first
    mc = interp.most_confused()
    off = [(data.classes[i], data.classes[j], cm[i, j]) for i in range(len(cm))
           for j in range(len(cm)) if i != j and cm[i, j] > 0]  # fmt: skip
    assert sorted(map(tuple, mc.to_numpy().tolist())) == sorted(off)
    assert mc["count"].is_monotonic_decreasing


def test_top_losses_are_the_highest_cross_entropies(trained):
    _, _, data, run, interp = trained
    _, _, losses = _independent(run, data)
    top = interp.top_losses(5)
    order = np.argsort(-losses, kind="stable")[:5]
    assert top["id"].tolist() == [data.val_ids[i] for i in order]
    np.testing.assert_allclose(top["loss"], losses[order], rtol=1e-4, atol=1e-6)
    assert (top["given"] == [data.labels[i] for i in top["id"]]).all()
    fig = interp.plot_top_losses(5, ncols=3)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 5
    titles = [ax.get_title() for ax in shown]
    for t, g, p in zip(titles, top["given"], top["predicted"], strict=True):
        assert t.startswith(f"{g} / {p}\n")


def test_to_review_feeds_the_review_queue_top_losses_first(trained, workspace_labels):
    ws, cat, data, _, interp = trained
    store = LabelStore(ws, catalog=cat)
    assert workspace_labels.startswith(store.backend)
    store.add_classes(data.classes)
    for sid in data.val_ids:
        store.label(sid, data.labels[sid], annotator="ana")
    report = interp.to_review(4)
    session = ReviewSession(store, reviewer="rev", report=report)
    top = interp.top_losses(4)
    assert session.queue == top["id"].tolist()
    item = session.items[session.queue[0]]
    assert item.reasons == ("label_error",)
    assert item.model["label"] == top["predicted"].iloc[0]
    assert report.flagged_ids() == top["id"].tolist()


def test_run_embedder_is_the_fine_tuned_backbone(trained):
    ws, cat, data, run, _ = trained
    emb = run.embedder(batch_size=16)
    ids = data.val_ids[:6]
    X = emb.embed(cat, ids, cache=ws, progress=False)
    net = run.model()
    net.fc = torch.nn.Identity()  # shufflenet's head
    with torch.inference_mode():
        ref = torch.stack([net(data.val[k][0][None])[0] for k in range(6)]).numpy()
    assert X.shape == (6, 1024)
    np.testing.assert_allclose(X, ref, rtol=1e-3, atol=1e-3)
    path = emb.cache_path(ws)
    assert run.id in path.name and path.exists()
    assert emb.embed(cat, ids, cache=ws, progress=False).shape == X.shape
    assert emb.stats_["computed"] == 0  # cached under the run's key
    probs = run.predict_proba(cat, ids)
    assert list(probs.columns) == data.classes and probs.index.tolist() == ids
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert isinstance(probs, pd.DataFrame)
