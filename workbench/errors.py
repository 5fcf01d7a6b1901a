"""Errors a user can cause. Each says what went wrong and what to do about it."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""


class DecodeError(WorkbenchError):
    """An image file could not be decoded; ``status`` names the kind of failure."""

    def __init__(self, message: str, status: str = "corrupt") -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple:  # keep the status when sent back from a worker process
        return (type(self), (str(self), self.status))


class PathOutsideRootError(WorkbenchError):
    """A manifest path points outside the dataset root."""


class ManifestError(WorkbenchError):
    """A CSV manifest or DataFrame does not have the expected shape."""


class WorkspaceError(WorkbenchError):
    """A workspace folder is missing an artifact or holds one that cannot be read."""


class ParameterError(WorkbenchError, ValueError):
    """A parameter is outside the range it must be in (a ``ValueError``, as in scikit-learn)."""


class LabelError(WorkbenchError):
    """A label, class, import or export the store cannot accept; the store is left unchanged."""


class WeightsError(WorkbenchError):
    """Pretrained weights are not available on this machine (and are never downloaded)."""
