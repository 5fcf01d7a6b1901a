import base64
import io
import re

import numpy as np
import pytest
from corpus import encode
from PIL import Image

from workbench import Catalog, Workspace
from workbench.clean import Decisions, check
from workbench.errors import ParameterError
from workbench.views import IssueReview


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    rng = np.random.default_rng(0)
    for i in range(30):
        small = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
        im = Image.fromarray(small).resize((64, 64), Image.Resampling.BICUBIC)
        (root / f"s{i:02d}.png").write_bytes(encode(im, "PNG"))
        if i < 3:  # three exact twins
            (root / f"s{i:02d}_twin.png").write_bytes(encode(im, "PNG"))
        if i == 5:
            (root / "s05_big.png").write_bytes(encode(im.resize((128, 128)), "PNG"))
    (root / "black.png").write_bytes(encode(Image.new("RGB", (64, 64)), "PNG"))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    cat = Catalog.from_folder(root, progress=False)
    return cat, check(cat, progress=False)


def _thumb_bytes(view):
    """The tiles' images as the body draws them (one HTML value for the whole page)."""
    tiles = re.findall(r'<img class="wb-thumb" src="data:image/\w+;base64,([^"]+)"', view.body.html)
    return [base64.b64decode(t) for t in tiles]


def _act(view, action, item):
    """A click in the body as the page sends it (a custom message of the body)."""
    view.body._handle_custom_msg({"type": "action", "action": action, "item": item}, [])


def _buttons_html(view, keeper):
    """The group head of ``keeper``'s group as drawn: {first word of the label: disabled?}."""
    head = next(h for h in view.body.html.split('<div class="wb-group">') if keeper in h)
    head = head.split('<div class="wb-tiles">')[0]
    found = re.findall(r"<button ([^>]*)>([^<]*)</button>", head)
    return {label.split()[0]: " disabled" in attrs for attrs, label in found}


def test_issue_selector_counts_and_switching(checked):
    cat, rep = checked
    v = IssueReview(cat, rep)
    labels = dict((value, label) for label, value in v.issue.options)
    assert labels["exact_duplicate"] == "exact_duplicate (6)"
    assert labels["unreadable"] == "unreadable (1)"
    v.select("exact_duplicate")
    assert v.is_group_view and len(v.items()) == 3
    assert all(len(g) == 2 for g in v.items())
    v.select("dark")
    assert ["black.png"] in v.items()
    with pytest.raises(ParameterError):
        v.select("nope")


def test_duplicate_groups_side_by_side_with_keeper_marked(checked):
    cat, rep = checked
    v = IssueReview(cat, rep)
    v.select("near_duplicate")
    group = next(g for g in v.items() if "s05.png" in g)
    assert group[0] == "s05_big.png"  # larger resolution is the keeper
    row = next(r for r in v.shown if r["group"][0] == "s05_big.png")
    tiles = row["tiles"]
    assert tiles[0]["keeper"] and "keeper" in tiles[0]["caption"]
    assert not tiles[1]["keeper"]
    assert '<div class="wb-tile wb-keeper">' in v.body.html


def test_threshold_slider_updates_flagged_set_and_histogram_live(checked):
    cat, rep = checked
    v = IssueReview(cat, rep)
    v.select("dark")
    before, hist = len(v.items()), v.histogram.value
    v.set_threshold(0.1)
    assert len(v.items()) > before and v.histogram.value != hist
    assert rep.thresholds["dark"] == 0.1
    v.select("near_duplicate")
    assert v.threshold.value == rep.thresholds["near_duplicate"]
    steps = v.threshold.value / v.threshold.step  # the browser snaps to the step: stay on it
    assert abs(steps - round(steps)) < 1e-9
    n = len(v.items())
    v.set_threshold(1.0)
    assert len(v.items()) <= n and "≤ <b>0</b>" in v.threshold_note.value
    v.set_threshold(1 - 20 / 128)
    assert len(v.items()) == n


def test_exclude_keep_saved_and_reversible(checked, tmp_path):
    cat, rep = checked
    ws = Workspace(tmp_path / "ws")
    v = IssueReview(cat, rep, workspace=ws)
    seen = []
    v.on_decision(lambda action, ids: seen.append((action, ids)))
    v.select("exact_duplicate")
    group = v.items()[0]
    assert 'data-wb-action="exclude-group"' in v.body.html
    _act(v, "exclude-group", group[0])
    assert Decisions(ws).excluded == set(group[1:]) and seen[-1] == ("exclude", group[1:])
    tile = v.shown[0]["tiles"][1]
    assert "excluded" in tile["caption"] and tile["excluded"]
    assert re.search(r'class="[^"]*wb-keep"[^>]*>Keep</button>', v.body.html)
    _act(v, "toggle", group[1])
    assert Decisions(ws).excluded == set()
    v.select("unreadable")
    v.exclude_all.click()
    assert Decisions(ws).excluded == {"broken.png"}
    assert "broken.png" not in Decisions(ws).apply(cat)


def test_paging_changes_tiles(checked):
    cat, rep = checked
    v = IssueReview(cat, rep, page_size=6)
    v.select("blurry")
    v.set_threshold(0.0)
    first = _thumb_bytes(v)
    assert len(first) == 6
    v.next_button.click()
    assert v.page == 1 and _thumb_bytes(v) != first
    v.prev_button.click()
    assert v.page == 0 and v.prev_button.disabled


def test_refuses_a_plain_dataframe(checked):
    cat, rep = checked
    with pytest.raises(ParameterError, match="IssueReport"):
        IssueReview(cat, rep.table)
    assert Image.open(io.BytesIO(IssueReview(cat, rep).histogram.value)).size[0] > 200


@pytest.mark.parametrize(("name", "bad"), [("page_size", 0), ("thumb_size", 2.5)])
def test_sizes_must_be_positive_integers(checked, name, bad):
    cat, rep = checked
    with pytest.raises(ParameterError, match=rf"^{name} must be an integer >= 1"):
        IssueReview(cat, rep, **{name: bad})


def test_decisions_from_the_view_are_in_the_workspace_store(checked, tmp_path):
    cat, rep = checked
    ws = Workspace(tmp_path / "ws")
    v = IssueReview(cat, rep, workspace=ws)
    v.exclude(["black.png"])
    assert ws.has("decisions") and Decisions(ws).history()["issue"].tolist() == [v.issue.value]


def _group_row(view, member):
    """The body row (group) holding ``member``."""
    return next(r for r in view.shown if member in r["group"])


def _twins(root, sizes):
    """A catalog of groups of identical images, one group per size in ``sizes``."""
    root.mkdir()
    rng = np.random.default_rng(1)
    for g, n in enumerate(sizes):
        im = Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8))
        for i in range(n):
            (root / f"g{g}_{i:02d}.png").write_bytes(encode(im, "PNG"))
    cat = Catalog.from_folder(root, progress=False)
    return cat, check(cat, progress=False, checks=["exact_duplicate"])


def test_keep_all_reverts_only_this_groups_own_exclusions(tmp_path):
    cat, rep = _twins(tmp_path / "imgs", [4, 3])
    ws = Workspace(tmp_path / "ws")
    v = IssueReview(cat, rep, workspace=ws)
    v.select("exact_duplicate")
    group, other = v.items()
    code = Decisions(ws)  # decisions taken in a notebook cell
    code.exclude([group[1]], issue="low_information")
    code.exclude([other[1]], issue="exact_duplicate")
    before = Decisions(ws).excluded
    _act(v, "exclude-group", group[0])
    assert Decisions(ws).excluded == before | set(group[1:])
    _act(v, "keep-group", group[0])
    assert Decisions(ws).excluded == before  # the notebook's exclusion for another reason stands
    _act(v, "keep-group", other[0])  # same issue, but decided in code
    assert Decisions(ws).excluded == before
    caption = _group_row(v, group[0])["tiles"][1]["caption"]
    assert "excluded</b> (low_information)" in caption  # says why it is still out
    tile = _group_row(v, other[0])["tiles"][1]
    assert "excluded</b> (earlier)" in tile["caption"]
    _act(v, "toggle", other[1])  # the tile's own Keep: the user's explicit call
    assert Decisions(ws).excluded == {group[1]}


def test_the_header_follows_decisions_taken_in_code(checked, tmp_path):
    cat, rep = checked
    ws = Workspace(tmp_path / "ws")
    v = IssueReview(cat, rep, workspace=ws)
    v.select("exact_duplicate")
    assert "0 excluded in total" in v.counts.value
    group = v.items()[0]
    Decisions(ws).exclude([group[1], "black.png"], issue="suggested")  # not through the view
    assert "2 excluded in total" in v.counts.value
    assert "1 of them excluded" in v.counts.value
    tile = _group_row(v, group[1])["tiles"][1]
    assert tile["excluded"] and "excluded" in tile["caption"]
    assert '<div class="wb-tile wb-excluded">' in v.body.html
    Decisions(ws).keep([group[1]])
    assert not _group_row(v, group[1])["tiles"][1]["excluded"]
    assert "wb-excluded" not in v.body.html and "1 excluded in total" in v.counts.value


def test_hidden_members_are_shown_before_a_group_button_acts_on_them(tmp_path):
    cat, rep = _twins(tmp_path / "imgs", [17])  # 12 tiles + 5 hidden
    v = IssueReview(cat, rep)
    v.select("exact_duplicate")
    keeper = v.items()[0][0]
    assert _buttons_html(v, keeper) == {"Exclude": True, "Keep": True, "Show": False}
    _act(v, "exclude-group", keeper)  # a click that reaches the kernel anyway does nothing
    assert v.excluded == set()
    assert re.search(r'class="[^"]*wb-more"[^>]*>Show all 17</button>', v.body.html)
    assert "wb-hidden-members" not in v.body.html
    v.exclude_duplicates(v.items()[0])  # from code it is the caller's call
    v.keep(v.items()[0])
    _act(v, "more", keeper)
    assert _buttons_html(v, keeper) == {"Exclude": False, "Keep": False}
    hidden = v.body.html.split("wb-hidden-members")[1]
    assert hidden.count("<img") == 5
    _act(v, "exclude-group", keeper)
    assert len(v.excluded) == 16
    hidden = v.body.html.split("wb-hidden-members")[1]
    assert hidden.count("wb-excluded") == 5  # hidden members dimmed too


def test_counts_name_what_they_count(checked):
    cat, rep = checked
    v = IssueReview(cat, rep)
    v.select("exact_duplicate")
    assert "3 groups (6 images)" in v.page_label.value
    v.select("unreadable")
    assert "1 image<" in v.page_label.value and "items" not in v.page_label.value
    assert "1 flagged" in v.counts.value


def test_tile_captions_show_the_report_scores(checked):
    cat, rep = checked
    v = IssueReview(cat, rep)
    t = rep.table
    for issue in ("dark", "near_duplicate", "exact_duplicate", "dark"):
        v.select(issue)
        if issue == "dark":  # a threshold move: what the view can show changes
            first = rep.thresholds[issue]
            v.set_threshold(0.1 if first != 0.1 else 0.2)
        rows = t[t["issue"] == issue]
        want = dict(zip(rows["id"], rows["score"], strict=True))
        tiles = [tile for row in v.shown for tile in row["tiles"]]
        assert tiles
        for tile in tiles:
            assert f"score {want[tile['id']]:.3f}" in tile["caption"]
        if issue == "dark":
            v.set_threshold(first)


def _sent_states(widget):
    """Every state message the widget sends to the front end, recorded on its comm."""
    sent = []
    send = widget.comm.send

    def record(data=None, *args, **kwargs):
        if isinstance(data, dict) and data.get("method") == "update":
            sent.append(dict(data["state"]))
        return send(data, *args, **kwargs)

    widget.comm.send = record
    return sent


def test_an_issue_switch_sends_the_threshold_as_one_message_on_its_step(checked):
    """The browser snaps a value to the step it holds and sends the snapped value back: the new
    step and value must arrive together, the value on the step (exact_duplicate: 1.000)."""
    cat, rep = checked
    v = IssueReview(cat, rep)
    v.select("near_duplicate")
    v.set_threshold(1 - 19 / 128)  # not on exact_duplicate's step of 0.005
    sent = _sent_states(v.threshold)
    v.select("exact_duplicate")
    assert [sorted(s) for s in sent] == [["step", "value"]]
    assert sent[0] == {"step": 0.005, "value": 1.0} == {"step": v.threshold.step, "value": 1.0}
    assert rep.thresholds["exact_duplicate"] == 1.0 and rep.thresholds["near_duplicate"] == (
        1 - 19 / 128
    )


def test_a_page_is_one_message_of_the_body(checked):
    cat, rep = checked
    v = IssueReview(cat, rep, page_size=6)
    v.select("blurry")
    v.set_threshold(0.0)
    sent = _sent_states(v.body)
    v.next_button.click()
    assert len(sent) == 1 and sent[0]["html"].count('<img class="wb-thumb"') == 6


def test_captions_break_ids_only_after_a_slash(tmp_path):
    root = tmp_path / "imgs" / "a_rather_long_folder_name"
    root.mkdir(parents=True)
    im = Image.fromarray(np.random.default_rng(2).integers(0, 256, (32, 32), dtype=np.uint8))
    for i in range(2):
        (root / f"an_equally_long_file_name_{i}.png").write_bytes(encode(im, "PNG"))
    cat = Catalog.from_folder(tmp_path / "imgs", progress=False)
    v = IssueReview(cat, check(cat, progress=False, checks=["exact_duplicate"]))
    caption = v.shown[0]["tiles"][0]["caption"]
    assert "anywhere" not in v.body.html and "break-all" not in v.body.html
    pieces = re.findall(r'<span class="wb-seg">([^<]*)</span>', caption)
    assert pieces == ["a_rather_long_folder_name/", "an_equally_long_file_name_0.png"]
    assert caption.count("<wbr>") == 1
