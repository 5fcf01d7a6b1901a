import numpy as np
import pytest
from sklearn.datasets import load_digits

from workbench import Workspace, samples
from workbench.errors import WorkbenchError


def test_animals_are_real_files_with_ten_balanced_classes(tmp_path):
    ws = Workspace(tmp_path / "ws")
    cat = samples.load("animals", ws, progress=False)
    assert len(cat) == 10_000
    assert cat.summary()["labels"] == dict.fromkeys(sorted(samples.ANIMAL_CLASSES), 1000)
    assert set(cat.df["width"]) == {28} and (cat.df["status"] == "ok").all()
    before = sorted(p.stat().st_mtime_ns for p in (ws.images_dir / "animals").rglob("*.png"))[:5]
    samples.materialize("animals", ws)  # idempotent: nothing rewritten
    after = sorted(p.stat().st_mtime_ns for p in (ws.images_dir / "animals").rglob("*.png"))[:5]
    assert before == after
    assert not [p for p in ws.images_dir.iterdir() if p.name.startswith(".animals-")]
    assert not [p for p in ws.images_dir.iterdir() if p.name.startswith(".")]  # no temporary


def test_materialize_says_what_it_did(tmp_path, capsys):
    """The last line names the outcome: files written, or already present (not ``0it``)."""
    out = samples.materialize("photos", tmp_path)
    first = capsys.readouterr()
    n = len([p for p in out.iterdir() if not p.name.startswith(".")])
    assert f"photos: wrote {n:,} files to {out}" in first.out
    samples.materialize("photos", tmp_path)
    again = capsys.readouterr()
    assert again.out == f"photos: already present in {out}\n"
    assert "0it" not in again.out + again.err
    samples.materialize("photos", tmp_path, progress=False)
    assert capsys.readouterr() == ("", "")
    samples.main(["photos", "--dest", str(tmp_path / "ws")])
    assert capsys.readouterr().out.startswith("photos: wrote ")


def test_an_interrupted_older_folder_is_replaced_whole(tmp_path):
    stale = tmp_path / "photos"
    stale.mkdir()
    (stale / "half.png").write_bytes(b"")  # no marker: an interrupted run of an older layout
    out = samples.materialize("photos", tmp_path, progress=False)
    assert out == stale and not (out / "half.png").exists() and (out / "astronaut.png").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["photos"]


def test_digits_match_sklearn(tmp_path):
    cat = samples.load("digits", tmp_path, progress=False)
    d = load_digits()
    assert len(cat) == len(d.images) == 1797
    row = cat.df[cat.df["id"].str.endswith("digit_0005.png")].iloc[0]
    assert row["label"] == str(d.target[5])
    expected = np.round(d.images[5] * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(cat.array(row["id"]), expected)


def test_photos_are_colour_and_unlabeled(tmp_path):
    cat = samples.load("photos", tmp_path, progress=False)
    assert len(cat) >= 10
    assert set(cat.df["mode"]) == {"RGB"} and cat.df["label"].isna().all()
    assert cat.df["width"].min() >= 300


def test_unknown_sample_and_tampered_data(tmp_path, monkeypatch):
    with pytest.raises(WorkbenchError, match="unknown sample"):
        samples.materialize("nope", tmp_path)
    monkeypatch.setitem(samples._ANIMAL_FILES, "animal_data_version_3.gz", "0" * 64)
    with pytest.raises(WorkbenchError, match="sha256"):
        samples.materialize("animals", tmp_path / "t")
    assert not (tmp_path / "t" / "animals").exists()
