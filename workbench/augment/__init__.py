"""Augmentation: a torchvision v2 pipeline x' = f(x; p) with a parameter registry, seeded replay,
JSON and code export, preview drawing and offline expansion.

One concern per module:

* :mod:`~workbench.augment.registry`: the transforms and their parameters (:data:`REGISTRY`);
* :mod:`~workbench.augment._params`: checks of parameter values, seeds and backends;
* :mod:`~workbench.augment.controls`: how a parameter is shown by a slider or a number field
  and read back exactly (a slider's snap to its grid is no edit);
* :mod:`~workbench.augment.pipeline`: :class:`Step` and :class:`Pipeline` (edit, validate, JSON);
* :mod:`~workbench.augment.codegen`: one description of a step gives its object and its source;
* :mod:`~workbench.augment.replay`: seeded replay (:class:`Replay`), per-step and variant seeds,
  the lock and guard around torch's and Python's random state;
* :mod:`~workbench.augment.preview`: boxes, mask outlines, reduced working copies and the one
  PIL <-> tensor conversion (:func:`convert_sample`);
* :mod:`~workbench.augment.expansion`: offline expansion to files with a manifest.
"""

from workbench.augment.expansion import (
    MANIFEST,
    MANIFEST_COLUMNS,
    copy_seed,
    expand,
    pipeline_fingerprint,
)
from workbench.augment.pipeline import Pipeline, Step
from workbench.augment.preview import convert_sample, downscale, draw_boxes, mask_outline
from workbench.augment.registry import REGISTRY, ParamSpec, TransformSpec
from workbench.augment.replay import Replay, step_seed, variant_seeds

__all__ = [
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "REGISTRY",
    "ParamSpec",
    "Pipeline",
    "Replay",
    "Step",
    "TransformSpec",
    "convert_sample",
    "copy_seed",
    "downscale",
    "draw_boxes",
    "expand",
    "mask_outline",
    "pipeline_fingerprint",
    "step_seed",
    "variant_seeds",
]
