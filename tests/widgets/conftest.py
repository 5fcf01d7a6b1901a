"""Widget tests: views built in plain pytest, driven through their controls and handlers.

Without an IPython shell, ipywidgets swallows exceptions raised in callbacks (button clicks,
DOM events) and only logs "Exception in callback ...". The autouse fixture below turns such a log
record into a test failure, so a broken handler cannot pass silently.
"""

import logging

import numpy as np
import pytest
from corpus import encode
from PIL import Image

from workbench import Catalog


class _Swallowed(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "Exception in callback" in record.getMessage() or record.name == "workbench.views":
            self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_swallowed_callback_errors():
    handler = _Swallowed()
    loggers = [logging.getLogger("traitlets"), logging.getLogger("workbench.views")]
    for lg in loggers:
        lg.addHandler(handler)
    yield handler
    for lg in loggers:
        lg.removeHandler(handler)
    if handler.records:
        r = handler.records[0]
        detail = logging.Formatter().formatException(r.exc_info) if r.exc_info else ""
        pytest.fail(f"a widget callback raised and was swallowed: {r.getMessage()}\n{detail}")


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory):
    """60 labelled images in 3 classes (20 each) plus 2 broken files."""
    root = tmp_path_factory.mktemp("browse")
    rng = np.random.default_rng(0)
    for k, cls in enumerate(["ant", "bee", "<i>wasp"]):
        (root / cls).mkdir()
        for i in range(20):
            a = rng.integers(0, 256, (16 + k, 20 + i, 3), dtype=np.uint8)
            (root / cls / f"{i:02d}.png").write_bytes(encode(Image.fromarray(a), "PNG"))
    png = encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    (root / "ant" / "zz_truncated.png").write_bytes(png[: len(png) // 2])
    (root / "bee" / "zz_text.jpg").write_text("not an image")
    return Catalog.from_folder(root, progress=False)
