"""Preprocessing: named, parameterised steps that write a new image folder and catalog.

The originals are never touched. The chosen steps are saved in the Workspace
(``workspace.save(preprocessor)``) so the same preprocessing can be re-applied to new data.

==========  ==========================================================================
step        parameters
==========  ==========================================================================
resize      ``size`` (int: longer side, or [w, h]), ``mode`` keep | pad | crop | stretch,
            ``resample`` lanczos | bilinear | nearest, ``fill`` (pad colour, 0-255)
convert     ``mode`` L | RGB
denoise     ``method`` median | gaussian | nl_means | tv, ``strength`` (median: radius px;
            gaussian: sigma px; nl_means: h in units of the estimated noise σ; tv: weight)
stretch     ``low``, ``high`` percentiles mapped to 0 and 255 (16-bit data to 8-bit)
==========  ==========================================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from workbench._validation import check_choice, check_int, check_real, is_int
from workbench.errors import ParameterError
from workbench.fsutil import atomic_open, atomic_write, sample_file_names
from workbench.io import decode_scanned
from workbench.parallel import pmap

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.workspace import Workspace

_RESAMPLE = {
    "lanczos": Image.Resampling.LANCZOS,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}
STEPS: dict[str, dict[str, Any]] = {
    "resize": {"size": 224, "mode": "keep", "resample": "lanczos", "fill": 0},
    "convert": {"mode": "RGB"},
    "denoise": {"method": "median", "strength": 1.0},
    "stretch": {"low": 1.0, "high": 99.0},
}


def _check(i: int, name: str, params: dict[str, Any]) -> dict[str, Any]:
    where = f"step {i} ({name})"
    if name not in STEPS:
        raise ParameterError(f"{where}: unknown step; choose from {sorted(STEPS)}")
    unknown = sorted(set(params) - set(STEPS[name]))
    if unknown:
        raise ParameterError(
            f"{where}: unknown parameter(s) {unknown}; known: {sorted(STEPS[name])}"
        )
    p = {**STEPS[name], **params}
    param = f"{where}: parameter"
    if name == "resize":
        size = p["size"]
        sizes = [size] if is_int(size) else list(size) if isinstance(size, (list, tuple)) else []
        if len(sizes) not in (1, 2) or not all(is_int(s) and s >= 1 for s in sizes):
            raise ParameterError(f"{param} 'size' must be a positive int or [w, h], got {size!r}")
        p["size"] = int(size) if is_int(size) else [int(s) for s in sizes]  # JSON-ready
        check_choice(p["mode"], f"{param} 'mode'", ("keep", "pad", "crop", "stretch"))
        check_choice(p["resample"], f"{param} 'resample'", _RESAMPLE)
        check_int(p["fill"], f"{param} 'fill'", low=0, high=255)
    elif name == "convert":
        check_choice(p["mode"], f"{param} 'mode'", ("L", "RGB"))
    elif name == "denoise":
        check_choice(p["method"], f"{param} 'method'", ("median", "gaussian", "nl_means", "tv"))
        check_real(p["strength"], f"{param} 'strength'", low=0, low_open=True)
    elif name == "stretch":
        low = check_real(p["low"], f"{param} 'low'", low=0, high=100)
        if not low < check_real(p["high"], f"{param} 'high'", low=0, high=100):
            raise ParameterError(f"{where}: need 0 <= low < high <= 100 (percentiles)")
    return p


def _resize(im: Image.Image, size: Any, mode: str, resample: str, fill: int) -> Image.Image:
    rs = _RESAMPLE[resample]
    if is_int(size):
        if mode == "keep":
            scale = size / max(im.size)
            return im.resize(
                (max(1, round(im.width * scale)), max(1, round(im.height * scale))), rs
            )
        size = (size, size)
    w, h = size
    if mode == "stretch":
        return im.resize((w, h), rs)
    if mode == "crop":
        return ImageOps.fit(im, (w, h), rs)
    if mode == "pad":
        color = fill if im.mode == "L" else (fill,) * 3
        return ImageOps.pad(im, (w, h), rs, color=color)
    return ImageOps.contain(im, (w, h), rs)


def _denoise(im: Image.Image, method: str, strength: float) -> Image.Image:
    from skimage import filters, morphology, restoration

    a = np.asarray(im)
    channel_axis = -1 if a.ndim == 3 else None
    f = a.astype(np.float64) / 255.0
    if method == "median":
        fp = morphology.disk(max(1, round(strength)))
        if a.ndim == 3:
            out = np.stack([filters.median(a[..., c], fp) for c in range(a.shape[-1])], -1)
        else:
            out = filters.median(a, fp)
        return Image.fromarray(out.astype(np.uint8))
    if method == "gaussian":
        out = filters.gaussian(f, sigma=strength, channel_axis=channel_axis)
    elif method == "nl_means":
        sigma = float(np.mean(restoration.estimate_sigma(f, channel_axis=channel_axis)))
        out = restoration.denoise_nl_means(
            f, h=strength * max(sigma, 1e-3), sigma=sigma, fast_mode=True,
            patch_size=5, patch_distance=6, channel_axis=channel_axis,
        )  # fmt: skip
    else:
        out = restoration.denoise_tv_chambolle(f, weight=strength, channel_axis=channel_axis)
    return Image.fromarray(np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8))


def _stretch(im: Image.Image, low: float, high: float) -> Image.Image:
    a = np.asarray(im).astype(np.float64)
    lo, hi = np.percentile(a, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    out = np.clip((a - lo) / (hi - lo), 0.0, 1.0) * 255.0
    return Image.fromarray(np.round(out).astype(np.uint8))


class Preprocessor:
    """An ordered list of preprocessing steps.

    Examples
    --------
    >>> pre = Preprocessor().add("denoise", method="median", strength=1).add("resize", size=64)
    >>> pre.to_json()  # doctest: +ELLIPSIS
    '{"steps": [...
    """

    def __init__(self, steps: Iterable[dict[str, Any]] | None = None) -> None:
        self.steps: list[dict[str, Any]] = []
        for s in steps or []:
            self.add(s["name"], **s.get("params", {}))

    def __repr__(self) -> str:
        return f"Preprocessor({[s['name'] for s in self.steps]})"

    def add(self, name: str, **params: Any) -> Preprocessor:
        """Append a step (validated now); returns self for chaining."""
        full = _check(len(self.steps), name, params)
        self.steps.append({"name": name, "params": full})
        return self

    @property
    def needs_16bit(self) -> bool:
        """Whether the first step wants 16-bit input (a leading ``stretch``)."""
        return bool(self.steps) and self.steps[0]["name"] == "stretch"

    def apply(self, im: Image.Image) -> Image.Image:
        """Run every step on one image."""
        for s in self.steps:
            name, p = s["name"], s["params"]
            if name == "resize":
                im = _resize(im, p["size"], p["mode"], p["resample"], int(p["fill"]))
            elif name == "convert":
                im = im.convert(p["mode"])
            elif name == "denoise":
                im = _denoise(im if im.mode in ("L", "RGB") else im.convert("RGB"),
                              p["method"], float(p["strength"]))  # fmt: skip
            elif name == "stretch":
                im = _stretch(im, float(p["low"]), float(p["high"]))
        if im.mode not in ("L", "RGB"):
            im = _stretch(im, 0.0, 100.0) if im.mode in ("I;16", "I", "F") else im.convert("RGB")
        return im

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "steps": [dict(s) for s in self.steps]}

    def to_json(self) -> str:
        return json.dumps({"steps": self.steps}, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> Preprocessor:
        try:
            steps = data["steps"]
        except (KeyError, TypeError) as e:
            raise ParameterError(f"not a preprocessing spec: {e}") from None
        return cls(steps)

    @classmethod
    def from_json(cls, text: str) -> Preprocessor:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ParameterError(f"not a preprocessing spec: {e}") from None
        return cls.from_dict(data)

    def save(self, workspace: Workspace) -> Path:
        """Save the steps in the workspace (``workspace.save(self)``); returns the path."""
        return workspace.save(self)

    @classmethod
    def load(cls, workspace: Workspace) -> Preprocessor:
        """The steps saved in the workspace; :class:`~workbench.errors.WorkspaceError` (a
        :class:`~workbench.errors.WorkbenchError`) if none were saved."""
        return workspace.load("preprocess")

    def run(
        self,
        catalog: Catalog,
        out: str | os.PathLike,
        *,
        executor: Executor | None = None,
        workers: int | None = None,
        progress: bool = True,
    ) -> Catalog:
        """Write every readable sample, preprocessed, as PNG under ``out``; return the new
        catalog with labels, splits and a ``source_id`` column.

        File names follow :func:`workbench.fsutil.sample_file_names` (``nested=True``): an
        ordinary id keeps its folders and stem (``cat/001.jpg`` -> ``cat/001.png``); an id
        outside the dataset root goes under ``_outside/`` with its whole path; a name that is
        unsafe on some file system, or whose stem an earlier id took (``a.jpg`` beside ``a.png``,
        ``A.jpg`` beside ``a.jpg``), ends in ``~`` and 8 hex digits. ``out`` must not be the
        dataset root or contain it, nor lie inside it."""
        from workbench.catalog import Catalog

        out = Path(out).absolute()
        root = catalog.root.absolute()
        if out == root or root.is_relative_to(out) or out.is_relative_to(root):
            raise ParameterError(
                f"output folder {str(out)!r} overlaps the dataset root {str(root)!r}; "
                "preprocessing never writes over or into the originals"
            )
        ok = catalog.df[catalog.df["status"] == "ok"]
        names = sample_file_names(ok["id"].tolist(), suffix=".png", nested=True)
        rel = [names[i] for i in ok["id"]]
        spec = self.to_json()
        items = [(src, str(out / r), spec) for src, r in zip(ok["path"], rel, strict=True)]
        pmap(_process_one, items, executor=executor, workers=workers, progress=progress,
             desc="preprocess")  # fmt: skip
        from workbench.workspace import LAYOUT

        atomic_write(out / Path(LAYOUT["preprocess"]).name, spec)  # the recipe beside its output
        import pandas as pd

        manifest = pd.DataFrame(
            {"path": rel, "label": ok["label"].astype(object).to_numpy(),
             "split": ok["split"].astype(object).to_numpy(), "source_id": ok["id"].to_numpy()}
        )  # fmt: skip
        return Catalog.from_dataframe(manifest, root=out, progress=progress, workers=workers)


def _process_one(item: tuple[str, str, str]) -> None:
    src, dst, spec = item
    pre = Preprocessor.from_json(spec)
    result = pre.apply(decode_scanned(src, keep_16bit=pre.needs_16bit))
    with atomic_open(dst, fsync=False) as f:
        result.save(f, "PNG")
