"""Labels: the append-only store, the class schema, import/export formats, the labeling session."""

from workbench.errors import LabelError
from workbench.labels.store import EXPORT_MODES, SOURCES, VERDICTS, LabelStore, safe_names

__all__ = ["EXPORT_MODES", "SOURCES", "VERDICTS", "LabelError", "LabelStore", "safe_names"]
