import io
import itertools
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from corpus import encode
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from workbench import Catalog, Workspace
from workbench.clean import (
    CHECKS,
    Decisions,
    _near_pairs,
    check,
    find_issues,
    near_duplicate_pairs,
    suggested_exclusions,
)
from workbench.errors import ParameterError


def _photo(seed: int, size=(96, 96)) -> Image.Image:
    """A smooth random colour image with structure (not noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    a = np.asarray(im).astype(np.int16) + rng.integers(-6, 7, (size[1], size[0], 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """40 distinct photos plus one planted example of each problem."""
    root = tmp_path_factory.mktemp("planted")
    for i in range(40):
        (root / f"img_{i:02d}.png").write_bytes(encode(_photo(i), "PNG"))
    base = _photo(3)
    (root / "exact_copy.png").write_bytes(encode(base, "PNG"))
    buf = io.BytesIO()
    _photo(5).save(buf, "JPEG", quality=60)
    (root / "near_copy.jpg").write_bytes(buf.getvalue())
    big = _photo(7).resize((192, 192), Image.Resampling.BICUBIC)
    (root / "near_bigger.png").write_bytes(encode(big, "PNG"))
    png = encode(_photo(8), "PNG")
    (root / "corrupt.png").write_bytes(png[: len(png) // 3])
    (root / "blank.png").write_bytes(encode(Image.new("RGB", (96, 96), (0, 0, 0)), "PNG"))
    (root / "white.png").write_bytes(encode(Image.new("RGB", (96, 96), (252, 252, 252)), "PNG"))
    gray = _photo(9).convert("L").convert("RGB")
    (root / "gray_in_rgb.png").write_bytes(encode(gray, "PNG"))
    blurred = _photo(10).filter(ImageFilter.GaussianBlur(6))
    (root / "blurry.png").write_bytes(encode(blurred, "PNG"))
    (root / "tiny.png").write_bytes(encode(_photo(11, (12, 12)), "PNG"))
    (root / "panorama.png").write_bytes(encode(_photo(12, (300, 60)), "PNG"))
    stripes = np.zeros((96, 96, 3), dtype=np.uint8)
    stripes[:, ::12] = stripes[:, 1::12] = stripes[:, 2::12] = 255
    stripes[::12] = stripes[1::12] = stripes[2::12] = (255, 0, 255)
    (root / "stripes_outlier.png").write_bytes(encode(Image.fromarray(stripes), "PNG"))
    return root


def _flagged(report, issue):
    return set(report.flagged(issue)["id"])


def test_every_planted_problem_is_found(planted, tmp_path):
    cat = Catalog.from_folder(planted, progress=False)
    rep = check(cat, workspace=Workspace(tmp_path / "ws"), progress=False)
    assert set(rep.table.columns) == {"id", "issue", "score", "flagged", "group", "keeper"}
    assert rep.table["score"].between(0, 1).all()
    assert _flagged(rep, "unreadable") == {"corrupt.png"}
    assert _flagged(rep, "exact_duplicate") == {"img_03.png", "exact_copy.png"}
    near = rep.groups("near_duplicate")
    assert ["near_bigger.png", "img_07.png"] in near  # keeper first: the larger one
    assert any(set(g) == {"img_05.png", "near_copy.jpg"} for g in near)
    assert "blank.png" in _flagged(rep, "dark") and "blank.png" in _flagged(rep, "low_information")
    assert "white.png" in _flagged(rep, "bright")
    assert _flagged(rep, "grayscale_in_color") >= {"gray_in_rgb.png"}
    assert "blurry.png" in _flagged(rep, "blurry")
    assert "tiny.png" in _flagged(rep, "odd_size")
    assert _flagged(rep, "odd_aspect_ratio") == {"panorama.png"}
    assert "stripes_outlier.png" in _flagged(rep, "outlier")
    clean = {f"img_{i:02d}.png" for i in range(40)} - {"img_03.png", "img_05.png", "img_07.png"}
    for issue in ("dark", "bright", "blurry", "odd_size", "odd_aspect_ratio", "grayscale_in_color"):
        assert not (_flagged(rep, issue) & clean), issue
    s = rep.summary()
    assert list(s.index) == list(CHECKS) and s.loc["unreadable", "flagged"] == 1
    exact_keeper = rep.table[(rep.table["issue"] == "exact_duplicate") & rep.table["keeper"]]
    assert exact_keeper["id"].tolist() == ["exact_copy.png"]  # same size: first id
    assert set(suggested_exclusions(rep)) == {"corrupt.png", "img_03.png"}  # near: for review


def test_tiny_images_get_a_strict_near_duplicate_radius(tmp_path):
    for i in range(12):
        (tmp_path / f"{i}.png").write_bytes(encode(_photo(i, (28, 28)), "PNG"))
    cat = Catalog.from_folder(tmp_path, progress=False)
    rep = check(cat, progress=False, near_method="hash")  # "auto" takes embeddings this small
    assert rep.radius == 6
    rep = check(cat, progress=False, near_method="hash",
                thresholds={"near_duplicate": 1 - 20 / 128})  # fmt: skip
    assert rep.radius == 20


def test_duplicate_checks_alone_on_a_catalog_without_duplicates(tmp_path):
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes(encode(_photo(i, (64, 64)), "PNG"))
    rep = check(Catalog.from_folder(tmp_path, progress=False), progress=False,
                checks=["exact_duplicate", "near_duplicate"], near_method="hash")  # fmt: skip
    assert len(rep.table) == 0 and rep.summary()["flagged"].sum() == 0
    assert (rep.summary()["checked"] == len(rep.samples)).all() and len(rep.samples) > 0


def test_cache_only_processes_new_files(planted, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(planted, root)
    ws = Workspace(tmp_path / "ws")
    cat = Catalog.from_folder(root, progress=False)
    first = check(cat, workspace=ws, progress=False)
    assert first.computed == cat.ok.df["hash"].nunique() == len(cat) - 2  # a corrupt file, a twin
    for i in range(10):
        (root / f"new_{i}.png").write_bytes(encode(_photo(100 + i), "PNG"))
    again = check(Catalog.from_folder(root, progress=False), workspace=ws, progress=False)
    assert again.computed == 10
    dups = check(Catalog.from_folder(root, progress=False), workspace=ws, progress=False,
                 checks=["exact_duplicate", "near_duplicate"])  # fmt: skip
    assert dups.computed == 0  # full features cached: hashes are among them
    # scores are relative to the catalog: the cached run must equal a run with no cache at all
    fresh = check(Catalog.from_folder(root, progress=False), progress=False)
    for issue in ("dark", "bright", "blurry", "low_information"):
        a = fresh.table[fresh.table["issue"] == issue].set_index("id")["score"]
        b = again.table[again.table["issue"] == issue].set_index("id")["score"]
        pd.testing.assert_series_equal(a, b.reindex(a.index))


def test_duplicate_only_run_computes_hashes_then_a_full_run_completes(planted, tmp_path):
    ws = Workspace(tmp_path / "ws")
    cat = Catalog.from_folder(planted, progress=False)
    n = cat.ok.df["hash"].nunique()
    fast = check(cat, checks=["exact_duplicate", "near_duplicate"], workspace=ws, progress=False)
    assert fast.computed == n and set(fast.table["issue"]) == {"exact_duplicate", "near_duplicate"}
    full = check(cat, workspace=ws, progress=False)
    assert full.computed == n  # the hash-only rows are completed, not trusted
    assert check(cat, workspace=ws, progress=False).computed == 0
    assert fast.groups("near_duplicate") == full.groups("near_duplicate")


def test_scan_hashes_make_a_duplicate_check_decode_nothing(planted):
    plain = Catalog.from_folder(planted, progress=False)
    hashed = Catalog.from_folder(planted, progress=False, perceptual_hash=True)
    dups = ["exact_duplicate", "near_duplicate"]
    a, b = check(plain, checks=dups, progress=False), check(hashed, checks=dups, progress=False)
    assert a.computed == plain.ok.df["hash"].nunique() and b.computed == 0
    assert a.groups("near_duplicate") == b.groups("near_duplicate")
    pd.testing.assert_frame_equal(a.table, b.table)
    assert check(hashed, progress=False).computed == a.computed  # other checks still decode


def test_threshold_moves_flags_and_groups_live(planted):
    rep = check(Catalog.from_folder(planted, progress=False), progress=False)
    n = len(rep.flagged("near_duplicate"))
    groups = rep.groups("near_duplicate")
    rep.groups("near_duplicate")[0].append("changed by a caller")  # a copy: no effect
    assert rep.groups("near_duplicate") == groups
    rep.set_threshold("near_duplicate", 1.0)  # only identical hashes
    assert len(rep.flagged("near_duplicate")) < n
    assert sum(map(len, rep.groups("near_duplicate"))) < sum(map(len, groups))  # regrouped
    rep.set_threshold("near_duplicate", 1 - 20 / 128)
    assert len(rep.flagged("near_duplicate")) == n and rep.radius == 20
    assert rep.groups("near_duplicate") == groups
    rep.set_threshold("dark", 0.0)
    assert rep.flagged("dark")["id"].nunique() == 50  # every readable sample
    with pytest.raises(ParameterError):
        rep.set_threshold("dark", 1.5)
    with pytest.raises(ParameterError):
        rep.set_threshold("nope", 0.5)


def test_foreign_executor_same_result_and_find_issues(planted):
    cat = Catalog.from_folder(planted, progress=False)
    a = find_issues(cat, progress=False, workers=1)
    with ThreadPoolExecutor(2) as ex:
        b = find_issues(cat, progress=False, executor=ex)
    pd.testing.assert_frame_equal(a, b)
    only = find_issues(cat, checks=["dark"], progress=False)
    assert set(only["issue"]) == {"dark"}
    with pytest.raises(ParameterError, match="unknown checks"):
        check(cat, checks=["blurriness"])
    with pytest.raises(ParameterError):
        check(cat, thresholds={"dark": 2})


def _brute(content: pd.DataFrame, radius: int) -> set[tuple[str, str]]:
    ph = content["phash"].to_numpy(np.int64).view(np.uint64)
    dh = content["dhash"].to_numpy(np.int64).view(np.uint64)
    h = content["hash"].to_numpy()
    out = set()
    for i, j in itertools.combinations(range(len(h)), 2):
        d = int(np.bitwise_count(ph[i] ^ ph[j])) + int(np.bitwise_count(dh[i] ^ dh[j]))
        if d <= radius:
            out.add(tuple(sorted((h[i], h[j]))))
    return out


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 120),
    radius=st.integers(0, 30),
    seed=st.integers(0, 2**32 - 1),
    dup_keys=st.integers(0, 10),
)
def test_near_pairs_are_exactly_the_brute_force_pairs(n, radius, seed, dup_keys):
    rng = np.random.default_rng(seed)
    ph = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
    dh = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
    for k in range(1, n):  # plant near pairs and identical keys
        if rng.random() < 0.3:
            flips = rng.choice(64, int(rng.integers(0, 8)), replace=False)
            ph[k] = ph[k - 1] ^ int(sum(1 << int(b) for b in flips) & ((1 << 63) - 1))
            dh[k] = dh[k - 1] ^ (1 << int(rng.integers(0, 63)))
    for k in range(min(dup_keys, n - 1)):
        ph[k + 1], dh[k + 1] = ph[0], dh[0]
    content = pd.DataFrame({"hash": [f"h{i}" for i in range(n)], "phash": ph, "dhash": dh})
    got = _near_pairs(content, radius)
    found = {tuple(sorted(p)) for p in zip(got["a"], got["b"], strict=True)}
    assert found == _brute(content, radius)


def test_decisions_are_saved_and_reversible(planted, tmp_path):
    ws = Workspace(tmp_path / "ws")
    cat = Catalog.from_folder(planted, progress=False)
    d = Decisions(ws)
    d.exclude(["blank.png", "corrupt.png"], issue="dark")
    assert Decisions(ws).excluded == {"blank.png", "corrupt.png"}
    d.keep(["blank.png"])
    assert Decisions(ws).excluded == {"corrupt.png"}
    assert "corrupt.png" not in Decisions(ws).apply(cat)
    assert len(Decisions(ws).history()) == 3
    with pytest.raises(ParameterError):
        d.record(["x"], "delete")


def test_pairwise_view_includes_exact_twins(planted):
    rep = check(Catalog.from_folder(planted, progress=False), progress=False)
    p = near_duplicate_pairs(rep)
    pairs = set(zip(p["a"], p["b"], strict=True))
    assert ("exact_copy.png", "img_03.png") in pairs
    assert ("img_07.png", "near_bigger.png") in pairs


def _near_rows(rep):
    t = rep.table[rep.table["issue"] == "near_duplicate"]
    return t.set_index("id")


def test_a_pair_at_exactly_the_threshold_distance_is_flagged_and_grouped(planted):
    """Flagged means distance <= radius, and so does grouped: at every threshold a flagged
    near duplicate sits in a group, and a pair at exactly the radius shares one."""
    cat = Catalog.from_folder(planted, progress=False)
    rep = check(cat, progress=False, checks=["near_duplicate"])
    ids_of = rep.samples.groupby("hash")["id"].agg(list)
    distances = sorted(set(rep.pairs["distance"].astype(int)))
    assert len(distances) >= 3  # several radii to move through
    for d in distances:
        rep.set_threshold("near_duplicate", 1 - d / 128)
        assert rep.radius == d
        t = _near_rows(rep)
        assert (t["flagged"] == t["group"].notna()).all(), d
        for a, b in rep.pairs.loc[rep.pairs["distance"] == d, ["a", "b"]].itertuples(index=False):
            x, y = ids_of[a][0], ids_of[b][0]
            assert t.loc[x, "flagged"] and t.loc[y, "flagged"], (d, x, y)
            assert t.loc[x, "group"] == t.loc[y, "group"] is not None, (d, x, y)
        fresh = _near_rows(check(cat, progress=False, checks=["near_duplicate"],
                                 thresholds={"near_duplicate": 1 - d / 128}))  # fmt: skip
        pd.testing.assert_series_equal(fresh["flagged"], t["flagged"])
        assert (fresh["flagged"] == fresh["group"].notna()).all(), d


def test_near_pairs_include_a_pair_at_exactly_the_radius():
    base = np.int64(0x0F0F_0F0F_0F0F_0F0F)
    for d_p, d_d in [(0, 0), (3, 0), (0, 5), (4, 7), (12, 12)]:
        ph = np.array([base, base ^ ((1 << d_p) - 1)], dtype=np.int64)
        dh = np.array([base, base ^ (((1 << d_d) - 1) << 20)], dtype=np.int64)
        content = pd.DataFrame({"hash": ["h0", "h1"], "phash": ph, "dhash": dh})
        r = d_p + d_d
        got = _near_pairs(content, r)
        pairs = [(*sorted((a, b)), d) for a, b, d in got.itertuples(index=False)]
        assert pairs == [("h0", "h1", r)], (d_p, d_d)
        if r:
            assert len(_near_pairs(content, r - 1)) == 0


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """A catalog in manifest order (not sorted by id) with a missing file, a corrupt one and one
    that vanishes after the scan, ahead of most readable rows; returns (catalog, root)."""
    root = tmp_path_factory.mktemp("messy")
    names = [f"p{i:02d}.png" for i in range(24)]
    for i, n in enumerate(names):
        (root / n).write_bytes(encode(_photo(200 + i, (32, 32)), "PNG"))
    png = encode(_photo(300, (32, 32)), "PNG")
    (root / "corrupt.png").write_bytes(png[: len(png) // 3])
    order = ["p20.png", "nothere.png", "corrupt.png", "p05.png", "p23.png", "p17.png"]
    order += [n for n in reversed(names) if n not in order]
    cat = Catalog.from_dataframe(pd.DataFrame({"path": order}), root=root, progress=False)
    (root / "p17.png").unlink()  # scanned fine, gone now
    return cat, root


def test_outliers_from_user_embeddings_land_on_the_right_ids(messy):
    """Embeddings come in catalog order, one row per catalog row (unreadable rows included);
    the check maps them to the samples it scores, whatever the order and gaps."""
    cat, _ = messy
    ids = cat.ids
    assert ids[:3] == ["p20.png", "nothere.png", "corrupt.png"] and ids != sorted(ids)
    rng = np.random.default_rng(0)
    emb = rng.normal(0, 1, (len(cat), 8))
    far = "p09.png"  # after every gap in catalog order: a positional slip moves it
    emb[ids.index(far)] += 40
    rep = check(cat, checks=["unreadable", "outlier"], embeddings=emb, progress=False)
    assert _flagged(rep, "unreadable") == {"nothere.png", "corrupt.png", "p17.png"}
    out = rep.table[rep.table["issue"] == "outlier"].set_index("id")["score"]
    assert set(out.index) == set(ids) - {"nothere.png", "corrupt.png", "p17.png"}
    assert out.idxmax() == far and _flagged(rep, "outlier") == {far}
    by_size = cat.sort(["bytes", "id"])  # the same samples in another order, embeddings along
    perm = [ids.index(i) for i in by_size.ids]
    again = check(by_size, checks=["outlier"], embeddings=emb[perm], progress=False)
    s = again.table.set_index("id")["score"]
    pd.testing.assert_series_equal(s.reindex(out.index), out, check_exact=False, rtol=1e-5)
    with pytest.raises(ParameterError, match="embeddings have"):
        check(cat, checks=["outlier"], embeddings=emb[:-1], progress=False)


def test_a_file_that_vanished_after_the_scan_is_reported_unreadable(messy, tmp_path):
    cat, _ = messy
    rep = check(cat, progress=False, workspace=Workspace(tmp_path / "ws"))
    assert "p17.png" in _flagged(rep, "unreadable")
    others = rep.table[rep.table["issue"] != "unreadable"]
    assert "p17.png" not in set(others["id"])  # no scores from pixels it does not have
    assert "p17.png" in suggested_exclusions(rep)


def test_the_features_cache_is_the_workspace_file_named_for_its_version(planted, tmp_path):
    from workbench.clean import FEATURES_VERSION
    from workbench.workspace import LAYOUT

    assert LAYOUT["features"].endswith(f"features-v{FEATURES_VERSION}.parquet")
    ws = Workspace(tmp_path / "ws")
    check(Catalog.from_folder(planted, progress=False), workspace=ws, progress=False)
    cached = pd.read_parquet(ws.file("features"))
    assert len(cached) == Catalog.from_folder(planted, progress=False).ok.df["hash"].nunique()


def test_argument_messages_say_what_is_accepted(planted):
    cat = Catalog.from_folder(planted, progress=False)
    rep = check(cat, checks=["dark"], progress=False)
    with pytest.raises(ParameterError, match=r"^threshold for dark must be a finite number in \["):
        rep.set_threshold("dark", float("nan"))
    with pytest.raises(ParameterError, match=r"^issue must be one of 'dark', got 'blurry'"):
        rep.set_threshold("blurry", 0.5)  # not among this report's checks
    with pytest.raises(ParameterError, match=r"^search_radius must be an integer from 0 to 48"):
        check(cat, search_radius=20.5, progress=False)
    with pytest.raises(ParameterError, match=r"^k must be an integer >= 1, got 0"):
        check(cat, checks=["outlier"], k=0, progress=False)
    with pytest.raises(ParameterError, match=r"^threshold for dark must be .*got True"):
        check(cat, checks=["dark"], thresholds={"dark": True}, progress=False)


def test_a_cache_from_before_a_feature_existed_is_recomputed_not_misread(planted, tmp_path):
    ws = Workspace(tmp_path / "ws")
    cat = Catalog.from_folder(planted, progress=False)
    first = check(cat, workspace=ws, progress=False)
    old = pd.read_parquet(ws.file("features")).drop(columns="v01")  # as the previous version
    old.to_parquet(ws.file("features"), index=False)
    again = check(cat, workspace=ws, progress=False)
    assert again.computed == first.computed
    pd.testing.assert_frame_equal(again.table, first.table)
