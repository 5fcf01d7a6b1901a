"""The Workspace owns its layout: named paths for every artifact, save(obj) / load(kind)."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from workbench.augment import Pipeline
from workbench.errors import WorkspaceError
from workbench.normalize import Normalizer
from workbench.preprocess import Preprocessor
from workbench.workspace import LAYOUT, Workspace

PACKAGE = Path(__file__).resolve().parents[2] / "workbench"


def test_every_kind_has_a_path_inside_the_workspace_and_unknown_kinds_are_refused(tmp_path):
    ws = Workspace(tmp_path / "ws")
    for kind in LAYOUT:
        assert ws.file(kind).resolve().is_relative_to(ws.path)
    assert ws.file("labels") == ws.path / "labels.db"
    with pytest.raises(WorkspaceError, match="known kinds"):
        ws.file("lables")


def test_save_then_load_gives_back_an_equal_object_for_every_json_kind(tmp_path):
    ws = Workspace(tmp_path / "ws")
    rng = np.random.default_rng(0)
    norm = Normalizer().fit(rng.integers(0, 256, size=(6, 3, 8, 8), dtype=np.uint8))
    pipe = Pipeline().add("RandomHorizontalFlip", p=0.3).add("ColorJitter", enabled=False)
    pre = Preprocessor().add("resize", size=32, mode="pad")
    for obj, kind in [(norm, "normalizer"), (pipe, "pipeline"), (pre, "preprocess")]:
        assert not ws.has(kind)
        path = ws.save(obj)
        assert path == ws.file(kind) and ws.has(kind)
        back = Workspace(ws.path, create=False).load(kind)
        assert type(back) is type(obj)
        assert back.to_dict() == obj.to_dict()


def test_load_of_a_missing_artifact_and_save_of_an_unknown_object_say_what_to_do(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(WorkspaceError, match="not in workspace"):
        ws.load("pipeline")
    with pytest.raises(WorkspaceError, match="run notebook 01"):
        ws.load("catalog")
    with pytest.raises(WorkspaceError, match="cannot save a dict"):
        ws.save({"a": 1})
    with pytest.raises(WorkspaceError, match="cannot load"):
        ws.load("thumbs")


def test_no_module_but_the_workspace_spells_a_workspace_file_name():
    names = {Path(p).name for p in LAYOUT.values()}
    names |= {re.sub(r"-v\d+", "", n) for n in names}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "workspace.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in names
                and "." in node.value
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    assert not offenders, "use workspace.file(kind) instead:\n" + "\n".join(offenders)
