"""CSV: every current label as one row, and plain ``id,label`` tables in.

Guarantees: the file is written atomically; :func:`import_csv` reads back what :func:`to_csv`
wrote (same values, annotators, rounds, tasks, seconds and hashes), all rows or none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.errors import LabelError
from workbench.fsutil import atomic_write
from workbench.labels._checks import _need, _seconds, _short
from workbench.labels.batch import ImportRow
from workbench.labels.schema import _dumps

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels.store import LabelStore


def to_csv(
    store: LabelStore,
    path: str | os.PathLike,
    *,
    task: str | None = None,
    annotator: str | None = None,
    round: int | None = None,
) -> Path:
    """Write the current labels (of every task by default) as CSV, atomically.

    Columns ``id, annotator, round, task, value, source, ts, hash, seconds``: ``value`` is
    JSON (``"cat"``, ``["cat","dog"]``, ``[[x,y,w,h,"cat"]]``), ``ts`` ISO 8601 UTC.
    :meth:`import_csv` reads it back.
    """
    df = store.current(annotator=annotator, round=round, task=task)
    out = df.drop(columns="event")
    out["value"] = [_dumps(v) for v in df["value"]]
    out["ts"] = [t.isoformat() for t in df["ts"]]
    path = Path(path)
    atomic_write(path, out.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    return path


def import_csv(
    store: LabelStore,
    path: str | os.PathLike,
    catalog: Catalog | None = None,
    *,
    annotator: str = "import",
    round: int = 0,
    task: str = "class",
    add_classes: bool = True,
) -> int:
    """Import labels from a CSV file: ours from :meth:`to_csv`, or a plain ``id,label`` table.

    Columns: ``id`` and either ``value`` (JSON, as :meth:`to_csv` writes it) or ``label``
    (a plain class name); optional ``annotator``, ``round``, ``task``, ``hash`` and
    ``seconds`` columns override the defaults per row. Rows become ``import`` events (source
    ``"import"``) in one transaction: any bad row raises :class:`LabelError` naming it, and
    nothing is imported. Unknown classes are added (in order of appearance) unless
    ``add_classes=False``.

    Returns
    -------
    int
        The number of events imported.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except FileNotFoundError:
        raise LabelError(f"{str(path)!r} does not exist") from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as e:
        raise LabelError(f"{str(path)!r} is not a readable CSV: {e}") from None
    has_value = "value" in df.columns
    _need(
        "id" in df.columns and (has_value or "label" in df.columns),
        f"{str(path)!r} needs an 'id' column and a 'value' (JSON) or 'label' column; "
        f"it has {_short(list(df.columns))}",
    )

    def rows() -> Iterator[ImportRow]:
        for i, rec in enumerate(df.to_dict("records")):
            where = f"{path.name} row {i + 2}"
            yield ImportRow(
                rec["id"],
                round=_csv_int(rec, "round", round, where),
                value=_csv_value(rec, has_value, where),
                annotator=rec.get("annotator") or annotator,
                task=rec.get("task") or task,
                where=where,
                hash=rec.get("hash") or None,
                seconds=_csv_seconds(rec, where),
            )

    return store.import_batch(rows(), catalog, add_classes=add_classes, origin=path.name)


def _csv_value(rec: dict[str, str], has_value: bool, where: str) -> Any:
    if not has_value:
        return rec["label"]
    try:
        return json.loads(rec["value"])
    except ValueError:
        raise LabelError(f"{where}: value {_short(rec['value'])} is not JSON") from None


def _csv_int(rec: dict[str, str], col: str, default: int, where: str) -> int:
    raw = rec.get(col, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise LabelError(f"{where}: {col} {_short(raw)} is not a whole number") from None


def _csv_seconds(rec: dict[str, str], where: str) -> float | None:
    raw = rec.get("seconds", "")
    if raw == "":
        return None
    try:
        return _seconds(float(raw))
    except (ValueError, LabelError):
        raise LabelError(f"{where}: seconds {_short(raw)} is not a number >= 0") from None
