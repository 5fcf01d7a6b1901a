"""Labeler: keys, buttons and the scripting API change the store; the view follows the store."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from workbench.assist import Assistant
from workbench.labels import LabelError, LabelStore
from workbench.views.labeler import Labeler


def key(k: str, **mods) -> dict:
    """A keydown as the brief's tests send it."""
    return {"type": "keydown", "key": k, **mods}


def browser_key(labeler: Labeler, k: str, code: str = "", **mods) -> None:
    """Deliver a keydown the way the front end does: a custom message to the KeyReader."""
    msg = {"type": "keydown", "key": k, "code": code, "shiftKey": False, "repeat": False}
    labeler._keys._handle_custom_msg({**msg, **mods}, [])


@pytest.fixture
def cat(small_catalog):
    return small_catalog


@pytest.fixture
def store(tmp_path, cat):
    return LabelStore(tmp_path, catalog=cat)


@pytest.fixture
def truth(cat) -> dict[str, str]:
    ok = cat.df[cat.df["status"] == "ok"]
    return dict(zip(ok["id"], ok["label"].astype(str), strict=True))


def labels(store: LabelStore, who: str = "ana") -> dict[str, object]:
    cur = store.current(annotator=who)
    return dict(zip(cur["id"], cur["value"], strict=True))


def test_builds_over_the_store_with_buttons_keys_and_escaped_names(cat, store):
    lab = Labeler(cat, store, annotator="ana")
    assert lab.store is store and lab.catalog is cat
    assert "wb-labeler" in lab._dom_classes
    assert lab.classes == ["<i>wasp", "ant", "bee"] == store.classes  # from catalog.classes
    assert lab.keymap == {"1": "<i>wasp", "2": "ant", "3": "bee"}
    assert [b.description for b in lab.class_buttons.values()] == [
        "1 · <i>wasp",
        "2 · ant",
        "3 · bee",
    ]
    assert lab.search is None  # 3 classes: buttons are enough
    assert len(lab.queue) == 60 and "ant/zz_truncated.png" not in lab.queue  # unreadable left out
    assert lab.current == "<i>wasp/00.png" == lab.queue[0]
    assert "&lt;i&gt;wasp/00.png" in lab.info.value and "<i>wasp" not in lab.info.value
    assert Image.open(io.BytesIO(lab.image.value)).size[0] == 384  # 20 px wide, upscaled
    assert "<b>0</b> / 60 done" in lab.progress_label.value


def test_digit_key_labels_commits_and_moves_on(cat, store):
    lab = Labeler(cat, store, annotator="ana")
    first, image, progress = lab.current, lab.image.value, lab.progress_label.value
    lab._on_key(key("3"))
    assert labels(store) == {first: "bee"}
    assert lab.current == lab.queue[1] and lab.image.value != image
    assert lab.progress_label.value != progress and "<b>1</b> / 60" in lab.progress_label.value
    # the same through the Event widget, as the browser delivers it
    second = lab.current
    browser_key(lab, "2", code="Digit2")
    assert labels(store)[second] == "ant"
    # seconds on the item are recorded; held-down keys and modifiers do nothing
    assert store.current(annotator="ana")["seconds"].notna().all()
    before = store.events_count()
    lab._on_key(key("1", repeat=True))
    lab._on_key(key("1", ctrlKey=True))
    lab._on_key({"type": "keyup", "key": "1"})
    lab._on_key(key("x"))  # no class on x
    assert store.events_count() == before and lab.error.message == ""


def test_label_is_in_the_store_before_the_next_image_shows(cat, store):
    lab = Labeler(cat, store, annotator="ana")
    seen: list[tuple[str, object, str | None]] = []

    def on_image(change):
        # the moment the next image bytes are set, the previous label must be on disk
        seen.append(("image", labels(LabelStore(store.path)).get(submitted[-1]), lab.current))

    def on_submit(sample_id, value):
        fresh = LabelStore(store.path)  # another connection: only committed data is visible
        seen.append(("callback", labels(fresh).get(sample_id), lab.current))

    submitted = [lab.current]
    lab.on_submit(on_submit)
    lab.image.observe(on_image, "value")
    lab.submit("ant")
    assert seen[0] == ("callback", "ant", submitted[0])  # before the view moved
    assert seen[1][:2] == ("image", "ant") and seen[1][2] != submitted[0]


def test_skip_undo_and_history(cat, store):
    lab = Labeler(cat, store, annotator="ana")
    a = lab.current
    lab.submit("<i>wasp")
    b = lab.current
    lab._on_key(key("s"))
    assert lab.current not in (a, b) and b not in labels(store)
    assert lab.progress["done"] == 2
    lab._on_key(key("Backspace"))  # undo the skip: back to b
    assert lab.current == b and lab.progress["done"] == 1
    lab.undo_button.click()  # undo the label of a: back to a, unlabeled
    assert lab.current == a and labels(store) == {}
    assert lab.undo() is None and "nothing to undo" in lab.error.message
    hist = store.history(annotator="ana")
    assert hist["kind"].tolist() == ["label", "skip", "undo", "undo"]
    assert hist["target"].iloc[2] == hist["event"].iloc[1]
    lab.skip_button.click()
    lab.submit("bee")
    assert labels(store) == {b: "bee"}


def test_browse_and_revisit_shows_the_label_then_relabel(cat, store):
    lab = Labeler(cat, store, annotator="ana")
    a = lab.current
    lab.submit("ant")
    lab._on_key(key("ArrowLeft"))
    assert lab.current == a and "your label: <b>ant</b>" in lab.info.value
    assert lab.class_buttons["ant"].button_style == "success"
    lab._on_key(key("ArrowRight"))
    assert lab.current == lab.queue[1] and lab.class_buttons["ant"].button_style == ""
    lab.go(a)
    lab.submit("bee")  # relabel: the latest decision counts, and the view moves on
    assert labels(store)[a] == "bee" and lab.current == lab.queue[1]
    lab.go(10_000)
    assert lab.current == lab.queue[-1]
    with pytest.raises(Exception, match="not one of the samples"):
        lab.go("nope.png")


def test_multi_label_toggle_enter_escape(cat, store):
    lab = Labeler(cat, store, annotator="ana", task="multi")
    a = lab.current
    assert lab.submit_button in lab.board.children[2].children
    lab._on_key(key("3"))
    lab._on_key(key("1"))
    assert lab.selected == ["<i>wasp", "bee"] and lab.class_buttons["bee"].value
    lab._on_key(key("3"))  # toggles off
    assert lab.selected == ["<i>wasp"] and not lab.class_buttons["bee"].value
    lab.class_buttons["ant"].value = True  # a click on the toggle button
    assert labels(store) == {}  # nothing until Enter
    lab._on_key(key("Enter"))
    assert labels(store) == {a: ["<i>wasp", "ant"]} and lab.selected == []
    b = lab.current
    lab._on_key(key("2"))
    lab._on_key(key("Escape"))
    assert lab.selected == []
    lab._on_key(key("Enter"))  # an empty set is an answer: none of these classes
    assert labels(store)[b] == []
    lab.go(a)
    assert lab.selected == ["<i>wasp", "ant"] and lab.class_buttons["ant"].value
    lab.submit(["bee", "ant", "bee"])
    assert labels(store)[a] == ["ant", "bee"]


def test_bad_input_shows_inline_error_and_records_nothing(cat, store):
    many = [f"class {k:02d}" for k in range(14)]
    lab = Labeler(cat, store, annotator="ana", classes=many)
    assert len(lab.classes) == 14 and len(lab.keymap) == 12 and lab.search is not None
    before, first = store.events_count(), lab.current
    lab.search.value = "unicorn"  # typed into the search box, then Enter
    assert "unknown class 'unicorn'" in lab.error.message and lab.error.layout.display is None
    assert store.events_count() == before and lab.current == first and lab.search.value == ""
    with pytest.raises(LabelError, match="unknown class"):
        lab.submit("unicorn")
    with pytest.raises(LabelError, match="one class name"):
        lab.submit(["ant"])
    assert store.events_count() == before and lab.current == first
    lab.search.value = "class 13"  # no button, found through the search box
    assert labels(store) == {first: "class 13"} and lab.error.message == ""
    multi = Labeler(cat, store, annotator="bo", task="multi")
    with pytest.raises(LabelError):
        multi.toggle("unicorn")
    assert "unknown class" in multi.error.message
    with pytest.raises(Exception, match="task must be"):
        Labeler(cat, store, annotator="ana", task="boxes")
    with pytest.raises(Exception, match="needs an assistant"):
        Labeler(cat, store, annotator="ana", order="margin")


def test_resume_after_recreating_the_view(cat, store, truth):
    lab = Labeler(cat, store, annotator="ana", order="random", seed=3)
    done = []
    for _ in range(4):
        done.append(lab.current)
        lab.submit(truth[lab.current])
    expected = lab.current
    lab.close()
    # a new kernel: new store object on the same file, new view
    again = Labeler(
        cat, LabelStore(store.path, catalog=cat), annotator="ana", order="random", seed=3
    )
    assert again.queue[:5] == [*done, expected] and again.current == expected
    assert again.progress["done"] == 4
    again.undo()
    assert again.current == done[-1]
    third = Labeler(
        cat, LabelStore(store.path, catalog=cat), annotator="ana", order="random", seed=3
    )
    assert third.current == done[-1]  # resumes at the undone item
    other = Labeler(cat, store, annotator="bo", order="random", seed=3)
    assert other.current == done[0]  # progress is per annotator


def test_finishing_everything(tmp_path, cat, truth):
    sub = cat.filter(cat.df["id"].isin(["ant/00.png", "ant/01.png", "bee/00.png"]))
    store = LabelStore(tmp_path / "s.db", catalog=cat)
    lab = Labeler(sub, store, annotator="ana")
    for _ in range(3):
        lab.submit(truth[lab.current])
    assert lab.current is None and "Every item is done" in lab.info.value
    assert lab.progress["done"] == lab.progress["total"] == 3
    with pytest.raises(LabelError, match="every item is done"):
        lab.submit("ant")
    lab.prev()
    assert lab.current == lab.queue[-1]


def test_prefetch_renders_ahead(small_catalog, tmp_path, truth):
    from workbench.catalog import Catalog
    from workbench.thumbs import ThumbnailCache

    fresh = Catalog(small_catalog.df, small_catalog.root, thumbs=ThumbnailCache())
    store = LabelStore(tmp_path, catalog=fresh)
    lab = Labeler(fresh, store, annotator="ana", prefetch=3)
    lab.wait()
    ahead = lab.queue[1:4]
    assert list(lab._prefetched) == ahead and fresh.thumbs.misses == 4
    lab.submit(truth[lab.current])
    lab.submit(truth[lab.current])
    lab.wait()
    # the two images shown came from the prefetch; 2 more were rendered ahead
    assert fresh.thumbs.misses == 6 and list(lab._prefetched) == lab.queue[3:6]
    cold = Catalog(small_catalog.df, small_catalog.root, thumbs=ThumbnailCache())
    nope = Labeler(cold, LabelStore(tmp_path / "b.db"), annotator="ana", prefetch=0)
    assert not nope._prefetched and cold.thumbs.misses == 1


@pytest.fixture
def embeddings(cat):
    """Features that separate the classes (with noise), one row per catalog row."""
    rng = np.random.default_rng(0)
    names = ["<i>wasp", "ant", "bee"]
    centre = {n: rng.normal(0, 1, 8) * 3 for n in names}
    X = rng.normal(0, 1, (len(cat.df), 8))
    for k, lab in enumerate(cat.df["label"].astype(str)):
        X[k] += centre.get(lab, 0)
    return X


def test_assistant_suggestions_accept_and_background_refit(cat, store, truth, embeddings):
    assistant = Assistant(cv=3)
    lab = Labeler(
        cat, store, annotator="ana", assistant=assistant, embeddings=embeddings, refit_every=3
    )
    assert lab.suggestions == [] and "waiting for labels" in lab.assistant_label.value
    np.testing.assert_array_equal(assistant.scale_on, embeddings)  # scaled on every sample
    with pytest.raises(LabelError, match="no suggestion"):
        lab.accept()
    order = [
        "<i>wasp/00.png",
        "ant/00.png",
        "bee/00.png",
        "<i>wasp/01.png",
        "ant/01.png",
        "bee/01.png",
    ]
    for sid in order:
        lab.go(sid)
        lab.submit(truth[sid])
    lab.refit()  # refits so far ran in the background on the labels of their moment
    lab.wait()
    assert assistant.n_labels_ == 6 and "cross-validated accuracy" in lab.assistant_label.value
    assert len(lab.suggestions) == 3 and lab.suggestions[0][0] == truth[lab.current]
    assert lab.suggestion_buttons[0].description.startswith("a / ⇧1")
    assert lab.suggestion_buttons[0].layout.display is None
    sid = lab.current
    lab._on_key(key("a"))  # accept the top suggestion
    row = store.current(annotator="ana").set_index("id").loc[sid]
    assert row["value"] == truth[sid] and row["source"] == "model"
    sid, second = lab.current, lab.suggestions[1][0]
    browser_key(lab, "@", code="Digit2", shiftKey=True)  # Shift+2: the second suggestion
    assert labels(store)[sid] == second
    lab.suggestion_buttons[0].click()
    assert len(labels(store)) == 9
    lab.wait()
    assert assistant.n_labels_ == 9  # refit after every 3 labels, in the background


def test_own_classifier_keeps_its_own_scaling(cat, store, embeddings):
    from sklearn.linear_model import LogisticRegression

    assistant = Assistant(LogisticRegression(), cv=None)
    Labeler(cat, store, annotator="ana", assistant=assistant, embeddings=embeddings).close()
    assert assistant.scale_on is None


def test_active_order_puts_uncertain_items_next(cat, store, truth, embeddings):
    assistant = Assistant(cv=None)
    seed_ids = ["<i>wasp/00.png", "ant/00.png", "bee/00.png"]
    store.add_classes(["<i>wasp", "ant", "bee"])
    for sid in seed_ids:
        store.label(sid, truth[sid], annotator="ana")
    lab = Labeler(
        cat, store, annotator="ana", order="least_confidence", assistant=assistant,
        embeddings=embeddings, refit_every=1,
    )  # fmt: skip
    assert lab.queue[:3] == seed_ids and lab.current == lab.queue[3]  # fitted once at start
    rows = [lab._row[s] for s in lab.queue[3:]]
    top = assistant.predict_proba(embeddings[rows]).max(axis=1)
    assert np.all(np.diff(top) >= -1e-12)  # least confident first
    lab.submit(truth[lab.current])
    lab.wait()
    assert assistant.n_labels_ == 4
    rows = [lab._row[s] for s in lab.queue[lab.index + 1 :]]  # the one shown stays
    top = assistant.predict_proba(embeddings[rows]).max(axis=1)
    assert np.all(np.diff(top) >= -1e-12)  # re-ranked with the new model
    assert len(set(lab.queue)) == len(lab.queue) == 60


def test_confirms_each_decision_and_counts_what_stands(cat, store):
    lab = Labeler(cat, store, annotator="ana")
    assert lab.status.value == ""
    lab._on_key(key("2"))
    assert "ant ✓ saved" in lab.status.value
    lab.skip_button.click()
    assert "skipped" in lab.status.value and "2 this session" in lab.progress_label.value
    browser_key(lab, "Backspace")
    assert "undone" in lab.status.value
    assert "<b>1</b> / 60 done" in lab.progress_label.value
    assert "1 this session" in lab.progress_label.value  # the undo took one back
    assert "per minute" not in lab.progress_label.value  # no rate from two quick keys
    lab.next_button.click()
    assert lab.status.value == ""  # a confirmation belongs to the item it was made on
    # Every key of the view is read through one KeyReader, at the view's root.
    assert lab._keys.root_class == "wb-labeler" and "wb-labeler" in lab._dom_classes
    assert {"1", "2", "3", "Enter", "s", "Backspace", "ArrowLeft", "ArrowRight"} <= set(
        lab._keys.shortcuts
    )


def test_blind_labeling_hides_the_id(cat, store):
    first = cat.ids[0]
    store.add_classes(["ant", "bee", "<i>wasp"])
    store.label(first, "ant", annotator="bo")
    lab = Labeler(cat, store, annotator="ana")
    assert lab.blind and lab.current is not None
    assert lab.current not in lab.info.value and "item 1 of 60" in lab.info.value
    seen = Labeler(cat, store, annotator="ana", blind=False)
    assert "item 1 of 60" in seen.info.value and "&lt;i&gt;wasp/00.png" in seen.info.value


def test_a_key_reaches_the_browser_as_one_message(cat, store, monkeypatch):
    """Progress, confirmation, image and info change together: one widget message per key."""
    import ipywidgets

    lab = Labeler(cat, store, annotator="ana")
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        ipywidgets.Widget, "_send", lambda w, msg, buffers=None: sent.append((w.model_id, msg))
    )
    for k in ("1", "s", "Backspace", "ArrowRight"):
        before = lab.image.value
        browser_key(lab, k)
        assert len(sent) == 1, (k, [m["state"].keys() for _, m in sent])
        ((model, msg),) = sent
        assert model == lab.card.model_id and lab.image.value != before
        assert ["image"] in msg["buffer_paths"] and "info" in msg["state"]
        sent.clear()
