"""Offline expansion: write seeded augmented copies of a catalog's images as PNG files.

:func:`expand` writes ``copies`` files per readable source image, a manifest
(:data:`MANIFEST`, columns :data:`MANIFEST_COLUMNS`) and the pipeline's JSON, and returns the
new files as a Catalog.

Guarantees: every file can be regenerated bit for bit from its manifest row (source, seed,
pipeline, backend); a file's seed depends only on the run seed, its source id and copy number
(:func:`copy_seed`), not on the order or number of sources; an interrupted run leaves no half
file and the next run resumes, skipping files that are complete and were made from the same
inputs; output names never leave the output folder and never collide.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import PIL.Image
import torch

from workbench._validation import check_positive_int
from workbench.augment._params import Backend, _check_backend, _check_seed
from workbench.augment.pipeline import Pipeline
from workbench.augment.replay import (
    _M64,
    _RNG_GUARD,
    Replay,
    _quiet_for_good,
    _quiet_replays,
    _rng_guard,
    _splitmix64,
)
from workbench.errors import ParameterError
from workbench.fsutil import atomic_write, sample_file_names
from workbench.io import _pixel_hash, decode, quiet_bomb_warnings
from workbench.parallel import once_in_pool_worker

__all__ = [
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "copy_seed",
    "expand",
    "pipeline_fingerprint",
]

#: Name of the manifest :func:`expand` writes into its output folder.
MANIFEST = "manifest.csv"

#: Columns of the manifest, in order.
MANIFEST_COLUMNS = (
    "path", "source_id", "copy", "seed", "pipeline", "backend", "source_hash", "label",
    "split", "width", "height", "mode", "channels", "bits", "bytes", "hash", "format",
)  # fmt: skip
_SCAN_FIELDS = ("width", "height", "mode", "channels", "bits", "bytes", "hash", "format")


def pipeline_fingerprint(pipeline: Pipeline) -> str:
    """A short content hash of the pipeline's JSON (names its file in ``<out>/pipelines/``)."""
    import hashlib

    text = json.dumps(pipeline.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def copy_seed(seed: int, source_id: str, copy: int) -> int:
    """Seed of augmented copy ``copy`` of ``source_id`` in an :func:`expand` run with ``seed``.

    SplitMix64 over ``seed``, a 64-bit BLAKE2b of the id and ``copy`` (``< 2**63``): independent
    of the order and number of sources, so a subset or a resumed run gives every file the same
    seed, and neighbouring run seeds share no file seeds.
    """
    import hashlib

    key = int.from_bytes(hashlib.blake2b(source_id.encode(), digest_size=8).digest(), "little")
    mixed = _splitmix64(_splitmix64(_check_seed(seed)) ^ key)
    return _splitmix64(mixed ^ (int(copy) & _M64)) >> 1


_REPLAYS: dict[tuple[str, str], Replay] = {}


def _replay_for(pipeline_json: str, backend: Backend) -> Replay:
    replay = _REPLAYS.get((pipeline_json, backend))
    if replay is None:
        if len(_REPLAYS) >= 4:
            _REPLAYS.clear()
        pipe = Pipeline.from_json(pipeline_json)
        replay = _REPLAYS[(pipeline_json, backend)] = pipe.replayer(backend=backend)
    return replay


@contextmanager
def _one_intraop_thread() -> Iterator[None]:
    """One torch intra-op thread in this thread for the duration (restored after).

    Per-image tensors are small: splitting each op over cores costs more than it saves, badly
    so when the cores are busy (10x slower measured on a loaded 2-core machine). OpenMP's
    thread count is per thread, so other threads are not affected.
    """
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def _worker_setup() -> None:
    """A pool worker's: one intra-op thread per process (as torch's DataLoader workers do): the
    pool already uses every core, and OpenMP's thread pool is not fork-safe (a forked child
    whose parent had used it hangs in its first parallel op). And no saving of RNG states
    around each replay: nobody else reads a worker's."""
    torch.set_num_threads(1)
    _RNG_GUARD.active = True
    _quiet_for_good()  # the replays' expected warnings, filtered once per process


def _expand_one(pipeline_json: str, backend: Backend, task: tuple[str, str, int]) -> tuple:
    """Decode one source, augment it with its seed, write it atomically; return its scan row."""
    once_in_pool_worker("expand", _worker_setup)
    src, dst, seed = task
    out = _replay_for(pipeline_json, backend)(decode(src), seed)
    # Hashed before the write, while the pixels are still in the CPU cache (the write's
    # system calls evict them): ~13 us less per 28 px file, measured.
    content = _pixel_hash(out)
    size = _save_png_atomic(out, dst)
    mode = out.mode
    return (out.width, out.height, mode, len(mode), 8, size, content, "PNG")


def _save_png_atomic(image: PIL.Image.Image, dst: str) -> int:
    """Save as PNG atomically; return the file size.

    Encoded in memory, then written in one call (Pillow's save into a file object costs more
    per file than the encoding of a 28 px image). Not fsynced: the manifest's byte count
    catches a file a power loss truncated.
    """
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return atomic_write(dst, buf.getbuffer(), fsync=False)


def _output_names(ids: Sequence[str], copies: int) -> list[list[str]]:
    """``<id without extension>_aug<k>.png`` per copy, on the one sample-id -> file-name scheme."""
    stems = sample_file_names(ids, suffix="", nested=True)
    return [[f"{stems[sid]}_aug{k}.png" for k in range(copies)] for sid in ids]


def _read_manifest(path: Any) -> dict[str, dict[str, Any]]:
    import pandas as pd

    if not path.exists():
        return {}
    try:
        df = pd.read_csv(path, dtype={"path": str, "source_id": str, "pipeline": str})
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return {}  # unreadable: everything is redone (never trusted)
    if not set(MANIFEST_COLUMNS) <= set(df.columns):
        return {}
    return {r["path"]: r for r in df.to_dict("records")}


def _manifest_lines(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Each row as one manifest line, as pandas' ``to_csv`` writes it (missing values empty),
    with the csv module (a third of pandas' time for 1,000 rows)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    ends, end = [], 0
    for r in rows:
        end += w.writerow(
            ["" if v is None or (isinstance(v, float) and v != v) else v  # None and NaN
             for v in map(r.get, MANIFEST_COLUMNS)]
        )  # fmt: skip
        ends.append(end)
    text = buf.getvalue()
    return [text[a:b] for a, b in itertools.pairwise([0, *ends])]


_MANIFEST_HEADER = ",".join(MANIFEST_COLUMNS) + "\n"


def _write_manifest(path: Any, lines: Iterable[str]) -> None:
    """The manifest of these lines (from :func:`_manifest_lines`), written atomically."""
    atomic_write(path, _MANIFEST_HEADER + "".join(lines))


def expand(
    catalog: Any,
    pipeline: Pipeline,
    copies: int = 1,
    out: Any = None,
    *,
    seed: int = 0,
    executor: Any = None,
    workers: int | None = None,
    progress: bool = True,
    batch_size: int | None = None,
    backend: Backend = "pil",
) -> Any:
    """Write ``copies`` augmented PNG files per readable image and return them as a Catalog.

    Parameters
    ----------
    catalog : Catalog
        The sources; unreadable rows (``status != "ok"``) are skipped.
    pipeline : Pipeline
        Applied with :meth:`Pipeline.apply` (one random stream per file).
    copies : int
        Augmented files per source image.
    out : str, os.PathLike or Workspace
        Output folder; a Workspace means ``<workspace>/augmented``. Files are
        ``<source id without extension>_aug<k>.png`` (so ``<class>/`` folders are kept).
    seed : int
        Run seed. File ``k`` of source ``id`` gets ``copy_seed(seed, id, k)``.
    executor, workers, progress
        Passed to :func:`workbench.parallel.pmap` (``progress`` shows its tqdm bar).
    batch_size : int, optional
        Files between manifest checkpoints (default: about 1/20 of the work, at least 1024).
        An interrupted run loses at most one batch of manifest rows; those files are written
        again on resume.
    backend : {"pil", "tensor"}
        See :meth:`Pipeline.apply`. ``"pil"`` (default) writes exactly what
        ``pipeline.to_torchvision()`` gives for the decoded image, i.e. what online training
        on ``catalog.to_torch(transform=pipeline.to_torchvision())`` would draw, and is several
        times faster; ``"tensor"`` matches ``Pipeline.apply``'s default.

    Returns
    -------
    Catalog
        One row per augmented file of this call (skipped ones included), rooted at the output
        folder, with the source's ``label`` and ``split`` and metadata columns ``source_id``,
        ``copy``, ``seed``, ``pipeline`` and ``backend``. ``df.attrs`` has ``written``,
        ``skipped`` and ``manifest`` (its path).

    Notes
    -----
    ``<out>/manifest.csv`` (written atomically after every batch) has one row per file:
    :data:`MANIFEST_COLUMNS`, where ``pipeline`` names ``<out>/pipelines/<pipeline>.json``.
    Every file can be regenerated bit for bit::

        pipe = Pipeline.from_json((out / "pipelines" / f"{row.pipeline}.json").read_text())
        pipe.apply(catalog.image(row.source_id), seed=row.seed, backend=row.backend)

    Each file is written to a temporary name and renamed, so an interrupted run leaves no half
    file. A re-run resumes: a file that is listed with the same source, source hash, copy, seed
    pipeline and backend, exists and has the listed size is skipped; everything else is
    written. Rows of earlier runs that this call does not plan are kept while their files exist.
    Work done in this process (``workers=1``, or few files) uses one torch intra-op thread, as
    pool workers do.
    """
    import functools
    import math
    from pathlib import Path

    import pandas as pd

    from workbench.catalog import COLUMNS, Catalog, _tidy
    from workbench.fsutil import atomic_write
    from workbench.parallel import pmap
    from workbench.workspace import Workspace

    copies = check_positive_int(copies, "expand: copies")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "expand: batch_size")
    seed = _check_seed(seed)
    backend = _check_backend(backend)
    if not isinstance(pipeline, Pipeline):
        raise ParameterError(f"expand: pipeline must be a Pipeline, got {type(pipeline).__name__}")
    pipeline.validate()
    ws = out if isinstance(out, Workspace) else None
    if out is None:
        raise ParameterError("expand: pass out= (a folder or a Workspace) for the new files")
    out_dir = ws.file("augmented") if ws is not None else Path(out).expanduser().absolute()
    out_dir.mkdir(parents=True, exist_ok=True)

    fp = pipeline_fingerprint(pipeline)
    pipeline_json = pipeline.to_json(indent=None)
    pipe_file = out_dir / "pipelines" / f"{fp}.json"
    if not pipe_file.exists():
        atomic_write(pipe_file, pipeline.to_json())
    manifest_path = out_dir / MANIFEST
    for stale in out_dir.rglob(".*.tmp"):  # left by a killed run (SIGKILL skips clean-up)
        stale.unlink(missing_ok=True)

    src = catalog.df[catalog.df["status"] == "ok"]
    ids = src["id"].astype(str).tolist()
    names = _output_names(ids, int(copies))
    old = _read_manifest(manifest_path)
    plan: list[dict[str, Any]] = []
    todo: list[int] = []
    labels = src["label"].astype(object).where(src["label"].notna(), None).tolist()
    splits = src["split"].astype(object).where(src["split"].notna(), None).tolist()
    # Output paths joined as strings once per file (pathlib's "/" and str() cost ~8 us a file
    # twice over, 1 % of expanding a 28 px image).
    base = os.path.join(str(out_dir), "")
    paths, hashes = src["path"].tolist(), src["hash"].tolist()  # (not Arrow scalars one by one)
    for sid, path, shash, label, split, row_names in zip(
        ids, paths, hashes, labels, splits, names, strict=True
    ):
        for k, rel in enumerate(row_names):
            row = {
                "path": rel, "source_id": sid, "copy": k, "seed": copy_seed(seed, sid, k),
                "pipeline": fp, "backend": backend, "source_hash": shash, "label": label,
                "split": split, "_src": path, "_dst": base + rel,
            }  # fmt: skip
            prev = old.get(rel)
            if prev is not None and _still_valid(prev, row, out_dir / rel):
                row.update({f: prev[f] for f in _SCAN_FIELDS})
            else:
                todo.append(len(plan))
            plan.append(row)

    planned = {r["path"] for r in plan}
    kept = [r for p, r in old.items() if p not in planned and (out_dir / p).exists()]
    todo_set = set(todo)
    done = {i for i in range(len(plan)) if i not in todo_set}

    # Each row's line is formatted once: the manifest is rewritten after every batch, and
    # formatting every done row each time cost ~10 rows per file over a 20-batch run.
    skipped = sorted(done)
    lines = dict(zip(skipped, _manifest_lines(plan[i] for i in skipped), strict=True))
    kept_lines = _manifest_lines(kept)

    def checkpoint() -> None:  # rows in plan order, whatever order the batches finished in
        _write_manifest(manifest_path, [*kept_lines, *(lines[i] for i in sorted(done))])

    # First checkpoint: the skipped rows stay listed; rows about to be redone are dropped, so
    # the manifest never lists a file that is being replaced. (Nothing to say without one.)
    if old or not todo:
        checkpoint()
    size = batch_size or max(1024, math.ceil(len(todo) / 20))
    fn = functools.partial(_expand_one, pipeline_json, backend)
    n_batches = math.ceil(len(todo) / size)
    with _one_intraop_thread(), _rng_guard(), _quiet_replays(), quiet_bomb_warnings():
        for b in range(n_batches):
            index = todo[b * size : (b + 1) * size]
            batch = [plan[i] for i in index]
            tasks = [(r["_src"], r["_dst"], r["seed"]) for r in batch]
            desc = "expand" if n_batches == 1 else f"expand {b + 1}/{n_batches}"
            results = pmap(
                fn, tasks, executor=executor, workers=workers, progress=progress, desc=desc
            )
            for r, scan in zip(batch, results, strict=True):
                r.update(zip(_SCAN_FIELDS, scan, strict=True))
            lines.update(zip(index, _manifest_lines(batch), strict=True))
            done.update(index)
            checkpoint()

    df = pd.DataFrame(
        {
            "id": [r["path"] for r in plan],
            "path": [r["_dst"] for r in plan],
            "label": [r["label"] for r in plan],
            "split": [r["split"] for r in plan],
            **{f: [r[f] for r in plan] for f in _SCAN_FIELDS},
            "status": "ok",
            "error": "",
            "source_id": [r["source_id"] for r in plan],
            "copy": [int(r["copy"]) for r in plan],
            "seed": [int(r["seed"]) for r in plan],
            "pipeline": fp,
            "backend": backend,
        },
        columns=[*COLUMNS, "source_id", "copy", "seed", "pipeline", "backend"],
    )
    for c in ("width", "height", "channels", "bits"):
        df[c] = df[c].astype("int32")
    df["bytes"] = df["bytes"].astype("int64")
    result = Catalog(_tidy(df), out_dir, thumbs=ws.thumbs if ws is not None else None)
    result.df.attrs.update(
        written=len(todo), skipped=len(plan) - len(todo), manifest=str(manifest_path)
    )
    return result


def _still_valid(prev: Mapping[str, Any], row: Mapping[str, Any], file: Any) -> bool:
    """Whether a listed file is the one ``row`` plans (same inputs) and is complete on disk."""
    try:
        same = (
            str(prev["source_id"]) == row["source_id"]
            and int(prev["copy"]) == row["copy"]
            and int(prev["seed"]) == row["seed"]
            and str(prev["pipeline"]) == row["pipeline"]
            and str(prev["backend"]) == row["backend"]
            and str(prev["source_hash"]) == str(row["source_hash"])
        )
        return same and file.stat().st_size == int(prev["bytes"])
    except (OSError, ValueError, TypeError, KeyError):
        return False
