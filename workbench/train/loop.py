"""The fine-tuning loop: plain PyTorch, resumable, stoppable at any batch.

Schedule: the new head trains alone for ``frozen_epochs`` (the backbone's weights are frozen;
its batch-norm statistics still adapt), then the whole network trains with discriminative
learning rates (``backbone_lr`` for the backbone, ``lr`` for the head). One AdamW optimiser and
one ``OneCycleLR`` policy span the whole schedule; cross-entropy with optional label smoothing;
early stopping when the validation loss has not improved for ``patience`` epochs; the weights
with the lowest validation loss are kept as the run's best.

Guarantees:

* **Stop at a batch boundary.** :meth:`Trainer.stop` (thread-safe, e.g. from a Stop button) ends
  :meth:`Trainer.fit` after the current batch; a checkpoint of that exact point is written first.
  A keyboard interrupt does the same (and is re-raised).
* **Resume equals uninterrupted.** The checkpoint holds weights, optimiser and schedule state, the
  torch RNG (dropout), the epoch, the next batch and the epoch's running sums. Each epoch's order
  and each sample's augmentation draw are functions of (seed, epoch, sample) only
  (:class:`~workbench.train.data.EpochBatches`), and batches already trained on are skipped
  without being loaded. So a run stopped anywhere (Stop, kernel restart, SIGKILL: it resumes from
  the last checkpoint written) and resumed with :meth:`Trainer.resume` ends with the same weights
  as a run that never stopped, on the same device and thread count.
* **Recorded.** Config, data versions, per-epoch metrics, the last and best checkpoints are kept
  in the Workspace (:mod:`workbench.train.runs`).

Events for views (``on_event(fn)``, called on the training thread; see ``train_design.md``):
``start``, ``batch``, ``epoch`` and ``end`` dicts with a ``"kind"`` key.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.errors import ParameterError
from workbench.train.config import TrainConfig, TrainError
from workbench.train.data import TrainingData
from workbench.train.network import build_network, parameter_groups
from workbench.train.runs import Run

if TYPE_CHECKING:
    import torch

    from workbench.workspace import Workspace

__all__ = ["STATUSES", "RunResult", "Trainer"]

log = logging.getLogger(__name__)

#: How a call to :meth:`Trainer.fit` can end.
STATUSES = ("finished", "early_stopped", "stopped", "failed")
#: Config fields that shape the data (they must match the TrainingData's).
_DATA_FIELDS = ("image_size", "batch_size", "augment", "max_batches", "workers", "model")


@dataclass
class RunResult:
    """What :meth:`Trainer.fit` returns."""

    run_id: str
    status: str
    epoch: int  # epochs completed
    batch: int  # batches completed in the epoch after them (0 at an epoch boundary)
    history: pd.DataFrame = field(repr=False)
    best_epoch: int | None = None
    best_val_loss: float | None = None
    best_val_acc: float | None = None


class Trainer:
    """Fine-tune a torchvision classifier on :class:`TrainingData` (see the module docstring).

    Parameters
    ----------
    data
        Samples, labels, split and transforms.
    config
        Defaults to ``data.config``; the fields that shape the data must equal it.
    workspace
        Where the run is recorded (default: ``data.workspace``).
    run
        A recorded run's id to continue (its config is used; the data must be unchanged).

    Attributes
    ----------
    run_id : str or None
        Set when :meth:`fit` starts (or given).
    status : str or None
        Of the last :meth:`fit`.
    history : pandas.DataFrame
        Per epoch: ``epoch, train_loss, train_acc, val_loss, val_acc, seconds, best, lr``.
    batch_losses : list of float
        Every training batch's loss, in order (across resumes).
    """

    def __init__(
        self,
        data: TrainingData,
        config: TrainConfig | None = None,
        *,
        workspace: Workspace | None = None,
        run: str | None = None,
    ) -> None:
        if not isinstance(data, TrainingData):
            raise ParameterError("Trainer needs a TrainingData (TrainingData.from_workspace)")
        self.data = data
        self.workspace = workspace if workspace is not None else data.workspace
        if self.workspace is None:
            raise ParameterError("runs are recorded in a Workspace: pass workspace=")
        self.run: Run | None = None
        if run is not None:
            self.run = Run.load(self.workspace, run)
            recorded = self.run.config
            if config is not None and config.to_dict() != recorded.to_dict():
                raise TrainError(
                    f"run {run} was started with other settings; resume it without a config "
                    "or start a new run"
                )
            config = recorded
            self.run.check_versions(data.versions)
        self.config = (config if config is not None else data.config).check()
        diff = [f for f in _DATA_FIELDS if getattr(self.config, f) != getattr(data.config, f)]
        if diff:
            raise TrainError(
                f"the config differs from the data's in {diff}; build the TrainingData with the "
                "same config (TrainingData.from_workspace(..., config=config))"
            )
        self._stop = threading.Event()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self.status: str | None = None
        self.history = pd.DataFrame()
        self.batch_losses: list[float] = []
        self.model: torch.nn.Module | None = None

    def __repr__(self) -> str:
        return f"Trainer({self.data!r}, run={self.run_id!r}, status={self.status!r})"

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    @classmethod
    def resume(cls, workspace: Workspace, run_id: str, data: TrainingData | None = None) -> Trainer:
        """A trainer that continues a recorded run from its last checkpoint.

        Without ``data``, it is rebuilt from the workspace with the run's config and recorded
        pipeline and normalizer (labels from the label store; a run trained on given labels
        needs them again: pass ``data``).
        """
        run = Run.load(workspace, run_id)
        if data is None:
            v = run.versions
            if v.get("labels_source") == "given":
                raise TrainError(
                    f"run {run_id} was trained on labels passed in; pass data=TrainingData."
                    "from_workspace(ws, labels=..., config=Run.load(ws, run_id).config)"
                )
            from workbench.augment import Pipeline
            from workbench.normalize import Normalizer

            p, n = v.get("pipeline_spec"), v.get("normalizer_spec")
            data = TrainingData.from_workspace(
                workspace, config=run.config,
                pipeline=Pipeline.from_dict(p) if p else None,
                normalizer=Normalizer.from_dict(n) if n else None,
            )  # fmt: skip
        return cls(data, workspace=workspace, run=run_id)

    # ------------------------------------------------------------------ control
    def on_event(self, fn: Callable[[dict[str, Any]], None]) -> None:
        """Call ``fn(event)`` on the training thread for every event (see the module docstring).
        An error in ``fn`` is logged; training goes on."""
        self._listeners.append(fn)

    def stop(self) -> None:
        """Ask :meth:`fit` to end after the current batch (thread-safe); it checkpoints first."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _emit(self, event: dict[str, Any]) -> None:
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:  # a view's bug must not end the training
                log.exception("training event listener %r failed", fn)

    # ------------------------------------------------------------------ training
    def fit(self, progress: bool = True) -> RunResult:
        """Train (or continue) the run to its end, an early stop or :meth:`stop`.

        Returns
        -------
        RunResult
            ``status`` is ``"finished"``, ``"early_stopped"`` or ``"stopped"``.

        Raises
        ------
        WorkbenchError
            Bad settings or data (after an ``end`` event with status ``"failed"``).
        """
        if self.run is None:
            self.run = Run.create(self.workspace, self.config, self.data.versions)
        state: dict[str, Any] = {}
        try:
            return self._fit(state, progress)
        except KeyboardInterrupt:
            self._finish(state, "stopped")
            raise
        except BaseException as e:
            self._finish(state, "failed", error=f"{type(e).__name__}: {e}")
            raise
        finally:
            self._stop.clear()

    def _setup(self) -> dict[str, Any]:
        import torch

        cfg, data = self.config, self.data
        device = cfg.resolved_device()
        net = build_network(cfg, len(data.classes)).to(device)
        backbone, head = parameter_groups(net)
        opt = torch.optim.AdamW(
            [{"params": backbone, "lr": cfg.backbone_lr}, {"params": head, "lr": cfg.lr}],
            weight_decay=cfg.weight_decay,
        )
        sampler = data.batches("train", seed=cfg.seed)
        per_epoch = len(sampler)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[cfg.backbone_lr, cfg.lr], total_steps=cfg.epochs * per_epoch
        )
        crit = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        return {"device": device, "net": net, "backbone": backbone, "opt": opt, "crit": crit,
                "sampler": sampler, "per_epoch": per_epoch, "sched": sched}  # fmt: skip

    def _fit(self, state: dict[str, Any], progress: bool) -> RunResult:
        import torch
        from tqdm.auto import tqdm

        cfg, run = self.config, self.run
        assert run is not None
        s = self._setup()
        net, opt, sched, crit, sampler = s["net"], s["opt"], s["sched"], s["crit"], s["sampler"]
        self.model = net
        state.update(epoch=0, batch=0, best_val_loss=math.inf, best_val_acc=None,
                     best_epoch=None, bad_epochs=0, history=[], batch_losses=[],
                     sums=[0.0, 0, 0], status="running", seconds=0.0)  # fmt: skip
        ckpt = run.load_checkpoint()
        resumed = None
        if ckpt is not None:
            net.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            torch.set_rng_state(ckpt["rng"])
            if ckpt.get("cuda_rng") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
            state.update(ckpt["state"])
            resumed = (state["epoch"], state["batch"])
        else:
            torch.manual_seed(cfg.seed)  # dropout draws
        state["_objects"] = s
        self.history = pd.DataFrame(state["history"])
        self.batch_losses = list(state["batch_losses"])
        if state["status"] in ("finished", "early_stopped"):  # nothing left to train
            self.status = state["status"]
            self._emit({"kind": "end", "status": self.status, "epoch": state["epoch"],
                        "batch": state["batch"], "error": None})  # fmt: skip
            return self._result(state)
        run.write_status(status="running", error=None)
        self._emit({"kind": "start", "run": run.id, "epochs": cfg.epochs,
                    "batches": s["per_epoch"], "resumed_from": resumed})  # fmt: skip
        status = "finished"
        for epoch in range(state["epoch"], cfg.epochs):
            frozen = epoch < cfg.frozen_epochs
            for p in s["backbone"]:
                p.requires_grad_(not frozen)
            sampler.set_epoch(epoch, state["batch"])
            net.train()
            t0 = time.perf_counter()
            bar = tqdm(total=s["per_epoch"], initial=state["batch"], disable=not progress,
                       desc=f"epoch {epoch + 1}/{cfg.epochs}" + (" (frozen)" if frozen else ""),
                       leave=False)  # fmt: skip
            stopped = False
            with bar:
                for x, y in self.data.loader("train", sampler):
                    x, y = x.to(s["device"]), y.to(s["device"])
                    state["_in_step"] = True  # an interrupt in here leaves no checkpoint
                    opt.zero_grad(set_to_none=True)
                    out = net(x)
                    loss = crit(out, y)
                    loss.backward()
                    opt.step()
                    sched.step()
                    value = float(loss.detach())
                    sums = state["sums"]
                    sums[0] += value * len(y)
                    sums[1] += int((out.detach().argmax(1) == y).sum())
                    sums[2] += len(y)
                    state["batch"] += 1
                    state["batch_losses"].append(value)
                    self.batch_losses.append(value)
                    state["_in_step"] = False
                    bar.update(1)
                    bar.set_postfix(loss=f"{value:.4f}")
                    every = cfg.checkpoint_every
                    if every and state["batch"] % every == 0:
                        self._checkpoint(state)
                    self._emit({"kind": "batch", "epoch": epoch, "batch": state["batch"],
                                "batches": s["per_epoch"], "loss": value,
                                "lr": float(sched.get_last_lr()[-1])})  # fmt: skip
                    if self._stop.is_set():
                        stopped = True
                        break
            state["seconds"] += time.perf_counter() - t0
            if stopped:
                status = "stopped"
                break
            early = self._end_epoch(state, epoch, time.perf_counter() - t0)
            if progress:
                r = state["history"][-1]
                tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: train loss {r['train_loss']:.4f} "
                           f"acc {r['train_acc']:.3f} · val loss {r['val_loss']:.4f} "
                           f"acc {r['val_acc']:.3f}{' (best)' if r['best'] else ''}")  # fmt: skip
            if early:
                status = "early_stopped"
                break
            if self._stop.is_set() and state["status"] == "running":  # not after the last epoch
                status = "stopped"
                break
        return self._finish(state, status)

    def _end_epoch(self, state: dict[str, Any], epoch: int, seconds: float) -> bool:
        """Validate, record, checkpoint; True when early stopping ends the run."""
        s = state["_objects"]
        cfg, run = self.config, self.run
        assert run is not None
        val_loss, val_acc = self.evaluate(s["net"], s["crit"], s["device"])
        sums = state["sums"]
        best = val_loss < state["best_val_loss"]
        if best:
            state.update(best_val_loss=val_loss, best_val_acc=val_acc, best_epoch=epoch,
                         bad_epochs=0)  # fmt: skip
            run.save_best(_cpu_state(s["net"]), epoch, val_loss)
        else:
            state["bad_epochs"] += 1
        row = {"epoch": epoch, "train_loss": sums[0] / max(sums[2], 1),
               "train_acc": sums[1] / max(sums[2], 1), "val_loss": val_loss, "val_acc": val_acc,
               "seconds": seconds, "best": best,
               "lr": float(s["sched"].get_last_lr()[-1])}  # fmt: skip
        state["history"].append(row)
        state.update(epoch=epoch + 1, batch=0, sums=[0.0, 0, 0])
        self.history = pd.DataFrame(state["history"])
        run.write_history(state["history"])
        early = bool(cfg.patience) and state["bad_epochs"] >= cfg.patience
        if early or epoch + 1 == cfg.epochs:
            state["status"] = "early_stopped" if early else "finished"
        self._checkpoint(state)
        run.write_status(epoch=state["epoch"], batch=0, best_epoch=state["best_epoch"],
                         best_val_loss=state["best_val_loss"],
                         best_val_acc=state["best_val_acc"])  # fmt: skip
        self._emit({"kind": "epoch", **{k: row[k] for k in row if k != "lr"}})
        return early

    def evaluate(self, net: torch.nn.Module, crit: Any, device: str) -> tuple[float, float]:
        """Mean loss and accuracy of ``net`` on the validation split."""
        import torch

        net.eval()
        total, correct, n = 0.0, 0, 0
        with torch.inference_mode():
            for x, y in self.data.loader("val"):
                x, y = x.to(device), y.to(device)
                out = net(x)
                total += float(crit(out, y)) * len(y)
                correct += int((out.argmax(1) == y).sum())
                n += len(y)
        net.train()
        return total / max(n, 1), correct / max(n, 1)

    def _checkpoint(self, state: dict[str, Any]) -> None:
        import torch

        s = state["_objects"]
        assert self.run is not None
        plain = {k: v for k, v in state.items() if not k.startswith("_")}
        self.run.save_checkpoint({
            "format": 1,
            "model": _cpu_state(s["net"]),
            "optimizer": s["opt"].state_dict(),
            "scheduler": s["sched"].state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if s["device"] == "cuda" else None,
            "state": plain,
        })  # fmt: skip

    def _finish(self, state: dict[str, Any], status: str, error: str | None = None) -> RunResult:
        self.status = status
        if self.run is not None:
            consistent = state.get("status") == "running" and not state.get("_in_step")
            if status == "stopped" and "_objects" in state and consistent:
                self._checkpoint(state)
            fields = {"status": status, "error": error}
            if state:
                fields.update(epoch=state.get("epoch", 0), batch=state.get("batch", 0))
            self.run.write_status(**fields)
        self._emit({"kind": "end", "status": status, "epoch": state.get("epoch", 0),
                    "batch": state.get("batch", 0), "error": error})  # fmt: skip
        return self._result(state)

    def _result(self, state: dict[str, Any]) -> RunResult:
        best = state.get("best_val_loss")
        return RunResult(
            run_id=self.run_id or "", status=self.status or "failed",
            epoch=int(state.get("epoch", 0)), batch=int(state.get("batch", 0)),
            history=self.history.copy(), best_epoch=state.get("best_epoch"),
            best_val_loss=None if best is None or math.isinf(best) else float(best),
            best_val_acc=state.get("best_val_acc"),
        )  # fmt: skip


def _cpu_state(net: torch.nn.Module) -> dict[str, Any]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
