import base64
import html
import io
import re
import time

import pytest
from PIL import Image

from workbench import Catalog
from workbench.views import DataBrowser
from workbench.views.browser import _detail_html


def _tiles(b: DataBrowser) -> list[str]:
    """The HTML of each tile drawn in the grid (one widget value holds the page)."""
    return re.findall(r'<div class="wb-tile.*?</div></div>', b.grid.html)


def _tile_bytes(b: DataBrowser) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r'src="data:image/\w+;base64,([^"]+)"', b.grid.html)
    ]


def _selected(b: DataBrowser) -> list[int]:
    return [k for k, t in enumerate(_tiles(b)) if t.startswith('<div class="wb-tile wb-selected"')]


def _disabled(b: DataBrowser, action: str) -> bool:
    """Whether the pager's button for ``action`` ("prev", "next") is drawn disabled."""
    button = re.search(rf'<button [^>]*data-wb-action="{action}"[^>]*>', b.grid.html)
    assert button, f"no {action} button drawn"
    return " disabled" in button.group(0)


def _click_tile(b: DataBrowser, k: int) -> None:
    """A click on tile ``k`` as the page sends it (a custom message of the grid)."""
    b.grid._handle_custom_msg({"type": "action", "action": "select", "index": k}, [])


def test_paging_shows_new_thumbnails_and_clamps(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    assert b.pages == 6  # 62 samples
    assert len(_tiles(b)) == 12 and _disabled(b, "prev") and not _disabled(b, "next")
    assert b.tile_ids == b.visible_ids
    first = _tile_bytes(b)
    assert all(Image.open(io.BytesIO(x)).size[0] > 0 for x in first)
    b.grid._handle_custom_msg({"type": "action", "action": "next"}, [])  # as the page sends it
    assert b.page == 1 and _tile_bytes(b) != first
    assert "Page <b>2</b> / 6" in b.page_label and b.page_label in b.grid.html
    b.go(99)
    assert b.page == 5 and len(_tiles(b)) == 2 and _disabled(b, "next")
    b.grid.click("prev")
    assert b.page == 4
    b._on_key({"type": "keydown", "key": "ArrowRight"})
    assert b.page == 5


def test_flipping_back_uses_the_cache(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    b.next_page()
    misses = small_catalog.thumbs.misses
    b.prev_page()
    b.next_page()
    assert small_catalog.thumbs.misses == misses


def test_query_and_column_filters(small_catalog):
    b = DataBrowser(small_catalog, page_size=24)
    b.set_query("label == 'bee' and width >= 30")
    assert set(b.view.df["label"]) == {"bee"} and (b.view.df["width"] >= 30).all()
    assert "filtered from 62" in b.page_label
    b.set_query("")
    b.column_filters["label"].value = "<i>wasp"
    assert len(b.view) == 20
    b.column_filters["status"].value = "not_image"
    assert len(b.view) == 0 and _tiles(b) == []
    b.column_filters["label"].value = "(all)"
    assert b.view.ids == ["bee/zz_text.jpg"]


def test_bad_query_shows_inline_error_and_keeps_working(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    b.set_query("label ==")
    assert "cannot filter" in b.error.message and b.error.layout.display is None
    b.set_query("label = 'x'")  # an assignment, not a condition
    assert "True or False" in b.error.message
    assert len(b.view) == len(small_catalog)
    b.set_query("label == 'ant'")
    assert b.error.message == "" and len(b.view) == 21


def test_sorting_by_any_column(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    b.sort_column.value = "width"
    widths = b.view.df["width"].tolist()
    assert widths == sorted(widths)
    b.sort_order.value = False
    assert b.view.df["width"].tolist() == sorted(widths, reverse=True)
    assert b.visible_ids == b.view.df["id"].tolist()[:12]


def test_click_to_inspect_shows_metadata_escaped(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    seen = []
    b.on_select(seen.append)
    b.column_filters["label"].value = "<i>wasp"
    _click_tile(b, 3)
    sid = b.visible_ids[3]
    assert seen == [sid] and b.selected_id == sid
    assert b.detail.layout.display is None and len(b.detail_image.value) > 0
    assert "&lt;i&gt;wasp" in b.detail_meta.value and "<i>wasp" not in b.detail_meta.value
    assert Image.open(io.BytesIO(b.detail_image.value)).size[0] >= 300


def test_broken_files_get_placeholder_tiles_with_reason(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    b.column_filters["status"].value = "corrupt"
    assert b.visible_ids == ["ant/zz_truncated.png"]
    (tile,) = _tiles(b)
    assert 'src="data:image/png;base64,' in tile and len(_tile_bytes(b)[0]) > 0
    assert "corrupt" in tile and "cannot" in tile
    b._on_tile_click(0)
    assert "corrupt" in b.detail_meta.value


def test_page_size_control_keeps_position(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    b.go(2)  # items 24..35
    b.page_size.value = 24
    assert b.page == 1 and len(_tiles(b)) == 24
    assert b.visible_ids[0] == b.view.ids[24]


def test_summary_plot_renders_into_an_image_trait(small_catalog):
    b = DataBrowser(small_catalog)
    b.summary_button.value = True
    im = Image.open(io.BytesIO(b.summary_image.value))
    assert im.size[0] > 400 and b.summary_image.layout.display is None
    b.summary_button.value = False
    assert b.summary_image.layout.display == "none"


def test_the_swallow_fixture_catches_broken_handlers(
    small_catalog, fail_on_swallowed_callback_errors
):
    b = DataBrowser(small_catalog)
    b.close_button.on_click(lambda _b: 1 / 0)
    b.close_button.click()
    assert fail_on_swallowed_callback_errors.records  # the fixture would fail this test...
    fail_on_swallowed_callback_errors.records.clear()  # ...so clear to prove it saw it


@pytest.mark.parametrize("bad", [0, -3])
def test_go_is_clamped(small_catalog, bad):
    b = DataBrowser(small_catalog, page_size=12)
    b.go(bad)
    assert b.page == 0


def test_the_summary_is_the_core_figure_of_the_filtered_view(small_catalog):
    from workbench.plots import summary_png

    b = DataBrowser(small_catalog)
    b.set_query("width > 0")  # a filtered view: the figure follows it
    b.summary_button.value = True
    assert b.summary_image.value == summary_png(b.view)


@pytest.mark.parametrize(("name", "bad"), [("page_size", 0), ("thumb_size", True)])
def test_sizes_must_be_positive_integers(small_catalog, name, bad):
    from workbench.errors import ParameterError

    with pytest.raises(ParameterError, match=rf"^{name} must be an integer >= 1"):
        DataBrowser(small_catalog, **{name: bad})


def _key(b: DataBrowser, key: str) -> None:
    """A key as the front-end listener sends it (a custom message from the page)."""
    b.shortcut_keys._handle_custom_msg({"type": "keydown", "key": key, "shiftKey": False}, [])


def test_shortcut_messages_flip_pages_and_close_the_detail(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    _key(b, "ArrowRight")
    assert b.page == 1
    _key(b, "ArrowLeft")
    assert b.page == 0
    _key(b, "x")  # not a shortcut: nothing happens
    assert b.page == 0
    b._on_tile_click(0)
    assert b.detail.layout.display is None
    _key(b, "Escape")
    assert b.detail.layout.display == "none" and b.selected_id is None


def test_the_key_listener_leaves_text_fields_alone_and_ipyevents_reads_no_keys(small_catalog):
    """ipyevents cancels every key on the page while the pointer is over its source, text fields
    included; the browser's keys come from its own listener, which skips editable targets."""
    from workbench.views._common import KeyReader

    b = DataBrowser(small_catalog)
    assert isinstance(b.shortcut_keys, KeyReader)  # the one key reader of every view
    assert b.shortcut_keys.shortcuts == ["ArrowLeft", "ArrowRight", "Escape"]
    assert b.shortcut_keys in b.children


def test_close_button_hides_the_pane_and_unmarks_the_tile(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    _click_tile(b, 4)
    assert _selected(b) == [4]
    _click_tile(b, 7)  # the mark moves
    assert _selected(b) == [7]
    b.close_button.click()
    assert b.detail.layout.display == "none" and b.selected_id is None
    assert _selected(b) == []


def test_the_mark_follows_the_sample_across_pages(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    _click_tile(b, 2)
    sid = b.selected_id
    b.next_page()
    assert _selected(b) == []
    b.prev_page()
    assert _selected(b) == [2]
    assert b.visible_ids[2] == sid


def test_captions_show_only_what_differs_the_rest_once(small_catalog):
    b = DataBrowser(small_catalog, page_size=12, columns=("label", "height", "width"))
    assert b.varying_columns == ["label", "height", "width"]
    assert b.common.layout.display == "none"
    b.set_query("label == 'ant' and status == 'ok'")  # 16 px high, widths 20..39
    assert b.varying_columns == ["width"]
    assert "<b>label</b> ant" in b.common.value and "<b>height</b> 16" in b.common.value
    assert b.common.layout.display is None
    caption = _tiles(b)[0]
    assert "width: 20" in caption and "<div>height" not in caption and "<div>label" not in caption
    b.set_query("label == 'ant'")  # the unreadable file has no height: heights differ
    assert b.varying_columns == ["height", "width"]


def test_grid_columns_divide_the_page(small_catalog):
    from workbench.views.browser import _columns_css

    css = _columns_css("s", 24, 120)
    counts = sorted(int(m) for m in re.findall(r"repeat\((\d+),", css))
    assert counts == [2, 3, 4, 6, 8, 12, 24]  # never 5, 7, 11: no orphan tiles
    assert "min-width: 1002px" in css  # 8 × 120 + 7 gaps of 6
    b = DataBrowser(small_catalog, page_size=12)
    b.page_size.value = 48
    assert "repeat(16," in b._style.value and "repeat(5," not in b._style.value


def test_detail_path_breaks_only_after_a_slash(small_catalog):
    b = DataBrowser(small_catalog)
    b.inspect("ant/00.png")
    meta = b.detail_meta.value
    assert "break-all" not in meta
    path = small_catalog.row("ant/00.png")["path"]
    shown = re.search(r'<span class="wb-path" title="([^"]+)">(.*?)</span></td>', meta)
    assert shown and html.unescape(shown.group(1)) == path
    pieces = re.findall(r'<span class="wb-seg">([^<]*)</span>', shown.group(2))
    assert "".join(pieces) == path and all(p.endswith("/") for p in pieces[:-1])
    assert shown.group(2).count("<wbr>") == len(pieces) - 1


def test_menu_labels_take_the_width_they_need(small_catalog):
    b = DataBrowser(small_catalog)
    for dd in [*b.column_filters.values(), b.sort_column, b.page_size]:
        assert dd.style.description_width == "initial", dd.description


def test_a_page_flip_is_one_message_for_all_tiles(small_catalog):
    """A widget per tile sent a message per tile, drawn in turn; the grid is one value now,
    with the pager and its label."""
    b = DataBrowser(small_catalog, page_size=12)
    sent = []
    send = b.grid.comm.send

    def record(data=None, *args, **kwargs):
        if isinstance(data, dict) and data.get("method") == "update":
            sent.append(dict(data["state"]))
        return send(data, *args, **kwargs)

    b.grid.comm.send = record
    b.next_page()
    pages = [state for state in sent if "html" in state]  # not what is sent ahead (a thread's)
    assert len(pages) == 1 and pages[0]["html"].count('<img class="wb-thumb"') == 12
    assert "Page <b>2</b> / 6" in pages[0]["html"]
    assert 'data-wb-action="select" data-wb-index="11"' in pages[0]["html"]
    # A click the kernel cannot follow (the page had drawn the next page ahead): the kernel's
    # page goes out all the same, so the browser draws over its prediction.
    b.go(0)
    sent.clear()
    b.grid.click("prev")
    assert b.page == 0 and [s["html"] for s in sent if "html" in s] == [b.grid.html]


def _shown_key(b: DataBrowser) -> str:
    return re.search(r'data-wb-key="(\w+)"', b.grid.html).group(1)


def _ahead(b: DataBrowser, *actions: str) -> dict:
    """The predictions for the page shown now, once the background has sent them."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ahead = dict(b.grid.ahead)
        if ahead.get("base") == _shown_key(b) and all(a in ahead for a in actions):
            return ahead
        time.sleep(0.02)
    raise AssertionError(f"no prediction for {_shown_key(b)}: {sorted(b.grid.ahead)}")


def test_the_pages_a_click_can_show_are_sent_ahead(small_catalog):
    """The page draws a neighbour at the click from ``ahead`` (see HtmlBoard); what it draws
    must be exactly what the kernel then sends, and a prediction names the page it was made
    from. The rows read column by column equal pandas' own records."""
    from workbench.views.browser import _records

    b = DataBrowser(small_catalog, page_size=12)
    first = b.grid.html
    ahead = _ahead(b, "next")
    assert "prev" not in ahead  # page 1 has no previous page
    b.next_page()
    assert b.grid.html == ahead["next"] and "Page <b>2</b> / 6" in ahead["next"]
    ahead = _ahead(b, "next", "prev")
    assert ahead["prev"] == first  # page 1's thumbnails are still in memory
    b.go(2)
    assert b.grid.html == ahead["next"]
    # A selection changes what is shown, so the predictions are made again from it.
    _click_tile(b, 0)
    assert "wb-selected" in b.grid.html
    ahead = _ahead(b, "next", "prev")
    b.prev_page()
    assert b.grid.html == ahead["prev"]
    df = small_catalog.df.iloc[3:9]
    assert _records(df) == df.to_dict("records")
    assert _records(df.iloc[:0]) == []


def test_flips_and_tile_clicks_build_no_index_over_every_id(small_catalog):
    """A page flip and a click on a tile read the page's rows by position: an index over every
    id (16 MiB and seconds at a million rows) is built only for a sample off the page."""
    cat = Catalog(small_catalog.df, small_catalog.root)  # its own index and thumbnail cache
    b = DataBrowser(cat, page_size=12, sort_by="width")
    b.column_filters["label"].value = "bee"
    b.sort_order.value = False
    b.next_page()
    _click_tile(b, 5)
    b._pool.shutdown(wait=True)  # the next page's thumbnails, made in the background, too
    assert cat._index is None
    sid = b.visible_ids[5]
    assert b.selected_id == sid and b.detail_meta.value == _detail_html(cat.row(sid))
    assert b.detail_image.value == cat.thumbnail(sid, 320).data
    b.inspect("ant/00.png")  # not on the page: found through the catalog
    assert b.detail_meta.value == _detail_html(cat.row("ant/00.png"))
    assert b.detail_image.value == cat.thumbnail("ant/00.png", 320).data
