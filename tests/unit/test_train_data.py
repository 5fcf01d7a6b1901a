"""Training data: the grouped split, labels and exclusions, transforms, data versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from workbench.augment import Pipeline
from workbench.catalog import Catalog
from workbench.decisions import Decisions
from workbench.labels import LabelStore
from workbench.normalize import Normalizer
from workbench.train import (
    TrainConfig,
    TrainError,
    TrainingData,
    grouped_split,
    load_split,
    split_for,
)
from workbench.train.data import EpochBatches, build_transform
from workbench.workspace import Workspace


def tiny_workspace(
    root: Path, classes: int = 3, per_class: int = 12, size: int = 28, twins: int = 0
) -> tuple[Workspace, Catalog]:
    """A workspace over ``classes`` x ``per_class`` gray stripes, ImageFolder layout; the class
    is where the bright band is, so a network can learn it. ``twins`` copies of the first files
    of each class are added (exact duplicates, a content hash shared)."""
    rng = np.random.default_rng(0)
    band = size // classes
    for c in range(classes):
        for k in range(per_class):
            a = rng.integers(0, 60, (size, size)).astype(np.uint8)
            a[c * band : (c + 1) * band] += 150
            p = root / "imgs" / f"c{c}" / f"{k:03d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(p)
            if k < twins:
                Image.fromarray(a).save(p.with_name(f"{k:03d}_twin.png"))
    ws = Workspace(root / "ws")
    cat = Catalog.from_folder(root / "imgs", progress=False)
    ws.save_catalog(cat)
    return ws, cat


def folder_labels(cat: Catalog) -> pd.Series:
    return cat.df.set_index("id")["label"].astype(object)


SMALL = dict(model="mobilenet_v3_small", pretrained=False, image_size=32, batch_size=8,
             epochs=2, frozen_epochs=1, patience=0)  # fmt: skip


# ---------------------------------------------------------------------------------- the split
@pytest.mark.parametrize("seed", range(6))
def test_grouped_split_keeps_groups_whole_and_is_stratified(seed):
    rng = np.random.default_rng(seed)
    n = 400
    ids = [f"s{i}" for i in range(n)]
    labels = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])
    groups = rng.integers(0, 260, n)  # about a third of the samples share a group
    split = grouped_split(ids, labels, groups, val_fraction=0.2, seed=seed)
    assert split.index.tolist() == ids and set(split) == {"train", "val"}
    sides = pd.DataFrame({"g": groups, "side": split.to_numpy()}).groupby("g")["side"].nunique()
    assert (sides == 1).all(), "a duplicate group crosses train and validation"
    share = pd.Series(split.to_numpy() == "val").groupby(labels).mean()
    assert share.between(0.12, 0.28).all(), share  # stratified, as far as groups allow


def test_grouped_split_without_groups_is_exactly_stratified():
    ids = [f"s{i}" for i in range(150)]
    labels = ["a"] * 100 + ["b"] * 50
    split = grouped_split(ids, labels, val_fraction=0.2, seed=3)
    val = pd.Series(split.to_numpy() == "val").groupby(labels).sum()
    assert val.to_dict() == {"a": 20, "b": 10}


def test_workspace_split_ties_exact_and_near_twins(tmp_path):
    ws, cat = tiny_workspace(tmp_path, per_class=10, twins=3)
    df = cat.df
    exact = df.groupby("hash")["id"].agg(list)
    exact = [g for g in exact if len(g) > 1]
    assert len(exact) == 9
    # two distinct images the cleaning stage called near duplicates (issues.csv of notebook 02)
    near = ["c0/005.png", "c1/007.png", "c2/004.png"]
    issues = pd.DataFrame({"id": near, "issue": "near_duplicate", "score": 0.9, "flagged": True,
                           "group": "n1", "keeper": [True, False, False]})  # fmt: skip
    issues.to_csv(ws.file("issues"), index=False)
    for seed in range(6):
        split = split_for(ws, cat, folder_labels(cat), new=True, seed=seed)
        for g in [*exact, near]:
            assert split.loc[g].nunique() == 1, (seed, g)


def test_a_saved_split_is_reused_until_a_new_one_is_asked_for(tmp_path):
    ws, cat = tiny_workspace(tmp_path, per_class=10)
    labels = folder_labels(cat)
    first = split_for(ws, cat, labels, seed=0)
    assert ws.file("split").exists()
    pd.testing.assert_series_equal(load_split(ws).loc[first.index], first)
    assert split_for(ws, cat, labels.iloc[::-1], seed=99).equals(first)  # saved: reused
    newer = split_for(ws, cat, labels, new=True, seed=7)
    assert not newer.equals(first) and load_split(ws).loc[newer.index].equals(newer)
    bigger = Catalog.from_folder(tmp_path / "imgs", progress=False)
    bigger.df.loc[0, "id"] = "new/one.png"  # a sample the saved split has never seen
    with pytest.raises(TrainError, match=r"does not cover 1 sample.*split='new'"):
        split_for(ws, bigger, labels)


# ---------------------------------------------------------------------------------- the data
def _store(ws, cat):
    store = LabelStore(ws, catalog=cat)
    store.add_classes(["c0", "c1", "c2"])
    return store


def test_data_uses_final_labels_minus_exclusions(tmp_path, workspace_labels):
    ws, cat = tiny_workspace(tmp_path, per_class=8)
    store = _store(ws, cat)
    assert workspace_labels.startswith(store.backend)  # the workspace's store: the backend here
    truth = folder_labels(cat)
    ids = truth.index.tolist()
    for sid in ids[:-2]:  # the last two stay unlabelled
        store.label(sid, truth[sid], annotator="ana")
    wrong = ids[0]
    bad = store.label(wrong, "c2", annotator="bo")  # a disagreement ...
    store.review(wrong, "reject", reviewer="rev", round=1, target=bad)
    store.label(wrong, "c1", annotator="rev", round=1)  # ... settled by a review correction
    Decisions(ws).exclude([ids[5]], issue="blurry")
    data = TrainingData.from_workspace(ws, config=TrainConfig(**SMALL))
    used = set(data.train_ids) | set(data.val_ids)
    assert used == set(ids[:-2]) - {ids[5]}
    assert data.labels[wrong] == "c1"  # the review wins over both annotators
    assert all(data.labels[i] == truth[i] for i in used - {wrong})
    assert data.versions["labels_events"] == store.events_count()
    assert data.versions["labels_source"] == "store"
    # targets of the datasets are the final labels in class order
    y = [data.classes[t] for t in data.train.targets]
    assert y == [data.labels[i] for i in data.train_ids]


def test_transforms_make_three_channel_normalised_images(tmp_path):
    ws, cat = tiny_workspace(tmp_path, per_class=6)
    norm = Normalizer().fit(cat)
    pipe = Pipeline().add("RandomHorizontalFlip", p=1.0)
    data = TrainingData.from_workspace(ws, labels=folder_labels(cat), pipeline=pipe,
                                       normalizer=norm, config=TrainConfig(**SMALL))  # fmt: skip
    x, _ = data.val[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # gray: three equal channels
    im = np.asarray(Image.open(data.val.paths[0]), dtype=np.float32)
    small = np.asarray(Image.fromarray(im).resize((32, 32), Image.Resampling.BILINEAR))
    expect = (small / 255.0 - norm.mean_[0]) / norm.std_[0]
    assert np.abs(x[0].numpy() - expect).mean() < 0.05  # resize + the normalizer's statistics
    # augmentation on the training side only: a certain flip mirrors train items, not val ones
    xt, _ = data.train[0]
    plain = build_transform(32, norm.mean_, norm.std_)(Image.open(data.train.paths[0]))
    assert torch.allclose(xt, plain.flip(-1), atol=1e-6)
    assert torch.equal(data.val[0][0], x)


def test_seeded_items_repeat_their_draws_and_leave_the_rng_alone(tmp_path):
    ws, cat = tiny_workspace(tmp_path, per_class=4)
    pipe = Pipeline().add("RandomRotation", degrees=45.0).add("RandomHorizontalFlip")
    data = TrainingData.from_workspace(ws, labels=folder_labels(cat), pipeline=pipe,
                                       config=TrainConfig(**SMALL))  # fmt: skip
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a, b, c = data.train[(0, 11)][0], data.train[(0, 11)][0], data.train[(0, 12)][0]
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_epoch_batches_resume_mid_epoch_and_merge_a_lonely_last_sample():
    s = EpochBatches(17, 4, seed=5)
    s.set_epoch(2)
    full = list(s)
    assert [len(b) for b in full] == [4, 4, 4, 5]  # 1 left over: merged, never a batch of one
    assert sorted(i for b in full for i, _ in b) == list(range(17))
    s.set_epoch(2, start=2)
    assert list(s) == full[2:]
    s.set_epoch(3)
    assert list(s) != full  # another epoch, another order and other seeds
    capped = EpochBatches(17, 4, seed=5, max_batches=2)
    assert len(capped) == 2 and len(list(capped)) == 2


def test_versions_change_when_the_data_changes(tmp_path, workspace_labels):
    ws, cat = tiny_workspace(tmp_path, per_class=8)
    store = _store(ws, cat)
    truth = folder_labels(cat)
    for sid in truth.index:
        store.label(sid, truth[sid], annotator="ana")
    cfg = TrainConfig(**SMALL)

    def versions():
        return TrainingData.from_workspace(ws, config=cfg).versions

    v0 = versions()
    assert versions() == v0  # nothing changed: the same versions
    first = truth.index[0]
    store.label(first, "c2", annotator="ana")  # a relabel
    v1 = versions()
    assert v1["labels_events"] > v0["labels_events"] and v1["labels"] != v0["labels"]
    ws.save(Pipeline().add("RandomHorizontalFlip"))
    v2 = versions()
    assert v2["pipeline"] != v1["pipeline"] and v2["labels"] == v1["labels"]
    ws.save(Pipeline().add("RandomHorizontalFlip", p=0.3))
    assert versions()["pipeline"] != v2["pipeline"]
    ws.save(Normalizer().fit(cat))
    v3 = versions()
    assert v3["normalizer"] != v2["normalizer"] and v2["normalizer"] == "imagenet"
    Decisions(ws).exclude([truth.index[3]], issue="dark")
    v4 = versions()
    assert v4["catalog"] != v3["catalog"] and v4["n_train"] + v4["n_val"] == len(truth) - 1
    assert TrainingData.from_workspace(ws, config=cfg.replace(augment=False)).versions[
        "pipeline"] is None  # fmt: skip
