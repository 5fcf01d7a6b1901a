"""QualityReport: figures from workbench.plots, and one self-contained, escaped HTML file written
into the workspace's reports folder."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workbench import Catalog, Workspace
from workbench.errors import ParameterError
from workbench.labels import LabelStore
from workbench.quality.report import REPORT_NAME, QualityReport

EVIL = "<script>alert(1)</script>"
CLASSES = ["cat", "dog", f"{EVIL}bird"]


@pytest.fixture
def workspace(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for cls in CLASSES[:2]:
        (root / cls).mkdir(parents=True)
        for i in range(6):
            a = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(a).save(root / cls / f"{i}{'&x' if i == 0 else ''}.png")
    ws = Workspace(tmp_path / "ws")
    ws.save_catalog(Catalog.from_folder(root, progress=False))
    return ws


@pytest.fixture
def store(workspace, workspace_labels):
    catalog = workspace.load_catalog()
    s = LabelStore(workspace, catalog=catalog)
    assert workspace_labels.startswith(s.backend)
    s.add_classes(CLASSES)
    rng = np.random.default_rng(1)
    for sid in catalog.ids:
        truth = sid.split("/")[0]
        for who in ("ana", "bo", EVIL):
            wrong = who == EVIL and ("&" in sid or rng.random() < 0.5)
            s.label(sid, CLASSES[2] if wrong else truth, annotator=who)
    return s


def test_tables_and_figures(store):
    report = QualityReport(store, gold={"cat/1.png": "cat", "dog/1.png": "cat"})
    assert set(report.pairwise["a"]) | set(report.pairwise["b"]) == {"ana", "bo", EVIL}
    q = report.quality.set_index("annotator")
    assert q.loc["ana", "accuracy_gold"] == 0.5  # right on cat/1, "wrong" on the planted dog/1
    assert q.loc["ana", "accuracy_consensus"] == 1.0 > q.loc[EVIL, "accuracy_consensus"]
    unanimous = int((report.votes.counts().max(axis=1) == 3).sum())
    assert 0 < unanimous < 12 and report.class_counts.sum() == unanimous  # conflicts: no label
    figs = report.figures()
    assert list(figs) == [
        "Agreement heatmap (Cohen's kappa)",
        "Annotator confusion",
        "Class balance of the final labels",
        "Per-annotator quality",
        "Completeness: coverage by round",
    ]
    heat = figs["Agreement heatmap (Cohen's kappa)"].axes[0]
    cells = [t.get_text() for t in heat.texts]
    ab = report.pairwise.query("a == 'ana' and b == 'bo'")["kappa"].iloc[0]
    assert f"{ab:.2f}" in cells and len(cells) == 9
    conf = report.confusion("ana", "bo")
    assert int(np.trace(conf.to_numpy())) == 12  # ana and bo always agree


def _data_images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/\w+;base64,([^"]+)"', text)]


def test_save_report_is_one_self_contained_escaped_file(workspace, store):
    path = QualityReport(store, title=f"QC {EVIL}").save_report(workspace)
    assert path == workspace.file("reports") / REPORT_NAME and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [REPORT_NAME]  # no temp files left
    text = path.read_text()
    # nothing from elsewhere: no links, no external sources, no scripts
    assert not re.search(r"https?://", text)
    assert re.findall(r'(?:src|href)\s*=\s*"(?!data:)', text) == []
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # user text shown, escaped
    assert "cat/0&amp;x.png" in text and "0&x" not in text  # an id with & in it, to review
    images = _data_images(text)
    assert len(images) >= 5 + 1  # five figures and thumbnails of the items to review
    for data in images:
        Image.open(io.BytesIO(data)).verify()
    for heading in ("Agreement heatmap", "Annotator confusion", "Class balance",
                    "Per-annotator quality", "Completeness", "Items to review"):  # fmt: skip
        assert heading in text
    # a folder or a file path works too; the report holds the same sections
    other = QualityReport(store).save_report(workspace.path / "elsewhere" / "r.html")
    assert other.name == "r.html" and "Items to review" in other.read_text()


def test_bad_arguments(store, tmp_path):
    with pytest.raises(ParameterError):
        QualityReport(store, method="crowdlab")
    with pytest.raises(ParameterError):
        QualityReport("labels.db")
    with pytest.raises(ParameterError):
        QualityReport(store, gold=["cat"])
    report = QualityReport(store)
    with pytest.raises(ParameterError):
        report.save_report(3)
    with pytest.raises(ParameterError):
        report.save_report(tmp_path, name="../x.html")
    assert not list(tmp_path.glob("*.html"))
    assert isinstance(report.coverage, pd.DataFrame)
