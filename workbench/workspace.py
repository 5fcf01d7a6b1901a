"""The Workspace: one folder that holds a dataset's whole state between notebooks.

Layout::

    <workspace>/
        workspace.json      version and where the catalog's images live
        catalog.parquet     the Catalog table
        images/             materialised samples (or the catalog root points at your own folder)
        cache/thumbs/       thumbnails, keyed by content hash
        models/  reports/   later stages

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
        for sub in ("images", "cache/thumbs", "models", "reports"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self.thumbs = ThumbnailCache(self.path / "cache" / "thumbs")
        self._meta = self._read_meta()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    # ------------------------------------------------------------------ folders
    @property
    def images_dir(self) -> Path:
        """Where sample datasets are materialised."""
        return self.path / "images"

    @property
    def models_dir(self) -> Path:
        return self.path / "models"

    @property
    def reports_dir(self) -> Path:
        return self.path / "reports"

    @property
    def catalog_path(self) -> Path:
        return self.path / "catalog.parquet"

    # ------------------------------------------------------------------ metadata
    def _read_meta(self) -> dict[str, Any]:
        p = self.path / "workspace.json"
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
        atomic_write(self.path / "workspace.json", json.dumps(self._meta, indent=2, sort_keys=True))

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
