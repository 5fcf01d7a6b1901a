"""Tests for workbench.augment: registry, editing, validation, JSON, code export, seeded replay."""

from __future__ import annotations

import inspect
import json
import random

import numpy as np
import PIL.Image
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from workbench.augment import (
    REGISTRY,
    ParamSpec,
    Pipeline,
    Replay,
    Step,
    controls,
    convert_sample,
    draw_boxes,
    mask_outline,
    variant_seeds,
)
from workbench.errors import ParameterError, WorkbenchError

# JPEG goes through torchvision.io.encode_jpeg, which torchvision 0.29 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")

W, H = 64, 48
NAMES = sorted(REGISTRY)
BOX_SAFE = [n for n in NAMES if not REGISTRY[n].image_only]
IMAGE_ONLY = [n for n in NAMES if REGISTRY[n].image_only]
GEOMETRIC = [n for n in BOX_SAFE if REGISTRY[n].geometric]
FAST = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_image() -> torch.Tensor:
    """A 3x48x64 uint8 image: channel 0 is two-valued (30/220) blobs, 1 and 2 are gradients."""
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    blob = ((xx - 20) ** 2 / 200 + (yy - 18) ** 2 / 80 < 1) | ((xx > 40) & (yy > 25) & (yy < 44))
    gen = torch.Generator().manual_seed(0)
    c0 = torch.where(blob, 220, 30)
    c1 = 40 + xx * 2
    c2 = 60 + yy * 2 + torch.randint(0, 20, (H, W), generator=gen)
    return torch.stack([c0, c1, c2]).to(torch.uint8)


IMG = make_image()
BLOB = IMG[0] > 128


def small(name: str, **params: object) -> Pipeline:
    """One-step pipeline with small output sizes; p < 1 so RandomApply / own-p paths run."""
    spec = REGISTRY[name]
    if "size" in spec.param_names and "size" not in params:
        params["size"] = 40 if name == "Resize" else (40, 56)
    p = 0.5 if spec.has_p else 0.7
    return Pipeline().add(name, p=p, **params)


def run_seeded(transform: v2.Transform, sample: object, seed: int) -> object:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transform(sample)


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------


REQUIRED = {
    "RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation", "RandomAffine",
    "RandomResizedCrop", "RandomCrop", "Resize", "RandomPerspective", "ElasticTransform",
    "ColorJitter", "RandomGrayscale", "GaussianBlur", "GaussianNoise", "RandomInvert",
    "RandomPosterize", "RandomSolarize", "RandomAdjustSharpness", "RandomAutocontrast",
    "RandomEqualize", "RandomErasing", "JPEG", "AutoAugment", "RandAugment",
    "TrivialAugmentWide", "AugMix",
}  # fmt: skip


def test_registry_covers_required_transforms() -> None:
    assert set(REGISTRY) >= REQUIRED
    assert set(IMAGE_ONLY) == {"AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix"}


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_is_consistent(name: str) -> None:
    spec = REGISTRY[name]
    assert hasattr(v2, name)
    assert "p" not in spec.param_names
    # has_p matches the real constructor
    assert ("p" in inspect.signature(getattr(v2, name)).parameters) == spec.has_p
    for ps in spec.params:
        assert ps.kind in {"float", "int", "range", "choice", "bool", "size"}
        if ps.kind == "choice":
            assert ps.default in ps.choices
    Pipeline().add(name).validate()  # defaults are valid


# ----------------------------------------------------------------------------------------------
# Per-transform: JSON, code export, determinism, RNG isolation
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_json_round_trip_gives_identical_outputs(name: str) -> None:
    pipe = small(name)
    text = pipe.to_json()
    back = Pipeline.from_json(text)
    assert back == pipe
    assert back.to_json() == text
    for seed in range(3):
        assert torch.equal(back.apply(IMG, seed), pipe.apply(IMG, seed))


def test_json_and_dict_round_trips_keep_disabled_steps_disabled() -> None:
    pipe = (
        Pipeline()
        .add("RandomHorizontalFlip", p=1.0)
        .add("ColorJitter", brightness=0.9, enabled=False)
        .add("RandomInvert", p=1.0, enabled=False)
    )
    for back in (Pipeline.from_json(pipe.to_json()), Pipeline.from_dict(pipe.to_dict())):
        assert [s.enabled for s in back] == [True, False, False]
        assert back == pipe
        assert torch.equal(back.apply(IMG, 0), F.horizontal_flip(IMG))  # only the flip runs
    # a step written without "enabled" (hand-written JSON) is enabled
    data = pipe.to_dict()
    del data["steps"][1]["enabled"]
    assert [s.enabled for s in Pipeline.from_dict(data)] == [True, True, False]


@pytest.mark.parametrize("name", NAMES)
def test_to_code_builds_the_same_transform(name: str) -> None:
    pipe = small(name)
    namespace: dict[str, object] = {}
    exec(pipe.to_code(), namespace)
    from_code = namespace["transform"]
    from_tv = pipe.to_torchvision()
    assert isinstance(from_code, v2.Compose)
    image = tv_tensors.Image(IMG)
    for seed in range(3):
        expected = run_seeded(from_tv, image, seed)
        assert torch.equal(run_seeded(from_code, image, seed), expected)
        # apply() replays exactly what the exported transform does
        assert torch.equal(pipe.apply(image, seed), expected)


@pytest.mark.parametrize("name", NAMES)
def test_seeded_replay_is_deterministic(name: str) -> None:
    pipe = small(name)
    assert torch.equal(pipe.apply(IMG, 11), pipe.apply(IMG, 11))
    if REGISTRY[name].random:
        outs = [pipe.apply(IMG, s) for s in range(8)]
        assert any(not torch.equal(outs[0], o) for o in outs[1:]), "seeds never change the output"


@pytest.mark.parametrize("name", NAMES)
def test_apply_leaves_global_rng_untouched(name: str) -> None:
    torch.manual_seed(1234)
    random.seed(99)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    small(name).apply(IMG, 5)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state


@pytest.mark.parametrize("name", NAMES)
def test_apply_does_not_depend_on_python_random_state(name: str) -> None:
    # A replay seeds torch's generator only: a transform drawing from Python's random would
    # make the same seed give different outputs here.
    pipe = small(name)
    outs = []
    for state in (1, 2):
        random.seed(state)
        outs.append((pipe.apply(IMG, 21), pipe.apply(F.to_pil_image(IMG), 21)))
    assert torch.equal(outs[0][0], outs[1][0])
    assert np.array_equal(np.asarray(outs[0][1]), np.asarray(outs[1][1]))


@pytest.mark.parametrize("name", NAMES)
def test_the_guarded_image_replay_gives_what_apply_gives(name: str) -> None:
    # Inside the RNG guard and the warnings filter (as expand runs), a PIL image on its own
    # takes the replay's short path: the same pixels as Pipeline.apply's general path.
    from workbench.augment.replay import _quiet_replays, _rng_guard

    pipe = small(name).add("ColorJitter", brightness=0.5)
    pil = F.to_pil_image(IMG)
    for backend in ("pil", "tensor"):
        replay = pipe.replayer(backend=backend)
        want = [np.asarray(pipe.apply(im, s, backend=backend)) for im in (pil, pil.convert("L"))
                for s in (1, 2, 3)]  # fmt: skip
        with _rng_guard(), _quiet_replays():
            got = [np.asarray(replay(im, s)) for im in (pil, pil.convert("L")) for s in (1, 2, 3)]
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)), backend


@pytest.mark.parametrize("name", NAMES)
def test_uint8_in_uint8_out_and_pil_in_pil_out(name: str) -> None:
    pipe = small(name)
    out = pipe.apply(IMG, 3)
    assert out.dtype == torch.uint8 and type(out) is torch.Tensor
    pil = F.to_pil_image(IMG)
    pil_out = pipe.apply(pil, 3)
    assert isinstance(pil_out, PIL.Image.Image) and pil_out.mode == "RGB"
    assert np.array_equal(np.asarray(pil_out), out.permute(1, 2, 0).numpy())
    gray = pipe.apply(pil.convert("L"), 3)
    assert isinstance(gray, PIL.Image.Image) and gray.mode == "L"


# ----------------------------------------------------------------------------------------------
# Boxes and masks
# ----------------------------------------------------------------------------------------------


@st.composite
def box_samples(draw: st.DrawFn) -> tuple[tv_tensors.BoundingBoxes, torch.Tensor]:
    n = draw(st.integers(0, 5))
    fmt = draw(st.sampled_from(["XYXY", "XYWH"]))
    rows = []
    for _ in range(n):
        x0 = draw(st.floats(0, W - 2))
        y0 = draw(st.floats(0, H - 2))
        x1 = draw(st.floats(x0 + 1, W))
        y1 = draw(st.floats(y0 + 1, H))
        rows.append([x0, y0, x1, y1] if fmt == "XYXY" else [x0, y0, x1 - x0, y1 - y0])
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor(rows, dtype=torch.float32).reshape(-1, 4), format=fmt, canvas_size=(H, W)
    )
    return boxes, torch.arange(n)


@pytest.mark.parametrize("name", BOX_SAFE)
@FAST
@given(sample=box_samples(), seed=st.integers(0, 2**32 - 1))
def test_boxes_stay_inside_the_canvas(
    name: str, sample: tuple[tv_tensors.BoundingBoxes, torch.Tensor], seed: int
) -> None:
    boxes, labels = sample
    masks = tv_tensors.Mask(torch.zeros(len(boxes), H, W, dtype=torch.uint8))
    out = small(name).apply({"image": IMG, "boxes": boxes, "masks": masks, "labels": labels}, seed)
    h, w = out["image"].shape[-2:]
    assert tuple(out["boxes"].canvas_size) == (h, w)
    assert out["boxes"].format == boxes.format
    xyxy = F.convert_bounding_box_format(out["boxes"], new_format="XYXY")
    assert bool((xyxy[:, 0::2] >= 0).all() and (xyxy[:, 0::2] <= w).all())
    assert bool((xyxy[:, 1::2] >= 0).all() and (xyxy[:, 1::2] <= h).all())
    assert bool((xyxy[:, 2] > xyxy[:, 0]).all() and (xyxy[:, 3] > xyxy[:, 1]).all())
    assert len(out["labels"]) == len(out["boxes"]) == out["masks"].shape[0]
    assert tuple(out["masks"].shape[-2:]) == (h, w)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_masks_move_with_the_pixels(name: str) -> None:
    # With nearest interpolation a mask equal to the thresholded image stays equal to it.
    spec = REGISTRY[name]
    params: dict[str, object] = {}
    if "interpolation" in spec.param_names:
        params["interpolation"] = "nearest"
    pipe = small(name, **params)
    pipe.set_param(0, "p", 1.0)
    for seed in range(4):
        out = pipe.apply({"image": IMG, "masks": tv_tensors.Mask(BLOB)}, seed)
        assert torch.equal(out["masks"].bool(), out["image"][0] > 128)


@pytest.mark.parametrize("name", ["RandomHorizontalFlip", "RandomVerticalFlip"])
def test_flip_moves_mask_boxes_and_pixels_together(name: str) -> None:
    pipe = Pipeline().add(name, p=1.0)
    boxes = tv_tensors.BoundingBoxes([[2, 3, 10, 20]], format="XYXY", canvas_size=(H, W))
    out = pipe.apply({"image": IMG, "masks": BLOB, "boxes": boxes}, 0)
    dim = -1 if name == "RandomHorizontalFlip" else -2
    assert torch.equal(out["image"], IMG.flip(dim))
    assert type(out["masks"]) is torch.Tensor  # plain mask in, plain mask out
    assert torch.equal(out["masks"], BLOB.flip(dim))
    expected = [[W - 10, 3, W - 2, 20]] if dim == -1 else [[2, H - 20, 10, H - 3]]
    assert out["boxes"].tolist() == expected


@pytest.mark.parametrize("name", IMAGE_ONLY)
def test_image_only_pipeline_refuses_boxes_and_masks(name: str) -> None:
    pipe = Pipeline().add("RandomHorizontalFlip").add(name)
    assert pipe.image_only
    boxes = tv_tensors.BoundingBoxes([[1, 1, 5, 5]], format="XYXY", canvas_size=(H, W))
    with pytest.raises(ParameterError, match=name):
        pipe.apply({"image": IMG, "boxes": boxes}, 0)
    with pytest.raises(ParameterError, match=name):
        pipe.apply({"image": IMG, "masks": tv_tensors.Mask(BLOB)}, 0)
    with pytest.raises(ParameterError, match=name):
        pipe.to_torchvision(boxes=True)
    pipe.apply({"image": IMG, "labels": torch.tensor([3])}, 0)  # labels alone are fine
    pipe.enable(1, False)
    assert not pipe.image_only
    pipe.apply({"image": IMG, "boxes": boxes}, 0)


def test_degenerate_boxes_are_dropped_with_labels_and_instance_masks() -> None:
    pipe = Pipeline().add("CenterCrop", size=(20, 20))
    boxes = tv_tensors.BoundingBoxes(
        [[0, 0, 6, 6], [25, 15, 40, 30]], format="XYXY", canvas_size=(H, W)
    )
    instance = tv_tensors.Mask(torch.stack([BLOB, ~BLOB]))
    with pytest.raises(ParameterError, match="labels"):  # a list could not be filtered
        pipe.apply({"image": IMG, "boxes": boxes, "labels": [7, 8]}, 0)
    out = pipe.apply(
        {"image": IMG, "boxes": boxes, "masks": instance, "labels": torch.tensor([7, 8])}, 0
    )
    assert out["labels"].tolist() == [8]
    assert out["masks"].shape == (1, 20, 20)
    assert out["boxes"].tolist() == [[3, 1, 18, 16]]  # the crop starts at (x=22, y=14)
    # a semantic (H, W) mask is never cut by the box clean-up, whatever the box count
    semantic = tv_tensors.Mask(BLOB.to(torch.uint8))
    out = pipe.apply({"image": IMG, "boxes": boxes, "masks": semantic, "labels": None}, 0)
    assert out["masks"].shape == (20, 20) and out["labels"] is None


def test_to_torchvision_with_boxes_appends_clean_up() -> None:
    compose = Pipeline().add("RandomHorizontalFlip").to_torchvision(boxes=True)
    kinds = [type(t) for t in compose.transforms]
    assert kinds == [v2.RandomHorizontalFlip, v2.ClampBoundingBoxes, v2.SanitizeBoundingBoxes]
    code = Pipeline().add("RandomHorizontalFlip").to_code(boxes=True)
    assert "v2.ClampBoundingBoxes(" in code and "v2.SanitizeBoundingBoxes()" in code


# ----------------------------------------------------------------------------------------------
# Bad parameters
# ----------------------------------------------------------------------------------------------

BAD = [
    ("GaussianBlur", "kernel_size", 4),
    ("GaussianBlur", "kernel_size", 0),
    ("GaussianBlur", "kernel_size", -3),
    ("GaussianBlur", "kernel_size", 3.5),
    ("GaussianBlur", "sigma", (2.0, 1.0)),
    ("GaussianBlur", "sigma", (0.0, 1.0)),
    ("RandomRotation", "degrees", -10),
    ("RandomRotation", "degrees", (10, -10)),
    ("RandomRotation", "degrees", (0, 270)),
    ("RandomRotation", "interpolation", "lanczos"),
    ("RandomRotation", "expand", "yes"),
    ("RandomAffine", "scale", (0.0, 1.0)),
    ("RandomAffine", "translate_x", 1.5),
    ("RandomResizedCrop", "scale", (0.0, 1.0)),
    ("RandomResizedCrop", "scale", (0.5, 1.5)),
    ("RandomResizedCrop", "ratio", (2.0, 0.5)),
    ("RandomResizedCrop", "size", (0, 10)),
    ("RandomErasing", "scale", (0.5, 1.2)),
    ("ColorJitter", "brightness", (1.5, 0.5)),
    ("ColorJitter", "brightness", -0.2),
    ("ColorJitter", "hue", (0.0, 0.8)),
    ("JPEG", "quality", (0, 50)),
    ("JPEG", "quality", (50.5, 60)),
    ("RandomPosterize", "bits", 9),
    ("RandomSolarize", "threshold", 300),
    ("GaussianNoise", "sigma", -0.1),
    ("ElasticTransform", "sigma", 0.0),
    ("RandAugment", "magnitude", 31),
    ("AugMix", "chain_depth", 0),
    ("AugMix", "severity", 11),
    ("RandomHorizontalFlip", "nonsense", 1),
    ("GaussianBlur", "kernel", 3),
    ("RandomHorizontalFlip", "p", 1.5),
    ("GaussianBlur", "p", -0.1),
    ("RandomGrayscale", "p", float("nan")),
]


def _ids(case: tuple[str, str, object]) -> str:
    return f"{case[0]}-{case[1]}={case[2]!r}"


@pytest.mark.parametrize("case", BAD, ids=[_ids(c) for c in BAD])
def test_bad_params_raise_parameter_error_naming_step_and_param(
    case: tuple[str, str, object],
) -> None:
    name, key, value = case
    with pytest.raises(ParameterError, match=f"{name}.*'{key}'"):
        Pipeline().add(name, **{key: value})

    pipe = Pipeline().add("RandomVerticalFlip").add(name)
    before = pipe.to_json()
    with pytest.raises(ParameterError, match=rf"step 1 \({name}\).*'{key}'"):
        pipe.set_param(1, key, value)
    assert pipe.to_json() == before  # refused values leave the step unchanged

    # a hand-edited step is caught by validate(), to_torchvision() and to_code()
    if key == "p":
        pipe.steps[1].p = value
    else:
        pipe.steps[1].params[key] = value
    for call in (pipe.validate, pipe.to_torchvision, pipe.to_code):
        with pytest.raises(ParameterError, match=rf"step 1 \({name}\).*'{key}'"):
            call()


def test_parameter_error_is_a_workbench_error() -> None:
    assert issubclass(ParameterError, WorkbenchError)


def test_unknown_transform_is_refused() -> None:
    with pytest.raises(ParameterError, match="RandomFoo"):
        Pipeline().add("RandomFoo")
    text = json.dumps({"version": 1, "steps": [{"name": "RandomFoo", "params": {}}]})
    with pytest.raises(ParameterError, match=r"step 0.*RandomFoo"):
        Pipeline.from_json(text)
    pipe = Pipeline().add("RandomInvert")
    pipe.steps.append(Step("Nope"))
    with pytest.raises(ParameterError, match=r"step 1.*Nope"):
        pipe.validate()


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"steps": 3}',
        '{"version": 99, "steps": []}',
        '{"version": "1", "steps": []}',
        '{"steps": [{"p": 1}]}',
        '{"steps": [{"name": "JPEG", "params": [1]}]}',
    ],
)
def test_from_json_refuses_malformed_text(text: str) -> None:
    with pytest.raises(ParameterError, match="pipeline JSON"):
        Pipeline.from_json(text)


def test_step_failing_on_a_sample_names_the_step() -> None:
    pipe = Pipeline().add("RandomInvert").add("RandomCrop", size=(100, 100), pad_if_needed=False)
    with pytest.raises(ParameterError, match=r"step 1 \(RandomCrop\) failed on this sample"):
        pipe.apply(IMG, 0)


WRONG_CANVAS = tv_tensors.BoundingBoxes([[0, 0, 1, 1]], format="XYXY", canvas_size=(5, 5))


@pytest.mark.parametrize(
    "sample",
    [
        IMG.float() / 255,
        IMG[None],
        torch.zeros(4, H, W, dtype=torch.uint8),
        np.zeros((H, W, 3), np.uint8),
        PIL.Image.new("RGBA", (W, H)),
        {"boxes": None},
        {"image": IMG, "boxes": torch.zeros(1, 4)},
        {"image": IMG, "boxes": WRONG_CANVAS},
        {"image": IMG, "masks": torch.zeros(H + 1, W)},
    ],
)  # fmt: skip
def test_bad_samples_are_refused(sample: object) -> None:
    with pytest.raises(ParameterError):
        Pipeline().add("RandomInvert").apply(sample, 0)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "7", 2**63])
def test_bad_seeds_are_refused(seed: object) -> None:
    with pytest.raises(ParameterError, match="seed"):
        Pipeline().add("RandomInvert").apply(IMG, seed)


# ----------------------------------------------------------------------------------------------
# Valid parameters anywhere in the registry's domain are accepted by torchvision
# ----------------------------------------------------------------------------------------------


def _values(ps: ParamSpec) -> st.SearchStrategy[object]:
    lo, hi = ps.min, ps.max
    if ps.kind == "bool":
        return st.booleans()
    if ps.kind == "choice":
        return st.sampled_from(ps.choices)
    if ps.kind == "size":
        side = st.integers(int(lo), 80)
        return st.one_of(side, st.tuples(side, side))
    if ps.kind == "int":
        ints = st.integers(int(lo), int(hi))
        return ints.filter(lambda n: n % 2 == 1) if ps.odd else ints
    number = (
        st.integers(int(lo), int(hi))
        if ps.integer
        else st.floats(lo, hi, exclude_min=ps.min_open, allow_nan=False, allow_subnormal=False)
    )
    if ps.kind == "float":
        return number
    return st.tuples(number, number).map(lambda t: (min(t), max(t)))


@st.composite
def valid_steps(draw: st.DrawFn) -> tuple[str, dict[str, object], float]:
    name = draw(st.sampled_from(NAMES))
    params = {ps.name: draw(_values(ps)) for ps in REGISTRY[name].params}
    return name, params, draw(st.floats(0, 1))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(step=valid_steps(), seed=st.integers(0, 2**32 - 1))
def test_any_value_in_the_registry_domain_works(
    step: tuple[str, dict[str, object], float], seed: int
) -> None:
    name, params, p = step
    try:
        pipe = Pipeline().add(name, p=p, **params)
    except ParameterError as exc:  # only the cross-parameter rules may refuse
        assert name in {"RandAugment", "AugMix"}, exc
        assume(False)
    back = Pipeline.from_json(pipe.to_json())
    assert back == pipe
    namespace: dict[str, object] = {}
    exec(pipe.to_code(), namespace)
    too_small = (name == "RandomCrop") or (  # no padding, or reflect padding >= the image side
        # the displacement field is blurred with a kernel of int(8 sigma + 1), reflect-padded
        name == "ElasticTransform" and int(8 * params["sigma"] + 1) // 2 >= min(H, W)
    )
    if too_small:  # may legitimately not fit the 64x48 image: a ParameterError, if anything
        try:
            pipe.apply(IMG, seed)
        except ParameterError as exc:
            assert f"step 0 ({name}) failed on this sample" in str(exc)
        return
    out = pipe.apply(IMG, seed)
    assert out.dtype == torch.uint8
    assert torch.equal(back.apply(IMG, seed), out)
    assert torch.equal(run_seeded(namespace["transform"], tv_tensors.Image(IMG), seed), out)


# ----------------------------------------------------------------------------------------------
# Editing
# ----------------------------------------------------------------------------------------------


def test_editing_operations() -> None:
    pipe = Pipeline().add("RandomHorizontalFlip").add("GaussianBlur", kernel_size=3).add("JPEG")
    assert [s.name for s in pipe] == ["RandomHorizontalFlip", "GaussianBlur", "JPEG"]
    assert pipe[0].p == 0.5 and pipe[1].p == 1.0  # torchvision's own default p, else always
    assert pipe[1].params == {"kernel_size": 3, "sigma": (0.1, 2.0)}  # completed with defaults
    pipe.move(2, 0)
    assert [s.name for s in pipe] == ["JPEG", "RandomHorizontalFlip", "GaussianBlur"]
    pipe.move(0, -1)
    assert [s.name for s in pipe] == ["RandomHorizontalFlip", "GaussianBlur", "JPEG"]
    pipe.set_param(1, "sigma", 1.5)  # one number = fixed sigma, as torchvision reads it
    assert pipe[1].params["sigma"] == (1.5, 1.5)
    pipe.set_param(1, "sigma", [0.5, 1.0])  # lists become tuples
    assert pipe[1].params["sigma"] == (0.5, 1.0)
    pipe.set_param(1, "p", 0.25)
    assert pipe[1].p == 0.25
    removed = pipe.remove(2)
    assert removed.name == "JPEG" and len(pipe) == 2
    pipe.enable(0, False)
    assert [type(t) for t in pipe.to_torchvision().transforms] == [v2.RandomApply]
    assert "# disabled: v2.RandomHorizontalFlip(p=0.5)," in pipe.to_code()
    with pytest.raises(ParameterError, match="index 5"):
        pipe.remove(5)
    with pytest.raises(ParameterError, match="index"):
        pipe.move(0, 7)


def test_scalar_shorthands_follow_torchvision() -> None:
    pipe = Pipeline().add("RandomRotation", degrees=30).add("ColorJitter", brightness=0.5)
    assert pipe[0].params["degrees"] == (-30.0, 30.0)
    assert pipe[1].params["brightness"] == (0.5, 1.5)
    assert Pipeline().add("ColorJitter", contrast=2).steps[0].params["contrast"] == (0.0, 3.0)


def test_only_isolates_one_step() -> None:
    pipe = Pipeline().add("RandomInvert", p=1.0).add("GaussianBlur", enabled=False)
    solo = pipe.only(1)
    assert [s.name for s in solo] == ["GaussianBlur"] and solo[0].enabled
    assert pipe[1].enabled is False  # the original is untouched
    solo.set_param(0, "kernel_size", 7)
    assert pipe[1].params["kernel_size"] == 5
    assert torch.equal(pipe.only(0).apply(IMG, 0), 255 - IMG)


def test_empty_pipeline_is_identity() -> None:
    pipe = Pipeline()
    assert torch.equal(pipe.apply(IMG, 0), IMG)
    namespace: dict[str, object] = {}
    exec(pipe.to_code(), namespace)
    assert torch.equal(namespace["transform"](IMG), IMG)
    assert not pipe.image_only


def test_to_code_is_importable_source_with_fill_for_masks() -> None:
    pipe = Pipeline().add("RandomRotation", fill=128, p=1.0).add("GaussianNoise", p=0.5)
    code = pipe.to_code(variable="aug")
    assert code.startswith("import torch\nfrom torchvision import tv_tensors\n")
    assert "fill={tv_tensors.Mask: 0, " in code
    namespace: dict[str, object] = {}
    exec(code, namespace)
    assert isinstance(namespace["aug"], v2.Compose)
    # image corners get the fill, the mask corners stay background
    out = pipe.only(0).apply({"image": IMG, "masks": BLOB.to(torch.uint8)}, 1)
    assert int(out["image"][0, 0, 0]) == 128 and int(out["masks"][0, 0]) == 0
    with pytest.raises(ParameterError, match="variable"):
        pipe.to_code(variable="not a name")


# ----------------------------------------------------------------------------------------------
# Dtype handling, sample forms, draws
# ----------------------------------------------------------------------------------------------


def test_gaussian_noise_round_trips_dtype_for_every_input_form() -> None:
    pipe = Pipeline().add("GaussianNoise", sigma=0.05)
    out = pipe.apply(IMG, 0)
    assert out.dtype == torch.uint8 and not torch.equal(out, IMG)
    diff = (out.int() - IMG.int()).abs().float()
    assert 3 < diff.mean() < 25
    image_out = pipe.apply(tv_tensors.Image(IMG), 0)
    assert type(image_out) is tv_tensors.Image and image_out.dtype == torch.uint8
    # the exported transform also takes PIL images (ToImage inside the wrapper)
    compose = pipe.to_torchvision()
    assert run_seeded(compose, F.to_pil_image(IMG), 0).dtype == torch.uint8


def test_dict_sample_keeps_its_keys_and_types() -> None:
    boxes = tv_tensors.BoundingBoxes([[1, 2, 10, 12]], format="XYWH", canvas_size=(H, W))
    sample = {
        "image": F.to_pil_image(IMG),
        "boxes": boxes,
        "labels": torch.tensor([4]),
        "id": "a/b.png",
    }
    out = Pipeline().add("RandomHorizontalFlip", p=1.0).apply(sample, 0)
    assert list(out) == list(sample)
    assert isinstance(out["image"], PIL.Image.Image) and out["id"] == "a/b.png"
    assert out["boxes"].format == tv_tensors.BoundingBoxFormat.XYWH
    assert out["boxes"].tolist() == [[W - 11, 2, 10, 12]]
    assert sample["boxes"] is boxes and boxes.tolist() == [[1, 2, 10, 12]]  # input untouched


def test_draws_are_reproducible_and_distinct() -> None:
    pipe = Pipeline().add("RandomRotation", degrees=40).add("ColorJitter")
    first = pipe.draws(IMG, 4, seed=3)
    again = pipe.draws(IMG, 4, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    seeds = variant_seeds(3, 4)
    assert len(set(seeds)) == 4
    assert torch.equal(first[2], pipe.apply(IMG, seeds[2]))
    assert not torch.equal(first[0], first[1])
    assert pipe.draws(IMG, 0, seed=3) == []
    assert set(variant_seeds(4, 4)).isdisjoint(seeds)
    with pytest.raises(ParameterError):
        pipe.draws(IMG, -1, seed=0)


# ----------------------------------------------------------------------------------------------
# Preview helpers
# ----------------------------------------------------------------------------------------------


def test_draw_boxes_returns_an_rgb_pil_image() -> None:
    boxes = tv_tensors.BoundingBoxes([[5, 5, 20, 15]], format="XYWH", canvas_size=(H, W))
    out = draw_boxes(F.to_pil_image(IMG), boxes, labels=["cat"], width=1)
    assert isinstance(out, PIL.Image.Image) and out.size == (W, H) and out.mode == "RGB"
    arr = np.asarray(out).astype(int)
    base = IMG.permute(1, 2, 0).numpy().astype(int)
    assert (arr[5, 10] != base[5, 10]).any()  # top edge of the XYWH box, drawn as XYXY
    assert (arr[30, 60] == base[30, 60]).all()  # far from the box
    gray = draw_boxes(IMG[:1], torch.tensor([[1, 1, 8, 8]]), labels=torch.tensor([2]))
    assert gray.mode == "RGB"
    assert np.array_equal(np.asarray(draw_boxes(IMG, torch.zeros(0, 4))), base)
    with pytest.raises(ParameterError, match="labels"):
        draw_boxes(IMG, boxes, labels=["a", "b"])


def test_box_labels_scale_with_the_image() -> None:
    """Labels are legible when a large image is shown fitted to a small preview cell."""
    big = torch.full((3, 800, 1000), 90, dtype=torch.uint8)
    boxes = torch.tensor([[100.0, 100.0, 600.0, 500.0]])

    def tag_height(out: PIL.Image.Image) -> int:  # rows of the label tag below the top edge
        column = np.asarray(out)[:, 104].astype(int)
        return int((np.abs(column - column[101]).sum(axis=1) == 0)[100:300].sum())

    default = tag_height(draw_boxes(big, boxes, labels=["cat"], width=2))
    small_font = tag_height(draw_boxes(big, boxes, labels=["cat"], width=2, font_size=10))
    assert default >= 1000 / 25 > 2 * small_font > 0


def test_mask_outline_draws_only_the_boundary() -> None:
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[10:30, 10:40] = True
    out = np.asarray(mask_outline(IMG, mask)).astype(int)
    base = IMG.permute(1, 2, 0).numpy().astype(int)
    assert (out[10, 20] != base[10, 20]).any()  # on the edge
    assert (out[20, 25] == base[20, 25]).all()  # inside
    assert (out[40, 50] == base[40, 50]).all()  # outside
    labels = torch.zeros(H, W, dtype=torch.int64)
    labels[5:15, 5:15], labels[20:40, 30:60] = 1, 2
    assert mask_outline(F.to_pil_image(IMG), labels).size == (W, H)
    assert mask_outline(IMG, torch.stack([mask, ~mask])).mode == "RGB"
    assert np.array_equal(np.asarray(mask_outline(IMG, torch.zeros(H, W))), base)
    with pytest.raises(ParameterError):
        mask_outline(IMG, torch.zeros(5, 5))


def test_check_index_counts_from_the_end_and_names_the_action() -> None:
    pipe = Pipeline().add("RandomHorizontalFlip").add("ColorJitter").add("RandomInvert")
    assert [pipe.check_index(i) for i in (0, 2, -1, -3)] == [0, 2, 2, 0]
    for bad in (3, -4, True, 1.0, "1"):
        with pytest.raises(ParameterError, match=r"Pipeline\.remove: no step at index"):
            pipe.check_index(bad, "remove")


def test_convert_sample_is_the_conversion_apply_uses() -> None:
    pil = F.to_pil_image(IMG)
    tensor = convert_sample(pil, "tensor")
    assert tensor.is_contiguous() and torch.equal(tensor, IMG)
    # per-pixel noise fills in memory order: a converted copy replays like the PIL image itself
    noise = Pipeline().add("GaussianNoise", sigma=0.2)
    assert torch.equal(noise.apply(tensor, 3), convert_sample(noise.apply(pil, 3), "tensor"))
    back = convert_sample(tv_tensors.Image(tensor), "pil")
    assert isinstance(back, PIL.Image.Image) and np.array_equal(np.asarray(back), np.asarray(pil))
    assert convert_sample(pil, "pil") is pil and convert_sample(IMG, "tensor") is IMG
    sample = {"image": pil, "caption": "x"}
    out = convert_sample(sample, "tensor")
    assert out["caption"] == "x" and torch.equal(out["image"], IMG) and sample["image"] is pil


# ----------------------------------------------------------------------------------------------
# Controls: what a slider or a number field reports becomes an exact, clean value
# ----------------------------------------------------------------------------------------------

SLIDER_PARAMS = [
    (name, ps)
    for name in NAMES
    for ps in REGISTRY[name].params
    if ps.kind in ("float", "int", "range")
] + [("step", controls.P_SPEC)]


def _js_grid(ps: ParamSpec, v: float) -> float:
    """A browser slider's position for ``v``: ``min + k * step`` in binary floating point."""
    k = round((v - ps.min) / ps.step)
    return type(v)(ps.min + k * ps.step)


def _elements(v: object) -> tuple:
    return v if isinstance(v, tuple) else (v,)


@pytest.mark.parametrize(("name", "ps"), SLIDER_PARAMS, ids=lambda x: getattr(x, "name", x))
def test_defaults_lie_on_the_slider_grid(name: str, ps: ParamSpec) -> None:
    if (name, ps.name) == ("RandomResizedCrop", "ratio"):
        assert controls.snap(ps, 4 / 3) == 1.33  # torchvision's 4/3 cannot: shown as 1.33
        return
    for v in _elements(ps.default):
        assert controls.snap(ps, v) == v


@pytest.mark.parametrize(("name", "ps"), SLIDER_PARAMS, ids=lambda x: getattr(x, "name", x))
def test_a_slider_echoing_its_start_value_changes_nothing(name: str, ps: ParamSpec) -> None:
    values = [ps.default]
    lo, hi = ps.min, ps.max
    for frac in (0.1, 0.37, 0.5, 0.93):  # values a user may set in code, on and off the grid
        x = lo + frac * (hi - lo)
        x = int(x) if isinstance(ps.default, int) or ps.integer else x
        values.append((lo if ps.kind == "range" else x, x) if ps.kind == "range" else x)
    for v in values:
        echoed = tuple(_js_grid(ps, x) for x in _elements(v))
        reported = echoed if ps.kind == "range" else echoed[0]
        assert controls.from_slider(ps, reported, v) is controls.UNCHANGED, (v, reported)


def test_a_moved_slider_gives_its_readout_and_the_other_end_stays_exact() -> None:
    hue = REGISTRY["ColorJitter"].param("hue")
    moved = controls.from_slider(hue, (-0.5 + 45 * 0.01, -0.5 + 65 * 0.01), (-0.05, 0.05))
    assert moved == (-0.05, 0.15)
    ratio = REGISTRY["RandomResizedCrop"].param("ratio")
    moved = controls.from_slider(ratio, (0.1 + 40 * 0.01, 0.1 + 123 * 0.01), (0.75, 4 / 3))
    assert moved == (0.5, 4 / 3)  # the unmoved end keeps torchvision's exact 4/3
    sigma = REGISTRY["ElasticTransform"].param("sigma")
    assert controls.from_slider(sigma, 0.01 + 699 * 0.01, 5.0) == 7.0
    bits = REGISTRY["RandomPosterize"].param("bits")
    assert controls.from_slider(bits, 6, 4) == 6 and controls.from_slider(bits, 4, 4) is (
        controls.UNCHANGED
    )
    choice = REGISTRY["RandomRotation"].param("interpolation")
    assert controls.from_slider(choice, "bilinear", "nearest") == "bilinear"
    assert controls.from_slider(choice, "nearest", "nearest") is controls.UNCHANGED


def test_number_field_text_is_clean_and_typing_it_back_changes_nothing() -> None:
    jitter = REGISTRY["ColorJitter"]
    hue, sat = jitter.param("hue"), jitter.param("saturation")
    assert controls.text(hue, (-0.05, 0.05)) == "-0.05, 0.05"
    assert controls.text(sat, (0.8, 1.2)) == "0.8, 1.2"
    ratio = REGISTRY["RandomResizedCrop"].param("ratio")
    assert controls.text(ratio, (0.75, 4 / 3)) == "0.75, 1.33333"
    assert controls.parse(ratio, "0.75, 1.33333", (0.75, 4 / 3)) is controls.UNCHANGED
    assert controls.parse(ratio, "0.5, 1.33333", (0.75, 4 / 3)) == (0.5, 4 / 3)
    assert controls.parse(ratio, "0.5 – 2", (0.75, 4 / 3)) == (0.5, 2)
    assert controls.parse(hue, "−0.1, 0.2", (0.0, 0.0)) == (-0.1, 0.2)
    assert controls.parse(hue, "0.2", (0.0, 0.0)) == 0.2  # the pipeline reads it as (-0.2, 0.2)
    size = REGISTRY["RandomCrop"].param("size")
    assert controls.text(size, (224, 224)) == "224, 224"
    assert controls.parse(size, "32x48", (224, 224)) == (32, 48)
    kernel = REGISTRY["GaussianBlur"].param("kernel_size")
    assert controls.parse(kernel, "7", 5) == 7 and controls.parse(kernel, "7.0", 5) == 7
    threshold = REGISTRY["RandomSolarize"].param("threshold")
    assert controls.text(threshold, 128.0) == "128"
    assert controls.parse(threshold, "128", 128.0) is controls.UNCHANGED
    for bad in ("", "abc", "1, 2, 3", "0.1, 1a"):
        with pytest.raises(ParameterError, match="hue"):
            controls.parse(hue, bad, (0.0, 0.0))
    for name, ps in SLIDER_PARAMS:
        shown = controls.text(ps, ps.default)
        assert controls.parse(ps, shown, ps.default) is controls.UNCHANGED, (name, ps.name)


def test_a_batch_of_replays_gives_the_same_draws_and_restores_the_rngs() -> None:
    pipe = Pipeline().add("RandomAffine", degrees=(-30, 30)).add("RandomErasing", p=0.5)
    replay = Replay(pipe, step_keys=[0, 1], backend="tensor")
    alone = [replay(IMG, s) for s in range(6)]
    torch.manual_seed(7)
    random.seed(8)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    with replay.batch():
        together = [replay(IMG, s) for s in range(6)]
    assert all(torch.equal(a, b) for a, b in zip(alone, together, strict=True))
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == py_state
