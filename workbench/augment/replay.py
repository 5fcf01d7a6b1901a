"""Seeded replay: apply a pipeline with its random draws fixed by a seed, exactly and repeatably.

torchvision v2 draws every random number in ``make_params`` from torch's default CPU generator
(torchvision 0.29 does not use Python's ``random`` or numpy's; checked in its source, and a test
replays every registered transform under two different ``random`` states).
:class:`Replay` seeds that generator inside ``torch.random.fork_rng`` and also saves and
restores Python's ``random`` state, so a replay is exact and the caller's streams are untouched.

Guarantees: the same pipeline, sample and seed give the same output in any thread or process;
replays in several threads at once do not interleave their draws (a process-wide lock, renewed in
a forked child); per-step streams (:func:`step_seed`) make each step's draw independent of the
other steps; seeds of variants (:func:`variant_seeds`) do not overlap between neighbouring seeds.
"""

from __future__ import annotations

import copy
import json
import os
import random
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from workbench._validation import is_int
from workbench.augment._params import Backend, _check_backend, _check_seed
from workbench.augment.codegen import _image_only_names, _instantiate, _pipeline_nodes
from workbench.augment.preview import convert_sample
from workbench.errors import ParameterError

if TYPE_CHECKING:
    from workbench.augment.pipeline import Pipeline

__all__ = ["Replay", "step_seed", "variant_seeds"]


class Replay:
    """:meth:`Pipeline.apply` with the transforms built once (see :meth:`Pipeline.replayer`).

    Parameters
    ----------
    pipeline : Pipeline
        Copied; later edits of it do not change this object.
    step_keys : sequence of int, optional
        One key per step for per-step random streams (see :meth:`Pipeline.apply`).
    backend : {"tensor", "pil"}
        How PIL images are transformed (see :meth:`Pipeline.apply`).
    like : Replay, optional
        An earlier replay (of an earlier state of the pipeline): a step described exactly as
        one it built reuses that transform object instead of building another (a v2 transform
        holds only its configuration). A slider moves one step; the others are not rebuilt.

    Notes
    -----
    The pipeline is validated on first use (so a bad seed or sample is reported first, as by
    :meth:`Pipeline.apply`). Calls from several threads are safe: the seeded section holds a
    process-wide lock, since torchvision draws from torch's one default generator.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        step_keys: Sequence[int] | None = None,
        backend: Backend = "tensor",
        like: Replay | None = None,
    ) -> None:
        self.backend = _check_backend(backend)
        # A plain deep copy: steps edited by hand are reported by validate() on first use,
        # with the same messages as Pipeline.apply.
        self.pipeline = copy.copy(pipeline)
        self.pipeline.steps = copy.deepcopy(pipeline.steps)
        if step_keys is not None:
            keys = list(step_keys)
            if len(keys) != len(self.pipeline) or not all(is_int(k) and k >= 0 for k in keys):
                raise ParameterError(
                    f"step_keys: expected one non-negative int per step ({len(self.pipeline)}), "
                    f"got {step_keys!r}"
                )
            step_keys = [int(k) for k in keys]
        self.step_keys: list[int] | None = step_keys
        self._modules: dict[bool, list[tuple[str, Any, Any]]] = {}
        self._nodes: dict[bool, list[Any]] = {}  # the description of each built module
        self._reusable: list[tuple[Any, Any]] = [] if like is None else like._built()

    def _built(self) -> list[tuple[Any, Any]]:
        """``(node, module)`` of every module built so far."""
        return [
            (node, module)
            for boxes, nodes in self._nodes.items()
            for node, (_, module, _) in zip(nodes, self._modules[boxes], strict=True)
        ]

    def _instantiate(self, node: Any) -> Any:
        for old, module in self._reusable:
            if old == node:
                return module
        return _instantiate(node)

    def _build(self, boxes: bool) -> list[tuple[str, Any, Any]]:
        """``(label, module, signature)`` per node; the signature of a step node with a key is
        ``(key, name, params, p)``, which fixes its output given its input (per-step stream)."""
        built = self._modules.get(boxes)
        if built is None:
            pipe = self.pipeline
            labelled = _pipeline_nodes(pipe, boxes)  # validates
            sigs: list[Any] = [
                None
                if self.step_keys is None
                else (self.step_keys[i], s.name, json.dumps(s.to_dict()["params"]), s.p)
                for i, s in enumerate(pipe.steps)
                if s.enabled
            ]
            sigs += [None] * (len(labelled) - len(sigs))  # box clean-up: no randomness
            built = [
                (label, self._instantiate(node), sig)
                for (label, node), sig in zip(labelled, sigs, strict=True)
            ]
            self._modules[boxes] = built
            self._nodes[boxes] = [node for _, node in labelled]
        return built

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Around many calls in this thread (a preview's cells): the RNG states are saved and
        the expected warnings filtered once, not per call (~0.1 ms each, as much as a draw)."""
        with _rng_guard(), _quiet_replays():
            yield

    def __call__(self, sample: Any, seed: int, *, memo: dict[str, Any] | None = None) -> Any:
        """Apply to ``sample`` with draws fixed by ``seed`` (see :meth:`Pipeline.apply`).

        Parameters
        ----------
        memo : dict, optional
            Only with ``step_keys``. A dict the caller keeps for one ``(sample, seed)`` pair
            across calls (e.g. one preview cell while a slider moves): the output after each
            step is stored in it, and a later call whose first steps have the same key, name,
            parameters and ``p`` starts from the stored output instead of recomputing them.
            Each later step whose draws depend on the input's size only (flips, affine,
            perspective, erasing, ...) keeps its last draw, reapplied while its signature and
            the input's size stay the same. Exact, because each step draws from its own stream.
            It is reset when the sample object or the seed differ.
        """
        seed = _check_seed(seed)
        if (
            memo is None
            and self.step_keys is None
            and isinstance(sample, PIL.Image.Image)
            and getattr(_RNG_GUARD, "active", False)
            and getattr(_QUIET, "active", False)
        ):
            return self._image_guarded(sample, seed)
        data, restore = _to_internal(sample, self.backend)
        geo = isinstance(data, dict) and any(k in data for k in ("boxes", "masks"))
        if geo and self.pipeline.image_only:
            raise ParameterError(
                "the pipeline has image-only steps "
                f"({_image_only_names(self.pipeline)}) that cannot move "
                "boxes or masks; disable them or apply the pipeline to the image alone"
            )
        has_boxes = isinstance(data, dict) and "boxes" in data
        modules = self._build(has_boxes)
        start = 0
        if memo is not None:
            if self.step_keys is None:
                raise ParameterError("memo= needs per-step streams: pass step_keys")
            if memo.get("sample") is not sample or memo.get("seed") != (seed, has_boxes):
                memo.clear()
                memo.update(sample=sample, seed=(seed, has_boxes), sigs=[], outs=[], draws={})
            sigs, outs = memo["sigs"], memo["outs"]
            while (
                start < min(len(sigs), len(modules))
                and modules[start][2] is not None
                and sigs[start] == modules[start][2]
            ):
                start += 1
            del sigs[start:], outs[start:]
            if start:
                data = outs[start - 1]
        # Per-step streams: every step reseeds its own, and the nodes without a key (box
        # clean-up) draw nothing, so the whole-replay seed would be set for nothing.
        with _seeded(None if self.step_keys is not None else seed), _quiet_replays():
            for i in range(start, len(modules)):
                label, module, sig = modules[i]
                try:
                    if memo is not None and sig is not None and type(module) in _SIZE_ONLY_DRAWS:
                        data = _replay_drawn(module, data, memo["draws"], i, sig, seed)
                    else:
                        if sig is not None:
                            _reseed(step_seed(seed, sig[0]))
                        if isinstance(module, v2.SanitizeBoundingBoxes):
                            data = _sanitize(module, data)
                        else:
                            data = module(data)
                except (ValueError, TypeError, RuntimeError, IndexError) as exc:
                    raise ParameterError(f"{label} failed on this sample: {exc}") from exc
                if memo is not None and sig is not None:
                    memo["sigs"].append(sig)
                    memo["outs"].append(dict(data) if isinstance(data, dict) else data)
        return restore(data)

    def _image_guarded(self, image: PIL.Image.Image, seed: int) -> Any:
        """:meth:`__call__` for a PIL image on its own with one seed for the whole replay,
        inside :func:`_rng_guard` and :func:`_quiet_replays` (as :func:`expand` runs): the same
        draws and output without the general path's bookkeeping, ~15 µs of the ~600 of
        expanding a 28 px image (measured)."""
        data, restore = _image_in(image, "sample", self.backend, plain=True)
        modules = self._build(False)
        with _RNG_LOCK:
            _reseed(seed)
            for label, module, _ in modules:
                try:
                    data = module(data)
                except (ValueError, TypeError, RuntimeError, IndexError) as exc:
                    raise ParameterError(f"{label} failed on this sample: {exc}") from exc
        return restore(data)


# Transforms whose random draws all happen in ``make_params`` (and, for the ``p`` ones, the
# ``torch.rand(1) >= p`` check in ``forward``) and depend on the input only through its type and
# (C, H, W); their ``transform`` draws nothing (checked in torchvision 0.29's source). For one
# cell, a draw of such a step can be kept and reapplied to a new input of the same size.
_SIZE_ONLY_DRAWS: dict[type, bool] = {  # class -> whether it has the ``p`` check
    v2.RandomHorizontalFlip: True,
    v2.RandomVerticalFlip: True,
    v2.RandomPerspective: True,
    v2.RandomErasing: True,
    v2.RandomGrayscale: True,
    v2.RandomAffine: False,
    v2.RandomRotation: False,
    v2.RandomResizedCrop: False,
    v2.ColorJitter: False,
    v2.GaussianBlur: False,
}
_SKIPPED = object()  # a ``p`` step whose draw said "not applied"


def _replay_drawn(
    module: Any, data: Any, draws: dict[int, Any], i: int, sig: Any, seed: int
) -> Any:
    """``module(data)`` after reseeding its step stream, with the draw kept in ``draws[i]``.

    A plain image only (one input: exactly what ``forward`` hands ``make_params`` and
    ``transform``); when ``draws[i]`` holds a draw for the same step signature, input type and
    (C, H, W), the parameters are reused and only ``transform`` runs (no reseed, no draws):
    moving a slider of an earlier step then recomputes this step's pixels but not its
    parameters (perspective coefficients are a least-squares solve, ~0.1 ms).
    """
    if isinstance(data, dict):
        _reseed(step_seed(seed, sig[0]))
        return module(data)
    # (C, H, W) from the mode and size: F.get_dimensions costs as much as the kernel here
    where = (sig, data.shape if isinstance(data, torch.Tensor) else (data.mode, data.size))
    kept = draws.get(i)
    if kept is None or kept[0] != where:
        _reseed(step_seed(seed, sig[0]))
        # Transform.forward / _RandomApplyTransform.forward for one input, which always needs
        # the transform (a plain image on its own is the image).
        module.check_inputs([data])
        if _SIZE_ONLY_DRAWS[type(module)] and torch.rand(1) >= module.p:
            params = _SKIPPED
        else:
            params = module.make_params([data])
        kept = draws[i] = (where, params)
    params = kept[1]
    return data if params is _SKIPPED else module.transform(data, params)


_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def step_seed(seed: int, key: int) -> int:
    """Seed of the step with ``key`` in a per-step replay with ``seed`` (``< 2**63``).

    SplitMix64 of SplitMix64(seed) xor key: neighbouring seeds or keys give unrelated streams,
    and it costs a microsecond (``SeedSequence`` costs 200 per call, too much per step and draw).
    """
    return _splitmix64(_splitmix64(int(seed)) ^ (int(key) & _M64)) >> 1


def variant_seeds(seed: int, n: int) -> list[int]:
    """The ``n`` per-variant seeds :meth:`Pipeline.draws` uses for ``seed``."""
    seed = _check_seed(seed)
    if n == 0:
        return []
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32)]


# torchvision draws from torch's one default generator: two threads replaying at once would
# interleave their draws. A fork while another thread holds the lock must not leave the child
# with a lock nobody will release.
_RNG_LOCK = threading.RLock()


def _new_rng_lock() -> None:
    global _RNG_LOCK
    _RNG_LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_rng_lock)


# Set while an outer _rng_guard() in this thread owns the RNG state (and the lock).
_RNG_GUARD = threading.local()


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Hold the RNG lock, save the RNG states (unless a guard does) and seed with ``seed``
    (``None``: the caller reseeds before every draw)."""
    if getattr(_RNG_GUARD, "active", False):  # the guard saves and restores, once
        with _RNG_LOCK:
            if seed is not None:
                _reseed(seed)
            yield
        return
    with _RNG_LOCK:
        py_state = random.getstate()
        # devices=[]: CPU generator only. torch.manual_seed would also (lazily) reseed every CUDA
        # generator, which fork_rng(devices=[]) would not restore.
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                _reseed(seed)
            try:
                yield
            finally:
                random.setstate(py_state)


@contextmanager
def _rng_guard() -> Iterator[None]:
    """Save torch's and Python's RNG states once around many seeded replays in this thread.

    Saving and restoring them costs ~0.1 ms per replay, as much as augmenting a small image.
    Each replay still holds the lock while it runs (other threads may replay in between).
    """
    if getattr(_RNG_GUARD, "active", False):
        yield
        return
    with _RNG_LOCK:
        py_state, torch_state = random.getstate(), torch.get_rng_state()
    _RNG_GUARD.active = True
    try:
        yield
    finally:
        _RNG_GUARD.active = False
        with _RNG_LOCK:
            torch.set_rng_state(torch_state)
            random.setstate(py_state)


def _ignore_expected_warnings() -> None:
    """Add the filters for the warnings a replay expects (to the current warnings filters)."""
    # RandomErasing warns that it passes boxes and masks through: that is intended.
    warnings.filterwarnings("ignore", message=r".*currently passing through inputs")
    # JPEG goes through torchvision.io.encode_jpeg, deprecated in torchvision 0.29.
    warnings.filterwarnings(
        "ignore", message=r"The image decoding and encoding", category=DeprecationWarning
    )


# Set while an outer _quiet_replays() in this thread (or a pool worker, for good) has the
# filters in place: a replay then skips its own catch_warnings, which costs as much per call
# as a few percent of augmenting a 28 px image.
_QUIET = threading.local()


@contextmanager
def _quiet_replays() -> Iterator[None]:
    """The replay's expected warnings filtered, once around any number of replays in this
    thread (a replay inside skips its own filters)."""
    if getattr(_QUIET, "active", False):
        yield
        return
    with warnings.catch_warnings():
        _ignore_expected_warnings()
        _QUIET.active = True
        try:
            yield
        finally:
            _QUIET.active = False


def _quiet_for_good() -> None:
    """In a pool worker: the expected warnings filtered for the rest of the process."""
    _ignore_expected_warnings()
    _QUIET.active = True


def _reseed(seed: int) -> None:
    # torch's generator only: no registered transform draws from Python's ``random`` (a test
    # replays each with two different ``random`` states), and seeding it cost 3.8 us a call
    # (once per replay; once per step with per-step streams, as in the tuner's preview).
    torch.default_generator.manual_seed(seed)


def _image_in(
    image: Any, where: str, backend: Backend = "tensor", plain: bool = False
) -> tuple[Any, Callable[[Any], Any]]:
    """The image as the transforms take it, and how to turn their output back.

    ``plain``: an image on its own goes through as a plain tensor, which torchvision treats as
    the image, with the same kernels: a ``tv_tensors.Image`` costs a ``__torch_function__``
    round trip per tensor operation, ~8 % of augmenting a 28 px image (measured). Next to boxes
    or masks it must be a ``tv_tensors.Image`` so that it is told apart from them.
    """
    wrap = (lambda x: x) if plain else tv_tensors.Image
    if isinstance(image, PIL.Image.Image):
        if image.mode not in ("L", "RGB"):
            raise ParameterError(
                f"{where}: PIL mode {image.mode!r} is not supported; convert to 'RGB' or 'L' "
                "(workbench.io.decode does this)"
            )
        if backend == "pil":  # torchvision's own PIL path; a float step hands back a tensor
            return image, _pil_out
        return wrap(convert_sample(image, "tensor")), _pil_out
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ParameterError(
                f"{where}: expected a uint8 (C, H, W) tensor with 1 or 3 channels, got dtype "
                f"{image.dtype} and shape {tuple(image.shape)}; convert floats with "
                "v2.ToDtype(torch.uint8, scale=True)"
            )
        if isinstance(image, tv_tensors.Image):
            back = tv_tensors.Image if plain else (lambda x: x)
            return wrap(image.contiguous().as_subclass(torch.Tensor)), back
        return wrap(image.contiguous()), lambda x: x.as_subclass(torch.Tensor)
    raise ParameterError(
        f"{where}: expected a PIL image, a uint8 tensor or a dict with 'image', got "
        f"{type(image).__name__}"
    )


def _pil_out(x: Any) -> PIL.Image.Image:
    return convert_sample(x, "pil")


def _to_internal(sample: Any, backend: Backend = "tensor") -> tuple[Any, Callable[[Any], Any]]:
    if not isinstance(sample, Mapping):
        return _image_in(sample, "sample", backend, plain=True)
    if "image" not in sample:
        raise ParameterError("sample: a dict sample needs an 'image' key")
    image, restore_image = _image_in(sample["image"], "sample['image']", backend)
    h, w = (image.height, image.width) if isinstance(image, PIL.Image.Image) else image.shape[-2:]
    data = {k: v for k, v in sample.items() if v is not None}
    data["image"] = image
    plain_masks = False
    if "boxes" in data:
        boxes = data["boxes"]
        if not isinstance(boxes, tv_tensors.BoundingBoxes):
            raise ParameterError(
                "sample['boxes']: expected tv_tensors.BoundingBoxes (it carries the format and "
                f"canvas size), got {type(boxes).__name__}"
            )
        if tuple(boxes.canvas_size) != (h, w):
            raise ParameterError(
                f"sample['boxes']: canvas_size {tuple(boxes.canvas_size)} does not match the "
                f"image size {(h, w)}"
            )
        labels = data.get("labels")
        if labels is not None and not (
            isinstance(labels, torch.Tensor) and labels.ndim >= 1 and len(labels) == len(boxes)
        ):
            raise ParameterError(
                "sample['labels']: with boxes, labels must be a tensor with one entry per box "
                f"(boxes that leave the image are dropped with their labels); got {labels!r}"
            )
    if "masks" in data:
        masks = data["masks"]
        if not isinstance(masks, torch.Tensor) or masks.ndim not in (2, 3):
            raise ParameterError("sample['masks']: expected an (H, W) or (N, H, W) tensor")
        if tuple(masks.shape[-2:]) != (h, w):
            raise ParameterError(
                f"sample['masks']: size {tuple(masks.shape[-2:])} does not match the image {(h, w)}"
            )
        plain_masks = not isinstance(masks, tv_tensors.Mask)
        data["masks"] = tv_tensors.Mask(masks)

    def restore(out: dict[str, Any]) -> dict[str, Any]:
        result = dict(out)
        result["image"] = restore_image(out["image"])
        if plain_masks:
            result["masks"] = out["masks"].as_subclass(torch.Tensor)
        for key, value in sample.items():
            if value is None:
                result[key] = None
        return {k: result[k] for k in sample}

    return data, restore


def _sanitize(module: v2.SanitizeBoundingBoxes, data: Any) -> Any:
    # SanitizeBoundingBoxes indexes *every* Mask with the kept-box mask and silently passes it
    # through when the shapes do not fit; a semantic (H, W) mask with H == N boxes would be cut.
    # Only instance masks (N, H, W) with N == number of boxes go through it.
    if not isinstance(data, dict):
        return module(data)
    if "labels" not in data:
        module = v2.SanitizeBoundingBoxes(labels_getter=None)
    if "masks" not in data:
        return module(data)
    masks = data["masks"]
    n = data["boxes"].shape[0]
    if masks.ndim == 3 and masks.shape[0] == n:
        return module(data)
    rest = module({k: v for k, v in data.items() if k != "masks"})
    return {**rest, "masks": masks}
