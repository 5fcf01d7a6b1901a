"""AugmentTuner: edit an augmentation Pipeline next to a live grid of seeded previews.

Left, the step list: add a transform from the registry, remove, reorder, enable/disable,
collapse a card to its header, and one control per registry parameter (sliders, range sliders,
menus, check boxes; ``size`` is typed as ``224`` or ``224, 224``) plus the step's apply
probability. Next to every slider, a number field shows the exact value held and takes a typed
one. A slider snapping its start value to its grid changes nothing, and a moved slider sets
exactly the value its field then shows (:mod:`workbench.augment.controls`). The column scrolls
as a whole; cards keep their height. Right, the preview grid: one row per sample image, the
original and ``draws`` seeded draws.

Staying live
------------
Every control change asks for a render on the tuner's render thread
(:class:`workbench.background.Latest`): renders run one at a time, and a request still waiting
when a newer one arrives is dropped, so the next render is always *from the latest state*. A fast
slider drag costs one render per render time, never a queue of stale ones, and the kernel stays
responsive (the handler returns at once). :meth:`AugmentTuner.render` renders synchronously
(tests, scripts); :meth:`AugmentTuner.wait` waits for the render thread; ``live=False`` renders
inside every handler instead.

Reduced-resolution previews
---------------------------
Draws are computed on a copy of each sample whose longer side is at most ``size`` (boxes and masks
scaled with it) whenever no enabled step has pixel-measured parameters or effects
(``Pipeline.pixel_scale_steps`` is empty: flips, rotations, affine and perspective warps, zoom-out,
colour and point operations, erasing — all relative to the image size). Then the preview *is* the
downscaled augmentation, at a fraction of the cost. When a step works in pixels (crops and resizes
to a fixed size, blur kernels, elastic sigma, JPEG blocks, per-pixel noise, sharpness, the
policies), the pipeline runs on the full-resolution sample and only the result is shrunk, so what
you see is what training gets. The timing line says which path the last render took.

Seeds
-----
Cell ``(row r, draw k)`` uses seed ``variant_seeds(tuner.seed, rows * draws)[r * draws + k]`` and
per-step random streams (``Pipeline.apply(..., step_keys=tuner.step_keys)``): each step draws from
its own stream, keyed by a step id that follows the step through reordering. With the seed locked
(the default) disabling, isolating or retuning one step therefore leaves every other step's random
draws unchanged, and "show only this step" shows exactly the draw that step had in the full
pipeline. "Reroll" picks a new seed; unlocked, every change picks one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as W
import numpy as np

from workbench._validation import check_choice, check_int, check_positive_int
from workbench.augment import REGISTRY, Pipeline, controls
from workbench.errors import ParameterError
from workbench.views._augment_cards import _close_tree, _StepCard
from workbench.views._augment_preview import _PreviewGrid, _PreviewRendering, _Samples
from workbench.views._common import ErrorBanner, escape, guarded

__all__ = ["AugmentTuner"]

_PANEL_WIDTH = "500px"
# a disabled step's card is dimmed (ipywidgets' Layout has no opacity)
_CSS = "<style>.wb-augment .wb-step.wb-step-off { opacity: 0.55; }</style>"
_RETIRE_S = 5.0  # seconds a replaced step card stays open (see AugmentTuner._retired)

# ------------------------------------------------------------------------------------ the view


class AugmentTuner(_PreviewRendering, W.VBox):
    """Tune an augmentation :class:`~workbench.augment.Pipeline` on real samples.

    Parameters
    ----------
    catalog : Catalog, optional
        Where preview rows come from (readable samples only). Not needed with ``samples``.
    pipeline : Pipeline, optional
        Edited in place and kept as ``tuner.pipeline``. Default: the pipeline saved in the
        workspace if there is one, else an empty pipeline.
    workspace : Workspace, optional
        "Save" saves the pipeline there (``workspace.save(pipeline)``).
    rows : int
        Sample images shown (K rows).
    draws : int
        Seeded draws per sample (M columns after the original).
    size : int
        Preview cell size in pixels, and the longest side of the reduced working copy.
    ids : sequence of str, optional
        Catalog ids to preview (the first ``rows`` are shown; "shuffle" picks among them).
        Default: a random pick from the whole catalog.
    samples : sequence, optional
        Preview samples instead of catalog rows: PIL images, or dicts with ``image`` and
        optional ``boxes`` (``tv_tensors.BoundingBoxes`` or an ``(N, 4)`` XYXY array),
        ``labels`` (one name or id per box), ``masks`` and ``caption``. Boxes and masks are
        drawn on every draw; image-only steps (the policies) are refused for them.
    seed : int
        First preview seed (also seeds "shuffle" and "reroll").
    live : bool
        Render on a background thread, coalescing rapid changes (default). ``False`` renders
        inside every handler.
    locked : bool
        Start with the seed locked.
    backend : {"pil", "tensor"}
        How the pipeline runs on images (see ``Pipeline.apply``): ``"pil"`` (default) is what
        ``pipeline.to_torchvision()`` does to the decoded images during training, and the
        faster one on a CPU.

    Attributes
    ----------
    pipeline : Pipeline
        The pipeline being tuned.
    seed : int
        The current preview seed.
    last_render : dict
        ``ms``, ``reduced`` (whether the working copy was used), ``shape`` of the first working
        sample, ``generation`` (the number of render requests so far when it started), ``seed``;
        empty before the first render.
    render_count : int
        Renders done so far.

    Notes
    -----
    One concept, the editing session over one pipeline (its editing API, one handler per
    control, the render), so one class past the usual size. Its self-contained parts live
    apart: the step card in ``_augment_cards``; samples, working copies, the grid and the
    render loop in ``_augment_preview``.
    """

    def __init__(
        self,
        catalog: Any = None,
        pipeline: Pipeline | None = None,
        *,
        workspace: Any = None,
        rows: int = 4,
        draws: int = 4,
        size: int = 224,
        ids: Sequence[str] | None = None,
        samples: Sequence[Any] | None = None,
        seed: int = 0,
        live: bool = True,
        locked: bool = True,
        backend: str = "pil",
    ) -> None:
        # First: close() (also run when a half-built view is collected) stops the render thread.
        self._closed = False
        # Cards taken out of the column, closed only once the page has had time to draw the
        # column without them (closing them at once raced the page still unpacking the column's
        # previous state: "widget model not found").
        self._retired: list[tuple[float, list[_StepCard]]] = []
        self._start_renderer()
        check_positive_int(rows, "AugmentTuner: rows")
        check_positive_int(draws, "AugmentTuner: draws")
        check_int(size, "AugmentTuner: size", low=16)
        if catalog is None and samples is None:
            raise ParameterError("AugmentTuner: pass a catalog or samples=[...] to preview")
        self.catalog = catalog
        self.workspace = workspace
        if pipeline is None:
            pipeline = self._initial_pipeline(workspace)
        self.pipeline: Pipeline = pipeline
        self.size = size
        self.n_draws = draws
        self.live = live
        self.locked = locked
        self.backend = check_choice(backend, "AugmentTuner: backend", ("pil", "tensor"))
        self.seed = check_int(seed, "AugmentTuner: seed", low=0)
        self._rng = np.random.default_rng(seed)
        self._uids: list[int] = list(range(len(pipeline)))
        self._next_uid = len(pipeline)
        self._isolated: int | None = None
        self._errors: dict[Any, str] = {}
        # Values refused for (step id, key), retried when another edit of the step may allow them.
        self._pending: dict[tuple[int, str], Any] = {}
        self._collapsed: set[int] = set()
        self._syncing = False
        self._change_callbacks: list[Callable[[Pipeline], None]] = []
        self._render_callbacks: list[Callable[[dict], None]] = []
        self._save_callbacks: list[Callable[[Any], None]] = []
        self._saved: tuple[Any, Pipeline] | None = None  # (path, pipeline) of the last save
        self.last_render: dict[str, Any] = {}
        self.render_count = 0
        # _state_lock guards the pipeline, step ids, seed and rows. Renders run one at a time on
        # this tuner's render thread; _generation counts render requests (stamped on each render).
        self._state_lock = threading.RLock()
        self._generation = 0
        # Per preview cell, the output after each step (Replay memo): moving a slider of step j
        # recomputes steps j.. only.
        self._memos: dict[Any, dict] = {}

        # sources
        self._samples = _Samples(catalog, samples, ids)
        self._pool: list[Any] = self._samples.pool
        self.rows_keys: list[Any] = self._samples.first_rows(rows, self._rng)
        self.n_rows = len(self.rows_keys)
        self.has_geometry = self._samples.has_geometry

        # left: steps
        self.error = ErrorBanner()
        # Image-only policies cannot move boxes or masks: not offered for such samples.
        names = sorted(n for n, s in REGISTRY.items() if not (s.image_only and self.has_geometry))
        self.add_name = W.Dropdown(
            options=names, value="ColorJitter", layout=W.Layout(width="240px")
        ).add_class("wb-add-name")
        self.add_button = W.Button(
            description="Add", icon="plus", layout=W.Layout(width="80px")
        ).add_class("wb-add")
        # The column scrolls as a whole; its cards keep their natural height. It is created
        # holding its first cards: the page gets them in the column's opening message, never in
        # a later update naming other widgets, which the page's widget manager can fail to
        # resolve while it is still loading the kernel's widgets ("widget model not found": the
        # column, then every card, is never drawn).
        self.cards: list[_StepCard] = [
            self._make_card(i, uid, step)
            for i, (uid, step) in enumerate(zip(self._uids, self.pipeline.steps, strict=True))
        ]
        self.steps_box = W.VBox(
            self._column(self.cards),
            layout=W.Layout(max_height="720px", overflow="hidden auto"),
        )
        self.steps_box.add_class("wb-steps")
        left = W.VBox(
            [W.HTML("<b>Pipeline</b>"), W.HBox([self.add_name, self.add_button]), self.steps_box],
            layout=W.Layout(width=_PANEL_WIDTH, min_width=_PANEL_WIDTH, padding="0 8px 0 0"),
        )

        # right: preview
        self.shuffle_button = W.Button(
            description="Shuffle", icon="random", tooltip="other sample images"
        ).add_class("wb-shuffle")
        self.reroll_button = W.Button(
            description="Reroll", icon="refresh", tooltip="new random draws"
        ).add_class("wb-reroll")
        self.lock_toggle = W.ToggleButton(
            value=locked,
            description="lock seed",
            icon="lock",
            tooltip="keep the draws fixed while you change parameters",
        ).add_class("wb-lock")
        self.seed_label = W.HTML().add_class("wb-seed")
        self.grid = _PreviewGrid(self.n_rows, draws, size)
        self.timing = self.grid.timing  # "last render N ms · ..." (``.value``), drawn in the grid
        self.images = self.grid.images  # the cells as drawn: ``.value`` bytes and ``.format``
        self.captions = self.grid.captions
        self.save_button = W.Button(
            description="Save",
            icon="save",
            tooltip="save the pipeline to the workspace",
            layout=W.Layout(flex="0 0 auto"),
        ).add_class("wb-save")
        self.save_button.disabled = workspace is None
        if workspace is None:
            self.save_button.tooltip = "no workspace: pass workspace=... to the tuner to save"
        self.code_toggle = W.ToggleButton(
            description="Show code", icon="code", layout=W.Layout(flex="0 0 auto")
        ).add_class("wb-show-code")
        self.status = W.HTML().add_class("wb-status")
        if workspace is None:
            self.status.value = (
                '<span style="color:#666">Save needs a workspace: '
                "<code>AugmentTuner(..., workspace=ws)</code></span>"
            )
        self.code = W.HTML(layout=W.Layout(display="none")).add_class("wb-code")
        right = W.VBox(
            [
                W.HBox(
                    [self.shuffle_button, self.reroll_button, self.lock_toggle, self.seed_label],
                    layout=W.Layout(align_items="center", flex_flow="row wrap"),
                ),
                self.grid,
                W.HBox(
                    [self.save_button, self.code_toggle, self.status],
                    layout=W.Layout(align_items="center", flex_flow="row wrap"),
                ),
                self.code,
            ],
            layout=W.Layout(flex="1 1 auto", min_width="0"),
        )

        self.add_button.on_click(lambda _b: self._on_click(self.add_step, self.add_name.value))
        self.shuffle_button.on_click(lambda _b: self._on_click(self.shuffle))
        self.reroll_button.on_click(lambda _b: self._on_click(self.reroll))
        self.lock_toggle.observe(self._on_lock_change, "value")
        self.save_button.on_click(self._on_save_click)
        self.code_toggle.observe(self._on_code_change, "value")

        super().__init__(
            [
                W.HTML(_CSS, layout=W.Layout(display="none")),
                self.error,
                W.HBox([left, right], layout=W.Layout(width="100%")),
            ]
        )
        self.add_class("wb-augment")
        self._update_seed_label()
        self._request_render(sync=True)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def for_boxes(
        cls,
        image: Any,
        boxes: Any,
        labels: Sequence[Any] | None = None,
        pipeline: Pipeline | None = None,
        **kwargs: Any,
    ) -> AugmentTuner:
        """A tuner over one detection sample: ``image`` with ``(N, 4)`` XYXY ``boxes``.

        ``labels`` names each box (drawn with it). Extra keywords go to the constructor.
        """
        sample = {"image": image, "boxes": boxes, "labels": labels, "caption": "boxes"}
        kwargs.setdefault("rows", 1)
        return cls(None, pipeline, samples=[sample], **kwargs)

    @staticmethod
    def _initial_pipeline(workspace: Any) -> Pipeline:
        if workspace is not None and workspace.has("pipeline"):
            return workspace.load("pipeline")
        return Pipeline()

    # ------------------------------------------------------------------ public API
    @property
    def step_keys(self) -> list[int]:
        """Per-step stream keys used by the preview (see the module notes on seeds)."""
        return list(self._uids)

    @property
    def isolated(self) -> int | None:
        """Index of the step shown alone, or ``None``."""
        with self._state_lock:
            return None if self._isolated is None else self._uids.index(self._isolated)

    @property
    def preview_bytes(self) -> list[list[bytes]]:
        """Encoded bytes of every cell, row by row (original first)."""
        return self.grid.preview_bytes

    def add_step(self, name: str, **params: Any) -> None:
        """Append a registry step (``p=`` sets its probability); refused inline in the view."""
        spec = REGISTRY.get(name)
        if spec is not None and spec.image_only and self.has_geometry:
            raise ParameterError(
                f"{name} is an image-only policy: it cannot move the boxes or masks of these "
                "samples. Pick geometric and colour steps instead."
            )
        with self._state_lock:
            self.pipeline.add(name, **params)
            self._uids.append(self._next_uid)
            self._next_uid += 1
        self._build_cards()
        self._changed()

    def remove_step(self, i: int) -> None:
        """Remove step ``i``."""
        with self._state_lock:
            i = self.pipeline.check_index(i, "remove")
            self.pipeline.remove(i)
            uid = self._uids.pop(i)
            if self._isolated == uid:
                self._isolated = None
        self._build_cards()
        self._changed()

    def move_step(self, i: int, j: int) -> None:
        """Move step ``i`` to index ``j``."""
        with self._state_lock:
            i, j = self.pipeline.check_index(i, "move"), self.pipeline.check_index(j, "move")
            self.pipeline.move(i, j)
            self._uids.insert(j, self._uids.pop(i))
        self._build_cards()
        self._changed()

    def enable_step(self, i: int, flag: bool = True) -> None:
        """Enable or disable step ``i`` (through its check box)."""
        self.cards[i].enabled.value = bool(flag)

    def set_param(self, i: int, key: str, value: Any) -> None:
        """Set parameter ``key`` (or ``"p"``) of step ``i`` as its controls would.

        The controls then show the value; a refused value is reported inline (the view keeps
        working) and applied as soon as another edit of the step makes it valid.
        """
        self._set(self._uids[self.pipeline.check_index(i, "set_param")], key, value)

    def collapse(self, i: int, flag: bool = True) -> None:
        """Collapse (``flag=False``: expand) the card of step ``i`` to its header."""
        uid = self._uids[self.pipeline.check_index(i, "collapse")]
        if flag:
            self._collapsed.add(uid)
        else:
            self._collapsed.discard(uid)
        self.cards[self._index_of(uid)].set_collapsed(flag)

    def isolate(self, i: int | None) -> None:
        """Show only step ``i`` (``None``: the whole pipeline)."""
        if i is None:
            for card in self.cards:
                card.only.value = False
        else:
            self.cards[i].only.value = True

    def shuffle(self) -> None:
        """Preview other sample images (drawn from the catalog, ``ids`` or ``samples``)."""
        with self._state_lock:
            current = set(self.rows_keys)
            others = [k for k in self._pool if k not in current]
            if len(others) < self.n_rows:
                others = list(self._pool)
            pick = self._rng.choice(len(others), size=self.n_rows, replace=False)
            self.rows_keys = [others[i] for i in sorted(pick)]
        self._request_render()

    def reroll(self) -> None:
        """New random draws (a new preview seed)."""
        with self._state_lock:
            self.seed = int(self._rng.integers(0, 2**31))
        self._update_seed_label()
        self._request_render()

    def save(self) -> Any:
        """Save the pipeline to the workspace (``workspace.save``) and return the path written."""
        if self.workspace is None:
            raise ParameterError("no workspace: pass workspace= to the tuner to save")
        with self._state_lock:
            self.pipeline.validate()
            path = self.workspace.save(self.pipeline)
            self._saved = (path, self.pipeline.copy())
        self._show_saved()
        for fn in self._save_callbacks:
            fn(path)
        return path

    def to_code(self) -> str:
        """``pipeline.to_code()``: Python source building the same ``v2.Compose``."""
        with self._state_lock:
            return self.pipeline.to_code()

    def refresh(self) -> None:
        """Rebuild the controls after editing ``tuner.pipeline`` in code, then render."""
        with self._state_lock:
            if len(self._uids) != len(self.pipeline):
                self._uids = list(range(self._next_uid, self._next_uid + len(self.pipeline)))
                self._next_uid += len(self.pipeline)
                self._isolated = None
        self._build_cards(reuse=False)
        self._changed()

    def close(self) -> None:
        """Close the view, its render thread and every widget in it."""
        self._closed = True
        self._renderer.close()
        self._close_retired(float("inf"))
        for child in self.children:
            _close_tree(child)
        super().close()

    def on_change(self, fn: Callable[[Pipeline], None]) -> None:
        """Call ``fn(pipeline)`` after every accepted edit."""
        self._change_callbacks.append(fn)

    def on_render(self, fn: Callable[[dict], None]) -> None:
        """Call ``fn(last_render)`` after every render that set new images."""
        self._render_callbacks.append(fn)

    def on_save(self, fn: Callable[[Any], None]) -> None:
        """Call ``fn(path)`` after "Save"."""
        self._save_callbacks.append(fn)

    # ------------------------------------------------------------------ handlers
    @guarded
    def _on_click(self, action: Callable[..., Any], *args: Any) -> None:
        """A button: run the public method ``action``; a refusal is shown inline."""
        self._try("action", action, *args)

    @guarded
    def _on_step_click(self, uid: int, action: str) -> None:
        """A step card's ↑, ↓, ✕ or collapse button."""
        i = self._index_of(uid)
        if action == "collapse":
            self.collapse(i, uid not in self._collapsed)
        elif action == "remove":
            self._try("action", self.remove_step, i)
        elif 0 <= (j := i - 1 if action == "up" else i + 1) < len(self.pipeline):
            self._try("action", self.move_step, i, j)

    @guarded
    def _on_enabled_change(self, uid: int, change: dict) -> None:
        if self._syncing:
            return
        flag = bool(change["new"])
        with self._state_lock:
            i = self._index_of(uid)
            step = self.pipeline[i]
        if flag and step.spec.image_only and self.has_geometry:
            self._errors["action"] = (
                f"{step.name} is an image-only policy: it cannot move the boxes or masks of "
                "these samples, so it stays disabled."
            )
            self._show_errors()
            with self._syncing_controls():
                self.cards[i].enabled.value = False
            return
        with self._state_lock:
            self.pipeline.enable(i, flag)
            self.cards[i].set_position(i, self.pipeline[i])
        self._errors.pop("action", None)
        self._changed()

    @guarded
    def _on_control_change(self, uid: int, key: str, source: str, change: dict) -> None:
        """A parameter's control (``source="control"``) or number field (``"number"``)."""
        if self._syncing:
            return
        with self._state_lock:
            i = self._index_of(uid)
            step = self.pipeline[i]
            current = step.p if key == "p" else step.params[key]
            try:
                value = self.cards[i].rows[key].read(source, current)
            except ParameterError as e:
                self._errors[("param", uid, key)] = f"step {i} ({step.name}): {e}"
                self._show_errors()
                return
        if value is controls.UNCHANGED:
            # The browser's slider snapped the value to its grid, or nothing was retyped.
            self._sync_row(uid, key)
            return
        self._set(uid, key, value)

    def _set(self, uid: int, key: str, value: Any) -> None:
        with self._state_lock:
            i = self._index_of(uid)
            try:
                self.pipeline.set_param(i, key, value)
            except ParameterError as e:
                # Keep the last good value (and preview); the control shows what was entered.
                self._errors[("param", uid, key)] = str(e)
                self._pending[(uid, key)] = value
                self._show_errors()
                return
            self._errors.pop(("param", uid, key), None)
            self._pending.pop((uid, key), None)
            synced = [key]
            # A refused value may have become valid (magnitude vs num_magnitude_bins).
            for u, k in [pk for pk in self._pending if pk[0] == uid]:
                with contextlib.suppress(ParameterError):
                    self.pipeline.set_param(i, k, self._pending[(u, k)])
                    del self._pending[(u, k)]
                    self._errors.pop(("param", u, k), None)
                    synced.append(k)
            for k in synced:
                self._sync_row(uid, k)
        self._show_errors()
        self._changed()

    def _sync_row(self, uid: int, key: str) -> None:
        """Show the pipeline's value of ``key`` in its row (number field and control)."""
        with self._state_lock, self._syncing_controls():
            i = self._index_of(uid)
            step = self.pipeline[i]
            self.cards[i].rows[key].show(step.p if key == "p" else step.params[key])

    @guarded
    def _on_only_change(self, uid: int, change: dict) -> None:
        if self._syncing:
            return
        with self._state_lock:
            if change["new"]:
                self._isolated = uid
            elif self._isolated == uid:
                self._isolated = None
        with self._syncing_controls():
            for card in self.cards:
                card.only.value = card.uid == self._isolated
        self._changed(pipeline_changed=False)

    @guarded
    def _on_lock_change(self, change: dict) -> None:
        self.locked = bool(change["new"])

    @guarded
    def _on_save_click(self, _button: W.Button) -> None:
        self._try("action", self.save)

    @guarded
    def _on_code_change(self, change: dict) -> None:
        self.code.layout.display = None if change["new"] else "none"
        self._update_code()

    # ------------------------------------------------------------------ internals
    def _try(self, key: Any, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except ParameterError as e:
            self._errors[key] = str(e)
            self._show_errors()
        else:
            if self._errors.pop(key, None) is not None:
                self._show_errors()

    def _index_of(self, uid: int) -> int:
        return self._uids.index(uid)

    @contextlib.contextmanager
    def _syncing_controls(self):
        old, self._syncing = self._syncing, True
        try:
            yield
        finally:
            self._syncing = old

    def _show_errors(self) -> None:
        live_params = {("param", uid) for uid in self._uids}
        for key in [k for k in self._errors if isinstance(k, tuple)]:
            if key[:2] not in live_params:
                del self._errors[key]
        for key in [k for k in self._pending if k[0] not in self._uids]:
            del self._pending[key]
        self._collapsed &= set(self._uids)
        if self._errors:
            self.error.show(" · ".join(dict.fromkeys(self._errors.values())))
        else:
            self.error.clear()

    def _build_cards(self, reuse: bool = True) -> None:
        """Lay the step cards out from the pipeline; handlers find steps by their id.

        With ``reuse``, a step keeps its card (renumbered): moving, adding or removing a step
        sends the page a few messages instead of every card anew (~30 widgets each), a burst
        that on a busy machine outran the kernel's message queue (cards that never drew).
        ``reuse=False`` builds every card anew (the pipeline was edited in code).
        """
        with self._state_lock:
            old = {card.uid: card for card in self.cards} if reuse else {}
            cards = []
            for i, (uid, step) in enumerate(zip(self._uids, self.pipeline.steps, strict=True)):
                card = old.pop(uid, None)
                if card is None:
                    card = self._make_card(i, uid, step)
                else:
                    card.set_position(i, step)
                    card.up.disabled = i == 0
                    card.down.disabled = i == len(self.pipeline) - 1
                cards.append(card)
            retired = list(old.values()) if reuse else self.cards
            self.cards = cards
            self.steps_box.children = self._column(cards)
            self._close_retired(time.monotonic() - _RETIRE_S)
            self._retired.append((time.monotonic(), retired))
        self._show_errors()

    def _close_retired(self, before: float) -> None:
        """Close the cards retired before ``before`` (a ``time.monotonic()`` value)."""
        while self._retired and self._retired[0][0] <= before:
            for card in self._retired.pop(0)[1]:
                _close_tree(card)

    @staticmethod
    def _column(cards: list[_StepCard]) -> list[W.Widget]:
        return list(cards) or [W.HTML("<i>No steps yet: add one from the menu above.</i>")]

    def _make_card(self, i: int, uid: int, step: Any) -> _StepCard:
        """The card of step ``uid`` (at index ``i``), its controls wired to the handlers."""
        card = _StepCard(uid, i, step, collapsed=uid in self._collapsed)
        card.only.value = uid == self._isolated
        card.up.disabled = i == 0
        card.down.disabled = i == len(self.pipeline) - 1
        card.enabled.observe(lambda ch, u=uid: self._on_enabled_change(u, ch), "value")
        card.only.observe(lambda ch, u=uid: self._on_only_change(u, ch), "value")
        for action in ("up", "down", "remove", "collapse"):
            getattr(card, action).on_click(lambda _b, u=uid, a=action: self._on_step_click(u, a))
        for key, row in card.rows.items():
            row.control.observe(
                lambda ch, u=uid, k=key: self._on_control_change(u, k, "control", ch), "value"
            )
            if row.number is not None:
                row.number.observe(
                    lambda ch, u=uid, k=key: self._on_control_change(u, k, "number", ch), "value"
                )
        return card

    def _changed(self, pipeline_changed: bool = True) -> None:
        """A control changed the preview state: new seed if unlocked, notify, render."""
        if self._errors.pop("action", None) is not None:  # a refusal notice lasts one edit
            self._show_errors()
        if not self.locked:
            with self._state_lock:
                self.seed = int(self._rng.integers(0, 2**31))
            self._update_seed_label()
        if pipeline_changed:
            self._update_code()
            self._show_saved()
            for fn in self._change_callbacks:
                fn(self.pipeline)
        self._request_render()

    def _show_saved(self) -> None:
        """The status line after a save: whether the pipeline shown is the one on disk."""
        if self._saved is None:
            return
        path, pipeline = self._saved
        with self._state_lock:
            same = self.pipeline == pipeline
        self.status.value = (
            f"<span>saved {escape(path)}</span>"
            if same
            else f'<span class="wb-unsaved" style="color:#b45309">changed since saved '
            f"{escape(path)}: not saved</span>"
        )

    def _update_seed_label(self) -> None:
        self.seed_label.value = f"<span>seed <code>{self.seed}</code></span>"

    def _update_code(self) -> None:
        if not self.code_toggle.value:
            return
        try:
            text = self.to_code()
        except ParameterError as e:
            text = f"# cannot export: {e}"
        self.code.value = f'<pre style="font-size:12px;margin:4px 0">{escape(text)}</pre>'
