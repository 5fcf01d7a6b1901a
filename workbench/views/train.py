"""TrainingMonitor: watch a training run live and stop it at the next batch.

A VBox over one :class:`~workbench.train.Trainer` (``monitor.trainer``). :meth:`start` runs
``trainer.fit`` on a background thread and returns at once, so the kernel stays free and the Stop
click reaches it; :meth:`wait` joins the thread and returns the run's result.

The view listens to the trainer's events, which arrive on the training thread, and keeps that
work small: it records the numbers, moves the progress bars at most every 0.1 s (and at each
epoch's end), and asks its own drawing thread (:class:`~workbench.background.Latest`: a request
still waiting is replaced by a newer one) for the curves at each epoch's end and at most every
0.5 s in between. So a fast loop neither floods the browser with messages nor waits for
matplotlib. An error in training shows in the view's banner, never as a traceback.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from workbench.background import Latest
from workbench.errors import ParameterError, WorkbenchError
from workbench.plots import smooth_losses, training_png
from workbench.views._common import ErrorBanner, escape, guarded, reports_inline

if TYPE_CHECKING:
    from workbench.train import Trainer

__all__ = ["TrainingMonitor"]

log = logging.getLogger("workbench.views")

_BAR_SECONDS = 0.1  # progress bars and text: at most ten updates a second
_DRAW_SECONDS = 0.5  # curves: at most two figures a second between epoch ends
_BAR_STYLE = {"finished": "success", "early_stopped": "success", "stopped": "warning"}


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _where(epochs_done: int, batch: int) -> str:
    """A point of a run as people count it: the trainer's (epochs done, batches done in the
    next epoch) -> "epoch 2, batch 41" (from 1), or "the end of epoch 2" between epochs."""
    return f"epoch {epochs_done + 1}, batch {batch}" if batch else f"the end of epoch {epochs_done}"


def _span(text: str, color: str = "#333") -> str:
    return f'<span style="color:{color}">{text}</span>'


class TrainingMonitor(W.VBox):
    """Live curves, progress and a Stop button for one :class:`~workbench.train.Trainer`.

    Parameters
    ----------
    trainer
        The trainer to run and watch (its events drive the view).
    smoothing
        Weight of the past in the moving average of the per-batch loss (0: raw losses).
    redraw_seconds
        Least time between two figures drawn within an epoch (each epoch's end always draws).

    Attributes
    ----------
    trainer : Trainer
        The core object this view drives.
    result : RunResult or None
        What ``trainer.fit`` returned, once it has.
    epochs : list of dict
        The ``epoch`` events seen, in order (the curves' points).
    events : int
        How many events the view has handled.
    error : ErrorBanner
        Shows an error of the run.
    """

    def __init__(
        self, trainer: Trainer, *, smoothing: float = 0.9, redraw_seconds: float = _DRAW_SECONDS
    ) -> None:
        if not 0 <= smoothing < 1:
            raise ParameterError(f"smoothing must be in [0, 1), got {smoothing!r}")
        self.trainer = trainer
        self.smoothing = float(smoothing)
        self.redraw_seconds = float(redraw_seconds)
        self.result: Any = None
        self.epochs: list[dict[str, Any]] = []
        self.events = 0
        self.error = ErrorBanner()
        self._lock = threading.Lock()  # the numbers, shared by the training and drawing threads
        self._status_lock = threading.Lock()  # the Stop click (kernel) vs the end (training)
        self._batch_x: list[float] = []
        self._batch_loss: list[float] = []
        self._thread: threading.Thread | None = None
        self._exception: BaseException | None = None
        self._drawer = Latest("wb-train-draw")
        self._reset_run_state()
        self._build()
        trainer.on_event(self._on_event)

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        self.epoch_bar = W.IntProgress(value=0, min=0, max=1, description="epochs")
        self.epoch_bar.add_class("wb-train-epochs")
        self.batch_bar = W.IntProgress(value=0, min=0, max=1, description="batches")
        self.batch_bar.add_class("wb-train-batches")
        for bar in (self.epoch_bar, self.batch_bar):
            bar.style.description_width = "56px"
            bar.layout = W.Layout(width="320px")
        self.stop_button = W.Button(
            description="Stop", icon="stop", disabled=True, tooltip="stop after the current batch"
        )
        self.stop_button.layout = W.Layout(width="auto", min_width="90px")
        self.stop_button.add_class("wb-train-stop")
        self.stop_button.on_click(self._on_stop_click)
        self.progress = W.HTML(_span("not started", "#666")).add_class("wb-train-progress")
        self.status = W.HTML().add_class("wb-train-status")
        self.curves = W.Image(format="png", layout=W.Layout(width="720px", height="240px"))
        self.curves.add_class("wb-train-curves")
        bars = W.HBox(
            [self.epoch_bar, self.batch_bar, self.stop_button],
            layout=W.Layout(flex_flow="row wrap", align_items="center"),
        )
        super().__init__([bars, self.progress, self.error, self.status, self.curves])
        self.add_class("wb-train")

    def _reset_run_state(self) -> None:
        self._run_id: str | None = None
        self._total_epochs = 0
        self._batches = 0
        # (epoch index from 0, batches done in it), as the trainer's events count
        self._position: tuple[int, int] = (0, 0)
        self._epoch_started = time.monotonic()
        self._seconds: list[float] = []
        self._last_bars = 0.0
        self._last_draw = 0.0
        self._stopping = False
        self._ended = False  # the end event came: a late Stop click must not overwrite it

    # ------------------------------------------------------------------ public API
    @property
    def running(self) -> bool:
        """Whether the training thread is alive."""
        thread = getattr(self, "_thread", None)  # None too on a view whose __init__ failed
        return thread is not None and thread.is_alive()

    @reports_inline
    def start(self) -> TrainingMonitor:
        """Run ``trainer.fit`` on a background thread and return at once (the view itself, so a
        notebook cell ending in ``monitor.start()`` shows it)."""
        if self.running:
            raise ParameterError(
                "a run is in progress; stop it (the Stop button) or wait() for it first"
            )
        self.error.clear()
        self.status.value = ""
        self.result, self._exception = None, None
        with self._lock:
            self.epochs, self._batch_x, self._batch_loss = [], [], []
        self._reset_run_state()
        self.stop_button.disabled = False
        self.stop_button.description = "Stop"
        for bar in (self.epoch_bar, self.batch_bar):
            bar.bar_style = ""
        self._thread = threading.Thread(target=self._run, name="wb-train", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to end after the current batch (as the Stop button does); returns at once."""
        self._on_stop_click(self.stop_button)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the run has ended and the view shows its end; return the RunResult.

        While this waits, the kernel is busy and the Stop button's click waits too; interrupting
        the kernel (the toolbar's ■, or I I) stops the run instead, at the next batch.

        Raises what ``trainer.fit`` raised (the view shows it in its banner too), and
        ``TimeoutError`` if the run is still going after ``timeout`` seconds.
        """
        if self._thread is None:
            raise ParameterError("nothing to wait for: start() the run first")
        try:
            self._thread.join(timeout)
        except KeyboardInterrupt:
            # While wait() holds the kernel a Stop click cannot reach it, but the kernel's
            # interrupt can: it stops the run the same way, at the next batch, with a checkpoint.
            self.stop()
            self._thread.join()
        if self._thread.is_alive():
            raise TimeoutError(f"the run is still going after {timeout} s")
        self._drawer.wait()
        if self._exception is not None:
            raise self._exception
        return self.result

    def close(self) -> None:
        """Stop a run still going, then close the widgets and the drawing thread."""
        if self.running:
            self.trainer.stop()
        if hasattr(self, "_drawer"):
            self._drawer.close()
        super().close()

    # ------------------------------------------------------------------ the training thread
    def _run(self) -> None:
        try:
            self.result = self.trainer.fit(progress=False)
        except WorkbenchError as e:
            self._exception = e
            self.error.show(str(e))
        except Exception as e:  # our bug or the library's: shown with its type, logged in full
            self._exception = e
            log.error("training failed", exc_info=e)
            self.error.show(f"Unexpected error in training ({type(e).__name__}): {e}")
        finally:
            self.stop_button.disabled = True
            if self._exception is not None and not self._ended:
                self._set_status(_span("failed before training began", "#b00020"))
                self._bars(final=True, style="danger")

    @guarded
    def _on_event(self, event: dict[str, Any]) -> None:
        """Called by the trainer on the training thread: record, then update what is due."""
        self.events += 1
        kind = event.get("kind")
        now = time.monotonic()
        if kind == "start":
            self._on_start(event)
        elif kind == "batch":
            e, b, n = int(event["epoch"]), int(event["batch"]), int(event["batches"])
            self._position, self._batches = (e, b), n
            with self._lock:
                self._batch_x.append(e + b / max(n, 1))
                self._batch_loss.append(float(event["loss"]))
            if now - self._last_bars >= _BAR_SECONDS or b == n:
                self._bars()
            if now - self._last_draw >= self.redraw_seconds:
                self._draw()
        elif kind == "epoch":
            row = {k: v for k, v in event.items() if k != "kind"}
            with self._lock:
                self.epochs = [*self.epochs, row]
            self._seconds.append(float(event.get("seconds") or now - self._epoch_started))
            self._epoch_started = now
            self._bars()
            self._draw()
        elif kind == "end":
            self._on_end(event)

    def _on_start(self, event: dict[str, Any]) -> None:
        self._run_id = str(event.get("run"))
        self._total_epochs = int(event.get("epochs") or 0)
        self._batches = int(event.get("batches") or 0)
        self._epoch_started = time.monotonic()
        resumed = event.get("resumed_from")
        text = f"run {escape(self._run_id)}"
        if resumed:
            self._position = (int(resumed[0]), int(resumed[1]))
            self._resume_history()
            text += f" · resumed from {_where(*self._position)}"
        self._set_status(_span(text, "#555"))
        self._bars(final=False)
        self._draw()

    def _resume_history(self) -> None:
        """What a resumed run did before, so its curves go on where they stopped: the epochs
        from ``trainer.history``, the batch losses from ``trainer.batch_losses`` (every epoch
        has the same number of batches, so the i-th loss sits at ``i // B + (i % B + 1) / B``)."""
        history, losses, n = self.trainer.history, self.trainer.batch_losses, max(self._batches, 1)
        with self._lock:
            self.epochs = [dict(r) for r in history.to_dict("records")] if len(history) else []
            self._batch_loss = [float(v) for v in losses]
            self._batch_x = [i // n + (i % n + 1) / n for i in range(len(losses))]

    def _on_end(self, event: dict[str, Any]) -> None:
        status = str(event.get("status"))
        e, b = int(event.get("epoch") or 0), int(event.get("batch") or 0)
        with self._status_lock:
            self._ended = True
        started = self._run_id is not None
        if not started and status != "failed":  # a run complete already ends without a start
            self._run_id = self.trainer.run_id
            with self._lock:
                self.epochs = [dict(r) for r in self.trainer.history.to_dict("records")]
        with self.stop_button.hold_sync():
            self.stop_button.disabled = True
            self.stop_button.description = "Stopped" if status == "stopped" else "Stop"
        if status == "failed":
            if event.get("error"):
                self.error.show(str(event["error"]))
            where = f"at {_where(e, b)}" if started else "before training began"
            self._set_status(_span(f"failed {where}", "#b00020"))
            self._bars(final=True, style="danger")
            self._draw()
            return
        if status == "stopped":
            text = (
                f"stopped at {_where(e, b)} — checkpoint saved; resume with "
                f"<code>{escape(self._resume_hint())}</code>"
            )
            self._set_status(_span(text, "#8a5300"))
        else:
            self._set_status(_span(self._summary(status), "#1b5e20"))
        self._bars(final=True, style=_BAR_STYLE.get(status, ""))
        self._draw()

    def _resume_hint(self) -> str:
        """The call that continues this run (a run on labels passed in needs its data again)."""
        given = self.trainer.data.versions.get("labels_source") == "given"
        return f"Trainer.resume(ws, {self._run_id!r}{', data=data' if given else ''})"

    def _summary(self, status: str) -> str:
        """One line on an ended run: how it ended, the validation accuracy of the weights kept
        (the epoch with the lowest validation loss), where it is recorded."""
        n = len(self.epochs)
        if status == "finished":
            parts = [f"finished {n} epoch(s)"]
        else:
            parts = [f"stopped early after {n} epoch(s): the val loss stopped improving"]
        best = [r for r in self.epochs if r.get("best")]
        if best:
            r = best[-1]
            parts.append(
                f"best val accuracy {float(r['val_acc']):.3f} "
                f"(epoch {int(r['epoch']) + 1}, lowest val loss; its weights are kept)"
            )
        parts = [escape(p) for p in parts]
        where = self._run_dir()
        if where:
            parts.append(f"recorded in <code>{escape(where)}</code>")
        return " · ".join(parts)

    def _run_dir(self) -> str | None:
        ws = getattr(self.trainer, "workspace", None)
        if ws is None or self._run_id is None:
            return None
        return str(ws.file("runs") / self._run_id)

    # ------------------------------------------------------------------ drawing (cheap parts)
    def _bars(self, final: bool = False, style: str | None = None) -> None:
        """Move the bars and rewrite the progress line (one message batch to the browser)."""
        self._last_bars = time.monotonic()
        e, b = self._position
        n_epochs, n_batches = max(self._total_epochs, 1), max(self._batches, 1)
        done = len(self.epochs)
        with self.hold_sync():
            with self.epoch_bar.hold_sync():
                self.epoch_bar.max = n_epochs
                self.epoch_bar.value = min(done, n_epochs)
                if style is not None:
                    self.epoch_bar.bar_style = style
            with self.batch_bar.hold_sync():
                self.batch_bar.max = n_batches
                self.batch_bar.value = min(b, n_batches)
                if style is not None:
                    self.batch_bar.bar_style = style
            self.progress.value = self._progress_text(e, b, final)

    def _progress_text(self, epoch: int, batch: int, final: bool) -> str:
        parts = [f"epoch {epoch + 1}/{self._total_epochs}", f"batch {batch}/{self._batches}"]
        if self._seconds:
            per_epoch = sum(self._seconds[-3:]) / len(self._seconds[-3:])
            parts.append(f"{_duration(per_epoch)}/epoch")
            into = batch / max(self._batches, 1) if batch < self._batches else 0.0
            left = self._total_epochs - len(self.epochs) - into
            if not final and left > 0:
                parts.append(f"about {_duration(per_epoch * left)} left")
        with self._lock:
            # the last 200 suffice: older terms weigh under 0.9**200 < 1e-9
            recent = list(self._batch_loss[-200:])
        if recent:
            parts.append(f"loss {smooth_losses(recent, self.smoothing)[-1]:.3f}")
        if self.epochs and self.epochs[-1].get("val_acc") is not None:
            parts.append(f"val accuracy {float(self.epochs[-1]['val_acc']):.3f}")
        return _span(html.escape(" · ".join(parts)))

    def _draw(self) -> None:
        """Ask the drawing thread for the curves of the numbers as they are now."""
        self._last_draw = time.monotonic()
        self._drawer.submit(self._draw_now)

    @guarded
    def _draw_now(self) -> None:
        import pandas as pd

        with self._lock:
            epochs = list(self.epochs)
            batches = pd.Series(self._batch_loss, index=self._batch_x, dtype=float)
        self.curves.value = training_png(
            epochs, batches, smoothing=self.smoothing, total_epochs=self._total_epochs or None
        )

    # ------------------------------------------------------------------ handlers
    @guarded
    def _on_stop_click(self, _button: Any) -> None:
        if not self.running or self._stopping:
            return
        self._stopping = True
        self.trainer.stop()
        with self._status_lock:
            if self._ended:
                return
            self.stop_button.disabled = True
            self.stop_button.description = "Stopping…"
            self.status.value = _span("stopping after this batch…", "#8a5300")

    def _set_status(self, value: str) -> None:
        with self._status_lock:
            self.status.value = value
