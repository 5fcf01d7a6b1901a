"""CatalogDataset: targets like torchvision's ImageFolder, and clear errors when they cannot be."""

import numpy as np
import pandas as pd
import pytest
from corpus import encode
from PIL import Image

from workbench import Catalog
from workbench.errors import DecodeError, ParameterError, WorkbenchError
from workbench.torchdata import CatalogDataset


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("td")
    rng = np.random.default_rng(0)
    for i in range(6):
        a = rng.integers(0, 256, (8, 10 + i, 3), dtype=np.uint8)
        (root / f"{i}.png").write_bytes(encode(Image.fromarray(a), "PNG"))
    return root


def _catalog(root, labels, **columns) -> Catalog:
    df = pd.DataFrame({"path": [f"{i}.png" for i in range(len(labels))], "label": labels,
                       **columns})  # fmt: skip
    return Catalog.from_dataframe(df, root=root, progress=False)


def test_targets_follow_sorted_classes_or_the_given_order(root):
    cat = _catalog(root, ["dog", "cat", "dog", "bird", "cat", "dog"])
    ds = CatalogDataset(cat)
    assert ds.classes == ["bird", "cat", "dog"] and ds.targets == [2, 1, 2, 0, 1, 2]
    assert ds.class_to_idx == {"bird": 0, "cat": 1, "dog": 2}
    given = CatalogDataset(cat, classes=["dog", "cat", "bird", "fish"])
    assert given.targets == [0, 1, 0, 2, 1, 0] and given.classes[-1] == "fish"
    x, y = given[3]
    assert y == 2 and np.array_equal(np.asarray(x), np.asarray(cat.image("3.png")))
    assert len(ds) == 6 and ds.ids == cat.ids


def test_unlabeled_rows_are_refused_with_what_to_do(root):
    cat = _catalog(root, ["a", None, "b", None, "a", "b"])
    with pytest.raises(ParameterError, match=r"2 sample\(s\) have no 'label'") as e:
        CatalogDataset(cat)
    assert "filter" in str(e.value) and "target=None" in str(e.value)
    assert isinstance(e.value, WorkbenchError) and isinstance(e.value, ValueError)
    labelled = CatalogDataset(cat.filter("label.notna()"))
    assert labelled.targets == [0, 1, 0, 1]
    plain = CatalogDataset(cat, target=None)  # images only
    assert plain.targets is None and plain.classes == [] and isinstance(plain[1], Image.Image)


def test_unknown_classes_and_missing_target_column_are_refused(root):
    cat = _catalog(root, ["a", "b", "c", "a", "zebra", "b"], grade=[1, 2, 3, 1, 2, 3])
    with pytest.raises(ParameterError, match=r"\['c', 'zebra'\] are not in the given classes"):
        CatalogDataset(cat, classes=["a", "b"])
    with pytest.raises(ParameterError, match="no column 'species'"):
        CatalogDataset(cat, target="species")
    graded = CatalogDataset(cat, target="grade")  # any column: values become class names
    assert graded.classes == ["1", "2", "3"] and graded.targets == [0, 1, 2, 0, 1, 2]


def test_transform_and_16_bit_items(root, tmp_path):
    a16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    (tmp_path / "s.png").write_bytes(encode(Image.fromarray(a16), "PNG"))
    cat = Catalog.from_dataframe(pd.DataFrame({"path": ["s.png"], "label": ["x"]}),
                                 root=tmp_path, progress=False)  # fmt: skip
    x, y = CatalogDataset(cat, keep_16bit=True, transform=np.asarray)[0]
    assert y == 0 and x.dtype == np.uint16 and np.array_equal(x, a16)
    assert np.asarray(CatalogDataset(cat)[0][0]).dtype == np.uint8


def test_a_file_gone_since_the_scan_is_a_decode_error(root, tmp_path):
    import shutil

    shutil.copytree(root, tmp_path / "copy")
    cat = _catalog(tmp_path / "copy", ["a"] * 6)
    ds = CatalogDataset(cat)
    (tmp_path / "copy" / "4.png").unlink()
    with pytest.raises(DecodeError, match="not found") as e:
        ds[4]
    assert e.value.status == "missing"
    assert ds[5][1] == 0  # the other items still load


def test_a_file_gone_or_damaged_since_the_scan_is_named_with_what_to_do(root, tmp_path):
    import shutil

    shutil.copytree(root, tmp_path / "copy")
    cat = _catalog(tmp_path / "copy", ["a"] * 6)
    ds = CatalogDataset(cat)
    gone, damaged = tmp_path / "copy" / "4.png", tmp_path / "copy" / "2.png"
    gone.unlink()
    damaged.write_bytes(b"not an image any more")
    with pytest.raises(WorkbenchError) as e:
        ds[4]
    message = str(e.value)
    assert str(gone) in message and "sample '4.png'" in message and "re-scan" in message
    assert "file not found" in message and "Traceback" not in message
    with pytest.raises(DecodeError, match=r"2\.png.*re-scan") as e:
        ds[2]
    assert e.value.status == "not_image"  # the status of the underlying failure, kept
