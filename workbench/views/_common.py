"""Small pieces every view shares: the inline error banner, the guards around methods, HTML.

Two guards, for two kinds of caller: :func:`guarded` wraps handlers the front end calls (an error
shows in the view and goes no further: ipywidgets would swallow it), :func:`reports_inline` wraps
public methods a script or notebook calls (the error shows in the view *and* raises to the caller).
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import ipywidgets as W

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


def table_html(items: dict[str, Any]) -> str:
    """A two-column key/value table, escaped."""
    rows = "".join(
        f'<tr><th style="text-align:left;padding-right:8px">{escape(k)}</th>'
        f'<td style="word-break:break-all">{escape(v)}</td></tr>'
        for k, v in items.items()
    )
    return f'<table style="font-size:12px">{rows}</table>'


def escape(value: object) -> str:
    """HTML-escape anything for display (file names and labels are user data); ``None``: ``""``."""
    return html.escape("" if value is None else str(value))
