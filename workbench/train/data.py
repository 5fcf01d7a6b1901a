"""What a run trains on: samples, final labels, the split and the transforms, with versions.

:class:`TrainingData` gathers, from a Workspace, the catalog minus the user's exclusions
(:class:`~workbench.decisions.Decisions`), the labels to train on
(:func:`~workbench.quality.final_labels`: review > consensus > single annotator), the saved
grouped split (:mod:`workbench.train.split`), the saved augmentation
:class:`~workbench.augment.Pipeline` (training split only) and the
:class:`~workbench.normalize.Normalizer`. Its ``versions`` name each input (label-store event
count, fingerprints of labels, catalog, pipeline, normalizer and split) so a run records exactly
what it saw and a resumed run can refuse data that changed.

Transforms (torchvision v2): decode -> :func:`rgb_image` (a 3-channel image: gray silhouettes
become three equal channels, as ImageNet networks expect) -> the augmentation pipeline
(training only, at the resolution it was tuned on) -> ``Resize`` to ``image_size`` ->
``ToDtype(float32, scale)`` -> ``Normalize`` (the saved normalizer's statistics, else the
weights' ImageNet mean and std).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.errors import ParameterError
from workbench.train.config import TrainConfig, TrainError
from workbench.train.split import split_fingerprint, split_for

if TYPE_CHECKING:
    from workbench.augment import Pipeline
    from workbench.catalog import Catalog
    from workbench.labels import LabelStore
    from workbench.normalize import Normalizer
    from workbench.torchdata import CatalogDataset
    from workbench.workspace import Workspace

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EpochBatches",
    "TrainingData",
    "build_transform",
    "rgb_image",
]

#: torchvision's ImageNet statistics (the weights' own ``transforms()`` use them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _sha12(obj: Any) -> str:
    text = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def rgb_image(im: Any) -> Any:
    """A decoded PIL image as a 3-channel ``tv_tensors.Image`` (gray repeated, as torchvision's
    ``ImageFolder`` loader does with ``convert("RGB")``).

    One plain function instead of ``v2.ToImage()`` + ``v2.RGB()``: each v2 transform call
    costs about 0.05-0.1 ms of Python on these tiny images, a tenth of the whole item.
    """
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    if isinstance(im, Image.Image) and im.mode != "RGB":
        im = im.convert("RGB")
    x = F.to_image(im)
    return F.grayscale_to_rgb(x) if x.shape[-3] == 1 else x


def build_transform(
    image_size: int,
    mean: Any = IMAGENET_MEAN,
    std: Any = IMAGENET_STD,
    pipeline: Pipeline | None = None,
) -> Any:
    """The v2 transform from a decoded PIL image to the network's normalised float tensor."""
    import torch
    from torchvision.transforms import v2

    steps: list[Any] = [rgb_image]
    if pipeline is not None and len(pipeline):
        steps.append(pipeline.to_torchvision())
    steps += [
        v2.Resize((image_size, image_size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=[float(m) for m in mean], std=[float(s) for s in std]),
    ]
    return v2.Compose(steps)


class EpochBatches:
    """Batches of ``(index, seed)`` keys: a seeded shuffle per epoch, resumable at any batch.

    The order of epoch ``e`` and each sample's augmentation seed are functions of ``(seed, e)``
    only, so a run resumed at batch ``b`` sees exactly the batches an uninterrupted run would,
    and the skipped batches are never loaded. A last batch of one sample is merged into the one
    before (batch norm cannot train on a single sample).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        max_batches: int | None = None,
    ) -> None:
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.shuffle, self.max_batches = shuffle, max_batches
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use the order of ``epoch`` and begin at batch ``start``."""
        self.epoch, self.start = int(epoch), int(start)

    def _batches(self) -> list[np.ndarray]:
        import torch

        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).numpy()
            seeds = torch.randint(0, 2**31 - 1, (self.n,), generator=g).numpy()
        else:
            order, seeds = np.arange(self.n), np.zeros(self.n, np.int64)
        cuts = list(range(self.batch_size, self.n, self.batch_size))
        if self.n - (cuts[-1] if cuts else 0) == 1 and cuts:
            cuts.pop()
        parts = np.split(np.stack([order, seeds], axis=1), cuts)
        return parts[: self.max_batches] if self.max_batches else parts

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for part in self._batches()[self.start :]:
            if self.shuffle:
                yield [(int(i), int(s)) for i, s in part]
            else:
                yield [int(i) for i, _ in part]


def _check_labels(labels: pd.Series) -> pd.Series:
    labels = labels[labels.map(lambda v: v is not None and not (isinstance(v, float) and v != v))]
    bad = [v for v in labels if isinstance(v, (list, tuple, dict))]
    if bad:
        raise TrainError(
            f"training needs one class per sample, got a label {bad[0]!r}; box and multi-label "
            "tasks are not trained here"
        )
    return labels.map(str)


class TrainingData:
    """Samples, labels, split and transforms of one run (see the module docstring).

    Parameters
    ----------
    catalog
        The samples (exclusions already applied); unreadable rows are left out.
    labels
        ``id -> class`` of the samples to train on (others are left out).
    split
        ``id -> "train" | "val"`` covering every labelled sample.
    config
        Gives ``image_size``, ``augment`` and the model (for its default statistics).
    pipeline
        Augmentation for the training split (``None``: none).
    normalizer
        A fitted image :class:`~workbench.normalize.Normalizer` (``None``: ImageNet statistics).
    workspace
        Where runs are recorded.
    versions
        Extra version entries (``from_workspace`` adds the label-store event count).

    Attributes
    ----------
    classes : list of str
        Sorted class names (the network's output order).
    train, val : CatalogDataset
        The two sides; ``train`` augments (when ``config.augment``), ``val`` does not.
    train_ids, val_ids : list of str
    versions : dict
        ``labels_events``, ``labels``, ``catalog``, ``pipeline``, ``normalizer``, ``split``
        fingerprints and the sample counts.
    """

    def __init__(
        self,
        catalog: Catalog,
        labels: pd.Series | Mapping[str, Any],
        split: pd.Series,
        config: TrainConfig | None = None,
        *,
        pipeline: Pipeline | None = None,
        normalizer: Normalizer | None = None,
        workspace: Workspace | None = None,
        versions: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = (config if config is not None else TrainConfig()).check()
        self.workspace = workspace
        self.pipeline = pipeline
        self.normalizer = normalizer
        full = catalog.ok
        labels = _check_labels(pd.Series(labels, dtype=object))
        ids = full.df["id"].astype(str)
        keep = ids.isin(labels.index).to_numpy()
        if not keep.any():
            raise TrainError(
                "no labelled sample to train on: label samples (notebook 04 / 05) or pass "
                "labels=<Series id -> class>, e.g. the folder names: "
                "catalog.df.set_index('id')['label']"
            )
        self.catalog = full.filter(pd.Series(keep, index=full.df.index))
        ids = self.catalog.df["id"].astype(str)
        self.labels = labels.loc[ids.to_numpy()]
        self.classes = sorted(set(self.labels))
        if len(self.classes) < 2:
            raise TrainError(
                f"training needs at least two classes, the labels hold only {self.classes}; "
                "label samples of another class first"
            )
        side = pd.Series(split, dtype=object).reindex(ids.to_numpy())
        if side.isna().any():
            raise TrainError(
                f"the split does not cover {int(side.isna().sum())} labelled sample(s); make a "
                "new one with split='new'"
            )
        self.split = side
        is_train = (side == "train").to_numpy()
        if not is_train.any() or is_train.all():
            raise TrainError(
                "the split leaves one side empty; label more samples or make a new split with "
                "split='new'"
            )
        self.train_ids = ids[is_train].tolist()
        self.val_ids = ids[~is_train].tolist()
        self.mean, self.std = self._statistics()
        size = self.config.image_size
        aug = pipeline if self.config.augment else None
        self.train_transform = build_transform(size, self.mean, self.std, aug)
        self.val_transform = build_transform(size, self.mean, self.std, None)
        self.train = self._dataset(is_train, self.train_transform)
        self.val = self._dataset(~is_train, self.val_transform)
        cid = catalog.df["id"].astype(str)
        self.versions = {
            "labels_events": None,
            "labels": _sha12(sorted(zip(ids, self.labels, strict=True))),
            "catalog": _sha12(sorted(zip(cid, catalog.df["hash"].astype(str), strict=True))),
            "pipeline": _sha12(aug.to_dict()) if aug is not None and len(aug) else None,
            "normalizer": _sha12(normalizer.to_dict()) if normalizer is not None else "imagenet",
            "split": split_fingerprint(side),
            "classes": list(self.classes),
            "n_train": len(self.train_ids),
            "n_val": len(self.val_ids),
            **dict(versions or {}),
        }

    def __repr__(self) -> str:
        return (
            f"TrainingData({len(self.train_ids)} train, {len(self.val_ids)} val, "
            f"{len(self.classes)} classes)"
        )

    def _statistics(self) -> tuple[list[float], list[float]]:
        if self.normalizer is None:
            return list(IMAGENET_MEAN), list(IMAGENET_STD)
        n = self.normalizer
        if getattr(n, "kind_", None) != "image" or len(n.mean_) not in (1, 3):
            raise TrainError(
                "the normalizer must be fitted on images with 1 or 3 channels; refit it in "
                "notebook 02 or pass normalizer=None (ImageNet statistics)"
            )
        return [float(v) for v in n.mean_], [float(v) for v in n.std_]

    def _dataset(self, rows: np.ndarray, transform: Any) -> CatalogDataset:
        from workbench.catalog import Catalog
        from workbench.torchdata import CatalogDataset

        df = self.catalog.df[rows].copy()
        # targets from the final labels, not the catalog's folder-name column
        df["label"] = self.labels.loc[df["id"].astype(str).to_numpy()].to_numpy(object)
        sub = Catalog(df, self.catalog.root, thumbs=self.catalog.thumbs)
        return CatalogDataset(sub, transform=transform, classes=self.classes)

    def batches(self, side: str = "train", *, seed: int = 0) -> EpochBatches:
        """The batch sampler of one side (training: shuffled and capped by ``max_batches``)."""
        train = side == "train"
        n = len(self.train_ids if train else self.val_ids)
        return EpochBatches(
            n, self.config.batch_size, seed=seed, shuffle=train,
            max_batches=self.config.max_batches if train else None,
        )  # fmt: skip

    def loader(self, side: str = "train", sampler: EpochBatches | None = None) -> Any:
        """A DataLoader over one side with ``config.workers`` workers."""
        import torch
        from torch.utils.data import DataLoader

        ds = self.train if side == "train" else self.val
        w = self.config.workers
        return DataLoader(
            ds, batch_sampler=sampler if sampler is not None else self.batches(side),
            num_workers=w, persistent_workers=False, pin_memory=False,
            # a private generator: worker seeds never draw from (and shift) the global RNG
            generator=torch.Generator().manual_seed(self.config.seed),
        )  # fmt: skip

    # ------------------------------------------------------------------ from a workspace
    @classmethod
    def from_workspace(
        cls,
        workspace: Workspace,
        store: LabelStore | None = None,
        *,
        labels: pd.Series | Mapping[str, Any] | None = None,
        split: pd.Series | str = "saved",
        pipeline: Pipeline | str | None = "saved",
        normalizer: Normalizer | str | None = "saved",
        config: TrainConfig | None = None,
        val_fraction: float = 0.2,
    ) -> TrainingData:
        """Everything a run needs from ``workspace`` (see the module docstring).

        Parameters
        ----------
        store
            The label store (default: the workspace's, when it exists).
        labels
            ``id -> class`` to train on instead of the store's final labels.
        split
            ``"saved"``: the workspace's split (made and saved on first use); ``"new"``: a new
            one (saved); or a Series ``id -> "train" | "val"``.
        pipeline, normalizer
            ``"saved"``: the workspace's (none if never saved); an object; or ``None``.
        config
            The run's settings; ``config.seed`` also seeds a new split.
        """
        from workbench.decisions import Decisions
        from workbench.quality import final_labels

        config = (config if config is not None else TrainConfig()).check()
        catalog = Decisions(workspace).apply(workspace.load_catalog()).ok
        extra: dict[str, Any] = {"labels_source": "given" if labels is not None else "store"}
        if labels is None:
            if store is None:
                from workbench.labels._db import parse_target

                # the store may be a server ($WORKBENCH_LABELS_URL): no file in the workspace
                path = parse_target(workspace)[1]
                if path is not None and not path.exists():
                    raise TrainError(
                        "no labels: the workspace has no label store yet. Label samples "
                        "(notebook 04), or pass labels=<Series id -> class>, e.g. the folder "
                        "names: catalog.df.set_index('id')['label']"
                    )
                from workbench.labels import LabelStore

                store = LabelStore(workspace, catalog=catalog)
            final = final_labels(store, catalog=catalog)
            labels = pd.Series(final["label"].to_numpy(object), index=final["id"].astype(str))
            extra["labels_events"] = int(store.events_count())
        labels = pd.Series(labels, dtype=object)
        labels.index = labels.index.astype(str)
        if isinstance(split, str):
            if split not in ("saved", "new"):
                raise ParameterError(f"split must be 'saved', 'new' or a Series, got {split!r}")
            split = split_for(
                workspace, catalog, _check_labels(labels), new=split == "new",
                val_fraction=val_fraction, seed=config.seed,
            )  # fmt: skip
        pipeline = _saved(workspace, "pipeline", pipeline)
        normalizer = _saved(workspace, "normalizer", normalizer)
        extra["pipeline_spec"] = pipeline.to_dict() if pipeline is not None else None
        extra["normalizer_spec"] = normalizer.to_dict() if normalizer is not None else None
        return cls(
            catalog, labels, split, config, pipeline=pipeline, normalizer=normalizer,
            workspace=workspace, versions=extra,
        )  # fmt: skip


def _saved(workspace: Workspace, kind: str, value: Any) -> Any:
    if isinstance(value, str):
        if value != "saved":
            raise ParameterError(f"{kind} must be 'saved', None or an object, got {value!r}")
        return workspace.load(kind) if workspace.has(kind) else None
    return value
