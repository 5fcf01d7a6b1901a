"""Offline expansion (``workbench.augment.expand``) and the core pieces the live preview uses.

expand: k files per readable image, a manifest that regenerates every file bit for bit, atomic
writes, resume after deletions and interruptions, parallel == serial. Preview support: per-step
random streams (``step_keys``), the step memo, ``downscale`` and ``pixel_scale_steps``.
"""

from __future__ import annotations

import multiprocessing
import random
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch
from corpus import encode
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

import workbench.augment.expansion as expansion
import workbench.augment.replay as replay
from workbench import Catalog, Workspace
from workbench.augment import (
    MANIFEST_COLUMNS,
    REGISTRY,
    Pipeline,
    copy_seed,
    downscale,
    expand,
    pipeline_fingerprint,
)
from workbench.errors import ParameterError
from workbench.io import decode


def _pipe() -> Pipeline:
    return (
        Pipeline()
        .add("RandomHorizontalFlip")
        .add("RandomRotation", degrees=25)
        .add("ColorJitter", brightness=0.4, saturation=0.4)
        .add("RandomErasing", p=0.5)
    )


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Catalog:
    """2 classes x 4 RGB images, one gray image, one broken file."""
    root = tmp_path_factory.mktemp("expand-src")
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir()
        for i in range(4):
            a = rng.integers(0, 256, (24 + i, 32, 3), dtype=np.uint8)
            (root / cls / f"{cls}{i}.png").write_bytes(encode(PIL.Image.fromarray(a), "PNG"))
    gray = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    (root / "dog" / "gray.jpg").write_bytes(encode(PIL.Image.fromarray(gray), "JPEG"))
    (root / "cat" / "broken.png").write_text("not an image")
    return Catalog.from_folder(root, progress=False)


def _manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / expansion.MANIFEST)


def _stats(out: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(out).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in out.rglob("*.png")
    }


@pytest.fixture
def count_writes(monkeypatch):
    """Count calls of the per-file worker (expand runs it in-process for small inputs)."""
    calls: list[str] = []
    real = expansion._expand_one

    def counting(pipeline_json, backend, task):
        calls.append(task[1])
        return real(pipeline_json, backend, task)

    monkeypatch.setattr(expansion, "_expand_one", counting)
    return calls


# ------------------------------------------------------------------------------ expand


def test_expand_writes_copies_a_manifest_and_a_labelled_catalog(sources, tmp_path):
    out = tmp_path / "aug"
    result = expand(sources, _pipe(), copies=2, out=out, seed=3, progress=False)
    ok = sources.df[sources.df["status"] == "ok"]
    assert len(result) == 2 * len(ok) == 18
    assert result.df.attrs["written"] == 18 and result.df.attrs["skipped"] == 0
    assert result.root == out
    # labels of the sources, kept per copy; ids keep the class folders
    by_source = dict(zip(ok["id"], ok["label"].astype(str), strict=True))
    assert [by_source[s] for s in result.df["source_id"]] == result.df["label"].astype(str).tolist()
    assert result.df["id"].tolist()[:2] == ["cat/cat0_aug0.png", "cat/cat0_aug1.png"]
    assert set(result.df["copy"]) == {0, 1}
    assert result.classes == ["cat", "dog"]
    # the manifest lists every file with its source, copy and seed
    m = _manifest(out)
    assert tuple(m.columns) == MANIFEST_COLUMNS and len(m) == 18
    assert sorted(m["path"]) == sorted(result.df["id"])
    assert all((out / p).is_file() for p in m["path"])
    assert (
        m["seed"] == [copy_seed(3, s, c) for s, c in zip(m["source_id"], m["copy"], strict=True)]
    ).all()
    assert (out / "pipelines" / f"{pipeline_fingerprint(_pipe())}.json").is_file()
    # scan columns computed while writing equal a fresh scan of the files
    scanned = Catalog.from_folder(out, progress=False).df.set_index("id")
    cols = ["width", "height", "mode", "channels", "bytes", "hash", "format"]
    mine = result.df.set_index("id")[cols].astype(str)
    assert mine.sort_index().equals(scanned.loc[mine.index, cols].astype(str).sort_index())
    # the catalog works like any other, e.g. for training
    ds = result.to_torch()
    assert len(ds) == 18 and ds.classes == ["cat", "dog"]


@pytest.mark.parametrize("backend", ["pil", "tensor"])
def test_every_file_regenerates_bit_for_bit_from_its_manifest_row(sources, tmp_path, backend):
    out = tmp_path / "aug"
    expand(sources, _pipe(), copies=2, out=out, seed=11, progress=False, backend=backend)
    m = _manifest(out)
    assert set(m["backend"]) == {backend}
    for row in m.itertuples():
        pipe = Pipeline.from_json((out / "pipelines" / f"{row.pipeline}.json").read_text())
        source = sources.image(row.source_id)
        again = pipe.apply(source, seed=int(row.seed), backend=row.backend)
        assert np.array_equal(np.asarray(again), np.asarray(decode(out / row.path)))
        assert again.mode == row.mode
        if backend == "pil":  # what the training transform draws for this seed
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(row.seed))
                trained = pipe.to_torchvision()(source)
            assert np.array_equal(np.asarray(trained), np.asarray(again))


def test_seeds_do_not_depend_on_order_or_subset(sources, tmp_path):
    full = expand(sources, _pipe(), copies=2, out=tmp_path / "a", progress=False)
    subset = sources.filter(sources.df["id"].isin(["dog/dog3.png", "cat/cat1.png"]))
    part = expand(subset.sort("id", ascending=False), _pipe(), 2, tmp_path / "b", progress=False)
    a = full.df.set_index("id")
    b = part.df.set_index("id")
    assert len(b) == 4
    assert (a.loc[b.index, "seed"] == b["seed"]).all()
    assert (a.loc[b.index, "hash"] == b["hash"]).all()


def test_rerun_skips_files_that_are_present_and_listed(sources, tmp_path, count_writes):
    out = tmp_path / "aug"
    expand(sources, _pipe(), copies=2, out=out, progress=False)
    assert len(count_writes) == 18
    before = _stats(out)
    again = expand(sources, _pipe(), copies=2, out=out, progress=False)
    assert len(count_writes) == 18  # nothing written
    assert again.df.attrs == {**again.df.attrs, "written": 0, "skipped": 18}
    assert _stats(out) == before
    assert len(_manifest(out)) == 18


def test_rerun_writes_only_the_deleted_and_damaged_files(sources, tmp_path, count_writes):
    out = tmp_path / "aug"
    expand(sources, _pipe(), copies=2, out=out, progress=False)
    m = _manifest(out)
    deleted = m["path"].iloc[[0, 5, 9]].tolist()
    for p in deleted:
        (out / p).unlink()
    damaged = m["path"].iloc[12]
    (out / damaged).write_bytes((out / damaged).read_bytes()[:40])  # truncated in place
    before = {k: v for k, v in _stats(out).items() if k != damaged}
    count_writes.clear()

    result = expand(sources, _pipe(), copies=2, out=out, progress=False)
    written = sorted(Path(p).relative_to(out).as_posix() for p in count_writes)
    assert written == sorted([*deleted, damaged])
    assert result.df.attrs["written"] == 4 and result.df.attrs["skipped"] == 14
    after = _stats(out)
    assert {k: after[k] for k in before} == before  # the others were not touched
    m2 = _manifest(out).set_index("path")
    assert len(m2) == 18 and (m2["hash"] == m.set_index("path")["hash"]).all()


def test_interrupted_run_leaves_no_partial_files_and_resumes(sources, tmp_path, monkeypatch):
    out = tmp_path / "aug"
    real = expansion._expand_one
    calls: list[str] = []

    def interrupted(pipeline_json, backend, task):
        if len(calls) == 7:
            raise KeyboardInterrupt  # as if the user pressed "interrupt kernel"
        calls.append(task[1])
        return real(pipeline_json, backend, task)

    monkeypatch.setattr(expansion, "_expand_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        expand(sources, _pipe(), copies=2, out=out, batch_size=3, progress=False)
    # two batches of 3 were checkpointed; the 7th file exists but is not listed yet
    listed = _manifest(out)["path"].tolist()
    assert len(listed) == 6 and all((out / p).is_file() for p in listed)
    assert not list(out.rglob("*.tmp"))
    stats = _stats(out)

    resumed: list[str] = []

    def counting(pipeline_json, backend, task):
        resumed.append(task[1])
        return real(pipeline_json, backend, task)

    monkeypatch.setattr(expansion, "_expand_one", counting)
    result = expand(sources, _pipe(), copies=2, out=out, batch_size=3, progress=False)
    assert len(resumed) == 18 - 6 and not {str(out / p) for p in listed} & set(resumed)
    assert all(_stats(out)[p] == stats[p] for p in listed)
    assert len(result) == len(_manifest(out)) == 18
    fresh = expand(sources, _pipe(), copies=2, out=tmp_path / "fresh", progress=False)
    assert result.df["hash"].tolist() == fresh.df["hash"].tolist()


def test_a_failing_write_leaves_neither_the_file_nor_a_temp_file(sources, tmp_path, monkeypatch):
    out = tmp_path / "aug"
    real_save = PIL.Image.Image.save

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(PIL.Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        expand(sources, _pipe(), copies=1, out=out, progress=False)
    assert not list(out.rglob("*.png")) and not list(out.rglob("*.tmp"))
    monkeypatch.setattr(PIL.Image.Image, "save", real_save)
    # a temp file left by a killed run (no clean-up ran) is removed by the next run
    (out / "cat").mkdir(exist_ok=True)
    leftover = out / "cat" / ".cat0_aug0.png.x1y2.tmp"
    leftover.write_bytes(b"half")
    expand(sources, _pipe(), copies=1, out=out, progress=False)
    assert not leftover.exists() and len(list(out.rglob("*.png"))) == 9


def test_other_seed_pipeline_or_source_content_is_written_again(sources, tmp_path, count_writes):
    out = tmp_path / "aug"
    expand(sources, _pipe(), copies=1, out=out, seed=0, progress=False)
    count_writes.clear()
    expand(sources, _pipe(), copies=1, out=out, seed=1, progress=False)
    assert len(count_writes) == 9
    count_writes.clear()
    other = _pipe().add("RandomGrayscale", p=0.5)
    result = expand(sources, other, copies=1, out=out, seed=1, progress=False)
    assert len(count_writes) == 9
    assert set(_manifest(out)["pipeline"]) == {pipeline_fingerprint(other)}
    assert len(list((out / "pipelines").glob("*.json"))) == 2
    # a source whose pixels changed (new hash in the catalog) gets new files
    changed = sources.df.copy()
    changed.loc[changed["id"] == "cat/cat0.png", "hash"] = "0" * 32
    count_writes.clear()
    expand(Catalog(changed, sources.root), other, copies=1, out=out, seed=1, progress=False)
    assert len(count_writes) == 1
    assert len(result) == 9
    count_writes.clear()
    expand(sources, other, copies=1, out=out, seed=1, progress=False, backend="tensor")
    assert len(count_writes) == 9


def test_earlier_rows_outside_this_plan_stay_listed(sources, tmp_path):
    out = tmp_path / "aug"
    expand(sources, _pipe(), copies=2, out=out, progress=False)
    cats = sources.filter("label == 'cat'")
    result = expand(cats, _pipe(), copies=1, out=out, progress=False)
    assert len(result) == 4  # the catalog describes this call
    assert len(_manifest(out)) == 18  # the manifest describes the folder


def test_expand_leaves_the_callers_random_state_alone(sources, tmp_path):
    torch.manual_seed(123)
    random.seed(5)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    threads = torch.get_num_threads()
    expand(sources, _pipe(), copies=2, out=tmp_path / "a", workers=1, progress=False)
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == py_state
    assert torch.get_num_threads() == threads


@pytest.mark.timeout(180)  # a lock held across the pool would hang here
def test_parallel_executors_give_the_same_files(sources, tmp_path):
    serial = expand(sources, _pipe(), copies=2, out=tmp_path / "s", workers=1, progress=False)
    with ThreadPoolExecutor(2) as ex:  # threads share torch's generator: replay is locked
        threaded = expand(
            sources, _pipe(), copies=2, out=tmp_path / "t", executor=ex, progress=False
        )
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        forked = expand(sources, _pipe(), copies=2, out=tmp_path / "p", executor=ex, progress=False)
    assert serial.df["hash"].tolist() == threaded.df["hash"].tolist()
    assert serial.df["hash"].tolist() == forked.df["hash"].tolist()
    assert forked.df["bytes"].tolist() == serial.df["bytes"].tolist()


def test_workspace_output_and_bad_arguments(sources, tmp_path):
    ws = Workspace(tmp_path / "ws")
    result = expand(sources, _pipe(), out=ws, progress=False)
    assert result.root == ws.path / "augmented" and len(result) == 9
    assert result.thumbs is ws.thumbs
    for kwargs, match in [
        ({"copies": 0, "out": tmp_path}, "copies"),
        ({"out": None}, "out="),
        ({"out": tmp_path, "seed": -1}, "seed"),
        ({"out": tmp_path, "batch_size": 0}, "batch_size"),
        ({"out": tmp_path, "backend": "gpu"}, "backend"),
    ]:
        with pytest.raises(ParameterError, match=match):
            expand(sources, _pipe(), **kwargs)
    bad = _pipe()
    bad.steps[1].params["degrees"] = (30.0, -30.0)  # edited by hand: min > max
    with pytest.raises(ParameterError, match="step 1"):
        expand(sources, bad, out=tmp_path / "bad", progress=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.from_regex(r"(/?[a-z.]{1,3}/){0,2}[a-zA-Z0-9_. ]{1,8}(\.png|\.jpg|)", fullmatch=True),
        min_size=1,
        max_size=12,
        unique=True,
    ),
    st.integers(1, 3),
)
def test_output_names_are_unique_and_stay_inside(ids, copies):
    names = [n for row in expansion._output_names(ids, copies) for n in row]
    assert len(set(names)) == len(names) == len(ids) * copies
    for n in names:
        assert not n.startswith("/") and ".." not in n.split("/") and n.endswith(".png")


# ------------------------------------------------------------------------------ core additions


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_pil_backend_replays_torchvisions_pil_path(name):
    spec = REGISTRY[name]
    params = {"size": 40 if name == "Resize" else (40, 56)} if "size" in spec.param_names else {}
    pipe = Pipeline().add(name, **params)
    rgb = PIL.Image.fromarray(_image().permute(1, 2, 0).numpy())
    for image in (rgb, rgb.convert("L")):
        for seed in (0, 1):
            out = pipe.apply(image, seed, backend="pil")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                ref = pipe.to_torchvision()(image)
            if not isinstance(ref, PIL.Image.Image):  # a float step returns a tensor
                ref = F.to_pil_image(ref.as_subclass(torch.Tensor))
            assert isinstance(out, PIL.Image.Image) and out.mode == ref.mode
            assert np.array_equal(np.asarray(out), np.asarray(ref))
    with pytest.raises(ParameterError, match="backend"):
        pipe.apply(rgb, 0, backend="numpy")


def _image() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8, generator=g)


def test_step_keys_give_each_step_its_own_stream():
    pipe = Pipeline().add("RandomRotation", degrees=40).add("ColorJitter", brightness=0.8)
    keys = [7, 8]
    img = _image()
    full = pipe.apply(img, 5, step_keys=keys)
    assert torch.equal(full, pipe.apply(img, 5, step_keys=keys))
    # without the jitter, the rotation is the same draw as the rotation alone
    no_jitter = pipe.copy()
    no_jitter.enable(1, False)
    alone = pipe.only(0).apply(img, 5, step_keys=[7])
    assert torch.equal(no_jitter.apply(img, 5, step_keys=keys), alone)
    # the default stays one stream, as torchvision draws it
    assert not torch.equal(pipe.apply(img, 5), full)
    with pytest.raises(ParameterError, match="step_keys"):
        pipe.apply(img, 5, step_keys=[1])


def test_step_memo_recomputes_from_the_first_changed_step_only(monkeypatch):
    pipe = Pipeline().add("RandomRotation").add("ColorJitter").add("RandomErasing", p=1.0)
    img = _image()
    memo: dict = {}
    first = pipe.replayer(step_keys=[0, 1, 2])(img, 9, memo=memo)
    assert len(memo["outs"]) == 3
    pipe.set_param(1, "contrast", (0.2, 0.3))
    runs: list[str] = []
    real = replay.step_seed
    monkeypatch.setattr(replay, "step_seed", lambda s, k: runs.append(k) or real(s, k))
    again = pipe.replayer(step_keys=[0, 1, 2])(img, 9, memo=memo)
    # the rotation came from the memo; the erasing kept its draw (its input's size is the same)
    assert runs == [1]
    assert torch.equal(again, pipe.apply(img, 9, step_keys=[0, 1, 2]))
    assert not torch.equal(again, first)
    runs.clear()
    pipe.replayer(step_keys=[0, 1, 2])(img, 10, memo=memo)  # another seed: all recomputed
    assert runs == [0, 1, 2]
    with pytest.raises(ParameterError, match="step_keys"):
        pipe.replayer()(img, 9, memo={})


def test_a_replay_like_an_earlier_one_reuses_the_unchanged_transforms():
    pipe = Pipeline().add("RandomRotation").add("ColorJitter", brightness=0.4).add("RandomErasing")
    img = _image()
    first = pipe.replayer(step_keys=[0, 1, 2])
    first(img, 3)
    pipe.set_param(1, "brightness", (0.5, 1.5))
    fresh = pipe.replayer(step_keys=[0, 1, 2])
    like = replay.Replay(pipe, step_keys=[0, 1, 2], like=first)
    for seed in range(8):
        assert torch.equal(like(img, seed), fresh(img, seed))
    old, new = first._build(False), like._build(False)
    assert [a[1] is b[1] for a, b in zip(old, new, strict=True)] == [True, False, True]
    assert tuple(new[1][1].brightness) == (0.5, 1.5)


def _by_torchvision(pipe: Pipeline, sample, seed: int, keys: list[int]):
    """The per-step replay done by torchvision alone: each step's module after seeding torch
    with that step's stream (what ``step_keys`` documents)."""
    modules = pipe.to_torchvision().transforms
    enabled = [k for k, s in zip(keys, pipe.steps, strict=True) if s.enabled]
    for key, module in zip(enabled, modules, strict=True):
        torch.manual_seed(replay.step_seed(seed, key))
        sample = module(sample)
    return sample


def _same(a, b) -> bool:
    if isinstance(a, PIL.Image.Image):
        return a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))
    return torch.equal(a, b)


@pytest.fixture
def one_thread():
    # tiny convolutions split over the cores of a busy machine take 100x longer (GaussianBlur)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("backend", ["pil", "tensor"])
def test_kept_draws_give_torchvisions_pixels_while_an_earlier_step_moves(backend, one_thread):
    # every class whose draw the memo keeps, after a step that changes its input every time
    pipe = (
        Pipeline()
        .add("RandomHorizontalFlip")
        .add("RandomAffine", degrees=(-15, 15), translate_x=0.1, translate_y=0.1, scale=(0.9, 1.1))
        .add("RandomResizedCrop", size=(24, 20))
        .add("RandomPerspective", distortion_scale=0.2, p=0.5)
        .add("RandomErasing", scale=(0.02, 0.1), p=0.5)
        .add("RandomVerticalFlip")
        .add("RandomRotation", degrees=20)
        .add("ColorJitter", brightness=0.5, saturation=0.5)
        .add("GaussianBlur")
        .add("RandomGrayscale", p=0.5)
    )
    assert {type(m) for m in pipe.to_torchvision().transforms} <= set(replay._SIZE_ONLY_DRAWS)
    keys = list(range(10, 10 + len(pipe)))
    rgb = PIL.Image.fromarray(_image().permute(1, 2, 0).numpy())
    for img in (rgb, rgb.convert("L")):
        memos: dict[int, dict] = {}
        # the affine's upper degrees handle moved and back; the crop's size changes the size of
        # the later steps' input (their kept draws are for the old size)
        for upper, size in ((15, (24, 20)), (16, (24, 20)), (16, (20, 24)), (15, (24, 20))):
            pipe.set_param(1, "degrees", (-15, upper))
            pipe.set_param(2, "size", size)
            rep = pipe.replayer(step_keys=keys, backend=backend)
            with rep.batch():
                for seed in range(16):
                    memo = memos.setdefault(seed, {})
                    out = rep(img, seed, memo=memo)
                    ref = img if backend == "pil" else F.pil_to_tensor(img).contiguous()
                    want = _by_torchvision(pipe, ref, seed, keys)
                    if not isinstance(want, PIL.Image.Image):  # a PIL sample comes back as PIL
                        want = F.to_pil_image(want)
                    assert _same(out, want), (img.mode, upper, seed)
                    assert _same(out, rep(img, seed))  # no memo: the modules' own forward
        assert all(len(m["draws"]) == len(pipe) for m in memos.values())  # every draw kept


def test_downscale_keeps_boxes_and_masks_with_the_pixels():
    img = PIL.Image.new("RGB", (400, 200))
    assert downscale(img, 100).size == (100, 50)
    assert downscale(img, 500) is img
    boxes = tv_tensors.BoundingBoxes([[40, 20, 200, 100]], format="XYXY", canvas_size=(200, 400))
    mask = torch.zeros(200, 400, dtype=torch.uint8)
    mask[20:100, 40:200] = 3
    out = downscale({"image": img, "boxes": boxes, "masks": mask, "labels": torch.tensor([1])}, 100)
    assert out["image"].size == (100, 50)
    assert out["boxes"].canvas_size == (50, 100)
    assert out["boxes"].tolist() == [[10.0, 5.0, 50.0, 25.0]]
    assert type(out["masks"]) is torch.Tensor and out["masks"].shape == (50, 100)
    assert set(out["masks"].unique().tolist()) == {0, 3}  # nearest: no blended class ids
    with pytest.raises(ParameterError):
        downscale(img, 1)


def test_pixel_scale_steps_name_the_steps_that_work_in_pixels():
    pipe = Pipeline().add("RandomHorizontalFlip").add("ColorJitter").add("RandomAffine")
    assert pipe.pixel_scale_steps == []
    pipe.add("GaussianBlur").add("Resize", enabled=False)
    assert pipe.pixel_scale_steps == ["GaussianBlur"]
    relative = {n for n, s in REGISTRY.items() if not s.pixel_scale}
    assert {"RandomRotation", "RandomPerspective", "RandomErasing", "RandomZoomOut"} <= relative


def test_manifest_is_written_as_pandas_writes_it(tmp_path: Path) -> None:
    # The csv-module writer must give pandas' to_csv bytes, for fresh rows (None) and for rows
    # read back from a manifest (NaN), including quoting.
    import pandas as pd

    from workbench.augment.expansion import (
        MANIFEST_COLUMNS,
        _manifest_lines,
        _read_manifest,
        _write_manifest,
    )

    row = {
        **dict.fromkeys(MANIFEST_COLUMNS, None),
        "width": 28,
        "height": 28,
        "mode": "L",
        "channels": 1,
        "bits": 8,
        "bytes": 300,
        "format": "PNG",
        "pipeline": "f",
        "copy": 0,
    }
    rows = [
        {**row, "path": "a/b_aug0.png", "seed": 2**62 + 5, "hash": "h,1", "source_id": "a/b"},
        {**row, "path": 'q"x.png', "copy": 1, "seed": 7, "label": "cat", "split": "train"},
    ]  # fmt: skip
    _write_manifest(tmp_path / "m.csv", _manifest_lines([{**r, "_src": "ignored"} for r in rows]))
    expected = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).to_csv(index=False)
    assert (tmp_path / "m.csv").read_text() == expected
    back = list(_read_manifest(tmp_path / "m.csv").values())
    _write_manifest(tmp_path / "m2.csv", _manifest_lines(back))
    expected = pd.DataFrame(back, columns=list(MANIFEST_COLUMNS)).to_csv(index=False)
    assert (tmp_path / "m2.csv").read_text() == expected
