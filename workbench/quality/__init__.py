"""Quality control over several annotators and review rounds: assignment, agreement, consensus,
label errors, completeness and the final labels to train on.

Every public name of the submodules is available here, imported on first use (so that
``import workbench.quality`` stays cheap and cleanlab or scikit-learn load only when needed):

- :mod:`~workbench.quality.assignment`: :func:`assign`, :func:`plan_assignment`,
  :func:`gold_answers`, :func:`gold_accuracy`, :func:`assignments`; leased work pools
  :func:`plan_pool`, :func:`open_pool`.
- :mod:`~workbench.quality.agreement`: :func:`percent_agreement`, :func:`cohen_kappa`,
  :func:`fleiss_kappa`, :func:`krippendorff_alpha`, :func:`pairwise`, :func:`accuracy`, ...
- :mod:`~workbench.quality.consensus`: :func:`majority_vote`, :class:`DawidSkene`,
  :func:`crowdlab`, :func:`write_consensus`, ...
- :mod:`~workbench.quality.label_errors`, :mod:`~workbench.quality.boxes`,
  :mod:`~workbench.quality.completeness`,
  :mod:`~workbench.quality.final` (:func:`final_labels`) and :class:`Votes`.

Two functions share their module's name and are reached through it: ``consensus.consensus``
(the one entry point of the consensus methods) and ``completeness.completeness`` (the summary);
``workbench.quality.consensus`` and ``workbench.quality.completeness`` are the modules.
``SOURCES`` here is :data:`workbench.quality.final.SOURCES` (where a final label came from);
the store's event sources are :data:`workbench.labels.SOURCES`.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = (
    "assignment",
    "agreement",
    "consensus",
    "label_errors",
    "boxes",
    "completeness",
    "final",
    "simulate",
)

# name -> submodule it comes from (kept literal so that tools can read it without importing).
_EXPORTS = {
    # _votes
    "CONSENSUS_PREFIX": "_votes", "Votes": "_votes",
    # assignment
    "ASSIGNMENT_COLUMNS": "assignment", "assign": "assignment", "assignments": "assignment",
    "gold_accuracy": "assignment", "gold_answers": "assignment", "plan_assignment": "assignment",
    "POOL_COLUMNS": "assignment", "open_pool": "assignment", "plan_pool": "assignment",
    # agreement
    "WEIGHTS": "agreement", "accuracy": "agreement", "annotator_confusion": "agreement",
    "cohen_kappa": "agreement", "fleiss_kappa": "agreement", "krippendorff_alpha": "agreement",
    "pairwise": "agreement", "percent_agreement": "agreement", "summary": "agreement",
    # consensus (its function ``consensus`` stays ``consensus.consensus``)
    "AUTO_NOTE": "consensus", "COLUMNS": "consensus", "DEFAULT_PRIOR": "consensus",
    "METHODS": "consensus", "MODEL_ANNOTATOR": "consensus",
    "DawidSkene": "consensus", "crowdlab": "consensus", "dawid_skene": "consensus",
    "majority_vote": "consensus", "write_consensus": "consensus",
    # label_errors
    "C_GRID": "label_errors", "FILTERS": "label_errors", "ISSUE": "label_errors",
    "RANKINGS": "label_errors",
    "LabelIssueReport": "label_errors", "duplicate_groups": "label_errors",
    "find_label_errors": "label_errors", "group_folds": "label_errors",
    "label_issues": "label_errors", "out_of_fold_probs": "label_errors",
    "choose_regularization": "label_errors", "regularized_classifier": "label_errors",
    # boxes
    "BOX_ISSUES": "boxes", "box_agreement": "boxes", "box_issues": "boxes", "iou_matrix": "boxes",
    "match_boxes": "boxes",
    # completeness (its function ``completeness`` stays ``completeness.completeness``)
    "balance": "completeness", "class_counts": "completeness", "coverage_by_round": "completeness",
    "throughput": "completeness", "under_labeled": "completeness", "unlabeled": "completeness",
    # final
    "FINAL_COLUMNS": "final", "SOURCES": "final", "final_labels": "final",
    # review, report, simulate
    "ReviewItem": "review", "ReviewSession": "review", "QualityReport": "report",
    "SimulatedAnnotator": "simulate", "answers": "simulate", "biased": "simulate",
    "careful": "simulate", "careless": "simulate", "SIMULATION_COLUMNS": "simulate",
}  # fmt: skip

__all__ = sorted([*_MODULES, *_EXPORTS])


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once is enough
    return value


def __dir__() -> list[str]:
    return __all__
