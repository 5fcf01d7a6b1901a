"""Label file formats: export and import functions over the store's two batch entry points.

Every export reads one :class:`~workbench.labels.batch.ExportBatch` from
:meth:`LabelStore.export_batch`; every import hands its rows to :meth:`LabelStore.import_batch`,
which appends them in one transaction. Each function takes the store first and is also a
method of :class:`~workbench.labels.LabelStore` (``store.to_coco(path)``).

======================  ==============================================================
:mod:`.csv`             every current label as one row; plain ``id,label`` tables in
:mod:`.coco`            COCO JSON: class labels and boxes (pycocotools reads it)
:mod:`.yolo`            YOLO (Ultralytics) detection folders
:mod:`.imagefolder`     torchvision ``ImageFolder`` trees (export only)
======================  ==============================================================
"""

from workbench.labels.formats._common import EXPORT_MODES
from workbench.labels.formats.coco import import_coco, to_coco
from workbench.labels.formats.csv import import_csv, to_csv
from workbench.labels.formats.imagefolder import to_imagefolder
from workbench.labels.formats.yolo import import_yolo, to_yolo

__all__ = [
    "EXPORT_MODES", "import_coco", "import_csv", "import_yolo", "to_coco", "to_csv",
    "to_imagefolder", "to_yolo",
]  # fmt: skip
