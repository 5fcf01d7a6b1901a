"""Labels: the append-only store, the class schema, import/export formats, the labeling session."""

from workbench.errors import LabelError
from workbench.fsutil import safe_names
from workbench.labels._sqlite import CONSENSUS_PREFIX, GOLD_PREFIX, SOURCES
from workbench.labels.batch import AssignRow, ImportRow
from workbench.labels.formats import EXPORT_MODES
from workbench.labels.store import VERDICTS, LabelStore

__all__ = [
    "CONSENSUS_PREFIX", "EXPORT_MODES", "GOLD_PREFIX", "SOURCES", "VERDICTS", "AssignRow",
    "ImportRow", "LabelError", "LabelStore", "safe_names",
]  # fmt: skip
