"""ReviewQueue: keys, buttons, filters and the scripting API record review events; errors show
inline and the view keeps working."""

from __future__ import annotations

import pytest

from workbench.errors import LabelError
from workbench.labels import LabelStore
from workbench.views.review import ReviewQueue

CLASSES = ["<i>wasp", "ant", "bee"]


def key(k: str, **mods) -> dict:
    return {"type": "keydown", "key": k, "code": "", "repeat": False, **mods}


def browser_key(view: ReviewQueue, k: str, **mods) -> None:
    """A keydown as the front end delivers it: a custom message to the KeyReader."""
    view._keys._handle_custom_msg(key(k, **mods), [])


@pytest.fixture
def store(tmp_path, small_catalog):
    """Three items in conflict (one tied), one unanimous, one gold item that ana missed."""
    s = LabelStore(tmp_path, catalog=small_catalog)
    s.add_classes(CLASSES)
    s.label("ant/00.png", "ant", annotator="ana")
    s.label("ant/00.png", "bee", annotator="bo")  # tie
    for who, v in (("ana", "bee"), ("bo", "bee"), ("cy", "ant")):
        s.label("bee/00.png", v, annotator=who)  # 2 : 1
    for who, v in (("ana", "<i>wasp"), ("bo", "<i>wasp"), ("cy", "ant")):
        s.label("<i>wasp/00.png", v, annotator=who)  # 2 : 1
    s.label("ant/01.png", "ant", annotator="ana")
    s.label("ant/01.png", "ant", annotator="bo")  # unanimous: not in the queue
    s.label("bee/01.png", "ant", annotator="ana")  # gold says bee
    return s


def reviews(store: LabelStore) -> list[tuple]:
    h = store.history(kind="review")
    return list(zip(h["id"], h["annotator"], h["round"], h["value"], h["target"], strict=True))


def test_builds_with_every_label_consensus_and_escaped_html(small_catalog, store):
    view = ReviewQueue(small_catalog, store, reviewer="rita", gold={"bee/01.png": "bee"})
    assert "wb-review" in view._dom_classes and view.store is store
    assert view.queue[:2] == ["ant/00.png", "bee/01.png"]  # tie and gold first (severity 1)
    assert set(view.queue[2:]) == {"bee/00.png", "<i>wasp/00.png"}
    assert "ant/01.png" not in view.queue
    view.go("<i>wasp/00.png")
    assert "&lt;i&gt;wasp/00.png" in view.info.value and "<i>wasp" not in view.info.value
    assert "&lt;i&gt;wasp" in view.labels_html.value and "<i>wasp" not in view.labels_html.value
    for who in ("ana", "bo", "cy"):
        assert who in view.labels_html.value
    assert "67%" in view.consensus_html.value  # 2 of 3 votes
    view.go("bee/01.png")
    assert "gold answer: <b>bee</b>" in view.labels_html.value
    assert "<b>0</b> / 4 reviewed" in view.progress_label.value


def test_keys_accept_correct_unsure_skip_undo_write_review_events(small_catalog, store):
    view = ReviewQueue(small_catalog, store, reviewer="rita", gold={"bee/01.png": "bee"})
    assert view.session.round == 1
    view.go("bee/00.png")
    bee_votes = store.current().query("id == 'bee/00.png' and value == 'bee'")["event"]
    browser_key(view, "Enter")  # accept the consensus: bee, the first bee vote is the target
    assert reviews(store)[-1] == ("bee/00.png", "rita", 1, "accept", int(bee_votes.min()))
    assert "bee ✓ accepted" in view.status.value
    assert view.current != "bee/00.png"

    view.go("ant/00.png")  # tied: Enter has nothing to accept; the error shows inline
    n = len(reviews(store))
    browser_key(view, "Enter")
    assert "tied" in view.error.message and len(reviews(store)) == n
    browser_key(view, "1")  # <i>wasp: nobody said so: reject + the reviewer's label
    assert reviews(store)[-1][:4] == ("ant/00.png", "rita", 1, "reject")
    fix = store.current(annotator="rita")
    assert fix[["id", "value", "round"]].values.tolist() == [["ant/00.png", "<i>wasp", 1]]
    assert view.error.message == "" and "&lt;i&gt;wasp ✓ corrected" in view.status.value

    view.go("<i>wasp/00.png")
    view._on_key(key("u"))
    assert reviews(store)[-1][:4] == ("<i>wasp/00.png", "rita", 1, "unsure")
    before = store.events_count()
    view.go("bee/01.png")
    view._on_key(key("s"))  # skip records nothing
    assert store.events_count() == before and view.current != "bee/01.png"
    view._on_key(key("a", repeat=True))  # a held key decides nothing
    assert store.events_count() == before

    # undo twice: the unsure, then the correction (its label is undone too)
    view._on_key(key("Backspace"))
    assert view.current == "<i>wasp/00.png" and view.session.decision("<i>wasp/00.png") is None
    view.undo_button.click()
    assert view.current == "ant/00.png" and store.current(annotator="rita").empty
    assert "<b>1</b> / 4 reviewed" in view.progress_label.value


def test_buttons_and_digits_pick_an_annotators_label_as_accept(small_catalog, store):
    view = ReviewQueue(small_catalog, store, reviewer="rita")
    view.go("ant/00.png")
    bo = int(store.current(annotator="bo").set_index("id").loc["ant/00.png", "event"])
    view.class_buttons["bee"].click()  # bo said bee: accept bo's label
    assert reviews(store)[-1] == ("ant/00.png", "rita", 1, "accept", bo)
    view.go("bee/00.png")
    view.unsure_button.click()
    view.go("<i>wasp/00.png")
    view.accept_button.click()
    assert [r[3] for r in reviews(store)] == ["accept", "unsure", "accept"]
    assert view.current is None and "Every item is reviewed" in view.info.value


def test_filters_change_the_queue_and_follow_the_script(small_catalog, store):
    view = ReviewQueue(small_catalog, store, reviewer="rita", gold={"bee/01.png": "bee"})
    view.reason_filter.value = "gold"
    assert view.queue == ["bee/01.png"] and view.current == "bee/01.png"
    view.reason_filter.value = "disagreement"
    assert set(view.queue) == {"ant/00.png", "bee/00.png", "<i>wasp/00.png"}
    view.annotator_filter.value = "cy"
    assert set(view.queue) == {"bee/00.png", "<i>wasp/00.png"}
    view.class_filter.value = "<i>wasp"
    assert view.queue == ["<i>wasp/00.png"]
    view.filter(reason="tie")
    assert view.queue == ["ant/00.png"]
    assert (view.reason_filter.value, view.class_filter.value) == ("tie", "(any)")
    view.filter(reason="label_error")  # nothing: the view says so and keeps working
    assert view.queue == [] and "No item matches" in view.info.value
    view.reason_filter.value = "(any)"
    assert len(view.queue) == 4


def test_errors_show_inline_and_the_view_keeps_working(small_catalog, store):
    view = ReviewQueue(small_catalog, store, reviewer="rita")
    with pytest.raises(LabelError):
        view.set_label("unicorn")
    assert "unknown class 'unicorn'" in view.error.message
    assert store.history(kind="review").empty
    view.accept_button.click()  # the tied first item: shown inline, not raised
    assert "tied" in view.error.message and store.history(kind="review").empty
    assert view.undo() is None and "nothing to undo" in view.error.message
    view.go("bee/00.png")
    view.accept()
    assert view.error.message == "" and len(reviews(store)) == 1


def test_note_field_goes_with_the_next_decision(small_catalog, store):
    view = ReviewQueue(small_catalog, store, reviewer="rita")
    view.go("bee/00.png")
    view.note.value = "<b>looks like a bee</b>"
    view.accept()
    extra = store.history(kind="review")["extra"].iloc[-1]
    assert extra == {"note": "<b>looks like a bee</b>"} and view.note.value == ""
