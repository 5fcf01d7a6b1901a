"""BoxLabeler: boxes in original-image pixels in the store, display pixels in the widget."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from workbench import Catalog
from workbench.labels import LabelError, LabelStore
from workbench.views.boxes import BoxLabeler

SIZES = {"a_tiny.png": (28, 20), "b_wide.png": (1000, 600), "c_tall.png": (300, 451)}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("boxes")
    rng = np.random.default_rng(1)
    for name, (w, h) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name)
    return Catalog.from_folder(root, labels=None, progress=False)


@pytest.fixture
def store(tmp_path, photos):
    return LabelStore(tmp_path, catalog=photos)


def current_boxes(store: LabelStore, who: str = "ana") -> dict[str, list]:
    cur = store.current(annotator=who, task="boxes")
    return dict(zip(cur["id"], cur["value"], strict=True))


def shown_size(b: BoxLabeler) -> tuple[int, int]:
    return Image.open(io.BytesIO(b.bbox.image_bytes)).size


def browser_answers(b: BoxLabeler, **state) -> None:
    """What the browser sends after the view's flush requests: its pending drawing state and
    ``flushed`` (the numbers of the requests it answered, the last 64), in one message."""
    b.bbox.set_state({**state, "flushed": list(range(1, b.bbox._requested + 1))[-64:]})


@pytest.mark.parametrize("sid", list(SIZES))
def test_coordinates_round_trip_both_ways(photos, store, sid):
    b = BoxLabeler(photos, store, annotator="ana", classes=["cat", "dog"], display_size=400)
    b.go(sid)
    w, h = SIZES[sid]
    dw, dh = shown_size(b)
    assert max(dw, dh) == 400  # tiny images are enlarged, large ones reduced
    assert b.scale == pytest.approx((w / dw, h / dh))
    original = [
        [0, 0, w, h, "cat"],
        [w * 0.25, h * 0.5, w * 0.5, h * 0.25, "dog"],
        [1, 2, 3, 4, "cat"],
    ]
    shown = b.to_display(original)
    assert shown[0] == pytest.approx({"x": 0, "y": 0, "width": dw, "height": dh, "label": "cat"})
    back = b.to_original(shown)
    assert np.allclose([x[:4] for x in back], [x[:4] for x in original], atol=1e-3)
    assert [x[4] for x in back] == ["cat", "dog", "cat"]
    # what a person draws: whole display pixels -> original pixels -> the same display pixels
    drawn = [{"x": 10, "y": 12, "width": 50, "height": 40, "label": "dog"}]
    again = b.to_display(b.to_original(drawn))
    # originals are kept to 1/1000 pixel, which is 1/1000 / scale display pixels
    assert again[0] == pytest.approx(drawn[0], abs=0.6e-3 / min(b.scale))


def test_drawn_boxes_are_normalised_clipped_and_empty_ones_dropped(photos, store):
    b = BoxLabeler(photos, store, annotator="ana", classes=["cat"], display_size=400)
    b.go("b_wide.png")  # 1000x600 shown at 400x240: 2.5 original px per display px
    drawn = [
        {"x": 100, "y": 100, "width": -40, "height": -20, "label": "cat"},  # dragged up-left
        {"x": 390, "y": 230, "width": 50, "height": 50, "label": "cat"},  # over the edge
        {"x": 5, "y": 5, "width": 0, "height": 0, "label": "cat"},  # a click
    ]
    assert b.to_original(drawn) == [
        [150.0, 200.0, 100.0, 50.0, "cat"],
        [975.0, 575.0, 25.0, 25.0, "cat"],
    ]


def test_pre_annotations_are_shown_and_submitted_in_original_pixels(photos, store):
    pre = {"b_wide.png": [[100, 50, 200, 100, "dog"]]}
    b = BoxLabeler(photos, store, annotator="ana", classes=["cat", "dog"], pre_annotations=pre)
    assert "wb-boxlabeler" in b._dom_classes and "wb-bbox" in b.bbox._dom_classes
    assert b.current == "a_tiny.png" and b.bbox.bboxes == []
    b.submit([])  # nothing to box on this one: an answer too
    assert b.current == "b_wide.png"
    sx, sy = b.scale
    assert b.bbox.bboxes == [
        pytest.approx(
            {"x": 100 / sx, "y": 50 / sy, "width": 200 / sx, "height": 100 / sy, "label": "dog"}
        )
    ]
    assert "1 pre-annotated box" in b.info.value
    b.add_box(500, 300, 100, 80, "cat")  # edit: one more box
    b._on_bbox_submit()  # what the widget's Submit button (or Enter) calls
    browser_answers(b)
    assert current_boxes(store) == {
        "a_tiny.png": [],
        "b_wide.png": [[100.0, 50.0, 200.0, 100.0, "dog"], [500.0, 300.0, 100.0, 80.0, "cat"]],
    }
    assert b.current == "c_tall.png" and b.bbox.bboxes == []
    with pytest.raises(Exception, match="not in the catalog"):
        BoxLabeler(photos, store, annotator="ana", classes=["cat"], pre_annotations={"x.png": []})


def test_widget_messages_submit_skip_and_undo(photos, store):
    b = BoxLabeler(photos, store, annotator="ana", classes=["cat", "dog"], display_size=200)
    seen = []
    b.on_submit(lambda sid, value: seen.append((sid, value, current_boxes(store).get(sid))))
    b.bbox.bboxes = [{"x": 20, "y": 40, "width": 100, "height": 60, "label": "dog"}]
    image = b.bbox.image_bytes
    b.bbox._handle_custom_msg({"type": "submit"}, [])  # the browser's Submit
    browser_answers(b)
    sx, sy = 28 / 200, 20 / 143
    assert seen[0][0] == "a_tiny.png" and seen[0][1] == seen[0][2]  # committed before the move
    assert seen[0][1][0][:4] == pytest.approx([20 * sx, 40 * sy, 100 * sx, 60 * sy], abs=1e-3)
    assert b.current == "b_wide.png" and b.bbox.image_bytes != image
    b.bbox._handle_custom_msg({"type": "skip"}, [])
    browser_answers(b)
    assert b.current == "c_tall.png" and "b_wide.png" not in current_boxes(store)
    assert b.progress["done"] == 2
    b._on_key({"type": "keydown", "key": "Backspace"})  # undo the skip
    browser_answers(b)
    assert b.current == "b_wide.png" and b.progress["done"] == 1
    b.undo()  # undo the boxes: back on the first image, nothing stored
    assert b.current == "a_tiny.png" and current_boxes(store) == {} and b.bbox.bboxes == []
    kinds = store.history(annotator="ana", task="boxes")["kind"].tolist()
    assert kinds == ["label", "skip", "undo", "undo"]


def test_keys_choose_the_class_and_bad_boxes_record_nothing(photos, store):
    b = BoxLabeler(photos, store, annotator="ana", classes=["cat", "dog", "<b>owl"])
    assert b.bbox.label == "cat" and b.bbox.classes == ["cat", "dog", "<b>owl"]
    b._on_key({"type": "keydown", "key": "3"})
    assert b.bbox.label == "<b>owl"
    b._keys._handle_custom_msg({"type": "keydown", "key": "2", "code": "Digit2"}, [])
    assert b.bbox.label == "dog"
    b.add_box(1, 1, 5, 5)
    assert b.boxes == [[1.0, 1.0, 5.0, 5.0, "dog"]]
    b.bbox.label = "cat"  # a click on the widget's class list
    assert b.bbox.label == "cat"
    before = store.events_count()
    b.bbox.bboxes = [{"x": 10, "y": 10, "width": 20, "height": 20, "label": "unicorn"}]
    b._on_bbox_submit()
    browser_answers(b)
    assert "unicorn" in b.error.message and store.events_count() == before
    with pytest.raises(LabelError):
        b.submit([[0, 0, 500, 5, "cat"]])  # leaves the 28x20 image
    assert "leaves the 28x20 image" in b.error.message and store.events_count() == before
    with pytest.raises(LabelError):
        b.select_class("unicorn")
    b._on_key({"type": "keydown", "key": "9"})  # no 9th class: nothing happens
    assert b.bbox.label == "cat" and b.current == "a_tiny.png"
    assert "&lt;b&gt;owl" not in b.info.value  # info holds the id, escaped
    b.submit([[0, 0, 10, 10, "cat"]])
    assert b.error.message == ""


def test_resume_shows_the_stored_boxes(photos, store):
    b = BoxLabeler(photos, store, annotator="ana", classes=["cat"])
    b.submit([[2, 3, 10, 8, "cat"]])
    b.close()
    again = BoxLabeler(photos, LabelStore(store.path, catalog=photos), annotator="ana")
    assert again.classes == ["cat"] and again.current == "b_wide.png"
    again.prev()
    assert again.current == "a_tiny.png" and again.boxes == [[2.0, 3.0, 10.0, 8.0, "cat"]]
    assert "1 box stored" in again.info.value


def test_pre_annotations_from_a_model_or_import_in_the_store(photos, store):
    store.add_classes(["cat", "dog"])
    store.suggest("a_tiny.png", [[1, 1, 10, 10, "cat"]], model="detector", task="boxes")
    box = [[5, 5, 50, 60, "dog"]]
    store.label("c_tall.png", box, annotator="detector", source="import", task="boxes")
    b = BoxLabeler(photos, store, annotator="ana", pre_annotations="detector")
    assert b.pre_annotations == {
        "a_tiny.png": [[1.0, 1.0, 10.0, 10.0, "cat"]],
        "c_tall.png": [[5.0, 5.0, 50.0, 60.0, "dog"]],
    }
    assert b.current == "a_tiny.png" and b.boxes == [[1.0, 1.0, 10.0, 10.0, "cat"]]
    b.submit()
    assert current_boxes(store)["a_tiny.png"] == [[1.0, 1.0, 10.0, 10.0, "cat"]]
    with pytest.raises(Exception, match="no boxes \\(task 'boxes'\\) by 'nobody'"):
        BoxLabeler(photos, store, annotator="ana", pre_annotations="nobody")


def test_one_toolbar_one_class_picker_and_the_class_resets_per_image(photos, store):
    b = BoxLabeler(photos, store, annotator="ana", classes=["cat", "dog"], display_size=200)
    assert b.bbox.hide_buttons and b.bbox.classes == ["cat", "dog"]  # the one class picker
    assert [x.description for x in b.tools.children] == [
        "Submit (Enter)", "Skip (s)", "Undo (⌫)", "◀ Back", "Forward ▶",
    ]  # fmt: skip
    assert not hasattr(b, "class_buttons")
    b._on_key({"type": "keydown", "key": "2"})
    assert b.bbox.label == "dog"
    b.add_box(1, 1, 5, 5)
    b._keys._handle_custom_msg({"type": "keydown", "key": "Enter", "code": "Enter"}, [])
    browser_answers(b)
    assert current_boxes(store) == {"a_tiny.png": [[1.0, 1.0, 5.0, 5.0, "dog"]]}
    assert "1 box ✓ saved" in b.status.value
    assert b.bbox.label == "cat"  # the next image starts from the first class
    b._keys._handle_custom_msg({"type": "keydown", "key": "s", "code": "KeyS"}, [])
    browser_answers(b)
    assert "skipped" in b.status.value and b.current == "c_tall.png"
    assert b._keys.inner_selector == ".wb-bbox" and "s" in b._keys.inner_keys
    b.submit_button.click()
    browser_answers(b)
    assert "no boxes ✓ saved" in b.status.value and current_boxes(store)["c_tall.png"] == []


def test_a_key_waits_for_the_box_the_browser_still_holds(photos, store):
    """The kernel was busy while a box was drawn: the press reached it, the release is still in
    the browser when Enter and then s arrive. Both wait for the flush; they then run in order,
    on the finished box, and no late drawing lands on the next image."""
    b = BoxLabeler(photos, store, annotator="ana", classes=["cat"], display_size=200)
    pressed = {"x": 20, "y": 20, "width": 0, "height": 0, "label": "cat"}
    b.bbox.set_state({"bboxes": [pressed]})  # the press: an empty box
    b._keys._handle_custom_msg({"type": "keydown", "key": "Enter", "code": "Enter"}, [])
    b._keys._handle_custom_msg({"type": "keydown", "key": "s", "code": "KeyS"}, [])
    assert b.current == "a_tiny.png" and current_boxes(store) == {}  # nothing acted yet
    assert b.bbox._requested == 2 and len(b.bbox._waiting) == 2
    released = {**pressed, "width": 100, "height": 70}
    browser_answers(b, bboxes=[released], selected_index=0)  # the release, then the answer
    sx, sy = 28 / 200, 20 / 143
    assert current_boxes(store)["a_tiny.png"][0][:4] == pytest.approx(
        [20 * sx, 20 * sy, 100 * sx, 70 * sy], abs=1e-3
    )
    assert b.current == "c_tall.png" and "b_wide.png" not in current_boxes(store)  # skipped
    assert b.bbox.bboxes == [] and b.bbox._waiting == []
    b.bbox.set_state({"flushed": [1, 2]})  # the same answers again (a second tab): nothing
    assert b.current == "c_tall.png"
    assert store.history(annotator="ana", task="boxes")["kind"].tolist() == ["label", "skip"]


def test_a_key_whose_request_no_page_answered_never_acts_later(photos, store):
    """Enter, then the page reloads before answering (request 3 lost); the annotator presses
    Enter again (request 4). One press, one submit: the lost one is dropped, not run late."""
    b = BoxLabeler(photos, store, annotator="ana", classes=["cat"], display_size=200)
    b.bbox.set_state({"flushed": [1, 2]})  # a page that answered two requests before
    b.bbox._requested = 2
    b.add_box(1, 1, 5, 5)
    b._on_key({"type": "keydown", "key": "Enter"})  # request 3: lost with the old page
    b._on_key({"type": "keydown", "key": "Enter"})  # request 4
    b.bbox.set_state({"flushed": [1, 2, 4]})
    assert current_boxes(store) == {"a_tiny.png": [[1.0, 1.0, 5.0, 5.0, "cat"]]}
    assert b.current == "b_wide.png" and b.bbox._waiting == []
