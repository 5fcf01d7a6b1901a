"""COCO JSON: class labels and boxes, checked with pycocotools' ``COCO`` and ``COCOeval``.

Guarantees: the file is written atomically; ``width`` and ``height`` of each image are the
catalog's (the decoded image, after EXIF orientation); box pixels survive a round trip exactly;
an import is all or nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.fsutil import atomic_write
from workbench.labels._checks import _is_int, _is_number, _need, _text
from workbench.labels.batch import ImportRow
from workbench.labels.formats._common import Parsed, _import_matched, _json_bytes, _read_json

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.labels.store import LabelStore


def to_coco(
    store: LabelStore,
    path: str | os.PathLike,
    catalog: Catalog | None = None,
    *,
    task: str = "class",
    annotator: str | None = None,
    round: int | None = None,
) -> Path:
    """Write one task's labels as a COCO JSON file, atomically.

    - ``categories``: every active class with ``id = code + 1`` (COCO keeps 0 free by
      custom) and its ``name`` unchanged (JSON needs no safe names).
    - ``images``: each labeled sample: ``file_name`` is its catalog id, ``width`` and
      ``height`` come from the catalog; ``"multi_label": true`` marks a multi-label value.
    - Boxes are ordinary annotations: ``bbox`` ``[x, y, w, h]`` in pixels, ``area`` w·h,
      ``iscrowd`` 0. An image-level class is an annotation whose ``bbox`` covers the whole
      image (``area`` W·H), which pycocotools' ``COCO`` and ``COCOeval`` accept as is, plus
      the extra key ``"image_level": true`` that :meth:`import_coco` reads back.
    - ``info.workbench`` records the task and the samples left out (not in the catalog or
      unreadable).
    """
    batch = store.export_batch(catalog, task=task, annotator=annotator, round=round)
    codes = batch.classes
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for row in batch.rows:
        sid, v, w, h = row.sample_id, row.value, row.width, row.height
        image = {"id": len(images) + 1, "file_name": sid, "width": w, "height": h}
        if isinstance(v, list) and v and isinstance(v[0], str):
            image["multi_label"] = True
        images.append(image)
        for name, bbox, level in _coco_parts(v, w, h):
            ann = {
                "id": len(anns) + 1,
                "image_id": image["id"],
                "category_id": codes[name] + 1,
                "bbox": bbox,
                "area": float(bbox[2] * bbox[3]),
                "iscrowd": 0,
            }
            if level:
                ann["image_level"] = True
            anns.append(ann)
    doc = {
        "info": {
            "description": "labels exported by workbench",
            "version": "1",
            "date_created": datetime.now(timezone.utc).isoformat(),
            "workbench": {"task": task, "skipped": batch.skipped},
        },
        "licenses": [],
        "categories": [{"id": c + 1, "name": n, "supercategory": ""} for n, c in codes.items()],
        "images": images,
        "annotations": anns,
    }
    path = Path(path)
    atomic_write(path, _json_bytes(doc))
    return path


def import_coco(
    store: LabelStore,
    path: str | os.PathLike,
    catalog: Catalog | None = None,
    *,
    annotator: str = "import",
    round: int = 0,
    task: str | None = None,
    add_classes: bool = True,
) -> int:
    """Import a COCO JSON file: ours from :meth:`to_coco`, or a detection dataset's.

    Images are matched to catalog samples by ``file_name`` (the catalog id, else a unique
    file name). Annotations with ``"image_level": true`` are class labels, the others boxes
    (``bbox`` in pixels); an image with no annotations becomes an empty label ``[]``.
    Categories are added in file order (unless ``add_classes=False``). ``task`` defaults
    to the one recorded in the file, else ``"boxes"`` if there are boxes, else ``"class"``.
    One transaction: any defect raises :class:`LabelError` and nothing is imported.
    """
    path = Path(path)

    def parse(resolve: Callable[..., str]) -> Parsed:
        cats, images, recorded = _parse_coco(_read_json(path), path.name, resolve)
        has_boxes = any(im["boxes"] for im in images)
        return Parsed(
            cats, _rows(images, path.name), recorded or ("boxes" if has_boxes else "class")
        )

    return _import_matched(
        store,
        catalog,
        parse,
        annotator=annotator,
        round=round,
        task=task,
        add_classes=add_classes,
        origin=path.name,
    )


def _rows(images: list[dict[str, Any]], name: str) -> Iterator[ImportRow]:
    for im in images:
        where = f"{name}: image {im['file_name']!r}"
        _need(not (im["boxes"] and im["classes"]), f"{where} has classes and boxes")
        value: Any = im["boxes"] or im["classes"]
        if len(im["classes"]) == 1 and not im["multi"]:
            value = im["classes"][0]
        yield ImportRow(im["sid"], value, where=where)


def _coco_parts(v: Any, w: int, h: int) -> list[tuple[str, list[Any], bool]]:
    """(class, bbox, image_level) for each annotation of one value."""
    if isinstance(v, str):
        return [(v, [0, 0, w, h], True)]
    if v and isinstance(v[0], str):
        return [(n, [0, 0, w, h], True) for n in v]
    return [(n, [x, y, bw, bh], False) for x, y, bw, bh, n in v]


def _parse_coco(
    doc: Any, where: str, resolve: Callable[..., str]
) -> tuple[list[str], list[dict[str, Any]], str | None]:
    """Validate a COCO document: (category names in file order, images, recorded task)."""
    _need(isinstance(doc, dict), f"{where}: a COCO file is a JSON object")
    for key in ("images", "annotations", "categories"):
        _need(isinstance(doc.get(key), list), f"{where}: '{key}' must be a list")
    cats: dict[int, str] = {}
    for k, c in enumerate(doc["categories"]):
        ok = isinstance(c, dict) and _is_int(c.get("id")) and isinstance(c.get("name"), str)
        _need(ok, f"{where}: categories[{k}] needs an integer 'id' and a text 'name'")
        _need(c["id"] not in cats, f"{where}: category id {c['id']} appears twice")
        cats[c["id"]] = _text(f"{where}: category name", c["name"], empty_ok=True)
    images: dict[int, dict[str, Any]] = {}
    for k, im in enumerate(doc["images"]):
        ok = isinstance(im, dict) and _is_int(im.get("id")) and isinstance(im.get("file_name"), str)
        _need(ok, f"{where}: images[{k}] needs an integer 'id' and a text 'file_name'")
        _need(im["id"] not in images, f"{where}: image id {im['id']} appears twice")
        sid = resolve(im["file_name"], f"{where}: images[{k}]")
        images[im["id"]] = {
            "sid": sid,
            "file_name": im["file_name"],
            "classes": [],
            "boxes": [],
            "multi": im.get("multi_label") is True,
        }
    sids = [im["sid"] for im in images.values()]
    _need(len(set(sids)) == len(sids), f"{where}: two images are the same catalog sample")
    for k, a in enumerate(doc["annotations"]):
        at = f"{where}: annotations[{k}]"
        ok = isinstance(a, dict) and _is_int(a.get("image_id")) and _is_int(a.get("category_id"))
        _need(ok, f"{at} needs integer 'image_id' and 'category_id'")
        _need(a["image_id"] in images, f"{at}: no image with id {a['image_id']}")
        _need(a["category_id"] in cats, f"{at}: no category with id {a['category_id']}")
        im, name = images[a["image_id"]], cats[a["category_id"]]
        if a.get("image_level") is True:
            im["classes"].append(name)
            continue
        bbox = a.get("bbox")
        ok = isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)
        _need(ok, f"{at}: 'bbox' must be [x, y, w, h] numbers")
        im["boxes"].append([*bbox, name])
    info = doc.get("info")
    wb = info.get("workbench") if isinstance(info, dict) else None
    task = wb.get("task") if isinstance(wb, dict) else None
    return list(cats.values()), list(images.values()), task if isinstance(task, str) else None
