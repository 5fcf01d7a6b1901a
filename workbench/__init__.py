"""workbench: the data side of training an image model, in Jupyter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.workspace import Workspace

__all__ = ["Catalog", "WorkbenchError", "Workspace"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so worker processes that only decode images do not pay for importing pandas.
    if name == "Catalog":
        from workbench.catalog import Catalog

        return Catalog
    if name == "Workspace":
        from workbench.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
