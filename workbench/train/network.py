"""The network of a run: a torchvision classifier with a new head for the run's classes.

Pretrained weights come through :func:`workbench.models.load_model` (offline, never downloaded);
``pretrained=False`` builds the same architecture with ``weights=None``. The last linear layer is
replaced by a fresh one with one output per class; it is "the head", everything else "the
backbone" (frozen during the first epochs, then trained with its own, lower learning rate).
Random initialisations draw from a generator seeded with the run's seed and leave the caller's
torch RNG untouched, so building a network twice gives the same weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.errors import WeightsError
from workbench.train.config import TrainConfig

if TYPE_CHECKING:
    import torch

__all__ = ["build_network", "head_name", "parameter_groups"]


def head_name(net: torch.nn.Module) -> str:
    """Qualified name of the last ``Linear`` layer (the classifier)."""
    import torch

    names = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Linear)]
    if not names:
        raise WeightsError(f"{type(net).__name__} has no final linear layer to replace")
    return names[-1]


def build_network(config: TrainConfig, n_classes: int) -> torch.nn.Module:
    """The run's network, in train mode, on the CPU.

    Raises
    ------
    WeightsError
        Pretrained weights are not on this machine (the message names the file and where to put
        it, or ``pretrained=False``).
    """
    import torch
    import torchvision.models as tvm

    from workbench.models import load_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.pretrained:
            try:
                net = load_model(config.model)
            except WeightsError as e:
                raise WeightsError(f"{e}; or train from scratch with pretrained=False") from None
        else:
            net = tvm.get_model(config.model, weights=None)
        name = head_name(net)
        old = net.get_submodule(name)
        parent_name, _, attr = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, attr, torch.nn.Linear(old.in_features, n_classes))
    return net.train()


def parameter_groups(
    net: torch.nn.Module,
) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """``(backbone, head)`` parameters."""
    prefix = head_name(net) + "."
    backbone, head = [], []
    for n, p in net.named_parameters():
        (head if n.startswith(prefix) else backbone).append(p)
    return backbone, head
