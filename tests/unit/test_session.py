"""LabelingSession without widgets: a real LabelStore (a temp SQLite file), a real Assistant."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import workbench.labels.session as session_module
from workbench import Catalog
from workbench.assist import Assistant
from workbench.errors import ParameterError
from workbench.labels import LabelError, LabelStore
from workbench.labels.rate import RateMeter
from workbench.labels.session import LabelingSession, clip_boxes

CLASSES = ["ant", "bee", "wasp"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """15 labelled images (5 per class, 20-40 px) plus one file that cannot be read."""
    root = tmp_path_factory.mktemp("session")
    rng = np.random.default_rng(0)
    for k, cls in enumerate(CLASSES):
        (root / cls).mkdir()
        for i in range(5):
            a = rng.integers(0, 256, (20 + k, 30 + i, 3), dtype=np.uint8)
            Image.fromarray(a).save(root / cls / f"{i:02d}.png")
    (root / "bee" / "zz_broken.png").write_bytes(b"not a png")
    return Catalog.from_folder(root, progress=False, workers=1)


@pytest.fixture
def store(label_url, catalog):
    return LabelStore(label_url, catalog=catalog)


@pytest.fixture
def truth(catalog) -> dict[str, str]:
    ok = catalog.df[catalog.df["status"] == "ok"]
    return dict(zip(ok["id"], ok["label"].astype(str), strict=True))


@pytest.fixture
def embeddings(catalog):
    """Small random features with a class signal, one row per catalog row."""
    rng = np.random.default_rng(1)
    centre = {c: rng.normal(0, 1, 6) * 2 for c in CLASSES}
    X = rng.normal(0, 1, (len(catalog.df), 6))
    for k, lab in enumerate(catalog.df["label"].astype(str)):
        X[k] += centre.get(lab, 0)
    return X


def reopen(store: LabelStore, catalog: Catalog) -> LabelStore:
    """Another connection to the same file, as after a kernel restart."""
    return LabelStore(store.url, catalog=catalog)


def test_queue_leaves_out_unreadable_files_and_offers_the_catalog_classes(catalog, store):
    s = LabelingSession(catalog, store, annotator="ana")
    assert len(s.queue) == 15 and "bee/zz_broken.png" not in s.queue
    assert s.queue == s.ids and s.current == s.queue[0] and s.position == 0
    assert s.classes == CLASSES == store.classes  # the catalog's, added to the empty store
    with pytest.raises(ParameterError, match="annotator"):
        LabelingSession(catalog, store, annotator="")
    with pytest.raises(ParameterError, match="needs an assistant"):
        LabelingSession(catalog, store, annotator="ana", order="margin")


def test_resume_at_the_last_position_then_the_next_item_not_done(catalog, store, truth):
    s = LabelingSession(catalog, store, annotator="ana", order="random", seed=4)
    q = list(s.queue)
    for sid in q[:3]:
        s.submit(truth[sid])
    s.go(q[7])
    s.skip()  # the last thing done: a skip of q[7]; the session moves to q[8]
    assert s.current == q[8]

    again = LabelingSession(
        catalog, reopen(store, catalog), annotator="ana", order="random", seed=4
    )
    assert again.queue == q  # the same seeded order
    assert again.current == q[8]  # resumed after q[7], not at q[3] (the first not done)
    assert again.progress["done"] == 4 and again.status(q[7]) == "skipped"
    assert again.undo() == q[7] and again.current == q[7]

    third = LabelingSession(
        catalog, reopen(store, catalog), annotator="ana", order="random", seed=4
    )
    assert third.current == q[7]  # the undone item is not done: resume on it
    other = LabelingSession(catalog, store, annotator="bo", order="random", seed=4)
    assert other.current == q[0]  # progress and resume are per annotator


def test_advance_wraps_round_to_items_passed_over_and_ends_when_all_are_done(catalog, store, truth):
    s = LabelingSession(catalog, store, annotator="ana")
    q = s.queue
    s.go(len(q) - 2)
    s.submit(truth[s.current])
    assert s.current == q[-1]
    s.submit(truth[s.current])
    assert s.current == q[0]  # wrapped round to the first item not done
    s.go(q[2])
    s.submit(truth[q[2]])
    assert s.current == q[3]  # moving on skips nothing that is not done
    for _ in range(len(q) - 3):
        s.submit(truth[s.current])
    assert s.current is None and s.position == len(q)
    assert s.progress["done"] == s.progress["total"] == len(q)
    with pytest.raises(LabelError, match="every item is done"):
        s.submit("ant")
    s.prev()
    assert s.current == q[-1]


def test_submit_is_committed_before_callbacks_and_before_moving_on(catalog, store, truth):
    s = LabelingSession(catalog, store, annotator="ana")
    seen = []
    s.on_submit(lambda sid, v: seen.append((sid, v, s.current, reopen(store, catalog))))
    first = s.current
    s.submit(truth[first])
    sid, value, current, fresh = seen[0]
    assert (sid, value, current) == (first, truth[first], first)  # not moved yet
    cur = fresh.current(annotator="ana")
    assert dict(zip(cur["id"], cur["value"], strict=True)) == {first: truth[first]}
    with pytest.raises(LabelError, match="one class name"):
        s.submit(["ant"])
    with pytest.raises(LabelError, match="unknown class"):
        s.submit("unicorn")
    assert store.events_count("label") == 1 and s.current == s.queue[1]


def test_skip_and_undo_walk_back_through_decisions(catalog, store):
    s = LabelingSession(catalog, store, annotator="ana")
    skipped, undone = [], []
    s.on_skip(skipped.append)
    s.on_undo(undone.append)
    a = s.current
    s.submit("ant")
    b = s.current
    s.skip()
    assert skipped == [b] and s.status(b) == "skipped" and s.value_of(b) is None
    assert s.progress["done"] == 2 and s.progress["session"] == 2
    s.go(a)
    s.submit("bee")  # relabel a: the latest decision counts
    assert s.value_of(a) == "bee" and s.progress["done"] == 2
    assert s.undo() == a and s.current == a and s.value_of(a) == "ant"  # the older label again
    assert s.undo() == b and s.current == b and s.status(b) == "todo"
    assert s.undo() == a and s.value_of(a) is None and s.progress["done"] == 0
    assert s.undo() is None  # nothing left to undo
    assert undone == [a, b, a]
    kinds = store.history(annotator="ana")["kind"].tolist()
    assert kinds == ["label", "skip", "label", "undo", "undo", "undo"]


class _Clock:
    now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_rate_is_a_persons_pace_over_a_window_of_wall_time(catalog, store, truth, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(session_module, "time", clock)
    s = LabelingSession(catalog, store, annotator="ana")
    s.rate = RateMeter(clock=clock.monotonic)  # the session's clock, which the test moves
    for _ in range(2):  # a script: no time passes between submits
        s.submit(truth[s.current])
    assert s.progress["per_minute"] is None and s.progress["session"] == 2
    for k in range(11):  # a person: 2 s an item
        clock.now += 2.0
        s.submit(truth[s.current])
        if k < 10:  # 11 decisions over 20 s are the least that give a rate
            assert s.progress["per_minute"] is None, k
    assert s.progress["per_minute"] == pytest.approx(30.0)
    clock.now += 3600.0  # an hour away: the window empties, and the item counts as 600 s
    assert s.progress["per_minute"] is None
    s.skip()
    assert s.progress["per_minute"] is None
    assert store.history(annotator="ana")["seconds"].tolist()[-2:] == [2.0, 600.0]


def test_rate_meter_needs_enough_decisions_over_enough_time():
    clock = _Clock()
    m = RateMeter(window=60.0, min_count=3, min_span=10.0, clock=clock.monotonic)
    assert not m.add(0.01)  # faster than a person reads: not counted
    for k in range(3):
        assert m.add(4.0, key=k)
        clock.now += 5.0
    assert m.per_minute == pytest.approx(60.0 * 2 / 10.0)  # 3 decisions over 10 s
    m.remove(2)  # undone
    assert m.per_minute is None
    clock.now += 60.0
    assert m.per_minute is None and not m._times  # the window moved past all of them
    with pytest.raises(ParameterError, match="min_count must be an integer >= 2"):
        RateMeter(min_count=True)


def test_undo_takes_back_session_count_and_done_alike(catalog, store, truth):
    s = LabelingSession(catalog, store, annotator="ana")
    s.submit(truth[s.current])
    s.skip()
    assert (s.progress["done"], s.progress["session"]) == (2, 2)
    assert s.last_action["kind"] == "skip"
    sid = s.undo()
    assert (s.progress["done"], s.progress["session"]) == (1, 1)
    assert s.last_action == {
        "kind": "undo",
        "id": sid,
        "value": None,
        "event": s.last_action["event"],
    }
    s.submit(truth[s.current])
    assert s.last_action["kind"] == "label" and s.last_action["value"] == truth[sid]
    assert (s.progress["done"], s.progress["session"]) == (2, 2)
    # An undo of a decision an earlier session made takes it from "done" only.
    t = LabelingSession(catalog, store, annotator="ana")
    assert t.undo() is not None and t.undo() is not None
    assert (t.progress["done"], t.progress["session"]) == (0, 0)


def test_blind_is_on_when_other_annotators_labeled_items_of_the_queue(catalog, store, truth):
    assert LabelingSession(catalog, store, annotator="ana").blind is False
    first = sorted(truth)[0]
    store.label(first, truth[first], annotator="bo")
    assert LabelingSession(catalog, store, annotator="ana").blind is True
    assert LabelingSession(catalog, store, annotator="ana", blind=False).blind is False
    assert LabelingSession(catalog, store, annotator="bo").blind is False  # only bo so far
    other_task = LabelingSession(catalog, store, annotator="ana", task="other")
    assert other_task.blind is False
    with pytest.raises(ParameterError, match="blind must be either True or False"):
        LabelingSession(catalog, store, annotator="ana", blind="yes")


def test_prefetch_renders_the_next_items_ahead_once(catalog, store, truth):
    calls: list[str] = []
    lock = threading.Lock()

    def render(sid: str) -> str:
        with lock:
            calls.append(sid)
        return f"image of {sid}"

    s = LabelingSession(catalog, store, annotator="ana", render=render, prefetch=2)
    s.wait()
    q = s.queue
    assert s.prefetched == q[1:3] == s.upcoming(2) and sorted(calls) == sorted(q[1:3])
    assert s.rendered(s.current) == f"image of {q[0]}" and calls[-1] == q[0]  # not ahead: now
    s.submit(truth[s.current])
    s.wait()
    assert s.rendered(s.current) == f"image of {q[1]}"  # taken from the prefetch
    assert sorted(calls) == sorted(q[:4]) and s.prefetched == q[2:4]


def test_refit_requests_while_one_runs_merge_into_one_more_refit(
    catalog, store, truth, embeddings, monkeypatch
):
    assistant = Assistant(cv=None)
    s = LabelingSession(
        catalog, store, annotator="ana", assistant=assistant, embeddings=embeddings, refit_every=1
    )
    changed: list[object] = []
    s.on_assistant(changed.append)
    fits: list[int] = []
    started, release = threading.Event(), threading.Event()
    real = assistant.refit_async

    def slow_refit(X, y):
        fits.append(len(y))
        started.set()
        assert release.wait(30)
        return real(X, y)

    monkeypatch.setattr(assistant, "refit_async", slow_refit)
    s.submit(truth[s.current])  # the first label asks for a refit
    assert started.wait(30)
    for _ in range(4):  # four more requests while that refit runs
        s.submit(truth[s.current])
    release.set()
    s.wait()
    assert fits == [1, 5]  # one refit more, on the labels of its moment, not four
    assert assistant.n_labels_ == 5 and changed == [None, None] and s.refit_error is None


def test_a_failed_refit_is_reported_and_labeling_goes_on(catalog, store, truth, embeddings):
    assistant = Assistant(cv=None)
    s = LabelingSession(catalog, store, annotator="ana", assistant=assistant, embeddings=embeddings)
    errors: list[object] = []
    s.on_assistant(errors.append)

    def broken(X, y):
        raise RuntimeError("out of memory")

    assistant.refit_async = broken  # type: ignore[method-assign]
    s.submit(truth[s.current])
    s.wait()
    assert len(errors) == 1 and "out of memory" in str(errors[0]) and s.refit_error is errors[0]
    s.submit(truth[s.current])
    assert store.events_count("label") == 2


def test_queue_merge_after_a_refit_keeps_what_moved_meanwhile(
    catalog, store, truth, embeddings, monkeypatch
):
    seeded = ["ant/00.png", "bee/00.png", "wasp/00.png"]
    store.add_classes(CLASSES)
    for sid in seeded:
        store.label(sid, truth[sid], annotator="ana")
    assistant = Assistant(cv=None)
    s = LabelingSession(
        catalog, store, annotator="ana", order="least_confidence", assistant=assistant,
        embeddings=embeddings, refit_every=100,
    )  # fmt: skip
    assert s.queue[:3] == seeded and s.current == s.queue[3]  # fitted once at the start

    ranking, release = threading.Event(), threading.Event()
    real = assistant.predict_proba

    def slow_predict(X):
        if threading.current_thread() is not threading.main_thread():
            ranking.set()  # the refit is ranking the items ahead of the position it read
            assert release.wait(30)
        return real(X)

    for _ in range(3):  # three more labels: the refit has something new to learn
        s.submit(truth[s.current])
    monkeypatch.setattr(assistant, "predict_proba", slow_predict)
    s.refit()
    assert ranking.wait(30)
    for _ in range(3):  # the annotator goes on while the refit ranks
        s.submit(truth[s.current])
    s.go(s.position - 1)
    s.go(s.position + 1)
    before, current = list(s.queue[: s.position + 1]), s.current
    release.set()
    s.wait()

    assert sorted(s.queue) == sorted(s.ids) and len(set(s.queue)) == len(s.queue)
    assert s.queue[: len(before)] == before and s.current == current  # nothing behind moved
    ahead = s.queue[s.position + 1 :]
    assert assistant.n_labels_ == 6 and not any(s.status(i) != "todo" for i in ahead)
    top = real(embeddings[[s.rows[i] for i in ahead]]).max(axis=1)
    assert np.all(np.diff(top) >= -1e-12)  # least confident first, by the new model


def test_clip_boxes_orders_corners_clips_and_drops_empty_boxes():
    drawn = [
        [250.0, 250.0, -100.0, -50.0, "cat"],  # dragged up and left
        [975.0, 575.0, 60.0, 60.0, "cat"],  # over the edge of the 1000x600 image
        [-10.0, 10.0, 20.0, 10.0, 7],  # starts left of the image; class made text
        [12.5, 12.5, 0.0, 0.0, "cat"],  # a click without a drag
        [980.0, 10.0, 0.0001, 30.0, "cat"],  # thinner than 1/1000 pixel
        [1 / 3, 2 / 3, 10.0, 10.0, "cat"],  # kept to 1/1000 pixel
    ]
    assert clip_boxes(drawn, (1000, 600)) == [
        [150.0, 200.0, 100.0, 50.0, "cat"],
        [975.0, 575.0, 25.0, 25.0, "cat"],
        [0.0, 10.0, 10.0, 10.0, "7"],
        [0.333, 0.667, 10.0, 10.0, "cat"],
    ]
    assert clip_boxes([[2000.0, 10.0, 50.0, 50.0, "cat"]], (1000, 600)) == []  # all outside


def test_box_session_checks_classes_and_geometry_and_starts_from_pre_annotations(catalog, store):
    pre = {"ant/01.png": [[1, 2, 5, 6, "cat"]]}
    s = LabelingSession(
        catalog, store, annotator="ana", kind="boxes", classes=["cat", "dog"],
        pre_annotations=pre, task="boxes",
    )  # fmt: skip
    assert s.classes == ["cat", "dog"] and s.current == "ant/00.png"
    assert s.original_size("ant/00.png") == (30, 20)
    with pytest.raises(LabelError, match="needs one of the classes"):
        s.submit([[1, 1, 5, 5, "ant"]])  # a class of the store, not a box class here
    with pytest.raises(LabelError, match="leaves the 30x20 image"):
        s.submit([[0, 0, 500, 5, "cat"]])  # given explicitly: checked, not clipped
    assert store.events_count("label") == 0
    s.submit([[0, 0, 30, 20, "dog"]])
    assert s.value_of("ant/00.png") == [[0.0, 0.0, 30.0, 20.0, "dog"]]
    assert s.start_value("ant/01.png") == [[1, 2, 5, 6, "cat"]]  # not decided: pre-annotated
    s.skip()
    assert s.start_value("ant/01.png") is None  # skipped: the annotator passed on them
    assert s.start_value("ant/00.png") == [[0.0, 0.0, 30.0, 20.0, "dog"]]
    s.submit([])  # nothing to box: an answer too
    assert s.value_of("ant/02.png") == [] and s.status("ant/02.png") == "labeled"
    with pytest.raises(ParameterError, match="not in the catalog"):
        LabelingSession(catalog, store, annotator="ana", kind="boxes", pre_annotations={"x": []})
    with pytest.raises(ParameterError, match="no boxes \\(task 'boxes'\\) by 'nobody'"):
        LabelingSession(
            catalog, store, annotator="ana", kind="boxes", pre_annotations="nobody", task="boxes"
        )


def test_the_session_module_needs_no_widgets():
    code = (
        "import sys, workbench.labels.session\n"
        "bad = [m for m in ('ipywidgets', 'IPython', 'ipyevents') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
