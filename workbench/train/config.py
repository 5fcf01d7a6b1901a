"""The settings of one fine-tuning run, checked once, saved with the run.

:class:`TrainConfig` is a plain dataclass: every field has a default, :meth:`TrainConfig.check`
validates them all (a :class:`~workbench.errors.ParameterError` that names the field and its
allowed range, or a :class:`TrainError` that says what to do), and ``to_dict`` / ``from_dict``
round-trip through JSON so a run can be resumed from what it recorded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from workbench._validation import check_choice, check_int, check_positive_int, check_real
from workbench.errors import ParameterError, WorkbenchError

__all__ = ["TrainConfig", "TrainError"]


class TrainError(WorkbenchError):
    """A training run cannot start or continue; the message says what to do."""


@dataclass
class TrainConfig:
    """What to train and how.

    Parameters
    ----------
    model
        A torchvision classification model name (``torchvision.models.list_models``).
    pretrained
        Start from the offline ImageNet weights (:func:`workbench.models.load_model`); ``False``
        builds the same architecture with random weights.
    image_size
        Side of the square the network sees (images are resized to it).
    batch_size
        Samples per training step.
    frozen_epochs
        Epochs at the start that train only the new head (the backbone is frozen).
    epochs
        Total epochs, frozen ones included.
    lr, backbone_lr
        Peak learning rates of the head and of the backbone (discriminative rates): the
        one-cycle policy warms up to them and anneals down over the whole schedule.
    weight_decay
        AdamW's decoupled weight decay.
    label_smoothing
        Of the cross-entropy loss, in [0, 1).
    patience
        Stop after this many epochs without a lower validation loss (``0``: never stop early).
    workers
        DataLoader worker processes (``0``: load in the training process).
    seed
        Seeds the head's initialisation, the sample order of each epoch, every augmentation
        draw and dropout: a run with the same seed and data gives the same weights.
    device
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"`` or ``"cuda"``.
    augment
        Apply the augmentation pipeline to the training split.
    max_batches
        At most this many training batches per epoch (``None``: all). The short schedule of
        tests and quick notebook runs.
    checkpoint_every
        Also write the resumable checkpoint every this many batches (``0``: at epoch ends, on
        :meth:`~workbench.train.Trainer.stop` and on an interrupt only).
    """

    model: str = "mobilenet_v2"
    pretrained: bool = True
    image_size: int = 64
    batch_size: int = 64
    frozen_epochs: int = 1
    epochs: int = 6
    lr: float = 3e-3
    backbone_lr: float = 3e-4
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    patience: int = 3
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    augment: bool = True
    max_batches: int | None = None
    checkpoint_every: int = 0

    def check(self) -> TrainConfig:
        """Validate every field (and the model name); returns self.

        Raises
        ------
        ParameterError
            A field is outside its range (the message names it).
        TrainError
            The device is not available.
        """
        import torchvision.models as tvm

        if not isinstance(self.model, str) or self.model.lower() not in tvm.list_models(module=tvm):
            raise ParameterError(
                f"unknown model {self.model!r}: choose a torchvision classification model, e.g. "
                f"'mobilenet_v2' (its weights ship offline), 'resnet18', 'efficientnet_b0' "
                f"(torchvision.models.list_models(module=torchvision.models) lists them)"
            )
        self.model = self.model.lower()
        check_choice(self.pretrained, "pretrained", [True, False])
        check_choice(self.augment, "augment", [True, False])
        self.image_size = check_int(self.image_size, "image_size", low=16, high=1024)
        self.batch_size = check_int(self.batch_size, "batch_size", low=2, high=65536)
        self.epochs = check_positive_int(self.epochs, "epochs")
        self.frozen_epochs = check_int(self.frozen_epochs, "frozen_epochs", low=0, high=self.epochs)
        self.lr = check_real(self.lr, "lr", low=0, low_open=True, high=10)
        self.backbone_lr = check_real(self.backbone_lr, "backbone_lr", low=0, high=10)
        self.weight_decay = check_real(self.weight_decay, "weight_decay", low=0, high=1)
        self.label_smoothing = check_real(
            self.label_smoothing, "label_smoothing", low=0, high=1, high_open=True
        )
        self.patience = check_int(self.patience, "patience", low=0)
        self.workers = check_int(self.workers, "workers", low=0, high=64)
        self.seed = check_int(self.seed, "seed", low=0, high=2**31 - 1)
        self.checkpoint_every = check_int(self.checkpoint_every, "checkpoint_every", low=0)
        if self.max_batches is not None:
            self.max_batches = check_positive_int(self.max_batches, "max_batches")
        check_choice(self.device, "device", ["auto", "cpu", "cuda"])
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise TrainError("device='cuda' but no CUDA device is available; use 'auto'")
        return self

    def resolved_device(self) -> str:
        """``"cuda"`` or ``"cpu"``: what ``device`` means on this machine."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-able values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are refused, missing ones default."""
        if not isinstance(d, dict):
            raise ParameterError(f"a TrainConfig is read from a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ParameterError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**d).check()

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (and checked)."""
        return dataclasses.replace(self, **changes).check()

    def fingerprint(self) -> str:
        """12 hex digits of the settings' SHA-256 (run ids carry it)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
