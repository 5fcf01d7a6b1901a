"""Labels: the append-only store, the class schema, import/export formats, the labeling session."""

from workbench.errors import LabelError
from workbench.fsutil import safe_names
from workbench.labels._sqlite import SOURCES
from workbench.labels.formats import EXPORT_MODES
from workbench.labels.store import VERDICTS, LabelStore

__all__ = ["EXPORT_MODES", "SOURCES", "VERDICTS", "LabelError", "LabelStore", "safe_names"]
