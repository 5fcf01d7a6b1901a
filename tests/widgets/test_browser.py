import io

import pytest
from PIL import Image

from workbench.views import DataBrowser


def _tile_bytes(b: DataBrowser) -> list[bytes]:
    return [t.children[0].value for t in b.grid.children]


def test_paging_shows_new_thumbnails_and_clamps(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    assert b.pages == 6  # 62 samples
    assert len(b.grid.children) == 12 and b.prev_button.disabled
    first = _tile_bytes(b)
    assert all(Image.open(io.BytesIO(x)).size[0] > 0 for x in first)
    b.next_button.click()
    assert b.page == 1 and _tile_bytes(b) != first
    assert "Page <b>2</b> / 6" in b.page_label.value
    b.go(99)
    assert b.page == 5 and len(b.grid.children) == 2 and b.next_button.disabled
    b.prev_button.click()
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
    assert "filtered from 62" in b.page_label.value
    b.set_query("")
    b.column_filters["label"].value = "<i>wasp"
    assert len(b.view) == 20
    b.column_filters["status"].value = "not_image"
    assert len(b.view) == 0 and b.grid.children == ()
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
    b._events[3]._handle_mouse_msg(None, {"type": "click", "event": "click"}, [])
    sid = b.visible_ids[3]
    assert seen == [sid] and b.selected_id == sid
    assert b.detail.layout.display is None and len(b.detail_image.value) > 0
    assert "&lt;i&gt;wasp" in b.detail_meta.value and "<i>wasp" not in b.detail_meta.value
    assert Image.open(io.BytesIO(b.detail_image.value)).size[0] >= 300


def test_broken_files_get_placeholder_tiles_with_reason(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    b.column_filters["status"].value = "corrupt"
    assert b.visible_ids == ["ant/zz_truncated.png"]
    img, caption = b.grid.children[0].children
    assert img.format == "png" and len(img.value) > 0
    assert "corrupt" in caption.value and "cannot" in caption.value
    b._on_tile_click(0)
    assert "corrupt" in b.detail_meta.value


def test_page_size_control_keeps_position(small_catalog):
    b = DataBrowser(small_catalog, page_size=12)
    b.go(2)  # items 24..35
    b.page_size.value = 24
    assert b.page == 1 and len(b.grid.children) == 24
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
    b.next_button.on_click(lambda _b: 1 / 0)
    b.next_button.click()
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
