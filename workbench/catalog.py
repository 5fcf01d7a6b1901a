"""The Catalog: one row per sample, metadata only, pixels loaded lazily.

Sample identity everywhere in the workbench is the catalog ``id``: the file's POSIX path relative
to the dataset root (human readable, and it survives moving the root).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xxhash
from PIL import Image

from workbench._validation import check_choice
from workbench.errors import DecodeError, ManifestError, ParameterError, PathOutsideRootError
from workbench.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    decode,
    quiet_bomb_warnings,
    scan_file,
)
from workbench.parallel import pmap
from workbench.thumbs import Thumb, ThumbnailCache, placeholder

if TYPE_CHECKING:
    # Not workbench.torchdata: it builds on this module, so only to_torch() imports it, lazily.
    from torch.utils.data import Dataset

#: Columns every catalog has, in order. Other columns (manifest metadata) follow them.
COLUMNS = (
    "id", "path", "label", "split", "width", "height", "mode", "channels", "bits", "bytes",
    "hash", "format", "status", "error",
)  # fmt: skip
_SCANNED = COLUMNS[4:]
#: Added after the scanned columns by a scan with ``perceptual_hash=True``.
PERCEPTUAL_COLUMNS = ("phash", "dhash")
_INT_COLUMNS = ("width", "height", "channels", "bits")


def scan_paths(
    paths: Sequence[str],
    *,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    perceptual_hash: bool = False,
) -> pd.DataFrame:
    """Decode every file once and return the scanned columns (``width`` … ``error``) in order.

    ``perceptual_hash=True`` adds ``phash`` and ``dhash`` (int64 bit patterns, 0 for bad files)
    from the same decode, so a near-duplicate check afterwards decodes nothing.
    """
    fn = functools.partial(scan_file, max_pixels=max_pixels, perceptual_hash=perceptual_hash)
    with quiet_bomb_warnings():  # in this process: once for all files, not once per file
        rows = pmap(fn, paths, executor=executor, workers=workers, progress=progress, desc="scan")
    columns = [*_SCANNED, *PERCEPTUAL_COLUMNS] if perceptual_hash else list(_SCANNED)
    df = pd.DataFrame.from_records(rows, columns=columns)
    if perceptual_hash:
        df[list(PERCEPTUAL_COLUMNS)] = df[list(PERCEPTUAL_COLUMNS)].astype("int64")
    for c in _INT_COLUMNS:
        df[c] = df[c].astype("int32")
    df["bytes"] = df["bytes"].astype("int64")
    return df


def _walk(root: str, *, recursive: bool, follow_symlinks: bool) -> Iterable[str]:
    """File paths under ``root`` in sorted order; hidden entries skipped; symlink loops cut.

    Plain strings, not ``Path`` objects: on a million files pathlib alone costs seconds.
    """
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir(follow_symlinks=follow_symlinks)
            except OSError:  # symlink loop: report it as a file so the user sees it
                is_dir = False
            if is_dir:
                if recursive:
                    subdirs.append(e.path)
            elif follow_symlinks or not e.is_symlink():
                yield e.path
        stack.extend(reversed(subdirs))


def _norm_inside(root: str, raw: str) -> tuple[str, bool]:
    """Absolute normalised path of ``raw`` (relative to ``root``) and whether it stays inside."""
    p = os.path.normpath(os.path.join(root, raw))
    return p, p == root or p.startswith(root.rstrip(os.sep) + os.sep)


class Catalog:
    """The index of samples.

    Parameters
    ----------
    df
        One row per sample with at least the columns in :data:`COLUMNS`.
    root
        The dataset root that ``id`` values are relative to.
    thumbs
        The thumbnail cache to use (a Workspace gives one with an on-disk folder).

    Attributes
    ----------
    df : pandas.DataFrame
        The table. Columns: ``id, path, label, split, width, height, mode, channels, bits, bytes,
        hash, format, status, error`` and any metadata columns from a manifest.
    root : pathlib.Path
        The dataset root.
    """

    def __init__(
        self, df: pd.DataFrame, root: str | os.PathLike, *, thumbs: ThumbnailCache | None = None
    ) -> None:
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise ManifestError(f"catalog table lacks columns {missing}")
        self.df = df.reset_index(drop=True)
        self.root = Path(root)
        self.thumbs = thumbs if thumbs is not None else ThumbnailCache()
        self._index: _IdIndex | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_folder(
        cls,
        root: str | os.PathLike,
        *,
        labels: str | None = "auto",
        recursive: bool = True,
        extensions: Iterable[str] | None = IMAGE_EXTENSIONS,
        follow_symlinks: bool = True,
        executor: Executor | None = None,
        workers: int | None = None,
        progress: bool = True,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        perceptual_hash: bool = False,
    ) -> Catalog:
        """Scan a folder of images (flat, nested, or ImageFolder ``root/<class>/<file>``).

        Parameters
        ----------
        root
            The folder.
        labels
            ``"auto"``: if every image sits in a sub-folder, the first folder name is its label
            (torchvision ``ImageFolder`` layout), else no labels. ``"folder"``: always use the
            first folder name (files directly in ``root`` get no label). ``None``: no labels.
        recursive
            Descend into sub-folders.
        extensions
            File endings to treat as images (case-insensitive); ``None`` takes every file.
            Files with other endings are counted in ``catalog.df.attrs["skipped_files"]``.
        follow_symlinks
            Follow symbolic links to files and folders (loops are detected and cut).
        executor, workers, progress
            Passed to :func:`workbench.parallel.pmap`.
        max_pixels
            Decompression-bomb guard, see :func:`workbench.io.decode`.
        perceptual_hash
            Also store each image's pHash and dHash (columns ``phash``, ``dhash``) from the
            same decode: a later near-duplicate check then reads no file again.
        """
        root = Path(root).expanduser()
        if not root.is_dir():
            raise ManifestError(f"folder {str(root)!r} does not exist or is not a folder")
        check_choice(labels, "labels", ("auto", "folder", None))
        exts = None if extensions is None else {e.lower() for e in extensions}
        files, skipped = [], 0
        top = os.fspath(root)
        for p in _walk(top, recursive=recursive, follow_symlinks=follow_symlinks):
            if exts is None or os.path.splitext(p)[1].lower() in exts:
                files.append(p)
            else:
                skipped += 1
        cut = len(top.rstrip(os.sep)) + 1
        ids = [p[cut:].replace(os.sep, "/") for p in files]
        label_col: list[Any] = [None] * len(ids)
        nested = [i.split("/", 1)[0] if "/" in i else None for i in ids]
        if labels == "folder" or (labels == "auto" and ids and all(n is not None for n in nested)):
            label_col = nested
        df = pd.DataFrame({"id": ids, "path": files, "label": label_col})
        cat = cls._scanned(df, root, executor, workers, progress, max_pixels, perceptual_hash)
        cat.df.attrs["skipped_files"] = skipped
        return cat

    @classmethod
    def from_csv(
        cls,
        csv: str | os.PathLike,
        *,
        root: str | os.PathLike | None = None,
        path_column: str = "path",
        label_column: str = "label",
        allow_outside_root: bool = False,
        **scan: Any,
    ) -> Catalog:
        """Build from a CSV manifest read with pandas (``path``, optional ``label``, metadata).

        Relative paths are resolved against ``root`` (default: the CSV's own folder).
        See :meth:`from_dataframe` for the rules.
        """
        csv = Path(csv)
        try:
            df = pd.read_csv(csv)
        except FileNotFoundError:
            raise ManifestError(f"manifest {str(csv)!r} does not exist") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise ManifestError(f"manifest {str(csv)!r} is not a readable CSV: {e}") from None
        return cls.from_dataframe(
            df,
            root=root if root is not None else csv.parent,
            path_column=path_column,
            label_column=label_column,
            allow_outside_root=allow_outside_root,
            **scan,
        )

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        *,
        root: str | os.PathLike,
        path_column: str = "path",
        label_column: str = "label",
        allow_outside_root: bool = False,
        executor: Executor | None = None,
        workers: int | None = None,
        progress: bool = True,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        perceptual_hash: bool = False,
    ) -> Catalog:
        """Build from a table with one row per image.

        ``path_column`` holds paths relative to ``root`` (or absolute). Paths that leave ``root``
        (``../``, absolute paths elsewhere) raise :class:`PathOutsideRootError` unless
        ``allow_outside_root=True``; such samples then get their absolute path as ``id``.
        ``label_column`` and a ``split`` column are taken as given; every other column is kept
        as metadata (a name that clashes with a scanned column gets the prefix ``manifest_``).
        Files that do not exist become rows with ``status == "missing"``.
        ``perceptual_hash`` as in :meth:`from_folder`.
        """
        if path_column not in df.columns:
            raise ManifestError(
                f"the manifest has no {path_column!r} column (columns: {list(df.columns)}); "
                "pass path_column= to name the column that holds file paths"
            )
        root_s = os.path.abspath(os.path.expanduser(os.fspath(root)))
        raw = df[path_column]
        bad = [i for i, v in enumerate(raw) if not isinstance(v, str) or not v.strip()]
        if bad:
            raise ManifestError(f"empty or non-text paths in manifest rows {bad[:10]}")
        ids, paths, outside = [], [], []
        for i, v in enumerate(raw):
            p, inside = _norm_inside(root_s, os.path.expanduser(v.strip()))
            if not inside:
                outside.append((i, v))
                if not allow_outside_root:
                    continue
            paths.append(p)
            ids.append(
                Path(os.path.relpath(p, root_s)).as_posix() if inside else Path(p).as_posix()
            )
        if outside and not allow_outside_root:
            shown = ", ".join(f"row {i}: {v!r}" for i, v in outside[:5])
            raise PathOutsideRootError(
                f"{len(outside)} manifest path(s) point outside the dataset root {root_s!r} "
                f"({shown}). Fix the paths or pass allow_outside_root=True if you trust them."
            )
        dup = pd.Series(ids).duplicated(keep=False)
        if dup.any():
            dups = sorted(set(pd.Series(ids)[dup]))[:5]
            raise ManifestError(f"the manifest lists the same file more than once: {dups}")
        out = pd.DataFrame({"id": ids, "path": paths})
        out["label"] = df[label_column].to_numpy() if label_column in df.columns else None
        if "split" in df.columns:
            out["split"] = df["split"].to_numpy()
        taken = set(COLUMNS) | set(PERCEPTUAL_COLUMNS) | {path_column, label_column}
        for c in df.columns:
            if c in (path_column, label_column, "split"):
                continue
            name = f"manifest_{c}" if c in taken else c
            out[name] = df[c].to_numpy()
        return cls._scanned(out, root_s, executor, workers, progress, max_pixels, perceptual_hash)

    @classmethod
    def from_torchvision(
        cls,
        dataset: Any,
        out: str | os.PathLike,
        *,
        classes: Sequence[str] | None = None,
        progress: bool = True,
        **scan: Any,
    ) -> Catalog:
        """Materialise a map-style torchvision dataset as PNG files in ``out/<class>/`` and scan.

        Each item must be ``(image, target)`` with the image a PIL image, a CHW tensor or an
        HWC array. ``classes`` (default: ``dataset.classes`` if present) names integer targets.
        """
        from tqdm.auto import tqdm

        from workbench.fsutil import atomic_open

        out = Path(out)
        classes = list(classes if classes is not None else getattr(dataset, "classes", []) or [])
        width = max(5, len(str(len(dataset))))
        for i in tqdm(range(len(dataset)), desc="materialise", disable=not progress, leave=False):
            img, target = dataset[i]
            im = _to_pil(img)
            t = int(target) if not isinstance(target, str) else target
            name = classes[t] if isinstance(t, int) and 0 <= t < len(classes) else str(t)
            with atomic_open(out / _safe_name(name) / f"{i:0{width}d}.png", fsync=False) as f:
                im.save(f, "PNG")
        return cls.from_folder(out, labels="folder", progress=progress, **scan)

    @classmethod
    def _scanned(
        cls,
        df: pd.DataFrame,
        root: str | os.PathLike,
        executor: Executor | None,
        workers: int | None,
        progress: bool,
        max_pixels: int | None,
        perceptual_hash: bool = False,
    ) -> Catalog:
        scanned = scan_paths(
            df["path"].tolist(),
            executor=executor,
            workers=workers,
            progress=progress,
            max_pixels=max_pixels,
            perceptual_hash=perceptual_hash,
        )
        if "split" not in df.columns:
            df["split"] = None
        meta = [c for c in df.columns if c not in COLUMNS]
        full = pd.concat([df[["id", "path", "label", "split"]], scanned, df[meta]], axis=1)
        cat = cls(_tidy(full), root)
        release_memory()
        return cat

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.df)

    def __repr__(self) -> str:
        n_bad = int((self.df["status"] != "ok").sum())
        return f"Catalog({len(self)} samples, {n_bad} unreadable, root={str(self.root)!r})"

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._id_index()

    @property
    def ids(self) -> list[str]:
        """Sample ids in table order."""
        return self.df["id"].tolist()

    @property
    def classes(self) -> list[str]:
        """Sorted distinct labels (of readable samples with a label)."""
        labels = self.df.loc[self.df["status"] == "ok", "label"].dropna()
        return sorted(map(str, labels.unique()))

    def _id_index(self) -> _IdIndex:
        if self._index is None or len(self._index) != len(self.df):
            self._index = _IdIndex(self.df["id"])
        return self._index

    def _loc(self, sample_id: str) -> int:
        try:
            return int(self._id_index().get_loc(sample_id))
        except KeyError:
            raise ParameterError(f"no sample with id {sample_id!r} in this catalog") from None

    def row(self, sample_id: str) -> dict[str, Any]:
        """All columns of one sample as a dict."""
        return self.row_at(self._loc(sample_id))

    def row_at(self, position: int) -> dict[str, Any]:
        """All columns of the row at ``position`` (0-based, table order) as a dict, as
        :meth:`row` gives them; no id lookup, so no index over the ids is built."""
        row = self.df.iloc[position].to_dict()
        return {k: None if _missing(v) else v for k, v in row.items()}

    def path(self, sample_id: str) -> Path:
        """The file of one sample."""
        return Path(self.df["path"].iat[self._loc(sample_id)])

    def image(self, sample_id: str, *, keep_16bit: bool = False) -> Image.Image:
        """Decode one sample (see :func:`workbench.io.decode` for the modes you get)."""
        return decode(self.path(sample_id), keep_16bit=keep_16bit)

    def array(self, sample_id: str, *, keep_16bit: bool = False) -> np.ndarray:
        """One sample's pixels as an HWC (or HW) array."""
        return np.asarray(self.image(sample_id, keep_16bit=keep_16bit))

    def thumbnail(self, sample_id: str, size: int = 128) -> Thumb:
        """Encoded thumbnail; a placeholder tile for files that cannot be decoded."""
        return self.thumbnail_at(self._loc(sample_id), size)

    def thumbnail_at(self, position: int, size: int = 128) -> Thumb:
        """:meth:`thumbnail` of the row at ``position`` (0-based, table order); no id lookup."""
        i, df = position, self.df
        return self.row_thumbnail(
            {"status": df["status"].iat[i], "hash": df["hash"].iat[i], "path": df["path"].iat[i]},
            size,
        )

    def row_thumbnail(self, row: Mapping[str, Any], size: int = 128) -> Thumb:
        """:meth:`thumbnail` of a row already read (its ``status``, ``hash`` and ``path``)."""
        if row["status"] != "ok":
            return placeholder(size, str(row["status"]))
        try:
            return self.thumbs.get(row["hash"], size, row["path"])
        except DecodeError as e:  # the file changed or vanished since the scan
            return placeholder(size, e.status)

    # ------------------------------------------------------------------ selection
    def _subset(self, df: pd.DataFrame) -> Catalog:
        return Catalog(df, self.root, thumbs=self.thumbs)

    def filter(self, where: str | pd.Series | Callable[[pd.DataFrame], pd.Series]) -> Catalog:
        """A catalog of the rows matching a pandas query string, a boolean mask or a function.

        Raises
        ------
        ParameterError
            If the query is not valid pandas query syntax or names an unknown column.
        """
        try:
            if isinstance(where, str):
                mask = (
                    self.df.eval(where) if where.strip() else pd.Series(True, index=self.df.index)
                )
            elif callable(where):
                mask = where(self.df)
            else:
                mask = where
            if isinstance(mask, pd.DataFrame) or (
                isinstance(mask, pd.Series) and not pd.api.types.is_bool_dtype(mask.dtype)
            ):
                raise TypeError("the expression must give True or False for each row")
            mask = pd.Series(mask, index=self.df.index).astype(bool)
        except Exception as e:
            raise ParameterError(
                f"cannot filter with {where!r}: {type(e).__name__}: {e}. Write a pandas query, "
                f"e.g. label == 'cat' and width > 20; columns: {list(self.df.columns)}"
            ) from None
        return self._subset(self.df[mask])

    @property
    def ok(self) -> Catalog:
        """Only the samples that decoded."""
        return self._subset(self.df[self.df["status"] == "ok"])

    def sort(self, by: str | list[str], ascending: bool = True) -> Catalog:
        """A catalog sorted by one or more columns (stable; missing values last)."""
        cols = [by] if isinstance(by, str) else list(by)
        unknown = [c for c in cols if c not in self.df.columns]
        if unknown:
            raise ParameterError(f"cannot sort by unknown column(s) {unknown}")
        return self._subset(self.df.sort_values(cols, ascending=ascending, kind="stable"))

    def summary(self) -> dict[str, Any]:
        """Counts a person looks at first: samples, readable, per status, per label, sizes."""
        df = self.df
        ok = df[df["status"] == "ok"]
        return {
            "samples": len(df),
            "readable": len(ok),
            "status": df["status"].value_counts().to_dict(),
            "labels": ok["label"].value_counts(dropna=False).sort_index().to_dict(),
            "modes": ok["mode"].value_counts().to_dict(),
            "width": _describe(ok["width"]),
            "height": _describe(ok["height"]),
            "bytes": int(df["bytes"].sum()),
        }

    # ------------------------------------------------------------------ torch
    def to_torch(
        self,
        transform: Callable[[Any], Any] | None = None,
        *,
        target: str | None = "label",
        classes: Sequence[str] | None = None,
        keep_16bit: bool = False,
    ) -> Dataset:
        """A map-style ``torch.utils.data.Dataset`` over the readable samples: a
        :class:`workbench.torchdata.CatalogDataset`.

        Items are ``(transform(image), class_index)`` like torchvision's ``ImageFolder``
        (``classes`` sorted, ``class_to_idx``), or just the image when ``target`` is ``None``.
        """
        from workbench.torchdata import CatalogDataset

        return CatalogDataset(
            self.ok, transform=transform, target=target, classes=classes, keep_16bit=keep_16bit
        )


class _IdIndex:
    """Row position of an id: 64-bit hashes of the ids, sorted, and their rows (12 bytes a row).

    Our own because pandas' Index over an Arrow string column makes a Python string per id and
    a hash table: 99 MiB at a million ids, against 11.4 here. A hit is checked against the id.
    """

    def __init__(self, ids: pd.Series) -> None:
        self._ids = ids
        chunks = (ids.iloc[a : a + 65536].to_numpy(object) for a in range(0, len(ids), 65536))
        hashes = np.fromiter(
            (_id_hash(i) for chunk in chunks for i in chunk), dtype=np.uint64, count=len(ids)
        )
        order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[order]
        del hashes  # before the int32 copy: the build's peak stays at three 8-byte arrays
        # rows as int32 while they fit: 4 bytes a row fewer
        self._order = order.astype(np.int32) if len(order) < 2**31 else order

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, sample_id: object) -> bool:
        try:
            self.get_loc(sample_id)
        except KeyError:
            return False
        return True

    def get_loc(self, sample_id: object) -> int:
        """The row of ``sample_id`` (the first, were an id there twice); ``KeyError`` if none."""
        h = np.uint64(_id_hash(sample_id))  # a numpy scalar: a Python int would be compared slowly
        k = int(np.searchsorted(self._hashes, h))
        while k < len(self._hashes) and self._hashes[k] == h:
            row = int(self._order[k])
            if self._ids.iat[row] == sample_id:
                return row
            k += 1
        raise KeyError(sample_id)


def _id_hash(sample_id: object) -> int:
    return xxhash.xxh3_64_intdigest(str(sample_id).encode("utf-8", "surrogatepass"))


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


def _describe(s: pd.Series) -> dict[str, float]:
    if s.empty:
        return {}
    return {"min": int(s.min()), "median": float(s.median()), "max": int(s.max())}


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Compact dtypes: categories for low-cardinality text, so 1M rows stay small."""
    for c in ("mode", "format", "status"):
        df[c] = df[c].astype("category")
    for c in ("label", "split"):  # classes are few: 1-byte codes instead of 1M str objects
        df[c] = df[c].astype("str").astype("category") if df[c].notna().any() else _no_values(df)
    return df


def release_memory() -> None:
    """Hand memory that Arrow's pool keeps after building large string columns back to the OS."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _no_values(df: pd.DataFrame) -> pd.Categorical:
    return pd.Categorical([None] * len(df), categories=pd.Index([], dtype="str"))


_UNSAFE = str.maketrans({c: "_" for c in '/\\:*?"<>|\0'})


def _safe_name(name: str) -> str:
    """A class name usable as one folder name."""
    s = str(name).translate(_UNSAFE).strip() or "_"
    s = "".join(ch if ch.isprintable() else "_" for ch in s)
    return "_" + s if s in (".", "..") else s[:128]


def _to_pil(img: Any) -> Image.Image:
    if isinstance(img, Image.Image):
        return img
    a = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.dtype != np.uint8:
        a = np.clip(a * 255.0 if a.max() <= 1.0 else a, 0, 255).astype(np.uint8)
    return Image.fromarray(a.squeeze(-1) if a.ndim == 3 and a.shape[-1] == 1 else a)
