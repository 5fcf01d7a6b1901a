"""The Workspace: one folder that holds a dataset's whole state between notebooks.

Layout::

    <workspace>/
        workspace.json      version and where the catalog's images live
        catalog.parquet     the Catalog table
        images/             materialised samples (or the catalog root points at your own folder)
        cache/thumbs/       thumbnails, keyed by content hash
        split.csv           the train/validation split (grouped by duplicates)
        models/  runs/  reports/   later stages

Every write is atomic: a crash leaves the previous version, never half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.catalog import COLUMNS, Catalog, _tidy, release_memory
from workbench.errors import WorkspaceError
from workbench.fsutil import atomic_open, atomic_write
from workbench.thumbs import ThumbnailCache

FORMAT_VERSION = 1

#: Every artifact a workspace holds: kind -> path relative to the workspace folder. No other
#: module spells a workspace file name; they ask ``workspace.file(kind)``.
LAYOUT: dict[str, str] = {
    "meta": "workspace.json",
    "catalog": "catalog.parquet",
    "images": "images",
    "thumbs": "cache/thumbs",
    "features": "cache/features-v4.parquet",
    "decisions": "decisions.db",
    "issues": "issues.csv",
    "normalizer": "normalizer.json",
    "preprocess": "preprocess.json",
    "pipeline": "pipeline.json",
    "augmented": "augmented",
    "labels": "labels.db",
    "embeddings": "models/embeddings",
    "models": "models",
    "runs": "runs",
    "split": "split.csv",
    "exports": "exports",
    "reports": "reports",
}
_FOLDERS = ("images", "thumbs", "models", "reports")

#: Objects saved as JSON through ``to_dict()`` / ``from_dict()``: kind -> (module, class).
_JSON_KINDS: dict[str, tuple[str, str]] = {
    "normalizer": ("workbench.normalize", "Normalizer"),
    "preprocess": ("workbench.preprocess", "Preprocessor"),
    "pipeline": ("workbench.augment", "Pipeline"),
}


def _json_class(kind: str) -> type:
    import importlib

    module, name = _JSON_KINDS[kind]
    return getattr(importlib.import_module(module), name)


def _layout_path(kind: str, doc: str) -> property:
    """A read-only attribute for ``workspace.file(kind)`` (names older than :data:`LAYOUT`)."""
    return property(lambda self: self.file(kind), doc=f"{doc} Same as ``file({kind!r})``.")


class Workspace:
    """A folder holding every artifact of one dataset.

    Parameters
    ----------
    path
        The folder; created (with its sub-folders) unless ``create=False``.
    create
        Create the folder if it does not exist; otherwise raise :class:`WorkspaceError`.
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True) -> None:
        self.path = Path(path).expanduser().absolute()
        if not self.path.is_dir():
            if not create:
                raise WorkspaceError(f"workspace {str(self.path)!r} does not exist")
            if self.path.exists():
                raise WorkspaceError(f"{str(self.path)!r} exists and is not a folder")
        for kind in _FOLDERS:
            self.file(kind).mkdir(parents=True, exist_ok=True)
        self.thumbs = ThumbnailCache(self.file("thumbs"))
        self._meta = self._read_meta()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    # ------------------------------------------------------------------ layout
    def file(self, kind: str) -> Path:
        """The path of one artifact (see :data:`LAYOUT`); it may not exist yet."""
        try:
            return self.path / LAYOUT[kind]
        except KeyError:
            raise WorkspaceError(
                f"a workspace holds no {kind!r}; known kinds: {', '.join(LAYOUT)}"
            ) from None

    images_dir = _layout_path("images", "Where sample datasets are materialised.")
    models_dir = _layout_path("models", "Trained models and the embeddings cache.")
    reports_dir = _layout_path("reports", "Generated reports.")
    catalog_path = _layout_path("catalog", "The catalog table.")

    # ------------------------------------------------------------------ metadata
    def _read_meta(self) -> dict[str, Any]:
        p = self.file("meta")
        if not p.exists():
            return {"version": FORMAT_VERSION}
        try:
            meta = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise WorkspaceError(f"{p} is not valid JSON ({e}); restore it or delete it") from None
        if meta.get("version", 0) > FORMAT_VERSION:
            raise WorkspaceError(
                f"{p} was written by a newer workbench (format {meta['version']}); upgrade"
            )
        return meta

    def _write_meta(self) -> None:
        atomic_write(self.file("meta"), json.dumps(self._meta, indent=2, sort_keys=True))

    def save_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as JSON to ``<workspace>/<name>`` atomically and return the path."""
        p = self.path / name
        atomic_write(p, json.dumps(obj, indent=2, sort_keys=True, default=str))
        return p

    def load_json(self, name: str) -> Any:
        """Read ``<workspace>/<name>``; :class:`WorkspaceError` if missing or unreadable."""
        p = self.path / name
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkspaceError(f"{name} is not in workspace {str(self.path)!r} yet") from None
        except ValueError as e:
            raise WorkspaceError(f"{p} is not valid JSON: {e}") from None

    # ------------------------------------------------------------------ artifacts
    def save(self, obj: Any) -> Path:
        """Save a Catalog, Normalizer, Preprocessor or Pipeline in its place; atomic.

        Returns the path written. The kind follows from the object's type.
        """
        if isinstance(obj, Catalog):
            return self.save_catalog(obj)
        for kind in _JSON_KINDS:
            if isinstance(obj, _json_class(kind)):
                return self.save_json(LAYOUT[kind], obj.to_dict())
        raise WorkspaceError(
            f"a workspace cannot save a {type(obj).__name__}; it saves a Catalog, "
            + ", ".join(name for _, name in _JSON_KINDS.values())
        )

    def load(self, kind: str) -> Any:
        """Load what :meth:`save` wrote: ``"catalog"``, ``"normalizer"``, ``"preprocess"`` or
        ``"pipeline"``; :class:`WorkspaceError` if it was never saved."""
        if kind == "catalog":
            return self.load_catalog()
        if kind not in _JSON_KINDS:
            raise WorkspaceError(
                f"a workspace cannot load {kind!r}; it loads catalog, {', '.join(_JSON_KINDS)}"
            )
        return _json_class(kind).from_dict(self.load_json(LAYOUT[kind]))

    def has(self, kind: str) -> bool:
        """Whether the artifact ``kind`` exists on disk."""
        return self.has_catalog if kind == "catalog" else self.file(kind).exists()

    # ------------------------------------------------------------------ catalog
    def attach(self, catalog: Catalog) -> Catalog:
        """Let ``catalog`` use this workspace's on-disk thumbnail cache; returns it."""
        catalog.thumbs = self.thumbs
        return catalog

    def save_catalog(self, catalog: Catalog) -> Path:
        """Save the catalog table (parquet) and its root; atomic."""
        root = catalog.root.absolute()
        try:
            root_s = root.relative_to(self.path).as_posix()
        except ValueError:
            root_s = str(root)
        df = catalog.df.copy()
        df.attrs = {}
        for c in ("label", "split"):
            df[c] = df[c].astype("string")
        for c in df.columns:
            if df[c].dtype == object:  # mixed metadata: store as text
                df[c] = df[c].astype("string")
        with atomic_open(self.catalog_path) as f:
            df.to_parquet(f, index=False)
        self._meta["catalog"] = {"root": root_s, "rows": len(df)}
        self._write_meta()
        self.attach(catalog)
        return self.catalog_path

    @property
    def has_catalog(self) -> bool:
        return self.catalog_path.exists() and "catalog" in self._meta

    def load_catalog(self) -> Catalog:
        """Load the saved catalog; ``path`` is recomputed from the root so moving it works."""
        if not self.has_catalog:
            raise WorkspaceError(
                f"no catalog saved in {str(self.path)!r}; run notebook 01 or save one first"
            )
        try:
            df = pd.read_parquet(self.catalog_path)
        except Exception as e:
            raise WorkspaceError(f"{self.catalog_path} cannot be read ({e})") from None
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise WorkspaceError(f"{self.catalog_path} lacks columns {missing}")
        root = Path(self._meta["catalog"]["root"])
        if not root.is_absolute():
            root = self.path / root
        rel = ~df["id"].str.startswith("/")  # absolute ids: opted-in files outside the root
        df["path"] = (str(root).rstrip("/") + "/" + df["id"]).where(rel, df["id"])
        cat = Catalog(_tidy(df), root, thumbs=self.thumbs)
        release_memory()
        return cat
