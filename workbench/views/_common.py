"""Small pieces every view shares: the inline error banner, the guards around methods, HTML,
:class:`KeyReader`, the keyboard shortcuts that never take keys from a text field, and
:class:`HtmlBoard`, many tiles drawn from one widget value.

Two guards, for two kinds of caller: :func:`guarded` wraps handlers the front end calls (an error
shows in the view and goes no further: ipywidgets would swallow it), :func:`reports_inline` wraps
public methods a script or notebook calls (the error shows in the view *and* raises to the caller).
"""

from __future__ import annotations

import functools
import hashlib
import html
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import anywidget
import ipywidgets as W
import traitlets

from workbench.errors import WorkbenchError

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("workbench.views")


class ErrorBanner(W.HTML):
    """A red line under a view's controls; empty (and taking no space) when all is well."""

    def __init__(self) -> None:
        super().__init__(value="")
        self.add_class("wb-error")
        self.layout.display = "none"

    def show(self, message: str) -> None:
        self.value = (
            '<div style="color:#b00020;background:#fdecea;padding:4px 8px;border-radius:4px">'
            f"{escape(message)}</div>"
        )
        self.layout.display = None

    def clear(self) -> None:
        self.value = ""
        self.layout.display = "none"

    @property
    def message(self) -> str:
        """The text shown now ('' when none)."""
        import html
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.value))


def guarded(method: F) -> F:
    """Run a view handler; show any error in the view's banner instead of raising into the kernel.

    A :class:`WorkbenchError` is the user's to fix and shows as is; anything else is our bug and
    shows with its type so it can be reported, and is logged with the traceback.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = method(self, *args, **kwargs)
        except WorkbenchError as e:
            self.error.show(str(e))
            return None
        except Exception as e:
            log.exception("error in %s", method.__qualname__)
            self.error.show(f"Unexpected error ({type(e).__name__}): {e}")
            return None
        return result

    return wrapper  # type: ignore[return-value]


def reports_inline(method: F) -> F:
    """Run a public view method; a :class:`WorkbenchError` shows in the view's banner, then raises.

    The person looking at the view sees why nothing happened; the script that called the method
    gets the exception. Other exceptions (bugs) pass through untouched; a :func:`guarded` handler
    further up shows them.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except WorkbenchError as e:
            self.error.show(str(e))
            raise

    return wrapper  # type: ignore[return-value]


def escape(value: object) -> str:
    """HTML-escape anything for display (file names and labels are user data); ``None``: ``""``."""
    return html.escape("" if value is None else str(value))


def path_html(path: str, cls: str) -> str:
    """A path that wraps only after a ``/`` (or ``\\``), never inside a name; a part too long
    for its box ends in an ellipsis (CSS class ``wb-seg``). The full path is the title.
    """
    parts = [p for p in re.split(r"(?<=[/\\])", path) if p]
    segs = "<wbr>".join(f'<span class="wb-seg">{escape(p)}</span>' for p in parts)
    return f'<span class="{cls}" title="{escape(path)}">{segs}</span>'


_KEYS_ESM = r"""
const EDITABLE = 'input, textarea, select, [contenteditable=""], [contenteditable="true"]';

function render({ model, el }) {
  el.style.display = "none";
  const root = () => el.closest("." + model.get("root_class"));
  let over = false;
  const onOver = (e) => {
    const r = root();
    over = !!r && r.contains(e.target);
  };
  const onKey = (e) => {
    const r = root();
    if (!over || !r || !r.isConnected || e.isComposing || e.ctrlKey || e.metaKey) return;
    const focus = document.activeElement;
    // A text field with the focus gets every key, wherever the pointer is.
    if (focus && focus.closest && focus.closest(EDITABLE)) return;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    const shortcuts = model.get("shortcuts");
    if (!shortcuts.includes(key) && !shortcuts.includes(e.code)) return;
    // A part of the view that reads its own keys (a drawing widget) keeps those.
    const inner = model.get("inner_selector");
    if (inner && focus && focus.closest && focus.closest(inner)
        && model.get("inner_keys").includes(key)) return;
    e.preventDefault();
    e.stopPropagation();
    model.send({
      type: "keydown", key: e.key, code: e.code, repeat: e.repeat,
      shiftKey: e.shiftKey, altKey: e.altKey, ctrlKey: e.ctrlKey, metaKey: e.metaKey,
    });
    // The view's HtmlBoard may draw what the key does at once (its ``key_actions``).
    r.dispatchEvent(new CustomEvent("wb-shortcut", { bubbles: true, detail: { key: e.key } }));
  };
  document.addEventListener("mouseover", onOver, true);
  document.addEventListener("keydown", onKey, true);
  return () => {
    document.removeEventListener("mouseover", onOver, true);
    document.removeEventListener("keydown", onKey, true);
  };
}
export default { render };
"""


class KeyReader(anywidget.AnyWidget):
    """Keyboard shortcuts of one view: keys pressed while the pointer is over the view's root.

    Put it (it draws nothing) inside the view whose root element has the CSS class
    ``root_class``. A key in ``keys`` (trait ``shortcuts``; one character in lower case, a
    ``KeyboardEvent.key`` name such as ``"Enter"``, or a ``KeyboardEvent.code`` such as
    ``"Digit1"``) is kept from the page and sent to ``on_key(event)`` callbacks,
    with the fields ``type, key, code, repeat, shiftKey, altKey``. Never taken:

    - any key while a text field (input, textarea, select, editable text) has the focus, in
      this view or anywhere else: typing always types;
    - keys with Ctrl or Cmd (the browser's and JupyterLab's shortcuts);
    - ``inner_keys`` while the focus is inside ``inner_selector`` (a part of the view that
      reads its own keys, such as a drawing widget).

    Unlike an ipyevents ``Event``, it neither moves the focus when the pointer enters nor
    cancels keys it does not use.
    """

    _esm = _KEYS_ESM
    root_class = traitlets.Unicode().tag(sync=True)
    shortcuts = traitlets.List(traitlets.Unicode()).tag(sync=True)
    inner_selector = traitlets.Unicode("").tag(sync=True)
    inner_keys = traitlets.List(traitlets.Unicode()).tag(sync=True)

    def __init__(self, root_class: str, keys: list[str], **kwargs: Any) -> None:
        super().__init__(root_class=root_class, shortcuts=list(keys), **kwargs)
        self.layout.display = "none"
        self._callbacks: list[Callable[[dict], None]] = []
        self.on_msg(self._receive)

    def on_key(self, fn: Callable[[dict], None]) -> None:
        """Call ``fn(event)`` for each key the view reads."""
        self._callbacks.append(fn)

    def _receive(self, _widget: Any, content: dict, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "keydown":
            for fn in self._callbacks:
                fn(content)


_BOARD_ESM = r"""
// Patch the live nodes into the new HTML, position by position: an element whose tag is
// unchanged is kept (its attributes updated), so an image whose src did not change is neither
// fetched nor decoded again (a decision restyles a page of tiles without reloading them).
function patchChildren(from, to) {
  const old = [...from.childNodes], now = [...to.childNodes];
  now.forEach((n, i) => {
    const o = old[i];
    if (!o) from.appendChild(n);
    else if (o.nodeType !== n.nodeType || o.nodeName !== n.nodeName) from.replaceChild(n, o);
    else if (o.nodeType !== 1) { if (o.nodeValue !== n.nodeValue) o.nodeValue = n.nodeValue; }
    else patch(o, n);
  });
  for (const o of old.slice(now.length)) from.removeChild(o);
}
function patch(from, to) {
  for (const a of [...from.attributes]) if (!to.hasAttribute(a.name)) from.removeAttribute(a.name);
  for (const a of [...to.attributes])
    if (from.getAttribute(a.name) !== a.value) from.setAttribute(a.name, a.value);
  patchChildren(from, to);
}

function render({ model, el }) {
  const draw = (html) => {
    const t = document.createElement("template");  // inert: nothing loads until adopted
    t.innerHTML = html;
    patchChildren(el, t.content);
  };
  const onHtml = () => draw(model.get("html"));
  onHtml();
  model.on("change:html", onHtml);
  // Drawn at once when the kernel sent ahead what this action shows from what is shown now;
  // the kernel still gets the action and answers with the same HTML (a patch that changes
  // nothing), or with the truth if its state moved meanwhile.
  const drawAhead = (action) => {
    const ahead = model.get("ahead") || {}, shown = el.querySelector("[data-wb-key]");
    if (typeof ahead[action] === "string" && shown && ahead.base === shown.dataset.wbKey)
      model.set("html", ahead[action]);  // local only: a kernel answer that differs redraws
  };
  const onShortcut = (e) => {  // a key the view's KeyReader took (and sent to the kernel)
    const action = (model.get("key_actions") || {})[e.detail.key];
    if (action && e.target.contains(el)) drawAhead(action);
  };
  document.addEventListener("wb-shortcut", onShortcut);
  const onClick = (e) => {
    const t = e.target.closest && e.target.closest("[data-wb-action]");
    if (!t || !el.contains(t) || t.disabled) return;
    const action = t.dataset.wbAction;
    drawAhead(action);
    model.send({
      type: "action", action,
      index: t.dataset.wbIndex === undefined ? -1 : Number(t.dataset.wbIndex),
      item: t.dataset.wbItem === undefined ? null : t.dataset.wbItem,
    });
  };
  el.addEventListener("click", onClick);
  return () => {
    model.off("change:html", onHtml);
    el.removeEventListener("click", onClick);
    document.removeEventListener("wb-shortcut", onShortcut);
  };
}
export default { render };
"""


class HtmlBoard(anywidget.AnyWidget):
    """Many tiles (images, captions, buttons) drawn from ONE widget value, ``html``.

    A page of tiles then reaches the browser as one message and is drawn at once; with a widget
    per tile, a page is dozens of messages, each decoded and drawn in turn (several hundred ms
    for a page of 24). The page patches what it shows into the new HTML (elements kept, their
    attributes updated), so an image whose ``src`` did not change is not loaded again. Images
    go in as ``data:`` URIs (:meth:`Thumb.data_uri <workbench.thumbs.Thumb.data_uri>`); the
    caller escapes user data.

    A click on an element with a ``data-wb-action`` attribute (a tile, a ``<button>``; not a
    disabled one) calls ``on_action(fn)`` callbacks with ``(action, index, item)``: the
    attribute values of ``data-wb-action``, ``data-wb-index`` (an int, ``-1`` when absent) and
    ``data-wb-item`` (a string or ``None``). Only the event crosses to the kernel: the page's
    clicks and keys stay the page's. :meth:`click` does from code what a click does.

    Drawing ahead: a view that knows what an action will show (the next page of a pager) puts
    it in ``ahead`` with :meth:`show_ahead`; the page then draws it the moment the action is
    clicked, without waiting for the kernel's round trip, but only while it still shows the
    HTML the prediction was made from (:meth:`keyed` marks HTML with a key for that). The
    action still goes to the kernel, whose answer stays the truth: a view whose HTML an
    action left unchanged sends it anyway (``send_state("html")``), so a prediction the
    kernel did not follow is drawn over.
    """

    _esm = _BOARD_ESM
    html = traitlets.Unicode("").tag(sync=True)
    #: ``{"base": key of the HTML shown, action: HTML that action shows, ...}`` (may be empty).
    ahead = traitlets.Dict().tag(sync=True)
    #: ``{key: action}``: keys the view's :class:`KeyReader` takes that do an action here; the
    #: page draws that action's ``ahead`` at the key as at a click.
    key_actions = traitlets.Dict().tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("wb-html-board")  # browser tests check the text drawn inside for cuts
        self._callbacks: list[Callable[[str, int, str | None], None]] = []
        self.on_msg(self._receive)

    def on_action(self, fn: Callable[[str, int, str | None], None]) -> None:
        """Call ``fn(action, index, item)`` for each click on an element with an action."""
        self._callbacks.append(fn)

    def click(self, action: str, index: int = -1, item: str | None = None) -> None:
        """Run the ``on_action`` callbacks as a click on that element in the page does."""
        for fn in self._callbacks:
            fn(action, index, item)

    @staticmethod
    def keyed(html: str) -> tuple[str, str]:
        """``(key, html wrapped in an element carrying the key)``: the key names the content,
        so the page can tell whether what it shows is what a prediction was made from."""
        key = hashlib.blake2b(html.encode(), digest_size=8).hexdigest()
        return key, f'<div data-wb-key="{key}">{html}</div>'

    def show_ahead(self, base: str, drawn: dict[str, str]) -> None:
        """Let the page draw ``drawn[action]`` at once when ``action`` is clicked while it shows
        the HTML keyed ``base`` (see :meth:`keyed`); ``{}`` forgets earlier predictions."""
        self.ahead = {"base": base, **drawn} if drawn else {}

    def _receive(self, _widget: Any, content: dict, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "action":
            index = content.get("index")
            self.click(
                str(content.get("action")),
                int(index) if isinstance(index, int | float) else -1,
                content.get("item"),
            )
