"""What a label value is for each kind of labeling; which items a session serves and what it starts
from.

Three kinds: ``"single"`` (one class name), ``"multi"`` (a set of class names, ``[]`` included)
and ``"boxes"`` (``[[x, y, w, h, class], ...]`` in original-image pixels). :func:`check_value`
refuses a value of the wrong shape or class before anything is recorded; :func:`stored_value`
gives a value back in the form the store returns it, so a session and a fresh read agree.
:func:`assigned_ids` gives the items an assignment hands an annotator (ids only: which of them are
gold stays out of the session), :func:`start_values` the pre-annotations a session may show and
:func:`assistant_embeddings` the features its assistant learns from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench.errors import LabelError, ParameterError
from workbench.labels._sqlite import GOLD_PREFIX

if TYPE_CHECKING:
    import numpy as np

    from workbench.catalog import Catalog
    from workbench.labels.store import LabelStore

__all__ = [
    "KINDS", "assigned_ids", "assistant_embeddings", "check_value", "start_values", "stored_value",
    "values_by",
]  # fmt: skip

#: What a value is: one class name, a set of class names, or boxes ``[x, y, w, h, class]``.
KINDS = ("single", "multi", "boxes")


def check_value(value: Any, kind: str, classes: Sequence[str]) -> Any:
    """The value in the form the store takes, or a :class:`LabelError` naming what is wrong.

    A box must name one of ``classes``; its geometry is the store's to check.
    """
    if kind == "single":
        if not isinstance(value, str):
            raise LabelError(f"single-label labeling takes one class name, got {value!r}")
        return value
    if kind == "multi":
        return [value] if isinstance(value, str) else list(value)
    boxes = [list(b) for b in value]
    for b in boxes:
        if len(b) != 5 or b[4] not in classes:
            raise LabelError(f"box {b!r} needs one of the classes {list(classes)} as its 5th value")
    return boxes


def stored_value(value: Any, kind: str, class_rank: Mapping[str, int]) -> Any:
    """The value as the store gives it back (a multi-label set comes in class order)."""
    if kind == "multi":
        last = len(class_rank)
        return sorted(dict.fromkeys(value), key=lambda c: class_rank.get(c, last))
    if kind == "boxes":
        return [[float(v) for v in b[:4]] + [b[4]] for b in value]
    return value


def values_by(store: LabelStore, name: str, *, task: str, kind: str) -> dict[str, Any]:
    """Values by ``name`` in the store: its current labels, else its latest suggestions."""
    wanted = (lambda v: isinstance(v, list)) if kind != "single" else (lambda v: v is not None)
    sug = store.suggestions(model=name, task=task)
    out = {i: v for i, v in zip(sug["id"], sug["value"], strict=True) if wanted(v)}
    cur = store.current(annotator=name, task=task)
    out.update((i, v) for i, v in zip(cur["id"], cur["value"], strict=True) if wanted(v))
    if not out:
        what = "boxes" if kind == "boxes" else "labels"
        raise ParameterError(f"the store holds no {what} (task {task!r}) by {name!r} to start from")
    return out


def assigned_ids(
    store: LabelStore, annotator: str, *, round: int, task: str, assigned_only: bool | None
) -> set[str] | None:
    """The ids assigned to ``annotator`` in ``round`` / ``task``; None to serve every item.

    ``assigned_only=None`` narrows when the store holds an assignment for the round and task.
    ParameterError when asked to narrow without an assignment, or when it gives ``annotator``
    nothing.
    """
    if assigned_only is False:
        return None
    every = store.assignments(round=round, task=task)
    if every.empty:
        if assigned_only is None:
            return None
        raise ParameterError(
            f"there is no assignment for round {round}, task {task!r}: run "
            "workbench.quality.assign(...) first or pass assigned_only=False"
        )
    mine = set(every.loc[every["annotator"] == annotator, "id"])
    if not mine:
        raise ParameterError(
            f"{annotator!r} has no items in the assignment of round {round}, task {task!r}; "
            "check the name or pass assigned_only=False"
        )
    return mine


def start_values(
    store: LabelStore,
    given: Mapping[str, Any] | str | None,
    *,
    annotator: str,
    blind: bool,
    task: str,
    kind: str,
) -> dict[str, Any]:
    """Pre-annotations: ``given`` as a dict, or the values by the name ``given`` in the store.

    A name starting with ``gold:`` is refused (gold answers are never shown to annotators), and
    so, while ``blind``, is the name of anyone else with human or consensus labels: showing them
    would undo blind labeling.
    """
    if not isinstance(given, str):
        return dict(given or {})
    if given.startswith(GOLD_PREFIX):
        raise ParameterError("gold answers are never shown to annotators")
    if blind and given != annotator:
        cur = store.current(annotator=given, task=task)
        if cur["source"].isin(["human", "consensus"]).any():
            raise ParameterError(
                f"blind labeling: pre-annotations by {given!r} would show that annotator's "
                "labels; name a model or an import, or pass blind=False"
            )
    return values_by(store, given, task=task, kind=kind)


def assistant_embeddings(assistant: Any, embeddings: Any, catalog: Catalog) -> np.ndarray | None:
    """The checked features of a session's assistant: one row per catalog sample.

    ``None`` without an assistant. A default :class:`~workbench.assist.Assistant` without
    ``scale_on`` is given every sample's features to scale on (see its docstring).
    """
    if assistant is None:
        return None
    import numpy as np

    if embeddings is None:
        raise ParameterError(
            "an assistant needs embeddings: Embedder().embed(catalog, cache=workspace)"
        )
    X = np.asarray(embeddings)
    if X.ndim != 2 or len(X) != len(catalog.df):
        raise ParameterError(
            f"embeddings must have one row per catalog sample ({len(catalog.df)}, d), "
            f"got shape {X.shape}"
        )
    from workbench.assist import Assistant

    a = assistant
    if isinstance(a, Assistant) and a.classifier is None and a.scale_on is None:
        a.scale_on = X  # scale on every sample, not the biased labelled set (see Assistant)
    return X
