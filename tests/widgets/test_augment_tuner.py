"""AugmentTuner driven through its controls in plain pytest (no front end).

Every control change renders on the shared render thread; tests call ``tuner.render()`` to get a
synchronous render of the latest state (it waits for any background render first).
"""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision.transforms import v2

from workbench import Workspace
from workbench.augment import REGISTRY, Pipeline
from workbench.views.augment import AugmentTuner


def _draws(t: AugmentTuner) -> list[bytes]:
    return [b for row in t.preview_bytes for b in row[1:]]


def _originals(t: AugmentTuner) -> list[bytes]:
    return [row[0] for row in t.preview_bytes]


def _photo(w: int = 300, h: int = 200) -> PIL.Image.Image:
    """A smooth colour picture with an off-centre square (colour and geometry both show)."""
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], -1).astype(np.uint8)
    a[h // 5 : h // 2, w // 6 : w // 3] = (250, 40, 40)
    return PIL.Image.fromarray(a)


def _pipe() -> Pipeline:
    return (
        Pipeline()
        .add("RandomRotation", degrees=40)
        .add("ColorJitter", brightness=0.8)
        .add("GaussianBlur", enabled=False)
    )


@pytest.fixture
def tuner(small_catalog) -> AugmentTuner:
    return AugmentTuner(small_catalog, _pipe(), rows=3, draws=3, size=64)


def test_layout_and_controls_come_from_the_registry(small_catalog):
    pipe = (
        Pipeline()
        .add("ColorJitter")
        .add("GaussianBlur")
        .add("RandomResizedCrop", size=(32, 32))
        .add("RandomRotation")
        .add("JPEG")
    )
    t = AugmentTuner(small_catalog, pipe, rows=2, draws=3, size=64)
    assert "wb-augment" in t._dom_classes and t.pipeline is pipe
    assert len(t.cards) == 5 and len(t.images) == 2 and len(t.images[0]) == 4
    jitter, blur, crop, rot, jpeg = (c.params for c in t.cards)
    assert type(jitter["brightness"]).__name__ == "FloatRangeSlider"
    assert jitter["brightness"].value == (0.8, 1.2)
    assert type(blur["kernel_size"]).__name__ == "IntSlider" and blur["kernel_size"].step == 2
    assert type(crop["size"]).__name__ == "Text" and crop["size"].value == "32, 32"
    assert type(crop["interpolation"]).__name__ == "Dropdown"
    assert type(rot["expand"]).__name__ == "Checkbox"
    assert type(jpeg["quality"]).__name__ == "IntRangeSlider"
    for card in t.cards:
        assert "wb-param" in card.p._dom_classes and "wb-step" in card._dom_classes
        assert all("wb-param" in w._dom_classes for w in card.params.values())
    assert all(b for row in t.preview_bytes for b in row)  # every cell rendered
    assert "ms" in t.timing.value and t.last_render["ms"] > 0
    assert t.pipeline.to_dict() == pipe.to_dict()  # building the view changed nothing


def test_moving_a_slider_changes_the_preview(tuner):
    before, originals = _draws(tuner), _originals(tuner)
    tuner.cards[1].params["brightness"].value = (1.6, 2.0)
    tuner.render()
    assert tuner.pipeline[1].params["brightness"] == (1.6, 2.0)
    after = _draws(tuner)
    assert all(a != b for a, b in zip(before, after, strict=True))
    assert _originals(tuner) == originals
    tuner.set_param(0, "p", 0.0)  # rotation never applied
    tuner.render()
    assert tuner.pipeline[0].p == 0.0 and _draws(tuner) != after


def test_locked_seed_keeps_other_steps_draws_and_reroll_changes_them(tuner):
    assert tuner.locked
    initial = _draws(tuner)
    tuner.isolate(0)
    tuner.render()
    rotation_alone = _draws(tuner)
    tuner.isolate(None)
    # disabling the jitter leaves the rotation draws exactly as they were
    tuner.enable_step(1, False)
    tuner.render()
    assert _draws(tuner) == rotation_alone != initial
    tuner.enable_step(1, True)
    tuner.render()
    assert _draws(tuner) == initial
    # an unrelated (disabled) step's enable does not touch the draws either
    tuner.set_param(2, "kernel_size", 9)
    tuner.render()
    assert _draws(tuner) == initial
    seed = tuner.seed
    tuner.reroll_button.click()
    tuner.render()
    assert tuner.seed != seed
    rerolled = _draws(tuner)
    assert all(a != b for a, b in zip(initial, rerolled, strict=True))


def test_unlocked_every_change_draws_anew(tuner):
    initial = _draws(tuner)
    tuner.lock_toggle.value = False
    tuner.enable_step(1, False)
    tuner.enable_step(1, True)
    tuner.render()
    assert tuner.pipeline.to_dict() == _pipe().to_dict()
    assert _draws(tuner) != initial


def test_add_remove_reorder_enable_disable(tuner):
    changes: list[int] = []
    tuner.on_change(lambda p: changes.append(len(p)))
    tuner.add_name.value = "RandomHorizontalFlip"
    tuner.add_button.click()
    assert [s.name for s in tuner.pipeline] == [
        "RandomRotation", "ColorJitter", "GaussianBlur", "RandomHorizontalFlip",
    ]  # fmt: skip
    assert len(tuner.cards) == 4 and changes == [4]
    assert tuner.cards[0].up.disabled and tuner.cards[3].down.disabled
    tuner.cards[3].up.click()  # flip moves above the blur
    tuner.cards[0].down.click()  # rotation moves below the jitter
    names = [s.name for s in tuner.pipeline]
    assert names == ["ColorJitter", "RandomRotation", "RandomHorizontalFlip", "GaussianBlur"]
    assert [c.title.value.split("</b> ")[1].split("<")[0] for c in tuner.cards] == names
    # controls follow their step after the moves
    tuner.cards[1].params["degrees"].value = (-5.0, 5.0)
    assert tuner.pipeline[1].name == "RandomRotation"
    assert tuner.pipeline[1].params["degrees"] == (-5.0, 5.0)
    tuner.cards[2].enabled.value = False
    assert not tuner.pipeline[2].enabled and "wb-step-off" in tuner.cards[2]._dom_classes
    tuner.cards[2].enabled.value = True
    assert tuner.pipeline[2].enabled and "wb-step-off" not in tuner.cards[2]._dom_classes
    tuner.cards[0].remove.click()
    assert [s.name for s in tuner.pipeline] == names[1:]
    for card in list(tuner.cards):
        card.remove.click()
    assert len(tuner.pipeline) == 0 and "No steps yet" in tuner.steps_box.children[0].value
    tuner.render()
    assert all(row[0] == row[1] or row[1] for row in tuner.preview_bytes)
    assert not tuner.error.message


def test_invalid_parameter_shows_inline_error_and_keeps_the_last_preview(small_catalog):
    pipe = Pipeline().add("RandAugment").add("RandomCrop", size=(8, 8), pad_if_needed=False)
    t = AugmentTuner(small_catalog, pipe, rows=2, draws=2, size=64)
    good = t.preview_bytes
    t.cards[0].params["magnitude"].value = 40  # >= num_magnitude_bins (31)
    t.render()
    assert "magnitude" in t.error.message and t.error.layout.display is None
    assert t.pipeline[0].params["magnitude"] == 9 and t.preview_bytes == good
    # raising the bins makes the typed magnitude valid: it is applied and the error goes
    t.cards[0].params["num_magnitude_bins"].value = 50
    t.render()
    assert t.pipeline[0].params["magnitude"] == 40 and not t.error.message
    good = t.preview_bytes
    # a size that cannot be parsed, then one larger than the samples (fails when applied)
    t.cards[1].params["size"].value = "big"
    assert "size" in t.error.message and t.pipeline[1].params["size"] == (8, 8)
    t.cards[1].params["size"].value = "500, 500"
    t.render()
    assert "RandomCrop" in t.error.message and "preview" in t.error.message
    assert t.pipeline[1].params["size"] == (500, 500) and t.preview_bytes == good
    t.cards[1].params["pad_if_needed"].value = True
    t.render()
    assert not t.error.message and t.error.layout.display == "none"
    assert t.preview_bytes != good


def test_save_writes_pipeline_json_that_round_trips(small_catalog, tmp_path):
    ws = Workspace(tmp_path / "ws")
    t = AugmentTuner(small_catalog, _pipe(), workspace=ws, rows=1, draws=1, size=32)
    saved: list = []
    t.on_save(saved.append)
    t.cards[1].params["contrast"].value = (0.5, 1.5)
    t.save_button.click()
    path = ws.path / "pipeline.json"
    assert saved == [path] and "pipeline.json" in t.status.value
    # an edit after the save (a slider's last value arriving late, too) says it is not saved
    t.cards[1].params["contrast"].value = (0.6, 1.5)
    assert "changed since saved" in t.status.value and "not saved" in t.status.value
    t.cards[1].params["contrast"].value = (0.5, 1.5)  # back to what is on disk
    assert t.status.value.startswith("<span>saved") and "pipeline.json" in t.status.value
    back = Pipeline.from_json(path.read_text())
    assert back == t.pipeline and back[1].params["contrast"] == (0.5, 1.5)
    img = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)
    assert torch.equal(back.apply(img, 4), t.pipeline.apply(img, 4))
    # a new tuner on the workspace starts from the saved pipeline
    assert AugmentTuner(small_catalog, workspace=ws, rows=1, draws=1).pipeline == back
    # without a workspace there is nowhere to save
    nows = AugmentTuner(small_catalog, _pipe(), rows=1, draws=1, size=32)
    assert nows.save_button.disabled
    nows._on_save_click(nows.save_button)
    assert "workspace" in nows.error.message


def test_show_code_is_escaped_and_builds_the_same_transform(tuner):
    assert tuner.code.layout.display == "none"
    tuner.code_toggle.value = True
    html = tuner.code.value
    assert html.startswith("<pre") and "v2.Compose(" in html
    assert "&quot;nearest&quot;" in html and '"nearest"' not in html  # escaped
    namespace: dict = {}
    exec(tuner.to_code(), namespace)
    img = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        expected = namespace["transform"](img)
    assert torch.equal(tuner.pipeline.apply(img, 3), expected)
    tuner.cards[0].params["degrees"].value = (-1.0, 1.0)
    assert "(-1.0, 1.0)" in tuner.code.value  # kept up to date while shown


def test_show_only_one_step(tuner):
    tuner.cards[1].only.value = True
    tuner.render()
    assert tuner.isolated == 1
    only_jitter = _draws(tuner)
    tuner.cards[0].only.value = True  # exclusive
    assert [c.only.value for c in tuner.cards] == [True, False, False] and tuner.isolated == 0
    tuner.render()
    assert _draws(tuner) != only_jitter
    # what "only" shows is the step's own draw: the same as disabling the others
    tuner.cards[0].only.value = False
    tuner.enable_step(1, False)
    tuner.render()
    assert tuner.isolated is None
    without_jitter = _draws(tuner)
    tuner.isolate(0)
    tuner.render()
    assert _draws(tuner) == without_jitter
    assert tuner.pipeline.to_dict()["steps"][1]["enabled"] is False  # isolation edits nothing


def test_shuffle_ids_and_escaped_captions(small_catalog):
    ids = [i for i in small_catalog.ok.ids if i.startswith("<i>wasp")][:6]
    t = AugmentTuner(small_catalog, _pipe(), ids=ids, rows=2, draws=1, size=32)
    assert t.rows_keys == ids[:2]
    assert "&lt;i&gt;wasp" in t.captions[0].value and "<i>" not in t.captions[0].value
    originals = _originals(t)
    t.shuffle_button.click()
    t.render()
    assert set(t.rows_keys) <= set(ids[2:]) and _originals(t) != originals
    with pytest.raises(Exception, match="not readable samples"):
        AugmentTuner(small_catalog, ids=["nope.png"])


def test_reduced_resolution_working_copy_unless_a_step_works_in_pixels():
    t = AugmentTuner(samples=[_photo(600, 400)], rows=1, draws=2, size=96)
    t.add_step("RandomHorizontalFlip", p=1.0)
    t.add_step("ColorJitter", saturation=0.5)
    t.render()
    assert t.last_render["reduced"] and t.last_render["shape"] == (64, 96)
    assert "working copy" in t.timing.value
    reduced = _draws(t)
    t.add_step("GaussianBlur", kernel_size=3)
    t.render()
    assert not t.last_render["reduced"] and t.last_render["shape"] == (400, 600)
    assert "GaussianBlur" in t.timing.value
    # cells are encoded at the preview size either way
    for data in _draws(t) + reduced:
        assert max(PIL.Image.open(__import__("io").BytesIO(data)).size) == 96


def test_boxes_are_drawn_and_image_only_policies_refused():
    boxes = [[30, 40, 120, 110], [150, 20, 280, 180]]
    flip = Pipeline().add("RandomHorizontalFlip", p=1.0).add("AutoAugment", enabled=False)
    t = AugmentTuner.for_boxes(_photo(), boxes, ["cat", "<b>dog"], flip, draws=2, size=150)
    assert t.has_geometry and t.n_rows == 1
    plain = AugmentTuner(samples=[_photo()], pipeline=flip.copy(), rows=1, draws=2, size=150)
    assert _draws(t) != _draws(plain)  # the boxes are drawn on the draws
    # image-only policies are not offered for samples with boxes, and refused when asked for
    offered = set(t.add_name.options)
    assert offered == {n for n, s in REGISTRY.items() if not s.image_only}
    assert {"AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix"}.isdisjoint(offered)
    assert "RandAugment" in plain.add_name.options  # offered where there are no boxes
    t.cards[1].enabled.value = True  # the disabled AutoAugment stays off
    assert not t.cards[1].enabled.value and not t.pipeline[1].enabled
    assert "AutoAugment" in t.error.message
    t.add_step("RandomRotation", degrees=30)  # a geometric step is fine
    t.render()
    assert not t.error.message and len(t.pipeline) == 3
    # the drawn draw equals draw_boxes on the pipeline's own output
    with pytest.raises(Exception, match="image-only"):
        t.add_step("TrivialAugmentWide")


def test_rapid_changes_are_coalesced_into_few_renders(small_catalog):
    t = AugmentTuner(small_catalog, _pipe(), rows=4, draws=4, size=96)
    renders: list[dict] = []
    t.on_render(renders.append)
    slider = t.cards[1].params["brightness"]
    for k in range(40):
        slider.value = (0.5, 1.0 + k * 0.02)
    assert t.wait(30)
    assert 1 <= len(renders) < 20  # 40 changes, far fewer renders
    assert renders[-1]["generation"] == t._generation  # the last render saw the last state
    latest = t.preview_bytes
    t.render()
    assert t.preview_bytes == latest


def test_samples_argument_and_errors(small_catalog):
    t = AugmentTuner(
        samples=[_photo(), {"image": _photo(60, 40), "caption": "<small>"}], rows=2, draws=1
    )
    assert t.n_rows == 2 and "&lt;small&gt;" in t.captions[1].value
    with pytest.raises(Exception, match="catalog or samples"):
        AugmentTuner()
    with pytest.raises(Exception, match="rows"):
        AugmentTuner(small_catalog, rows=0)
    with pytest.raises(Exception, match="labels"):
        AugmentTuner.for_boxes(_photo(), [[1, 2, 3, 4]], ["a", "b"])


def test_online_use_with_to_torch(small_catalog):
    """The tuned pipeline plugs into training as a torchvision transform."""
    t = AugmentTuner(small_catalog, _pipe(), rows=1, draws=1, size=32)
    transform = v2.Compose(
        [t.pipeline.to_torchvision(), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    )
    ds = small_catalog.to_torch(transform=transform)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(ds, range(4)), batch_size=1, num_workers=0
    )
    x, y = next(iter(loader))
    assert x.dtype == torch.float32 and x.shape[:2] == (1, 3) and y.shape == (1,)


@pytest.mark.parametrize("backend", ["pil", "tensor"])
def test_a_preview_cell_is_the_core_replay_with_the_documented_seed(backend):
    from workbench.augment import variant_seeds
    from workbench.views._augment_preview import _thumb

    photo = _photo(120, 80)  # smaller than size: no working copy, the draw is the replay
    t = AugmentTuner(samples=[photo], pipeline=_pipe(), rows=1, draws=3, size=128, seed=5,
                     backend=backend)  # fmt: skip
    seeds = variant_seeds(t.seed, 3)
    for k in range(3):
        out = t.pipeline.apply(photo, seeds[k], step_keys=t.step_keys, backend=backend)
        if not isinstance(out, PIL.Image.Image):
            out = v2.functional.to_pil_image(out)
        assert t.preview_bytes[0][1 + k] == _thumb(out, 128)[0]


def test_close_releases_every_widget(small_catalog):
    t = AugmentTuner(small_catalog, _pipe(), rows=1, draws=1, size=32)
    widgets = [t.cards[0].p, t.add_button, t.grid]
    t.close()
    assert all(w.comm is None for w in [t, *widgets])
    t.render()  # a render after closing does not fail


# ---------------------------------------------------------------- exact values through controls

_SLIDERS = ("FloatSlider", "IntSlider", "FloatRangeSlider", "IntRangeSlider")


def test_cards_cost_the_page_few_messages(monkeypatch):
    """A burst of ~1,000 widget messages (8 cards of ~80 widgets, each with its own layout and
    style, then an update per CSS class) outran the kernel's message queue on a busy machine:
    cards never drew. Cards now share their static layouts and styles and are born in their
    final state; a move reorders the same widgets."""
    import ipywidgets

    opened: list[str] = []
    sent: list[dict] = []
    real_open = ipywidgets.Widget.open
    monkeypatch.setattr(
        ipywidgets.Widget, "open", lambda w: (opened.append(type(w).__name__), real_open(w))[1]
    )
    monkeypatch.setattr(ipywidgets.Widget, "_send", lambda w, msg, buffers=None: sent.append(msg))

    def build(n: int) -> AugmentTuner:
        opened.clear()
        sent.clear()
        p = Pipeline()
        for _ in range(n):
            p.add("ColorJitter")
        return AugmentTuner(samples=[_photo()], pipeline=p, rows=1, draws=2, size=64, live=False)

    build(1).close()  # the shared layouts and styles exist from here on
    build(0).close()
    base = len(opened)
    t = build(8)
    assert (len(opened) - base) / 8 <= 40, len(opened)  # ~31 (was ~80, and ~40 updates)
    assert len(sent) <= 30, len(sent)
    opened.clear()
    sent.clear()
    t.move_step(5, 1)
    assert opened == [] and len(sent) <= 10, (opened, len(sent))
    t.close()


def test_moving_keeps_the_cards_and_a_removed_card_closes_after_a_grace_period(
    small_catalog, monkeypatch
):
    import workbench.views.augment as augment_view

    t = AugmentTuner(small_catalog, _pipe(), rows=1, draws=1, size=32)
    a, b, c = t.cards
    b.up.click()  # the same widgets, reordered and renumbered: no new set for the page
    assert t.cards == [b, a, c] and [x.up.disabled for x in t.cards] == [True, False, False]
    assert "<b>0.</b> ColorJitter" in b.title.value and "<b>1.</b>" in a.title.value
    b.remove.click()  # taken out of the column, kept open while the page redraws it
    assert t.cards == [a, c] and b.p.comm is not None
    monkeypatch.setattr(augment_view, "_RETIRE_S", 0.0)
    a.down.click()  # past the grace period: the removed card is closed now
    assert b.p.comm is None and t.cards == [c, a] and a.p.comm is not None
    t.refresh()  # the pipeline edited in code: every card anew, the old ones retired
    assert not {id(x) for x in t.cards} & {id(a), id(c)}
    t.close()  # closing the view closes every retired card too
    assert a.p.comm is None and c.p.comm is None


def _echo(widget) -> None:
    """What the browser's slider does on creation: snap the value to ``min + k * step`` (in
    binary floating point, as JavaScript computes it) and send it back."""

    def grid(v):
        k = round((v - widget.min) / widget.step)
        return type(v)(widget.min + k * widget.step)

    v = widget.value
    widget.value = tuple(grid(x) for x in v) if isinstance(v, tuple) else grid(v)


def _echo_all(t: AugmentTuner) -> None:
    for card in t.cards:
        for w in [*card.params.values(), card.p]:
            if type(w).__name__ in _SLIDERS:
                _echo(w)


def test_adding_every_step_keeps_the_registry_defaults_exactly():
    t = AugmentTuner(samples=[_photo(60, 40)], rows=1, draws=1, size=32, live=False)
    for name in sorted(REGISTRY):
        t.add_name.value = name
        t.add_button.click()
        _echo_all(t)  # every card is rebuilt: every slider echoes again
    assert [s.name for s in t.pipeline] == sorted(REGISTRY)
    for step in t.pipeline:
        spec = REGISTRY[step.name]
        assert step.params == spec.defaults(), step.name
        assert step.p == spec.default_p, step.name
    assert "0000000" not in t.pipeline.to_json() and "9999999" not in t.to_code()


def test_a_parameter_set_in_code_survives_the_slider_echo():
    pipe = Pipeline().add("ColorJitter", hue=0.05, saturation=(0.6, 1.4), p=0.33)
    pipe.add("RandomResizedCrop", size=(32, 32))
    t = AugmentTuner(samples=[_photo(60, 40)], pipeline=pipe.copy(), rows=1, draws=1, size=32)
    _echo_all(t)
    assert t.pipeline == pipe


def test_a_moved_slider_gives_exactly_its_readout():
    pipe = Pipeline().add("ColorJitter", hue=0.05).add("RandomErasing")
    t = AugmentTuner(samples=[_photo(60, 40)], pipeline=pipe, rows=1, draws=1, size=32)
    hue = t.cards[0].params["hue"]
    hue.value = (-0.5 + 45 * 0.01, -0.5 + 65 * 0.01)  # the upper end dragged to 0.15
    assert t.pipeline[0].params["hue"] == (-0.05, 0.15)
    ratio = t.cards[1].params["ratio"]
    ratio.value = (0.01 + 29 * 0.01, 0.01 + 399 * 0.01)  # the upper end dragged to 4.0
    assert t.pipeline[1].params["ratio"] == (0.3, 4.0)
    assert "(0.3, 4.0)" in t.to_code() and "(-0.05, 0.15)" in t.to_code()


def test_number_fields_set_parameters_exactly_and_refuse_bad_text_inline():
    pipe = Pipeline().add("ColorJitter").add("RandomPerspective").add("GaussianBlur")
    t = AugmentTuner(samples=[_photo(60, 40)], pipeline=pipe, rows=1, draws=1, size=32)
    jitter, persp, blur = t.cards
    assert jitter.numbers["brightness"].value == "0.8, 1.2" and persp.numbers["p"].value == "0.5"
    persp.numbers["distortion_scale"].value = "0.373"  # finer than the slider's step
    assert t.pipeline[1].params["distortion_scale"] == 0.373
    assert persp.params["distortion_scale"].value == 0.373
    jitter.numbers["saturation"].value = "0.6 – 1.3"
    assert t.pipeline[0].params["saturation"] == (0.6, 1.3)
    assert jitter.params["saturation"].value == (0.6, 1.3)
    jitter.numbers["hue"].value = "0.05"  # one number: torchvision's (-x, x)
    assert t.pipeline[0].params["hue"] == (-0.05, 0.05)
    assert jitter.numbers["hue"].value == "-0.05, 0.05"
    blur.numbers["kernel_size"].value = "7"
    blur.numbers["p"].value = "0.25"
    assert t.pipeline[2].params["kernel_size"] == 7 and t.pipeline[2].p == 0.25
    before = t.pipeline.copy()
    blur.numbers["sigma"].value = "wide"
    assert "sigma" in t.error.message and "GaussianBlur" in t.error.message
    blur.numbers["kernel_size"].value = "4"  # even: the pipeline refuses it
    assert "kernel_size" in t.error.message and t.pipeline == before
    blur.numbers["kernel_size"].value = "9"
    blur.numbers["sigma"].value = "0.5, 1"
    assert not t.error.message
    assert t.pipeline[2].params == {"kernel_size": 9, "sigma": (0.5, 1.0)}
    # a moved slider: the number field shows its readout, and that is the value held
    jitter.params["contrast"].value = (0.0 + 11 * 0.05, 0.0 + 29 * 0.05)
    assert jitter.numbers["contrast"].value == "0.55, 1.45"
    assert t.pipeline[0].params["contrast"] == (0.55, 1.45)


def test_cards_keep_their_height_and_collapse():
    pipe = Pipeline()
    for name in ["ColorJitter", "RandomAffine", "RandomErasing", "GaussianBlur",
                 "RandomResizedCrop", "RandomRotation", "JPEG", "RandomPerspective"]:  # fmt: skip
        pipe.add(name)
    t = AugmentTuner(samples=[_photo(60, 40)], pipeline=pipe, rows=1, draws=1, size=32)
    assert "auto" in t.steps_box.layout.overflow
    assert all(c.layout.flex == "0 0 auto" for c in t.cards)  # the column scrolls, not cards
    t.cards[1].collapse.click()
    assert t.cards[1].collapsed and t.cards[1].body.layout.display == "none"
    assert t.cards[1].collapse.description == "▸" and not t.cards[0].collapsed
    t.cards[0].down.click()  # rebuilt cards keep their state, following their step
    assert t.cards[0].collapsed and not t.cards[1].collapsed
    t.collapse(0, False)
    assert not t.cards[0].collapsed and t.cards[0].collapse.description == "▾"


def test_save_says_why_it_is_disabled(small_catalog, tmp_path):
    t = AugmentTuner(samples=[_photo(60, 40)], rows=1, draws=1, size=32)
    assert t.save_button.disabled and "workspace" in t.status.value
    ws = AugmentTuner(samples=[_photo(60, 40)], rows=1, draws=1, size=32,
                      workspace=Workspace(tmp_path / "ws"))  # fmt: skip
    assert not ws.save_button.disabled and "workspace" not in ws.status.value


def test_tiny_cells_go_at_their_own_size_and_are_enlarged_crisply_in_the_page(small_catalog):
    """Silhouette-sized samples are sent as small PNGs; the grid shows them a whole factor
    larger with their pixels kept (64x fewer pixels per render than sending them enlarged)."""
    import io
    import re

    t = AugmentTuner(small_catalog, _pipe(), rows=2, draws=2, size=96)
    t.render()
    sizes = {PIL.Image.open(io.BytesIO(b)).size for row in t.preview_bytes for b in row}
    assert max(max(s) for s in sizes) * 2 <= 96  # not enlarged in the bytes
    w, h = PIL.Image.open(io.BytesIO(t.preview_bytes[0][0])).size
    f = 96 // max(w, h)
    img = re.findall(r"<img [^>]*wb-original[^>]*>", t.grid.html)[0]
    assert f' width="{w * f}" height="{h * f}"' in img and "image-rendering:pixelated" in img
    t.close()


def test_building_the_tuner_sends_no_update_naming_other_widgets(small_catalog, monkeypatch):
    """The step column opens holding its cards: building a tuner sends no update that refers to
    other widgets (the page's widget manager can fail to resolve such an update while it loads
    the kernel's widgets, and then never draws the column). A rebuild still updates it."""
    import ipywidgets

    sent: list[tuple[object, dict]] = []
    monkeypatch.setattr(
        ipywidgets.Widget, "_send", lambda w, msg, buffers=None: sent.append((w, msg))
    )
    t = AugmentTuner(small_catalog, _pipe(), rows=1, draws=1, size=32)
    naming = [(w, sorted(msg["state"])) for w, msg in sent if "IPY_MODEL_" in repr(msg["state"])]
    assert naming == []
    assert list(t.steps_box.children) == t.cards and len(t.cards) == len(t.pipeline)
    assert all("wb-step" in c._dom_classes for c in t.cards)
    sent.clear()
    t.remove_step(0)  # a rebuild: the column's children change, as one update
    assert [sorted(msg["state"]) for w, msg in sent if w is t.steps_box] == [["children"]]
    t.close()


@pytest.mark.parametrize("mode", ["L", "RGB", "P", "LA"])
def test_a_tiny_cell_is_a_png_that_decodes_to_the_image_pixels(mode):
    from workbench.views._augment_preview import _enlarged, _thumb

    rng = np.random.default_rng(3)
    for w, h in ((1, 1), (28, 28), (27, 13), (5, 40)):
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        im = PIL.Image.fromarray(a).convert(mode)
        data, fmt = _thumb(im, 96)
        assert fmt == "png"
        back = PIL.Image.open(io.BytesIO(data))
        back.load()  # the decoder checks every chunk's CRC and the zlib stream
        want = im if mode in ("L", "RGB") else im.convert("RGB")
        assert back.mode == want.mode and back.size == (w, h)
        assert np.array_equal(np.asarray(back), np.asarray(want))
        f = 96 // max(w, h)
        assert _enlarged(data, fmt, 96) == f' width="{w * f}" height="{h * f}"'
